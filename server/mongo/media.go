package mongo

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
	"go.mongodb.org/mongo-driver/v2/x/mongo/driver/topology"

	"github.com/fieldsync/fieldsync/server/media"
	"github.com/fieldsync/fieldsync/syncproto"
)

// MediaStore implements media.MetaStore. Every document is found by _id
// or by one top-level equality (a job's state), the lookups FerretDB v1
// pushes down; compare-and-set is an update filtered on _id and a version
// field.
//
// Collections:
//
//	media_records     {_id: "school/record id", record_id, school_id, rev, photos: [{sha256, size, content_type}], attachments}
//	media_photos      {_id: sha256, state, size, content_type, schools, referenced, holders, vouched,
//	                   stored_at, uploaded_by, thumb_state, thumb_error, thumbs, taken_at, exif_time,
//	                   lat, lon, orientation}
//	media_thumb_jobs  {_id: sha256, content_type, state: pending|working, attempts, next_at, until, error}
//
// Thumbnail jobs are removed when done, so media_thumb_jobs stays small
// and the claim's {state} scans stay cheap however many photos exist.
type MediaStore struct {
	records *mongo.Collection
	photos  *mongo.Collection
	jobs    *mongo.Collection
}

var _ media.BatchMetaStore = (*MediaStore)(nil)

// NewMediaStore returns the store on db. Call EnsureIndexes once at start.
func NewMediaStore(db *mongo.Database) *MediaStore {
	return &MediaStore{
		records: db.Collection(MediaRecordsCollection),
		photos:  db.Collection(MediaPhotosCollection),
		jobs:    db.Collection(MediaThumbJobsCollection),
	}
}

// EnsureIndexes creates the indexes of the job claim, of records by id
// and of unreferenced photos (idempotent).
func (s *MediaStore) EnsureIndexes(ctx context.Context) error {
	if _, err := s.jobs.Indexes().CreateOne(ctx, mongo.IndexModel{Keys: bson.D{{Key: "state", Value: 1}}}); err != nil {
		return mediaErr("media_thumb_jobs index", err)
	}
	if _, err := s.records.Indexes().CreateOne(ctx, mongo.IndexModel{Keys: bson.D{{Key: "record_id", Value: 1}}}); err != nil {
		return mediaErr("media_records index", err)
	}
	if _, err := s.photos.Indexes().CreateOne(ctx, mongo.IndexModel{Keys: bson.D{{Key: "referenced", Value: 1}}}); err != nil {
		return mediaErr("media_photos index", err)
	}
	return s.migrate(ctx)
}

// legacyHolder marks the photos stored before uploads had holders.
const legacyHolder = "legacy"

// migrate brings documents written before records were kept per school
// and photos per holder to the current shape, once (every start looks,
// and finds nothing after the first):
//
//   - a media record keyed by its record id alone is keyed by (school,
//     record id);
//   - a complete photo without holders gets the holder "legacy", and the
//     schools whose records referred to it then are vouched for: what
//     people could see before stays visible, and a school that refers to
//     it later is not.
func (s *MediaStore) migrate(ctx context.Context) error {
	cur, err := s.records.Find(ctx, bson.D{{Key: "record_id", Value: nil}})
	if err != nil {
		return mediaErr("find old media records", err)
	}
	var recs []mediaRecordDoc
	if err := cur.All(ctx, &recs); err != nil {
		return mediaErr("read old media records", err)
	}
	for _, d := range recs {
		old := d.ID
		d.RecordID, d.ID = old, recordDocID(d.SchoolID, old)
		if _, err := s.records.InsertOne(ctx, d); err != nil && !mongo.IsDuplicateKeyError(err) {
			return mediaErr("migrate media record "+old, err)
		}
		if _, err := s.records.DeleteOne(ctx, bson.D{{Key: "_id", Value: old}}); err != nil {
			return mediaErr("migrate media record "+old, err)
		}
	}
	cur, err = s.photos.Find(ctx, bson.D{{Key: "state", Value: media.StateComplete}, {Key: "holders", Value: nil}})
	if err != nil {
		return mediaErr("find old photos", err)
	}
	var photos []mediaPhotoDoc
	if err := cur.All(ctx, &photos); err != nil {
		return mediaErr("read old photos", err)
	}
	for _, d := range photos {
		set := bson.D{{Key: "holders", Value: []string{legacyHolder}}, {Key: "vouched", Value: d.Schools}, {Key: "referenced", Value: len(d.Schools) > 0}}
		if _, err := s.photos.UpdateOne(ctx, bson.D{{Key: "_id", Value: d.ID}}, bson.D{{Key: "$set", Value: set}}); err != nil {
			return mediaErr("migrate photo "+d.ID, err)
		}
	}
	return nil
}

