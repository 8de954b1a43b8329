package media

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sync"
	"time"

	"golang.org/x/sync/semaphore"

	"github.com/google/uuid"

	"github.com/fieldsync/fieldsync/server"
	"github.com/fieldsync/fieldsync/syncproto"
)

// Config holds the service's settings. Zero fields take the values of
// DefaultConfig.
type Config struct {
	// ChunkBytes is the chunk size advertised to phones
	// (syncproto.Limits.ChunkBytes).
	ChunkBytes int64
	// MaxChunkBytes is the largest chunk accepted: phones on good networks
	// may send bigger chunks than advertised.
	MaxChunkBytes int64
	// MaxBlobSize is the largest photo accepted (syncproto.Limits.MaxBlobSize).
	MaxBlobSize int64
	// URLLifetime is how long a presigned URL stays valid.
	URLLifetime time.Duration

	// ThumbWorkers is how many thumbnails each process makes at a time.
	ThumbWorkers int
	// ThumbLease is how long a process holds a thumbnail job before
	// another process may take it over.
	ThumbLease time.Duration
	// ThumbAttempts is how many times a thumbnail job that fails for a
	// reason other than an unreachable store is tried before it is given
	// up (ThumbsFailed).
	ThumbAttempts int
	// ThumbBackoff is the wait before the first retry; it doubles with
	// each attempt up to ThumbMaxBackoff.
	ThumbBackoff    time.Duration
	ThumbMaxBackoff time.Duration
	// ThumbQuality is the JPEG quality of thumbnails (1–100).
	ThumbQuality int
	// ThumbMaxPixels is the largest image, in pixels, the server decodes
	// to make thumbnails: decoding takes 4 bytes a pixel, and a small
	// file can declare a huge image. Larger photos are kept without
	// thumbnails (ThumbsFailed).
	ThumbMaxPixels int
	// ThumbMaxDecodeBytes bounds the memory of decoding: an image whose
	// decoded pixels (bit depth counted, see DecodeCost) take more is
	// kept without thumbnails (ThumbsFailed), and the workers of one
	// process decode at most this many bytes at a time.
	ThumbMaxDecodeBytes int64
	// ThumbJobTimeout bounds one thumbnail job; it must be shorter than
	// ThumbLease.
	ThumbJobTimeout time.Duration
	// ThumbMaxUnfinished is how many times a job may be claimed without
	// an outcome (its process died or hung while making it) before it is
	// quarantined instead of run again.
	ThumbMaxUnfinished int
	// PollInterval is how often an idle worker looks for jobs.
	PollInterval time.Duration

	// StagingTTL is how long the chunks of an upload nobody finishes are
	// kept after the last one arrived; SweepInterval is how often they are
	// looked for.
	StagingTTL    time.Duration
	SweepInterval time.Duration

	// DeviceQuota is how many bytes one uploader (a device) may hold in
	// unfinished uploads and in photos no record refers to yet; beyond
	// it an upload gets ETOOLARGE until records refer to its photos or
	// they expire.
	DeviceQuota int64
	// UnreferencedTTL is how long a photo that no record refers to is
	// kept after it was stored: then it is removed (ExpireUnreferenced),
	// so uploads cannot be used as free storage.
	UnreferencedTTL time.Duration

	// EXIFZone is the time zone EXIF times are read in: cameras write
	// local time without a zone. The default is China Standard Time.
	EXIFZone *time.Location

	// Now returns the current time; tests replace it.
	Now func() time.Time
}

// Defaults.
const (
	DefaultChunkBytes    = 256 << 10
	DefaultMaxChunkBytes = 8 << 20
	DefaultMaxBlobSize   = 25 << 20
	DefaultURLLifetime   = 10 * time.Minute
)

// chinaStandardTime is UTC+8 without a tz database.
var chinaStandardTime = time.FixedZone("CST", 8*3600)

// DefaultConfig returns the default settings.
func DefaultConfig() Config {
	return Config{
		ChunkBytes:      DefaultChunkBytes,
		MaxChunkBytes:   DefaultMaxChunkBytes,
		MaxBlobSize:     DefaultMaxBlobSize,
		URLLifetime:     DefaultURLLifetime,
		ThumbWorkers:    1,
		ThumbLease:      2 * time.Minute,
		ThumbAttempts:   5,
		ThumbBackoff:    10 * time.Second,
		ThumbMaxBackoff: 10 * time.Minute,
		ThumbQuality:    82,
		ThumbMaxPixels:  64 << 20,
		// A 12-megapixel JPEG takes about 80 MiB; an 8192×8192 16-bit
		// PNG 768 MiB, which is refused.
		ThumbMaxDecodeBytes: 192 << 20,
		ThumbJobTimeout:     time.Minute,
		ThumbMaxUnfinished:  3,
		PollInterval:        2 * time.Second,
		StagingTTL:          7 * 24 * time.Hour,
		SweepInterval:       time.Hour,
		DeviceQuota:         512 << 20,
		UnreferencedTTL:     7 * 24 * time.Hour,
		EXIFZone:            chinaStandardTime,
		Now:                 time.Now,
	}
}

