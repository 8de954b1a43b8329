package media

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"image"
	"image/color"
	_ "image/jpeg" // registers the JPEG decoder with image.Decode
	_ "image/png"  // registers the PNG decoder with image.Decode
	"io"
	"runtime/debug"
	"strings"
	"sync"
	"time"

	"github.com/disintegration/imaging"
	_ "golang.org/x/image/webp" // registers the WebP decoder with image.Decode

	"github.com/fieldsync/fieldsync/server/media/exif"
	"github.com/fieldsync/fieldsync/syncproto"
)

// Run makes thumbnails and removes abandoned uploads until ctx is done,
// then returns nil. fieldsyncd runs it in a goroutine. Several processes
// may run it at once: jobs are leased (MetaStore.ClaimThumbs), and a lease
// that runs out because its process died is taken over.
func (s *Service) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	for range s.cfg.ThumbWorkers {
		wg.Go(func() { s.thumbLoop(ctx) })
	}
	wg.Go(func() { s.sweepLoop(ctx) })
	wg.Wait()
	return nil
}

func (s *Service) thumbLoop(ctx context.Context) {
	for ctx.Err() == nil {
		worked, err := s.ThumbOnce(ctx)
		if err != nil && ctx.Err() == nil {
			s.logger.Warn("thumbnail worker", "error", err)
		}
		if !worked {
			sleep(ctx, s.cfg.PollInterval)
		}
	}
}

func (s *Service) sweepLoop(ctx context.Context) {
	for {
		if err := s.Sweep(ctx); err != nil && ctx.Err() == nil {
			s.logger.Warn("staging sweep", "error", err)
		}
		if n, err := s.ExpireUnreferenced(ctx); err != nil && ctx.Err() == nil {
			s.logger.Warn("expire unreferenced photos", "error", err)
		} else if n > 0 {
			s.logger.Info("expired unreferenced photos", "count", n)
		}
		if !sleep(ctx, s.cfg.SweepInterval) {
			return
		}
	}
}

// sleep waits for d or until ctx is done, and reports whether d passed.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// ThumbOnce claims one due thumbnail job and does it. It reports whether
// there was a job. Run calls it in a loop; tests call it directly.
//
// No photo may take the server down, or keep it down:
//
//   - a job runs within Config.ThumbJobTimeout, and a panic in it is
//     recovered and counts as a failure;
//   - an image is decoded only if its header says it fits in
//     Config.ThumbMaxDecodeBytes (pixels × bytes per pixel of its color
//     model, plus the working copy the resizing makes), and the workers of
//     one process decode at most that many bytes at a time;
//   - a job that fails because a store is unreachable is retried with
//     backoff for as long as it takes; one that fails otherwise is retried
//     Config.ThumbAttempts times, then quarantined (ThumbsQuarantined, the
//     error on the photo, one error line in the log) and never run again;
//   - a job claimed Config.ThumbMaxUnfinished times without an outcome —
//     its process died while making it, or hung past its lease — is
//     quarantined when claimed again, without being run: a photo that
//     kills the process cannot do so in a loop across restarts.
//
// A photo that is too large to decode is ThumbsFailed at once; HEIC and
// HEIF photos are marked ThumbsUnsupported.
func (s *Service) ThumbOnce(ctx context.Context) (bool, error) {
	now := s.cfg.Now()
	job, err := s.meta.ClaimThumbs(ctx, now, s.cfg.ThumbLease)
	switch code := syncproto.ErrorCode(err); {
	case code == syncproto.ENOTFOUND:
		return false, nil
	case err != nil:
		return false, fmt.Errorf("media: claim thumbnail job: %w", err)
	}
	if job.Unfinished >= s.cfg.ThumbMaxUnfinished {
		reason := fmt.Sprintf("the thumbnail job was started %d times and never ended (the process stopped or hung while making it)", job.Unfinished)
		return true, s.quarantine(ctx, job, reason)
	}
	res, err := s.runJob(ctx, job)
	if err == nil {
		if err := s.meta.ThumbsDone(ctx, job, res); err != nil {
			return true, fmt.Errorf("media: thumbnails of %s: %w", job.SHA256, err)
		}
		return true, nil
	}
	attempts := job.Attempts + 1
	if syncproto.ErrorCode(err) != syncproto.EUNAVAILABLE && attempts >= s.cfg.ThumbAttempts {
		return true, s.quarantine(ctx, job, fmt.Sprintf("failed %d times: %v", attempts, err))
	}
	backoff := s.cfg.ThumbBackoff << min(job.Attempts, 20)
	if backoff <= 0 || backoff > s.cfg.ThumbMaxBackoff {
		backoff = s.cfg.ThumbMaxBackoff
	}
	if rerr := s.meta.ThumbsRetry(ctx, job, now.Add(backoff), err.Error()); rerr != nil {
		return true, fmt.Errorf("media: retry thumbnails of %s: %w", job.SHA256, rerr)
	}
	return true, fmt.Errorf("media: thumbnails of %s (attempt %d, next in %s): %w", job.SHA256, attempts, backoff, err)
}

