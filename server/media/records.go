package media

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/fieldsync/fieldsync/server"
	"github.com/fieldsync/fieldsync/syncproto"
)

// expectRetries bounds Expect's compare-and-set loop; losing it this often
// means something else is wrong.
const expectRetries = 8

// expectWorkers bounds how many records ExpectRecords handles at a time.
const expectWorkers = 4

// ExpectRecords calls Expect for every state, a few at a time; it has the
// signature of server.Syncer.Stored, the hook the sync service calls with
// the record states a push wrote (or found already written). It returns
// every error, joined.
func (s *Service) ExpectRecords(ctx context.Context, states []*syncproto.Record) error {
	errs := make([]error, len(states))
	sem := make(chan struct{}, expectWorkers)
	var wg sync.WaitGroup
	for i, r := range states {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			errs[i] = s.Expect(ctx, r)
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// Expect notes the photos a stored record state refers to
// (syncproto.PhotoRefs; none for a deleted record): they are the photos
// the server expects for that record, replacing what an older revision
// expected. The sync service calls it after it stores a record state,
// including when a push turns out to be a duplicate, because Expect is
// idempotent: when nothing changed it costs one read, and the first
// revision of a record without photos none.
//
// It writes only to the MetaStore, never to the object store, so record
// pushes succeed while MinIO is down. A state older than the one already
// noted (a smaller r.Rev) changes nothing. Each photo also remembers the
// record's school, which decides who may see it (see URL). ExpectRecords
// is the same for a batch, shaped as server.Syncer's Stored hook.
func (s *Service) Expect(ctx context.Context, r *syncproto.Record) error {
	var refs []syncproto.PhotoRef
	if !r.IsDeleted() {
		refs = syncproto.PhotoRefs(r)
	}
	if len(refs) == 0 && r.Rev <= 1 {
		// The first revision of a record without photos: there is
		// nothing to expect, and no older revision to forget. Most
		// records are like this, so they cost no round trip.
		return nil
	}
	next := RecordRefs{RecordID: r.ID.String(), SchoolID: r.SchoolID, Rev: r.Rev, Photos: refs}
	for range expectRetries {
		cur, err := s.meta.Record(ctx, next.RecordID)
		var prev *RecordRefs
		switch {
		case err == nil:
			prev = &cur
		case syncproto.ErrorCode(err) != syncproto.ENOTFOUND:
			return fmt.Errorf("media: expect photos of %s: %w", next.RecordID, err)
		}
		switch {
		case prev == nil && len(refs) == 0:
			return nil // nothing to expect, nothing to forget
		case prev != nil && prev.Rev > next.Rev:
			return nil // a newer state was noted already
		case prev != nil && prev.Rev == next.Rev && slices.Equal(prev.Photos, next.Photos):
			return nil
		}
		// The photos first: if this process stops before the record is
		// written, the next Expect does it all again.
		for _, ref := range refs {
			if prev != nil && prev.SchoolID == next.SchoolID && slices.ContainsFunc(prev.Photos, func(p syncproto.PhotoRef) bool { return p.SHA256 == ref.SHA256 }) {
				continue
			}
			if err := s.meta.ExpectPhoto(ctx, ref, next.SchoolID); err != nil {
				return fmt.Errorf("media: expect photo %s of %s: %w", ref.SHA256, next.RecordID, err)
			}
		}
		err = s.meta.PutRecord(ctx, next, prev)
		switch syncproto.ErrorCode(err) {
		case "":
			return nil
		case syncproto.ECONFLICT:
			continue // another process wrote the record since we read it
		default:
			return fmt.Errorf("media: expect photos of %s: %w", next.RecordID, err)
		}
	}
	return fmt.Errorf("media: expect photos of %s: lost the compare-and-set %d times", next.RecordID, expectRetries)
}

// RecordPhotos is the photo status of one record, for review.
type RecordPhotos struct {
	RecordID string `json:"record_id"`
	SchoolID string `json:"school_id,omitempty"`
	// Complete is true when every expected photo has arrived.
	Complete bool          `json:"complete"`
	Expected int           `json:"expected"`
	Received int           `json:"received"`
	Missing  []string      `json:"missing"` // the sha256 of every photo still missing
	Photos   []PhotoStatus `json:"photos"`
}

// PhotoStatus is the state of one expected photo.
type PhotoStatus struct {
	SHA256      string     `json:"sha256"`
	Received    bool       `json:"received"`
	Size        int64      `json:"size,omitempty"`
	ContentType string     `json:"content_type,omitempty"`
	StoredAt    *time.Time `json:"stored_at,omitempty"`
	// Thumbs is the thumbnail state (ThumbsPending, …) of a received photo.
	Thumbs     string     `json:"thumbs,omitempty"`
	TakenAt    *time.Time `json:"taken_at,omitempty"` // from EXIF
	Lat        *float64   `json:"lat,omitempty"`      // from EXIF
	Lon        *float64   `json:"lon,omitempty"`
	UploadedBy string     `json:"uploaded_by,omitempty"`
}

// RecordPhotos returns which photos the record expects and which of them
// have arrived. A record with no photos, or unknown to the service, has
// none missing. p must be allowed to see the record's school (EFORBIDDEN).
// It reads the MetaStore only.
func (s *Service) RecordPhotos(ctx context.Context, p server.Principal, recordID string) (RecordPhotos, error) {
	if _, err := syncproto.ParseID(recordID); err != nil {
		return RecordPhotos{}, syncproto.Errorf(syncproto.EINVALID, "%q is not a record id.", clip(recordID, 80))
	}
	out := RecordPhotos{RecordID: recordID, Complete: true, Missing: []string{}, Photos: []PhotoStatus{}}
	refs, err := s.meta.Record(ctx, recordID)
	switch code := syncproto.ErrorCode(err); {
	case code == syncproto.ENOTFOUND:
		return out, nil
	case err != nil:
		return RecordPhotos{}, fmt.Errorf("media: photos of %s: %w", recordID, err)
	}
	ok, err := s.access.CanSeeSchool(ctx, p, refs.SchoolID)
	if err != nil {
		return RecordPhotos{}, fmt.Errorf("media: photos of %s: %w", recordID, err)
	}
	if !ok {
		return RecordPhotos{}, syncproto.Errorf(syncproto.EFORBIDDEN, "You may not see the records of this school.")
	}
	out.SchoolID = refs.SchoolID
	for _, ref := range refs.Photos {
		ph, err := s.meta.Photo(ctx, ref.SHA256)
		if err != nil && syncproto.ErrorCode(err) != syncproto.ENOTFOUND {
			return RecordPhotos{}, fmt.Errorf("media: photos of %s: %w", recordID, err)
		}
		st := PhotoStatus{SHA256: ref.SHA256, Size: ref.Size, ContentType: ref.ContentType}
		if ph.State == StateComplete {
			at := ph.StoredAt
			st = PhotoStatus{
				SHA256: ref.SHA256, Received: true, Size: ph.Size, ContentType: ph.ContentType,
				StoredAt: &at, Thumbs: ph.ThumbState, TakenAt: ph.EXIF.TakenAt,
				Lat: ph.EXIF.Lat, Lon: ph.EXIF.Lon, UploadedBy: ph.UploadedBy,
			}
			out.Received++
		} else {
			out.Missing = append(out.Missing, ref.SHA256)
		}
		out.Photos = append(out.Photos, st)
	}
	out.Expected = len(refs.Photos)
	out.Complete = len(out.Missing) == 0
	return out, nil
}

// Variants of a photo that URL hands out.
const (
	VariantOriginal = "original"
	Variant320      = "320"
	Variant1280     = "1280"
)

// thumbSizes are the thumbnail variants and their longest side in pixels.
var thumbSizes = []struct {
	variant string
	px      int
}{{Variant1280, 1280}, {Variant320, 320}}

// SignedURL is a link to a photo that works without credentials until
// ExpiresAt.
type SignedURL struct {
	URL       string    `json:"url"`
	ExpiresAt time.Time `json:"expires_at"`
}

// URL returns a presigned GET URL of the photo's original or of one of its
// thumbnails (variant VariantOriginal, Variant320 or Variant1280), valid
// for Config.URLLifetime. p must be allowed to see one of the schools
// whose records refer to the photo (EFORBIDDEN otherwise, also for a photo
// no record refers to). A photo not received yet, or a thumbnail not made
// (yet, or ever: see ThumbState), is ENOTFOUND.
func (s *Service) URL(ctx context.Context, p server.Principal, sha, variant string) (SignedURL, error) {
	if err := checkSHA256(sha); err != nil {
		return SignedURL{}, err
	}
	if variant == "" {
		variant = VariantOriginal
	}
	if variant != VariantOriginal && variant != Variant320 && variant != Variant1280 {
		return SignedURL{}, syncproto.Errorf(syncproto.EINVALID, "Unknown variant %q: use original, 320 or 1280.", clip(variant, 40))
	}
	ph, err := s.meta.Photo(ctx, sha)
	if err != nil {
		if syncproto.ErrorCode(err) == syncproto.ENOTFOUND {
			return SignedURL{}, syncproto.Errorf(syncproto.ENOTFOUND, "No record refers to photo %s.", sha)
		}
		return SignedURL{}, fmt.Errorf("media: url of %s: %w", sha, err)
	}
	if err := s.canSee(ctx, p, ph); err != nil {
		return SignedURL{}, err
	}
	if ph.State != StateComplete {
		return SignedURL{}, syncproto.Errorf(syncproto.ENOTFOUND, "Photo %s has not arrived yet.", sha)
	}
	key := photoKey(sha)
	if variant != VariantOriginal {
		var ok bool
		if key, ok = ph.Thumbs[variant]; !ok {
			return SignedURL{}, syncproto.Errorf(syncproto.ENOTFOUND, "The %s px thumbnail of photo %s is not available (thumbnails: %s).", variant, sha, ph.ThumbState)
		}
	}
	ttl := s.cfg.URLLifetime
	expires := s.cfg.Now().Add(ttl)
	u, err := s.blobs.PresignGet(ctx, key, ttl)
	if err != nil {
		return SignedURL{}, fmt.Errorf("media: url of %s: %w", sha, err)
	}
	return SignedURL{URL: u, ExpiresAt: expires}, nil
}

func (s *Service) canSee(ctx context.Context, p server.Principal, ph Photo) error {
	for _, school := range ph.Schools {
		ok, err := s.access.CanSeeSchool(ctx, p, school)
		if err != nil {
			return fmt.Errorf("media: access to %s: %w", ph.SHA256, err)
		}
		if ok {
			return nil
		}
	}
	return syncproto.Errorf(syncproto.EFORBIDDEN, "You may not see this photo.")
}
