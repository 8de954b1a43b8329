package main

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/google/uuid"

	"github.com/fieldsync/fieldsync/mobile"
	"github.com/fieldsync/fieldsync/mobile/mobiletest"
	"github.com/fieldsync/fieldsync/syncproto"
)

// Row is what one attack cost.
type Row struct {
	Attack   string
	Requests int            // attack requests that ended, answered or not
	Answers  map[string]int // "401", "413", "closed" (no answer), "open at the end"…
	PeakRSS  int64          // bytes (VmHWM since the attack began); 0 when unknown
	Syncs    int            // the honest phone's syncs that succeeded
	Failed   int            // … and failed
	FirstErr string         // the first failure
	P50, Max time.Duration  // of the successful syncs
}

// env is what the attackers and the phone share.
type env struct {
	c     Config
	host  string // host:port of the server
	token string // a device token of the attacker
	bomb  []byte // gzip body inflating to c.BombSize
	// photos are the hostile photos of attack 5
	photos *hostilePhotos
}

// attack is one kind of hostile traffic: run sends it until ctx is done.
type attack struct {
	name func(c Config) string
	run  func(ctx context.Context, e *env, t *tally)
}

var attackList = []attack{
	{
		name: func(c Config) string {
			return fmt.Sprintf("1. %d slow bodies announcing %s, no token", c.Slow, size(c.Announce))
		},
		run: func(ctx context.Context, e *env, t *tally) {
			workers(ctx, e.c.Slow, func() { slowBody(ctx, e, e.c.Announce, e.c.SlowRate, "", t) })
		},
	},
	{
		name: func(c Config) string {
			return fmt.Sprintf("2. %d gzip bodies inflating to %s, no token", c.Bombs, size(c.BombSize))
		},
		run: func(ctx context.Context, e *env, t *tally) {
			workers(ctx, e.c.Bombs, func() { gzipBody(ctx, e, "", t) })
		},
	},
	{
		name: func(c Config) string {
			return fmt.Sprintf("3. %d bodies of 1 MiB at 100 bytes/s, device token", c.Slow)
		},
		run: func(ctx context.Context, e *env, t *tally) {
			workers(ctx, e.c.Slow, func() { slowBody(ctx, e, 1<<20, 100, e.token, t) })
		},
	},
	{
		name: func(c Config) string {
			return fmt.Sprintf("4. %d gzip bodies inflating to %s, device token", c.Bombs, size(c.BombSize))
		},
		run: func(ctx context.Context, e *env, t *tally) {
			workers(ctx, e.c.Bombs, func() { gzipBody(ctx, e, e.token, t) })
		},
	},
	{
		name: func(c Config) string {
			return fmt.Sprintf("5. hostile photos (%d×%d 16-bit PNG, EXIF count 0x80000001, cyclic IFDs), %d uploaders, device token",
				c.PNGSide, c.PNGSide, photoUploaders)
		},
		run: func(ctx context.Context, e *env, t *tally) {
			var wg sync.WaitGroup
			for w := range photoUploaders {
				wg.Go(func() { uploadHostilePhotos(ctx, e, w, t) })
			}
			wg.Wait()
		},
	},
}

// photoUploaders is how many uploaders attack 5 runs.
const photoUploaders = 3

// workers runs n copies of f until they return.
func workers(ctx context.Context, n int, f func()) {
	var wg sync.WaitGroup
	for range n {
		wg.Go(f)
	}
	wg.Wait()
}

// tally counts the outcomes of attack requests.
type tally struct {
	mu sync.Mutex
	n  int
	by map[string]int
}

func (t *tally) add(outcome string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.by == nil {
		t.by = map[string]int{}
	}
	t.n++
	t.by[outcome]++
}

