package faults

import (
	"context"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/fieldsync/fieldsync/mobile"
	"github.com/fieldsync/fieldsync/mobile/mobiletest"
)

var theSuite *suite

func TestMain(m *testing.M) {
	flag.Parse()
	cfg, err := loadConfig()
	if err != nil {
		fmt.Fprintln(os.Stderr, "faults:", err)
		os.Exit(2)
	}
	theSuite = &suite{cfg: cfg, report: &Report{Started: time.Now(), Seed: cfg.seed,
		Machine: fmt.Sprintf("%d cores, %s/%s", runtime.NumCPU(), runtime.GOOS, runtime.GOARCH)}}
	if len(cfg.scenarios) > 0 {
		dir, err := os.MkdirTemp("", "fieldsync-faults-bin")
		if err != nil {
			fmt.Fprintln(os.Stderr, "faults:", err)
			os.Exit(2)
		}
		bin := filepath.Join(dir, "fieldsyncd")
		out, err := exec.Command("go", "build", "-o", bin, "github.com/fieldsync/fieldsync/server/cmd/fieldsyncd").CombinedOutput()
		if err != nil {
			fmt.Fprintf(os.Stderr, "faults: build fieldsyncd: %v\n%s", err, out)
			os.Exit(2)
		}
		theSuite.cfg.fieldsyncd = bin
		defer os.RemoveAll(dir)
	}
	code := m.Run()
	if len(cfg.scenarios) > 0 {
		// deploy/faults.sh prints the table once go test is done.
		if err := theSuite.report.write(cfg.report, io.Discard); err != nil {
			fmt.Fprintln(os.Stderr, "faults: report:", err)
			code = 1
		}
	}
	os.Exit(code)
}

// TestFaults runs the scenarios FIELDSYNC_FAULTS names, one after
// another, each on its own database and bucket.
func TestFaults(t *testing.T) {
	s := theSuite
	if len(s.cfg.scenarios) == 0 {
		t.Skip("the fault suite runs with make faults (FIELDSYNC_FAULTS=all|ci|NAME,...)")
	}
	for _, need := range []struct{ v, what string }{
		{s.cfg.mongoURI, "FIELDSYNC_MONGO_URI"}, {s.cfg.minioEndpoint, "FIELDSYNC_MINIO_ENDPOINT"}, {s.cfg.stackDir, "FIELDSYNC_STACK_DIR"},
	} {
		if need.v == "" {
			t.Fatalf("%s is not set: run the suite under deploy/stack.sh (make faults)", need.what)
		}
	}
	scenarios := map[string]func(*testing.T) Row{
		"kill":       s.kill,
		"replicas2":  func(t *testing.T) Row { return s.replicas(t, 2) },
		"replicas3":  func(t *testing.T) Row { return s.replicas(t, 3) },
		"ferretdb":   func(t *testing.T) Row { return s.restartStore(t, "ferretdb", "FerretDB", offFerret) },
		"postgres":   func(t *testing.T) Row { return s.restartStore(t, "postgres", "PostgreSQL", offPostgres) },
		"minio-stop": s.minioStop,
		"minio-dist": s.minioDist,
		"disk-full":  s.diskFull,
	}
	t.Logf("seed %d (FIELDSYNC_FAULTS_SEED=%d repeats it), ports from %d", s.cfg.seed, s.cfg.seed, s.cfg.portBase)
	for _, name := range allScenarios {
		if !s.cfg.scenarios[name] {
			continue
		}
		t.Run(name, func(t *testing.T) {
			start := time.Now()
			row := Row{Scenario: name, Result: "FAIL"}
			defer func() {
				// A scenario that stopped with t.Fatal still gets its row.
				if row.Wall == 0 {
					row.Wall = time.Since(start)
					row.Notes = append(row.Notes, "the scenario stopped early: see the test log")
				}
				s.report.add(row)
			}()
			row = scenarios[name](t)
			row.Scenario, row.Wall = name, time.Since(start)
			switch row.Result {
			case "not run":
				t.Logf("not run: %s", strings.Join(row.Notes, "; "))
			case "pass":
			default:
				t.Errorf("%s: lost %d, duplicated %d, diverged %d; %s", name, row.Lost, row.Duplicated, row.Diverged,
					strings.Join(append(row.Notes, row.Details...), "\n"))
			}
		})
	}
}

