package media

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
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

// ExpectRecords notes the photos of every state, as Expect does for one;
// it has the signature of server.Syncer.Stored, the hook the sync service
// calls with the record states a push wrote (or found already written),
// before it stores the batch's answer. It returns every error, joined.
//
// With a BatchMetaStore it costs a bounded number of round trips per
// batch, whatever its size (see expectBatch); otherwise it calls Expect
// for every state, a few at a time.
func (s *Service) ExpectRecords(ctx context.Context, states []*syncproto.Record) error {
	if bs, ok := s.meta.(BatchMetaStore); ok {
		return s.expectBatch(ctx, bs, states)
	}
	return s.expectEach(ctx, states)
}

// expectEach calls Expect for every state, a few at a time.
func (s *Service) expectEach(ctx context.Context, states []*syncproto.Record) error {
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

// expectBatch is ExpectRecords on a BatchMetaStore, in at most three
// calls: one Records for the entries of the batch's records with photos
// (or that may have had some), one NotePhotos for the photos that are new
// to their record, one PutRecords for the entries that change. An entry whose photos and attachments did not change, and whose
// revision is the one before (so no state in between can arrive late and
// be mistaken for newer), is not rewritten. The photos go first, as in
// Expect; a lost compare-and-set (a concurrent push of the same record)
// sends the records written through Expect, which reads again.
func (s *Service) expectBatch(ctx context.Context, bs BatchMetaStore, states []*syncproto.Record) error {
	nexts := map[RecordKey]RecordRefs{}
	from := map[RecordKey]*syncproto.Record{}
	var keys []RecordKey
	for _, r := range states {
		next, ok := refsOf(r)
		if !ok {
			continue
		}
		k := RecordKey{SchoolID: next.SchoolID, RecordID: next.RecordID}
		if cur, seen := nexts[k]; seen {
			if cur.Rev >= next.Rev {
				continue
			}
		} else {
			keys = append(keys, k)
		}
		nexts[k], from[k] = next, r
	}
	if len(keys) == 0 {
		return nil
	}
	prevs, err := bs.Records(ctx, keys)
	if err != nil {
		return fmt.Errorf("media: expect photos of %d records: %w", len(keys), err)
	}
	up := uploaderOf(ctx)
	holder := up.id
	if up.trusted {
		holder = ""
	}
	type pair struct{ sha, school string }
	noted := map[pair]bool{}
	var notes []PhotoNote
	var puts []RecordPut
	for _, k := range keys {
		next := nexts[k]
		var prev *RecordRefs
		if p, ok := prevs[k]; ok {
			prev = &p
		}
		if !mustWrite(prev, next) {
			continue
		}
		for _, ref := range next.Photos {
			if prev != nil && slices.ContainsFunc(prev.Photos, func(p syncproto.PhotoRef) bool { return p.SHA256 == ref.SHA256 }) {
				continue
			}
			if pr := (pair{ref.SHA256, next.SchoolID}); !noted[pr] {
				noted[pr] = true
				notes = append(notes, PhotoNote{Ref: ref, SchoolID: next.SchoolID, Holder: holder})
			}
		}
		puts = append(puts, RecordPut{Record: next, Prev: prev})
	}
	if len(notes) > 0 {
		if err := bs.NotePhotos(ctx, notes); err != nil {
			return fmt.Errorf("media: expect %d photos: %w", len(notes), err)
		}
	}
	if len(puts) == 0 {
		return nil
	}
	err = bs.PutRecords(ctx, puts)
	if syncproto.ErrorCode(err) != syncproto.ECONFLICT {
		if err != nil {
			return fmt.Errorf("media: expect photos of %d records: %w", len(puts), err)
		}
		return nil
	}
	again := make([]*syncproto.Record, 0, len(puts))
	for _, p := range puts {
		again = append(again, from[RecordKey{SchoolID: p.Record.SchoolID, RecordID: p.Record.RecordID}])
	}
	return s.expectEach(ctx, again)
}

// refsOf returns what r expects, and false for the first revision of a
// record without photos: nothing to expect, no older revision to forget.
func refsOf(r *syncproto.Record) (RecordRefs, bool) {
	var refs []syncproto.PhotoRef
	var atts []string
	if !r.IsDeleted() {
		refs = syncproto.PhotoRefs(r)
		atts = attachmentIDs(r)
	}
	if len(refs) == 0 && len(atts) == 0 && r.Rev <= 1 {
		return RecordRefs{}, false
	}
	return RecordRefs{RecordID: r.ID.String(), SchoolID: r.SchoolID, Rev: r.Rev, Photos: refs, Attachments: atts}, true
}

// mustWrite tells whether the entry next replaces prev (nil: none).
// Nothing is written for a record without photos never noted, for a state
// older than the one noted, for the one noted again, and for the state
// right after it (Rev one more) when its photos and attachments are the
// same: no state can lie between the two, so none arriving late can be
// taken for newer than what the entry says.
func mustWrite(prev *RecordRefs, next RecordRefs) bool {
	same := prev != nil && slices.Equal(prev.Photos, next.Photos) && slices.Equal(prev.Attachments, next.Attachments)
	switch {
	case prev == nil:
		return len(next.Photos) > 0 || len(next.Attachments) > 0
	case prev.Rev > next.Rev:
		return false
	case same && (prev.Rev == next.Rev || prev.Rev+1 == next.Rev):
		return false
	}
	return true
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
// noted (a smaller r.Rev) changes nothing, and neither does the state
// right after it when its photos are the same (see mustWrite). Each photo also remembers the
// record's school, which decides who may see it (see URL). ExpectRecords
// is the same for a batch, shaped as server.Syncer's Stored hook.
func (s *Service) Expect(ctx context.Context, r *syncproto.Record) error {
	next, ok := refsOf(r)
	if !ok {
		// Most records are like this, so they cost no round trip.
		return nil
	}
	refs := next.Photos
	up := uploaderOf(ctx)
	for range expectRetries {
		cur, err := s.meta.Record(ctx, next.SchoolID, next.RecordID)
		var prev *RecordRefs
		switch {
		case err == nil:
			prev = &cur
		case syncproto.ErrorCode(err) != syncproto.ENOTFOUND:
			return fmt.Errorf("media: expect photos of %s: %w", next.RecordID, err)
		}
		if !mustWrite(prev, next) {
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
			if err := s.vouchByRecord(ctx, ref.SHA256, next.SchoolID, up); err != nil {
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

// vouchByRecord vouches for schoolID if the pusher of a record of that
// school that refers to the photo holds it (has sent it whole): the usual
// order is the other way round (records first, then photos; see vouch).
// A record naming a sha256 its pusher never sent vouches for nothing.
func (s *Service) vouchByRecord(ctx context.Context, sha, schoolID string, up uploader) error {
	if !up.trusted {
		ph, err := s.meta.Photo(ctx, sha)
		if err != nil {
			return err
		}
		if !up.holds(ph) || slices.Contains(ph.Vouched, schoolID) {
			return nil
		}
	}
	return s.meta.Vouch(ctx, sha, "", []string{schoolID})
}

// RecordPhotos is the photo status of one record, for review.
type RecordPhotos struct {
	RecordID string `json:"record_id"`
	SchoolID string `json:"school_id,omitempty"`
	// Complete is true when every expected photo has arrived, and every
	// attachment record the record names.
	Complete bool     `json:"complete"`
	Expected int      `json:"expected"`
	Received int      `json:"received"`
	Missing  []string `json:"missing"` // the sha256 of every photo still missing
	// MissingRecords are the attachment records the record names that
	// have not arrived: their photos are not known yet.
	MissingRecords []string      `json:"missing_records,omitempty"`
	Photos         []PhotoStatus `json:"photos"`
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

// RecordPhotos returns which photos the record recordID of school scope
// expects and which of them have arrived. A record with no photos, or
// unknown to the service, has none missing. Without a scope, the record
// of that id in a school p may see is taken (the one of the first such
// school if several).
//
// A school p may not see answers ENOTFOUND, the same whether the record
// exists or not; without a scope, records of such schools are not looked
// at, and the answer is that of a record without photos. A photo counts
// as received only if its bytes were vouched for in the record's school
// (see Photo.Vouched): a record that names someone else's sha256 does not
// learn whether, when or where that photo was taken. It reads the
// MetaStore only.
func (s *Service) RecordPhotos(ctx context.Context, p server.Principal, recordID, scope string) (RecordPhotos, error) {
	if _, err := syncproto.ParseID(recordID); err != nil {
		return RecordPhotos{}, syncproto.Errorf(syncproto.EINVALID, "%q is not a record id.", clip(recordID, 80))
	}
	out := RecordPhotos{RecordID: recordID, Complete: true, Missing: []string{}, Photos: []PhotoStatus{}}
	refs, found, err := s.visibleRecord(ctx, p, recordID, scope)
	if err != nil || !found {
		return out, err
	}
	out.SchoolID = refs.SchoolID
	photos := slices.Clone(refs.Photos)
	// The photos of the attachment records the record names (a hazard's
	// photo_ids, its events' photos) are its photos too; an attachment
	// record not received yet is missing, its photo unknown.
	for _, id := range refs.Attachments {
		att, err := s.meta.Record(ctx, refs.SchoolID, id)
		switch code := syncproto.ErrorCode(err); {
		case code == syncproto.ENOTFOUND:
			out.MissingRecords = append(out.MissingRecords, id)
			continue
		case err != nil:
			return RecordPhotos{}, fmt.Errorf("media: photos of %s: %w", recordID, err)
		}
		for _, ref := range att.Photos {
			if !slices.ContainsFunc(photos, func(p syncproto.PhotoRef) bool { return p.SHA256 == ref.SHA256 }) {
				photos = append(photos, ref)
			}
		}
	}
	slices.SortFunc(photos, func(a, b syncproto.PhotoRef) int { return strings.Compare(a.SHA256, b.SHA256) })
	for _, ref := range photos {
		ph, err := s.meta.Photo(ctx, ref.SHA256)
		if err != nil && syncproto.ErrorCode(err) != syncproto.ENOTFOUND {
			return RecordPhotos{}, fmt.Errorf("media: photos of %s: %w", recordID, err)
		}
		st := PhotoStatus{SHA256: ref.SHA256, Size: ref.Size, ContentType: ref.ContentType}
		if ph.State == StateComplete && slices.Contains(ph.Vouched, refs.SchoolID) {
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
	out.Expected = len(photos)
	out.Complete = len(out.Missing) == 0 && len(out.MissingRecords) == 0
	return out, nil
}

// notYours is the answer for a record or photo that does not exist and
// for one p may not see: the same, so that it tells nothing.
func notYours(what string) error {
	return syncproto.Errorf(syncproto.ENOTFOUND, "No %s that you may see.", what)
}

// visibleRecord returns the photos of the record recordID of scope, or of
// the first school p may see with a record of that id, and whether there
// is one.
func (s *Service) visibleRecord(ctx context.Context, p server.Principal, recordID, scope string) (RecordRefs, bool, error) {
	if scope != "" {
		ok, err := s.access.CanSeeSchool(ctx, p, scope)
		switch {
		case err != nil:
			return RecordRefs{}, false, fmt.Errorf("media: photos of %s: %w", recordID, err)
		case !ok:
			return RecordRefs{}, false, notYours("record " + recordID)
		}
		refs, err := s.meta.Record(ctx, scope, recordID)
		switch code := syncproto.ErrorCode(err); {
		case code == syncproto.ENOTFOUND:
			return RecordRefs{}, false, nil
		case err != nil:
			return RecordRefs{}, false, fmt.Errorf("media: photos of %s: %w", recordID, err)
		}
		return refs, true, nil
	}
	all, err := s.meta.RecordsByID(ctx, recordID)
	if err != nil {
		return RecordRefs{}, false, fmt.Errorf("media: photos of %s: %w", recordID, err)
	}
	for _, refs := range all {
		ok, err := s.access.CanSeeSchool(ctx, p, refs.SchoolID)
		if err != nil {
			return RecordRefs{}, false, fmt.Errorf("media: photos of %s: %w", recordID, err)
		}
		if ok {
			return refs, true, nil
		}
	}
	return RecordRefs{}, false, nil
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
// for Config.URLLifetime. p must be allowed to see a school whose records
// refer to the photo and where its bytes were vouched for (see
// Photo.Vouched); otherwise the answer is ENOTFOUND, the same as for a
// photo that does not exist. A thumbnail not made (yet, or ever: see
// ThumbState) is ENOTFOUND too.
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
	if b, ok := s.blobs.(*Breaker); ok {
		// A link to a store that is down would not work: say so first
		// (the same for every photo, so it tells nothing).
		if err := b.Check(ctx); err != nil {
			return SignedURL{}, err
		}
	}
	ph, err := s.meta.Photo(ctx, sha)
	if err != nil {
		if syncproto.ErrorCode(err) == syncproto.ENOTFOUND {
			return SignedURL{}, notYours("photo " + sha)
		}
		return SignedURL{}, fmt.Errorf("media: url of %s: %w", sha, err)
	}
	if err := s.canSee(ctx, p, ph); err != nil {
		return SignedURL{}, err
	}
	if ph.State != StateComplete {
		return SignedURL{}, notYours("photo " + sha)
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
	for _, school := range ph.Vouched {
		if !slices.Contains(ph.Schools, school) {
			continue
		}
		ok, err := s.access.CanSeeSchool(ctx, p, school)
		if err != nil {
			return fmt.Errorf("media: access to %s: %w", ph.SHA256, err)
		}
		if ok {
			return nil
		}
	}
	return notYours("photo " + ph.SHA256)
}

// attachmentIDs returns the ids of the attachment records r names, sorted
// and distinct: the strings of every "photo_ids" array in its fields and
// items (a hazard's own photo_ids and its events'), and the "id" of every
// member of a "photos" array that has no "sha256" of its own (those with
// one are photos, see syncproto.PhotoRefs). Only canonical record ids
// count, and never r's own.
func attachmentIDs(r *syncproto.Record) []string {
	found := map[string]bool{}
	add := func(v any) {
		if s, ok := v.(string); ok {
			if id, err := syncproto.ParseID(s); err == nil && id.String() == s && id != r.ID {
				found[s] = true
			}
		}
	}
	var walk func(x any)
	walk = func(x any) {
		switch t := x.(type) {
		case map[string]any:
			for k, v := range t {
				switch list, _ := v.([]any); k {
				case "photo_ids":
					for _, id := range list {
						add(id)
					}
				case "photos":
					for _, p := range list {
						if m, ok := p.(map[string]any); ok && m["sha256"] == nil {
							add(m["id"])
						}
					}
				}
				walk(v)
			}
		case []any:
			for _, v := range t {
				walk(v)
			}
		}
	}
	decode := func(key string, raw json.RawMessage) {
		var x any
		if json.Unmarshal(raw, &x) == nil {
			walk(map[string]any{key: x})
		}
	}
	for name, f := range r.Fields {
		for _, v := range f {
			decode(name, v.Value)
		}
	}
	for coll, items := range r.Items {
		for _, it := range items {
			decode(coll, it.Data)
		}
	}
	out := make([]string, 0, len(found))
	for id := range found {
		out = append(out, id)
	}
	slices.Sort(out)
	if len(out) == 0 {
		return nil
	}
	return out
}
