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

// conflictDoc is a conflict as stored. Status and scope are top-level
// strings so that listing open conflicts of a school is an equality
// filter.
type conflictDoc struct {
	ID         string     `bson:"_id"`
	RID        string     `bson:"rid"`
	Kind       string     `bson:"kind"`
	Scope      string     `bson:"scope"`
	Field      string     `bson:"field"`
	Status     string     `bson:"status"`
	Rev        int64      `bson:"rev"`
	Versions   string     `bson:"versions"` // canonical JSON of the versions
	DetectedAt time.Time  `bson:"detected_at"`
	UpdatedAt  time.Time  `bson:"updated_at"`
	ResolvedAt *time.Time `bson:"resolved_at,omitempty"`
	ResolvedBy string     `bson:"resolved_by,omitempty"`
}

func (d conflictDoc) toConflict() (server.Conflict, error) {
	id, err := uuid.Parse(d.RID)
	if err != nil {
		return server.Conflict{}, fmt.Errorf("mongo: conflict %s: %w", d.ID, err)
	}
	c := server.Conflict{
		ID: d.ID, RecordID: id, Kind: d.Kind, Scope: d.Scope, Field: d.Field, Status: d.Status, Rev: d.Rev,
		DetectedAt: d.DetectedAt.UTC(), UpdatedAt: d.UpdatedAt.UTC(), ResolvedBy: d.ResolvedBy,
	}
	if d.ResolvedAt != nil {
		t := d.ResolvedAt.UTC()
		c.ResolvedAt = &t
	}
	if err := json.Unmarshal([]byte(d.Versions), &c.Versions); err != nil {
		return server.Conflict{}, fmt.Errorf("mongo: conflict %s: %w", d.ID, err)
	}
	return c, nil
}

// PutConflict implements server.SyncStore with one upsert.
func (s *SyncStore) PutConflict(ctx context.Context, c server.Conflict) error {
	vs, err := syncproto.Marshal(c.Versions)
	if err != nil {
		return fmt.Errorf("mongo: put conflict %s: %w", c.ID, err)
	}
	set := bson.D{
		{Key: "rid", Value: c.RecordID.String()}, {Key: "kind", Value: c.Kind}, {Key: "scope", Value: c.Scope},
		{Key: "field", Value: c.Field}, {Key: "status", Value: c.Status}, {Key: "rev", Value: c.Rev},
		{Key: "versions", Value: string(vs)}, {Key: "updated_at", Value: c.UpdatedAt},
	}
	update := bson.D{{Key: "$setOnInsert", Value: bson.D{{Key: "detected_at", Value: c.DetectedAt}}}}
	if c.ResolvedAt != nil {
		set = append(set, bson.E{Key: "resolved_at", Value: *c.ResolvedAt}, bson.E{Key: "resolved_by", Value: c.ResolvedBy})
	} else {
		update = append(update, bson.E{Key: "$unset", Value: bson.D{{Key: "resolved_at", Value: ""}, {Key: "resolved_by", Value: ""}}})
	}
	update = append(update, bson.E{Key: "$set", Value: set})
	put := func() error {
		_, err := s.db.Collection(ConflictsCollection).UpdateOne(ctx, bson.D{{Key: "_id", Value: c.ID}}, update, options.UpdateOne().SetUpsert(true))
		return err
	}
	err = retry(ctx, put)
	if mongo.IsDuplicateKeyError(err) { // two first upserts raced
		err = retry(ctx, put)
	}
	if err != nil {
		return fmt.Errorf("mongo: put conflict %s: %w", c.ID, err)
	}
	return nil
}

// Conflict implements server.SyncStore.
func (s *SyncStore) Conflict(ctx context.Context, id string) (server.Conflict, error) {
	var d conflictDoc
	err := s.db.Collection(ConflictsCollection).FindOne(ctx, bson.D{{Key: "_id", Value: id}}).Decode(&d)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return server.Conflict{}, syncproto.Errorf(syncproto.ENOTFOUND, "No conflict %s.", id)
	}
	if err != nil {
		return server.Conflict{}, fmt.Errorf("mongo: conflict %s: %w", id, err)
	}
	return d.toConflict()
}

// Conflicts implements server.SyncStore with an equality filter on status,
// scope and record.
func (s *SyncStore) Conflicts(ctx context.Context, f server.ConflictFilter) ([]server.Conflict, error) {
	filter := bson.D{}
	if f.Status != "" {
		filter = append(filter, bson.E{Key: "status", Value: f.Status})
	}
	if f.Scope != "" {
		filter = append(filter, bson.E{Key: "scope", Value: f.Scope})
	}
	if f.RecordID != uuid.Nil {
		filter = append(filter, bson.E{Key: "rid", Value: f.RecordID.String()})
	}
	opts := options.Find().SetSort(bson.D{{Key: "updated_at", Value: -1}, {Key: "_id", Value: 1}})
	if f.Limit > 0 {
		opts.SetLimit(int64(f.Limit))
	}
	cur, err := s.db.Collection(ConflictsCollection).Find(ctx, filter, opts)
	if err != nil {
		return nil, fmt.Errorf("mongo: conflicts: %w", err)
	}
	var docs []conflictDoc
	if err := cur.All(ctx, &docs); err != nil {
		return nil, fmt.Errorf("mongo: conflicts: %w", err)
	}
	out := make([]server.Conflict, 0, len(docs))
	for _, d := range docs {
		c, err := d.toConflict()
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	server.SortConflicts(out)
	return out, nil
}
