package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/fieldsync/fieldsync/client"
	"github.com/fieldsync/fieldsync/internal/testenv"
	servermongo "github.com/fieldsync/fieldsync/server/mongo"
	"github.com/fieldsync/fieldsync/syncproto"
)

// TestSyncTwoProcessesKill is the end-to-end check of the sync engine: two
// fieldsyncd processes on one database, 8 phones pushing batches through
// either, 4 phones pulling from either, and one process killed with
// SIGKILL mid-run and started again. A phone whose request fails sends the
// same batch again to the other process, as the phone engine does. In the
// end every puller holds exactly every record at its final version, the
// log holds every revision of every record once and nothing else, a batch
// sent again gets the same answer, and an op id reused with other content
// is refused.
//
// It waits for the lease (60 s in fieldsyncd) after the kill: the killed
// process leaves allocated but unwritten slots that pullers fill only then.
func TestSyncTwoProcessesKill(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process test skipped in -short mode")
	}
	const (
		pushers    = 8
		pullers    = 4
		batches    = 12
		newPer     = 20
		editsPer   = 5
		waitCaught = 6 * time.Minute // a failure bound, not a measurement
	)
	env := startProcesses(t)
	ctx := t.Context()
	schools := []string{uuid.Must(uuid.NewV7()).String(), uuid.Must(uuid.NewV7()).String()}

	newDevice := func(name string) *device {
		d, err := env.enroll(ctx, name, schools)
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	var pushDevs, pullDevs []*device
	for i := range pushers {
		pushDevs = append(pushDevs, newDevice(fmt.Sprintf("pusher %d", i)))
	}
	for i := range pullers {
		pullDevs = append(pullDevs, newDevice(fmt.Sprintf("puller %d", i)))
	}

	var mu sync.Mutex
	final := map[uuid.UUID]int64{} // record → highest revision reported by a push
	ops := map[uuid.UUID]bool{}
	var errList []error
	report := func(err error) {
		mu.Lock()
		defer mu.Unlock()
		errList = append(errList, err)
	}
	var batchesDone atomic.Int64

	var pushing sync.WaitGroup
	for p, dev := range pushDevs {
		pushing.Add(1)
		go func() {
			defer pushing.Done()
			rng := rand.New(rand.NewPCG(uint64(p), 3))
			w := &syncproto.Writer{Replica: dev.id, Author: dev.user}
			local := map[uuid.UUID]*syncproto.Record{}
			var mine []uuid.UUID
			for b := range batches {
				req := syncproto.PushRequest{Protocol: syncproto.ProtocolVersion, DeviceID: dev.id, BatchID: uuid.Must(uuid.NewV7())}
				for i := range newPer {
					r := &syncproto.Record{ID: uuid.Must(uuid.NewV7()), Kind: "visit", SchoolID: schools[rng.IntN(2)], CreatedAt: time.Now().UTC().Truncate(time.Second), CreatedBy: dev.user}
					w.Now = time.Now()
					next, delta := syncproto.Set(r, "theme", jsonValue(fmt.Sprintf("p%d b%d r%d", p, b, i)), w)
					local[r.ID] = next
					mine = append(mine, r.ID)
					req.Changes = append(req.Changes, syncproto.Change{OpID: uuid.Must(uuid.NewV7()), Record: delta})
				}
				edited := map[uuid.UUID]bool{}
				for prev := len(mine) - newPer; prev > 0 && len(edited) < editsPer; {
					id := mine[rng.IntN(prev)] // a record pushed before
					if edited[id] {
						continue
					}
					edited[id] = true
					w.Now = time.Now()
					base := local[id].Version()
					next, delta := syncproto.Set(local[id], "note", jsonValue(fmt.Sprintf("edit p%d b%d", p, b)), w)
					local[id] = next
					req.Changes = append(req.Changes, syncproto.Change{OpID: uuid.Must(uuid.NewV7()), Record: delta, Base: base})
				}
				body, err := syncproto.Marshal(req)
				if err != nil {
					report(err)
					return
				}
				resp, err := env.push(ctx, dev, body, p+b)
				if err != nil {
					report(fmt.Errorf("pusher %d batch %d: %w", p, b, err))
					return
				}
				mu.Lock()
				for i, res := range resp.Results {
					ops[req.Changes[i].OpID] = true
					switch res.Status {
					case syncproto.StatusApplied, syncproto.StatusDuplicate:
						final[req.Changes[i].Record.ID] = max(final[req.Changes[i].Record.ID], res.Rev)
					default:
						errList = append(errList, fmt.Errorf("pusher %d batch %d change %d: %s %+v", p, b, i, res.Status, res.Error))
					}
				}
				mu.Unlock()
				if b%4 == 3 {
					// The same batch again, to the other process: the same
					// answer, and nothing written.
					again, err := env.push(ctx, dev, body, p+b+1)
					if err != nil {
						report(fmt.Errorf("pusher %d batch %d again: %w", p, b, err))
						return
					}
					if !sameResults(again.Results, resp.Results) {
						report(fmt.Errorf("pusher %d batch %d sent again: %+v, first %+v", p, b, again.Results, resp.Results))
					}
				}
				batchesDone.Add(1)
			}
		}()
	}

	// Kill process 1 once a third of the batches are in, while the rest
	// are being pushed, and start it again.
	killed := make(chan struct{})
	go func() {
		defer close(killed)
		for batchesDone.Load() < pushers*batches/3 {
			select {
			case <-ctx.Done():
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
		env.kill(t, 1)
		time.Sleep(500 * time.Millisecond)
		env.start(t, 1)
	}()

	var pushed atomic.Bool
	held := make([]map[uuid.UUID]*syncproto.Record, pullers)
	var pulling sync.WaitGroup
	for k, dev := range pullDevs {
		held[k] = map[uuid.UUID]*syncproto.Record{}
		pulling.Add(1)
		go func() {
			defer pulling.Done()
			rng := rand.New(rand.NewPCG(uint64(k), 9))
			cur := ""
			deadline := time.Now().Add(waitCaught)
			for i := 0; ; i++ {
				resp, err := env.pull(ctx, dev, cur, 50+rng.IntN(250), i+k)
				if err != nil {
					report(fmt.Errorf("puller %d: %w", k, err))
					return
				}
				for _, r := range resp.Records {
					m, err := syncproto.Merge(held[k][r.ID], r)
					if err != nil {
						report(fmt.Errorf("puller %d: %w", k, err))
						return
					}
					held[k][r.ID] = m
				}
				cur = resp.Cursor
				if resp.More {
					continue
				}
				if pushed.Load() && caughtUp(held[k], final, &mu) {
					return
				}
				if time.Now().After(deadline) {
					report(fmt.Errorf("puller %d did not catch up in %v", k, waitCaught))
					return
				}
				time.Sleep(200 * time.Millisecond)
			}
		}()
	}
	pushing.Wait()
	<-killed
	pushed.Store(true)
	pulling.Wait()
	for _, err := range errList {
		t.Error(err)
	}
	if t.Failed() {
		return
	}

	// A fresh phone pulls everything: the truth to compare with.
	fresh := newDevice("observer")
	truth := map[uuid.UUID]*syncproto.Record{}
	for cur, i := "", 0; ; i++ {
		resp, err := env.pull(ctx, fresh, cur, 1000, i)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range resp.Records {
			m, _ := syncproto.Merge(truth[r.ID], r)
			truth[r.ID] = m
		}
		if cur = resp.Cursor; !resp.More {
			break
		}
	}
	if len(truth) != len(final) {
		t.Errorf("the server holds %d records, the pushes created %d", len(truth), len(final))
	}
	for id, rev := range final {
		if truth[id] == nil || truth[id].Rev != rev {
			t.Errorf("record %s: server rev %v, pushes reported %d", id, truth[id], rev)
		}
	}
	for k := range pullers {
		if len(held[k]) != len(truth) {
			t.Errorf("puller %d holds %d records, want %d", k, len(held[k]), len(truth))
		}
		for id, r := range truth {
			if !r.Equal(held[k][id]) {
				t.Errorf("puller %d: record %s differs from the server's (rev %d)", k, id, r.Rev)
			}
		}
	}
	env.checkLog(t, schools, final, len(ops))

	// An op id reused with other content is refused.
	var some uuid.UUID
	for id := range final {
		some = id
		break
	}
	dev := pushDevs[0]
	w := &syncproto.Writer{Replica: dev.id, Author: dev.user, Now: time.Now()}
	_, delta := syncproto.Set(truth[some], "note", jsonValue("reused"), w)
	var reused uuid.UUID
	for op := range ops {
		reused = op
		break
	}
	body, _ := syncproto.Marshal(syncproto.PushRequest{Protocol: syncproto.ProtocolVersion, DeviceID: dev.id, BatchID: uuid.Must(uuid.NewV7()),
		Changes: []syncproto.Change{{OpID: reused, Record: delta}}})
	resp, err := env.push(ctx, dev, body, 0)
	if err != nil {
		t.Fatal(err)
	}
	if r := resp.Results[0]; r.Status != syncproto.StatusRejected || syncproto.ErrorCode(r.Error) != syncproto.EOPREUSED {
		t.Errorf("reused op id: %+v, want rejected with %s", r, syncproto.EOPREUSED)
	}
	t.Logf("%d records, %d ops, %d batches through two processes, one killed", len(final), len(ops), pushers*batches)
}

func jsonValue(s string) json.RawMessage {
	b, _ := json.Marshal(s)
	return b
}

func sameResults(a, b []syncproto.Result) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return bytes.Equal(x, y)
}

func caughtUp(held map[uuid.UUID]*syncproto.Record, final map[uuid.UUID]int64, mu *sync.Mutex) bool {
	mu.Lock()
	defer mu.Unlock()
	for id, rev := range final {
		if r := held[id]; r == nil || r.Rev < rev {
			return false
		}
	}
	return true
}

// procs is two fieldsyncd processes on one database.
type procs struct {
	bin, mongoURI, db, admin string
	env                      []string
	mu                       sync.Mutex
	addr                     [2]string
	cmd                      [2]*exec.Cmd
	logs                     [2]*os.File
	client                   *http.Client
}

type device struct {
	id          uuid.UUID
	user, token string
}

func startProcesses(t *testing.T) *procs {
	t.Helper()
	mongoURI := testenv.MongoURI(t)
	minio := testenv.MinioConfig(t)
	dir := t.TempDir()
	bin := filepath.Join(dir, "fieldsyncd")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/fieldsync/fieldsync/server/cmd/fieldsyncd").CombinedOutput(); err != nil {
		t.Fatalf("build fieldsyncd: %v\n%s", err, out)
	}
	p := &procs{bin: bin, mongoURI: mongoURI, db: testenv.Name(t, 60), admin: "kill-test-" + uuid.NewString(),
		client: &http.Client{Timeout: 2 * time.Minute}}
	p.env = append(os.Environ(),
		"FIELDSYNC_MONGO_URI="+mongoURI, "FIELDSYNC_MONGO_DB="+p.db,
		"FIELDSYNC_MINIO_ENDPOINT="+minio.Endpoint, "FIELDSYNC_MINIO_ACCESS_KEY="+minio.AccessKey,
		"FIELDSYNC_MINIO_SECRET_KEY="+minio.SecretKey, "FIELDSYNC_MINIO_BUCKET="+minio.Bucket,
		"FIELDSYNC_ADMIN_TOKEN="+p.admin, "FIELDSYNC_LOG_LEVEL=warn")
	for i := range 2 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		p.addr[i] = ln.Addr().String()
		ln.Close()
		f, err := os.Create(filepath.Join(dir, fmt.Sprintf("fieldsyncd-%d.log", i)))
		if err != nil {
			t.Fatal(err)
		}
		p.logs[i] = f
		p.start(t, i)
	}
	t.Cleanup(func() {
		for i := range 2 {
			p.mu.Lock()
			cmd := p.cmd[i]
			p.mu.Unlock()
			if cmd != nil && cmd.ProcessState == nil {
				_ = cmd.Process.Signal(os.Interrupt)
				done := make(chan struct{})
				go func() { _ = cmd.Wait(); close(done) }()
				select {
				case <-done:
				case <-time.After(20 * time.Second):
					_ = cmd.Process.Kill()
				}
			}
			if t.Failed() {
				b, _ := os.ReadFile(p.logs[i].Name())
				t.Logf("fieldsyncd %d log:\n%s", i, b)
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), testenv.CleanupTimeout)
		defer cancel()
		if c, err := mongo.Connect(options.Client().ApplyURI(mongoURI)); err == nil {
			_ = c.Database(p.db).Drop(ctx)
			_ = c.Disconnect(ctx)
		}
	})
	return p
}

