package media

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"image"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/disintegration/imaging"
	"github.com/rwcarlsen/goexif/exif"
	"github.com/rwcarlsen/goexif/tiff"
	_ "golang.org/x/image/webp" // registers the WebP decoder with image.Decode

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
// A job that fails because a store is unreachable is retried with backoff
// for as long as it takes; one that fails otherwise (a photo that does not
// decode) is retried Config.ThumbAttempts times, then given up with the
// error stored on the photo (ThumbsFailed). HEIC and HEIF photos are
// marked ThumbsUnsupported at once.
func (s *Service) ThumbOnce(ctx context.Context) (bool, error) {
	now := s.cfg.Now()
	job, err := s.meta.ClaimThumbs(ctx, now, s.cfg.ThumbLease)
	switch code := syncproto.ErrorCode(err); {
	case code == syncproto.ENOTFOUND:
		return false, nil
	case err != nil:
		return false, fmt.Errorf("media: claim thumbnail job: %w", err)
	}
	res, err := s.makeThumbs(ctx, job)
	if err == nil {
		if err := s.meta.ThumbsDone(ctx, job, res); err != nil {
			return true, fmt.Errorf("media: thumbnails of %s: %w", job.SHA256, err)
		}
		return true, nil
	}
	attempts := job.Attempts + 1
	if syncproto.ErrorCode(err) != syncproto.EUNAVAILABLE && attempts >= s.cfg.ThumbAttempts {
		res := ThumbResult{State: ThumbsFailed, Error: err.Error()}
		if derr := s.meta.ThumbsDone(ctx, job, res); derr != nil {
			return true, fmt.Errorf("media: give up thumbnails of %s: %w", job.SHA256, derr)
		}
		return true, fmt.Errorf("media: gave up thumbnails of %s after %d attempts: %w", job.SHA256, attempts, err)
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
	img, err := imaging.Decode(bytes.NewReader(data), imaging.AutoOrientation(true))
	if err != nil {
		return ThumbResult{}, fmt.Errorf("decode %s: %w", job.ContentType, err)
	}
	data = nil // let the original go before the resizing allocates
	for _, t := range thumbSizes {
		// Sizes go from large to small: each is made from the one before,
		// which is faster and looks the same.
		img = imaging.Fit(img, t.px, t.px, imaging.Lanczos)
		var buf bytes.Buffer
		if err := imaging.Encode(&buf, img, imaging.JPEG, imaging.JPEGQuality(s.cfg.ThumbQuality)); err != nil {
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

// readEXIF returns the time, position and orientation in a JPEG's EXIF
// block; whatever is missing or unreadable stays zero.
func readEXIF(data []byte, zone *time.Location) EXIF {
	var out EXIF
	x, err := exif.Decode(bytes.NewReader(data))
	if err != nil {
		return out
	}
	for _, name := range []exif.FieldName{exif.DateTimeOriginal, exif.DateTime} {
		tag, err := x.Get(name)
		if err != nil || tag.Format() != tiff.StringVal {
			continue
		}
		raw, _ := tag.StringVal()
		raw = strings.TrimRight(raw, "\x00 ")
		if t, err := time.ParseInLocation("2006:01:02 15:04:05", raw, zone); err == nil {
			out.Raw, out.TakenAt = raw, &t
			break
		}
	}
	if lat, lon, err := x.LatLong(); err == nil && validLatLon(lat, lon) {
		out.Lat, out.Lon = &lat, &lon
	}
	if tag, err := x.Get(exif.Orientation); err == nil {
		if v, err := tag.Int(0); err == nil && v >= 1 && v <= 8 {
			out.Orientation = v
		}
	}
	return out
}

func validLatLon(lat, lon float64) bool {
	return lat >= -90 && lat <= 90 && lon >= -180 && lon <= 180 && !(lat == 0 && lon == 0)
}

// Sweep removes the chunks of uploads that nobody has added to for
// Config.StagingTTL: a phone that was lost or reset never finishes them.
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
		sha, _, ok := strings.Cut(strings.TrimPrefix(in.Key, stagingDir), "/")
		if !ok {
			continue
		}
		u := uploads[sha]
		if u == nil {
			u = &upload{}
			uploads[sha] = u
		}
		u.keys = append(u.keys, in.Key)
		if in.Modified.After(u.newest) {
			u.newest = in.Modified
		}
	}
	cutoff := s.cfg.Now().Add(-s.cfg.StagingTTL)
	var errs []error
	for sha, u := range uploads {
		if u.newest.After(cutoff) {
			continue
		}
		if err := s.blobs.Remove(ctx, u.keys...); err != nil {
			errs = append(errs, fmt.Errorf("remove staging of %s: %w", sha, err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("media: sweep: %w", err)
	}
	return nil
}