// claimScan bounds how many jobs of one state a claim reads. Jobs are
// deleted when done, so more than this are queued only during a burst, and
// then the first ones read are due anyway.
const claimScan = 200

type mediaRefDoc struct {
	SHA256      string `bson:"sha256"`
	Size        int64  `bson:"size,omitempty"`
	ContentType string `bson:"content_type,omitempty"`
}

type mediaRecordDoc struct {
	ID       string        `bson:"_id"` // school id "/" record id
	RecordID string        `bson:"record_id"`
	SchoolID string        `bson:"school_id"`
	Rev      int64         `bson:"rev"`
	Photos   []mediaRefDoc `bson:"photos"`
	// Attachments are the attachment records it names (media.RecordRefs).
	Attachments []string `bson:"attachments,omitempty"`
}

type mediaPhotoDoc struct {
	ID          string            `bson:"_id"`
	State       string            `bson:"state"`
	Size        int64             `bson:"size"`
	ContentType string            `bson:"content_type,omitempty"`
	Schools     []string          `bson:"schools,omitempty"`
	Referenced  *bool             `bson:"referenced,omitempty"`
	Holders     []string          `bson:"holders,omitempty"`
	Vouched     []string          `bson:"vouched,omitempty"`
	StoredAt    *time.Time        `bson:"stored_at,omitempty"`
	UploadedBy  string            `bson:"uploaded_by,omitempty"`
	ThumbState  string            `bson:"thumb_state,omitempty"`
	ThumbError  string            `bson:"thumb_error,omitempty"`
	Thumbs      map[string]string `bson:"thumbs,omitempty"`
	TakenAt     *time.Time        `bson:"taken_at,omitempty"`
	EXIFTime    string            `bson:"exif_time,omitempty"`
	Lat         *float64          `bson:"lat,omitempty"`
	Lon         *float64          `bson:"lon,omitempty"`
	Orientation int               `bson:"orientation,omitempty"`
}

type thumbJobDoc struct {
	ID          string    `bson:"_id"`
	ContentType string    `bson:"content_type"`
	State       string    `bson:"state"`
	Attempts    int       `bson:"attempts"`
	Unfinished  int       `bson:"unfinished"`
	NextAt      time.Time `bson:"next_at"`
	Until       time.Time `bson:"until"`
	Error       string    `bson:"error,omitempty"`
}

const (
	jobPending = "pending"
	jobWorking = "working"
)

func recordDocID(schoolID, recordID string) string { return schoolID + "/" + recordID }

func recordOf(d mediaRecordDoc) media.RecordRefs {
	r := media.RecordRefs{RecordID: d.RecordID, SchoolID: d.SchoolID, Rev: d.Rev, Photos: []syncproto.PhotoRef{}, Attachments: d.Attachments}
	for _, p := range d.Photos {
		r.Photos = append(r.Photos, syncproto.PhotoRef(p))
	}
	return r
}

