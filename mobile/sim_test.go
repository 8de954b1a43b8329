package mobile_test

import (
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/fieldsync/fieldsync/mobile"
	"github.com/fieldsync/fieldsync/mobile/mobiletest"
	"github.com/fieldsync/fieldsync/syncproto"
	"github.com/google/uuid"
)

var (
	seedFlag  = flag.Uint64("seed", 0, "seed of the multi-phone simulation (0: from the clock)")
	simSteps  = flag.Int("sim.steps", 400, "steps of the multi-phone simulation")
	simPhones = flag.Int("sim.phones", 5, "phones in the multi-phone simulation")
)

// edit is a field version some replica wrote, to be found at the end.
type edit struct {
	record uuid.UUID
	field  string
	v      syncproto.FieldVersion
}

// Sim drives phones that edit shared records offline and sync in random
// order, some killed mid-sync; tests then check convergence and that no
// edit was lost. It works over any server the phones reach through their
// Transport; Server is the in-memory one here.
type sim struct {
	t      *testing.T
	rng    *rand.Rand
	srv    *mobiletest.Server
	phones []*phone
	edits  []edit
	items  map[uuid.UUID][]string // record → item ids appended
	dir    string
	photo  uint64
}

func (s *sim) trackField(p *phone, r *syncproto.Record, field string) {
	for _, v := range r.Fields[field] {
		if v.HLC.Replica == p.e.DeviceID() {
			s.edits = append(s.edits, edit{r.ID, field, v})
			return
		}
	}
	s.t.Fatalf("%s: own version of %s.%s not found", p.name, r.ID, field)
}

func (s *sim) pickRecord(p *phone) *syncproto.Record {
	recs, err := p.e.Records(mobile.Filter{Kind: "hazard"})
	if err != nil {
		s.t.Fatal(err)
	}
	if len(recs) == 0 {
		return nil
	}
	return recs[s.rng.IntN(len(recs))]
}

var simFields = []string{"title", "severity", "description", "location_desc", "note"}

func (s *sim) step(i int) {
	p := s.phones[s.rng.IntN(len(s.phones))]
	switch x := s.rng.IntN(100); {
	case x < 35: // edit a shared or own record
		r := s.pickRecord(p)
		if r == nil {
			return
		}
		f := simFields[s.rng.IntN(len(simFields))]
		v := fmt.Sprintf("%s-%d-%s", f, i, p.name)
		r2 := p.save(mobile.Draft{ID: r.ID, Values: vals(f, v)})
		s.trackField(p, r2, f)
	case x < 50: // a hazard event (append-only)
		r := s.pickRecord(p)
		if r == nil {
			return
		}
		id, err := p.e.Append(r.ID, "events", js(map[string]any{"type": "note_added", "note": fmt.Sprintf("step %d", i)}))
		if err != nil {
			s.t.Fatal(err)
		}
		s.items[r.ID] = append(s.items[r.ID], id)
	case x < 57: // a new hazard
		r := p.save(hazardDraft(fmt.Sprintf("新隐患 %d", i)))
		for f := range r.Fields {
			s.trackField(p, r, f)
		}
	case x < 64: // a photo
		r := s.pickRecord(p)
		if r == nil {
			return
		}
		s.photo++
		path := writeJPEG(s.t, s.dir, s.photo, 24+s.rng.IntN(64), 24+s.rng.IntN(64))
		if _, err := p.e.AttachPhotoTo(r.ID, "photos_"+p.name, path, "image/jpeg"); err != nil {
			s.t.Fatal(err)
		}
		r2, _ := p.e.Record(r.ID)
		s.trackField(p, r2, "photos_"+p.name)
	case x < 68: // resolve a conflict, choosing the winner
		probs, _ := p.e.Problems()
		for _, pr := range probs {
			if pr.Type != mobile.ProblemConflict || pr.Fields[0] == "deleted" {
				continue
			}
			id := uuid.MustParse(pr.RecordID)
			if err := p.e.ResolveConflict(id, pr.Fields[0], pr.Versions[pr.Fields[0]][0].Value); err != nil {
				s.t.Fatal(err)
			}
			r, _ := p.e.Record(id)
			s.trackField(p, r, pr.Fields[0])
			break
		}
	case x < 72: // the office edits a shared record on the server
		recs := s.srv.Records()
		for id := range recs {
			f := simFields[s.rng.IntN(len(simFields))]
			if err := s.srv.Edit(id, f, js(fmt.Sprintf("office-%d", i))); err != nil {
				s.t.Fatal(err)
			}
			r := s.srv.Records()[id]
			s.edits = append(s.edits, edit{id, f, r.Fields[f][0]})
			for _, v := range r.Fields[f] {
				if v.HLC.Replica.String() == "0192b000-0000-7000-8000-00000000f001" && v.Author == "office" {
					s.edits[len(s.edits)-1].v = v
				}
			}
			break
		}
	default: // sync, killed at a random call one time in three
		if s.rng.IntN(3) == 0 {
			start, k := p.faulty.Calls(), s.rng.IntN(12)
			mode := mobiletest.Mode(1 + s.rng.IntN(2))
			p.faulty.Fault = func(call int, step string) mobiletest.Mode {
				if call == start+k {
					return mode
				}
				return mobiletest.Pass
			}
			_, err := p.e.Sync(context.Background(), nil)
			p.faulty.Fault = nil
			if err != nil {
				p.kill()
			}
			return
		}
		p.sync()
	}
}

