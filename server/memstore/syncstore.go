package memstore

import (
	"context"
	"encoding/json"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/fieldsync/fieldsync/server"
	"github.com/fieldsync/fieldsync/syncproto"
)

// DefaultLease is how long a reader waits for the writer of an allocated
// but unwritten sequence number before it fills the hole with a no-op:
// the MongoDB store's default.
const DefaultLease = 60 * time.Second

// maxInsertRounds bounds how often Insert re-allocates sequence numbers
// for entries whose slots readers filled meanwhile.
const maxInsertRounds = 16

// Data is what a database holds for the sync store: every scope's log, the
// journal of ops and batches, the conflict index and the epoch. Stores
// opened on the same Data (NewSyncStore) share it, as processes sharing a
// database do. Its methods are safe for concurrent use.
type Data struct {
	// NewID makes the epoch. Nil means a random UUIDv7; a simulation that
	// must replay from its seed sets its own before the first use.
	NewID func() uuid.UUID

	mu        sync.Mutex
	epoch     uuid.UUID
	scopes    map[string]*scopeLog
	ops       map[uuid.UUID]opEntry
	batches   map[uuid.UUID]batchEntry
	conflicts map[string][]byte    // id → JSON of server.Conflict
	claims    map[string]time.Time // maintenance run keys → when taken
}

// NewData returns empty data.
func NewData() *Data {
	return &Data{scopes: map[string]*scopeLog{}, ops: map[uuid.UUID]opEntry{}, batches: map[uuid.UUID]batchEntry{}, conflicts: map[string][]byte{}, claims: map[string]time.Time{}}
}

type opEntry struct {
	digest string
	batch  uuid.UUID
	at     time.Time
}

type batchEntry struct {
	device  uuid.UUID
	digest  string
	results []byte // JSON of []syncproto.Result
	at      time.Time
}

// Slot kinds of a log.
const (
	slotAllocated = iota // allocated, not written (yet)
	slotEntry            // a record state
	slotNoop             // a filled hole, a given-up slot or a compacted entry
)

// slot is one sequence number of a scope's log.
type slot struct {
	kind int
	at   time.Time // allocated, then written
	rid  uuid.UUID // entries, and compacted entries that keep their revision
	rev  int64
	del  bool
	st   []byte // the state's canonical JSON, for entries
}

// scopeLog is one scope's change log, which is also its record store.
type scopeLog struct {
	slots   []slot // slots[seq-1]
	horizon int64
	// revs maps each record to its taken revisions and their slots.
	revs map[uuid.UUID]map[int64]int64
}

func (d *Data) scope(name string) *scopeLog {
	l := d.scopes[name]
	if l == nil {
		l = &scopeLog{revs: map[uuid.UUID]map[int64]int64{}}
		d.scopes[name] = l
	}
	return l
}

// SyncStore implements server.SyncStore in memory. See the package
// documentation for how it keeps the contract.
type SyncStore struct {
	data *Data
	// Lease is how long a reader waits before it fills a hole.
	Lease time.Duration
	// Now is the clock of the entries' times and of the lease; tests
	// replace it.
	Now func() time.Time

	// afterAlloc, when set, runs between allocating a block and writing
	// it: a test's way into the window a slow writer leaves.
	afterAlloc func(scope string, first int64, n int)
}

var (
	_ server.SyncStore        = (*SyncStore)(nil)
	_ server.MaintenanceStore = (*SyncStore)(nil)
)

// NewSyncStore returns a store on data (new, empty data when nil) with the
// default lease and the real clock.
func NewSyncStore(data *Data) *SyncStore {
	if data == nil {
		data = NewData()
	}
	return &SyncStore{data: data, Lease: DefaultLease, Now: time.Now}
}

// Data returns the store's data, to open another store on it.
func (s *SyncStore) Data() *Data { return s.data }

func (s *SyncStore) now() time.Time { return s.Now().UTC().Truncate(time.Millisecond) }

func checkScope(scope string) error {
	if !server.ValidScope(scope) {
		return syncproto.Errorf(syncproto.EINVALID, "%q is not a scope: a school id or %q.", scope, server.RefScope)
	}
	return nil
}

