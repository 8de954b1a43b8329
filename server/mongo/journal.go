package mongo

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/fieldsync/fieldsync/server"
	"github.com/fieldsync/fieldsync/syncproto"
)

// opDoc records that an op id was applied, with its change's digest.
type opDoc struct {
	ID    string    `bson:"_id"`
	H     string    `bson:"h"`
	Batch string    `bson:"b"`
	At    time.Time `bson:"at"`
	Day   string    `bson:"d"` // journalDay(At): the bucket ForgetJournal deletes by
}

// journalDay is the day bucket of a journal document: its UTC date. The
// journal is forgotten a day at a time, by equality on it (an index
// lookup on FerretDB, where a range on "at" would scan the collection).
func journalDay(t time.Time) string { return t.UTC().Format(time.DateOnly) }

// batchDoc records that a batch was answered. It is small (FerretDB
// without the twin indexes of deploy/postgres scans the whole collection
// for a lookup by _id); the answer itself is in resultsDoc, read only when
// the batch is found.
type batchDoc struct {
	ID     string    `bson:"_id"`
	H      string    `bson:"h"`
	Device string    `bson:"d"`
	N      int       `bson:"n"`
	At     time.Time `bson:"at"`
	Day    string    `bson:"day"`
}

type resultsDoc struct {
	ID  string    `bson:"_id"`
	H   string    `bson:"h,omitempty"` // the batch's digest (absent in answers saved before it was kept here)
	R   string    `bson:"r"`           // JSON of []syncproto.Result
	At  time.Time `bson:"at"`
	Day string    `bson:"day"`
}

// ClaimOps implements server.SyncStore with one unordered insert. Ops
// refused as duplicates are looked up by batch first (a batch sent again
// after a crash) and then one by one (an op sent again in another batch,
// which phones do not do in normal operation).
func (s *SyncStore) ClaimOps(ctx context.Context, batch uuid.UUID, ops []server.OpDigest) (map[uuid.UUID]server.ClaimedOp, error) {
	now := s.now()
	docs := make([]any, len(ops))
	for i, op := range ops {
		docs[i] = opDoc{ID: op.OpID.String(), H: op.Digest, Batch: batch.String(), At: now, Day: journalDay(now)}
	}
	coll := s.db.Collection(OpsCollection)
	dups, err := insertIgnoringDuplicates(ctx, coll, docs)
	if err != nil {
		return nil, fmt.Errorf("mongo: claim ops of batch %s: %w", batch, err)
	}
	seen := make(map[uuid.UUID]server.ClaimedOp, len(dups))
	if len(dups) == 0 {
		return seen, nil
	}
	cur, err := coll.Find(ctx, bson.D{{Key: "b", Value: batch.String()}})
	if err != nil {
		return nil, fmt.Errorf("mongo: claim ops of batch %s: %w", batch, err)
	}
	var known []opDoc
	if err := cur.All(ctx, &known); err != nil {
		return nil, fmt.Errorf("mongo: claim ops of batch %s: %w", batch, err)
	}
	byID := make(map[string]string, len(known))
	for _, d := range known {
		byID[d.ID] = d.H
	}
	for _, k := range dups {
		id := ops[k].OpID
		if h, ok := byID[id.String()]; ok {
			seen[id] = server.ClaimedOp{Digest: h, Batch: batch}
			continue
		}
		var d opDoc
		err := coll.FindOne(ctx, bson.D{{Key: "_id", Value: id.String()}}).Decode(&d)
		if err != nil {
			return nil, fmt.Errorf("mongo: claim op %s: %w", id, err)
		}
		b, err := uuid.Parse(d.Batch)
		if err != nil {
			return nil, fmt.Errorf("mongo: claim op %s: batch %q: %w", id, d.Batch, err)
		}
		seen[id] = server.ClaimedOp{Digest: d.H, Batch: b}
	}
	return seen, nil
}

