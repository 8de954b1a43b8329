package mobile_test

import (
	"flag"
	"fmt"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	"github.com/fieldsync/fieldsync/mobile"
	"github.com/fieldsync/fieldsync/mobile/mobiletest"
)

var (
	seedFlag  = flag.Uint64("seed", 0, "seed of the multi-phone simulation (0: from the clock)")
	simSteps  = flag.Int("sim.steps", 300, "steps of the multi-phone simulation")
	simPhones = flag.Int("sim.phones", 5, "phones in the multi-phone simulation")
)

// TestMultiPhoneSimulation runs mobiletest.Sim over the fake server
// through HTTP: phones enroll, edit shared hazards offline, append events,
// attach photos, resolve conflicts, sync in random order, one sync in
// three killed at a random call, while the office edits on the server.
// In the end every phone holds the server's records, no op was applied
// twice, every photo is on the server with its hash, and no edit is lost.
func TestMultiPhoneSimulation(t *testing.T) {
	if testing.Short() {
		t.Skip("simulation skipped in -short mode")
	}
	seed := *seedFlag
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	t.Logf("seed %d (rerun with -seed=%d)", seed, seed)
	srv := mobiletest.NewServer()
	srv.Limits.MaxChanges = 3
	srv.Limits.MaxPull = 4
	srv.Limits.ChunkBytes = 1 << 10
	hs := httptest.NewServer(srv.Handler())
	defer hs.Close()
	var phones []*mobiletest.Phone
	for i := range *simPhones {
		name := fmt.Sprintf("p%d", i)
		p := mobiletest.OpenPhone(t, name, filepath.Join(t.TempDir(), name+".db"), mobile.Options{Validator: mobile.FormsValidator(nil), NoSync: true})
		srv.AddCode("code-"+name, "user-"+name)
		if _, err := p.E.Enroll(t.Context(), hs.URL, "code-"+name, name); err != nil {
			t.Fatal(err)
		}
		phones = append(phones, p)
	}
	s := mobiletest.NewSim(t, seed, schoolA, phones)
	s.OfficeEdit = func(i int) (mobiletest.Edit, bool) {
		for id := range srv.Records() {
			if err := srv.Edit(id, "description", js(fmt.Sprintf("办公室备注 %d", i))); err != nil {
				t.Fatal(err)
			}
			return mobiletest.Edit{Record: id, Field: "description", V: srv.Records()[id].Fields["description"][0]}, true
		}
		return mobiletest.Edit{}, false
	}
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
	recs := srv.Records()
	assertOnServer(t, srv, phones...)
	mobiletest.CheckNoEditLost(t, recs, s.Edits, s.Items)
	t.Logf("%d field edits, %d records, %d pushes", len(s.Edits), len(recs), srv.Pushes)
}