// Epoch implements server.SyncStore.
func (s *SyncStore) Epoch(ctx context.Context) (uuid.UUID, error) {
	if err := ctx.Err(); err != nil {
		return uuid.Nil, err
	}
	d := s.data
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.epoch == uuid.Nil {
		if d.NewID != nil {
			d.epoch = d.NewID()
		} else {
			d.epoch = uuid.Must(uuid.NewV7())
		}
	}
	return d.epoch, nil
}

// Batch implements server.SyncStore.
func (s *SyncStore) Batch(ctx context.Context, id uuid.UUID) (server.StoredBatch, error) {
	if err := ctx.Err(); err != nil {
		return server.StoredBatch{}, err
	}
	d := s.data
	d.mu.Lock()
	b, ok := d.batches[id]
	d.mu.Unlock()
	if !ok {
		return server.StoredBatch{}, syncproto.Errorf(syncproto.ENOTFOUND, "No batch %s.", id)
	}
	out := server.StoredBatch{ID: id, Device: b.device, Digest: b.digest, At: b.at}
	if err := json.Unmarshal(b.results, &out.Results); err != nil {
		return server.StoredBatch{}, fmt.Errorf("memstore: results of batch %s: %w", id, err)
	}
	return out, nil
}

// SaveBatch implements server.SyncStore: the first answer saved for a
// batch is its answer, returned to every later caller.
func (s *SyncStore) SaveBatch(ctx context.Context, b server.StoredBatch) (server.StoredBatch, error) {
	if err := ctx.Err(); err != nil {
		return server.StoredBatch{}, err
	}
	r, err := syncproto.Marshal(b.Results)
	if err != nil {
		return server.StoredBatch{}, fmt.Errorf("memstore: save batch %s: %w", b.ID, err)
	}
	d := s.data
	d.mu.Lock()
	if _, ok := d.batches[b.ID]; !ok {
		d.batches[b.ID] = batchEntry{device: b.Device, digest: b.Digest, results: r, at: b.At.UTC().Truncate(time.Millisecond)}
	}
	d.mu.Unlock()
	return s.Batch(ctx, b.ID)
}

// ClaimOps implements server.SyncStore.
func (s *SyncStore) ClaimOps(ctx context.Context, batch uuid.UUID, ops []server.OpDigest) (map[uuid.UUID]server.ClaimedOp, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	now := s.now()
	d := s.data
	d.mu.Lock()
	defer d.mu.Unlock()
	seen := map[uuid.UUID]server.ClaimedOp{}
	for _, op := range ops {
		if e, ok := d.ops[op.OpID]; ok {
			seen[op.OpID] = server.ClaimedOp{Digest: e.digest, Batch: e.batch}
			continue
		}
		d.ops[op.OpID] = opEntry{digest: op.Digest, batch: batch, at: now}
	}
	return seen, nil
}

// ForgetJournal implements server.MaintenanceStore: it forgets the op
// ids, batch answers and maintenance claims recorded before a time, and
// returns how many it forgot.
func (s *SyncStore) ForgetJournal(ctx context.Context, before time.Time) (int64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	d := s.data
	d.mu.Lock()
	defer d.mu.Unlock()
	var n int64
	for id, op := range d.ops {
		if op.at.Before(before) {
			delete(d.ops, id)
			n++
		}
	}
	for id, b := range d.batches {
		if b.at.Before(before) {
			delete(d.batches, id)
			n++
		}
	}
	for key, at := range d.claims {
		if at.Before(before) {
			delete(d.claims, key)
			n++
		}
	}
	return n, nil
}

// Claim implements server.MaintenanceStore: the first caller with a key
// takes it, across every store on the data.
func (s *SyncStore) Claim(ctx context.Context, key string) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	d := s.data
	d.mu.Lock()
	defer d.mu.Unlock()
	if _, ok := d.claims[key]; ok {
		return false, nil
	}
	d.claims[key] = s.now()
	return true, nil
}

// Scopes implements server.MaintenanceStore: every scope with a log, and
// the last sequence number allocated in it.
func (s *SyncStore) Scopes(ctx context.Context) (map[string]int64, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	d := s.data
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make(map[string]int64, len(d.scopes))
	for name, l := range d.scopes {
		out[name] = int64(len(l.slots))
	}
	return out, nil
}

