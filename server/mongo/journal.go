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

	"github.com/fieldsync/fieldsync/server"
	"github.com/fieldsync/fieldsync/syncproto"
)

// opDoc records that an op id was applied, with its change's digest.
type opDoc struct {
	ID    string    `bson:"_id"`
	H     string    `bson:"h"`
	Batch string    `bson:"b"`
	At    time.Time `bson:"at"`
}

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
}

type resultsDoc struct {
	ID string    `bson:"_id"`
	H  string    `bson:"h,omitempty"` // the batch's digest (absent in answers saved before it was kept here)
	R  string    `bson:"r"`           // JSON of []syncproto.Result
	At time.Time `bson:"at"`
}

// ClaimOps implements server.SyncStore with one unordered insert. Ops
// refused as duplicates are looked up by batch first (a batch sent again
// after a crash) and then one by one (an op sent again in another batch,
// which phones do not do in normal operation).
func (s *SyncStore) ClaimOps(ctx context.Context, batch uuid.UUID, ops []server.OpDigest) (map[uuid.UUID]server.ClaimedOp, error) {
	now := s.now()
	docs := make([]any, len(ops))
	for i, op := range ops {
		docs[i] = opDoc{ID: op.OpID.String(), H: op.Digest, Batch: batch.String(), At: now}
	}
	coll := s.db.Collection("ops")
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
		return s.db.Collection("batches").FindOne(ctx, bson.D{{Key: "_id", Value: id.String()}}).Decode(&b)
	})
	if errors.Is(err, mongo.ErrNoDocuments) {
		return server.StoredBatch{}, syncproto.Errorf(syncproto.ENOTFOUND, "No batch %s.", id)
	}
	if err != nil {
		return server.StoredBatch{}, fmt.Errorf("mongo: batch %s: %w", id, err)
	}
	var r resultsDoc
	err = retry(ctx, func() error {
		return s.db.Collection("results").FindOne(ctx, bson.D{{Key: "_id", Value: id.String()}}).Decode(&r)
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
			_, err := s.db.Collection("results").InsertOne(ctx, resultsDoc{ID: b.ID.String(), H: b.Digest, R: string(r), At: b.At})
			return err
		})
	}()
	err = retry(ctx, func() error {
		_, err := s.db.Collection("batches").InsertOne(ctx, batchDoc{ID: b.ID.String(), H: b.Digest, Device: b.Device.String(), N: len(b.Results), At: b.At})
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
		return s.db.Collection("results").FindOne(ctx, bson.D{{Key: "_id", Value: b.ID.String()}}).Decode(&first)
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

// ForgetJournal deletes the op ids, batches and answers recorded before a
// time, and returns how many documents it deleted. Afterwards a batch or
// op from before then is applied again instead of being recognized:
// harmless for the records (a join), but it is reported applied or
// duplicate instead of its first answer, and an op id reused with other
// content is no longer refused.
func (s *SyncStore) ForgetJournal(ctx context.Context, before time.Time) (int64, error) {
	filter := bson.D{{Key: "at", Value: bson.D{{Key: "$lt", Value: before}}}}
	var n int64
	// Batch documents before their results: a batch is never answered
	// from missing results.
	for _, name := range []string{"ops", "batches", "results"} {
		res, err := s.db.Collection(name).DeleteMany(ctx, filter)
		if err != nil {
			return n, fmt.Errorf("mongo: forget journal: %w", err)
		}
		n += res.DeletedCount
	}
	return n, nil
}
