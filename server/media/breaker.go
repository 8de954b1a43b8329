package media

import (
	"context"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/fieldsync/fieldsync/syncproto"
)

// Breaker is a circuit breaker around the object store: once a call finds
// the store unreachable (EUNAVAILABLE), further calls fail at once with
// EUNAVAILABLE — the API answers 503 with Retry-After — instead of each
// waiting for MinIO's timeouts, and at most one call every RetryEvery
// tries Probe to see whether the store is back. Records never go through
// it: their pushes and pulls need only the database, so fieldsyncd starts
// and serves them while MinIO is down.
//
// The log gets one line when the store goes down and one when it comes
// back, however many calls fail in between.
type Breaker struct {
	next       BlobStore
	probe      func(context.Context) error
	retryEvery time.Duration
	now        func() time.Time
	logger     *slog.Logger

	mu        sync.Mutex
	open      bool
	lastProbe time.Time
	probing   bool
}

var _ BlobStore = (*Breaker)(nil)

// BreakerConfig are the settings of a Breaker.
type BreakerConfig struct {
	// Probe checks that the store is back (and prepares it: fieldsyncd
	// passes the creation of the bucket). Nil means a List of a key
	// nothing has.
	Probe func(context.Context) error
	// RetryEvery is how often a probe may run while the store is down
	// (5 s by default).
	RetryEvery time.Duration
	// Now returns the current time; tests replace it.
	Now func() time.Time
}

// NewBreaker returns a breaker around next, closed (calls go through).
func NewBreaker(next BlobStore, cfg BreakerConfig, logger *slog.Logger) *Breaker {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	b := &Breaker{next: next, probe: cfg.Probe, retryEvery: cfg.RetryEvery, now: cfg.Now, logger: logger.With("component", "media")}
	if b.retryEvery <= 0 {
		b.retryEvery = 5 * time.Second
	}
	if b.now == nil {
		b.now = time.Now
	}
	if b.probe == nil {
		b.probe = func(ctx context.Context) error {
			_, err := next.List(ctx, "probe/")
			return err
		}
	}
	return b
}

// Trip opens the breaker, as fieldsyncd does when the store is down at
// start; err says why (for the log).
func (b *Breaker) Trip(err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.trip(err)
}

func (b *Breaker) trip(err error) {
	if b.open {
		return
	}
	b.open, b.lastProbe = true, b.now()
	b.logger.Warn("the object store (MinIO) is unavailable: photo routes answer 503 until it is back; records sync on",
		"error", errString(err))
}

func (b *Breaker) reset() {
	if !b.open {
		return
	}
	b.open = false
	b.logger.Info("the object store (MinIO) is back: photo routes work again")
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// Down reports whether the breaker is open.
func (b *Breaker) Down() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.open
}

// probeTimeout bounds a probe, which runs in the call that admit lets
// through.
const probeTimeout = 3 * time.Second

// Check returns nil if calls go through, probing the store if it is time
// to; otherwise EUNAVAILABLE, as any call would.
func (b *Breaker) Check(ctx context.Context) error { return b.admit(ctx) }

// errStoreDown is the answer while the breaker is open.
var errStoreDown = syncproto.Errorf(syncproto.EUNAVAILABLE, "The photo store is unavailable; records still sync. Try the photos again later.")

// admit lets a call through when the breaker is closed, or when it is the
// one probe of this RetryEvery and the probe succeeds.
func (b *Breaker) admit(ctx context.Context) error {
	b.mu.Lock()
	if !b.open {
		b.mu.Unlock()
		return nil
	}
	if b.probing || b.now().Sub(b.lastProbe) < b.retryEvery {
		b.mu.Unlock()
		return errStoreDown
	}
	b.probing, b.lastProbe = true, b.now()
	b.mu.Unlock()

	pctx, cancel := context.WithTimeout(ctx, probeTimeout)
	err := b.probe(pctx)
	cancel()

	b.mu.Lock()
	defer b.mu.Unlock()
	b.probing = false
	if err != nil {
		return errStoreDown
	}
	b.reset()
	return nil
}

// observe trips the breaker on an unreachable store, and closes it on a
// call that worked. A call whose own context ended (a phone that went
// away mid-upload, a job past its deadline) says nothing about the store.
func (b *Breaker) observe(ctx context.Context, err error) {
	if err != nil && ctx.Err() != nil {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	switch code := syncproto.ErrorCode(err); {
	case code == syncproto.EUNAVAILABLE:
		b.trip(err)
	case code == "" || code == syncproto.ENOTFOUND || code == syncproto.ECONFLICT || code == syncproto.EINVALID:
		b.reset() // the store answered
	}
}

// Put implements BlobStore.
func (b *Breaker) Put(ctx context.Context, key string, r io.Reader, size int64, opts PutOptions) error {
	if err := b.admit(ctx); err != nil {
		return err
	}
	err := b.next.Put(ctx, key, r, size, opts)
	b.observe(ctx, err)
	return err
}

// Get implements BlobStore.
func (b *Breaker) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	if err := b.admit(ctx); err != nil {
		return nil, err
	}
	rc, err := b.next.Get(ctx, key)
	b.observe(ctx, err)
	return rc, err
}

// Stat implements BlobStore.
func (b *Breaker) Stat(ctx context.Context, key string) (BlobInfo, error) {
	if err := b.admit(ctx); err != nil {
		return BlobInfo{}, err
	}
	info, err := b.next.Stat(ctx, key)
	b.observe(ctx, err)
	return info, err
}

// List implements BlobStore.
func (b *Breaker) List(ctx context.Context, prefix string) ([]BlobInfo, error) {
	if err := b.admit(ctx); err != nil {
		return nil, err
	}
	infos, err := b.next.List(ctx, prefix)
	b.observe(ctx, err)
	return infos, err
}

// Remove implements BlobStore.
func (b *Breaker) Remove(ctx context.Context, keys ...string) error {
	if err := b.admit(ctx); err != nil {
		return err
	}
	err := b.next.Remove(ctx, keys...)
	b.observe(ctx, err)
	return err
}

// PresignGet implements BlobStore. Signing needs no round trip, but a
// link to a store that is down does not work either: while the breaker is
// open, the answer is EUNAVAILABLE like every other call's.
func (b *Breaker) PresignGet(ctx context.Context, key string, ttl time.Duration) (string, error) {
	if err := b.admit(ctx); err != nil {
		return "", err
	}
	return b.next.PresignGet(ctx, key, ttl)
}