func (c Config) withDefaults() Config {
	d := DefaultConfig()
	set := func(v *int64, dv int64) {
		if *v <= 0 {
			*v = dv
		}
	}
	setD := func(v *time.Duration, dv time.Duration) {
		if *v <= 0 {
			*v = dv
		}
	}
	setI := func(v *int, dv int) {
		if *v <= 0 {
			*v = dv
		}
	}
	set(&c.ChunkBytes, d.ChunkBytes)
	set(&c.MaxChunkBytes, d.MaxChunkBytes)
	set(&c.MaxBlobSize, d.MaxBlobSize)
	setD(&c.URLLifetime, d.URLLifetime)
	setI(&c.ThumbWorkers, d.ThumbWorkers)
	setD(&c.ThumbLease, d.ThumbLease)
	setI(&c.ThumbAttempts, d.ThumbAttempts)
	setD(&c.ThumbBackoff, d.ThumbBackoff)
	setD(&c.ThumbMaxBackoff, d.ThumbMaxBackoff)
	setI(&c.ThumbQuality, d.ThumbQuality)
	setI(&c.ThumbMaxPixels, d.ThumbMaxPixels)
	set(&c.ThumbMaxDecodeBytes, d.ThumbMaxDecodeBytes)
	setD(&c.ThumbJobTimeout, d.ThumbJobTimeout)
	setI(&c.ThumbMaxUnfinished, d.ThumbMaxUnfinished)
	if c.ThumbJobTimeout >= c.ThumbLease {
		c.ThumbJobTimeout = c.ThumbLease * 3 / 4
	}
	setD(&c.PollInterval, d.PollInterval)
	setD(&c.StagingTTL, d.StagingTTL)
	setD(&c.SweepInterval, d.SweepInterval)
	set(&c.DeviceQuota, d.DeviceQuota)
	setD(&c.UnreferencedTTL, d.UnreferencedTTL)
	if c.EXIFZone == nil {
		c.EXIFZone = d.EXIFZone
	}
	if c.Now == nil {
		c.Now = d.Now
	}
	if c.ChunkBytes > c.MaxChunkBytes {
		c.MaxChunkBytes = c.ChunkBytes
	}
	return c
}

// Service receives photos, tracks which photos each record still needs,
// makes thumbnails and hands out links to photos. It is safe for
// concurrent use, and several processes may serve the same stores: no
// state lives in one process's memory.
type Service struct {
	blobs  BlobStore
	meta   MetaStore
	access Access
	cfg    Config
	logger *slog.Logger

	// decodeBudget holds Config.ThumbMaxDecodeBytes: the bytes the
	// thumbnail workers of this process may decode at a time.
	decodeBudget *semaphore.Weighted
}

// New returns a service on the given stores. access decides who may see a
// photo (see URL and RecordPhotos).
func New(blobs BlobStore, meta MetaStore, access Access, cfg Config, logger *slog.Logger) *Service {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	cfg = cfg.withDefaults()
	return &Service{blobs: blobs, meta: meta, access: access, cfg: cfg, logger: logger.With("component", "media"),
		decodeBudget: semaphore.NewWeighted(cfg.ThumbMaxDecodeBytes)}
}

// Limits returns the chunk size advertised to phones and the largest photo
// accepted, for syncproto.Limits.
func (s *Service) Limits() (chunkBytes, maxBlobSize int64) {
	return s.cfg.ChunkBytes, s.cfg.MaxBlobSize
}

// UploadLimits returns the largest chunk and the largest photo accepted,
// the body limits of the upload routes.
func (s *Service) UploadLimits() (maxChunkBytes, maxBlobSize int64) {
	return s.cfg.MaxChunkBytes, s.cfg.MaxBlobSize
}

// Upload states, as Status reports them.
const (
	UploadMissing  = "missing"  // no byte has arrived
	UploadPartial  = "partial"  // Received bytes have arrived, in order from offset 0
	UploadComplete = "complete" // the photo is stored; send nothing more
)