// quarantine gives a job up for good: the photo keeps its original and
// gets ThumbsQuarantined with the reason, which the operator sees in the
// log (once, at error level) and in the record's photo status.
func (s *Service) quarantine(ctx context.Context, job ThumbJob, reason string) error {
	res := ThumbResult{State: ThumbsQuarantined, Error: clip(reason, 500)}
	if err := s.meta.ThumbsDone(ctx, job, res); err != nil {
		return fmt.Errorf("media: quarantine thumbnails of %s: %w", job.SHA256, err)
	}
	s.logger.Error("thumbnail job quarantined: it will not run again", "sha256", job.SHA256, "content_type", job.ContentType, "reason", res.Error)
	return fmt.Errorf("media: quarantined thumbnails of %s: %s", job.SHA256, reason)
}

// runJob makes the thumbnails within Config.ThumbJobTimeout, turning a
// panic into an error.
func (s *Service) runJob(ctx context.Context, job ThumbJob) (res ThumbResult, err error) {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.ThumbJobTimeout)
	defer cancel()
	defer func() {
		if v := recover(); v != nil {
			s.logger.Error("thumbnail job panicked", "sha256", job.SHA256, "panic", fmt.Sprint(v), "stack", string(debug.Stack()))
			res, err = ThumbResult{}, fmt.Errorf("panic: %v", v)
		}
	}()
	res, err = s.makeThumbs(ctx, job)
	if err != nil && ctx.Err() != nil && syncproto.ErrorCode(err) == syncproto.EUNAVAILABLE {
		// The job's own deadline, not an unreachable store: a photo
		// that takes this long counts as a failure.
		err = fmt.Errorf("took longer than %s: %w", s.cfg.ThumbJobTimeout, ctx.Err())
	}
	return res, err
}

// makeThumbs reads the original, keeps its EXIF metadata, and stores the
// thumbnails, upright.
func (s *Service) makeThumbs(ctx context.Context, job ThumbJob) (ThumbResult, error) {
	if !Decodable(job.ContentType) {
		return ThumbResult{State: ThumbsUnsupported}, nil
	}
	rc, err := s.blobs.Get(ctx, photoKey(job.SHA256))
	if err != nil {
		return ThumbResult{}, err
	}
	data, err := io.ReadAll(io.LimitReader(rc, s.cfg.MaxBlobSize+1))
	rc.Close()
	if err != nil {
		return ThumbResult{}, err
	}
	res := ThumbResult{State: ThumbsDone, Thumbs: map[string]string{}}
	if job.ContentType == TypeJPEG {
		res.EXIF = readEXIF(data, s.cfg.EXIFZone)
	}
	dim, _, err := image.DecodeConfig(bytes.NewReader(data))
	if err != nil {
		return ThumbResult{}, fmt.Errorf("decode %s header: %w", job.ContentType, err)
	}
	if px := int64(dim.Width) * int64(dim.Height); px > int64(s.cfg.ThumbMaxPixels) {
		// Deterministic: no point in retrying.
		return ThumbResult{State: ThumbsFailed, EXIF: res.EXIF,
			Error: fmt.Sprintf("the image has %d×%d pixels, more than the %d the server decodes", dim.Width, dim.Height, s.cfg.ThumbMaxPixels)}, nil
	}
	cost := DecodeCost(dim)
	if cost > s.cfg.ThumbMaxDecodeBytes {
		return ThumbResult{State: ThumbsFailed, EXIF: res.EXIF,
			Error: fmt.Sprintf("decoding the %d×%d image would take %d MiB, more than the %d MiB the server allows", dim.Width, dim.Height, cost>>20, s.cfg.ThumbMaxDecodeBytes>>20)}, nil
	}
	if err := s.decodeBudget.Acquire(ctx, cost); err != nil {
		return ThumbResult{}, fmt.Errorf("wait for decode memory: %w", err)
	}
	// Decoding and resizing run in a goroutine of their own, so that the
	// job ends at its deadline even when a decoder is busy with hostile
	// bytes without reading more of them. The goroutine keeps its share
	// of the budget until it is done, so memory stays bounded even then.
	done := make(chan resized, 1)
	go func() {
		defer s.decodeBudget.Release(cost)
		done <- resize(ctx, data, res.EXIF.Orientation)
		if cost >= collectAfter {
			// The decoded image is garbage now. Collect it before the
			// budget lets another decode start: otherwise the next large
			// image is allocated next to this one's remains and the
			// process holds twice the budget (a memory limit cannot
			// help: the next image arrives in one allocation).
			debug.FreeOSMemory()
		}
	}()
	var out resized
	select {
	case <-ctx.Done():
		return ThumbResult{}, fmt.Errorf("decode %s: %w", job.ContentType, ctx.Err())
	case out = <-done:
	}
	if out.err != nil {
		return ThumbResult{}, fmt.Errorf("%s: %w", job.ContentType, out.err)
	}
	for i, t := range thumbSizes {
		var buf bytes.Buffer
		if err := imaging.Encode(&buf, out.imgs[i], imaging.JPEG, imaging.JPEGQuality(s.cfg.ThumbQuality)); err != nil {
			return ThumbResult{}, fmt.Errorf("encode %s px: %w", t.variant, err)
		}
		key := thumbKey(job.SHA256, t.variant)
		if err := s.blobs.Put(ctx, key, &buf, int64(buf.Len()), PutOptions{ContentType: TypeJPEG}); err != nil {
			return ThumbResult{}, err
		}
		res.Thumbs[t.variant] = key
	}
	return res, nil
}

