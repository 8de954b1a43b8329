package storetest

import (
	"context"
	"encoding/json"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/fieldsync/fieldsync/server"
	"github.com/fieldsync/fieldsync/syncproto"
)

func testApplyNew(t *testing.T, env Env) {
	sy := newSyncer(env, env.Store)
	ph := newPhone(env.Clock)
	s1, s2 := newID().String(), newID().String()
	g := server.Grant{Schools: []string{s1, s2}}
	a := ph.create(s1, "visit", "theme", "宿舍消防安全", "summary", "ok")
	b := ph.create(s2, "hazard", "title", "灭火器过期")
	resp := push(t, sy, ph, g, a, b)
	wantStatuses(t, resp, syncproto.StatusApplied, syncproto.StatusApplied)
	for i, res := range resp.Results {
		if res.Rev != 1 {
			t.Errorf("result %d: rev %d, want 1", i, res.Rev)
		}
	}
	office := newPhone(env.Clock)
	office.p.DeviceID, office.p.Roles = uuid.Nil, []string{server.RoleOfficeHead}
	form := office.create("", "form", "title", "校园安全检查表")
	wantStatuses(t, push(t, sy, office, server.Grant{AllSchools: true, Reference: true}, form), syncproto.StatusApplied)

	got, err := sy.Record(t.Context(), s1, a.Record.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Rev != 1 || value(got, "theme") != "宿舍消防安全" || got.ServerReceivedAt == nil || !got.ServerReceivedAt.Equal(env.Clock.Now()) {
		t.Errorf("stored record: rev %d theme %q received %v", got.Rev, value(got, "theme"), got.ServerReceivedAt)
	}
	if _, err := sy.Record(t.Context(), s2, a.Record.ID); syncproto.ErrorCode(err) != syncproto.ENOTFOUND {
		t.Errorf("record in the wrong scope: %v, want not_found", err)
	}

	recs, cur := pullAll(t, sy, ph, []string{s1, s2, server.RefScope}, "", 0)
	ids := map[uuid.UUID]bool{}
	for _, r := range recs {
		ids[r.ID] = true
	}
	if len(recs) != 3 || !ids[a.Record.ID] || !ids[b.Record.ID] || !ids[form.Record.ID] {
		t.Fatalf("pulled %d records, want the 3 pushed", len(recs))
	}
	again, _ := pullAll(t, sy, ph, []string{s1, s2, server.RefScope}, cur, 0)
	if len(again) != 0 {
		t.Errorf("pull after the end returned %d records", len(again))
	}
}

func testEditsMerge(t *testing.T, env Env) {
	sy := newSyncer(env, env.Store)
	s := newID().String()
	g := server.Grant{Schools: []string{s}}
	a, b := newPhone(env.Clock), newPhone(env.Clock)
	c := a.create(s, "visit", "theme", "t0")
	wantStatuses(t, push(t, sy, a, g, c), syncproto.StatusApplied)
	recs, _ := pullAll(t, sy, b, []string{s}, "", 0)
	for _, r := range recs {
		b.learn(t, r)
	}
	env.Clock.Advance(time.Minute)
	// b edits the summary; a, not having seen it, edits the theme.
	resp := push(t, sy, b, g, b.set(c.Record.ID, "summary", "by b"))
	wantStatuses(t, resp, syncproto.StatusApplied)
	if resp.Results[0].Rev != 2 {
		t.Errorf("rev %d, want 2", resp.Results[0].Rev)
	}
	resp = push(t, sy, a, g, a.set(c.Record.ID, "theme", "t1"))
	wantStatuses(t, resp, syncproto.StatusMerged)
	if resp.Results[0].Rev != 3 {
		t.Errorf("rev %d, want 3", resp.Results[0].Rev)
	}
	got, err := sy.Record(t.Context(), s, c.Record.ID)
	if err != nil {
		t.Fatal(err)
	}
	if value(got, "theme") != "t1" || value(got, "summary") != "by b" || len(got.ConflictFields()) != 0 {
		t.Errorf("merged record: theme %q summary %q conflicts %v", value(got, "theme"), value(got, "summary"), got.ConflictFields())
	}
	// Several changes of one record in one batch are folded.
	resp = push(t, sy, a, g, a.set(c.Record.ID, "theme", "t2"), a.set(c.Record.ID, "notes", "by a"))
	wantStatuses(t, resp, syncproto.StatusMerged, syncproto.StatusMerged)
	if resp.Results[0].Rev != 4 || resp.Results[1].Rev != 4 {
		t.Errorf("revs %d, %d; want one new revision 4", resp.Results[0].Rev, resp.Results[1].Rev)
	}
}

// logCount returns how many states of each record the log holds.
func logCount(t *testing.T, st server.SyncStore, scope string) map[uuid.UUID]int {
	t.Helper()
	out := map[uuid.UUID]int{}
	var pos int64
	for range 10000 {
		page, err := st.Changes(t.Context(), scope, pos, 500, 1<<30)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range page.Records {
			out[r.ID]++
		}
		if page.Pos == pos {
			return out
		}
		pos = page.Pos
	}
	t.Fatal("the log does not end")
	return nil
}

func testRetriedBatch(t *testing.T, env Env) {
	sy := newSyncer(env, env.Store)
	s := newID().String()
	g := server.Grant{Schools: []string{s}}
	ph, other := newPhone(env.Clock), newPhone(env.Clock)
	old := ph.create(s, "hazard", "title", "t")
	push(t, sy, ph, g, old)
	// other edits the record concurrently so that ph's edit is a conflict:
	// a replay must return that outcome, not "duplicate".
	recs, _ := pullAll(t, sy, other, []string{s}, "", 0)
	for _, r := range recs {
		other.learn(t, r)
	}
	push(t, sy, other, g, other.set(old.Record.ID, "title", "other"))

	changes := []syncproto.Change{ph.create(s, "visit", "theme", "a"), ph.set(old.Record.ID, "title", "mine"), ph.create(s, "visit", "theme", "b")}
	batch := newID()
	first, err := pushBatch(t, sy, ph, g, batch, changes...)
	if err != nil {
		t.Fatal(err)
	}
	wantStatuses(t, first, syncproto.StatusApplied, syncproto.StatusConflict, syncproto.StatusApplied)
	env.Clock.Advance(time.Minute)
	for range 2 {
		again, err := pushBatch(t, sy, ph, g, batch, changes...)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(again.Results, first.Results) {
			t.Errorf("replayed batch: %+v, want %+v", again.Results, first.Results)
		}
	}
	// The same ops in another batch (a phone that lost the batch id) write
	// nothing either.
	other2, err := pushBatch(t, sy, ph, g, newID(), changes...)
	if err != nil {
		t.Fatal(err)
	}
	wantStatuses(t, other2, syncproto.StatusDuplicate, syncproto.StatusDuplicate, syncproto.StatusDuplicate)
	for i := range other2.Results {
		if other2.Results[i].Rev != first.Results[i].Rev {
			t.Errorf("result %d: rev %d, want %d", i, other2.Results[i].Rev, first.Results[i].Rev)
		}
	}
	counts := logCount(t, env.Store, s)
	want := map[uuid.UUID]int{old.Record.ID: 3, changes[0].Record.ID: 1, changes[2].Record.ID: 1}
	if !reflect.DeepEqual(counts, want) {
		t.Errorf("log holds %v states per record, want %v", counts, want)
	}

	// A batch whose ops were claimed by a process that died before it
	// wrote anything is applied in full when sent again.
	crashed := []syncproto.Change{ph.create(s, "visit", "theme", "c")}
	batch = newID()
	// The Syncer first waits (in real time) for the answer of a copy that
	// may be in flight; no copy is here, so do not make the test wait.
	sy.BatchWait = 50 * time.Millisecond
	req, _ := request(t, ph.dev, batch, crashed...)
	if _, err := env.Store.ClaimOps(t.Context(), batch, []server.OpDigest{{OpID: req.Changes[0].OpID, Digest: req.Changes[0].Digest()}}); err != nil {
		t.Fatal(err)
	}
	resp, err := pushBatch(t, sy, ph, g, batch, crashed...)
	if err != nil {
		t.Fatal(err)
	}
	wantStatuses(t, resp, syncproto.StatusApplied)
	if _, err := sy.Record(t.Context(), s, crashed[0].Record.ID); err != nil {
		t.Errorf("record of the crashed batch: %v", err)
	}
}

func testOpReused(t *testing.T, env Env) {
	sy := newSyncer(env, env.Store)
	s := newID().String()
	g := server.Grant{Schools: []string{s}}
	ph := newPhone(env.Clock)
	c := ph.create(s, "visit", "theme", "original")
	batch := newID()
	if _, err := pushBatch(t, sy, ph, g, batch, c); err != nil {
		t.Fatal(err)
	}
	// The same op id with other content, in a new batch.
	reused := ph.set(c.Record.ID, "theme", "changed")
	reused.OpID = c.OpID
	fresh := ph.create(s, "visit", "theme", "fresh")
	resp := push(t, sy, ph, g, reused, fresh)
	wantStatuses(t, resp, syncproto.StatusRejected, syncproto.StatusApplied)
	if code := syncproto.ErrorCode(resp.Results[0].Error); code != syncproto.EOPREUSED {
		t.Errorf("reused op: code %s, want %s", code, syncproto.EOPREUSED)
	}
	got, err := sy.Record(t.Context(), s, c.Record.ID)
	if err != nil {
		t.Fatal(err)
	}
	if value(got, "theme") != "original" || got.Rev != 1 {
		t.Errorf("record after a reused op: theme %q rev %d, want the original at rev 1", value(got, "theme"), got.Rev)
	}
	// The op id reused for another record.
	other := ph.create(s, "visit", "theme", "other")
	other.OpID = c.OpID
	wantStatuses(t, push(t, sy, ph, g, other), syncproto.StatusRejected)
	if _, err := sy.Record(t.Context(), s, other.Record.ID); syncproto.ErrorCode(err) != syncproto.ENOTFOUND {
		t.Errorf("a record pushed under a reused op id was written: %v", err)
	}
	// The batch id reused with other changes fails as a whole.
	if _, err := pushBatch(t, sy, ph, g, batch, ph.create(s, "visit", "theme", "x")); syncproto.ErrorCode(err) != syncproto.EOPREUSED {
		t.Errorf("reused batch id: %v, want %s", err, syncproto.EOPREUSED)
	}
}

func testRejectedDoesNotBlock(t *testing.T, env Env) {
	sy := newSyncer(env, env.Store)
	s, elsewhere := newID().String(), newID().String()
	g := server.Grant{Schools: []string{s}}
	ph := newPhone(env.Clock)
	existing := ph.create(s, "visit", "theme", "t")
	push(t, sy, ph, g, existing)

	first := ph.create(s, "visit", "theme", "first")
	invalid := ph.create(s, "visit", "theme", "x")
	invalid.Record.Kind = "Not A Kind" // rejected by DecodePush
	forbidden := ph.create(elsewhere, "visit", "theme", "not mine")
	reference := ph.create("", "form", "title", "only the office writes these")
	badHeader := ph.set(existing.Record.ID, "theme", "t2")
	badHeader.Record.Kind = "hazard" // the stored record is a visit
	last := ph.create(s, "visit", "theme", "last")
	resp := push(t, sy, ph, g, first, invalid, forbidden, reference, badHeader, last)
	wantStatuses(t, resp, syncproto.StatusApplied, syncproto.StatusRejected, syncproto.StatusRejected,
		syncproto.StatusRejected, syncproto.StatusRejected, syncproto.StatusApplied)
	for i, want := range map[int]string{1: syncproto.EINVALID, 2: syncproto.EFORBIDDEN, 3: syncproto.EFORBIDDEN, 4: syncproto.EINVALID} {
		if got := syncproto.ErrorCode(resp.Results[i].Error); got != want {
			t.Errorf("result %d: code %s, want %s", i, got, want)
		}
	}
	if f := resp.Results[1].Error.Fields; f["kind"] == "" {
		t.Errorf("invalid record: no field-level message for kind: %+v", resp.Results[1].Error)
	}
	for _, c := range []syncproto.Change{first, last} {
		if _, err := sy.Record(t.Context(), s, c.Record.ID); err != nil {
			t.Errorf("record %s: %v", c.Record.ID, err)
		}
	}
	if _, err := sy.Record(t.Context(), elsewhere, forbidden.Record.ID); syncproto.ErrorCode(err) != syncproto.ENOTFOUND {
		t.Errorf("a forbidden record was written: %v", err)
	}
}

// conflictOn pushes concurrent edits of one field from two phones and
// returns the record id and the phones.
func conflictOn(t *testing.T, env Env, sy *server.Syncer, s string) (uuid.UUID, *phone, *phone) {
	t.Helper()
	g := server.Grant{Schools: []string{s}}
	a, b := newPhone(env.Clock), newPhone(env.Clock)
	c := a.create(s, "hazard", "deadline", "2024-11-01", "title", "灭火器过期")
	push(t, sy, a, g, c)
	recs, _ := pullAll(t, sy, b, []string{s}, "", 0)
	for _, r := range recs {
		b.learn(t, r)
	}
	env.Clock.Advance(time.Minute)
	wantStatuses(t, push(t, sy, a, g, a.set(c.Record.ID, "deadline", "2024-11-15")), syncproto.StatusApplied)
	env.Clock.Advance(time.Minute)
	resp := push(t, sy, b, g, b.set(c.Record.ID, "deadline", "2024-11-30"))
	wantStatuses(t, resp, syncproto.StatusConflict)
	if !slices.Equal(resp.Results[0].Conflicts, []string{"deadline"}) {
		t.Errorf("conflicts %v, want [deadline]", resp.Results[0].Conflicts)
	}
	return c.Record.ID, a, b
}

func testConflictStored(t *testing.T, env Env) {
	sy := newSyncer(env, env.Store)
	s := newID().String()
	id, _, _ := conflictOn(t, env, sy, s)
	reviewer := server.Principal{UserID: "reviewer-1", Roles: []string{server.RoleOfficeReviewer}}
	open, err := sy.Conflicts(t.Context(), reviewer, server.ConflictFilter{Status: server.ConflictOpen, Scope: s})
	if err != nil {
		t.Fatal(err)
	}
	if len(open) != 1 {
		t.Fatalf("%d open conflicts, want 1", len(open))
	}
	c := open[0]
	if c.ID != server.ConflictID(id, "deadline") || c.RecordID != id || c.Field != "deadline" || c.Kind != "hazard" || c.Rev != 3 {
		t.Errorf("conflict %+v", c)
	}
	var vals []string
	for _, v := range c.Versions {
		var x string
		_ = json.Unmarshal(v.Value, &x)
		vals = append(vals, x)
	}
	slices.Sort(vals)
	if !slices.Equal(vals, []string{"2024-11-15", "2024-11-30"}) {
		t.Errorf("conflict versions %v, want both deadlines", vals)
	}
	if other, _ := sy.Conflicts(t.Context(), reviewer, server.ConflictFilter{Status: server.ConflictOpen, Scope: newID().String()}); len(other) != 0 {
		t.Errorf("another school lists %d conflicts", len(other))
	}

	device := newPhone(env.Clock)
	if _, err := sy.ResolveConflict(t.Context(), device.p, c.ID, json.RawMessage(`"2024-11-20"`)); syncproto.ErrorCode(err) != syncproto.EFORBIDDEN {
		t.Errorf("resolve by a device: %v, want forbidden", err)
	}
	env.Clock.Advance(time.Minute)
	rec, err := sy.ResolveConflict(t.Context(), reviewer, c.ID, json.RawMessage(`"2024-11-20"`))
	if err != nil {
		t.Fatal(err)
	}
	if value(rec, "deadline") != "2024-11-20" || rec.Fields["deadline"].InConflict() || rec.Rev != 4 {
		t.Errorf("resolved record: deadline %q in conflict %v rev %d", value(rec, "deadline"), rec.Fields["deadline"].InConflict(), rec.Rev)
	}
	if len(rec.Conflicts) != 2 {
		t.Errorf("conflict log holds %d versions, want the 2 losers", len(rec.Conflicts))
	}
	stored, err := sy.Record(t.Context(), s, id)
	if err != nil || !stored.Equal(rec) {
		t.Errorf("stored record differs from the resolution (%v)", err)
	}
	got, err := env.Store.Conflict(t.Context(), c.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != server.ConflictResolved || got.ResolvedBy != "reviewer-1" || got.ResolvedAt == nil || !got.DetectedAt.Equal(c.DetectedAt) {
		t.Errorf("conflict after resolution: %+v", got)
	}
	if _, err := sy.ResolveConflict(t.Context(), reviewer, c.ID, json.RawMessage(`"x"`)); syncproto.ErrorCode(err) != syncproto.ECONFLICT {
		t.Errorf("second resolution: %v, want conflict", err)
	}
	if _, err := sy.ResolveConflict(t.Context(), reviewer, "nope/deadline", json.RawMessage(`"x"`)); syncproto.ErrorCode(err) != syncproto.ENOTFOUND {
		t.Errorf("unknown conflict: %v, want not_found", err)
	}
	if open, _ := sy.Conflicts(t.Context(), reviewer, server.ConflictFilter{Status: server.ConflictOpen}); len(open) != 0 {
		t.Errorf("%d open conflicts after the resolution", len(open))
	}
}

func testConflictResolvedByPhone(t *testing.T, env Env) {
	sy := newSyncer(env, env.Store)
	s := newID().String()
	id, a, _ := conflictOn(t, env, sy, s)
	recs, _ := pullAll(t, sy, a, []string{s}, "", 0)
	for _, r := range recs {
		a.learn(t, r)
	}
	env.Clock.Advance(time.Minute)
	wantStatuses(t, push(t, sy, a, server.Grant{Schools: []string{s}}, a.set(id, "deadline", "2024-12-01")), syncproto.StatusApplied)
	c, err := env.Store.Conflict(t.Context(), server.ConflictID(id, "deadline"))
	if err != nil {
		t.Fatal(err)
	}
	if c.Status != server.ConflictResolved || c.ResolvedBy != a.user {
		t.Errorf("conflict after the phone's write: %+v", c)
	}
}

func testServerFields(t *testing.T, env Env) {
	sy := newSyncer(env, env.Store)
	s := newID().String()
	g := server.Grant{Schools: []string{s}}
	ph := newPhone(env.Clock)
	c := ph.create(s, "hazard", "title", "t")
	first := env.Clock.Now()
	push(t, sy, ph, g, c)
	env.Clock.Advance(time.Hour)
	second := env.Clock.Now()
	ev := ph.appendItem(c.Record.ID, "events", `{"actor_role":"inspector","type":"photo_added"}`)
	// The phone claims an earlier arrival; the server ignores it.
	ev.Record.ServerReceivedAt = &time.Time{}
	push(t, sy, ph, g, ev)
	// A phone whose clock is a day ahead.
	ph.clock = NewClock(env.Clock.Now().Add(24 * time.Hour))
	push(t, sy, ph, g, ph.set(c.Record.ID, "title", "t2"))
	got, err := sy.Record(t.Context(), s, c.Record.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.ServerReceivedAt == nil || !got.ServerReceivedAt.Equal(first) {
		t.Errorf("server_received_at %v, want the first arrival %v", got.ServerReceivedAt, first)
	}
	items := got.Items["events"]
	if len(items) != 1 || items[0].ServerReceivedAt == nil || !items[0].ServerReceivedAt.Equal(second) {
		t.Errorf("item stamps: %+v, want %v", items, second)
	}
	if !slices.Contains(got.Flags, server.FlagClockSkew) {
		t.Errorf("flags %v, want %s", got.Flags, server.FlagClockSkew)
	}
	if got.Rev != 3 {
		t.Errorf("rev %d, want 3", got.Rev)
	}
}

func testLimits(t *testing.T, env Env) {
	sy := newSyncer(env, env.Store)
	sy.Limits.MaxChanges = 3
	sy.Limits.MaxPull = 2
	s := newID().String()
	g := server.Grant{Schools: []string{s}}
	ph := newPhone(env.Clock)
	var cs []syncproto.Change
	for i := range 4 {
		cs = append(cs, ph.create(s, "visit", "n", itoa(i)))
	}
	if _, err := pushBatch(t, sy, ph, g, newID(), cs...); syncproto.ErrorCode(err) != syncproto.ETOOLARGE {
		t.Errorf("4 changes with a limit of 3: %v, want too_large", err)
	}
	push(t, sy, ph, g, cs[:3]...)
	info, err := sy.Info(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if info.Limits.MaxChanges != 3 || info.Limits.MaxPull != 2 || info.Epoch == uuid.Nil || info.Protocol != syncproto.ProtocolVersion {
		t.Errorf("info %+v", info)
	}
	resp, err := pull(t, sy, ph, []string{s}, syncproto.PullRequest{Protocol: syncproto.ProtocolVersion, Limit: 100}, syncproto.Cursor{})
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Records) != 2 || !resp.More {
		t.Errorf("pull with max_pull 2: %d records, more %v", len(resp.Records), resp.More)
	}
}

func testValidator(t *testing.T, env Env) {
	sy := newSyncer(env, env.Store)
	// A visit needs a theme once it is completed.
	sy.Validator = server.RecordValidatorFunc(func(ctx context.Context, r *syncproto.Record) *syncproto.Error {
		if r.Kind == "visit" && value(r, "status") == "completed" && value(r, "theme") == "" {
			return syncproto.FieldError("The visit is not complete.", map[string]string{"theme": "is required when the visit is completed"})
		}
		return nil
	})
	s := newID().String()
	g := server.Grant{Schools: []string{s}}
	ph := newPhone(env.Clock)
	bad := ph.create(s, "visit", "status", "completed")
	good := ph.create(s, "visit", "status", "completed", "theme", "t")
	resp := push(t, sy, ph, g, bad, good)
	wantStatuses(t, resp, syncproto.StatusRejected, syncproto.StatusApplied)
	if e := resp.Results[0].Error; e == nil || e.Fields["theme"] == "" {
		t.Errorf("rejection %+v, want a message for theme", e)
	}
	// A delta that is incomplete alone but complete with the stored record.
	draft := ph.create(s, "visit", "theme", "t", "status", "in_progress")
	push(t, sy, ph, g, draft)
	wantStatuses(t, push(t, sy, ph, g, ph.set(draft.Record.ID, "status", "completed")), syncproto.StatusApplied)
	// And one that the stored record does not complete.
	other := ph.create(s, "visit", "status", "in_progress")
	push(t, sy, ph, g, other)
	wantStatuses(t, push(t, sy, ph, g, ph.set(other.Record.ID, "status", "completed")), syncproto.StatusRejected)
}

func testPullScopes(t *testing.T, env Env) {
	sy := newSyncer(env, env.Store)
	s1, s2 := newID().String(), newID().String()
	g := server.Grant{Schools: []string{s1, s2}}
	ph := newPhone(env.Clock)
	push(t, sy, ph, g, ph.create(s1, "visit", "n", "1"), ph.create(s2, "visit", "n", "2"))
	all := []string{s1, s2, server.RefScope}
	pull := func(scope []string, cur string) (syncproto.PullResponse, error) {
		c, err := syncproto.DecodeCursor(cur)
		if err != nil {
			t.Fatal(err)
		}
		return pull(t, sy, ph, all, syncproto.PullRequest{Protocol: syncproto.ProtocolVersion, Cursor: cur, Scope: scope}, c)
	}
	one, err := pull([]string{s1}, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(one.Records) != 1 || one.Records[0].SchoolID != s1 {
		t.Fatalf("narrowed pull: %d records", len(one.Records))
	}
	rest, err := pull(nil, one.Cursor)
	if err != nil {
		t.Fatal(err)
	}
	if len(rest.Records) != 1 || rest.Records[0].SchoolID != s2 {
		t.Errorf("pull after a narrowed pull: %d records, want the other school's", len(rest.Records))
	}
	if _, err := pull([]string{newID().String()}, ""); syncproto.ErrorCode(err) != syncproto.EFORBIDDEN {
		t.Errorf("pull of an unassigned school: %v, want forbidden", err)
	}
	if _, err := pull([]string{"school:1"}, ""); syncproto.ErrorCode(err) != syncproto.EINVALID {
		t.Errorf("pull of a malformed scope: %v, want invalid", err)
	}
}

func testStaleEpoch(t *testing.T, env Env) {
	sy := newSyncer(env, env.Store)
	s := newID().String()
	ph := newPhone(env.Clock)
	push(t, sy, ph, server.Grant{Schools: []string{s}}, ph.create(s, "visit", "n", "1"))
	epoch, err := env.Store.Epoch(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if again, _ := env.Second().Epoch(t.Context()); again != epoch {
		t.Errorf("a second process sees epoch %s, want %s", again, epoch)
	}
	for name, cur := range map[string]syncproto.Cursor{
		"OtherEpoch": {Epoch: newID(), Pos: map[string]int64{s: 1}},
		"NoEpoch":    {Pos: map[string]int64{s: 1}},
	} {
		_, err := pull(t, sy, ph, []string{s}, syncproto.PullRequest{Protocol: syncproto.ProtocolVersion, Cursor: cur.Encode()}, cur)
		if syncproto.ErrorCode(err) != syncproto.ESTALE || syncproto.ErrorMessage(err) != syncproto.StartOver {
			t.Errorf("%s: %v, want stale with the start-over message", name, err)
		}
	}
	if _, err := pull(t, sy, ph, []string{s}, syncproto.PullRequest{Protocol: syncproto.ProtocolVersion}, syncproto.Cursor{Epoch: epoch, Pos: map[string]int64{s: 1}}); err != nil {
		t.Errorf("cursor of this epoch: %v", err)
	}
}

func testTombstones(t *testing.T, env Env) {
	sy := newSyncer(env, env.Store)
	s := newID().String()
	g := server.Grant{Schools: []string{s}}
	a, b := newPhone(env.Clock), newPhone(env.Clock)
	gone, kept := a.create(s, "task", "title", "gone"), a.create(s, "task", "title", "kept")
	push(t, sy, a, g, gone, kept)
	recs, cur := pullAll(t, sy, b, []string{s}, "", 0)
	for _, r := range recs {
		b.learn(t, r)
	}
	for i := range 3 {
		push(t, sy, a, g, a.set(kept.Record.ID, "title", "kept "+itoa(i)))
	}
	push(t, sy, a, g, a.del(gone.Record.ID))
	recs, _ = pullAll(t, sy, b, []string{s}, cur, 0)
	for _, r := range recs {
		b.learn(t, r)
	}
	if !b.local[gone.Record.ID].IsDeleted() || b.local[kept.Record.ID].IsDeleted() {
		t.Fatalf("the phone did not receive the delete")
	}
	// Superseded revisions are compacted away; the tombstone stays.
	res, err := env.Store.Compact(t.Context(), s, server.CompactOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if res.Superseded != 4 || res.Tombstones != 0 || res.Horizon != 0 {
		t.Errorf("compaction: %+v, want 4 superseded (3 of kept, 1 of gone)", res)
	}
	fresh := newPhone(env.Clock)
	recs, _ = pullAll(t, sy, fresh, []string{s}, "", 0)
	if counts := logCount(t, env.Store, s); counts[kept.Record.ID] != 1 || counts[gone.Record.ID] != 1 {
		t.Errorf("log after compaction: %v, want one state per record", counts)
	}
	for _, r := range recs {
		fresh.learn(t, r)
	}
	if value(fresh.local[kept.Record.ID], "title") != "kept 2" || !fresh.local[gone.Record.ID].IsDeleted() {
		t.Errorf("a new phone after compaction: kept %q, gone deleted %v", value(fresh.local[kept.Record.ID], "title"), fresh.local[gone.Record.ID].IsDeleted())
	}
	// An edit after compaction continues the revisions.
	resp := push(t, sy, a, g, a.set(kept.Record.ID, "title", "kept 3"))
	if resp.Results[0].Rev != 5 {
		t.Errorf("rev after compaction %d, want 5", resp.Results[0].Rev)
	}
}

func testHorizon(t *testing.T, env Env) {
	sy := newSyncer(env, env.Store)
	s := newID().String()
	g := server.Grant{Schools: []string{s}}
	a, b := newPhone(env.Clock), newPhone(env.Clock)
	gone, kept := a.create(s, "task", "title", "gone"), a.create(s, "task", "title", "kept")
	push(t, sy, a, g, gone, kept)
	_, before := pullAll(t, sy, b, []string{s}, "", 0)
	push(t, sy, a, g, a.del(gone.Record.ID))
	_, after := pullAll(t, sy, b, []string{s}, before, 0)

	env.Clock.Advance(31 * 24 * time.Hour)
	res, err := env.Store.Compact(t.Context(), s, server.CompactOptions{TombstonesBefore: env.Clock.Now().Add(-30 * 24 * time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	if res.Tombstones != 1 || res.Horizon == 0 {
		t.Fatalf("compaction: %+v, want the tombstone purged and a horizon", res)
	}
	cur, _ := syncproto.DecodeCursor(before)
	_, err = pull(t, sy, b, []string{s}, syncproto.PullRequest{Protocol: syncproto.ProtocolVersion, Cursor: before}, cur)
	if syncproto.ErrorCode(err) != syncproto.ESTALE {
		t.Errorf("cursor below the horizon: %v, want stale", err)
	}
	recs, _ := pullAll(t, sy, b, []string{s}, after, 0)
	if len(recs) != 0 {
		t.Errorf("cursor at the horizon: %d records, want none", len(recs))
	}
	recs, _ = pullAll(t, sy, newPhone(env.Clock), []string{s}, "", 0)
	if len(recs) != 1 || recs[0].ID != kept.Record.ID {
		t.Errorf("pull from the start after the purge: %d records, want only the kept one", len(recs))
	}
	if _, err := sy.Record(t.Context(), s, gone.Record.ID); syncproto.ErrorCode(err) != syncproto.ENOTFOUND {
		t.Errorf("purged record: %v, want not_found", err)
	}
	admin := server.Principal{UserID: "admin", Roles: []string{server.RoleAdmin}}
	if _, err := sy.Compact(t.Context(), b.p, s, server.CompactOptions{}); syncproto.ErrorCode(err) != syncproto.EFORBIDDEN {
		t.Errorf("compaction by a device: %v, want forbidden", err)
	}
	if _, err := sy.Compact(t.Context(), admin, s, server.CompactOptions{}); err != nil {
		t.Errorf("compaction by an admin: %v", err)
	}
}

func testHoleFilled(t *testing.T, env Env) {
	sy := newSyncer(env, env.Store)
	s := newID().String()
	g := server.Grant{Schools: []string{s}}
	ph := newPhone(env.Clock)
	push(t, sy, ph, g, ph.create(s, "visit", "n", "1"))
	pos := int64(0)
	for _, tc := range []struct {
		name    string
		dead    int   // numbers a writer allocates before it dies
		wantPos int64 // where the late record lands
	}{
		{"CrossingAPage", 150, 152},    // 2..151 dead, the page mark shows 152
		{"WholePagesDead", 300, 453},   // 153..452 dead: pages 2 and 3 have no entry and page 2 no mark
		{"DeadTailNoWriter", 120, 453}, // 454..573 dead and nothing after: filled, nothing to read
	} {
		if err := env.Reserve(t.Context(), env.Store, s, tc.dead); err != nil {
			t.Fatal(err)
		}
		var late syncproto.Change
		if tc.wantPos != pos {
			late = ph.create(s, "visit", "n", tc.name)
			push(t, sy, ph, g, late)
		}
		page, err := env.Store.Changes(t.Context(), s, pos, 100, 1<<30)
		if err != nil {
			t.Fatal(err)
		}
		if len(page.Records) > 1 || (len(page.Records) == 1 && pos > 0) {
			t.Fatalf("%s: before the lease, %d records up to %d: the reader passed a hole", tc.name, len(page.Records), page.Pos)
		}
		pos = page.Pos
		env.Clock.Advance(env.Lease + time.Second)
		page, err = env.Store.Changes(t.Context(), s, pos, 100, 1<<30)
		if err != nil {
			t.Fatal(err)
		}
		if late.Record == nil {
			if len(page.Records) != 0 {
				t.Errorf("%s: %d records after a dead tail, want none", tc.name, len(page.Records))
			}
		} else if len(page.Records) != 1 || page.Records[0].ID != late.Record.ID || page.Pos != tc.wantPos {
			t.Errorf("%s: after the lease, %d records up to %d; want the late record at %d", tc.name, len(page.Records), page.Pos, tc.wantPos)
		}
		pos = page.Pos
	}
	// A writer after the filled tail lands right after it.
	last := ph.create(s, "visit", "n", "last")
	push(t, sy, ph, g, last)
	page, err := env.Store.Changes(t.Context(), s, pos, 100, 1<<30)
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Records) != 1 || page.Records[0].ID != last.Record.ID || page.Pos != 574 {
		t.Errorf("after the dead tail: %d records up to %d, want the last record at 574", len(page.Records), page.Pos)
	}
}

// testForgedHistory is what a stolen or buggy phone may not do: sign as
// another device or person, claim to have seen a co-worker's writes the
// server never had (a vector with 2^53−1 for the co-worker's device, which
// would make every later edit of the co-worker compare as already seen and
// vanish), or make office decisions on a hazard. Each change is refused
// with its own code and written nowhere, and the co-worker's later edit
// is kept.
func testForgedHistory(t *testing.T, env Env) {
	ctx := t.Context()
	sy := newSyncer(env, env.Store)
	s := newID().String()
	g := server.Grant{Schools: []string{s}}
	thief, coworker := newPhone(env.Clock), newPhone(env.Clock)
	created := thief.create(s, "hazard", "description", "宿舍电线裸露")
	id := created.Record.ID
	push(t, sy, thief, g, created)
	r, err := sy.Record(ctx, s, id)
	if err != nil {
		t.Fatal(err)
	}
	coworker.learn(t, r)

	forged := thief.set(id, "description", "已整改完毕")
	fv := &forged.Record.Fields["description"][0]
	fv.Vector = fv.Vector.Merge(syncproto.Vector{Counters: []syncproto.Counter{{Replica: coworker.dev, Value: syncproto.MaxCounterValue}}})
	asCoworker := thief.set(id, "location_desc", "宿舍三楼")
	signed := &asCoworker.Record.Fields["location_desc"][0]
	signed.HLC.Replica, signed.Author = coworker.dev, coworker.user
	signed.Vector = syncproto.Vector{}.Update(coworker.dev, env.Clock.Now())
	event := func(typ string) syncproto.Change {
		return thief.appendItem(id, "events", `{"actor_role":"office_head","occurred_at":"2024-10-15T09:00:00+08:00","payload":{"deadline":"2024-10-20","responsible":{"name":"何志远"}},"type":"`+typ+`"}`)
	}
	changes := []syncproto.Change{forged, asCoworker, event("confirmed"), event("notice_issued"), event("closed")}
	resp := push(t, sy, thief, g, changes...)
	wantCodes := []string{syncproto.EINVALID, syncproto.EFORBIDDEN, syncproto.EFORBIDDEN, syncproto.EFORBIDDEN, syncproto.EFORBIDDEN}
	for i, res := range resp.Results {
		if res.Status != syncproto.StatusRejected || res.Error == nil || res.Error.Code != wantCodes[i] {
			t.Errorf("change %d: %s %+v, want rejected %s", i, res.Status, res.Error, wantCodes[i])
		}
	}
	after, err := sy.Record(ctx, s, id)
	if err != nil {
		t.Fatal(err)
	}
	if after.Rev != r.Rev || len(after.Items["events"]) != 0 {
		t.Fatalf("refused changes were written: rev %d → %d, %d events", r.Rev, after.Rev, len(after.Items["events"]))
	}

	// The co-worker, offline all along, edits the description: applied,
	// and the state holds it.
	edit := coworker.set(id, "description", "复查：仍未整改")
	resp = push(t, sy, coworker, g, edit)
	wantStatuses(t, resp, syncproto.StatusApplied)
	final, err := sy.Record(ctx, s, id)
	if err != nil {
		t.Fatal(err)
	}
	if got := value(final, "description"); got != "复查：仍未整改" {
		t.Errorf("description %q: the co-worker's edit was lost", got)
	}
}

// testLargeRecords: a state beyond MaxRecordBytes is refused and written
// nowhere; records within it, however many in one school, are all pulled,
// in pages whose JSON stays within MaxPullBytes (one record at least).
func testLargeRecords(t *testing.T, env Env) {
	sy := newSyncer(env, env.Store)
	sy.Limits.MaxRecordBytes, sy.Limits.MaxPullBytes = 64<<10, 150<<10
	s := newID().String()
	g := server.Grant{Schools: []string{s}}
	ph := newPhone(env.Clock)
	big := strings.Repeat("隐", 50<<10/3) // 50 KB of text
	var want []uuid.UUID
	for i := range 14 {
		c := ph.create(s, "visit", "summary", big+itoa(i))
		want = append(want, c.Record.ID)
		wantStatuses(t, push(t, sy, ph, g, c), syncproto.StatusApplied)
	}
	// Two 50 KB fields make a state of 100 KB: refused.
	huge := ph.set(want[0], "problems", big)
	resp := push(t, sy, ph, g, huge)
	if r := resp.Results[0]; r.Status != syncproto.StatusRejected || r.Error.Code != syncproto.ETOOLARGE {
		t.Errorf("a record over the limit: %s %+v", r.Status, r.Error)
	}
	if r, err := sy.Record(t.Context(), s, want[0]); err != nil || r.Rev != 1 {
		t.Errorf("the refused change was written: %v %v", r.Rev, err)
	}

	got := map[uuid.UUID]bool{}
	cur := ""
	for pages := 0; ; pages++ {
		if pages > 20 {
			t.Fatal("pull does not end")
		}
		c, err := syncproto.DecodeCursor(cur)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := pull(t, sy, ph, []string{s}, syncproto.PullRequest{Protocol: syncproto.ProtocolVersion, Cursor: cur}, c)
		if err != nil {
			t.Fatal(err)
		}
		var size int64
		for _, r := range resp.Records {
			b, _ := syncproto.Marshal(r)
			size += int64(len(b))
			got[r.ID] = true
		}
		if len(resp.Records) == 0 && resp.More {
			t.Fatal("an empty page that says there is more")
		}
		if len(resp.Records) > 1 && size > sy.Limits.MaxPullBytes {
			t.Errorf("a page of %d records holds %d bytes, over the %d budget", len(resp.Records), size, sy.Limits.MaxPullBytes)
		}
		cur = resp.Cursor
		if !resp.More {
			break
		}
	}
	for _, id := range want {
		if !got[id] {
			t.Errorf("record %s was never pulled", id)
		}
	}
}

// testCursorBeyondEnd: a cursor of the right epoch but past the end of a
// school's log cannot have been issued (a phone holding it would skip that
// school's next changes): start over.
func testCursorBeyondEnd(t *testing.T, env Env) {
	sy := newSyncer(env, env.Store)
	s := newID().String()
	g := server.Grant{Schools: []string{s}}
	ph := newPhone(env.Clock)
	push(t, sy, ph, g, ph.create(s, "visit", "theme", "a"), ph.create(s, "visit", "theme", "b"))
	_, cur := pullAll(t, sy, ph, []string{s}, "", 0)
	c, err := syncproto.DecodeCursor(cur)
	if err != nil {
		t.Fatal(err)
	}
	for _, ahead := range []int64{1, 100000} {
		forged := syncproto.Cursor{Epoch: c.Epoch, Pos: map[string]int64{s: c.Pos[s] + ahead}}
		_, err := pull(t, sy, ph, []string{s}, syncproto.PullRequest{Protocol: syncproto.ProtocolVersion, Cursor: forged.Encode()}, forged)
		if syncproto.ErrorCode(err) != syncproto.ESTALE {
			t.Errorf("cursor %d beyond the end: %v, want start over", ahead, err)
		}
	}
	// The true cursor still works, and sees what comes next.
	push(t, sy, ph, g, ph.create(s, "visit", "theme", "c"))
	if recs, _ := pullAll(t, sy, ph, []string{s}, cur, 0); len(recs) != 1 {
		t.Errorf("pulled %d records after the true cursor, want 1", len(recs))
	}
}

// testMaintenance: storage stops growing. After the journal's retention a
// run forgets the journal and compacts the scopes written since the last
// run, once across processes; a batch sent again after its journal was
// forgotten is applied again and writes nothing new.
func testMaintenance(t *testing.T, env Env) {
	ms, ok := env.Store.(server.MaintenanceStore)
	if !ok {
		t.Skip("the store has no maintenance")
	}
	ctx := t.Context()
	sy := newSyncer(env, env.Store)
	s1, s2 := newID().String(), newID().String()
	g := server.Grant{Schools: []string{s1, s2}}
	ph := newPhone(env.Clock)
	a, b := ph.create(s1, "hazard", "title", "护栏松动"), ph.create(s2, "visit", "theme", "食堂")
	push(t, sy, ph, g, a, b)
	var last syncproto.Change
	var lastBatch uuid.UUID
	for i := range 5 {
		last, lastBatch = ph.set(a.Record.ID, "title", "护栏松动 "+itoa(i)), newID()
		if _, err := pushBatch(t, sy, ph, g, lastBatch, last); err != nil {
			t.Fatal(err)
		}
	}
	m := server.NewMaintenance(ms)
	m.Now = env.Clock.Now
	env.Clock.Advance(m.JournalRetention + 48*time.Hour)
	rep, err := m.Once(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Ran || rep.Forgotten == 0 || rep.Scopes < 2 || rep.Superseded < 5 {
		t.Errorf("first run: %+v, want the journal forgotten, both scopes compacted, 5 revisions superseded", rep)
	}
	// Another process in the same period does nothing.
	m2 := server.NewMaintenance(env.Second().(server.MaintenanceStore))
	m2.Now = env.Clock.Now
	if rep, err := m2.Once(ctx); err != nil || rep.Ran {
		t.Errorf("second run in one period: %+v %v", rep, err)
	}
	// The next period: nothing was written, nothing is compacted.
	env.Clock.Advance(m.Every)
	if rep, err := m.Once(ctx); err != nil || !rep.Ran || rep.Scopes != 0 {
		t.Errorf("run without writes: %+v %v, want no scope compacted", rep, err)
	}
	before, err := sy.Record(ctx, s1, a.Record.ID)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := pushBatch(t, sy, ph, g, lastBatch, last)
	if err != nil {
		t.Fatal(err)
	}
	after, err := sy.Record(ctx, s1, a.Record.ID)
	if err != nil {
		t.Fatal(err)
	}
	if resp.Results[0].Status == syncproto.StatusRejected || after.Rev != before.Rev || !after.Equal(before) {
		t.Errorf("a batch sent again after its journal was forgotten: %+v, rev %d → %d", resp.Results[0], before.Rev, after.Rev)
	}
	if value(after, "title") != "护栏松动 4" {
		t.Errorf("title %q after compaction", value(after, "title"))
	}
}