// Insert implements server.SyncStore. Per scope, it allocates a block of
// sequence numbers and then, in a second step, writes each state into its
// slot unless its revision is taken (reported in exists, and the slot
// given up as a no-op) or a reader filled the slot meanwhile (the state
// is written in a new block).
func (s *SyncStore) Insert(ctx context.Context, states []*syncproto.Record) ([]bool, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	type key struct {
		id  uuid.UUID
		rev int64
	}
	seenKeys := make(map[key]bool, len(states))
	byScope := map[string][]int{}
	var order []string
	blobs := make([][]byte, len(states))
	for i, r := range states {
		if r.Rev < 1 {
			return nil, fmt.Errorf("memstore: insert %s: rev %d: a logged state needs a revision ≥ 1", r.ID, r.Rev)
		}
		k := key{r.ID, r.Rev}
		if seenKeys[k] {
			return nil, fmt.Errorf("memstore: insert %s: revision %d appears twice in one insert", r.ID, r.Rev)
		}
		seenKeys[k] = true
		sc := server.ScopeOf(r)
		if err := checkScope(sc); err != nil {
			return nil, err
		}
		b, err := syncproto.Marshal(r)
		if err != nil {
			return nil, fmt.Errorf("memstore: insert %s: %w", r.ID, err)
		}
		blobs[i] = b
		if byScope[sc] == nil {
			order = append(order, sc)
		}
		byScope[sc] = append(byScope[sc], i)
	}
	exists := make([]bool, len(states))
	for _, sc := range order {
		if err := s.insertScope(ctx, sc, byScope[sc], states, blobs, exists); err != nil {
			return nil, err
		}
	}
	return exists, nil
}

func (s *SyncStore) insertScope(ctx context.Context, scope string, pending []int, states []*syncproto.Record, blobs [][]byte, exists []bool) error {
	d := s.data
	for round := 0; len(pending) > 0; round++ {
		if round == maxInsertRounds {
			return syncproto.Errorf(syncproto.EUNAVAILABLE, "The change log of %s is too busy; retry.", scope)
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		first := s.alloc(scope, len(pending))
		// Between allocating and writing, other writers and readers run:
		// a reader whose clock is past the lease may fill these slots.
		if s.afterAlloc != nil {
			s.afterAlloc(scope, first, len(pending))
		} else {
			runtime.Gosched()
		}
		now := s.now()
		var lost []int
		d.mu.Lock()
		l := d.scope(scope)
		for k, i := range pending {
			seq := first + int64(k)
			sl := &l.slots[seq-1]
			r := states[i]
			switch {
			case sl.kind != slotAllocated:
				lost = append(lost, i) // filled by a reader: write elsewhere
			case l.revs[r.ID][r.Rev] != 0:
				exists[i] = true
				*sl = slot{kind: slotNoop, at: now} // give the slot up at once
			default:
				*sl = slot{kind: slotEntry, at: now, rid: r.ID, rev: r.Rev, del: r.IsDeleted(), st: blobs[i]}
				revs := l.revs[r.ID]
				if revs == nil {
					revs = map[int64]int64{}
					l.revs[r.ID] = revs
				}
				revs[r.Rev] = seq
			}
		}
		d.mu.Unlock()
		pending = lost
	}
	return nil
}

// alloc allocates n consecutive sequence numbers in scope and returns the
// first.
func (s *SyncStore) alloc(scope string, n int) int64 {
	now := s.now()
	d := s.data
	d.mu.Lock()
	defer d.mu.Unlock()
	l := d.scope(scope)
	first := int64(len(l.slots)) + 1
	for range n {
		l.slots = append(l.slots, slot{kind: slotAllocated, at: now})
	}
	return first
}

// Reserve allocates n sequence numbers in scope and writes nothing: what
// a writer killed between allocating and writing leaves behind. It is for
// tests of the hole filling.
func (s *SyncStore) Reserve(ctx context.Context, scope string, n int) (first int64, err error) {
	if err := checkScope(scope); err != nil {
		return 0, err
	}
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	return s.alloc(scope, n), nil
}

func decodeState(b []byte) (*syncproto.Record, error) {
	var r syncproto.Record
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("memstore: decode state: %w", err)
	}
	return &r, nil
}

