// Package memstore holds in-memory implementations of the store
// interfaces of package server: SyncStore (the change logs, the op and
// batch journal, the conflict index), which is also a MaintenanceStore
// (forgetting the journal, compaction, run claims), and DeviceStore (inspectors,
// assignments, enrollment codes, devices). They exist so that the sync
// core and the HTTP layer can be tested in plain go test, without servers,
// in seconds: they pass the same contract suites as server/mongo
// (server/storetest), and the tests of server and server/api run on them
// as well as on FerretDB. The in-memory photo stores are
// server/media/mediatest's Blobs and Meta.
//
// They are for tests only (a project decision: fieldsyncd and make run use
// the real servers), and deploy/check-imports.sh keeps it so: only
// _test.go files import this package.
//
// The in-memory SyncStore honours the whole contract, not a
// simplification of it, so that a test passing here means what it means
// on MongoDB:
//
//   - Each scope's log is numbered without gaps. Insert allocates a block
//     of sequence numbers and then writes its entries in a second step, as
//     the MongoDB store does, so a slot can be allocated and not (yet)
//     written. Changes never passes such a hole: it stops before it, and
//     fills it with a no-op once the slot's allocation is older than the
//     store's Lease (its writer is presumed dead). A writer that finds its
//     slot filled writes in a new block. Reserve allocates without
//     writing, as a writer killed in between does.
//   - Revisions are a compare-and-set on (scope, record id, revision): a
//     revision is written once; Insert reports the states whose revision
//     was taken. Compaction keeps superseded revisions taken and frees
//     only those of purged tombstones.
//   - Op ids and batch answers are remembered, so pushes are exactly once.
//   - Record states, batch answers and conflicts are stored as JSON, so
//     nothing a caller holds aliases what is stored, as with a database.
//
// Several SyncStores opened on one Data see the same data, as several
// fieldsync processes on one database do; each has its own clock and
// lease.
//
// The package must not import storage drivers or Fiber.
package memstore