// start starts process i and waits until it is ready.
func (p *procs) start(t *testing.T, i int) {
	cmd := exec.Command(p.bin)
	cmd.Env = append(p.env, "FIELDSYNC_ADDR="+p.addr[i])
	cmd.Stdout, cmd.Stderr = p.logs[i], p.logs[i]
	if err := cmd.Start(); err != nil {
		t.Error(err)
		return
	}
	p.mu.Lock()
	p.cmd[i] = cmd
	p.mu.Unlock()
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		resp, err := p.client.Get("http://" + p.addr[i] + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Errorf("fieldsyncd %d not ready after a minute", i)
}

// kill kills process i with SIGKILL.
func (p *procs) kill(t *testing.T, i int) {
	p.mu.Lock()
	cmd := p.cmd[i]
	p.mu.Unlock()
	if err := cmd.Process.Kill(); err != nil {
		t.Error(err)
	}
	_ = cmd.Wait()
	t.Logf("killed fieldsyncd %d (pid %d) with SIGKILL", i, cmd.Process.Pid)
}

// call runs op with a client of process i, and of the other one when i
// does not answer, until one answers with something else than a network
// error or 503 (or a proxy's 502), as a phone retries.
func (p *procs) call(token string, i int, op func(c *client.Client) error) error {
	var last error
	for attempt := range 40 {
		c := client.New("http://"+p.addr[(i+attempt)%2], token)
		c.Client = p.client
		err := op(c)
		var pe *syncproto.Error
		if err == nil || (errors.As(err, &pe) && pe.Code != syncproto.EUNAVAILABLE) {
			return err
		}
		last = err
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("no process answers: %w", last)
}

func (p *procs) push(ctx context.Context, d *device, body []byte, i int) (syncproto.PushResponse, error) {
	var resp syncproto.PushResponse
	err := p.call(d.token, i, func(c *client.Client) error {
		return c.Do(ctx, http.MethodPost, "/v1/sync/push", json.RawMessage(body), &resp)
	})
	return resp, err
}

func (p *procs) pull(ctx context.Context, d *device, cur string, limit, i int) (syncproto.PullResponse, error) {
	var resp *syncproto.PullResponse
	err := p.call(d.token, i, func(c *client.Client) (err error) {
		resp, err = c.Pull(ctx, &syncproto.PullRequest{Protocol: syncproto.ProtocolVersion, Cursor: cur, Limit: limit})
		return err
	})
	if err != nil {
		return syncproto.PullResponse{}, err
	}
	return *resp, nil
}

// enroll creates an inspector assigned to schools and enrolls a device
// for it through the admin API.
func (p *procs) enroll(ctx context.Context, name string, schools []string) (*device, error) {
	ins, user := uuid.Must(uuid.NewV7()).String(), uuid.Must(uuid.NewV7()).String()
	start := time.Now().AddDate(0, -1, 0).Format(time.DateOnly)
	var code client.EnrollmentCode
	err := p.call(p.admin, 0, func(c *client.Client) (err error) {
		code, err = c.NewInspector(ctx, ins, client.Inspector{UserID: user, Name: name, Roles: []string{"inspector"}}, schools, start,
			func(string) string { return uuid.Must(uuid.NewV7()).String() })
		return err
	})
	if err != nil {
		return nil, err
	}
	d := &device{id: uuid.Must(uuid.NewV7()), user: user}
	var enrolled client.EnrollResponse
	err = p.call("", 0, func(c *client.Client) (err error) {
		enrolled, err = c.Enroll(ctx, client.EnrollRequest{Code: code.Code, DeviceID: d.id, DeviceName: name})
		return err
	})
	if err != nil {
		return nil, err
	}
	d.token = enrolled.Token
	return d, nil
}

// checkLog reads the change logs with the driver: every record has every
// revision 1..final exactly once, and the op journal holds every op once.
func (p *procs) checkLog(t *testing.T, schools []string, final map[uuid.UUID]int64, nops int) {
	t.Helper()
	ctx := t.Context()
	c, err := mongo.Connect(options.Client().ApplyURI(p.mongoURI))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Disconnect(context.WithoutCancel(ctx))
	db := c.Database(p.db)
	revs := map[string]map[int64]int{}
	noops := 0
	cur, err := db.Collection(servermongo.LogCollection).Find(ctx, bson.D{}, options.Find().SetProjection(bson.D{{Key: "rid", Value: 1}, {Key: "rev", Value: 1}, {Key: "noop", Value: 1}}))
	if err != nil {
		t.Fatal(err)
	}
	var docs []struct {
		ID   string `bson:"_id"`
		RID  string `bson:"rid"`
		Rev  int64  `bson:"rev"`
		Noop bool   `bson:"noop"`
	}
	if err := cur.All(ctx, &docs); err != nil {
		t.Fatal(err)
	}
	for _, d := range docs {
		if !slices.ContainsFunc(schools, func(s string) bool { return strings.HasPrefix(d.ID, s+"/") }) {
			continue // not a log of these schools
		}
		if d.Noop {
			noops++
		}
		if d.RID == "" || d.Noop {
			continue
		}
		if revs[d.RID] == nil {
			revs[d.RID] = map[int64]int{}
		}
		revs[d.RID][d.Rev]++
	}
	t.Logf("the log holds %d no-ops (holes filled, mostly left by the killed process)", noops)
	if len(revs) != len(final) {
		t.Errorf("the log holds %d records, want %d", len(revs), len(final))
	}
	for id, last := range final {
		got := revs[id.String()]
		for r := int64(1); r <= last; r++ {
			if got[r] != 1 {
				t.Errorf("record %s revision %d is logged %d times, want once", id, r, got[r])
			}
		}
		if len(got) != int(last) {
			t.Errorf("record %s has %d revisions logged, want %d", id, len(got), last)
		}
	}
	n, err := db.Collection(servermongo.OpsCollection).CountDocuments(ctx, bson.D{})
	if err != nil {
		t.Fatal(err)
	}
	if n != int64(nops) {
		t.Errorf("the op journal holds %d ops, the phones sent %d", n, nops)
	}
	if !strings.HasPrefix(p.db, "t_") {
		t.Errorf("database %s is not a test database", p.db)
	}
}
