package media

import (
	"context"
	"io"
	"time"

	"github.com/fieldsync/fieldsync/server"
	"github.com/fieldsync/fieldsync/syncproto"
)

// BlobStore is the object store the service keeps photos in: MinIO in
// production (server/minio.BlobStore), an in-memory map in unit tests
// (mediatest.Blobs). Keys are the service's own ("photos/…"); a store may
// put a prefix of its own in front of them.
//
// Every method returns an error with code syncproto.EUNAVAILABLE when the
// store cannot be reached or does not answer in time, so that the API can
// answer 503 with Retry-After; other failures are EINTERNAL.
type BlobStore interface {
	// Put stores size bytes read from r under key, replacing any object
	// there. The object appears whole or not at all: if r fails or
	// returns fewer than size bytes, nothing is stored.
	//
	// If opts.SHA256 is set, the store checks the bytes against it and, on
	// a mismatch, stores nothing and returns EINVALID. With opts.IfAbsent
	// an existing object is kept and Put returns ECONFLICT.
	Put(ctx context.Context, key string, r io.Reader, size int64, opts PutOptions) error

	// Get opens the object for reading; the caller closes it. A missing
	// object is reported as ENOTFOUND, by Get or by the first Read.
	Get(ctx context.Context, key string) (io.ReadCloser, error)

	// Stat describes the object, or returns ENOTFOUND.
	Stat(ctx context.Context, key string) (BlobInfo, error)

	// List describes every object whose key starts with prefix, in key
	// order.
	List(ctx context.Context, prefix string) ([]BlobInfo, error)

	// Remove removes the objects; missing ones are not an error.
	Remove(ctx context.Context, keys ...string) error

	// PresignGet returns a URL that lets its holder GET the object, and
	// nothing else, until ttl has passed. It does not check that the
	// object exists.
	PresignGet(ctx context.Context, key string, ttl time.Duration) (string, error)
}

// PutOptions are the options of BlobStore.Put.
type PutOptions struct {
	ContentType string
	// SHA256, if not empty, is the hex sha256 the bytes must have.
	SHA256 string
	// IfAbsent makes Put store nothing, and return ECONFLICT, if an
	// object exists under the key.
	IfAbsent bool
}

// BlobInfo describes a stored object.
type BlobInfo struct {
	Key         string // as given to Put, without the store's prefix
	Size        int64
	ContentType string
	Modified    time.Time
}

