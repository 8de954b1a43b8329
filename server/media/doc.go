// Package media receives the photos of inspection records, keeps track of
// which photos each record still needs, makes thumbnails, and hands out
// time-limited links to photos. Hazard photos are the evidence the office
// acts on, and rural networks drop uploads halfway, so the rules are:
// records go first and photos follow; a photo resumes where it stopped;
// nothing is stored under a photo's hash unless the bytes have that hash;
// and a record counts as complete only when every photo it refers to has
// arrived.
//
// The package is the service and the interfaces it needs (BlobStore,
// MetaStore, Access). It must not import Fiber, minio-go or the MongoDB
// driver: server/minio implements BlobStore, server/mongo implements
// MetaStore, server/api exposes the service over HTTP, and
// server/media/mediatest holds in-memory stores and the stores'
// conformance suites.
//
// # Identity
//
// A photo is identified by the sha256 of its bytes (64 lower-case hex
// digits), the "sha256" member syncproto.PhotoRefs finds in a record. The
// original is stored under photos/<sha[0:2]>/<sha>; the same bytes from two
// phones are stored once.
//
// # Uploading
//
// A phone first asks Status: missing, partial with Received bytes, or
// complete (then it sends nothing). On a good network it sends the whole
// photo in one request (Put). Otherwise it sends chunks of
// Config.ChunkBytes (256 KiB by default) with their offsets (PutChunk),
// starting at Received, then calls Finish with the size. After a cut it asks
// Status again and goes on from Received: at most the chunk that was in
// flight is sent again.
//
// # Whose photo
//
// A sha256 is not a secret (it travels in records), so knowing one must
// give nothing. An upload belongs to its uploader (a device, or an office
// user): its chunks are staged under the uploader's own prefix, so
// another device can neither see, extend, finish nor abort it, and two
// devices sending the same photo each complete. Status answers complete
// only to a holder, an uploader that has sent the whole photo with the
// right hash; anyone else sees their own upload and sends the bytes,
// once. A photo is read (URL, RecordPhotos) only through a school the
// reader may see, whose records refer to it, and where it was vouched
// for: a holder allowed in that school sent it, or a holder pushed a
// record of that school referring to it. A record naming someone else's
// sha256 grants nothing, and every refusal is the same 404 as for a photo
// that does not exist. The photos of records are kept per (school,
// record id). A device may hold Config.DeviceQuota bytes in unfinished
// uploads and in photos no record refers to yet; such photos are removed
// after Config.UnreferencedTTL (ExpireUnreferenced, run with Sweep).
//
// Chunks are staged as objects of their own, staging/<uploader>/<sha>/<offset>, in the
// same bucket as the photos. That is the whole upload state: no upload
// state lives in one process's memory or on its disk, so an upload goes on
// after a restart, or through another fieldsyncd behind the same load
// balancer, and Status is one Stat plus one List, the same from every
// process. The alternatives were worse: MinIO's own multipart uploads need
// parts of at least 5 MiB (a rural phone cannot finish that many bytes in
// one go), and keeping the bytes on a process's disk breaks the second
// process. A chunk is accepted only where the received bytes end, or again
// at the offset of a chunk already there (a lost answer); a chunk stored
// is durable, a chunk cut halfway was never stored.
//
// Finish reads the chunks back in order as one stream (tolerating chunks
// that overlap, as when two phones send the same photo with different
// chunk sizes), checks the first bytes are a JPEG, PNG, WebP or HEIC image
// (magic numbers, see Sniff; EUNSUPPORTED, HTTP 415, otherwise), and
// streams them into one PutObject of the final key while hashing them.
// The put carries the expected sha256 (x-amz-checksum-sha256), so MinIO
// itself refuses bytes with another hash and stores nothing: no temporary
// object, no copy, and no moment when wrong bytes are visible under the
// hash. The service hashes too and removes the object should a store ever
// ignore the checksum. On a wrong hash (EINVALID), a wrong type or too many
// bytes, the chunks are removed, so the phone starts again from 0; the
// largest photo is Config.MaxBlobSize (25 MiB; ETOOLARGE, HTTP 413). Put
// does the same checks on the request body in memory, then one PutObject
// that does not overwrite an existing photo. Chunks of uploads that nobody
// finishes are removed after Config.StagingTTL (Sweep).
//
// # Expected and received photos
//
// When the sync service stores record states it calls ExpectRecords (its
// Syncer.Stored hook, run before the batch's answer is stored, so a crash
// in between is repaired by the phone's retry), which does for the whole
// batch what Expect does for one state: the photos the record refers to
// become expected for that record (replacing what an older revision
// expected), and each photo remembers the record's school. On a
// BatchMetaStore it costs three store calls per batch at most (a read of
// the batch's entries, a write of the photos new to their records, a write
// of the entries that change), and a hazard pushed again or updated with
// the same photos writes nothing.
// A record's photos also include those of the attachment records it names
// (its "photo_ids", and those of a hazard's events): a hazard reported
// with a photo refers to the attachment record, which holds the sha256.
// RecordPhotos follows them, and reports an attachment record not yet
// received as missing (missing_records), so such a hazard is complete
// only when its photos have arrived.
// Expect writes only to the MetaStore, so pushes of records succeed while
// MinIO is down. A stored photo is marked complete in the MetaStore;
// RecordPhotos reports, per record, the photos expected, received and
// missing.
//
// # Thumbnails
//
// Each stored photo queues a thumbnail job. Run (started by fieldsyncd)
// claims jobs with a lease, so several processes share the work and a job
// whose process died is taken over when its lease ends. A job reads the
// original, keeps the EXIF time (DateTimeOriginal, read in
// Config.EXIFZone because cameras write local time) and GPS position,
// decodes the image, and stores JPEG thumbnails of at most 1280 and 320
// px under thumbs/, turned upright by the EXIF orientation. HEIC/HEIF
// cannot be decoded in pure Go: such photos are kept and served as they
// are, with thumbnails marked unsupported.
//
// # Hostile bytes
//
// Any device can upload any bytes, so no photo may crash, stall or
// exhaust the server, or do so again after a restart:
//
//   - an upload is accepted only if its magic number is that of a JPEG,
//     PNG, WebP or HEIC image and, but for HEIC, its header decodes
//     (Identify: an HTML page behind FF D8 FF is refused, 415); a
//     declared content type with control characters is refused (400);
//   - EXIF is read by package exif, which bounds every count and offset
//     by the block's size, reads at most a few IFDs and refuses cycles;
//   - an image is decoded only if its decoded pixels — bit depth counted
//     (DecodeCost) — fit in Config.ThumbMaxDecodeBytes, which also bounds
//     what the workers of one process decode at a time; a larger one is
//     kept without thumbnails (failed);
//   - a job runs within Config.ThumbJobTimeout, and a panic in it is
//     recovered and counts as a failure;
//   - a job that fails because a store is down is retried with backoff
//     until it works; one that fails otherwise is retried
//     Config.ThumbAttempts times, then quarantined: never run again, the
//     reason on the photo (thumbs "quarantined" in the record's photo
//     status) and one error line in the log. A job claimed
//     Config.ThumbMaxUnfinished times without an outcome (its process
//     died making it) is quarantined too, before it can kill the next.
//
// # Links
//
// URL returns a presigned GET URL of the original or a thumbnail, valid
// for Config.URLLifetime (10 minutes), only to a principal that Access
// allows to see one of the schools whose records refer to the photo and
// where it was vouched for (see "Whose photo").
//
// # Failures
//
// The stores return syncproto codes: EUNAVAILABLE when MinIO or the
// database cannot be reached (the API answers 503 with Retry-After; the
// phone keeps its photo and tries again, and the same upload completes
// once MinIO is back), ENOTFOUND, ECONFLICT, EINVALID. server/minio bounds
// every call with a deadline (5 s, 60 s for transfers) and retries twice,
// not ten times: a MinIO that refuses connections fails in well under a
// second, one that hangs at the deadline, never after minutes.
package media