// Upload is what the server holds of one photo: the answer to every upload
// call, so that a phone always knows where to go on.
type Upload struct {
	SHA256 string `json:"sha256"`
	State  string `json:"state"` // UploadMissing, UploadPartial or UploadComplete
	// Received is how many bytes have arrived, in order from offset 0:
	// the offset to send next. It equals Size when complete.
	Received    int64  `json:"received"`
	Size        int64  `json:"size,omitempty"`         // when complete
	ContentType string `json:"content_type,omitempty"` // when complete
	// ChunkBytes is the chunk size the server advises.
	ChunkBytes int64 `json:"chunk_bytes"`
}

func (s *Service) partial(sha string, received int64) Upload {
	u := Upload{SHA256: sha, State: UploadMissing, ChunkBytes: s.cfg.ChunkBytes, Received: received}
	if received > 0 {
		u.State = UploadPartial
	}
	return u
}

func (s *Service) complete(sha string, size int64, contentType string) Upload {
	return Upload{SHA256: sha, State: UploadComplete, Received: size, Size: size, ContentType: contentType, ChunkBytes: s.cfg.ChunkBytes}
}

// Status returns what the server holds of the photo sha for the caller
// (the principal in ctx): the photo is complete for an uploader that has
// sent it whole (a holder); otherwise the answer is the caller's own
// upload, missing or partial with Received bytes. So Status tells no one
// whether someone else's photo exists, and a phone whose co-worker sent
// the same bytes sends them too, once, to prove it has them. The object
// store and the MetaStore decide, so the answer is the same from every
// process.
func (s *Service) Status(ctx context.Context, sha string) (Upload, error) {
	if err := checkSHA256(sha); err != nil {
		return Upload{}, err
	}
	up := uploaderOf(ctx)
	if u, ok, err := s.heldStored(ctx, sha, up); err != nil || ok {
		return u, err
	}
	staged, err := s.staged(ctx, up, sha)
	if err != nil {
		return Upload{}, err
	}
	return s.partial(sha, staged.received), nil
}

// uploader is who uploads: the principal in the request's context and
// its holder id. A context without a principal is the server's own
// (tests, tools), like the admin token's: it holds every photo and sees
// every school.
type uploader struct {
	id      string
	p       server.Principal
	trusted bool
}

// uploaderOf returns the uploader of ctx. Holder ids are key-safe: "d-"
// and the device id for a device, "u-" and a hash of the user id for
// anyone else.
func uploaderOf(ctx context.Context) uploader {
	p, ok := server.PrincipalFrom(ctx)
	switch {
	case !ok:
		return uploader{id: "server", trusted: true}
	case p.Automation:
		// The admin token (operators and their scripts) sees every
		// school and every photo as it is stored.
		return uploader{id: "server", p: p, trusted: true}
	case p.DeviceID != uuid.Nil:
		return uploader{id: "d-" + p.DeviceID.String(), p: p}
	}
	sum := sha256.Sum256([]byte(p.UserID))
	return uploader{id: "u-" + hex.EncodeToString(sum[:16]), p: p}
}

// holds reports whether up has sent the whole photo.
func (up uploader) holds(ph Photo) bool {
	return up.trusted || slices.Contains(ph.Holders, up.id)
}

// heldStored returns the complete answer if the photo is stored and up
// holds it.
func (s *Service) heldStored(ctx context.Context, sha string, up uploader) (Upload, bool, error) {
	info, err := s.blobs.Stat(ctx, photoKey(sha))
	switch {
	case syncproto.ErrorCode(err) == syncproto.ENOTFOUND:
		return Upload{}, false, nil
	case err != nil:
		return Upload{}, false, fmt.Errorf("media: status %s: %w", sha, err)
	}
	ph, err := s.meta.Photo(ctx, sha)
	switch {
	case syncproto.ErrorCode(err) == syncproto.ENOTFOUND:
		if !up.trusted {
			return Upload{}, false, nil // unrecorded: the uploader sends it again
		}
	case err != nil:
		return Upload{}, false, fmt.Errorf("media: status %s: %w", sha, err)
	case !up.holds(ph):
		return Upload{}, false, nil
	}
	// A photo stored but not recorded complete (the process died, or
	// the database failed, in between) is repaired here: alreadyStored
	// records it. Only the server itself gets here without being a
	// holder, which is recorded after the photo is.
	u, err := s.alreadyStored(ctx, sha, info)
	if err == nil && up.holds(ph) {
		err = s.vouchSchools(ctx, sha, ph, up)
	}
	return u, err == nil, err
}

// chunk is a staged chunk: its key, offset and size.
type chunk struct {
	key          string
	offset, size int64
}

