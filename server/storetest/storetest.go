// Package storetest is the contract of server.SyncStore (with
// server.MaintenanceStore) and server.DeviceStore, written once and run
// against every implementation (server/mongo runs it on a real FerretDB
// or MongoDB under make test; server/memstore on its in-memory stores in
// every go test run), in the manner of upspin's storagetest and
// litestream's RunWithReplicaClient. The tests drive the store through
// server.Syncer, as the HTTP layer does, and through the store directly
// where the property is the store's own (gap-free reads, hole filling).
//
// It is imported only by _test.go files. It must not import a storage
// driver or Fiber: implementations hand it their store through Env.
package storetest

import (
	"context"
	"encoding/json"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/fieldsync/fieldsync/server"
	"github.com/fieldsync/fieldsync/syncproto"
)

// Env is what the contract needs from an implementation under test.
type Env struct {
	// Store is a fresh, empty store.
	Store server.SyncStore
	// Second returns another store on the same data, as a second fieldsync
	// process would have: nothing shared in memory with Store.
	Second func() server.SyncStore
	// Reserve allocates n sequence numbers in scope through st and writes
	// nothing, as a writer killed between allocating and writing would.
	Reserve func(ctx context.Context, st server.SyncStore, scope string, n int) error
	// Clock is the clock of every store of the Env. The tests move it.
	Clock *Clock
	// Lease is the stores' lease: holes older than this are filled.
	Lease time.Duration
}

// Factory returns a fresh Env for one test; it registers its own cleanup.
type Factory func(t *testing.T) Env

// Clock is a settable clock, safe for concurrent use.
type Clock struct {
	mu sync.Mutex
	t  time.Time
}

// NewClock returns a clock that stands at t until moved.
func NewClock(t time.Time) *Clock { return &Clock{t: t} }

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

// Advance moves the clock forward by d.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// Start is where test clocks start: a Tuesday morning in Beijing time.
var Start = time.Date(2024, 10, 15, 8, 0, 0, 0, time.UTC)

// TestSyncStore runs the whole contract. Each subtest gets its own Env.
func TestSyncStore(t *testing.T, open Factory) {
	tests := []struct {
		name string
		fn   func(*testing.T, Env)
	}{
		{"ApplyNew", testApplyNew},
		{"EditsMerge", testEditsMerge},
		{"RetriedBatchSameResults", testRetriedBatch},
		{"OpReusedDifferentContent", testOpReused},
		{"RejectedDoesNotBlockBatch", testRejectedDoesNotBlock},
		{"ConcurrentEditsConflictStored", testConflictStored},
		{"ConflictResolvedByPhone", testConflictResolvedByPhone},
		{"ServerFields", testServerFields},
		{"Limits", testLimits},
		{"Validator", testValidator},
		{"PullScopes", testPullScopes},
		{"StaleEpoch", testStaleEpoch},
		{"Tombstones", testTombstones},
		{"HorizonStartOver", testHorizon},
		{"HoleFilledAfterLease", testHoleFilled},
		{"PullGapFree", testPullGapFree},
		{"ForgedHistoryRefused", testForgedHistory},
		{"LargeRecords", testLargeRecords},
		{"CursorBeyondEndStartsOver", testCursorBeyondEnd},
		{"Maintenance", testMaintenance},
		{"ConcurrentPushesOneRecord", testConcurrentPushes},
		{"ConcurrentPushesOneProcess", testConcurrentPushesOneProcess},
		{"ConcurrentSameBatch", testConcurrentSameBatch},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tt.fn(t, open(t))
		})
	}
}

// office is the server's replica in the tests.
var office = uuid.MustParse("0192b000-0000-7000-8000-00000000f000")

func newSyncer(env Env, st server.SyncStore) *server.Syncer {
	sy := server.NewSyncer(st, office)
	sy.Now = env.Clock.Now
	sy.Access = &server.Access{Assigned: func(_ context.Context, inspector string) ([]string, error) {
		v, _ := assigned.Load(inspector)
		ids, _ := v.([]string)
		return ids, nil
	}}
	return sy
}