// convergeWithin bounds how long finish waits for the phones to
// converge: a puller waits up to the server's lease (60 s) before it fills
// the slot a killed writer had taken, so records written after that slot
// reach other phones only then.
const convergeWithin = 150 * time.Second

// finish settles the phones until they converge (or convergeWithin has
// passed), runs the oracle and fills the row.
func (s *suite) finish(t *testing.T, f *fleet, row Row, recs []time.Duration) Row {
	t.Helper()
	ctx := t.Context()
	start := time.Now()
	var o outcome
	for {
		err := f.settle(ctx, 3*time.Minute)
		o = f.check(ctx, false)
		if err == nil && len(o.lost)+len(o.duplicated)+len(o.diverged) == 0 {
			row.Notes = append(row.Notes, fmt.Sprintf("every phone converged %s after the workload ended", secs(time.Since(start))))
			break
		}
		if time.Since(start) > convergeWithin {
			if err != nil {
				row.Notes = append(row.Notes, err.Error())
			}
			row.Notes = append(row.Notes, fmt.Sprintf("%sthe phones had not converged %s after the workload ended", failed, secs(time.Since(start))))
			break
		}
		time.Sleep(5 * time.Second)
	}
	o = f.check(ctx, true)
	row.Phones = len(f.phones)
	row.Syncs, row.FailedSyncs, row.Batches, _ = f.stats()
	row.Changes, row.Photos = o.changes, o.photos
	row.Lost, row.Duplicated, row.Diverged = len(o.lost), len(o.duplicated), len(o.diverged)
	row.RecoveryP50, row.RecoveryMax = recoveryStats(recs)
	for _, list := range [][]string{o.lost, o.duplicated, o.diverged, f.errs} {
		for i, d := range list {
			if i == 5 {
				row.Details = append(row.Details, fmt.Sprintf("… and %d more", len(list)-5))
				break
			}
			row.Details = append(row.Details, d)
		}
	}
	if row.Lost == 0 && row.Duplicated == 0 && row.Diverged == 0 && len(f.errs) == 0 && !hasFailure(row.Notes) {
		row.Result = "pass"
	} else {
		row.Result = "FAIL"
	}
	return row
}

// failed marks a note as a failure of the scenario.
const failed = "FAILED: "

func hasFailure(notes []string) bool {
	for _, n := range notes {
		if strings.HasPrefix(n, failed) || strings.Contains(n, "did not sync") {
			return true
		}
	}
	return false
}

// ---------------------------------------------------------------- kill

// kill: fieldsyncd SIGKILLed at random points of the phones' push
// batches, and restarted at once (as systemd would), until the phones
// have made cfg.batches rounds, each ending in a push.
func (s *suite) kill(t *testing.T) Row {
	dir := t.TempDir()
	b := s.backend(t, "kill")
	d := s.fieldsyncd(t, dir, "fieldsyncd", s.cfg.port(offKill), b)
	const phones = 5
	f := newFleet(t, d.url(), b.adminToken, phones, s.cfg.seed, nil)
	pushing := make(chan struct{}, 1)
	for _, p := range f.phones {
		p.Faulty.Fault = func(_ int, step string) mobiletest.Mode {
			if step == mobiletest.StepPush {
				select {
				case pushing <- struct{}{}:
				default:
				}
			}
			return mobiletest.Pass
		}
	}
	ctx, cancel := context.WithCancel(t.Context())
	var kills []time.Time
	done := make(chan struct{})
	go func() {
		defer close(done)
		rng := rand.New(rand.NewPCG(s.cfg.seed, 99))
		for {
			select {
			case <-ctx.Done():
				return
			case <-pushing:
			}
			// A random point of the push: before the request leaves,
			// while the server applies it, or after it answered.
			time.Sleep(time.Duration(rng.IntN(150)) * time.Millisecond)
			if ctx.Err() != nil {
				return
			}
			kills = append(kills, time.Now())
			d.kill()
			if err := s.restart(ctx, d); err != nil {
				if ctx.Err() == nil {
					f.fail("restart after kill %d: %v", len(kills), err)
				}
				return
			}
			// Let a few batches through before the next kill.
			time.Sleep(300*time.Millisecond + time.Duration(rng.IntN(1200))*time.Millisecond)
			select {
			case <-pushing:
			default:
			}
		}
	}()
	f.run(ctx, (s.cfg.batches+phones-1)/phones)
	cancel()
	<-done
	if d.pid() == 0 {
		if err := s.restart(t.Context(), d); err != nil {
			t.Fatal(err)
		}
	}
	var recs []time.Duration
	for _, k := range kills {
		if r, ok := f.recovery(k, k); ok {
			recs = append(recs, r)
		}
	}
	row := Row{Fault: "SIGKILL fieldsyncd during a push, restart at once", Times: len(kills)}
	row = s.finish(t, f, row, recs)
	row.Notes = append(row.Notes, fmt.Sprintf("%d rounds of work, each ending in a push, from %d phones editing 1 school's hazards at once", f.rounds.Load(), phones))
	if len(kills) == 0 {
		row.Result, row.Notes = "FAIL", append(row.Notes, failed+"no kill happened")
	}
	return row
}