// Batch implements server.SyncStore.
func (s *SyncStore) Batch(ctx context.Context, id uuid.UUID) (server.StoredBatch, error) {
	var b batchDoc
	err := retry(ctx, func() error {
		return s.db.Collection(BatchesCollection).FindOne(ctx, bson.D{{Key: "_id", Value: id.String()}}).Decode(&b)
	})
	if errors.Is(err, mongo.ErrNoDocuments) {
		return server.StoredBatch{}, syncproto.Errorf(syncproto.ENOTFOUND, "No batch %s.", id)
	}
	if err != nil {
		return server.StoredBatch{}, fmt.Errorf("mongo: batch %s: %w", id, err)
	}
	var r resultsDoc
	err = retry(ctx, func() error {
		return s.db.Collection(ResultsCollection).FindOne(ctx, bson.D{{Key: "_id", Value: id.String()}}).Decode(&r)
	})
	if errors.Is(err, mongo.ErrNoDocuments) {
		// Saved without its answer by a process that died: the batch is
		// applied again (harmless, a join) and answered then.
		return server.StoredBatch{}, syncproto.Errorf(syncproto.ENOTFOUND, "No answer to batch %s.", id)
	}
	if err != nil {
		return server.StoredBatch{}, fmt.Errorf("mongo: results of batch %s: %w", id, err)
	}
	out := server.StoredBatch{ID: id, Digest: b.H, At: b.At}
	if dev, err := uuid.Parse(b.Device); err == nil {
		out.Device = dev
	}
	if err := json.Unmarshal([]byte(r.R), &out.Results); err != nil {
		return server.StoredBatch{}, fmt.Errorf("mongo: results of batch %s: %w", id, err)
	}
	return out, nil
}

// SaveBatch implements server.SyncStore. The answer and the small batch
// document are written at once; Batch treats a batch document whose
// answer is missing (a crash between the two) as no batch. The answer's
// insert under the batch id decides which answer is the batch's: a
// writer that finds one there returns it.
func (s *SyncStore) SaveBatch(ctx context.Context, b server.StoredBatch) (server.StoredBatch, error) {
	r, err := syncproto.Marshal(b.Results)
	if err != nil {
		return server.StoredBatch{}, fmt.Errorf("mongo: save batch %s: %w", b.ID, err)
	}
	errc := make(chan error, 1)
	go func() {
		errc <- retry(ctx, func() error {
			_, err := s.db.Collection(ResultsCollection).InsertOne(ctx, resultsDoc{ID: b.ID.String(), H: b.Digest, R: string(r), At: b.At, Day: journalDay(b.At)})
			return err
		})
	}()
	err = retry(ctx, func() error {
		_, err := s.db.Collection(BatchesCollection).InsertOne(ctx, batchDoc{ID: b.ID.String(), H: b.Digest, Device: b.Device.String(), N: len(b.Results), At: b.At, Day: journalDay(b.At)})
		return err
	})
	rerr := <-errc
	for _, err := range []error{err, rerr} {
		if err != nil && !mongo.IsDuplicateKeyError(err) {
			return server.StoredBatch{}, fmt.Errorf("mongo: save batch %s: %w", b.ID, err)
		}
	}
	if rerr == nil {
		return b, nil
	}
	var first resultsDoc
	err = retry(ctx, func() error {
		return s.db.Collection(ResultsCollection).FindOne(ctx, bson.D{{Key: "_id", Value: b.ID.String()}}).Decode(&first)
	})
	if err != nil {
		return server.StoredBatch{}, fmt.Errorf("mongo: results of batch %s: %w", b.ID, err)
	}
	b.Results = nil
	if first.H != "" {
		b.Digest = first.H
	}
	if err := json.Unmarshal([]byte(first.R), &b.Results); err != nil {
		return server.StoredBatch{}, fmt.Errorf("mongo: results of batch %s: %w", b.ID, err)
	}
	return b, nil
}