func TestMultiPhoneSimulation(t *testing.T) {
	if testing.Short() {
		t.Skip("simulation skipped in -short mode")
	}
	seed := *seedFlag
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	t.Logf("seed %d (rerun with -seed=%d)", seed, seed)
	s := &sim{t: t, rng: rand.New(rand.NewPCG(seed, 1)), srv: mobiletest.NewServer(), items: map[uuid.UUID][]string{}, dir: t.TempDir()}
	s.srv.Limits.MaxChanges = 3
	s.srv.Limits.MaxPull = 4
	s.srv.Limits.ChunkBytes = 1 << 10
	for i := range *simPhones {
		s.phones = append(s.phones, newPhone(t, s.srv, fmt.Sprintf("p%d", i)))
	}
	// Shared hazards everyone starts with.
	for i := range 3 {
		r := s.phones[0].save(hazardDraft(fmt.Sprintf("共享隐患 %d", i)))
		for f := range r.Fields {
			s.trackField(s.phones[0], r, f)
		}
	}
	for _, p := range s.phones {
		p.sync()
	}
	for i := range *simSteps {
		s.step(i)
	}
	// Everyone syncs until quiet: twice round is enough for a join.
	for range 2 {
		for _, p := range s.phones {
			p.sync()
		}
	}
	assertConverged(t, s.srv, s.phones...)
	checkNoEditLost(t, s.srv.Records(), s.edits, s.items)
	t.Logf("%d field edits, %d records, %d pushes", len(s.edits), len(s.srv.Records()), s.srv.Pushes)
}

// checkNoEditLost asserts that every field version written is still in
// its field, or in the record's conflict log, or was overwritten by a
// version whose writer had seen it; and that every item is present.
func checkNoEditLost(t *testing.T, recs map[uuid.UUID]*syncproto.Record, edits []edit, items map[uuid.UUID][]string) {
	t.Helper()
	for _, e := range edits {
		r := recs[e.record]
		if r == nil {
			t.Errorf("record %s lost", e.record)
			continue
		}
		if !editKept(r, e) {
			t.Errorf("edit lost: %s.%s = %s by %s", e.record, e.field, e.v.Value, e.v.HLC)
		}
	}
	for id, ids := range items {
		have := map[string]bool{}
		for _, it := range recs[id].Items["events"] {
			have[it.ID] = true
		}
		for _, want := range ids {
			if !have[want] {
				t.Errorf("event %s of %s lost", want, id)
			}
		}
	}
}

func editKept(r *syncproto.Record, e edit) bool {
	for _, v := range r.Fields[e.field] {
		if v.HLC == e.v.HLC || v.Vector.Compare(e.v.Vector) == syncproto.Greater {
			return true
		}
	}
	for _, c := range r.Conflicts {
		if c.Field == e.field && c.Version.HLC == e.v.HLC {
			return true
		}
	}
	return false
}