// Current implements server.SyncStore.
func (s *SyncStore) Current(ctx context.Context, scope string, id uuid.UUID) (*syncproto.Record, error) {
	if err := checkScope(scope); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	d := s.data
	d.mu.Lock()
	var st []byte
	if l := d.scopes[scope]; l != nil {
		best := int64(0)
		for rev, seq := range l.revs[id] {
			if sl := l.slots[seq-1]; sl.kind == slotEntry && rev > best {
				best, st = rev, sl.st
			}
		}
	}
	d.mu.Unlock()
	if st == nil {
		return nil, syncproto.Errorf(syncproto.ENOTFOUND, "No record %s in %s.", id, scope)
	}
	return decodeState(st)
}

// Changes implements server.SyncStore. It hands out the contiguous prefix
// of written slots after the position, filling the holes whose allocation
// is older than the lease on the way, and stops before a younger hole, at
// the limit, or before a state that would take the page's JSON beyond
// maxBytes (a page holds one state at least).
func (s *SyncStore) Changes(ctx context.Context, scope string, after int64, limit int, maxBytes int64) (server.ChangesPage, error) {
	if err := checkScope(scope); err != nil {
		return server.ChangesPage{}, err
	}
	if after < 0 {
		return server.ChangesPage{}, syncproto.Errorf(syncproto.EINVALID, "A log position is not negative.")
	}
	if err := ctx.Err(); err != nil {
		return server.ChangesPage{}, err
	}
	limit = max(limit, 1)
	page := server.ChangesPage{Pos: after}
	now := s.now()
	var blobs [][]byte
	d := s.data
	d.mu.Lock()
	var end int64
	l := d.scopes[scope]
	if l != nil {
		end = int64(len(l.slots))
	}
	if after > end {
		// A position beyond every number allocated cannot have been
		// handed out: a phone holding it would skip what comes next.
		d.mu.Unlock()
		return server.ChangesPage{}, syncproto.StartOverError()
	}
scan:
	for seq := after + 1; seq <= end; seq++ {
		if len(blobs) >= limit {
			page.More = true
			break
		}
		sl := &l.slots[seq-1]
		switch sl.kind {
		case slotAllocated:
			if now.Sub(sl.at) < s.Lease {
				break scan // its writer may still be writing
			}
			*sl = slot{kind: slotNoop, at: now}
		case slotEntry:
			if len(blobs) > 0 && page.Bytes+int64(len(sl.st)) > maxBytes {
				page.More = true
				break scan
			}
			blobs = append(blobs, sl.st)
			page.Bytes += int64(len(sl.st))
		}
		page.Pos = seq
	}
	d.mu.Unlock()
	if len(blobs) >= limit {
		page.More = true
	}
	page.Records = make([]*syncproto.Record, len(blobs))
	for i, b := range blobs {
		r, err := decodeState(b)
		if err != nil {
			return server.ChangesPage{}, err
		}
		page.Records[i] = r
	}
	return page, nil
}

// Horizons implements server.SyncStore.
func (s *SyncStore) Horizons(ctx context.Context, scopes []string) (map[string]int64, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	d := s.data
	d.mu.Lock()
	defer d.mu.Unlock()
	out := map[string]int64{}
	for _, sc := range scopes {
		if l := d.scopes[sc]; l != nil && l.horizon > 0 {
			out[sc] = l.horizon
		}
	}
	return out, nil
}