// ---------------------------------------------------------------- replicas

// replicas: n fieldsyncd processes on one database and bucket behind
// HAProxy (round robin); under load, one is SIGKILLed, stays down 4 s,
// and is started again.
func (s *suite) replicas(t *testing.T, n int) Row {
	dir := t.TempDir()
	b := s.backend(t, fmt.Sprintf("replicas%d", n))
	var ds []*daemon
	var addrs []string
	for i := range n {
		d := s.fieldsyncd(t, dir, fmt.Sprintf("fieldsyncd%d", i), s.cfg.port(offReplicas+1+i), b)
		ds = append(ds, d)
		addrs = append(addrs, d.addr)
	}
	port := s.cfg.port(offReplicas)
	s.haproxy(t, dir, "haproxy", port, "/readyz", addrs)
	url := "http://127.0.0.1:" + strconv.Itoa(port)
	f := newFleet(t, url, b.adminToken, 6, s.cfg.seed, nil)
	ctx := t.Context()
	var down, up time.Time
	var wg sync.WaitGroup
	wg.Go(func() {
		f.waitRounds(ctx, 20)
		down = time.Now()
		ds[n-1].kill()
		time.Sleep(4 * time.Second)
		if err := s.restart(ctx, ds[n-1]); err != nil {
			f.fail("restart replica: %v", err)
		}
		up = time.Now()
		f.waitRounds(ctx, f.rounds.Load()+20)
		f.stop.Store(true)
	})
	f.run(ctx, 60)
	f.stop.Store(true)
	wg.Wait()
	row := Row{Fault: fmt.Sprintf("SIGKILL 1 of %d replicas behind HAProxy, 4 s down, restart", n), Times: 1}
	var recs []time.Duration
	if r, ok := f.recovery(down, down); ok {
		recs = append(recs, r)
	}
	failedDuring := f.failedBetween(down, up.Add(time.Second))
	row = s.finish(t, f, row, recs)
	row.Notes = append(row.Notes, fmt.Sprintf("%d syncs failed while the replica was down (phones retried them)", failedDuring))
	return row
}

// ---------------------------------------------------------------- FerretDB, PostgreSQL

// restartStore: under load, the stack's FerretDB (or PostgreSQL, under
// FerretDB) is stopped, stays down 5 s and is started again; fieldsyncd
// is not restarted and must serve again on its own.
func (s *suite) restartStore(t *testing.T, name, label string, off int) Row {
	dir := t.TempDir()
	b := s.backend(t, name)
	d := s.fieldsyncd(t, dir, "fieldsyncd", s.cfg.port(off), b)
	pid := d.pid()
	f := newFleet(t, d.url(), b.adminToken, 4, s.cfg.seed, nil)
	ctx := t.Context()
	var down, up, ready time.Time
	var wg sync.WaitGroup
	wg.Go(func() {
		defer f.stop.Store(true)
		f.waitRounds(ctx, 12)
		if err := s.stack(ctx, "stop", name); err != nil {
			f.fail("%v", err)
			return
		}
		down = time.Now() // the server has exited
		time.Sleep(5 * time.Second)
		if err := s.stack(ctx, "start", name); err != nil {
			f.fail("%v", err)
			return
		}
		up = time.Now()
		if err := waitHTTP(ctx, d.proc, d.url()+"/readyz", 200, 2*time.Minute); err != nil {
			f.fail("fieldsyncd not ready after %s came back: %v", label, err)
			return
		}
		ready = time.Now()
		f.waitRounds(ctx, f.rounds.Load()+16)
	})
	f.run(ctx, 80)
	f.stop.Store(true)
	wg.Wait()
	row := Row{Fault: fmt.Sprintf("stop %s for 5 s mid-sync, start it again; fieldsyncd keeps running", label), Times: 1}
	var recs []time.Duration
	if r, ok := f.recovery(down, up); ok {
		recs = append(recs, r)
	}
	row = s.finish(t, f, row, recs)
	if d.pid() != pid {
		row.Notes = append(row.Notes, failed+"fieldsyncd exited (it must recover without a restart)")
		row.Result = "FAIL"
	}
	if !ready.IsZero() {
		row.Notes = append(row.Notes, fmt.Sprintf("fieldsyncd /readyz answered 200 again %s after %s was started; %d syncs failed meanwhile and were retried",
			secs(ready.Sub(up)), label, f.failedBetween(down, ready)))
	}
	return row
}

