package mobiletest

import (
	"encoding/binary"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/google/uuid"
)

// Clock is a clock that moves only when told: a simulation's time, the
// same on every run. Safe for concurrent use.
type Clock struct {
	mu sync.Mutex
	t  time.Time
}

// NewClock returns a clock that stands at t until moved.
func NewClock(t time.Time) *Clock { return &Clock{t: t} }

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

// Advance moves the clock forward by d.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// IDs makes UUIDv7s from a seeded source and a clock instead of the
// system's randomness and time, so that the same seed, with the same
// clock readings, gives the same ids in the same order. Like uuid.NewV7,
// ids are in order of creation: within one millisecond the 12 bits after
// the version count up. Safe for concurrent use (but only calls in a
// fixed order replay).
type IDs struct {
	mu   sync.Mutex
	rng  *rand.Rand
	now  func() time.Time
	ms   int64 // the millisecond of the last id
	step int64 // ids made in that millisecond
}

// NewIDs returns a source of ids drawn from seed, stamped with now's
// time.
func NewIDs(seed uint64, now func() time.Time) *IDs {
	return &IDs{rng: rand.New(rand.NewPCG(seed, 0x1d5)), now: now}
}

// New returns the next id.
func (g *IDs) New() uuid.UUID {
	g.mu.Lock()
	defer g.mu.Unlock()
	ms := g.now().UnixMilli()
	if ms <= g.ms {
		// The same millisecond (or a clock set back): count up, and move
		// to the next millisecond when the counter is full.
		g.step++
		if g.step == 1<<12 {
			g.ms, g.step = g.ms+1, 0
		}
		ms = g.ms
	} else {
		g.ms, g.step = ms, 0
	}
	var id uuid.UUID
	binary.BigEndian.PutUint64(id[8:], g.rng.Uint64())
	binary.BigEndian.PutUint64(id[:8], uint64(ms)<<16|uint64(g.step))
	id[6] = 0x70 | id[6]&0x0f // version 7, the counter's top 4 bits
	id[8] = 0x80 | id[8]&0x3f // RFC 4122 variant
	return id
}