// staging is the state of an upload in the store: its chunks in offset
// order, and how many bytes from offset 0 they cover without a gap.
type staging struct {
	chunks   []chunk
	received int64
}

func (s *Service) staged(ctx context.Context, up uploader, sha string) (staging, error) {
	infos, err := s.blobs.List(ctx, stagingPrefix(up.id, sha))
	if err != nil {
		return staging{}, fmt.Errorf("media: list chunks of %s: %w", sha, err)
	}
	return stagingOf(stagingPrefix(up.id, sha), infos), nil
}

// stagingOf builds the staging state of the chunks under prefix from a
// listing. Other keys are ignored.
func stagingOf(prefix string, infos []BlobInfo) staging {
	var st staging
	for _, in := range infos {
		if len(in.Key) <= len(prefix) || in.Key[:len(prefix)] != prefix {
			continue
		}
		off, ok := parseChunkName(in.Key[len(prefix):])
		if !ok || in.Size <= 0 {
			continue
		}
		st.chunks = append(st.chunks, chunk{key: in.Key, offset: off, size: in.Size})
	}
	slices.SortFunc(st.chunks, byOffset)
	st.received = covered(st.chunks)
	return st
}

func byOffset(a, b chunk) int { return cmp.Compare(a.offset, b.offset) }

// covered returns how many bytes from offset 0 the chunks (sorted by
// offset) cover without a gap. Chunks may overlap: two phones, or one
// phone after a change of chunk size, may have sent the same bytes cut
// differently.
func covered(chunks []chunk) int64 {
	var pos int64
	for _, c := range chunks {
		if c.offset > pos {
			break
		}
		pos = max(pos, c.offset+c.size)
	}
	return pos
}

// PutChunk stores data as the bytes of photo sha at offset, and returns
// the upload's state after it.
//
// A chunk is accepted at the offset where the received bytes end, or again
// at the offset of a chunk already received (a phone that lost the answer
// sends it again; an identical chunk is not stored twice). Any other
// offset gets ECONFLICT: the phone asks Status and goes on from Received.
// A chunk larger than Config.MaxChunkBytes, or reaching past
// Config.MaxBlobSize, gets ETOOLARGE. If the photo is already stored the
// chunk is ignored and the answer says complete.
//
// Each chunk is stored as an object of its own, so an upload survives a
// restart of this process and can go on through any other process.
func (s *Service) PutChunk(ctx context.Context, sha string, offset int64, data []byte) (Upload, error) {
	if err := checkSHA256(sha); err != nil {
		return Upload{}, err
	}
	switch n := int64(len(data)); {
	case offset < 0 || offset > maxOffset:
		return Upload{}, syncproto.Errorf(syncproto.EINVALID, "Offset %d is out of range.", offset)
	case n == 0:
		return Upload{}, syncproto.Errorf(syncproto.EINVALID, "The chunk is empty.")
	case n > s.cfg.MaxChunkBytes:
		return Upload{}, syncproto.Errorf(syncproto.ETOOLARGE, "A chunk may hold at most %d bytes; this one has %d.", s.cfg.MaxChunkBytes, n)
	case offset+n > s.cfg.MaxBlobSize:
		return Upload{}, syncproto.Errorf(syncproto.ETOOLARGE, "A photo may have at most %d bytes; this chunk ends at byte %d.", s.cfg.MaxBlobSize, offset+n)
	}
	up := uploaderOf(ctx)
	// One listing of everything the uploader has staged: this upload's
	// chunks, and the bytes the quota counts.
	all, err := s.blobs.List(ctx, uploaderPrefix(up.id))
	if err != nil {
		return Upload{}, fmt.Errorf("media: list chunks of %s: %w", sha, err)
	}
	st := stagingOf(stagingPrefix(up.id, sha), all)
	if len(st.chunks) == 0 {
		// A new upload: the uploader may have sent the photo already.
		if u, ok, err := s.heldStored(ctx, sha, up); err != nil || ok {
			return u, err
		}
	}
	var usage int64
	for _, in := range all {
		if in.Key != chunkKey(up.id, sha, offset) {
			usage += in.Size
		}
	}
	held, err := s.unreferencedBytes(ctx, up)
	if err != nil {
		return Upload{}, err
	}
	usage += held
	if err := s.checkQuota(up, usage, int64(len(data))); err != nil {
		return Upload{}, err
	}
	n := int64(len(data))
	if offset != st.received {
		i := slices.IndexFunc(st.chunks, func(c chunk) bool { return c.offset == offset })
		switch {
		case offset > st.received || i < 0:
			return Upload{}, syncproto.Errorf(syncproto.ECONFLICT,
				"The server has received %d bytes of this photo; send the chunk at offset %d.", st.received, st.received)
		case st.chunks[i].size == n:
			// The same chunk again: its answer was lost.
			return s.partial(sha, st.received), nil
		}
	}
	key := chunkKey(up.id, sha, offset)
	if err := s.blobs.Put(ctx, key, bytes.NewReader(data), n, PutOptions{}); err != nil {
		return Upload{}, fmt.Errorf("media: put chunk %s@%d: %w", sha, offset, err)
	}
	chunks := slices.DeleteFunc(st.chunks, func(c chunk) bool { return c.offset == offset })
	chunks = append(chunks, chunk{key: key, offset: offset, size: n})
	slices.SortFunc(chunks, byOffset)
	return s.partial(sha, covered(chunks)), nil
}