// ---------------------------------------------------------------- MinIO stopped

// minioStop: under load with photos, the stack's MinIO is stopped for
// cfg.outage; records must go on being accepted, and every photo must be
// complete after MinIO is back.
func (s *suite) minioStop(t *testing.T) Row {
	dir := t.TempDir()
	b := s.backend(t, "minio-stop")
	d := s.fieldsyncd(t, dir, "fieldsyncd", s.cfg.port(offMinioStop), b)
	f := newFleet(t, d.url(), b.adminToken, 4, s.cfg.seed, nil)
	f.photoEvery, f.photoMin, f.photoMax = 2, 200, 400
	ctx := t.Context()
	var down, up time.Time
	var wg sync.WaitGroup
	wg.Go(func() {
		defer f.stop.Store(true)
		f.waitRounds(ctx, 8)
		if err := s.stack(ctx, "stop", "minio"); err != nil {
			f.fail("%v", err)
			return
		}
		down = time.Now() // MinIO has exited
		time.Sleep(s.cfg.outage)
		if err := s.stack(ctx, "start", "minio"); err != nil {
			f.fail("%v", err)
			return
		}
		up = time.Now()
		f.waitRounds(ctx, f.rounds.Load()+12)
	})
	f.run(ctx, 400)
	f.stop.Store(true)
	wg.Wait()
	row := Row{Fault: fmt.Sprintf("stop MinIO for %s mid-upload, start it again", s.cfg.outage), Times: 1}
	var recs []time.Duration
	// Syncs without a photo to send succeed while MinIO is down: recovery
	// counts from MinIO's start to the first sync that uploaded one.
	if r, ok := f.recoveryOf(down, up, func(a attempt) bool { return a.photos > 0 }); ok {
		recs = append(recs, r)
	}
	accepted := f.ackedBetween(down, up)
	row = s.finish(t, f, row, recs)
	if accepted == 0 {
		row.Notes = append(row.Notes, failed+"no change was accepted while MinIO was down")
	} else {
		row.Notes = append(row.Notes, fmt.Sprintf("%d changes were accepted while MinIO was down; their photos completed after it came back", accepted))
	}
	if hasFailure(row.Notes) {
		row.Result = "FAIL"
	}
	return row
}

// ---------------------------------------------------------------- distributed MinIO

