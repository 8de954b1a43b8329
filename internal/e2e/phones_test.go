package e2e

import (
	"encoding/binary"
	"flag"
	"fmt"
	"math/rand/v2"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fieldsync/fieldsync/internal/testenv"
	"github.com/fieldsync/fieldsync/mobile"
	"github.com/fieldsync/fieldsync/mobile/mobiletest"
	"github.com/fieldsync/fieldsync/server"
	"github.com/fieldsync/fieldsync/server/api"
	"github.com/fieldsync/fieldsync/server/media"
	"github.com/fieldsync/fieldsync/server/media/mediatest"
	"github.com/fieldsync/fieldsync/server/memstore"
	"github.com/google/uuid"
)

var (
	seedFlag  = flag.Uint64("seed", 0, "seed of the simulation (0: from the clock)")
	simSteps  = flag.Int("sim.steps", 200, "steps of the simulation")
	simPhones = flag.Int("sim.phones", 4, "phones in the simulation")
)

// endpoint is a server the phones reach: its URL and admin token.
type endpoint = testenv.Server

// startServer runs fieldsyncd on its own database of the test FerretDB and
// the test MinIO bucket, until the test ends.
func startServer(t *testing.T) *endpoint { return testenv.Fieldsyncd(t, 1)[0] }

// startServers runs n fieldsyncd processes on one database of their own,
// as replicas behind a proxy would run, until the test ends.
func startServers(t *testing.T, n int) []*endpoint { return testenv.Fieldsyncd(t, n) }

// startInProcess runs the server's services and HTTP layer in this
// process, wired as fieldsyncd wires them (server/cmd/fieldsyncd/wire.go)
// but on the in-memory stores (server/memstore, mediatest), with the
// simulation's clock and ids: a run of the simulation on it replays from
// the seed alone.
func startInProcess(t *testing.T, s *mobiletest.Sim, seed uint64) *endpoint {
	logger := testenv.Logger(t)
	data := memstore.NewData()
	data.NewID = s.IDs.New
	syncStore := memstore.NewSyncStore(data)
	syncStore.Now = s.Clock.Now
	devices := server.NewDevices(memstore.NewDeviceStore())
	var key [32]byte
	binary.LittleEndian.PutUint64(key[:], seed)
	devices.Now, devices.Rand = s.Clock.Now, rand.NewChaCha8(key)
	access := &server.Access{Assigned: devices.Assigned}
	med := media.New(mediatest.NewBlobs(), mediatest.NewMeta(), access, media.Config{Now: s.Clock.Now}, logger)
	syncer := server.NewSyncer(syncStore, s.IDs.New())
	syncer.Access = access
	syncer.Now, syncer.Logger = s.Clock.Now, logger
	syncer.Limits.ChunkBytes, syncer.Limits.MaxBlobSize = med.Limits()
	validator := server.NewFormValidator(syncer, devices.Today)
	validator.Now = s.Clock.Now
	syncer.Validator = validator
	syncer.Stored = med.ExpectRecords
	forms := server.NewForms(syncer, validator, syncer.Replica)
	forms.Now = s.Clock.Now
	srv := &endpoint{AdminToken: "e2e-admin"}
	h := api.NewServer(api.Config{AdminToken: srv.AdminToken}, api.Deps{Devices: devices, Sync: syncer, Forms: forms, Media: med}, logger)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go h.Serve(ln)
	t.Cleanup(func() { h.Shutdown(5 * time.Second) })
	srv.URL = "http://" + ln.Addr().String()
	return srv
}

// seed returns the seed of a simulation: -seed, or one from the clock.
func seed(t *testing.T) uint64 {
	seed := *seedFlag
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	t.Logf("seed %d (rerun with -run %s -seed=%d)", seed, t.Name(), seed)
	return seed
}

