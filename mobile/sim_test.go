package mobile_test

import (
	"bytes"
	"flag"
	"fmt"
	"maps"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

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
// A failure replays with the seed it logs.
func TestMultiPhoneSimulation(t *testing.T) {
	if testing.Short() {
		t.Skip("simulation skipped in -short mode")
	}
	seed := *seedFlag
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	t.Logf("seed %d (rerun with -run TestMultiPhoneSimulation -seed=%d)", seed, seed)
	runPhoneSim(t, seed, *simPhones, *simSteps)
}

// TestSimulationReplaysFromSeed runs a short simulation twice with one
// seed and checks that the two runs did the same, byte for byte: every
// move, id, clock reading, sync call and report, and the server's final
// records. A failing seed of TestMultiPhoneSimulation therefore replays.
func TestSimulationReplaysFromSeed(t *testing.T) {
	if testing.Short() {
		t.Skip("simulation skipped in -short mode")
	}
	seed := *seedFlag
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	t.Logf("seed %d", seed)
	var traces [2]string
	for i := range traces {
		t.Run(fmt.Sprint("run", i), func(t *testing.T) { traces[i] = runPhoneSim(t, seed, 3, 60) })
	}
	if t.Failed() {
		return
	}
	if traces[0] != traces[1] {
		a, b := strings.Split(traces[0], "\n"), strings.Split(traces[1], "\n")
		for i := range min(len(a), len(b)) {
			if a[i] != b[i] {
				t.Fatalf("seed %d: the runs differ at trace line %d:\nfirst  %s\nsecond %s", seed, i+1, a[i], b[i])
			}
		}
		t.Fatalf("seed %d: one trace is longer: %d and %d lines", seed, len(a), len(b))
	}
	if lines := strings.Count(traces[0], "\n"); lines < 60 {
		t.Errorf("the trace has %d lines for 60 steps: the simulation did not run", lines)
	}
}

// runPhoneSim runs the simulation of TestMultiPhoneSimulation and returns
// its trace, ending with the server's records.
func runPhoneSim(t *testing.T, seed uint64, phones, steps int) string {
	s := mobiletest.NewSim(t, seed, schoolA)
	srv := mobiletest.NewServer()
	srv.Now = s.Clock.Now
	srv.UseIDs(s.IDs.New)
	srv.Limits.MaxChanges = 3
	srv.Limits.MaxPull = 4
	srv.Limits.ChunkBytes = 1 << 10
	hs := httptest.NewServer(srv.Handler())
	t.Cleanup(hs.Close)
	for i := range phones {
		name := fmt.Sprintf("p%d", i)
		p := s.OpenPhone(name, filepath.Join(t.TempDir(), name+".db"), mobile.Options{NoSync: true})
		srv.AddCode("code-"+name, "user-"+name)
		if _, err := p.E.Enroll(t.Context(), hs.URL, "code-"+name, name); err != nil {
			t.Fatal(err)
		}
	}
	s.OfficeEdit = func(i int) (mobiletest.Edit, bool) {
		recs := srv.Records()
		if len(recs) == 0 {
			return mobiletest.Edit{}, false
		}
		ids := slices.SortedFunc(maps.Keys(recs), func(a, b uuid.UUID) int { return bytes.Compare(a[:], b[:]) })
		id := ids[s.Rng.IntN(len(ids))]
		if err := srv.Edit(id, "description", js(fmt.Sprintf("办公室备注 %d", i))); err != nil {
			t.Fatal(err)
		}
		return mobiletest.Edit{Record: id, Field: "description", V: srv.Records()[id].Fields["description"][0]}, true
	}
	for i := range 3 {
		s.NewHazard(s.Phones[0], fmt.Sprintf("共享隐患 %d", i))
	}
	for _, p := range s.Phones {
		s.Sync(p)
	}
	for i := range steps {
		s.Step(i)
	}
	s.Settle()
	recs := srv.Records()
	assertOnServer(t, srv, s.Phones...)
	mobiletest.CheckNoEditLost(t, recs, s.Edits, s.Items)
	if t.Failed() {
		t.Errorf("seed %d failed: rerun with -run TestMultiPhoneSimulation -seed=%d -sim.phones=%d -sim.steps=%d", seed, seed, phones, steps)
	}
	t.Logf("%d field edits, %d records, %d pushes", len(s.Edits), len(recs), srv.Pushes)
	s.TraceRecords("server", recs)
	return s.Trace()
}
