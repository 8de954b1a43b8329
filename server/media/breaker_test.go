package media_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fieldsync/fieldsync/server/media"
	"github.com/fieldsync/fieldsync/server/media/mediatest"
	"github.com/fieldsync/fieldsync/syncproto"
)

// lockedBuffer is a log destination safe for concurrent writes.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) count(s string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Count(l.b.String(), s)
}

// countingBlobs counts the calls that reach the store.
type countingBlobs struct {
	*mediatest.Blobs
	mu    sync.Mutex
	calls int
}

func (c *countingBlobs) Stat(ctx context.Context, key string) (media.BlobInfo, error) {
	c.mu.Lock()
	c.calls++
	c.mu.Unlock()
	return c.Blobs.Stat(ctx, key)
}

// TestBreaker checks the breaker around the object store: a store found
// down makes every call fail at once with EUNAVAILABLE without reaching
// it, one probe every RetryEvery looks whether it is back, a caller that
// went away does not trip it, and the log says "down" once and "back"
// once.
func TestBreaker(t *testing.T) {
	clock := newClock()
	mem := mediatest.NewBlobs()
	store := &countingBlobs{Blobs: mem}
	var logs lockedBuffer
	probeErr := errors.New("connection refused")
	probes := 0
	b := media.NewBreaker(store, media.BreakerConfig{
		RetryEvery: 5 * time.Second, Now: clock.Now,
		Probe: func(context.Context) error {
			probes++
			if mem.Down.Load() {
				return probeErr
			}
			return nil
		},
	}, slog.New(slog.NewTextHandler(&logs, nil)))
	ctx := t.Context()
	key := "photos/ab/cd"

	// A canceled caller says nothing about the store.
	mem.Down.Store(true)
	canceled, cancel := context.WithCancel(ctx)
	cancel()
	_, err := b.Stat(canceled, key)
	mediatest.Code(t, err, syncproto.EUNAVAILABLE)
	if b.Down() {
		t.Fatal("a canceled call tripped the breaker")
	}

	_, err = b.Stat(ctx, key) // finds it down
	mediatest.Code(t, err, syncproto.EUNAVAILABLE)
	if !b.Down() {
		t.Fatal("the breaker did not trip")
	}
	before := store.calls
	for range 10 {
		_, err = b.Stat(ctx, key)
		mediatest.Code(t, err, syncproto.EUNAVAILABLE)
		_, err = b.PresignGet(ctx, key, time.Minute)
		mediatest.Code(t, err, syncproto.EUNAVAILABLE)
	}
	if store.calls != before || probes != 0 {
		t.Fatalf("while open, %d calls reached the store and %d probes ran", store.calls-before, probes)
	}
	clock.Advance(5 * time.Second)
	_, err = b.Stat(ctx, key) // the probe: still down
	mediatest.Code(t, err, syncproto.EUNAVAILABLE)
	_, err = b.Stat(ctx, key) // not time for another
	mediatest.Code(t, err, syncproto.EUNAVAILABLE)
	if probes != 1 {
		t.Fatalf("%d probes, want 1", probes)
	}

	mem.Down.Store(false)
	_, err = b.Stat(ctx, key) // too early to look again
	mediatest.Code(t, err, syncproto.EUNAVAILABLE)
	clock.Advance(5 * time.Second)
	_, err = b.Stat(ctx, key)
	mediatest.Code(t, err, syncproto.ENOTFOUND) // the store answers again
	if b.Down() {
		t.Fatal("still open after the store came back")
	}
	if down, back := logs.count("(MinIO) is unavailable"), logs.count("(MinIO) is back"); down != 1 || back != 1 {
		t.Fatalf("log: %d down lines, %d back lines, want one each:\n%s", down, back, logs.b.String())
	}
}

// TestBreakerTrippedAtStart checks the start of a fieldsyncd whose MinIO
// is down: photo calls answer EUNAVAILABLE, the records of the service
// (Expect, RecordPhotos) work, and once the store is back so do photos.
func TestBreakerTrippedAtStart(t *testing.T) {
	e := openMem(t, media.Config{})
	mem := e.blobs.(*mediatest.Blobs)
	mem.Down.Store(true)
	b := media.NewBreaker(mem, media.BreakerConfig{Now: e.clock.Now}, nil)
	b.Trip(errors.New("connection refused"))
	svc := media.New(b, e.meta, e.access, e.cfg, nil)
	ctx := t.Context()
	e.access["reviewer"] = []string{"school-1"}
	data := encodePNG(t, sideways())
	sha := mediatest.SHA256(data)
	rec := record(t, "school-1", 1, sha)
	mediatest.Code(t, svc.Expect(ctx, rec), "")
	if rp, err := svc.RecordPhotos(ctx, principal("reviewer"), rec.ID.String(), "school-1"); err != nil || len(rp.Missing) != 1 {
		t.Fatalf("RecordPhotos with the store down: %+v, %v", rp, err)
	}
	_, err := svc.Put(ctx, sha, data, "image/png")
	mediatest.Code(t, err, syncproto.EUNAVAILABLE)
	_, err = svc.Status(ctx, sha)
	mediatest.Code(t, err, syncproto.EUNAVAILABLE)
	_, err = svc.URL(ctx, principal("reviewer"), sha, "")
	mediatest.Code(t, err, syncproto.EUNAVAILABLE)

	mem.Down.Store(false)
	e.clock.Advance(time.Minute)
	_, err = svc.Put(ctx, sha, data, "image/png")
	mediatest.Code(t, err, "")
	_, err = svc.URL(ctx, principal("reviewer"), sha, "")
	mediatest.Code(t, err, "")
}