// TestPhonesConvergeOnRealServer runs the multi-phone simulation of
// mobiletest against fieldsyncd on FerretDB and MinIO: phones enroll
// through the admin API, edit shared hazards offline, add events and
// photos, sync in random order and are killed mid-sync. In the end every
// phone holds what an observer phone pulls from the server, nothing was
// rejected, no edit is lost, and every photo is complete on the server
// under its sha256.
func TestPhonesConvergeOnRealServer(t *testing.T) {
	if testing.Short() {
		t.Skip("simulation skipped in -short mode")
	}
	testenv.MongoURI(t) // skip before building fieldsyncd when there are no servers
	runPhones(t, seed(t), *simPhones, *simSteps, func(*mobiletest.Sim, uint64) *endpoint { return startServer(t) })
}

// TestPhonesConvergeInProcess runs the same simulation against the
// server's code in this process, on the in-memory stores: plain go test
// runs it, without servers.
func TestPhonesConvergeInProcess(t *testing.T) {
	if testing.Short() {
		t.Skip("simulation skipped in -short mode")
	}
	runPhones(t, seed(t), *simPhones, *simSteps, func(s *mobiletest.Sim, seed uint64) *endpoint { return startInProcess(t, s, seed) })
}

// TestInProcessReplaysFromSeed runs a short in-process simulation twice
// with one seed and checks that the runs' traces — every move, sync call
// and report of the phones, and the records the observer pulls in the
// end, server stamps included — are byte-identical.
func TestInProcessReplaysFromSeed(t *testing.T) {
	if testing.Short() {
		t.Skip("simulation skipped in -short mode")
	}
	seed := seed(t)
	var traces [2]string
	for i := range traces {
		t.Run(fmt.Sprint("run", i), func(t *testing.T) {
			traces[i] = runPhones(t, seed, 2, 40, func(s *mobiletest.Sim, seed uint64) *endpoint { return startInProcess(t, s, seed) })
		})
	}
	if t.Failed() {
		return
	}
	a, b := strings.Split(traces[0], "\n"), strings.Split(traces[1], "\n")
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			t.Fatalf("seed %d: the runs differ at trace line %d:\nfirst  %s\nsecond %s", seed, i+1, a[i], b[i])
		}
	}
	if len(a) != len(b) {
		t.Fatalf("seed %d: one trace is longer: %d and %d lines", seed, len(a), len(b))
	}
	if len(a) < 40 {
		t.Errorf("the trace has %d lines for 40 steps: the simulation did not run", len(a))
	}
}

// runPhones runs the simulation against the server start returns and
// checks the outcome (see TestPhonesConvergeOnRealServer). It returns the
// simulation's trace, ending with the records the observer pulled.
func runPhones(t *testing.T, seed uint64, nphones, steps int, start func(s *mobiletest.Sim, seed uint64) *endpoint) string {
	ctx := t.Context()
	school := "0192b000-0000-7000-8000-000000000103"
	s := mobiletest.NewSim(t, seed, school)
	srv := start(s, seed)
	// Assignments start a month before the simulation's clock, which is
	// in the past of a real server's: active on either server.
	admin := &mobiletest.Admin{URL: srv.URL, Token: srv.AdminToken, NewID: s.IDs.New, Now: s.Clock.Now}
	newPhone := func(name string) *mobiletest.Phone {
		_, code, err := admin.Inspector(ctx, "督学 "+name, []string{school})
		if err != nil {
			t.Fatal(err)
		}
		p := s.OpenPhone(name, filepath.Join(t.TempDir(), name+".db"), mobile.Options{NoSync: true})
		if _, err := p.E.Enroll(ctx, srv.URL, code, name); err != nil {
			t.Fatalf("%s: enroll: %v", name, err)
		}
		return p
	}
	observer := newPhone("observer")
	s.Phones = nil // the observer only pulls at the end
	var phones []*mobiletest.Phone
	for i := range nphones {
		phones = append(phones, newPhone(fmt.Sprintf("p%d", i)))
	}
	for i := range 3 {
		s.NewHazard(phones[0], fmt.Sprintf("共享隐患 %d", i))
	}
	for _, p := range phones {
		s.Sync(p)
	}
	for i := range steps {
		s.Step(i)
	}
	s.Settle()
	s.Sync(observer)
	want := mobiletest.RecordsOf(t, observer)
	mobiletest.CheckConverged(t, want, phones...)
	mobiletest.CheckNoEditLost(t, want, s.Edits, s.Items)
	for _, p := range phones {
		photos, _ := p.E.Photos()
		for _, ph := range photos {
			st, err := p.Faulty.T.BlobStatus(ctx, ph.SHA256)
			if err != nil || st.State != mobile.BlobComplete || (st.Size != 0 && st.Size != ph.Size) {
				t.Errorf("%s: photo %s on the server: %+v %v", p.Name, ph.SHA256, st, err)
			}
		}
	}
	if t.Failed() {
		t.Errorf("seed %d failed: rerun with -seed=%d -sim.phones=%d -sim.steps=%d", seed, seed, nphones, steps)
	}
	t.Logf("%d field edits, %d records", len(s.Edits), len(want))
	s.TraceRecords("observer", want)
	return s.Trace()
}