// Compact implements server.SyncStore, with the rules of server/mongo:
// the entries of superseded revisions become no-ops that keep their
// revision taken; a deleted record whose deleting entry is older than
// opt.TombstonesBefore is forgotten (its revisions freed) and the horizon
// raised above it.
func (s *SyncStore) Compact(ctx context.Context, scope string, opt server.CompactOptions) (server.CompactResult, error) {
	if err := checkScope(scope); err != nil {
		return server.CompactResult{}, err
	}
	if err := ctx.Err(); err != nil {
		return server.CompactResult{}, err
	}
	now := s.now()
	d := s.data
	d.mu.Lock()
	defer d.mu.Unlock()
	l := d.scope(scope)
	within := func(seq int64) bool { return opt.UpTo <= 0 || seq <= opt.UpTo }
	var res server.CompactResult
	// Records in a fixed order, so that compaction does the same whatever
	// the map's order.
	ids := make([]uuid.UUID, 0, len(l.revs))
	for id := range l.revs {
		ids = append(ids, id)
	}
	slices.SortFunc(ids, func(a, b uuid.UUID) int { return slices.Compare(a[:], b[:]) })
	for _, id := range ids {
		var live []int64 // the revisions whose entries are live, ascending
		for rev, seq := range l.revs[id] {
			if l.slots[seq-1].kind == slotEntry {
				live = append(live, rev)
			}
		}
		if len(live) == 0 {
			continue
		}
		slices.Sort(live)
		latestRev := live[len(live)-1]
		latest := l.slots[l.revs[id][latestRev]-1]
		maxSeq := int64(0)
		for _, rev := range live {
			maxSeq = max(maxSeq, l.revs[id][rev])
		}
		if latest.del && !opt.TombstonesBefore.IsZero() && latest.at.Before(opt.TombstonesBefore) && within(maxSeq) {
			// Forget the record: plain no-ops free its revisions, so a
			// phone that edits it later creates it anew at rev 1.
			for _, rev := range live {
				l.slots[l.revs[id][rev]-1] = slot{kind: slotNoop, at: now}
			}
			l.horizon = max(l.horizon, l.revs[id][latestRev])
			delete(l.revs, id)
			res.Tombstones++
			res.Superseded += len(live) - 1
			continue
		}
		for _, rev := range live[:len(live)-1] {
			if seq := l.revs[id][rev]; within(seq) {
				// The revision stays taken (l.revs keeps it).
				l.slots[seq-1] = slot{kind: slotNoop, at: now, rid: id, rev: rev}
				res.Superseded++
			}
		}
	}
	res.Horizon = l.horizon
	return res, nil
}

// PutConflict implements server.SyncStore.
func (s *SyncStore) PutConflict(ctx context.Context, c server.Conflict) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	d := s.data
	d.mu.Lock()
	defer d.mu.Unlock()
	if old, ok := d.conflicts[c.ID]; ok {
		prev, err := decodeConflict(old)
		if err != nil {
			return err
		}
		c.DetectedAt = prev.DetectedAt
	}
	if c.ResolvedAt == nil {
		c.ResolvedBy = ""
	} else {
		t := c.ResolvedAt.UTC().Truncate(time.Millisecond)
		c.ResolvedAt = &t
	}
	c.DetectedAt = c.DetectedAt.UTC().Truncate(time.Millisecond)
	c.UpdatedAt = c.UpdatedAt.UTC().Truncate(time.Millisecond)
	b, err := json.Marshal(c)
	if err != nil {
		return fmt.Errorf("memstore: put conflict %s: %w", c.ID, err)
	}
	d.conflicts[c.ID] = b
	return nil
}

func decodeConflict(b []byte) (server.Conflict, error) {
	var c server.Conflict
	if err := json.Unmarshal(b, &c); err != nil {
		return server.Conflict{}, fmt.Errorf("memstore: decode conflict: %w", err)
	}
	return c, nil
}

// Conflict implements server.SyncStore.
func (s *SyncStore) Conflict(ctx context.Context, id string) (server.Conflict, error) {
	if err := ctx.Err(); err != nil {
		return server.Conflict{}, err
	}
	d := s.data
	d.mu.Lock()
	b, ok := d.conflicts[id]
	d.mu.Unlock()
	if !ok {
		return server.Conflict{}, syncproto.Errorf(syncproto.ENOTFOUND, "No conflict %s.", id)
	}
	return decodeConflict(b)
}

// Conflicts implements server.SyncStore.
func (s *SyncStore) Conflicts(ctx context.Context, f server.ConflictFilter) ([]server.Conflict, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	d := s.data
	d.mu.Lock()
	blobs := make([][]byte, 0, len(d.conflicts))
	for _, b := range d.conflicts {
		blobs = append(blobs, b)
	}
	d.mu.Unlock()
	var out []server.Conflict
	for _, b := range blobs {
		c, err := decodeConflict(b)
		if err != nil {
			return nil, err
		}
		if (f.Status != "" && c.Status != f.Status) || (f.Scope != "" && c.Scope != f.Scope) || (f.RecordID != uuid.Nil && c.RecordID != f.RecordID) {
			continue
		}
		out = append(out, c)
	}
	server.SortConflicts(out)
	if f.Limit > 0 && len(out) > f.Limit {
		out = out[:f.Limit]
	}
	return out, nil
}