// minioDist: MinIO in distributed mode (4 nodes, one drive each, erasure
// coded) behind HAProxy; during uploads and reads one node is SIGKILLed,
// stays down 15 s and is started again. Every photo must stay readable
// with its sha256, also with a node down at the end.
func (s *suite) minioDist(t *testing.T) Row {
	dir := t.TempDir()
	key, secret := "faults", "faults-"+uuid.NewString()
	ports := []int{s.cfg.port(offDist + 2), s.cfg.port(offDist + 3), s.cfg.port(offDist + 4), s.cfg.port(offDist + 5)}
	cl := s.distributed(t, dir, ports, key, secret)
	pport := s.cfg.port(offDist)
	s.haproxy(t, dir, "haproxy-minio", pport, "/minio/health/live", cl.addrs)
	proxy := net.JoinHostPort("127.0.0.1", strconv.Itoa(pport))
	b := s.backend(t, "minio-dist")
	b.minio, b.key, b.secret, b.public = proxy, key, secret, proxy
	d := s.fieldsyncd(t, dir, "fieldsyncd", s.cfg.port(offDist+1), b)
	f := newFleet(t, d.url(), b.adminToken, 4, s.cfg.seed, nil)
	f.photoEvery, f.photoMin, f.photoMax = 2, 300, 700 // 100–500 KB: erasure coded in parts, uploaded in chunks
	ctx := t.Context()

	var reads, readFails, corrupt atomic.Int64
	var wg sync.WaitGroup
	wg.Go(func() { // a reader of photos already uploaded
		rng := rand.New(rand.NewPCG(s.cfg.seed, 7))
		for !f.stop.Load() && ctx.Err() == nil {
			done := f.donePhotos()
			if len(done) == 0 {
				time.Sleep(100 * time.Millisecond)
				continue
			}
			reads.Add(1)
			if err := f.fetchPhoto(ctx, done[rng.IntN(len(done))]); err != nil {
				readFails.Add(1)
				if strings.Contains(err.Error(), errCorrupt.Error()) {
					corrupt.Add(1)
				}
			}
		}
	})
	var down, up time.Time
	victim := 2
	wg.Go(func() {
		defer f.stop.Store(true)
		f.waitRounds(ctx, 8)
		down = time.Now()
		cl.nodes[victim].kill()
		time.Sleep(15 * time.Second)
		if err := cl.nodes[victim].start(); err != nil {
			f.fail("restart MinIO node: %v", err)
			return
		}
		if err := waitHTTP(ctx, cl.nodes[victim], "http://"+cl.addrs[victim]+"/minio/health/live", 200, time.Minute); err != nil {
			f.fail("%v", err)
		}
		up = time.Now()
		f.waitRounds(ctx, f.rounds.Load()+8)
	})
	f.run(ctx, 400)
	f.stop.Store(true)
	wg.Wait()
	row := Row{Fault: "SIGKILL 1 of 4 distributed MinIO nodes for 15 s during uploads and reads", Times: 1}
	var recs []time.Duration
	if r, ok := f.recovery(down, down); ok {
		recs = append(recs, r)
	}
	row = s.finish(t, f, row, recs)
	row.Notes = append(row.Notes, fmt.Sprintf("MinIO: %s, behind HAProxy; node %d was down %s", cl.how, victim, secs(up.Sub(down))))
	row.Notes = append(row.Notes, fmt.Sprintf("%d photo reads (presigned links through the proxy) during the run, %d failed in flight (a reader retries those), %d with wrong bytes", reads.Load(), readFails.Load(), corrupt.Load()))
	if corrupt.Load() > 0 {
		row.Notes = append(row.Notes, failed+"a photo was read with wrong bytes")
		row.Result = "FAIL"
	}
	// Every photo once more with another node down.
	cl.nodes[1].kill()
	bad := 0
	for _, sha := range f.donePhotos() {
		if err := f.verifyPhoto(ctx, sha); err != nil {
			bad++
			if bad <= 3 {
				row.Details = append(row.Details, fmt.Sprintf("photo %s with node 1 down: %v", sha, err))
			}
		}
	}
	row.Notes = append(row.Notes, fmt.Sprintf("with node 1 down at the end, %d of %d photos read back with the right sha256", row.Photos-bad, row.Photos))
	if bad > 0 {
		row.Lost += bad
		row.Result = "FAIL"
	}
	return row
}

// ---------------------------------------------------------------- a full disk

// statusCounter counts the statuses of photo uploads the phones get.
type statusCounter struct {
	next http.RoundTripper
	mu   sync.Mutex
	n    map[int]int
}

func (c *statusCounter) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := c.next.RoundTrip(req)
	if err == nil && strings.HasPrefix(req.URL.Path, "/v1/blobs/") && req.Method != http.MethodGet {
		c.mu.Lock()
		c.n[resp.StatusCode]++
		c.mu.Unlock()
	}
	return resp, err
}

func (c *statusCounter) get(code int) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n[code]
}