// Finish ends a chunked upload of size bytes: the server reads the chunks
// back in order, checks the size, that the bytes are a JPEG, PNG, WebP or
// HEIC image (EUNSUPPORTED otherwise) and that their sha256 is sha, stores
// them as the photo, and removes the chunks.
//
// The photo becomes visible only if every check passes: the object store
// itself refuses bytes with another sha256 (see BlobStore.Put). On a wrong
// hash (EINVALID), a wrong type (EUNSUPPORTED) or too many bytes, the
// chunks are removed too, so the phone starts again from offset 0. If
// fewer than size bytes have arrived, Finish returns ECONFLICT and keeps
// the chunks. declaredType is what the phone believes the type is; the
// stored type is the one the bytes show.
//
// Finishing a photo that is already stored returns complete at once.
func (s *Service) Finish(ctx context.Context, sha string, size int64, declaredType string) (Upload, error) {
	if err := checkSHA256(sha); err != nil {
		return Upload{}, err
	}
	if err := checkDeclaredType(declaredType); err != nil {
		return Upload{}, err
	}
	if size <= 0 {
		return Upload{}, syncproto.Errorf(syncproto.EINVALID, "The size must be a positive number of bytes.")
	}
	up := uploaderOf(ctx)
	if u, ok, err := s.heldStored(ctx, sha, up); err != nil || ok {
		if ok {
			s.dropStaging(ctx, up, sha, nil)
		}
		return u, err
	}
	st, err := s.staged(ctx, up, sha)
	if err != nil {
		return Upload{}, err
	}
	if size > s.cfg.MaxBlobSize {
		s.dropStaging(ctx, up, sha, st.chunks)
		return Upload{}, syncproto.Errorf(syncproto.ETOOLARGE, "A photo may have at most %d bytes; this one has %d.", s.cfg.MaxBlobSize, size)
	}
	switch {
	case st.received < size:
		return Upload{}, syncproto.Errorf(syncproto.ECONFLICT,
			"The server has received %d of the %d bytes of this photo; send the chunk at offset %d.", st.received, size, st.received)
	case st.received > size:
		s.dropStaging(ctx, up, sha, st.chunks)
		return Upload{}, syncproto.Errorf(syncproto.EINVALID,
			"The server received %d bytes, more than the %d the photo has; upload it again from offset 0.", st.received, size)
	}

	r := &assembly{ctx: ctx, blobs: s.blobs, chunks: st.chunks, size: size}
	defer r.Close()
	head := make([]byte, min(size, HeadLen))
	if _, err := io.ReadFull(r, head); err != nil {
		return s.readFailed(ctx, sha, err)
	}
	contentType, err := Identify(head, declaredType)
	if err != nil {
		s.dropStaging(ctx, up, sha, st.chunks)
		return Upload{}, err
	}
	// The photo may be stored already (another uploader sent it): this
	// uploader's bytes are checked all the same — the store checks the
	// sha256 of what it is given — and replace it with the same bytes.
	_, serr := s.blobs.Stat(ctx, photoKey(sha))
	existed := serr == nil
	h := sha256.New()
	h.Write(head)
	body := io.MultiReader(bytes.NewReader(head), io.TeeReader(r, h))
	err = s.blobs.Put(ctx, photoKey(sha), body, size, PutOptions{ContentType: contentType, SHA256: sha})
	if r.err != nil {
		return s.readFailed(ctx, sha, r.err)
	}
	if err == nil && hex.EncodeToString(h.Sum(nil)) != sha {
		// The store let bytes with another hash through: it does not
		// check PutOptions.SHA256. Take them out again at once.
		if rerr := s.blobs.Remove(context.WithoutCancel(ctx), photoKey(sha)); rerr != nil {
			return Upload{}, fmt.Errorf("media: finish %s: the store does not check sha256, and removing a wrong object failed: %w", sha, rerr)
		}
		err = syncproto.Errorf(syncproto.EINVALID, "sha256 mismatch")
	}
	if err != nil {
		if syncproto.ErrorCode(err) == syncproto.EINVALID {
			s.dropStaging(ctx, up, sha, st.chunks)
			return Upload{}, mismatch(sha)
		}
		return Upload{}, fmt.Errorf("media: finish %s: %w", sha, err)
	}
	s.dropStaging(ctx, up, sha, st.chunks)
	if err := s.stored(ctx, sha, size, contentType, !existed); err != nil {
		return Upload{}, err
	}
	if err := s.vouch(ctx, sha, up); err != nil {
		return Upload{}, err
	}
	return s.complete(sha, size, contentType), nil
}