// pause waits d or until ctx is done.
func pause(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

// slowBody sends push requests announcing announce bytes, at rate bytes
// per second, one after the other, a second apart, until ctx is done.
func slowBody(ctx context.Context, e *env, announce, rate int64, token string, t *tally) {
	for ctx.Err() == nil {
		t.add(slowRequest(ctx, e, announce, rate, token))
		pause(ctx, time.Second)
	}
}

func slowRequest(ctx context.Context, e *env, announce, rate int64, token string) string {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", e.host)
	if err != nil {
		if ctx.Err() != nil {
			return "open at the end"
		}
		return "no connection"
	}
	defer conn.Close()
	head := fmt.Sprintf("POST /v1/sync/push HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n", e.host, announce)
	if token != "" {
		head += "Authorization: Bearer " + token + "\r\n"
	}
	if _, err := io.WriteString(conn, head+"\r\n"); err != nil {
		return "closed"
	}
	answered := make(chan string, 1)
	go func() {
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			answered <- "closed"
			return
		}
		resp.Body.Close()
		answered <- strconv.Itoa(resp.StatusCode)
	}()
	piece := max(rate/10, 1)
	buf := bytes.Repeat([]byte(" "), int(min(piece, 1<<20)))
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for sent := int64(0); ; {
		select {
		case out := <-answered:
			return out
		case <-ctx.Done():
			return "open at the end"
		case <-tick.C:
		}
		if n := min(int64(len(buf)), announce-sent); n > 0 {
			if _, err := conn.Write(buf[:n]); err != nil {
				// Closed by the server: its answer may still be there.
				select {
				case out := <-answered:
					return out
				case <-time.After(time.Second):
					return "closed"
				}
			}
			sent += n
		}
	}
}

// gzipBody sends the gzip body as a push, again and again, 200 ms apart.
func gzipBody(ctx context.Context, e *env, token string, t *tally) {
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 2 * time.Minute}
	for ctx.Err() == nil {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+e.host+"/v1/sync/push", bytes.NewReader(e.bomb))
		if err != nil {
			t.add("error")
			return
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Content-Encoding", "gzip")
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := client.Do(req)
		switch {
		case err != nil && ctx.Err() != nil:
			t.add("open at the end")
		case err != nil:
			t.add("closed")
		default:
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			t.add(strconv.Itoa(resp.StatusCode))
		}
		pause(ctx, 200*time.Millisecond)
	}
}

// gzipOfZeros returns a gzip body that inflates to n zero bytes: members
// of 1 MiB each, one after the other, as a gzip body may hold several.
func gzipOfZeros(n int64) ([]byte, error) {
	member := func(size int64) ([]byte, error) {
		var b bytes.Buffer
		zw, err := gzip.NewWriterLevel(&b, gzip.BestCompression)
		if err != nil {
			return nil, err
		}
		if _, err := zw.Write(make([]byte, size)); err != nil {
			return nil, err
		}
		err = zw.Close()
		return b.Bytes(), err
	}
	whole, err := member(1 << 20)
	if err != nil {
		return nil, err
	}
	out := bytes.Repeat(whole, int(n>>20))
	if rest := n % (1 << 20); rest > 0 {
		last, err := member(rest)
		if err != nil {
			return nil, err
		}
		out = append(out, last...)
	}
	return out, nil
}

// phoneStats are the honest phone's syncs during one attack.
type phoneStats struct {
	mu       sync.Mutex
	ok       []time.Duration
	failed   int
	firstErr string
}

// stalledAfter is how long a sync may have run when the attack ends
// before it counts as failed: an unanswered sync is a failure too.
const stalledAfter = 5 * time.Second

// honestPhone saves a visit and syncs, every half second, until ctx is
// done. A sync that ctx interrupts counts as failed if it had run for
// stalledAfter, and is not counted otherwise.
func honestPhone(ctx context.Context, e *mobile.Engine, school, inspector string, st *phoneStats) {
	for ctx.Err() == nil {
		date := time.Now().In(chinaTime).Format(time.DateOnly)
		if _, err := e.Save(mobile.Draft{Kind: "visit", SchoolID: school, FormID: "visit.routine", FormVersion: 1, Values: map[string]json.RawMessage{
			"school_id": js(school), "kind": js("routine"), "announced": js(true), "lead_inspector_id": js(inspector),
			"visit_date": js(date), "theme": js("校园安全"), "problems": js("消防通道堆放杂物"),
			"suggestions": js("当天清理"), "highlights": js("值班记录完整"),
		}}); err != nil {
			st.fail(err)
			return
		}
		start := time.Now()
		_, err := e.Sync(ctx, nil)
		if ctx.Err() != nil {
			if took := time.Since(start); took >= stalledAfter {
				st.fail(fmt.Errorf("a sync was still running after %s when the attack ended", took.Round(time.Second)))
			}
			return
		}
		if err != nil {
			st.fail(err)
		} else {
			st.mu.Lock()
			st.ok = append(st.ok, time.Since(start))
			st.mu.Unlock()
		}
		pause(ctx, 500*time.Millisecond)
	}
}

