package mobile_test

import (
	"context"
	"testing"

	"github.com/fieldsync/fieldsync/mobile"
	"github.com/fieldsync/fieldsync/mobile/mobiletest"
	"github.com/fieldsync/fieldsync/syncproto"
)

func TestRejectedChange(t *testing.T) {
	srv := mobiletest.NewServer()
	// The server refuses hazards without a location, as its forms would.
	srv.Reject = func(ch syncproto.Change) *syncproto.Error {
		if ch.Record.Kind == "hazard" && string(ch.Record.Value("location_desc")) == `""` {
			return syncproto.FieldError("The hazard is not valid.", map[string]string{"location_desc": "必填"})
		}
		return nil
	}
	p := newPhone(t, srv, "a")
	good := p.save(hazardDraft("好"))
	d := hazardDraft("缺地点")
	d.Values["location_desc"] = js("")
	bad := p.save(d)
	rep := p.sync()
	if rep.Applied != 1 || rep.Rejected != 1 {
		t.Fatalf("report %+v", rep)
	}
	probs, err := p.E.Problems()
	if err != nil {
		t.Fatal(err)
	}
	if len(probs) != 1 || probs[0].Type != mobile.ProblemRejected || probs[0].RecordID != bad.ID.String() ||
		probs[0].FieldErrors["location_desc"] != "必填" {
		t.Fatalf("problems %+v", probs)
	}
	// Not retried by itself; the local record keeps the inspector's values.
	if rep := p.sync(); rep.Pushed != 0 {
		t.Fatalf("a rejected change was pushed again: %+v", rep)
	}
	if _, err := p.E.Record(bad.ID); err != nil {
		t.Fatal(err)
	}
	// Fixing the record re-submits the rejected change with the fix.
	p.save(mobile.Draft{ID: bad.ID, Values: vals("location_desc", "食堂后门")})
	if probs, _ := p.E.Problems(); len(probs) != 0 {
		t.Fatalf("problems after the fix: %+v", probs)
	}
	p.sync()
	sr := srv.Records()[bad.ID]
	if sr == nil || string(sr.Value("title")) != `"缺地点"` || string(sr.Value("location_desc")) != `"食堂后门"` {
		t.Fatalf("server record after the fix: %+v", sr)
	}
	_ = good
	assertConverged(t, srv, p)
}

func TestDiscardRejected(t *testing.T) {
	srv := mobiletest.NewServer()
	p := newPhone(t, srv, "a")
	r := p.save(hazardDraft("原标题"))
	p.sync()
	srv.Reject = func(ch syncproto.Change) *syncproto.Error {
		return syncproto.Errorf(syncproto.ECONFLICT, "The visit was accepted; it can no longer be edited.")
	}
	p.save(mobile.Draft{ID: r.ID, Values: vals("title", "被拒绝的修改")})
	p.sync()
	probs, _ := p.E.Problems()
	if len(probs) != 1 || probs[0].Code != syncproto.ECONFLICT {
		t.Fatalf("problems %+v", probs)
	}
	srv.Reject = nil
	if err := p.E.DiscardRejected(probs[0].ID); err != nil {
		t.Fatal(err)
	}
	got, _ := p.E.Record(r.ID)
	if v := string(got.Value("title")); v != `"原标题"` {
		t.Fatalf("title after discard %s", v)
	}
	assertConverged(t, srv, p)
}

func TestRetryRejected(t *testing.T) {
	srv := mobiletest.NewServer()
	p := newPhone(t, srv, "a")
	srv.Reject = func(ch syncproto.Change) *syncproto.Error {
		return syncproto.Errorf(syncproto.EFORBIDDEN, "This school is not assigned to you.")
	}
	r := p.save(hazardDraft("x"))
	p.sync()
	probs, _ := p.E.Problems()
	if len(probs) != 1 {
		t.Fatalf("problems %+v", probs)
	}
	srv.Reject = nil // the office fixed the assignment
	if err := p.E.RetryRejected(probs[0].ID); err != nil {
		t.Fatal(err)
	}
	p.sync()
	if srv.Records()[r.ID] == nil {
		t.Fatal("retried change not on the server")
	}
	assertConverged(t, srv, p)
}