// MetaStore keeps what the service knows about photos and records in a
// database (server/mongo.MediaStore; mediatest.Meta in unit tests). It must
// work while the object store is down: record pushes depend on it.
//
// All documents are found by id: the implementation on FerretDB v1 must use
// equality filters on top-level fields only. Every method returns
// EUNAVAILABLE when the database cannot be reached.
type MetaStore interface {
	// Record returns the photos the record recordID of school (scope)
	// schoolID expects, or ENOTFOUND. Records are keyed by (school,
	// record id): the same id in two schools is two records.
	Record(ctx context.Context, schoolID, recordID string) (RecordRefs, error)

	// RecordsByID returns the records of every school with this id
	// (usually one, or none).
	RecordsByID(ctx context.Context, recordID string) ([]RecordRefs, error)

	// PutRecord stores r. With prev nil it inserts r and returns ECONFLICT
	// if the record exists; otherwise it replaces the stored record only
	// if it still has prev.Rev, and returns ECONFLICT if not. The caller
	// reads again and retries.
	PutRecord(ctx context.Context, r RecordRefs, prev *RecordRefs) error

	// ExpectPhoto notes that a record of schoolID refers to the photo: it
	// creates the photo in state StateExpected (with the size and type the
	// record declares) if it is unknown, and adds schoolID to its schools.
	// A photo already complete stays complete. The photo is referenced
	// from then on: ExpireUnreferenced no longer removes it.
	ExpectPhoto(ctx context.Context, ref syncproto.PhotoRef, schoolID string) error

	// Vouch records that holder (an uploader id, see Holder; "" for none)
	// has sent the whole photo with the right hash, and that the schools
	// may see it: adds them to Holders and Vouched. The photo must exist;
	// a missing one is ENOTFOUND.
	Vouch(ctx context.Context, sha, holder string, schools []string) error

	// Unreferenced returns up to limit complete photos that no record
	// has referred to (no ExpectPhoto since they were stored).
	Unreferenced(ctx context.Context, limit int) ([]Photo, error)

	// ForgetPhoto removes what is known of the photo if no record refers
	// to it still, and reports whether it did.
	ForgetPhoto(ctx context.Context, sha string) (bool, error)

	// Photo returns what is known of a photo, or ENOTFOUND.
	Photo(ctx context.Context, sha string) (Photo, error)

	// PhotoStored records that the original is stored: the photo becomes
	// StateComplete with st's size, type, time and uploader, and keeps its
	// schools. Calling it again for a complete photo changes nothing.
	PhotoStored(ctx context.Context, sha string, st Stored) error

	// QueueThumbs queues the making of the photo's thumbnails, unless a
	// job for the photo exists already.
	QueueThumbs(ctx context.Context, sha, contentType string, now time.Time) error

	// ClaimThumbs takes a queued job whose time has come (or whose lease
	// expired) and leases it until now+lease, so that no other process
	// takes it meanwhile. It returns ENOTFOUND when no job is due. Each
	// claim counts in the job's Unfinished until ThumbsRetry or
	// ThumbsDone gives it an outcome: the returned job's Unfinished is the
	// count of earlier claims that never got one.
	ClaimThumbs(ctx context.Context, now time.Time, lease time.Duration) (ThumbJob, error)

	// ThumbsDone stores the outcome on the photo (Thumbs, its EXIF
	// metadata, and the thumbnail state) and removes the job, if the job
	// is still leased to the caller (job.Until unchanged); otherwise it
	// returns ECONFLICT and changes nothing.
	ThumbsDone(ctx context.Context, job ThumbJob, res ThumbResult) error

	// ThumbsRetry puts a failed job back in the queue, due at next, with
	// its error, if it is still leased to the caller (ECONFLICT if not):
	// Attempts grows by one, Unfinished goes back to 0.
	ThumbsRetry(ctx context.Context, job ThumbJob, next time.Time, msg string) error
}

// Access decides who may see a school's records and photos. *server.Devices
// implements it.
type Access interface {
	CanSeeSchool(ctx context.Context, p server.Principal, schoolID string) (bool, error)
}

// Photo states in the MetaStore.
const (
	StateExpected = "expected" // a record refers to it; the bytes have not all arrived
	StateComplete = "complete" // the original is stored and checked
)

// Thumbnail states of a complete photo.
const (
	ThumbsPending     = "pending"     // queued or being made
	ThumbsDone        = "done"        // both sizes are stored
	ThumbsFailed      = "failed"      // gave up after Config.ThumbAttempts; see ThumbError
	ThumbsUnsupported = "unsupported" // HEIC/HEIF: the server cannot decode it
	// ThumbsQuarantined: the job failed Config.ThumbAttempts times, or
	// its process died while making it Config.ThumbMaxUnfinished times;
	// it is never run again (see ThumbError). The original is kept.
	ThumbsQuarantined = "quarantined"
)

// RecordRefs are the photos one record refers to, as of its server
// revision Rev.
type RecordRefs struct {
	RecordID string
	SchoolID string
	Rev      int64
	Photos   []syncproto.PhotoRef // sorted by SHA256, as syncproto.PhotoRefs returns them
	// Attachments are the ids of the attachment records (of the same
	// school) the record names: its "photo_ids", and those of a
	// hazard's events; sorted. Their photos are the record's too.
	Attachments []string
}