// diskFull: MinIO on a filesystem of 64 MiB, filled with a ballast file
// until about 8 MiB are free; phones upload photos until MinIO refuses
// them, then the ballast goes and the photos must complete. Refusals must
// be 503 (from MinIO's 507), never 500, and no photo may be visible
// before it is whole.
func (s *suite) diskFull(t *testing.T) Row {
	dir := t.TempDir()
	mnt := filepath.Join(dir, "disk")
	how, err := smallDisk(t, mnt, 64<<20)
	if err != nil {
		return Row{Fault: "fill MinIO's disk", Result: "not run",
			Notes: []string{"no small filesystem could be mounted (the scenario needs root, or CAP_SYS_ADMIN, for a tmpfs or a loop device): " + err.Error()}}
	}
	key, secret := "faults", "faults-"+uuid.NewString()
	port := s.cfg.port(offDiskFull + 1)
	requireFree(t, "127.0.0.1", port)
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	m := newProc(t, dir, "minio", minioEnv(key, secret), s.cfg.minio, "server", "--quiet", "--address", addr, filepath.Join(mnt, "data"))
	if err := m.start(); err != nil {
		t.Fatal(err)
	}
	if err := waitHTTP(t.Context(), m, "http://"+addr+"/minio/health/ready", 200, time.Minute); err != nil {
		t.Fatal(err)
	}
	b := s.backend(t, "disk-full")
	b.minio, b.key, b.secret = addr, key, secret
	d := s.fieldsyncd(t, dir, "fieldsyncd", s.cfg.port(offDiskFull), b)
	ballast := filepath.Join(mnt, "ballast")
	if err := fill(ballast, 8<<20); err != nil {
		t.Fatal(err)
	}
	counter := &statusCounter{next: http.DefaultTransport, n: map[int]int{}}
	f := newFleet(t, d.url(), b.adminToken, 3, s.cfg.seed, &http.Client{Timeout: 30 * time.Second, Transport: counter})
	f.photoEvery, f.photoMin, f.photoMax = 2, 500, 800 // 300–600 KB each
	ctx := t.Context()
	var up time.Time
	var halfVisible []string
	var wg sync.WaitGroup
	wg.Go(func() {
		defer f.stop.Store(true)
		deadline := time.Now().Add(3 * time.Minute)
		for counter.get(http.StatusServiceUnavailable)+counter.get(http.StatusInsufficientStorage) < 6 && time.Now().Before(deadline) && !f.stop.Load() {
			time.Sleep(100 * time.Millisecond)
		}
		// While full: a photo the phone has not finished must not be
		// complete on the server, or if it is, whole.
		for _, p := range f.phones {
			photos, _ := p.E.Photos()
			for _, ph := range photos {
				if ph.State == mobile.PhotoDone {
					continue
				}
				st, err := p.Faulty.T.BlobStatus(ctx, ph.SHA256)
				if err == nil && st.State == mobile.BlobComplete {
					if err := f.fetchPhoto(ctx, ph.SHA256); err != nil {
						halfVisible = append(halfVisible, fmt.Sprintf("photo %s is complete on the server but reads %v", ph.SHA256, err))
					}
				}
			}
		}
		os.Remove(ballast)
		up = time.Now()
		f.waitRounds(ctx, f.rounds.Load()+9)
	})
	f.run(ctx, 400)
	f.stop.Store(true)
	wg.Wait()
	refused := counter.get(http.StatusServiceUnavailable) + counter.get(http.StatusInsufficientStorage)
	row := Row{Fault: "MinIO's disk filled to the last 8 MiB, then freed", Times: 1}
	var recs []time.Duration
	if !up.IsZero() {
		if r, ok := f.recoveryOf(up, up, func(a attempt) bool { return a.photos > 0 }); ok {
			recs = append(recs, r)
		}
	}
	row = s.finish(t, f, row, recs)
	row.Notes = append(row.Notes, fmt.Sprintf("disk: %s; uploads refused with 503: %d, 507: %d, 500: %d",
		how, counter.get(http.StatusServiceUnavailable), counter.get(http.StatusInsufficientStorage), counter.get(http.StatusInternalServerError)))
	switch {
	case refused == 0:
		row.Notes = append(row.Notes, failed+"the disk never refused an upload: the fault was not exercised")
	case counter.get(http.StatusInternalServerError) > 0:
		row.Notes = append(row.Notes, failed+"some uploads got 500 instead of 503/507")
		if line := firstError(d.log); line != "" {
			row.Notes = append(row.Notes, "fieldsyncd logged: "+line)
		}
	}
	for _, h := range halfVisible {
		row.Notes = append(row.Notes, failed+h)
	}
	if hasFailure(row.Notes) {
		row.Result = "FAIL"
	}
	return row
}

// firstError returns the first line of a log file logged at level ERROR,
// from its error on, cut to 1500 bytes, or "".
func firstError(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	for line := range strings.Lines(string(b)) {
		if strings.Contains(line, "ERROR") {
			return strings.TrimSpace(line[max(0, strings.Index(line, `"error"`)):min(len(line), 1500)])
		}
	}
	return ""
}
