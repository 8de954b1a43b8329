package mongo_test

import (
	"testing"

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
