package testenv

import (
	"go.mongodb.org/mongo-driver/v2/bson"

	"testing"

	"github.com/fieldsync/fieldsync/server"
	"github.com/fieldsync/fieldsync/server/memstore"
	servermongo "github.com/fieldsync/fieldsync/server/mongo"
)

// Stores are the stores a test of the services runs on.
type Stores struct {
	// Backend is "mem" or "real" (see StoreBackends).
	Backend string
	Sync    server.SyncStore
	Devices server.DeviceStore
	// Console holds the office console's accounts, audit log and read
	// model.
	Console server.ConsoleStore
}

// StoreBackends are the backends the tests of the services run on: "mem",
// the in-memory stores of server/memstore, always; and "real", the stores
// of server/mongo on a database of the test's own on the MongoDB-wire
// server (FerretDB under make test), skipped when none is configured
// unless integration tests are required (see Lookup).
var StoreBackends = []string{"mem", "real"}

// OpenStores returns fresh, empty stores of a backend for the test.
func OpenStores(t *testing.T, backend string) Stores {
	t.Helper()
	switch backend {
	case "mem":
		return Stores{Backend: backend, Sync: memstore.NewSyncStore(nil), Devices: memstore.NewDeviceStore(), Console: memstore.NewConsoleStore()}
	case "real":
		db := Mongo(t)
		sync := servermongo.NewSyncStore(db.Database())
		devices := servermongo.NewDeviceStore(db.Database())
		if err := sync.EnsureIndexes(t.Context()); err != nil {
			t.Fatal(err)
		}
		if err := devices.EnsureIndexes(t.Context()); err != nil {
			t.Fatal(err)
		}
		console := servermongo.NewConsoleStore(db.Database())
		if err := console.EnsureIndexes(t.Context()); err != nil {
			t.Fatal(err)
		}
		return Stores{Backend: backend, Sync: sync, Devices: devices, Console: console}
	}
	t.Fatalf("testenv: unknown store backend %q", backend)
	return Stores{}
}

// ForEachStore runs test as a parallel subtest per backend of
// StoreBackends, named after the backend, each on fresh stores.
func ForEachStore(t *testing.T, test func(t *testing.T, st Stores)) {
	for _, b := range StoreBackends {
		t.Run(b, func(t *testing.T) {
			t.Parallel()
			test(t, OpenStores(t, b))
		})
	}
}

// TamperAudit changes the detail of audit entry seq directly in the
// database of a real console store, as someone with database access
// could, without fixing its hash.
func TamperAudit(t *testing.T, store server.ConsoleStore, seq int64) {
	t.Helper()
	s, ok := store.(*servermongo.ConsoleStore)
	if !ok {
		t.Fatalf("testenv: TamperAudit on a %T", store)
	}
	_, err := s.Database().Collection(servermongo.AuditCollection).UpdateOne(t.Context(),
		bson.D{{Key: "_id", Value: seq}}, bson.D{{Key: "$set", Value: bson.D{{Key: "detail", Value: "changed afterwards"}}}})
	if err != nil {
		t.Fatal(err)
	}
}
