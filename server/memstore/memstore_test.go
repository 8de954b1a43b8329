package memstore_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/fieldsync/fieldsync/server"
	"github.com/fieldsync/fieldsync/server/memstore"
	"github.com/fieldsync/fieldsync/server/storetest"
	"github.com/fieldsync/fieldsync/syncproto"
)

// testLease is the lease of the stores under test; the tests move a fake
// clock past it rather than wait.
const testLease = 30 * time.Second

// TestSyncStore runs the store contract on the in-memory store, in every
// go test run.
func TestSyncStore(t *testing.T) {
	storetest.TestSyncStore(t, func(t *testing.T) storetest.Env {
		clock := storetest.NewClock(storetest.Start)
		data := memstore.NewData()
		open := func() server.SyncStore {
			st := memstore.NewSyncStore(data)
			st.Now, st.Lease = clock.Now, testLease
			return st
		}
		return storetest.Env{
			Store:  open(),
			Second: open,
			Reserve: func(ctx context.Context, s server.SyncStore, scope string, n int) error {
				_, err := s.(*memstore.SyncStore).Reserve(ctx, scope, n)
				return err
			},
			Clock: clock,
			Lease: testLease,
		}
	})
}

// TestDeviceStore runs the device store contract on the in-memory store.
func TestDeviceStore(t *testing.T) {
	storetest.TestDeviceStore(t, func(t *testing.T) server.DeviceStore { return memstore.NewDeviceStore() })
}

var school = "0192b000-0000-7000-8000-000000000103"

// newStore returns a store on fresh data with a clock the test moves.
func newStore() (*memstore.SyncStore, *storetest.Clock) {
	clock := storetest.NewClock(storetest.Start)
	st := memstore.NewSyncStore(nil)
	st.Now, st.Lease = clock.Now, testLease
	return st, clock
}

// state returns revision rev of a record of school with one field.
func state(id uuid.UUID, rev int64, title string) *syncproto.Record {
	r := &syncproto.Record{ID: id, Kind: "hazard", SchoolID: school, CreatedAt: storetest.Start, CreatedBy: "u1"}
	w := &syncproto.Writer{Replica: uuid.MustParse("0192b000-0000-7000-8000-0000000000a1"), Author: "u1", Now: storetest.Start}
	b, _ := json.Marshal(title)
	r, _ = syncproto.Set(r, "title", b, w)
	r.Rev = rev
	return r
}

// TestSlowWriterLosesItsSlot stops a writer between allocating its slot
// and writing it, moves the clock past the lease and lets a reader fill
// the slot: the writer must write its state in a new slot, and a reader
// must see it exactly once, after the filled one.
func TestSlowWriterLosesItsSlot(t *testing.T) {
	ctx := t.Context()
	st, clock := newStore()
	first := state(uuid.Must(uuid.NewV7()), 1, "灭火器过期")
	if _, err := st.Insert(ctx, []*syncproto.Record{first}); err != nil {
		t.Fatal(err)
	}
	reader := memstore.NewSyncStore(st.Data())
	reader.Now, reader.Lease = clock.Now, testLease
	slow := memstore.NewSyncStore(st.Data())
	slow.Now, slow.Lease = clock.Now, testLease
	var during server.ChangesPage
	blocks := 0
	slow.SetAfterAlloc(func(scope string, first int64, n int) {
		if blocks++; blocks > 1 {
			return
		}
		clock.Advance(testLease + time.Second)
		var err error
		if during, err = reader.Changes(ctx, scope, 0, 100, 1<<20); err != nil {
			t.Error(err)
		}
	})
	late := state(uuid.Must(uuid.NewV7()), 1, "电线裸露")
	exists, err := slow.Insert(ctx, []*syncproto.Record{late})
	if err != nil {
		t.Fatal(err)
	}
	if exists[0] || blocks != 2 {
		t.Fatalf("insert: exists %v after %d blocks, want written in a second block", exists, blocks)
	}
	if len(during.Records) != 1 || during.Records[0].ID != first.ID || during.Pos != 2 {
		t.Fatalf("reader in the window: %d records up to %d, want the first record and the filled slot 2", len(during.Records), during.Pos)
	}
	page, err := reader.Changes(ctx, school, during.Pos, 100, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Records) != 1 || page.Records[0].ID != late.ID || page.Pos != 3 {
		t.Fatalf("after the window: %d records up to %d, want the late record at 3", len(page.Records), page.Pos)
	}
	all, err := reader.Changes(ctx, school, 0, 100, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	if len(all.Records) != 2 {
		t.Errorf("the whole log holds %d states, want 2", len(all.Records))
	}
}

func TestBadInput(t *testing.T) {
	ctx := t.Context()
	st, _ := newStore()
	id := uuid.Must(uuid.NewV7())
	noSchool := state(id, 1, "x")
	noSchool.SchoolID = "school:1"
	tests := []struct {
		name string
		run  func() error
		code string // "" for an error without a code (EINTERNAL)
	}{
		{"RevZero", func() error { _, err := st.Insert(ctx, []*syncproto.Record{state(id, 0, "x")}); return err }, syncproto.EINTERNAL},
		{"SameRevTwice", func() error {
			_, err := st.Insert(ctx, []*syncproto.Record{state(id, 1, "x"), state(id, 1, "y")})
			return err
		}, syncproto.EINTERNAL},
		{"BadScope", func() error { _, err := st.Insert(ctx, []*syncproto.Record{noSchool}); return err }, syncproto.EINVALID},
		{"NegativePosition", func() error { _, err := st.Changes(ctx, school, -1, 10, 1<<20); return err }, syncproto.EINVALID},
		{"ChangesBadScope", func() error { _, err := st.Changes(ctx, "school:1", 0, 10, 1<<20); return err }, syncproto.EINVALID},
		{"CurrentBadScope", func() error { _, err := st.Current(ctx, "", id); return err }, syncproto.EINVALID},
		{"CompactBadScope", func() error { _, err := st.Compact(ctx, "x", server.CompactOptions{}); return err }, syncproto.EINVALID},
		{"ReserveBadScope", func() error { _, err := st.Reserve(ctx, "x", 1); return err }, syncproto.EINVALID},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := syncproto.ErrorCode(tt.run()); got != tt.code {
				t.Errorf("code %q, want %q", got, tt.code)
			}
		})
	}
	if page, err := st.Changes(ctx, school, 0, 10, 1<<20); err != nil || len(page.Records) != 0 || page.Pos != 0 {
		t.Errorf("a refused insert wrote something: %+v, %v", page, err)
	}
}

