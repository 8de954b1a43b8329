package e2e

import (
	"flag"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/fieldsync/fieldsync/internal/testenv"
	"github.com/fieldsync/fieldsync/mobile"
	"github.com/fieldsync/fieldsync/mobile/mobiletest"
	"github.com/google/uuid"
)

var (
	seedFlag  = flag.Uint64("seed", 0, "seed of the simulation (0: from the clock)")
	simSteps  = flag.Int("sim.steps", 200, "steps of the simulation")
	simPhones = flag.Int("sim.phones", 4, "phones in the simulation")
)

// server is a fieldsyncd subprocess on the test stack.
type server = testenv.Server

// startServer runs fieldsyncd on its own database of the test FerretDB and
// the test MinIO bucket, until the test ends.
func startServer(t *testing.T) *server { return testenv.Fieldsyncd(t, 1)[0] }

// startServers runs n fieldsyncd processes on one database of their own,
// as replicas behind a proxy would run, until the test ends.
func startServers(t *testing.T, n int) []*server { return testenv.Fieldsyncd(t, n) }

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
	srv := startServer(t)
	ctx := t.Context()
	admin := &mobiletest.Admin{URL: srv.URL, Token: srv.AdminToken}
	school := uuid.NewString()
	seed := *seedFlag
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	t.Logf("seed %d (rerun with -seed=%d)", seed, seed)

	newPhone := func(name string) *mobiletest.Phone {
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
	observer := newPhone("observer")
	var phones []*mobiletest.Phone
	for i := range *simPhones {
		phones = append(phones, newPhone(fmt.Sprintf("p%d", i)))
	}
	s := mobiletest.NewSim(t, seed, school, phones)
	for i := range 3 {
		s.NewHazard(phones[0], fmt.Sprintf("共享隐患 %d", i))
	}
	for _, p := range phones {
		p.Sync(t)
	}
	for i := range *simSteps {
		s.Step(i)
	}
	s.Settle()
	observer.Sync(t)
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
	t.Logf("%d field edits, %d records", len(s.Edits), len(want))
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
			newPhone := func(name string, srv *server) *mobiletest.Phone {
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
			s := mobiletest.NewSim(t, 1, school, phones)
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