func (st *phoneStats) fail(err error) {
	st.mu.Lock()
	defer st.mu.Unlock()
	st.failed++
	if st.firstErr == "" {
		st.firstErr = err.Error()
	}
}

var chinaTime = time.FixedZone("CST", 8*60*60)

func js(v any) json.RawMessage {
	b, _ := syncproto.Marshal(v)
	return b
}

// run provisions the phone and the attacker's device, then runs the phone
// alone and each attack in turn.
func run(ctx context.Context, c Config, log io.Writer) ([]Row, error) {
	school := uuid.Must(uuid.NewV7()).String()
	e := &env{c: c}
	var phoneCode, inspector string
	if c.Fake {
		srv := mobiletest.NewServer()
		hs := httptest.NewServer(srv.Handler())
		defer hs.Close()
		c.Server, e.c.Server = hs.URL, hs.URL
		inspector = uuid.Must(uuid.NewV7()).String()
		phoneCode = "BUDGET-PHONE"
		srv.AddCode(phoneCode, inspector)
		e.token = "fsd_budget-attacker"
		srv.AddDevice(e.token, uuid.Must(uuid.NewV7()), inspector)
		if c.ServerPID == 0 {
			c.ServerPID = os.Getpid()
		}
	} else {
		admin := &mobiletest.Admin{URL: c.Server, Token: c.AdminToken}
		var err error
		if inspector, phoneCode, err = admin.Inspector(ctx, "资源预算测试督学", []string{school}); err != nil {
			return nil, fmt.Errorf("provision the phone: %w", err)
		}
		code, err := admin.Code(ctx, inspector)
		if err != nil {
			return nil, fmt.Errorf("provision the attacker: %w", err)
		}
		resp, err := (&mobile.HTTPTransport{BaseURL: c.Server}).Enroll(ctx, mobile.EnrollRequest{Code: code, DeviceID: uuid.Must(uuid.NewV7()), DeviceName: "attacker"})
		if err != nil {
			return nil, fmt.Errorf("enroll the attacker: %w", err)
		}
		e.token = resp.Token
	}
	u, err := url.Parse(c.Server)
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("--server %q is not a URL", c.Server)
	}
	e.host = u.Host
	if e.bomb, err = gzipOfZeros(c.BombSize); err != nil {
		return nil, err
	}
	if slices.Contains(c.Attacks, 5) {
		if e.photos, err = newHostilePhotos(c.PNGSide); err != nil {
			return nil, err
		}
	}

	dir, err := os.MkdirTemp("", "fieldbudget-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	phone, err := mobile.Open(filepath.Join(dir, "phone.db"), mobile.Options{NoSync: true, Validator: mobile.FormsValidator(nil),
		HTTPClient: &http.Client{Timeout: 2 * time.Minute}})
	if err != nil {
		return nil, err
	}
	defer phone.Close()
	if _, err := phone.Enroll(ctx, c.Server, phoneCode, "诚实的手机"); err != nil {
		return nil, fmt.Errorf("enroll the phone: %w", err)
	}

	mem := memory{pid: c.ServerPID, log: log}
	var rows []Row
	steps := []struct {
		name string
		run  func(ctx context.Context, e *env, t *tally)
		d    time.Duration
	}{{"0. none: the phone alone", nil, min(c.Duration, 10*time.Second)}}
	for _, n := range c.Attacks {
		a := attackList[n-1]
		steps = append(steps, struct {
			name string
			run  func(ctx context.Context, e *env, t *tally)
			d    time.Duration
		}{a.name(c), a.run, c.Duration})
	}
	for _, step := range steps {
		if ctx.Err() != nil {
			return rows, ctx.Err()
		}
		fmt.Fprintf(log, "%s: %s…\n", step.name, step.d)
		mem.reset()
		actx, cancel := context.WithTimeout(ctx, step.d)
		var t tally
		var st phoneStats
		var wg sync.WaitGroup
		wg.Go(func() { honestPhone(actx, phone, school, inspector, &st) })
		if step.run != nil {
			wg.Go(func() { step.run(actx, e, &t) })
		}
		wg.Wait()
		cancel()
		row := Row{Attack: step.name, Requests: t.n, Answers: t.by, PeakRSS: mem.peak(),
			Syncs: len(st.ok), Failed: st.failed, FirstErr: st.firstErr}
		if len(st.ok) > 0 {
			slices.Sort(st.ok)
			row.P50, row.Max = st.ok[len(st.ok)/2], st.ok[len(st.ok)-1]
		}
		rows = append(rows, row)
		pause(ctx, min(2*time.Second, c.Duration/2)) // let the server close what the attack left
	}
	return rows, nil
}