// Put stores a whole photo sent in one request, the fast path for good
// networks: the same checks as Finish, without staging. A photo already
// stored is not written again.
func (s *Service) Put(ctx context.Context, sha string, data []byte, declaredType string) (Upload, error) {
	if err := checkSHA256(sha); err != nil {
		return Upload{}, err
	}
	if err := checkDeclaredType(declaredType); err != nil {
		return Upload{}, err
	}
	n := int64(len(data))
	switch {
	case n == 0:
		return Upload{}, syncproto.Errorf(syncproto.EINVALID, "The photo is empty.")
	case n > s.cfg.MaxBlobSize:
		return Upload{}, syncproto.Errorf(syncproto.ETOOLARGE, "A photo may have at most %d bytes; this one has %d.", s.cfg.MaxBlobSize, n)
	}
	contentType, err := Identify(data[:min(n, HeadLen)], declaredType)
	if err != nil {
		return Upload{}, err
	}
	if sum := sha256.Sum256(data); hex.EncodeToString(sum[:]) != sha {
		return Upload{}, mismatch(sha)
	}
	up := uploaderOf(ctx)
	if u, ok, err := s.heldStored(ctx, sha, up); err != nil || ok {
		return u, err
	}
	held, err := s.unreferencedBytes(ctx, up)
	if err != nil {
		return Upload{}, err
	}
	staged, err := s.blobs.List(ctx, uploaderPrefix(up.id))
	if err != nil {
		return Upload{}, fmt.Errorf("media: put %s: %w", sha, err)
	}
	for _, in := range staged {
		held += in.Size
	}
	if err := s.checkQuota(up, held, n); err != nil {
		return Upload{}, err
	}
	err = s.blobs.Put(ctx, photoKey(sha), bytes.NewReader(data), n, PutOptions{ContentType: contentType, SHA256: sha, IfAbsent: true})
	switch code := syncproto.ErrorCode(err); {
	case err == nil, code == syncproto.ECONFLICT: // ECONFLICT: stored before
	case code == syncproto.EINVALID: // corrupted on the way to the store
		return Upload{}, mismatch(sha)
	default:
		return Upload{}, fmt.Errorf("media: put %s: %w", sha, err)
	}
	if err := s.stored(ctx, sha, n, contentType, err == nil); err != nil {
		return Upload{}, err
	}
	if err := s.vouch(ctx, sha, up); err != nil {
		return Upload{}, err
	}
	return s.complete(sha, n, contentType), nil
}

func unsupported(declared string) error {
	if declared != "" {
		return syncproto.Errorf(syncproto.EUNSUPPORTED,
			"The bytes are not a JPEG, PNG, WebP or HEIC image (the phone called them %q).", clip(declared, 60))
	}
	return syncproto.Errorf(syncproto.EUNSUPPORTED, "The bytes are not a JPEG, PNG, WebP or HEIC image.")
}

func mismatch(sha string) error {
	return syncproto.Errorf(syncproto.EINVALID,
		"The bytes received do not have sha256 %s; nothing was stored. Upload the photo again from offset 0.", sha)
}

// alreadyStored answers for a photo found in the object store, making
// sure the MetaStore knows it (see stored).
func (s *Service) alreadyStored(ctx context.Context, sha string, info BlobInfo) (Upload, error) {
	if err := s.stored(ctx, sha, info.Size, info.ContentType, false); err != nil {
		return Upload{}, err
	}
	return s.complete(sha, info.Size, info.ContentType), nil
}