// TestConcurrentSyncsOnRealServer has phones edit one hazard's description
// round after round and sync at the same moment, through one fieldsyncd
// and through two on one database (phones alternate between them): no
// acknowledged edit may be lost, and every phone must end with the
// server's state.
func TestConcurrentSyncsOnRealServer(t *testing.T) {
	if testing.Short() {
		t.Skip("skipped in -short mode")
	}
	for _, n := range []int{1, 2} {
		t.Run(fmt.Sprintf("servers=%d", n), func(t *testing.T) {
			srvs := startServers(t, n)
			ctx := t.Context()
			admin := &mobiletest.Admin{URL: srvs[0].URL, Token: srvs[0].AdminToken}
			school := uuid.NewString()
			newPhone := func(name string, srv *endpoint) *mobiletest.Phone {
				_, code, err := admin.Inspector(ctx, "督学 "+name, []string{school})
				if err != nil {
					t.Fatal(err)
				}
				p := mobiletest.OpenPhone(t, name, filepath.Join(t.TempDir(), name+".db"), mobile.Options{Validator: mobile.FormsValidator(nil), NoSync: true})
				if _, err := p.E.Enroll(ctx, srv.URL, code, name); err != nil {
					t.Fatalf("%s: enroll: %v", name, err)
				}
				return p
			}
			var phones []*mobiletest.Phone
			for i := range 4 {
				phones = append(phones, newPhone(fmt.Sprintf("p%d", i), srvs[i%n]))
			}
			observer := newPhone("observer", srvs[0])
			s := mobiletest.NewSim(t, 1, school)
			s.Phones = phones
			h := s.NewHazard(phones[0], "宿舍电线裸露")
			for _, p := range phones {
				p.Sync(t)
			}
			for round := range 8 {
				for i, p := range phones {
					s.Set(p, h.ID, "description", fmt.Sprintf("第%d轮复查（%s）：仍未整改", round, p.Name))
					if i%2 == 0 {
						s.Set(p, h.ID, "location_desc", fmt.Sprintf("宿舍%d楼", round+i))
					}
				}
				errs := make([]error, len(phones))
				start := make(chan struct{})
				var wg sync.WaitGroup
				for i, p := range phones {
					wg.Add(1)
					go func() {
						defer wg.Done()
						<-start
						_, errs[i] = p.E.Sync(ctx, nil)
					}()
				}
				close(start)
				wg.Wait()
				for i, err := range errs {
					if err != nil {
						t.Fatalf("round %d: %s: sync: %v", round, phones[i].Name, err)
					}
				}
			}
			s.Settle()
			observer.Sync(t)
			want := mobiletest.RecordsOf(t, observer)
			mobiletest.CheckConverged(t, want, phones...)
			mobiletest.CheckNoEditLost(t, want, s.Edits, s.Items)
			t.Logf("%d edits by %d phones through %d servers, hazard at rev %d", len(s.Edits), len(phones), n, want[h.ID].Rev)
		})
	}
}