func TestConflictListedAndResolved(t *testing.T) {
	srv := mobiletest.NewServer()
	a, b := newPhone(t, srv, "a"), newPhone(t, srv, "b")
	r := a.save(hazardDraft("共享"))
	a.sync()
	b.sync()
	// Both edit the same field offline.
	a.save(mobile.Draft{ID: r.ID, Values: vals("severity", "high")})
	b.save(mobile.Draft{ID: r.ID, Values: vals("severity", "low")})
	a.sync()
	rep := b.sync()
	if rep.Conflicts != 1 {
		t.Fatalf("report %+v", rep)
	}
	a.sync()
	for _, p := range []*phone{a, b} {
		probs, _ := p.E.Problems()
		if len(probs) != 1 || probs[0].Type != mobile.ProblemConflict || len(probs[0].Versions["severity"]) != 2 {
			t.Fatalf("%s problems %+v", p.Name, probs)
		}
	}
	if err := b.E.ResolveConflict(r.ID, "severity", js("medium")); err != nil {
		t.Fatal(err)
	}
	b.sync()
	a.sync()
	assertConverged(t, srv, a, b)
	sr := srv.Records()[r.ID]
	if sr.Fields["severity"].InConflict() || string(sr.Value("severity")) != `"medium"` {
		t.Fatalf("severity after resolve: %+v", sr.Fields["severity"])
	}
	if len(sr.Conflicts) != 2 {
		t.Fatalf("conflict log holds %d versions, want both losers", len(sr.Conflicts))
	}
	if probs, _ := a.E.Problems(); len(probs) != 0 {
		t.Fatalf("problems after resolve %+v", probs)
	}
}

func TestStaleCursorRestartsPull(t *testing.T) {
	srv := mobiletest.NewServer()
	a, b := newPhone(t, srv, "a"), newPhone(t, srv, "b")
	a.save(hazardDraft("1"))
	a.sync()
	b.sync()
	srv.NewEpoch()
	b.save(hazardDraft("2"))
	rep := b.sync()
	if rep.Restarts != 1 {
		t.Fatalf("report %+v", rep)
	}
	a.sync()
	assertConverged(t, srv, a, b)
}

// TestServerRestoredFromBackup: the server loses recent records. After
// the stale cursor, a phone that wrote such a record pushes it again; a
// phone that only pulled it drops it and gets it back from the server.
func TestServerRestoredFromBackup(t *testing.T) {
	srv := mobiletest.NewServer()
	a, b := newPhone(t, srv, "a"), newPhone(t, srv, "b")
	a.save(hazardDraft("备份前"))
	a.sync()
	snap := srv.Snapshot()
	lost := a.save(hazardDraft("服务器恢复后丢失"))
	a.sync()
	b.sync()
	srv.Restore(snap)
	rep := a.sync()
	if rep.Restarts != 1 || rep.Requeued != 1 {
		t.Fatalf("report %+v", rep)
	}
	if srv.Records()[lost.ID] == nil {
		t.Fatal("the phone did not give the server back the record it lost")
	}
	b.sync()
	assertConverged(t, srv, a, b)
}

func TestTooLargeSplitsBatch(t *testing.T) {
	srv := mobiletest.NewServer()
	p := newPhone(t, srv, "a")
	for range 6 {
		p.save(hazardDraft("x"))
	}
	p.E.Close()
	p.Opts.Transport = &tooLargeTransport{Transport: p.Opts.Transport, max: 2}
	p.Open(t)
	rep := p.sync()
	if rep.Applied != 6 || rep.Rejected != 0 {
		t.Fatalf("report %+v", rep)
	}
	assertConverged(t, srv, p)
}

// tooLargeTransport refuses pushes of more than max changes with ETOOLARGE.
type tooLargeTransport struct {
	mobile.Transport
	max int
}

func (t *tooLargeTransport) Push(ctx context.Context, req *syncproto.PushRequest) (*syncproto.PushResponse, error) {
	if len(req.Changes) > t.max {
		return nil, syncproto.Errorf(syncproto.ETOOLARGE, "Too many changes.")
	}
	return t.Transport.Push(ctx, req)
}