// vouch records that up has sent the whole photo, and vouches for the
// schools whose records refer to it that up may see: from then on those
// records show the photo (see URL, RecordPhotos).
//
// The holder is written before the schools are read, as a record's push
// notes its school before it reads the holders (vouchByRecord, NotePhotos):
// when an upload and a push of a record naming the photo meet, on one
// process or two, at least one of them sees the other's write and
// vouches. Read first and written after, both could miss each other and
// the photo would stay invisible for good (seen once in the fault suite,
// with two replicas, as a lost photo).
func (s *Service) vouch(ctx context.Context, sha string, up uploader) error {
	if err := s.meta.Vouch(ctx, sha, up.id, nil); err != nil {
		return fmt.Errorf("media: vouch for %s: %w", sha, err)
	}
	ph, err := s.meta.Photo(ctx, sha)
	if err != nil {
		return fmt.Errorf("media: vouch for %s: %w", sha, err)
	}
	return s.vouchSchools(ctx, sha, ph, up)
}

// vouchSchools vouches for the schools of the records that refer to the
// photo, that up may see and that are not vouched for yet. It also runs
// when a holder asks about the photo again (heldStored): a process that
// died between writing the holder and the schools left them unvouched,
// and the phone, told the photo is complete, would not send it again.
func (s *Service) vouchSchools(ctx context.Context, sha string, ph Photo, up uploader) error {
	var schools []string
	for _, school := range ph.Schools {
		if slices.Contains(ph.Vouched, school) {
			continue
		}
		ok := up.trusted
		if !ok {
			var err error
			if ok, err = s.access.CanSeeSchool(ctx, up.p, school); err != nil {
				return fmt.Errorf("media: vouch for %s: %w", sha, err)
			}
		}
		if ok {
			schools = append(schools, school)
		}
	}
	if len(schools) == 0 {
		return nil
	}
	if err := s.meta.Vouch(ctx, sha, "", schools); err != nil {
		return fmt.Errorf("media: vouch for %s: %w", sha, err)
	}
	return nil
}

// unreferencedScan bounds the photos read to count a device's quota.
const unreferencedScan = 1000

// unreferencedBytes is the size of the photos up holds that no record
// refers to yet.
func (s *Service) unreferencedBytes(ctx context.Context, up uploader) (int64, error) {
	phs, err := s.meta.Unreferenced(ctx, unreferencedScan)
	if err != nil {
		return 0, fmt.Errorf("media: quota: %w", err)
	}
	var n int64
	for _, ph := range phs {
		if slices.Contains(ph.Holders, up.id) {
			n += ph.Size
		}
	}
	return n, nil
}

// checkQuota refuses n more bytes for an uploader that holds used.
func (s *Service) checkQuota(up uploader, used, n int64) error {
	if up.trusted || used+n <= s.cfg.DeviceQuota {
		return nil
	}
	return syncproto.Errorf(syncproto.ETOOLARGE,
		"This device holds %d bytes in unfinished uploads and in photos no record refers to; a device may hold %d. Sync the records that refer to its photos, or wait for old uploads to expire.",
		used, s.cfg.DeviceQuota)
}

// stored records a stored original in the MetaStore: the photo is
// complete, and its thumbnails are queued. fresh says whether this call
// stored the object; if not (the phone retried, or another phone sent the
// same photo), one read finds out whether the records exist already.
//
// Both writes are idempotent, and a phone that gets an error retries
// (finding the photo stored), so a crash between them is repaired by the
// retry; that is also why they may run at the same time.
func (s *Service) stored(ctx context.Context, sha string, size int64, contentType string, fresh bool) error {
	if !fresh {
		ph, err := s.meta.Photo(ctx, sha)
		switch {
		case err == nil && ph.State == StateComplete && ph.ThumbState != ThumbsPending:
			return nil
		case err != nil && syncproto.ErrorCode(err) != syncproto.ENOTFOUND:
			return fmt.Errorf("media: record stored photo %s: %w", sha, err)
		}
	}
	now := s.cfg.Now()
	st := Stored{Size: size, ContentType: contentType, At: now}
	if p, ok := server.PrincipalFrom(ctx); ok {
		st.By = p.UserID
	}
	var wg sync.WaitGroup
	var qerr error
	wg.Go(func() { qerr = s.meta.QueueThumbs(ctx, sha, contentType, now) })
	perr := s.meta.PhotoStored(ctx, sha, st)
	wg.Wait()
	if err := errors.Join(perr, qerr); err != nil {
		return fmt.Errorf("media: record stored photo %s: %w", sha, err)
	}
	return nil
}

