package mongo_test

import (
	"testing"

	"github.com/fieldsync/fieldsync/internal/testenv"
	"github.com/fieldsync/fieldsync/server"
	servermongo "github.com/fieldsync/fieldsync/server/mongo"
	"github.com/fieldsync/fieldsync/server/storetest"
)

// TestDeviceStore runs the device store contract against the
// MongoDB-wire server of the environment (FerretDB v1 under make test).
func TestDeviceStore(t *testing.T) {
	storetest.TestDeviceStore(t, func(t *testing.T) server.DeviceStore {
		db := testenv.Mongo(t)
		store := servermongo.NewDeviceStore(db.Database())
		if err := store.EnsureIndexes(t.Context()); err != nil {
			t.Fatal(err)
		}
		return store
	})
}
