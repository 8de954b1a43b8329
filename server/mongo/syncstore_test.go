package mongo_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/google/uuid"
	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/fieldsync/fieldsync/internal/testenv"
	"github.com/fieldsync/fieldsync/server"
	servermongo "github.com/fieldsync/fieldsync/server/mongo"
	"github.com/fieldsync/fieldsync/server/storetest"
	"github.com/fieldsync/fieldsync/syncproto"
)

// testLease is the lease of the stores under test; the tests move a fake
// clock past it rather than wait.
const testLease = 30 * time.Second

// TestSyncStore runs the store contract against the MongoDB-wire server of
// the environment (FerretDB v1 under make test).
func TestSyncStore(t *testing.T) {
	storetest.TestSyncStore(t, newEnv)
}

// newEnv opens a store on a fresh database, and second stores on it as
// other processes would.
func newEnv(t *testing.T) storetest.Env {
	db := testenv.Mongo(t)
	clock := storetest.NewClock(storetest.Start)
	open := func() server.SyncStore {
		st := servermongo.NewSyncStore(db.Database())
		st.Now, st.Lease = clock.Now, testLease
		return st
	}
	st := open().(*servermongo.SyncStore)
	if err := st.EnsureIndexes(t.Context()); err != nil {
		t.Fatal(err)
	}
	return storetest.Env{
		Store:  st,
		Second: open,
		Reserve: func(ctx context.Context, s server.SyncStore, scope string, n int) error {
			_, err := s.(*servermongo.SyncStore).Reserve(ctx, scope, n)
			return err
		},
		Clock: clock,
		Lease: testLease,
	}
}

// TestConcurrentPushesSoak is the long, randomized run of the concurrency
// contract (storetest.ConcurrentPushes): with FIELDSYNC_SOAK=DURATION it
// runs seed after seed, with 2 to 8 devices, one or two processes, until
// the duration is spent, and prints the totals. FIELDSYNC_SOAK_SEED sets
// the first seed, to replay a failure. make soak runs it.
func TestConcurrentPushesSoak(t *testing.T) {
	d := os.Getenv("FIELDSYNC_SOAK")
	if d == "" {
		t.Skip("set FIELDSYNC_SOAK=DURATION (e.g. 5m) to run the long concurrency test")
	}
	dur, err := time.ParseDuration(d)
	if err != nil {
		t.Fatalf("FIELDSYNC_SOAK: %v", err)
	}
	first := uint64(1)
	if v := os.Getenv("FIELDSYNC_SOAK_SEED"); v != "" {
		if first, err = strconv.ParseUint(v, 10, 64); err != nil {
			t.Fatalf("FIELDSYNC_SOAK_SEED: %v", err)
		}
	}
	deadline := time.Now().Add(dur)
	var total storetest.ConcurrencyStats
	seeds, failed := 0, 0
	for seed := first; time.Now().Before(deadline); seed++ {
		cfg := storetest.ConcurrencyConfig{Devices: 2 + int(seed%7), Rounds: 12, Processes: 1 + int(seed%2), Seed: seed}
		ok := t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
			st := storetest.ConcurrentPushes(t, newEnv(t), cfg)
			total.Pushes += st.Pushes
			total.Revisions += st.Revisions
			total.Lost += st.Lost
		})
		seeds++
		if !ok {
			failed++
		}
	}
	t.Logf("soak: %d seeds from %d (%d failed), %d acknowledged pushes, %d revisions, %d lost, in %s",
		seeds, first, failed, total.Pushes, total.Revisions, total.Lost, dur)
}