// ForgetJournal implements server.MaintenanceStore: it deletes the op
// ids, batches, answers and maintenance claims of the days before the day
// of before, a day at
// a time by equality on the day bucket, looking back journalLookback
// days (maintenance runs several times a day, so every day is forgotten
// by some run); journal documents of versions that wrote no day bucket
// are swept by a scan until none is left, which is then recorded in meta.
func (s *SyncStore) ForgetJournal(ctx context.Context, before time.Time) (int64, error) {
	var n int64
	cutoff := before.UTC().Truncate(24 * time.Hour)
	// Batch documents before their answers: a batch is never answered
	// from missing results.
	colls := []struct{ name, day string }{{OpsCollection, "d"}, {BatchesCollection, "day"}, {ResultsCollection, "day"}, {ClaimsCollection, "day"}}
	for d := cutoff.AddDate(0, 0, -journalLookback); d.Before(cutoff); d = d.AddDate(0, 0, 1) {
		for _, c := range colls {
			res, err := s.db.Collection(c.name).DeleteMany(ctx, bson.D{{Key: c.day, Value: journalDay(d)}})
			if err != nil {
				return n, fmt.Errorf("mongo: forget journal of %s: %w", journalDay(d), err)
			}
			n += res.DeletedCount
		}
	}
	var swept metaDoc
	err := s.db.Collection(MetaCollection).FindOne(ctx, bson.D{{Key: "_id", Value: "journal_swept"}}).Decode(&swept)
	if err == nil {
		return n, nil
	}
	if !errors.Is(err, mongo.ErrNoDocuments) {
		return n, fmt.Errorf("mongo: forget journal: %w", err)
	}
	left := int64(0)
	for _, c := range colls {
		legacy := bson.D{{Key: c.day, Value: bson.D{{Key: "$exists", Value: false}}}}
		res, err := s.db.Collection(c.name).DeleteMany(ctx, append(legacy, bson.E{Key: "at", Value: bson.D{{Key: "$lt", Value: cutoff}}}))
		if err != nil {
			return n, fmt.Errorf("mongo: forget journal: %w", err)
		}
		n += res.DeletedCount
		k, err := s.db.Collection(c.name).CountDocuments(ctx, legacy, options.Count().SetLimit(1))
		if err != nil {
			return n, fmt.Errorf("mongo: forget journal: %w", err)
		}
		left += k
	}
	if left > 0 {
		return n, nil // younger ones: swept by a later run
	}
	_, err = s.db.Collection(MetaCollection).InsertOne(ctx, metaDoc{ID: "journal_swept", At: s.now()})
	if err != nil && !mongo.IsDuplicateKeyError(err) {
		return n, fmt.Errorf("mongo: forget journal: %w", err)
	}
	return n, nil
}

// journalLookback is how many days before the cutoff ForgetJournal
// deletes.
const journalLookback = 30

// claimDoc records that a maintenance run was taken (server.Maintenance).
type claimDoc struct {
	ID  string    `bson:"_id"`
	At  time.Time `bson:"at"`
	Day string    `bson:"day"`
}

// Claim implements server.MaintenanceStore with an insert under a unique
// id, the one atomic operation FerretDB v1 has.
func (s *SyncStore) Claim(ctx context.Context, key string) (bool, error) {
	now := s.now()
	_, err := s.db.Collection(ClaimsCollection).InsertOne(ctx, claimDoc{ID: key, At: now, Day: journalDay(now)})
	switch {
	case err == nil:
		return true, nil
	case mongo.IsDuplicateKeyError(err):
		return false, nil
	}
	return false, fmt.Errorf("mongo: claim %s: %w", key, err)
}

// Scopes implements server.MaintenanceStore: the scopes' counters, one
// small document per scope.
func (s *SyncStore) Scopes(ctx context.Context) (map[string]int64, error) {
	cur, err := s.db.Collection(ScopesCollection).Find(ctx, bson.D{})
	if err != nil {
		return nil, fmt.Errorf("mongo: list scopes: %w", err)
	}
	var docs []struct {
		ID   string `bson:"_id"`
		Next int64  `bson:"next"`
	}
	if err := cur.All(ctx, &docs); err != nil {
		return nil, fmt.Errorf("mongo: list scopes: %w", err)
	}
	out := make(map[string]int64, len(docs))
	for _, d := range docs {
		out[d.ID] = d.Next
	}
	return out, nil
}