// TestNothingAliased checks that the store keeps copies: changing a
// record after inserting it, or one read back, changes nothing stored.
func TestNothingAliased(t *testing.T) {
	ctx := t.Context()
	st, _ := newStore()
	r := state(uuid.Must(uuid.NewV7()), 1, "灭火器过期")
	if _, err := st.Insert(ctx, []*syncproto.Record{r}); err != nil {
		t.Fatal(err)
	}
	want, _ := syncproto.Marshal(r)
	r.Fields["title"][0].Value = json.RawMessage(`"changed"`)
	got, err := st.Current(ctx, school, r.ID)
	if err != nil {
		t.Fatal(err)
	}
	got.Kind = "visit"
	again, err := st.Current(ctx, school, r.ID)
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := syncproto.Marshal(again); string(b) != string(want) {
		t.Errorf("stored state changed:\n%s\nwant\n%s", b, want)
	}
}

func TestForgetJournal(t *testing.T) {
	ctx := t.Context()
	st, clock := newStore()
	old, recent := uuid.Must(uuid.NewV7()), uuid.Must(uuid.NewV7())
	batch := uuid.Must(uuid.NewV7())
	if _, err := st.ClaimOps(ctx, batch, []server.OpDigest{{OpID: old, Digest: "a"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := st.SaveBatch(ctx, server.StoredBatch{ID: batch, Digest: "d", At: clock.Now()}); err != nil {
		t.Fatal(err)
	}
	clock.Advance(time.Hour)
	if _, err := st.ClaimOps(ctx, uuid.Must(uuid.NewV7()), []server.OpDigest{{OpID: recent, Digest: "b"}}); err != nil {
		t.Fatal(err)
	}
	n, err := st.ForgetJournal(ctx, clock.Now().Add(-time.Minute))
	if err != nil || n != 2 {
		t.Fatalf("forgot %d, %v; want the old op and the old batch", n, err)
	}
	seen, err := st.ClaimOps(ctx, uuid.Must(uuid.NewV7()), []server.OpDigest{{OpID: old, Digest: "c"}, {OpID: recent, Digest: "b"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := seen[old]; ok || seen[recent].Digest != "b" {
		t.Errorf("after forgetting: seen %v, want only the recent op", seen)
	}
	if _, err := st.Batch(ctx, batch); syncproto.ErrorCode(err) != syncproto.ENOTFOUND {
		t.Errorf("forgotten batch: %v, want not_found", err)
	}
}

// TestEpochFromNewID checks that the epoch comes from Data.NewID when set,
// so that a seeded simulation gets the same epoch on every run.
func TestEpochFromNewID(t *testing.T) {
	want := uuid.MustParse("0192b000-0000-7000-8000-0000000000e1")
	data := memstore.NewData()
	data.NewID = func() uuid.UUID { return want }
	for i := range 2 {
		got, err := memstore.NewSyncStore(data).Epoch(t.Context())
		if err != nil || got != want {
			t.Errorf("store %d: epoch %s, %v; want %s", i, got, err, want)
		}
	}
}