// Record implements media.MetaStore.
func (s *MediaStore) Record(ctx context.Context, schoolID, recordID string) (media.RecordRefs, error) {
	var d mediaRecordDoc
	if err := s.records.FindOne(ctx, bson.D{{Key: "_id", Value: recordDocID(schoolID, recordID)}}).Decode(&d); err != nil {
		return media.RecordRefs{}, mediaErr("find media record "+recordID, err)
	}
	return recordOf(d), nil
}

// RecordsByID implements media.MetaStore.
func (s *MediaStore) RecordsByID(ctx context.Context, recordID string) ([]media.RecordRefs, error) {
	cur, err := s.records.Find(ctx, bson.D{{Key: "record_id", Value: recordID}}, options.Find().SetLimit(100))
	if err != nil {
		return nil, mediaErr("find media records "+recordID, err)
	}
	var docs []mediaRecordDoc
	if err := cur.All(ctx, &docs); err != nil {
		return nil, mediaErr("read media records "+recordID, err)
	}
	out := make([]media.RecordRefs, 0, len(docs))
	for _, d := range docs {
		out = append(out, recordOf(d))
	}
	slices.SortFunc(out, func(a, b media.RecordRefs) int { return strings.Compare(a.SchoolID, b.SchoolID) })
	return out, nil
}

// PutRecord implements media.MetaStore.
func (s *MediaStore) PutRecord(ctx context.Context, r media.RecordRefs, prev *media.RecordRefs) error {
	d := mediaRecordDocOf(r)
	id := d.ID
	if prev == nil {
		_, err := s.records.InsertOne(ctx, d)
		if mongo.IsDuplicateKeyError(err) {
			return syncproto.Errorf(syncproto.ECONFLICT, "The photos of record %s were stored meanwhile.", r.RecordID)
		}
		return mediaErr("insert media record "+r.RecordID, err)
	}
	res, err := s.records.ReplaceOne(ctx, bson.D{{Key: "_id", Value: id}, {Key: "rev", Value: prev.Rev}}, d)
	if err != nil {
		return mediaErr("replace media record "+r.RecordID, err)
	}
	if res.MatchedCount == 0 {
		return syncproto.Errorf(syncproto.ECONFLICT, "The photos of record %s changed meanwhile.", r.RecordID)
	}
	return nil
}

// mediaChunk bounds the statements of one bulk write and the lookups in
// flight for one Records: FerretDB v1 hangs on update commands that touch
// more than about 40 documents.
const mediaChunk = 40

// mediaInsertChunk bounds the documents of one insert, which FerretDB v1
// takes in one go (the log's inserts are whole batches of 500).
const mediaInsertChunk = 500