// resized is the outcome of resize: an image per thumbSizes entry.
type resized struct {
	imgs []image.Image
	err  error
}

// resize decodes data and fits it into each thumbnail size, upright. A
// panic in a decoder becomes an error.
func resize(ctx context.Context, data []byte, orientation int) (out resized) {
	defer func() {
		if v := recover(); v != nil {
			out = resized{err: fmt.Errorf("panic: %v", v)}
		}
	}()
	img, _, err := image.Decode(&ctxReader{ctx: ctx, r: bytes.NewReader(data)})
	if err != nil {
		return resized{err: fmt.Errorf("decode: %w", err)}
	}
	for i, t := range thumbSizes {
		if err := ctx.Err(); err != nil {
			return resized{err: fmt.Errorf("resize: %w", err)}
		}
		// Sizes go from large to small: each is made from the one before,
		// which is faster and looks the same. The orientation is applied
		// to the first (small) result rather than to the original.
		img = imaging.Fit(img, t.px, t.px, imaging.Lanczos)
		if i == 0 {
			img = upright(img, orientation)
		}
		out.imgs = append(out.imgs, img)
	}
	return out
}

// upright turns an image as its EXIF orientation (1–8) says.
func upright(img image.Image, orientation int) image.Image {
	switch orientation {
	case 2:
		return imaging.FlipH(img)
	case 3:
		return imaging.Rotate180(img)
	case 4:
		return imaging.FlipV(img)
	case 5:
		return imaging.Transpose(img)
	case 6:
		return imaging.Rotate270(img)
	case 7:
		return imaging.Transverse(img)
	case 8:
		return imaging.Rotate90(img)
	}
	return img
}

// collectAfter is the decode cost from which a thumbnail job collects its
// garbage and returns it to the system when it is done: about a
// 5-megapixel photo. A phone's 1600-pixel photo costs about 10 MiB and
// leaves its garbage to the collector's own pace.
const collectAfter = 32 << 20

// DecodeCost is how many bytes decoding an image of this header takes:
// its pixels times the bytes per pixel of its color model (a 16-bit PNG
// takes twice what an 8-bit one does), plus the 4-byte-a-pixel working
// copy the resizing makes of each row at the thumbnail's width, bounded
// by the image's own size.
func DecodeCost(c image.Config) int64 {
	w, h := int64(max(c.Width, 0)), int64(max(c.Height, 0))
	return w*h*bytesPerPixel(c.ColorModel) + 4*min(w, 1280)*h
}