// assigned holds the schools of the test phones' inspectors, as the
// devices service would find them assigned today (server.Access reads
// it): the push and pull helpers assign a phone exactly what it is given.
var assigned sync.Map

// assign makes schools (reference data aside) the ones ph's inspector is
// assigned to.
func assign(ph *phone, schools ...string) {
	ids := slices.DeleteFunc(slices.Clone(schools), func(s string) bool { return s == server.RefScope })
	slices.Sort(ids)
	assigned.Store(ph.p.InspectorID, slices.Compact(ids))
}

// pull pulls as ph with the given schools assigned.
func pull(t testing.TB, sy *server.Syncer, ph *phone, schools []string, req syncproto.PullRequest, cur syncproto.Cursor) (syncproto.PullResponse, error) {
	t.Helper()
	assign(ph, schools...)
	return sy.Pull(t.Context(), ph.p, req, cur)
}

// newID returns a new UUIDv7.
func newID() uuid.UUID { return uuid.Must(uuid.NewV7()) }

// phone is a simulated device with its local copies of records.
type phone struct {
	dev   uuid.UUID
	user  string
	clock *Clock
	w     syncproto.Writer
	local map[uuid.UUID]*syncproto.Record
	p     server.Principal
}

func newPhone(clock *Clock) *phone {
	dev := newID()
	user := newID().String()
	return &phone{
		dev: dev, user: user, clock: clock,
		w:     syncproto.Writer{Replica: dev, Author: user},
		local: map[uuid.UUID]*syncproto.Record{},
		p:     server.Principal{DeviceID: dev, UserID: user, InspectorID: newID().String(), Roles: []string{server.RoleInspector}, Replica: dev},
	}
}

func jsonString(s string) json.RawMessage {
	b, _ := json.Marshal(s)
	return b
}

// create makes a new record with the given fields and returns its change.
func (ph *phone) create(school, kind string, kv ...string) syncproto.Change {
	r := &syncproto.Record{ID: newID(), Kind: kind, SchoolID: school, CreatedAt: ph.clock.Now().UTC(), CreatedBy: ph.user}
	var delta *syncproto.Record
	for i := 0; i+1 < len(kv); i += 2 {
		var d *syncproto.Record
		ph.w.Now = ph.clock.Now()
		r, d = syncproto.Set(r, kv[i], jsonString(kv[i+1]), &ph.w)
		if delta == nil {
			delta = d
		} else {
			delta, _ = syncproto.Merge(delta, d)
		}
	}
	if delta == nil {
		delta = r.Header()
	}
	ph.local[r.ID] = r
	return syncproto.Change{OpID: newID(), Record: delta}
}

// set edits a field of the phone's copy of a record.
func (ph *phone) set(id uuid.UUID, field, value string) syncproto.Change {
	r := ph.local[id]
	base := r.Version()
	ph.w.Now = ph.clock.Now()
	next, delta := syncproto.Set(r, field, jsonString(value), &ph.w)
	ph.local[id] = next
	return syncproto.Change{OpID: newID(), Record: delta, Base: base}
}

// del deletes the phone's copy of a record.
func (ph *phone) del(id uuid.UUID) syncproto.Change {
	r := ph.local[id]
	base := r.Version()
	ph.w.Now = ph.clock.Now()
	next, delta := syncproto.Delete(r, &ph.w)
	ph.local[id] = next
	return syncproto.Change{OpID: newID(), Record: delta, Base: base}
}

// appendItem appends an item to a collection of the phone's copy.
func (ph *phone) appendItem(id uuid.UUID, coll string, data string) syncproto.Change {
	r := ph.local[id]
	base := r.Version()
	ph.w.Now = ph.clock.Now()
	next, delta := syncproto.Append(r, coll, newID().String(), json.RawMessage(data), &ph.w)
	ph.local[id] = next
	return syncproto.Change{OpID: newID(), Record: delta, Base: base}
}