// Photo is what the server knows about one photo.
type Photo struct {
	SHA256      string
	State       string    // StateExpected or StateComplete
	Size        int64     // stored size when complete, otherwise as a record declared it
	ContentType string    // sniffed when complete, otherwise as a record declared it
	Schools     []string  // schools whose records refer to it
	StoredAt    time.Time // zero until complete
	UploadedBy  string    // user id of the first uploader, if known
	// Holders are the uploaders (Holder ids) that sent the whole photo
	// with the right hash: they need not send it again.
	Holders []string
	// Vouched are the schools of Schools where a holder allowed to see
	// the school has sent the photo, or a holder pushed a record that
	// refers to it. Only through these may anyone read it: a record
	// that names a sha256 its author never uploaded grants nothing.
	Vouched []string

	ThumbState string            // "" until complete, then one of the Thumbs* states
	ThumbError string            // why the thumbnails failed or were quarantined
	Thumbs     map[string]string // variant ("320", "1280") → object key
	EXIF       EXIF
}

// Stored is what PhotoStored records.
type Stored struct {
	Size        int64
	ContentType string
	At          time.Time
	By          string
}

// EXIF is the metadata the server keeps from a photo's EXIF block.
type EXIF struct {
	// TakenAt is DateTimeOriginal (or DateTime) read in Config.EXIFZone,
	// because cameras record local time without a zone.
	TakenAt *time.Time
	// Raw is the EXIF date and time exactly as written ("2024:10:08 09:30:00").
	Raw string
	// Lat and Lon are the GPS position in degrees, if the photo has one.
	Lat, Lon *float64
	// Orientation is the EXIF orientation (1–8; 0 if absent); thumbnails
	// are already turned upright.
	Orientation int
}

// ThumbJob is a leased thumbnail job.
type ThumbJob struct {
	SHA256      string
	ContentType string
	Attempts    int       // failed attempts before this one
	Unfinished  int       // earlier claims that got no outcome (see MetaStore.ClaimThumbs)
	Until       time.Time // the lease; it identifies this claim
}

// ThumbResult is the outcome of a thumbnail job.
type ThumbResult struct {
	State  string            // ThumbsDone, ThumbsFailed, ThumbsUnsupported or ThumbsQuarantined
	Error  string            // for ThumbsFailed and ThumbsQuarantined
	Thumbs map[string]string // variant → object key, for ThumbsDone
	EXIF   EXIF
}

// BatchMetaStore is a MetaStore that also keeps the photo bookkeeping of a
// whole push batch in a bounded number of round trips. ExpectRecords uses
// it when the MetaStore has it (server/mongo.MediaStore and mediatest.Meta
// do); otherwise it notes record by record (Expect).
type BatchMetaStore interface {
	MetaStore

	// Records returns the stored records among keys, by key; a key with
	// no record is absent from the map.
	Records(ctx context.Context, keys []RecordKey) (map[RecordKey]RecordRefs, error)

	// NotePhotos applies each note in order, as ExpectPhoto(n.Ref,
	// n.SchoolID) followed by Vouch(n.Ref.SHA256, "", {n.SchoolID}) if
	// n.Holder is "" or among the photo's Holders. It is idempotent: on
	// an error, calling it again with the same notes is safe.
	NotePhotos(ctx context.Context, notes []PhotoNote) error

	// PutRecords is PutRecord for each put. If any put lost its
	// compare-and-set (or may have: a store may not tell which), it
	// returns ECONFLICT after trying all of them; the caller reads again.
	PutRecords(ctx context.Context, puts []RecordPut) error
}

// RecordKey names a record of the MetaStore: records are keyed by
// (school, record id).
type RecordKey struct {
	SchoolID string
	RecordID string
}

// PhotoNote is one photo a record names, for BatchMetaStore.NotePhotos.
type PhotoNote struct {
	Ref      syncproto.PhotoRef
	SchoolID string
	// Holder is the pusher of the record (a Holder id): SchoolID is
	// vouched for if it holds the photo (see Photo.Vouched). "" is a
	// trusted caller, who always vouches.
	Holder string
}

// RecordPut is one PutRecord of BatchMetaStore.PutRecords.
type RecordPut struct {
	Record RecordRefs
	Prev   *RecordRefs // nil: insert
}