// memory reads a process's resident memory from /proc.
type memory struct {
	pid int
	log io.Writer
}

// reset makes VmHWM the current RSS (Linux: "5" to clear_refs).
func (m *memory) reset() {
	if m.pid <= 0 {
		return
	}
	if err := os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", m.pid), []byte("5"), 0); err != nil {
		fmt.Fprintf(m.log, "cannot reset the peak RSS (%v): the peaks below are since the server started\n", err)
		m.pid = -m.pid // warn once; peak() negates it back
	}
}

// peak returns VmHWM in bytes, 0 when unknown.
func (m *memory) peak() int64 {
	pid := max(m.pid, -m.pid)
	if pid == 0 {
		return 0
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err == nil {
				return kb << 10
			}
		}
	}
	return 0
}

func size(n int64) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%d bytes", n)
}

func mb(n int64) string {
	if n == 0 {
		return "unknown"
	}
	return fmt.Sprintf("%.0f MB", float64(n)/1e6)
}

// ratio returns peak ÷ idle as "×1.2", or "-" when either is unknown.
func ratio(peak, idle int64) string {
	if peak == 0 || idle == 0 {
		return "-"
	}
	return fmt.Sprintf("×%.2f", float64(peak)/float64(idle))
}

// printTable writes the rows and whether every peak stayed under the goal.
// Each peak is also given as a ratio to the first row's, the server with
// only the honest phone, measured in the same run.
func printTable(w io.Writer, c Config, rows []Row) {
	if c.Label != "" {
		fmt.Fprintf(w, "fieldsyncd: %s\n", c.Label)
	}
	var idle int64
	if len(rows) > 0 {
		idle = rows[0].PeakRSS
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "attack\trequests\tanswers\tserver peak RSS\tvs idle\tphone syncs ok / failed\tsync p50 / max")
	worst := int64(0)
	failed := 0
	for _, r := range rows {
		var answers []string
		for k, v := range r.Answers {
			answers = append(answers, fmt.Sprintf("%s ×%d", k, v))
		}
		slices.Sort(answers)
		if len(answers) == 0 {
			answers = []string{"-"}
		}
		lat := "-"
		if r.Syncs > 0 {
			lat = fmt.Sprintf("%s / %s", r.P50.Round(time.Millisecond), r.Max.Round(time.Millisecond))
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%d / %d\t%s\n", r.Attack, r.Requests, strings.Join(answers, ", "), mb(r.PeakRSS),
			ratio(r.PeakRSS, idle), r.Syncs, r.Failed, lat)
		worst = max(worst, r.PeakRSS)
		failed += r.Failed
	}
	tw.Flush()
	for _, r := range rows {
		if r.FirstErr != "" {
			fmt.Fprintf(w, "%s: first failed sync: %s\n", r.Attack, r.FirstErr)
		}
	}
	switch {
	case worst == 0:
		fmt.Fprintln(w, "server peak RSS: unknown (give --server-pid)")
	case worst < int64(c.GoalMB)*1e6:
		fmt.Fprintf(w, "every peak under %d MB: yes (highest %s)\n", c.GoalMB, mb(worst))
	default:
		fmt.Fprintf(w, "every peak under %d MB: NO (highest %s)\n", c.GoalMB, mb(worst))
	}
	if failed == 0 {
		fmt.Fprintln(w, "the honest phone's syncs all succeeded")
	} else {
		fmt.Fprintf(w, "the honest phone: %d syncs failed\n", failed)
	}
}