// dropStaging removes an upload's chunks (listing them if chunks is nil).
// A failure only leaves garbage that the sweeper removes later, so it is
// logged, not returned.
func (s *Service) dropStaging(ctx context.Context, up uploader, sha string, chunks []chunk) {
	ctx = context.WithoutCancel(ctx)
	if chunks == nil {
		st, err := s.staged(ctx, up, sha)
		if err != nil {
			s.logger.Warn("cannot list chunks to remove", "sha256", sha, "error", err)
			return
		}
		chunks = st.chunks
	}
	if len(chunks) == 0 {
		return
	}
	keys := make([]string, len(chunks))
	for i, c := range chunks {
		keys[i] = c.key
	}
	if err := s.blobs.Remove(ctx, keys...); err != nil {
		s.logger.Warn("cannot remove chunks", "sha256", sha, "error", err)
	}
}

// assembly reads the staged chunks of an upload in order, as one stream of
// size bytes, opening one chunk at a time. Overlapping chunks are read
// from where the previous one ended. The first error is kept in err.
type assembly struct {
	ctx    context.Context
	blobs  BlobStore
	chunks []chunk
	size   int64

	pos  int64         // bytes returned so far
	next int           // index of the next chunk to open
	cur  *exactReader  // the open chunk's useful bytes
	raw  io.ReadCloser // the open chunk
	err  error
}

func (a *assembly) Read(p []byte) (int, error) {
	if a.err != nil {
		return 0, a.err
	}
	for {
		if a.pos >= a.size {
			return 0, io.EOF
		}
		if a.cur == nil {
			if err := a.open(); err != nil {
				a.err = err
				return 0, err
			}
		}
		if int64(len(p)) > a.size-a.pos {
			p = p[:a.size-a.pos]
		}
		n, err := a.cur.Read(p)
		a.pos += int64(n)
		if err == io.EOF {
			a.closeCur()
			if n > 0 {
				return n, nil
			}
			continue
		}
		if err != nil {
			a.err = err
		}
		return n, err
	}
}

// open opens the next chunk that covers a.pos, skipping the bytes before
// a.pos.
func (a *assembly) open() error {
	for a.next < len(a.chunks) {
		c := a.chunks[a.next]
		a.next++
		end := c.offset + c.size
		if end <= a.pos {
			continue // wholly inside bytes already read
		}
		if c.offset > a.pos {
			break
		}
		rc, err := a.blobs.Get(a.ctx, c.key)
		if err != nil {
			return err
		}
		if skip := a.pos - c.offset; skip > 0 {
			if _, err := io.CopyN(io.Discard, rc, skip); err != nil {
				rc.Close()
				return chunkChanged(err)
			}
		}
		a.raw, a.cur = rc, &exactReader{r: rc, n: end - a.pos}
		return nil
	}
	return syncproto.Errorf(syncproto.ECONFLICT, "A chunk of the upload is missing; ask for its status and send from there.")
}

// exactReader reads exactly n bytes from r: fewer is an error, because the
// chunk was replaced since it was listed.
type exactReader struct {
	r io.Reader
	n int64
}

func (e *exactReader) Read(p []byte) (int, error) {
	if e.n <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > e.n {
		p = p[:e.n]
	}
	n, err := e.r.Read(p)
	e.n -= int64(n)
	if err == io.EOF && e.n > 0 {
		return n, chunkChanged(io.ErrUnexpectedEOF)
	}
	if err == io.EOF {
		err = nil
	}
	return n, err
}

func chunkChanged(err error) error {
	if code := syncproto.ErrorCode(err); code != syncproto.EINTERNAL {
		return err
	}
	return syncproto.Errorf(syncproto.ECONFLICT, "A chunk changed while the upload was being finished; finish again.")
}

func (a *assembly) closeCur() {
	if a.raw != nil {
		a.raw.Close()
	}
	a.cur, a.raw = nil, nil
}

// Close closes the open chunk.
func (a *assembly) Close() error {
	a.closeCur()
	return nil
}

// readFailed handles an error met while Finish read the chunks back. A
// chunk that vanished usually means another process finished the same
// photo meanwhile (and removed the chunks): then the answer is complete.
func (s *Service) readFailed(ctx context.Context, sha string, err error) (Upload, error) {
	if syncproto.ErrorCode(err) == syncproto.ENOTFOUND {
		if info, serr := s.blobs.Stat(ctx, photoKey(sha)); serr == nil {
			return s.alreadyStored(ctx, sha, info)
		}
		err = syncproto.Errorf(syncproto.ECONFLICT, "A chunk of the upload disappeared; ask for its status and send from there.")
	}
	return Upload{}, fmt.Errorf("media: finish %s: read chunks: %w", sha, err)
}
