package mongo_test

import (
	"context"
	"testing"
	"time"

	"github.com/fieldsync/fieldsync/internal/testenv"
	"github.com/fieldsync/fieldsync/server"
	servermongo "github.com/fieldsync/fieldsync/server/mongo"
	"github.com/fieldsync/fieldsync/server/storetest"
)

// testLease is the lease of the stores under test; the tests move a fake
// clock past it rather than wait.
const testLease = 30 * time.Second

// TestSyncStore runs the store contract against the MongoDB-wire server of
// the environment (FerretDB v1 under make test).
func TestSyncStore(t *testing.T) {
	storetest.TestSyncStore(t, func(t *testing.T) storetest.Env {
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
	})
}