// bytesPerPixel is what a decoder allocates per pixel for a color model;
// YCbCr counts as 4:4:4, the worst case. An unknown model counts as the
// largest, 8.
func bytesPerPixel(m color.Model) int64 {
	switch m {
	case color.GrayModel, color.AlphaModel:
		return 1
	case color.Gray16Model, color.Alpha16Model:
		return 2
	case color.YCbCrModel:
		return 3
	case color.RGBAModel, color.NRGBAModel, color.CMYKModel, color.NYCbCrAModel:
		return 4
	case color.RGBA64Model, color.NRGBA64Model:
		return 8
	}
	if _, ok := m.(color.Palette); ok {
		return 1
	}
	return 8
}

// ctxReader fails its reads once ctx is done, so that a decoder reading a
// slow image stops at the job's deadline.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c *ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// readEXIF returns the time, position and orientation in a JPEG's EXIF
// block; whatever is missing or unreadable stays zero. The reader
// (package exif) bounds every count and offset by the block's size.
func readEXIF(data []byte, zone *time.Location) EXIF {
	var out EXIF
	x, err := exif.FromJPEG(data)
	if err != nil {
		return out
	}
	for _, raw := range []string{x.DateTimeOriginal, x.DateTime} {
		if t, err := time.ParseInLocation("2006:01:02 15:04:05", raw, zone); err == nil {
			out.Raw, out.TakenAt = raw, &t
			break
		}
	}
	if x.HasGPS && validLatLon(x.Lat, x.Lon) {
		lat, lon := x.Lat, x.Lon
		out.Lat, out.Lon = &lat, &lon
	}
	out.Orientation = x.Orientation
	return out
}

func validLatLon(lat, lon float64) bool {
	return lat >= -90 && lat <= 90 && lon >= -180 && lon <= 180 && !(lat == 0 && lon == 0)
}

// Sweep removes the chunks of uploads that nobody has added to for
// Config.StagingTTL: a phone that was lost or reset never finishes them.
// An upload is the chunks under one staging/<uploader>/<sha>/.
func (s *Service) Sweep(ctx context.Context) error {
	infos, err := s.blobs.List(ctx, stagingDir)
	if err != nil {
		return fmt.Errorf("media: sweep: %w", err)
	}
	type upload struct {
		keys   []string
		newest time.Time
	}
	uploads := map[string]*upload{}
	for _, in := range infos {
		i := strings.LastIndexByte(in.Key, '/')
		if i <= len(stagingDir) {
			continue
		}
		dir := in.Key[len(stagingDir):i]
		u := uploads[dir]
		if u == nil {
			u = &upload{}
			uploads[dir] = u
		}
		u.keys = append(u.keys, in.Key)
		if in.Modified.After(u.newest) {
			u.newest = in.Modified
		}
	}
	cutoff := s.cfg.Now().Add(-s.cfg.StagingTTL)
	var errs []error
	for dir, u := range uploads {
		if u.newest.After(cutoff) {
			continue
		}
		if err := s.blobs.Remove(ctx, u.keys...); err != nil {
			errs = append(errs, fmt.Errorf("remove staging of %s: %w", dir, err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("media: sweep: %w", err)
	}
	return nil
}

// ExpireUnreferenced removes the photos no record has referred to for
// Config.UnreferencedTTL since they were stored — the original, its
// thumbnails and what the MetaStore knows — and returns how many. A
// record that refers to one meanwhile keeps it (MetaStore.ForgetPhoto
// checks). Run calls it with Sweep.
func (s *Service) ExpireUnreferenced(ctx context.Context) (int, error) {
	phs, err := s.meta.Unreferenced(ctx, unreferencedScan)
	if err != nil {
		return 0, fmt.Errorf("media: expire: %w", err)
	}
	cutoff := s.cfg.Now().Add(-s.cfg.UnreferencedTTL)
	var errs []error
	n := 0
	for _, ph := range phs {
		if ph.StoredAt.After(cutoff) {
			continue
		}
		gone, err := s.meta.ForgetPhoto(ctx, ph.SHA256)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if !gone {
			continue
		}
		keys := []string{photoKey(ph.SHA256)}
		for _, t := range thumbSizes {
			keys = append(keys, thumbKey(ph.SHA256, t.variant))
		}
		if err := s.blobs.Remove(ctx, keys...); err != nil {
			errs = append(errs, err)
			continue
		}
		n++
	}
	if err := errors.Join(errs...); err != nil {
		return n, fmt.Errorf("media: expire: %w", err)
	}
	return n, nil
}
