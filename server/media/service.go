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
		ThumbMaxUnfinished:  2,
		PollInterval:        2 * time.Second,
		StagingTTL:          7 * 24 * time.Hour,
		SweepInterval:       time.Hour,
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

// Status returns what the server holds of the photo sha: nothing, a
// prefix of Received bytes, or the whole photo. The object store decides,
// so the answer is the same from every process.
//
// A complete answer tells the phone to send nothing more, so before
// giving it Status makes sure the MetaStore knows the photo is complete:
// a process that stored the photo may have died, or found the database
// down, before it could record it.
func (s *Service) Status(ctx context.Context, sha string) (Upload, error) {
	if err := checkSHA256(sha); err != nil {
		return Upload{}, err
	}
	info, err := s.blobs.Stat(ctx, photoKey(sha))
	switch {
	case err == nil:
		return s.alreadyStored(ctx, sha, info)
	case syncproto.ErrorCode(err) != syncproto.ENOTFOUND:
		return Upload{}, fmt.Errorf("media: status %s: %w", sha, err)
	}
	staged, err := s.staged(ctx, sha)
	if err != nil {
		return Upload{}, err
	}
	return s.partial(sha, staged.received), nil
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

func (s *Service) staged(ctx context.Context, sha string) (staging, error) {
	infos, err := s.blobs.List(ctx, stagingPrefix(sha))
	if err != nil {
		return staging{}, fmt.Errorf("media: list chunks of %s: %w", sha, err)
	}
	return stagingOf(sha, infos), nil
}

// stagingOf builds the staging state from a listing. Keys that are not
// chunk keys are ignored.
func stagingOf(sha string, infos []BlobInfo) staging {
	var st staging
	prefix := stagingPrefix(sha)
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
	st, err := s.staged(ctx, sha)
	if err != nil {
		return Upload{}, err
	}
	if len(st.chunks) == 0 {
		// A new upload: the photo may be stored already (another phone
		// sent it). One Stat spares the phone sending it all again.
		info, err := s.blobs.Stat(ctx, photoKey(sha))
		switch {
		case err == nil:
			return s.alreadyStored(ctx, sha, info)
		case syncproto.ErrorCode(err) != syncproto.ENOTFOUND:
			return Upload{}, fmt.Errorf("media: put chunk %s@%d: %w", sha, offset, err)
		}
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
	key := chunkKey(sha, offset)
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
	if info, err := s.blobs.Stat(ctx, photoKey(sha)); err == nil {
		s.dropStaging(ctx, sha, nil)
		return s.alreadyStored(ctx, sha, info)
	} else if syncproto.ErrorCode(err) != syncproto.ENOTFOUND {
		return Upload{}, fmt.Errorf("media: finish %s: %w", sha, err)
	}
	st, err := s.staged(ctx, sha)
	if err != nil {
		return Upload{}, err
	}
	if size > s.cfg.MaxBlobSize {
		s.dropStaging(ctx, sha, st.chunks)
		return Upload{}, syncproto.Errorf(syncproto.ETOOLARGE, "A photo may have at most %d bytes; this one has %d.", s.cfg.MaxBlobSize, size)
	}
	switch {
	case st.received < size:
		return Upload{}, syncproto.Errorf(syncproto.ECONFLICT,
			"The server has received %d of the %d bytes of this photo; send the chunk at offset %d.", st.received, size, st.received)
	case st.received > size:
		s.dropStaging(ctx, sha, st.chunks)
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
		s.dropStaging(ctx, sha, st.chunks)
		return Upload{}, err
	}
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
			s.dropStaging(ctx, sha, st.chunks)
			return Upload{}, mismatch(sha)
		}
		return Upload{}, fmt.Errorf("media: finish %s: %w", sha, err)
	}
	s.dropStaging(ctx, sha, st.chunks)
	if err := s.stored(ctx, sha, size, contentType, true); err != nil {
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
func (s *Service) dropStaging(ctx context.Context, sha string, chunks []chunk) {
	ctx = context.WithoutCancel(ctx)
	if chunks == nil {
		st, err := s.staged(ctx, sha)
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
