package mobile_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/fieldsync/fieldsync/mobile"
	"github.com/fieldsync/fieldsync/mobile/mobiletest"
	"github.com/google/uuid"
)

// killScenario prepares a phone with work to sync: several records over
// more than one push batch, an edit and an event on a record shared with
// the office, three photos of which two need several chunks, and office
// edits to pull over more than one page.
type killScenario struct {
	srv     *mobiletest.Server
	p       *phone
	shared  uuid.UUID
	created []uuid.UUID
	photos  []string
}

func newKillScenario(t *testing.T) *killScenario {
	srv := mobiletest.NewServer()
	srv.Limits.MaxChanges = 2
	srv.Limits.MaxPull = 2
	srv.Limits.ChunkBytes = 8 << 10
	s := &killScenario{srv: srv}
	office := newPhone(t, srv, "office")
	shared := office.save(hazardDraft("共享隐患"))
	office.sync()
	s.shared = shared.ID
	s.p = newPhone(t, srv, "phone")
	s.p.sync()
	dir := t.TempDir()
	for i := range 3 {
		r := s.p.save(hazardDraft(fmt.Sprintf("隐患 %d", i)))
		s.created = append(s.created, r.ID)
	}
	for i, size := range []int{40, 160, 200} {
		path := writeJPEG(t, dir, uint64(i+1), size, size)
		ref, err := s.p.E.AttachPhotoTo(s.created[i], "photo_ids", path, "image/jpeg")
		if err != nil {
			t.Fatal(err)
		}
		s.photos = append(s.photos, ref.SHA256)
	}
	s.p.save(mobile.Draft{ID: s.shared, Values: vals("description", "现场复查：仍未整改")})
	if _, err := s.p.E.Append(s.shared, "events", js(map[string]any{"type": "verification_failed", "note": "复查未通过"})); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if err := srv.Edit(s.shared, fmt.Sprintf("office_note_%d", i), js("办公室备注")); err != nil {
			t.Fatal(err)
		}
	}
	return s
}

// check asserts the phone and server converged with every edit present.
func (s *killScenario) check(t *testing.T) {
	t.Helper()
	assertConverged(t, s.srv, s.p)
	recs := s.srv.Records()
	for i, id := range s.created {
		r := recs[id]
		if r == nil {
			t.Fatalf("record %d lost", i)
		}
		if got, want := string(r.Value("title")), fmt.Sprintf(`"隐患 %d"`, i); got != want {
			t.Errorf("record %d title %s, want %s", i, got, want)
		}
		if refs := photosOf(recs, r, "photo_ids"); len(refs) != 1 || refs[0].SHA256 != s.photos[i] {
			t.Errorf("record %d photos %+v", i, refs)
		}
	}
	sh := recs[s.shared]
	if got := string(sh.Value("description")); got != `"现场复查：仍未整改"` {
		t.Errorf("shared description %s", got)
	}
	if got := string(sh.Value("severity")); got != `"high"` {
		t.Errorf("edit made after the kill: severity %s", got)
	}
	if n := len(sh.Items["events"]); n != 1 {
		t.Errorf("shared hazard has %d events, want 1 (none lost, none duplicated)", n)
	}
	for i := range 3 {
		if sh.Value(fmt.Sprintf("office_note_%d", i)) == nil {
			t.Errorf("office note %d not merged", i)
		}
	}
}

// TestKillBetweenSteps kills the phone at every call of a sync, before the
// call reaches the server and after the server acted but before the answer
// arrived (after push sent, mid-pull, mid-photo...), edits the shared
// record after the restart, and syncs to the end. Nothing may be lost or
// applied twice.
func TestKillBetweenSteps(t *testing.T) {
	ref := newKillScenario(t)
	base := ref.p.Faulty.Calls()
	ref.p.save(mobile.Draft{ID: ref.shared, Values: vals("severity", "high")})
	ref.p.sync()
	ref.check(t)
	n := ref.p.Faulty.Calls() - base
	steps := ref.p.Faulty.Steps[base:]
	t.Logf("a clean sync makes %d calls: %v", n, steps)
	for k := range n {
		for _, mode := range []mobiletest.Mode{mobiletest.FailBefore, mobiletest.FailAfter} {
			name := fmt.Sprintf("%02d_%s_%s", k, steps[k], map[mobiletest.Mode]string{mobiletest.FailBefore: "before", mobiletest.FailAfter: "after"}[mode])
			t.Run(name, func(t *testing.T) {
				s := newKillScenario(t)
				start := s.p.Faulty.Calls()
				s.p.Faulty.Fault = func(call int, step string) mobiletest.Mode {
					if call == start+k {
						return mode
					}
					return mobiletest.Pass
				}
				_, err := s.p.E.Sync(context.Background(), nil)
				if !errors.Is(err, mobiletest.ErrKilled) {
					t.Fatalf("sync err = %v, want the kill", err)
				}
				s.p.kill()
				// Work goes on after the restart; it must not touch a batch in flight.
				s.p.save(mobile.Draft{ID: s.shared, Values: vals("severity", "high")})
				s.p.sync()
				s.check(t)
			})
		}
	}
}

// TestKillTwiceInFlight resends one in-flight batch several times.
func TestKillTwiceInFlight(t *testing.T) {
	s := newKillScenario(t)
	for range 3 {
		s.p.Faulty.Fault = func(call int, step string) mobiletest.Mode {
			if step == mobiletest.StepPush {
				return mobiletest.FailAfter
			}
			return mobiletest.Pass
		}
		if _, err := s.p.E.Sync(context.Background(), nil); !errors.Is(err, mobiletest.ErrKilled) {
			t.Fatal(err)
		}
		s.p.kill()
	}
	b := s.p.Faulty.Batches
	if len(b) != 3 || b[0] != b[1] || b[1] != b[2] {
		t.Fatalf("an interrupted batch was not resent under its id: %v", b)
	}
	s.p.save(mobile.Draft{ID: s.shared, Values: vals("severity", "high")})
	s.p.sync()
	if got := s.p.Faulty.Batches[3]; got != b[0] {
		t.Fatalf("first batch after the kills is %s, want the interrupted %s", got, b[0])
	}
	s.check(t)
}
