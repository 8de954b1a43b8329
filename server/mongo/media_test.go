package mongo_test

import (
	"slices"
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/fieldsync/fieldsync/internal/testenv"
	"github.com/fieldsync/fieldsync/server/media"
	"github.com/fieldsync/fieldsync/server/media/mediatest"
	servermongo "github.com/fieldsync/fieldsync/server/mongo"
)

func TestMediaStore(t *testing.T) {
	mediatest.TestMetaStore(t, func(t *testing.T) media.MetaStore {
		s := servermongo.NewMediaStore(testenv.Mongo(t).Database())
		if err := s.EnsureIndexes(t.Context()); err != nil {
			t.Fatal(err)
		}
		return s
	})
}

// TestMediaStoreMigrates checks that documents written before records
// were kept per school and photos per holder are brought to the current
// shape at start: the record is found under its school, and the photo
// stays visible to the schools that referred to it then.
func TestMediaStoreMigrates(t *testing.T) {
	ctx := t.Context()
	db := testenv.Mongo(t).Database()
	sha := mediatest.SHA256([]byte("an old photo"))
	if _, err := db.Collection(servermongo.MediaRecordsCollection).InsertOne(ctx, bson.D{
		{Key: "_id", Value: "0192b000-0000-7000-8000-000000000701"}, {Key: "school_id", Value: "s1"}, {Key: "rev", Value: int64(3)},
		{Key: "photos", Value: bson.A{bson.D{{Key: "sha256", Value: sha}}}},
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Collection(servermongo.MediaPhotosCollection).InsertOne(ctx, bson.D{
		{Key: "_id", Value: sha}, {Key: "state", Value: media.StateComplete}, {Key: "size", Value: int64(12)},
		{Key: "schools", Value: bson.A{"s1"}},
	}); err != nil {
		t.Fatal(err)
	}
	s := servermongo.NewMediaStore(db)
	for range 2 { // the second start finds nothing to do
		if err := s.EnsureIndexes(ctx); err != nil {
			t.Fatal(err)
		}
	}
	r, err := s.Record(ctx, "s1", "0192b000-0000-7000-8000-000000000701")
	if err != nil || r.Rev != 3 || len(r.Photos) != 1 || r.RecordID != "0192b000-0000-7000-8000-000000000701" {
		t.Fatalf("migrated record = %+v, %v", r, err)
	}
	p, err := s.Photo(ctx, sha)
	if err != nil || !slices.Equal(p.Vouched, []string{"s1"}) || len(p.Holders) != 1 {
		t.Fatalf("migrated photo = %+v, %v", p, err)
	}
	if un, err := s.Unreferenced(ctx, 10); err != nil || len(un) != 0 {
		t.Fatalf("unreferenced after the migration: %+v, %v", un, err)
	}
}