// TestMigrateScopeLogs writes a per-scope log as versions before the
// shared log did (log_<scope>: entries keyed by their sequence number, a
// compacted revision, a filled hole, a page mark) and checks that
// EnsureIndexes moves it into the shared log with every sequence number
// kept: a phone's cursor stays valid, the record's current state is found,
// the compacted revision stays taken, and the old collection is gone. A
// second run (a restart) changes nothing.
func TestMigrateScopeLogs(t *testing.T) {
	ctx := t.Context()
	db := testenv.Mongo(t).Database()
	school := "0192b000-0000-7000-8000-000000000001"
	id := uuid.Must(uuid.NewV7())
	at := storetest.Start
	state := func(rev int64, title string) string {
		r := &syncproto.Record{ID: id, Kind: "hazard", SchoolID: school, Rev: rev,
			Fields: map[string]syncproto.Field{"title": {{Value: json.RawMessage(strconv.Quote(title)), HLC: syncproto.HLC{Wall: at.UnixMilli(), Replica: uuid.MustParse("0192b000-0000-7000-8000-0000000000a1")}}}}}
		b, err := syncproto.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	old := []any{
		bson.D{{Key: "_id", Value: int64(1)}, {Key: "p1", Value: int64(0)}, {Key: "p2", Value: int64(0)}, {Key: "rr", Value: id.String() + "/1"},
			{Key: "rid", Value: id.String()}, {Key: "rev", Value: int64(1)}, {Key: "at", Value: at}, {Key: "noop", Value: true}}, // compacted
		bson.D{{Key: "_id", Value: int64(2)}, {Key: "p1", Value: int64(0)}, {Key: "p2", Value: int64(0)}, {Key: "rr", Value: "n2"},
			{Key: "at", Value: at}, {Key: "noop", Value: true}}, // a filled hole
		bson.D{{Key: "_id", Value: int64(3)}, {Key: "p1", Value: int64(0)}, {Key: "p2", Value: int64(0)}, {Key: "rr", Value: id.String() + "/2"},
			{Key: "rid", Value: id.String()}, {Key: "rev", Value: int64(2)}, {Key: "at", Value: at}, {Key: "st", Value: state(2, "灭火器过期")}},
		bson.D{{Key: "_id", Value: "m1"}, {Key: "p1", Value: int64(0)}, {Key: "p2", Value: int64(0)}, {Key: "rr", Value: "m1"}, {Key: "at", Value: at}},
	}
	if _, err := db.Collection("log_"+school).InsertMany(ctx, old); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Collection(servermongo.ScopesCollection).InsertOne(ctx, bson.D{{Key: "_id", Value: school}, {Key: "next", Value: int64(3)}, {Key: "at", Value: at}}); err != nil {
		t.Fatal(err)
	}
	for run := range 2 {
		st := servermongo.NewSyncStore(db)
		st.Now = func() time.Time { return at }
		if err := st.EnsureIndexes(ctx); err != nil {
			t.Fatalf("run %d: %v", run, err)
		}
		names, err := db.ListCollectionNames(ctx, bson.D{})
		if err != nil {
			t.Fatal(err)
		}
		if slices.Contains(names, "log_"+school) {
			t.Fatalf("run %d: log_%s is still there", run, school)
		}
		page, err := st.Changes(ctx, school, 0, 100, 1<<30)
		if err != nil {
			t.Fatal(err)
		}
		if page.Pos != 3 || len(page.Records) != 1 || page.Records[0].Rev != 2 {
			t.Fatalf("run %d: changes after 0 = pos %d, %d records; want pos 3 and revision 2", run, page.Pos, len(page.Records))
		}
		if page, err := st.Changes(ctx, school, 2, 100, 1<<30); err != nil || page.Pos != 3 || len(page.Records) != 1 {
			t.Fatalf("run %d: changes after 2 (an old cursor) = %+v, %v; want the entry at 3", run, page, err)
		}
		cur, err := st.Current(ctx, school, id)
		if err != nil {
			t.Fatal(err)
		}
		if got := string(cur.Fields["title"][0].Value); cur.Rev != 2 || got != `"灭火器过期"` {
			t.Fatalf("run %d: current = rev %d title %s", run, cur.Rev, got)
		}
		if run == 1 {
			// Revision 1 was compacted but stays taken: a state at rev 1
			// is refused as existing.
			r := *cur
			r.Rev = 1
			exists, err := st.Insert(ctx, []*syncproto.Record{&r})
			if err != nil {
				t.Fatal(err)
			}
			if !exists[0] {
				t.Fatal("revision 1 could be written again after the move")
			}
		}
	}
}