// Records implements media.BatchMetaStore: an equality lookup on _id per
// key (the only lookup FerretDB v1 pushes down to an index: an $in or $or
// would scan the collection), up to mediaChunk of them at once.
func (s *MediaStore) Records(ctx context.Context, keys []media.RecordKey) (map[media.RecordKey]media.RecordRefs, error) {
	docs := make([]*mediaRecordDoc, len(keys))
	errs := make([]error, len(keys))
	sem := make(chan struct{}, mediaChunk)
	var wg sync.WaitGroup
	for i, k := range keys {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			var d mediaRecordDoc
			err := retry(ctx, func() error {
				return s.records.FindOne(ctx, bson.D{{Key: "_id", Value: recordDocID(k.SchoolID, k.RecordID)}}).Decode(&d)
			})
			switch {
			case err == nil:
				docs[i] = &d
			case !errors.Is(err, mongo.ErrNoDocuments):
				errs[i] = mediaErr("find media record "+k.RecordID, err)
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	out := make(map[media.RecordKey]media.RecordRefs, len(keys))
	for i, d := range docs {
		if d != nil {
			out[keys[i]] = recordOf(*d)
		}
	}
	return out, nil
}

// NotePhotos implements media.BatchMetaStore. A photo no record named
// before costs one document in an unordered insert (mediaInsertChunk at a
// time), as ExpectPhoto's upsert would have made it, vouched for already
// if the caller is trusted (a new photo has no holders). The photos that
// exist (a duplicate key) then get, in ordered bulk writes of at most
// mediaChunk statements, ExpectPhoto's upsert followed by the vouch, an
// update filtered on _id and, for a pusher that must hold the photo, on
// holders: no read of the photo either way.
func (s *MediaStore) NotePhotos(ctx context.Context, notes []media.PhotoNote) error {
	var known []media.PhotoNote
	for chunk := range slices.Chunk(notes, mediaInsertChunk) {
		docs := make([]any, 0, len(chunk))
		for _, n := range chunk {
			d := bson.D{
				{Key: "_id", Value: n.Ref.SHA256}, {Key: "state", Value: media.StateExpected},
				{Key: "size", Value: n.Ref.Size}, {Key: "content_type", Value: n.Ref.ContentType},
				{Key: "schools", Value: []string{n.SchoolID}}, {Key: "referenced", Value: true},
			}
			if n.Holder == "" {
				d = append(d, bson.E{Key: "vouched", Value: []string{n.SchoolID}})
			}
			docs = append(docs, d)
		}
		failed, err := s.insertNew(ctx, s.photos, docs)
		if err != nil {
			return mediaErr(fmt.Sprintf("insert %d photos", len(docs)), err)
		}
		for _, i := range failed {
			known = append(known, chunk[i])
		}
	}
	models := make([]mongo.WriteModel, 0, 2*len(known))
	for _, n := range known {
		models = append(models, mongo.NewUpdateOneModel().
			SetFilter(bson.D{{Key: "_id", Value: n.Ref.SHA256}}).
			SetUpdate(expectUpdate(n.Ref, n.SchoolID)).
			SetUpsert(true))
		filter := bson.D{{Key: "_id", Value: n.Ref.SHA256}}
		if n.Holder != "" {
			filter = append(filter, bson.E{Key: "holders", Value: n.Holder})
		}
		models = append(models, mongo.NewUpdateOneModel().
			SetFilter(filter).
			SetUpdate(bson.D{{Key: "$addToSet", Value: bson.D{{Key: "vouched", Value: n.SchoolID}}}}))
	}
	for chunk := range slices.Chunk(models, mediaChunk) {
		err := s.upsert(ctx, fmt.Sprintf("expect %d photos", len(chunk)/2), func() error {
			_, err := s.photos.BulkWrite(ctx, chunk, options.BulkWrite().SetOrdered(true))
			return err
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// insertNew inserts docs, unordered, and returns the indexes of those
// whose _id existed (a duplicate key); any other failure is an error.
func (s *MediaStore) insertNew(ctx context.Context, coll *mongo.Collection, docs []any) ([]int, error) {
	var failed []int
	err := retry(ctx, func() error {
		failed = failed[:0]
		_, err := coll.InsertMany(ctx, docs, options.InsertMany().SetOrdered(false))
		var bwe mongo.BulkWriteException
		if errors.As(err, &bwe) && bwe.WriteConcernError == nil {
			for _, we := range bwe.WriteErrors {
				if we.Code != 11000 {
					return err
				}
				failed = append(failed, we.Index)
			}
			return nil
		}
		return err
	})
	return failed, err
}

// PutRecords implements media.BatchMetaStore: the new entries in unordered
// inserts, the others in unordered bulk replaces filtered on _id and rev,
// mediaChunk at a time. A bulk write tells how many replaces matched, not
// which, so any shortfall (or duplicate insert) is ECONFLICT for all.
func (s *MediaStore) PutRecords(ctx context.Context, puts []media.RecordPut) error {
	var inserts []any
	var replaces []mongo.WriteModel
	for _, p := range puts {
		d := mediaRecordDocOf(p.Record)
		if p.Prev == nil {
			inserts = append(inserts, d)
			continue
		}
		replaces = append(replaces, mongo.NewReplaceOneModel().
			SetFilter(bson.D{{Key: "_id", Value: d.ID}, {Key: "rev", Value: p.Prev.Rev}}).
			SetReplacement(d))
	}
	lost := false
	for chunk := range slices.Chunk(inserts, mediaInsertChunk) {
		failed, err := s.insertNew(ctx, s.records, chunk)
		if err != nil {
			return mediaErr(fmt.Sprintf("insert %d media records", len(chunk)), err)
		}
		lost = lost || len(failed) > 0
	}
	for chunk := range slices.Chunk(replaces, mediaChunk) {
		var res *mongo.BulkWriteResult
		err := retry(ctx, func() (err error) {
			res, err = s.records.BulkWrite(ctx, chunk, options.BulkWrite().SetOrdered(false))
			return err
		})
		if err != nil {
			return mediaErr(fmt.Sprintf("replace %d media records", len(chunk)), err)
		}
		if res.MatchedCount < int64(len(chunk)) {
			lost = true
		}
	}
	if lost {
		return syncproto.Errorf(syncproto.ECONFLICT, "The photos of some records changed meanwhile.")
	}
	return nil
}

func mediaRecordDocOf(r media.RecordRefs) mediaRecordDoc {
	d := mediaRecordDoc{ID: recordDocID(r.SchoolID, r.RecordID), RecordID: r.RecordID, SchoolID: r.SchoolID, Rev: r.Rev, Photos: []mediaRefDoc{}, Attachments: r.Attachments}
	for _, p := range r.Photos {
		d.Photos = append(d.Photos, mediaRefDoc(p))
	}
	return d
}

// expectUpdate is ExpectPhoto's update.
func expectUpdate(ref syncproto.PhotoRef, schoolID string) bson.D {
	return bson.D{
		{Key: "$setOnInsert", Value: bson.D{{Key: "state", Value: media.StateExpected}, {Key: "size", Value: ref.Size}, {Key: "content_type", Value: ref.ContentType}}},
		{Key: "$addToSet", Value: bson.D{{Key: "schools", Value: schoolID}}},
		{Key: "$set", Value: bson.D{{Key: "referenced", Value: true}}},
	}
}

// ExpectPhoto implements media.MetaStore.
func (s *MediaStore) ExpectPhoto(ctx context.Context, ref syncproto.PhotoRef, schoolID string) error {
	update := expectUpdate(ref, schoolID)
	return s.upsert(ctx, "expect photo "+ref.SHA256, func() error {
		_, err := s.photos.UpdateOne(ctx, bson.D{{Key: "_id", Value: ref.SHA256}}, update, options.UpdateOne().SetUpsert(true))
		return err
	})
}

// Vouch implements media.MetaStore.
func (s *MediaStore) Vouch(ctx context.Context, sha, holder string, schools []string) error {
	add := bson.D{}
	if holder != "" {
		add = append(add, bson.E{Key: "holders", Value: holder})
	}
	if len(schools) > 0 {
		add = append(add, bson.E{Key: "vouched", Value: bson.D{{Key: "$each", Value: schools}}})
	}
	if len(add) == 0 {
		return nil
	}
	var res *mongo.UpdateResult
	err := retry(ctx, func() (err error) {
		res, err = s.photos.UpdateOne(ctx, bson.D{{Key: "_id", Value: sha}}, bson.D{{Key: "$addToSet", Value: add}})
		return err
	})
	if err != nil {
		return mediaErr("vouch for photo "+sha, err)
	}
	if res.MatchedCount == 0 {
		return syncproto.Errorf(syncproto.ENOTFOUND, "No photo %s.", sha)
	}
	return nil
}

// Unreferenced implements media.MetaStore: an equality on the top-level
// "referenced", which PhotoStored sets false on insert and ExpectPhoto
// true.
func (s *MediaStore) Unreferenced(ctx context.Context, limit int) ([]media.Photo, error) {
	cur, err := s.photos.Find(ctx, bson.D{{Key: "referenced", Value: false}}, options.Find().SetLimit(int64(limit)))
	if err != nil {
		return nil, mediaErr("find unreferenced photos", err)
	}
	var docs []mediaPhotoDoc
	if err := cur.All(ctx, &docs); err != nil {
		return nil, mediaErr("read unreferenced photos", err)
	}
	out := make([]media.Photo, 0, len(docs))
	for _, d := range docs {
		out = append(out, photoOf(d))
	}
	return out, nil
}

// ForgetPhoto implements media.MetaStore.
func (s *MediaStore) ForgetPhoto(ctx context.Context, sha string) (bool, error) {
	var res *mongo.DeleteResult
	err := retry(ctx, func() (err error) {
		res, err = s.photos.DeleteOne(ctx, bson.D{{Key: "_id", Value: sha}, {Key: "referenced", Value: false}})
		return err
	})
	if err != nil {
		return false, mediaErr("forget photo "+sha, err)
	}
	if res.DeletedCount == 0 {
		return false, nil
	}
	if _, err := s.jobs.DeleteOne(ctx, bson.D{{Key: "_id", Value: sha}}); err != nil {
		return true, mediaErr("remove thumbnail job "+sha, err)
	}
	return true, nil
}

// upsert runs an upsert, again once if a concurrent upsert of the same _id
// won the insert (the second run then updates).
func (s *MediaStore) upsert(ctx context.Context, op string, run func() error) error {
	err := retry(ctx, run)
	if mongo.IsDuplicateKeyError(err) {
		err = retry(ctx, run)
	}
	return mediaErr(op, err)
}

// Photo implements media.MetaStore.
func (s *MediaStore) Photo(ctx context.Context, sha string) (media.Photo, error) {
	var d mediaPhotoDoc
	if err := s.photos.FindOne(ctx, bson.D{{Key: "_id", Value: sha}}).Decode(&d); err != nil {
		return media.Photo{}, mediaErr("find photo "+sha, err)
	}
	return photoOf(d), nil
}

func photoOf(d mediaPhotoDoc) media.Photo {
	p := media.Photo{
		SHA256: d.ID, State: d.State, Size: d.Size, ContentType: d.ContentType, Schools: d.Schools,
		Holders: d.Holders, Vouched: d.Vouched,
		UploadedBy: d.UploadedBy, ThumbState: d.ThumbState, ThumbError: d.ThumbError, Thumbs: d.Thumbs,
		EXIF: media.EXIF{TakenAt: d.TakenAt, Raw: d.EXIFTime, Lat: d.Lat, Lon: d.Lon, Orientation: d.Orientation},
	}
	if d.StoredAt != nil {
		p.StoredAt = *d.StoredAt
	}
	return p
}

// PhotoStored implements media.MetaStore: one upsert whose filter matches
// any photo not complete yet. For a complete photo the filter matches
// nothing, the upsert's insert collides with the existing _id, and that
// duplicate key error means "nothing to do".
func (s *MediaStore) PhotoStored(ctx context.Context, sha string, st media.Stored) error {
	at := st.At.Truncate(time.Millisecond)
	update := bson.D{{Key: "$set", Value: bson.D{
		{Key: "state", Value: media.StateComplete},
		{Key: "size", Value: st.Size},
		{Key: "content_type", Value: st.ContentType},
		{Key: "stored_at", Value: at},
		{Key: "uploaded_by", Value: st.By},
		{Key: "thumb_state", Value: media.ThumbsPending},
	}}, {Key: "$setOnInsert", Value: bson.D{{Key: "referenced", Value: false}}}}
	filter := bson.D{{Key: "_id", Value: sha}, {Key: "state", Value: bson.D{{Key: "$ne", Value: media.StateComplete}}}}
	err := retry(ctx, func() error {
		_, err := s.photos.UpdateOne(ctx, filter, update, options.UpdateOne().SetUpsert(true))
		return err
	})
	if mongo.IsDuplicateKeyError(err) {
		return nil // complete already
	}
	return mediaErr("photo stored "+sha, err)
}

// QueueThumbs implements media.MetaStore.
func (s *MediaStore) QueueThumbs(ctx context.Context, sha, contentType string, now time.Time) error {
	_, err := s.jobs.InsertOne(ctx, thumbJobDoc{ID: sha, ContentType: contentType, State: jobPending, NextAt: now.Truncate(time.Millisecond)})
	if mongo.IsDuplicateKeyError(err) {
		return nil
	}
	return mediaErr("queue thumbnails of "+sha, err)
}

// ClaimThumbs implements media.MetaStore. Due jobs are found by reading the
// jobs of one state and filtering by time here (FerretDB v1 would read the
// whole collection for a range filter anyway), then taken with a
// compare-and-set on the fields read, so that two processes never hold
// the same lease.
func (s *MediaStore) ClaimThumbs(ctx context.Context, now time.Time, lease time.Duration) (media.ThumbJob, error) {
	until := now.Add(lease).Truncate(time.Millisecond)
	for _, state := range []string{jobPending, jobWorking} {
		cur, err := s.jobs.Find(ctx, bson.D{{Key: "state", Value: state}}, options.Find().SetLimit(claimScan))
		if err != nil {
			return media.ThumbJob{}, mediaErr("find thumbnail jobs", err)
		}
		var docs []thumbJobDoc
		if err := cur.All(ctx, &docs); err != nil {
			return media.ThumbJob{}, mediaErr("read thumbnail jobs", err)
		}
		due := slices.DeleteFunc(docs, func(d thumbJobDoc) bool {
			if state == jobPending {
				return d.NextAt.After(now)
			}
			return !d.Until.Before(now)
		})
		slices.SortFunc(due, func(a, b thumbJobDoc) int { return a.NextAt.Compare(b.NextAt) })
		for _, d := range due {
			filter := bson.D{{Key: "_id", Value: d.ID}, {Key: "state", Value: state}, {Key: "attempts", Value: d.Attempts}}
			if state == jobWorking {
				filter = append(filter, bson.E{Key: "until", Value: d.Until})
			}
			// The claim counts as unfinished until ThumbsRetry or
			// ThumbsDone: a photo that kills its process is seen.
			res, err := s.jobs.UpdateOne(ctx, filter, bson.D{
				{Key: "$set", Value: bson.D{{Key: "state", Value: jobWorking}, {Key: "until", Value: until}}},
				{Key: "$inc", Value: bson.D{{Key: "unfinished", Value: 1}}},
			})
			if err != nil {
				return media.ThumbJob{}, mediaErr("claim thumbnail job "+d.ID, err)
			}
			if res.ModifiedCount == 1 {
				return media.ThumbJob{SHA256: d.ID, ContentType: d.ContentType, Attempts: d.Attempts, Unfinished: d.Unfinished, Until: until}, nil
			}
		}
	}
	return media.ThumbJob{}, syncproto.Errorf(syncproto.ENOTFOUND, "No thumbnail job is due.")
}

func leaseFilter(job media.ThumbJob) bson.D {
	return bson.D{{Key: "_id", Value: job.SHA256}, {Key: "state", Value: jobWorking}, {Key: "until", Value: job.Until}}
}

func lostLease(job media.ThumbJob) error {
	return syncproto.Errorf(syncproto.ECONFLICT, "The thumbnail job of %s is no longer leased to this worker.", job.SHA256)
}

// ThumbsDone implements media.MetaStore. The photo and the job are two
// documents, and FerretDB has no transactions: the photo is written first,
// then the job removed if the lease still holds. A worker that lost its
// lease may so have written the photo too; two workers make the same
// thumbnails under the same keys, so that changes nothing.
func (s *MediaStore) ThumbsDone(ctx context.Context, job media.ThumbJob, res media.ThumbResult) error {
	if err := s.jobs.FindOne(ctx, leaseFilter(job)).Err(); err != nil {
		if errors.Is(err, mongo.ErrNoDocuments) {
			return lostLease(job)
		}
		return mediaErr("find thumbnail job "+job.SHA256, err)
	}
	set := bson.D{
		{Key: "thumb_state", Value: res.State},
		{Key: "thumb_error", Value: res.Error},
		{Key: "thumbs", Value: res.Thumbs},
		{Key: "exif_time", Value: res.EXIF.Raw},
		{Key: "orientation", Value: res.EXIF.Orientation},
	}
	unset := bson.D{}
	for _, f := range []struct {
		key string
		val any
		ok  bool
	}{
		{"taken_at", res.EXIF.TakenAt, res.EXIF.TakenAt != nil},
		{"lat", res.EXIF.Lat, res.EXIF.Lat != nil},
		{"lon", res.EXIF.Lon, res.EXIF.Lon != nil},
	} {
		if f.ok {
			set = append(set, bson.E{Key: f.key, Value: f.val})
		} else {
			unset = append(unset, bson.E{Key: f.key, Value: ""})
		}
	}
	update := bson.D{{Key: "$set", Value: set}}
	if len(unset) > 0 {
		update = append(update, bson.E{Key: "$unset", Value: unset})
	}
	if _, err := s.photos.UpdateOne(ctx, bson.D{{Key: "_id", Value: job.SHA256}}, update); err != nil {
		return mediaErr("store thumbnails of "+job.SHA256, err)
	}
	dr, err := s.jobs.DeleteOne(ctx, leaseFilter(job))
	if err != nil {
		return mediaErr("remove thumbnail job "+job.SHA256, err)
	}
	if dr.DeletedCount == 0 {
		return lostLease(job)
	}
	return nil
}

// ThumbsRetry implements media.MetaStore.
func (s *MediaStore) ThumbsRetry(ctx context.Context, job media.ThumbJob, next time.Time, msg string) error {
	res, err := s.jobs.UpdateOne(ctx, leaseFilter(job), bson.D{
		{Key: "$set", Value: bson.D{{Key: "state", Value: jobPending}, {Key: "next_at", Value: next.Truncate(time.Millisecond)}, {Key: "error", Value: msg}, {Key: "unfinished", Value: 0}}},
		{Key: "$inc", Value: bson.D{{Key: "attempts", Value: 1}}},
	})
	if err != nil {
		return mediaErr("retry thumbnail job "+job.SHA256, err)
	}
	if res.MatchedCount == 0 {
		return lostLease(job)
	}
	return nil
}

// mediaErr translates the driver's errors at the package's edge: no
// document is ENOTFOUND, an unreachable server EUNAVAILABLE (the API
// answers 503 with Retry-After), anything else EINTERNAL with the detail
// kept for the log.
func mediaErr(op string, err error) error {
	var sse topology.ServerSelectionError
	switch {
	case err == nil:
		return nil
	case errors.Is(err, mongo.ErrNoDocuments):
		return fmt.Errorf("mongo: %s: %w", op, syncproto.Errorf(syncproto.ENOTFOUND, "Not found."))
	case mongo.IsNetworkError(err), mongo.IsTimeout(err), errors.As(err, &sse),
		errors.Is(err, context.DeadlineExceeded), errors.Is(err, mongo.ErrClientDisconnected):
		return fmt.Errorf("mongo: %s: %v: %w", op, err,
			syncproto.Errorf(syncproto.EUNAVAILABLE, "The database is unavailable; try again later."))
	}
	return fmt.Errorf("mongo: %s: %w", op, err)
}
