package minio_test

import (
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/fieldsync/fieldsync/internal/testenv"
	"github.com/fieldsync/fieldsync/server/media"
	"github.com/fieldsync/fieldsync/server/media/mediatest"
	serverminio "github.com/fieldsync/fieldsync/server/minio"
	"github.com/fieldsync/fieldsync/syncproto"
)

// openBlobs returns a Blobs store under the test's own prefix of the test
// bucket; the prefix is emptied when the test ends.
func openBlobs(t *testing.T) *serverminio.Blobs {
	t.Helper()
	st := testenv.Minio(t)
	cfg := testenv.MinioConfig(t)
	cfg.Prefix = st.Prefix()
	b, err := serverminio.NewBlobs(cfg, serverminio.BlobOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestBlobs(t *testing.T) {
	mediatest.TestBlobStore(t, func(t *testing.T) media.BlobStore { return openBlobs(t) }, mediatest.FetchHTTP)
}

// TestBlobsPresignedURLIsSigned checks that a presigned URL reveals only
// its object: changing the key or the signature is refused.
func TestBlobsPresignedURLIsSigned(t *testing.T) {
	b := openBlobs(t)
	ctx := t.Context()
	mediatest.Code(t, b.Put(ctx, "photos/aa/x", strings.NewReader("secret"), 6, media.PutOptions{}), "")
	mediatest.Code(t, b.Put(ctx, "photos/aa/y", strings.NewReader("other!"), 6, media.PutOptions{}), "")
	u, err := b.PresignGet(ctx, "photos/aa/x", time.Minute)
	mediatest.Code(t, err, "")
	for _, bad := range []string{
		strings.Replace(u, "photos/aa/x", "photos/aa/y", 1),
		strings.Replace(u, "X-Amz-Signature=", "X-Amz-Signature=0", 1),
	} {
		if _, err := mediatest.FetchHTTP(ctx, b, bad); err == nil || !strings.Contains(err.Error(), "403") {
			t.Errorf("GET of a tampered URL: %v, want 403", err)
		}
	}
}

// TestBlobsDown checks that a store nobody answers at fails fast with
// EUNAVAILABLE, for every call.
func TestBlobsDown(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	b, err := serverminio.NewBlobs(serverminio.Config{Endpoint: addr, AccessKey: "k", SecretKey: "s", Bucket: "photos"}, serverminio.BlobOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	calls := []struct {
		name string
		call func() error
	}{
		{"Put", func() error { return b.Put(ctx, "k", strings.NewReader("x"), 1, media.PutOptions{}) }},
		{"Get", func() error {
			rc, err := b.Get(ctx, "k")
			if err != nil {
				return err
			}
			defer rc.Close()
			_, err = io.ReadAll(rc)
			return err
		}},
		{"Stat", func() error { _, err := b.Stat(ctx, "k"); return err }},
		{"List", func() error { _, err := b.List(ctx, "k"); return err }},
		{"Remove", func() error { return b.Remove(ctx, "k", "l") }},
	}
	for _, c := range calls {
		t.Run(c.name, func(t *testing.T) {
			err := c.call()
			mediatest.Code(t, err, syncproto.EUNAVAILABLE)
			if msg := syncproto.ErrorMessage(err); !strings.Contains(msg, "try again later") {
				t.Errorf("message %q", msg)
			}
		})
	}
	// Presigning needs no server.
	if _, err := b.PresignGet(ctx, "k", time.Minute); err != nil {
		t.Errorf("PresignGet: %v", err)
	}
}
