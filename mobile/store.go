package mobile

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"time"

	"github.com/fieldsync/fieldsync/syncproto"
	"github.com/google/uuid"
	bolt "go.etcd.io/bbolt"
)

// The local database is one bbolt file with these buckets. Every value is
// JSON; records are stored in syncproto's canonical encoding.
var (
	// bucketRecords: record id → the local record (server state joined
	// with every local edit, sent or not). This is what the app shows.
	bucketRecords = []byte("records")
	// bucketServer: record id → the join of every state pulled from the
	// server. With the outbox it rebuilds a local record when a rejected
	// change is discarded.
	bucketServer = []byte("server")
	// bucketOutbox: 8-byte big-endian sequence → outboxEntry, in edit order.
	bucketOutbox = []byte("outbox")
	// bucketPending: record id → sequence key of the record's newest entry
	// that was never sent, into which the next edit folds.
	bucketPending = []byte("pending")
	// bucketPhotos: sha256 → photoEntry.
	bucketPhotos = []byte("photos")
	// bucketRejected: op id → rejection (a change the server refused).
	bucketRejected = []byte("rejected")
	// bucketConflicts: record id → names of fields in conflict, kept in
	// step with the record so listing problems does not scan all records.
	bucketConflicts = []byte("conflicts")
	// bucketResync: record ids held before a pull restarted from an empty
	// cursor (ESTALE) and not yet received again.
	bucketResync = []byte("resync")
	// bucketMeta: small settings and sync state, see the meta* keys.
	bucketMeta = []byte("meta")

	allBuckets = [][]byte{bucketRecords, bucketServer, bucketOutbox, bucketPending, bucketPhotos,
		bucketRejected, bucketConflicts, bucketResync, bucketMeta}
)

// Keys of bucketMeta.
const (
	metaDeviceID   = "device_id"   // the replica id, made once when the file is created
	metaClock      = "clock"       // the HLC: latest stamp written or observed
	metaCursor     = "cursor"      // the pull cursor (opaque text)
	metaToken      = "token"       // the device token from enrollment
	metaServerURL  = "server_url"  // where to sync
	metaAuthor     = "author"      // the inspector's user id, author of every edit
	metaInspector  = "inspector"   // the inspector id
	metaName       = "name"        // the inspector's name, for display
	metaDeviceName = "device_name" // the name given at enrollment
	metaLastSync   = "last_sync"   // SyncReport of the last completed sync
	metaOffline    = "offline"     // "true" when the user switched sync off
	metaLimits     = "limits"      // syncproto.Limits last read from the server
)

// outboxEntry is one change waiting for the server.
type outboxEntry struct {
	OpID     uuid.UUID         `json:"op_id"`
	RecordID uuid.UUID         `json:"record_id"`
	Delta    *syncproto.Record `json:"delta"`
	Base     syncproto.Vector  `json:"base"`
	// Batch is the push batch the entry was sent in, or zero while it has
	// never been sent. An entry with a batch is in flight: it is resent
	// with that batch id, unchanged, until the server answers.
	Batch     uuid.UUID `json:"batch,omitzero"`
	CreatedAt time.Time `json:"created_at"`
}

func (o outboxEntry) change() syncproto.Change {
	return syncproto.Change{OpID: o.OpID, Record: o.Delta, Base: o.Base}
}

// Photo upload states.
const (
	PhotoQueued    = "queued"    // waiting for a sync
	PhotoUploading = "uploading" // part of it is on the server
	PhotoDone      = "done"      // the server holds it complete under its hash
)

// photoEntry is a photo the engine must upload.
type photoEntry struct {
	SHA256      string    `json:"sha256"`
	Path        string    `json:"path"` // the original, kept by the app until State is done
	Size        int64     `json:"size"`
	ContentType string    `json:"content_type"`
	State       string    `json:"state"`
	Received    int64     `json:"received"` // bytes the server said it holds
	AddedAt     time.Time `json:"added_at"`
	DoneAt      time.Time `json:"done_at,omitzero"`
	LastError   string    `json:"last_error,omitempty"`
}

// rejection is a change the server refused, kept for the app.
type rejection struct {
	Change     syncproto.Change `json:"change"`
	RecordKind string           `json:"record_kind"`
	Error      *syncproto.Error `json:"error"`
	At         time.Time        `json:"at"`
}

func seqKey(n uint64) []byte {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], n)
	return b[:]
}

func getJSON(b *bolt.Bucket, key []byte, v any) (bool, error) {
	data := b.Get(key)
	if data == nil {
		return false, nil
	}
	if err := json.Unmarshal(data, v); err != nil {
		return false, fmt.Errorf("store: decode %x: %w", key, err)
	}
	return true, nil
}

func putJSON(b *bolt.Bucket, key []byte, v any) error {
	data, err := syncproto.Marshal(v)
	if err != nil {
		return fmt.Errorf("store: encode %s: %w", key, err)
	}
	return b.Put(key, data)
}

func getMeta(tx *bolt.Tx, key string) string {
	return string(tx.Bucket(bucketMeta).Get([]byte(key)))
}

func putMeta(tx *bolt.Tx, key, value string) error {
	if value == "" {
		return tx.Bucket(bucketMeta).Delete([]byte(key))
	}
	return tx.Bucket(bucketMeta).Put([]byte(key), []byte(value))
}

func getRecord(tx *bolt.Tx, bucket []byte, id uuid.UUID) (*syncproto.Record, error) {
	var r syncproto.Record
	ok, err := getJSON(tx.Bucket(bucket), id[:], &r)
	if !ok || err != nil {
		return nil, err
	}
	return &r, nil
}

// putLocal stores the local record and keeps the conflict index in step.
func putLocal(tx *bolt.Tx, r *syncproto.Record) error {
	if err := putJSON(tx.Bucket(bucketRecords), r.ID[:], r); err != nil {
		return err
	}
	c := tx.Bucket(bucketConflicts)
	if fields := r.ConflictFields(); len(fields) > 0 {
		return putJSON(c, r.ID[:], fields)
	}
	return c.Delete(r.ID[:])
}

func deleteLocal(tx *bolt.Tx, id uuid.UUID) error {
	if err := tx.Bucket(bucketRecords).Delete(id[:]); err != nil {
		return err
	}
	return tx.Bucket(bucketConflicts).Delete(id[:])
}

func getClock(tx *bolt.Tx, replica syncproto.ReplicaID) syncproto.HLC {
	h, err := syncproto.ParseHLC(getMeta(tx, metaClock))
	if err != nil {
		return syncproto.HLC{Replica: replica}
	}
	h.Replica = replica
	return h
}

func putClock(tx *bolt.Tx, h syncproto.HLC) error { return putMeta(tx, metaClock, h.String()) }

// observeRecord advances the clock past every stamp in r.
func observeRecord(h syncproto.HLC, r *syncproto.Record) syncproto.HLC {
	for _, f := range r.Fields {
		for _, v := range f {
			h = h.Observe(v.HLC)
		}
	}
	for _, v := range r.Deleted {
		h = h.Observe(v.HLC)
	}
	for _, items := range r.Items {
		for _, it := range items {
			h = h.Observe(it.HLC)
		}
	}
	for _, c := range r.Conflicts {
		h = h.Observe(c.ResolvedHLC).Observe(c.Version.HLC)
	}
	return h
}