// learn merges a record received from the server into the phone's copy.
func (ph *phone) learn(t testing.TB, r *syncproto.Record) {
	t.Helper()
	m, err := syncproto.Merge(ph.local[r.ID], r)
	if err != nil {
		t.Fatalf("merge pulled %s: %v", r.ID, err)
	}
	ph.local[r.ID] = m
	for _, f := range r.Fields {
		for _, v := range f {
			ph.w.Clock = ph.w.Clock.Observe(v.HLC)
		}
	}
}

// request builds a push request as a phone sends it, decoded as the API
// decodes it.
func request(t testing.TB, dev uuid.UUID, batch uuid.UUID, changes ...syncproto.Change) (syncproto.PushRequest, map[int]*syncproto.Error) {
	t.Helper()
	body, err := syncproto.Marshal(syncproto.PushRequest{Protocol: syncproto.ProtocolVersion, DeviceID: dev, BatchID: batch, Changes: changes})
	if err != nil {
		t.Fatal(err)
	}
	req, rejected, err := syncproto.DecodePush(body)
	if err != nil {
		t.Fatalf("decode push: %v", err)
	}
	return req, rejected
}

// push sends changes in a new batch and fails the test on a request error.
func push(t testing.TB, sy *server.Syncer, ph *phone, g server.Grant, changes ...syncproto.Change) syncproto.PushResponse {
	t.Helper()
	resp, err := pushBatch(t, sy, ph, g, newID(), changes...)
	if err != nil {
		t.Fatalf("push: %v", err)
	}
	return resp
}

// pushBatch pushes as ph, with the schools of g assigned to it (a grant of
// all schools is the office's: ph must then be an office principal).
func pushBatch(t testing.TB, sy *server.Syncer, ph *phone, g server.Grant, batch uuid.UUID, changes ...syncproto.Change) (syncproto.PushResponse, error) {
	t.Helper()
	if g.AllSchools && ph.p.IsDevice() {
		t.Fatalf("a device is never granted every school: %+v", ph.p)
	}
	assign(ph, g.Schools...)
	req, rejected := request(t, ph.dev, batch, changes...)
	return sy.Push(t.Context(), ph.p, req, rejected)
}

// wantStatuses checks the statuses of a push response.
func wantStatuses(t testing.TB, resp syncproto.PushResponse, want ...string) {
	t.Helper()
	if len(resp.Results) != len(want) {
		t.Fatalf("%d results, want %d: %+v", len(resp.Results), len(want), resp.Results)
	}
	for i, w := range want {
		if got := resp.Results[i].Status; got != w {
			t.Errorf("result %d: status %s (%+v), want %s", i, got, resp.Results[i].Error, w)
		}
	}
}

// pullAll pulls every page from cur and returns the records and the final
// cursor.
func pullAll(t testing.TB, sy *server.Syncer, ph *phone, scopes []string, cur string, limit int) ([]*syncproto.Record, string) {
	t.Helper()
	var out []*syncproto.Record
	for range 10000 {
		c, err := syncproto.DecodeCursor(cur)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := pull(t, sy, ph, scopes, syncproto.PullRequest{Protocol: syncproto.ProtocolVersion, Cursor: cur, Limit: limit}, c)
		if err != nil {
			t.Fatalf("pull: %v", err)
		}
		out = append(out, resp.Records...)
		cur = resp.Cursor
		if !resp.More {
			return out, cur
		}
	}
	t.Fatal("pull does not end")
	return nil, ""
}

func value(r *syncproto.Record, field string) string {
	var s string
	_ = json.Unmarshal(r.Value(field), &s)
	return s
}

func itoa(i int) string { return strconv.Itoa(i) }
