package mediatest_test

import (
	"testing"

	"github.com/fieldsync/fieldsync/server/media"
	"github.com/fieldsync/fieldsync/server/media/mediatest"
)

func TestMemBlobs(t *testing.T) {
	mediatest.TestBlobStore(t, func(t *testing.T) media.BlobStore { return mediatest.NewBlobs() }, mediatest.FetchMem)
}

func TestMemMeta(t *testing.T) {
	mediatest.TestMetaStore(t, func(t *testing.T) media.MetaStore { return mediatest.NewMeta() })
}
