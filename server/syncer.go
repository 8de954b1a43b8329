package server

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/fieldsync/fieldsync/internal/parallel"
	"github.com/fieldsync/fieldsync/syncproto"
	"github.com/google/uuid"
)

// DefaultSyncLimits returns the push and pull limits a Syncer advertises
// unless told otherwise. The media limits (ChunkBytes, MaxBlobSize) are
// the media service's and are left zero here; the wiring copies them in.
func DefaultSyncLimits() syncproto.Limits {
	return syncproto.Limits{MaxChanges: 500, MaxBytes: 16 << 20, MaxPull: 1000, MaxRecordBytes: 2 << 20, MaxPullBytes: 8 << 20}
}

// Syncer implements SyncService on a SyncStore. It holds the protocol
// logic that does not depend on the database: grouping a batch by record,
// the exactly-once bookkeeping, syncproto.Decide, server-set fields,
// validation, conflict indexing, cursors and scopes.
//
// A push runs in a fixed number of round trips for a batch of new
// records, whatever its size: the stored answer is looked up by batch id;
// the op ids are claimed in one insert; every record the phone had no
// version of (an empty Base) is tried as new (rev 1) in one insert per
// scope; the answer is stored. Edits of records the phone had, and records
// that turn out to exist already, take the slow path: read the current
// state, Decide, insert the next revision, and retry after a lost race.
type Syncer struct {
	Store SyncStore
	// Access says who may see and write what.
	Access *Access
	// Validator, when set, checks every state before it is written.
	Validator RecordValidator
	// Limits are advertised by Info; MaxChanges and MaxPull are enforced
	// here, MaxBytes by the HTTP layer (it never reaches the service).
	Limits syncproto.Limits
	// Now is the server clock.
	Now func() time.Time
	// Replica is the server's office identity in version vectors: the
	// replica that writes conflict resolutions.
	Replica syncproto.ReplicaID
	// Workers bounds the concurrent store reads of the slow path.
	Workers int
	// MaxAttempts bounds how often one record is retried after losing a
	// race for its next revision before the push fails with EUNAVAILABLE.
	MaxAttempts int
	// BatchWait is how long a push waits for the answer to a copy of
	// itself that another request is applying (the same batch sent twice
	// at once) before it applies the batch again.
	BatchWait time.Duration
	Logger    *slog.Logger
	// Stored, when set, is called after a push with every record state
	// the push wrote, and with the stored state of changes that turned
	// out to be already applied (so a crash between the write and the
	// hook is repaired by the phone's retry). The media service notes the
	// photos each record expects here. An error fails the push, which the
	// phone retries; the hook must therefore be idempotent.
	Stored func(ctx context.Context, states []*syncproto.Record) error

	mu    sync.Mutex
	clock syncproto.HLC // the office replica's clock
}

var _ SyncService = (*Syncer)(nil)

// NewSyncer returns a Syncer with the default limits and the real clock,
// whose Access knows no assignments (set Access.Assigned).
func NewSyncer(store SyncStore, replica syncproto.ReplicaID) *Syncer {
	return &Syncer{
		Store: store, Access: &Access{}, Limits: DefaultSyncLimits(), Now: time.Now, Replica: replica,
		Workers: 4, MaxAttempts: 16, BatchWait: 10 * time.Second, Logger: slog.New(slog.DiscardHandler),
	}
}

func (s *Syncer) now() time.Time { return s.Now().UTC().Truncate(time.Millisecond) }

// Info implements SyncService.
func (s *Syncer) Info(ctx context.Context) (syncproto.Info, error) {
	epoch, err := s.Store.Epoch(ctx)
	if err != nil {
		return syncproto.Info{}, err
	}
	return syncproto.Info{Protocol: syncproto.ProtocolVersion, Epoch: epoch, Limits: s.Limits, ServerTime: s.now()}, nil
}

// BatchDigest identifies a push batch's content: a sha256 over its op ids
// and their changes' digests, in order.
func BatchDigest(req syncproto.PushRequest, digests []string) string {
	h := sha256.New()
	fmt.Fprintf(h, "%s\n", req.DeviceID)
	for i, ch := range req.Changes {
		fmt.Fprintf(h, "%s %s\n", ch.OpID, digests[i])
	}
	return hex.EncodeToString(h.Sum(nil))
}

// group is the changes of one record in a batch, folded into one delta.
type group struct {
	id       uuid.UUID
	scope    string
	idx      []int // request indexes of the changes folded in
	delta    *syncproto.Record
	base     syncproto.Vector
	wire     int64 // the size of the changes folded in, as encoded (0: unknown)
	replayed bool  // every change folded in was applied before (same op id and digest)
	again    bool  // … by another batch: reported duplicate if it changes nothing

	stored *syncproto.Record // the current state, on the slow path
	state  *syncproto.Record // the state to insert
	d      syncproto.Decision
	rerr   error // a store read error

	done      bool
	status    string
	rev       int64
	conflicts []string
	err       *syncproto.Error // rejection of every change in the group
}

// Push implements SyncService.
func (s *Syncer) Push(ctx context.Context, p Principal, req syncproto.PushRequest, rejected map[int]*syncproto.Error) (syncproto.PushResponse, error) {
	now := s.now()
	if p.IsDevice() && req.DeviceID != p.DeviceID {
		return syncproto.PushResponse{}, syncproto.Errorf(syncproto.EFORBIDDEN, "device_id %s is not the device of this token.", req.DeviceID)
	}
	if max := s.Limits.MaxChanges; max > 0 && len(req.Changes) > max {
		return syncproto.PushResponse{}, syncproto.Errorf(syncproto.ETOOLARGE, "A push holds at most %d changes; this one has %d. Send smaller batches.", max, len(req.Changes))
	}
	if req.BatchID == uuid.Nil {
		return syncproto.PushResponse{}, syncproto.Errorf(syncproto.EINVALID, "batch_id is required.")
	}
	g, err := s.Access.Grant(ctx, p)
	if err != nil {
		return syncproto.PushResponse{}, err
	}
	// The stored answer is looked up while the digests are computed.
	type found struct {
		b   StoredBatch
		err error
	}
	lookup := make(chan found, 1)
	go func() {
		b, err := s.Store.Batch(ctx, req.BatchID)
		lookup <- found{b, err}
	}()
	digests := make([]string, len(req.Changes))
	sizes := make([]int, len(req.Changes))
	// The digests are the batch's main CPU work; the database waits
	// meanwhile.
	_ = parallel.Do(len(req.Changes), func(i int) error { digests[i], sizes[i] = req.Changes[i].DigestSize(); return nil })
	bd := BatchDigest(req, digests)

	// A batch answered before gets the same answer, and nothing is written.
	f := <-lookup
	switch b, err := f.b, f.err; {
	case err == nil:
		return s.answer(req, b, bd, now)
	case syncproto.ErrorCode(err) != syncproto.ENOTFOUND:
		return syncproto.PushResponse{}, err
	}

	results := make([]syncproto.Result, len(req.Changes))
	reject := func(i int, e *syncproto.Error) {
		results[i] = syncproto.Result{OpID: req.Changes[i].OpID, Status: syncproto.StatusRejected, Error: e}
	}
	valid := make([]bool, len(req.Changes))
	var ops []OpDigest
	for i, ch := range req.Changes {
		results[i].OpID = ch.OpID
		var e *syncproto.Error
		switch {
		case rejected[i] != nil:
			e = rejected[i]
		case ch.OpID == uuid.Nil || ch.Record == nil:
			e = syncproto.Errorf(syncproto.EINVALID, "Change %d needs an op_id and a record.", i)
		case !g.Allows(ScopeOf(ch.Record)):
			e = forbidden(ch.Record)
		default:
			e = admitChange(p, ch.Record, now)
		}
		if e != nil {
			reject(i, e)
			continue
		}
		valid[i] = true
		ops = append(ops, OpDigest{OpID: ch.OpID, Digest: digests[i]})
	}

	// Claim the op ids before writing anything: an op id known with other
	// content is refused, one known with the same content is re-applied
	// (a join: harmless) and reported duplicate if it changes nothing.
	seen := map[uuid.UUID]ClaimedOp{}
	if len(ops) > 0 {
		var err error
		if seen, err = s.Store.ClaimOps(ctx, req.BatchID, ops); err != nil {
			return syncproto.PushResponse{}, err
		}
	}
	// Every op claimed before by this very batch: a copy of the batch is
	// being applied (sent twice at once, to this server or another), or
	// was, by a process that died before answering. Wait for its answer,
	// so that both copies get the one answer; if none comes, apply the
	// batch again (a join, which writes nothing new).
	if len(ops) > 0 && len(seen) == len(ops) && s.claimedBy(seen, req.BatchID) {
		if b, ok, err := s.awaitBatch(ctx, req.BatchID); err != nil {
			return syncproto.PushResponse{}, err
		} else if ok {
			return s.answer(req, b, bd, now)
		}
	}
	replayed := make([]bool, len(req.Changes))
	again := make([]bool, len(req.Changes))
	for i, ch := range req.Changes {
		if !valid[i] {
			continue
		}
		if c, ok := seen[ch.OpID]; ok {
			if c.Digest != digests[i] {
				valid[i] = false
				reject(i, syncproto.Errorf(syncproto.EOPREUSED, "Op %s was applied before with other content; send the change under a new op id.", ch.OpID))
				continue
			}
			replayed[i] = true
			again[i] = c.Batch != req.BatchID
		}
	}

	groups := s.fold(req, valid, replayed, again, reject, now)
	for _, gr := range groups {
		for _, i := range gr.idx {
			gr.wire += int64(sizes[i])
		}
	}
	if err := s.apply(ctx, p, groups, now); err != nil {
		return syncproto.PushResponse{}, err
	}
	for _, gr := range groups {
		for _, i := range gr.idx {
			if gr.err != nil {
				reject(i, gr.err)
				continue
			}
			results[i] = syncproto.Result{OpID: req.Changes[i].OpID, Status: gr.status, Rev: gr.rev, Conflicts: gr.conflicts}
		}
	}
	// The first answer saved is the answer: a copy of the batch applied at
	// the same moment gets it too.
	stored, err := s.Store.SaveBatch(ctx, StoredBatch{ID: req.BatchID, Device: req.DeviceID, Digest: bd, Results: results, At: now})
	if err != nil {
		return syncproto.PushResponse{}, err
	}
	return s.answer(req, stored, bd, now)
}

// answer returns a stored answer to the batch req, whose digest is bd.
func (s *Syncer) answer(req syncproto.PushRequest, b StoredBatch, bd string, now time.Time) (syncproto.PushResponse, error) {
	if b.Digest != bd {
		return syncproto.PushResponse{}, syncproto.Errorf(syncproto.EOPREUSED, "Batch %s was sent before with other changes.", req.BatchID)
	}
	return syncproto.PushResponse{Protocol: syncproto.ProtocolVersion, Results: b.Results, ServerTime: now}, nil
}

func (s *Syncer) claimedBy(seen map[uuid.UUID]ClaimedOp, batch uuid.UUID) bool {
	for _, c := range seen {
		if c.Batch != batch {
			return false
		}
	}
	return true
}

// awaitBatch waits up to BatchWait for the answer to a batch that another
// request is applying, and reports whether it came.
func (s *Syncer) awaitBatch(ctx context.Context, id uuid.UUID) (StoredBatch, bool, error) {
	deadline := time.Now().Add(s.BatchWait)
	for wait := 20 * time.Millisecond; ; wait = min(2*wait, 500*time.Millisecond) {
		b, err := s.Store.Batch(ctx, id)
		switch {
		case err == nil:
			return b, true, nil
		case syncproto.ErrorCode(err) != syncproto.ENOTFOUND:
			return StoredBatch{}, false, err
		case time.Now().Add(wait).After(deadline):
			return StoredBatch{}, false, nil
		}
		select {
		case <-ctx.Done():
			return StoredBatch{}, false, ctx.Err()
		case <-time.After(wait):
		}
	}
}

func forbidden(r *syncproto.Record) *syncproto.Error {
	if r.SchoolID == "" {
		return syncproto.Errorf(syncproto.EFORBIDDEN, "Record %s has no school: only the office writes reference data.", r.ID)
	}
	return syncproto.Errorf(syncproto.EFORBIDDEN, "Record %s belongs to school %s, which is not assigned to you.", r.ID, r.SchoolID)
}

// fold groups the valid changes by record, in order of first appearance,
// merges each group's deltas and stamps the server-set fields.
func (s *Syncer) fold(req syncproto.PushRequest, valid, replayed, again []bool, reject func(int, *syncproto.Error), now time.Time) []*group {
	var groups []*group
	byID := map[uuid.UUID]*group{}
	for i, ch := range req.Changes {
		if !valid[i] {
			continue
		}
		gr := byID[ch.Record.ID]
		if gr == nil {
			gr = &group{id: ch.Record.ID, scope: ScopeOf(ch.Record), delta: ch.Record, base: ch.Base, replayed: true, again: true}
			byID[gr.id] = gr
			groups = append(groups, gr)
		} else {
			m, err := syncproto.Merge(gr.delta, ch.Record)
			if err != nil {
				reject(i, asProtoError(err))
				continue
			}
			gr.delta, gr.base = m, gr.base.Merge(ch.Base)
		}
		gr.idx = append(gr.idx, i)
		gr.replayed = gr.replayed && replayed[i]
		gr.again = gr.again && again[i]
	}
	for _, gr := range groups {
		gr.delta = stamp(gr.delta, now)
	}
	return groups
}

// stamp returns a shallow copy of a delta with no Rev (the store numbers
// revisions) and the clock_skew flag when a stamp is too far ahead. The
// delta itself, which may be the caller's, is not modified. Arrival times
// are set against the stored state just before each decision, by
// syncproto.StampArrival: what the stored state holds keeps its stored
// arrival time, the rest arrives now. A change applied before and sent
// again (by a phone that timed out, or twice at once to two servers whose
// clocks differ) therefore changes nothing and is not written again.
func stamp(r *syncproto.Record, now time.Time) *syncproto.Record {
	c := *r
	c.Rev = 0
	if skewed(r, now) && !slices.Contains(r.Flags, FlagClockSkew) {
		c.Flags = append(slices.Clone(r.Flags), FlagClockSkew)
		slices.Sort(c.Flags)
	}
	return &c
}

// skewed reports whether any stamp in r is more than MaxClockSkew ahead of now.
func skewed(r *syncproto.Record, now time.Time) bool {
	limit := now.Add(MaxClockSkew).UnixMilli()
	for _, f := range r.Fields {
		for _, v := range f {
			if v.HLC.Wall > limit {
				return true
			}
		}
	}
	for _, v := range r.Deleted {
		if v.HLC.Wall > limit {
			return true
		}
	}
	for _, items := range r.Items {
		for _, it := range items {
			if it.HLC.Wall > limit {
				return true
			}
		}
	}
	return false
}

func asProtoError(err error) *syncproto.Error {
	var e *syncproto.Error
	if errors.As(err, &e) {
		return e
	}
	return syncproto.Errorf(syncproto.EINVALID, "%v", err)
}

// tooLarge refuses a state beyond Limits.MaxRecordBytes: every state
// must stay small enough to be pulled (a pull page holds at least one).
func (s *Syncer) tooLarge(r *syncproto.Record) *syncproto.Error {
	max := s.Limits.MaxRecordBytes
	if max <= 0 {
		return nil
	}
	b, err := syncproto.Marshal(r)
	if err != nil {
		return asProtoError(err)
	}
	if n := int64(len(b)); n > max {
		return syncproto.Errorf(syncproto.ETOOLARGE, "Record %s would hold %d KB, more than the %d KB a record may hold. Split it into several records; photos go as photos, not in fields.", r.ID, n>>10, max>>10)
	}
	return nil
}

// tooLargeNew is tooLarge for the state of a new record made of the
// group's changes, without encoding it when its changes are known to be
// small enough: the state holds what the changes held (their encoding
// bounds it, op ids and bases included) plus the server's stamps (an
// arrival time per item and on the record, the revision, a flag).
func (s *Syncer) tooLargeNew(gr *group, st *syncproto.Record) *syncproto.Error {
	if max := s.Limits.MaxRecordBytes; gr.wire > 0 && max > 0 {
		items := 0
		for _, it := range st.Items {
			items += len(it)
		}
		if gr.wire+stampBytes*int64(items+2) <= max {
			return nil
		}
	}
	return s.tooLarge(st)
}

// stampBytes bounds what one server stamp adds to a record's encoding
// (`,"server_received_at":"2006-01-02T15:04:05.000Z"` is 48 bytes).
const stampBytes = 96

func (s *Syncer) validate(ctx context.Context, r *syncproto.Record) *syncproto.Error {
	if s.Validator == nil {
		return nil
	}
	return s.Validator.ValidateRecord(ctx, r)
}

// apply writes the groups: first all as new records in one Insert, then
// the ones that exist through the slow path.
func (s *Syncer) apply(ctx context.Context, p Principal, groups []*group, now time.Time) error {
	if err := s.write(ctx, p, groups, now); err != nil {
		return err
	}
	if s.Stored == nil {
		return nil
	}
	var states []*syncproto.Record
	for _, gr := range groups {
		switch {
		case !gr.done || gr.err != nil:
		case gr.state != nil:
			states = append(states, gr.state)
		case gr.stored != nil:
			states = append(states, gr.stored)
		}
	}
	if len(states) == 0 {
		return nil
	}
	return s.Stored(ctx, states)
}

// write inserts the groups' states: new records in one insert, the rest
// through read, Decide and compare-and-set.
func (s *Syncer) write(ctx context.Context, p Principal, groups []*group, now time.Time) error {
	var fast []*group
	var slow []*group
	for _, gr := range groups {
		if !gr.base.IsEmpty() || gr.replayed {
			// The phone had a version of the record, or sent this change
			// before: the record most likely exists. Trying it as new
			// would only waste a log slot and a round trip.
			slow = append(slow, gr)
			continue
		}
		st := *syncproto.StampArrival(nil, gr.delta, now)
		st.Rev = 1
		if e := s.tooLargeNew(gr, &st); e != nil {
			gr.done, gr.err = true, e
			continue
		}
		if admitOn(p, nil, gr.delta, now) != nil || s.validate(ctx, &st) != nil {
			// Maybe the stored record completes it: decide on the slow path.
			slow = append(slow, gr)
			continue
		}
		gr.state = &st
		fast = append(fast, gr)
	}
	if len(fast) > 0 {
		states := make([]*syncproto.Record, len(fast))
		for i, gr := range fast {
			states[i] = gr.state
		}
		exists, err := s.Store.Insert(ctx, states)
		if err != nil {
			return err
		}
		for i, gr := range fast {
			if exists[i] {
				gr.state = nil
				slow = append(slow, gr)
				continue
			}
			gr.done, gr.status, gr.rev = true, syncproto.StatusApplied, 1
			if err := s.indexConflicts(ctx, nil, gr.state); err != nil {
				return err
			}
		}
	}
	attempts := max(s.MaxAttempts, 1)
	for round := 0; len(slow) > 0; round++ {
		if round == attempts {
			return syncproto.Errorf(syncproto.EUNAVAILABLE, "Record %s is being written by others too often; retry the batch.", slow[0].id)
		}
		if err := s.readCurrent(ctx, slow); err != nil {
			return err
		}
		var ins []*group
		for _, gr := range slow {
			if e := admitOn(p, gr.stored, gr.delta, now); e != nil {
				gr.done, gr.err = true, e
				continue
			}
			d, err := syncproto.Decide(gr.stored, syncproto.StampArrival(gr.stored, gr.delta, now), gr.base)
			if err != nil {
				gr.done, gr.err = true, asProtoError(err)
				continue
			}
			if !d.Changed {
				gr.state = nil // nothing to insert: the stored state stands
				gr.done, gr.status, gr.rev = true, d.Status, gr.stored.Rev
				if gr.again {
					gr.status = syncproto.StatusDuplicate
				}
				// Re-index in case a crash came between the write and the
				// index on an earlier attempt (an upsert: idempotent).
				if err := s.indexConflicts(ctx, nil, gr.stored); err != nil {
					return err
				}
				continue
			}
			d.Merged.Rev = 1
			if gr.stored != nil {
				d.Merged.Rev = gr.stored.Rev + 1
			}
			if e := s.tooLarge(d.Merged); e != nil {
				gr.done, gr.err = true, e
				continue
			}
			if e := s.validate(ctx, d.Merged); e != nil {
				if e.Code == syncproto.EUNAVAILABLE || e.Code == syncproto.EINTERNAL {
					// The validator could not decide (its store is down):
					// fail the push so the phone retries, rather than
					// reject a change that may be valid.
					return e
				}
				gr.done, gr.err = true, e
				continue
			}
			gr.d, gr.state = d, d.Merged
			ins = append(ins, gr)
		}
		slow = slow[:0]
		if len(ins) == 0 {
			break
		}
		states := make([]*syncproto.Record, len(ins))
		for i, gr := range ins {
			states[i] = gr.state
		}
		exists, err := s.Store.Insert(ctx, states)
		if err != nil {
			return err
		}
		for i, gr := range ins {
			if exists[i] {
				slow = append(slow, gr) // lost the race for this revision: read again
				continue
			}
			gr.done, gr.status, gr.rev, gr.conflicts = true, gr.d.Status, gr.state.Rev, gr.d.Conflicts
			if err := s.indexConflicts(ctx, gr.stored, gr.state); err != nil {
				return err
			}
		}
	}
	return nil
}

// readCurrent reads the current state of each group's record, a few at a
// time.
func (s *Syncer) readCurrent(ctx context.Context, groups []*group) error {
	sem := make(chan struct{}, max(s.Workers, 1))
	var wg sync.WaitGroup
	for _, gr := range groups {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			r, err := s.Store.Current(ctx, gr.scope, gr.id)
			switch {
			case err == nil:
				gr.stored, gr.rerr = r, nil
			case syncproto.ErrorCode(err) == syncproto.ENOTFOUND:
				gr.stored, gr.rerr = nil, nil
			default:
				gr.rerr = err
			}
		}()
	}
	wg.Wait()
	for _, gr := range groups {
		if gr.rerr != nil {
			return gr.rerr
		}
	}
	return nil
}

// conflictVersions returns the versions of a field, or of the deletion
// register for "deleted".
func conflictVersions(r *syncproto.Record, field string) syncproto.Field {
	if r == nil {
		return nil
	}
	if field == "deleted" {
		if _, ok := r.Fields["deleted"]; !ok {
			return r.Deleted
		}
	}
	return r.Fields[field]
}

func sameVersions(a, b syncproto.Field) bool { return slices.EqualFunc(a, b, sameVersion) }

// indexConflicts brings the conflict index up to date after a record went
// from state old (nil when new) to state next: fields newly in conflict,
// or in conflict with other versions, are indexed open; fields no longer
// in conflict are marked resolved.
func (s *Syncer) indexConflicts(ctx context.Context, old, next *syncproto.Record) error {
	var was []string
	if old != nil {
		was = old.ConflictFields()
	}
	now := s.now()
	is := next.ConflictFields()
	for _, f := range is {
		vs := conflictVersions(next, f)
		if old != nil && slices.Contains(was, f) && sameVersions(vs, conflictVersions(old, f)) {
			continue
		}
		c := Conflict{
			ID: ConflictID(next.ID, f), RecordID: next.ID, Kind: next.Kind, Scope: ScopeOf(next), Field: f,
			Status: ConflictOpen, Rev: next.Rev, Versions: vs, DetectedAt: now, UpdatedAt: now,
		}
		if err := s.Store.PutConflict(ctx, c); err != nil {
			return err
		}
	}
	for _, f := range was {
		if slices.Contains(is, f) {
			continue
		}
		resolver := ""
		if w, ok := conflictVersions(next, f).Winner(); ok {
			resolver = w.Author
		}
		t := now
		c := Conflict{
			ID: ConflictID(next.ID, f), RecordID: next.ID, Kind: next.Kind, Scope: ScopeOf(next), Field: f,
			Status: ConflictResolved, Rev: next.Rev, Versions: conflictVersions(old, f), DetectedAt: now, UpdatedAt: now,
			ResolvedAt: &t, ResolvedBy: resolver,
		}
		if err := s.Store.PutConflict(ctx, c); err != nil {
			return err
		}
	}
	return nil
}

// Pull implements SyncService.
func (s *Syncer) Pull(ctx context.Context, p Principal, req syncproto.PullRequest, cur syncproto.Cursor) (syncproto.PullResponse, error) {
	scopes, err := s.Access.PullScopes(ctx, p)
	if err != nil {
		return syncproto.PullResponse{}, err
	}
	return s.pull(ctx, scopes, req, cur)
}

// pull reads the next states after cur in scopes.
func (s *Syncer) pull(ctx context.Context, scopes []string, req syncproto.PullRequest, cur syncproto.Cursor) (syncproto.PullResponse, error) {
	now := s.now()
	epoch, err := s.Store.Epoch(ctx)
	if err != nil {
		return syncproto.PullResponse{}, err
	}
	if (cur.Epoch != uuid.Nil || len(cur.Pos) > 0) && cur.Epoch != epoch {
		return syncproto.PullResponse{}, syncproto.StartOverError()
	}
	allowed := slices.Clone(scopes)
	slices.Sort(allowed)
	allowed = slices.Compact(allowed)
	for _, sc := range allowed {
		if !ValidScope(sc) {
			return syncproto.PullResponse{}, syncproto.Errorf(syncproto.EINVALID, "%q is not a scope: a school id or %q.", sc, RefScope)
		}
	}
	want := allowed
	if len(req.Scope) > 0 {
		want = nil
		for _, sc := range req.Scope {
			if !ValidScope(sc) {
				return syncproto.PullResponse{}, syncproto.Errorf(syncproto.EINVALID, "%q is not a scope: a school id or %q.", sc, RefScope)
			}
			if _, ok := slices.BinarySearch(allowed, sc); !ok {
				return syncproto.PullResponse{}, syncproto.Errorf(syncproto.EFORBIDDEN, "You may not pull scope %s.", sc)
			}
			want = append(want, sc)
		}
		slices.Sort(want)
		want = slices.Compact(want)
	}
	limit := req.Limit
	if max := s.Limits.MaxPull; limit <= 0 || (max > 0 && limit > max) {
		limit = max
	}
	if limit <= 0 {
		limit = DefaultSyncLimits().MaxPull
	}
	if err := s.checkHorizons(ctx, want, cur); err != nil {
		return syncproto.PullResponse{}, err
	}
	if pp, ok := s.Store.(PullPlanner); ok {
		if ctx, err = pp.PlanPull(ctx, want); err != nil {
			return syncproto.PullResponse{}, err
		}
	}

	next := syncproto.Cursor{Epoch: epoch, Pos: map[string]int64{}}
	for _, sc := range allowed {
		if pos := cur.Pos[sc]; pos > 0 {
			next.Pos[sc] = pos
		}
	}
	var recs []*syncproto.Record
	more := false
	bytes := s.Limits.MaxPullBytes
	if bytes <= 0 {
		bytes = DefaultSyncLimits().MaxPullBytes
	}
	// Start at the scope where the last page stopped, and wrap around:
	// every scope is still read on every call until the page is full, but
	// a phone catching up on many schools reads each one once, not all
	// those before it again on every page.
	order := want
	if k, _ := slices.BinarySearch(want, cur.Next); cur.Next != "" && k < len(want) {
		order = append(slices.Clone(want[k:]), want[:k]...)
	}
	// The scopes are read a window at a time, concurrently, each with the
	// whole remaining budget; the pages are then taken in order. Most
	// scopes of a phone that sees many schools hold nothing new, and
	// those reads are round trips that need not wait for one another. A
	// page that no longer fits what the pages before it left is read
	// again with the exact budget, so the answer is the one reading the
	// scopes one after another gives. The window starts at one scope and
	// doubles while the scopes read fill less than a quarter of what was
	// left, up to pullWindow: a phone catching up on a few full schools
	// reads no page in vain, and memory stays within pullWindow pages.
	window := 1
	pages := make([]ChangesPage, pullWindow)
	errs := make([]error, pullWindow)
pages:
	for i := 0; i < len(order); {
		budget := limit - len(recs)
		if budget <= 0 || bytes <= 0 {
			more, next.Next = true, order[i]
			break
		}
		w := order[i:min(i+window, len(order))]
		i += len(w)
		took := len(recs)
		_ = parallel.Bounded(len(w), len(w), func(j int) error {
			pages[j], errs[j] = s.Store.Changes(ctx, w[j], cur.Pos[w[j]], budget, bytes)
			return nil
		})
		for j, sc := range w {
			if errs[j] != nil {
				return syncproto.PullResponse{}, errs[j]
			}
			budget := limit - len(recs)
			if budget <= 0 || bytes <= 0 {
				more, next.Next = true, sc
				break pages
			}
			page := pages[j]
			if len(page.Records) > budget || page.Bytes > bytes {
				var err error
				if page, err = s.Store.Changes(ctx, sc, cur.Pos[sc], budget, bytes); err != nil {
					return syncproto.PullResponse{}, err
				}
			}
			bytes -= page.Bytes
			recs = append(recs, page.Records...)
			if page.Pos > 0 {
				next.Pos[sc] = page.Pos
			}
			if page.More {
				more, next.Next = true, sc
				break pages
			}
		}
		if window = 1; 4*(len(recs)-took) < budget {
			window = min(2*len(w), pullWindow)
		}
	}
	// A compaction that raised a horizon while we read may have purged a
	// tombstone this cursor had not seen: check again before answering.
	if err := s.checkHorizons(ctx, want, cur); err != nil {
		return syncproto.PullResponse{}, err
	}
	if len(next.Pos) == 0 {
		next.Pos = nil
	}
	return syncproto.PullResponse{
		Protocol: syncproto.ProtocolVersion, Records: latestOnly(recs), Cursor: next.Encode(), More: more, ServerTime: now,
	}, nil
}

// pullWindow bounds the scopes a pull reads at once (see pull).
const pullWindow = 8

func (s *Syncer) checkHorizons(ctx context.Context, scopes []string, cur syncproto.Cursor) error {
	// Only scopes the cursor has a position in can be below a horizon.
	var held []string
	for _, sc := range scopes {
		if cur.Pos[sc] > 0 {
			held = append(held, sc)
		}
	}
	if len(held) == 0 {
		return nil
	}
	hz, err := s.Store.Horizons(ctx, held)
	if err != nil {
		return err
	}
	for _, sc := range scopes {
		if pos := cur.Pos[sc]; pos > 0 && pos < hz[sc] {
			return syncproto.StartOverError()
		}
	}
	return nil
}

// latestOnly keeps the last state of each record, in log order: a later
// state of a record is the join of the earlier ones with more changes, so
// the earlier ones add nothing for the phone.
func latestOnly(recs []*syncproto.Record) []*syncproto.Record {
	last := make(map[uuid.UUID]int, len(recs))
	for i, r := range recs {
		last[r.ID] = i
	}
	out := make([]*syncproto.Record, 0, len(last))
	for i, r := range recs {
		if last[r.ID] == i {
			out = append(out, r)
		}
	}
	return out
}

// Record implements SyncService.
func (s *Syncer) Record(ctx context.Context, scope string, id uuid.UUID) (*syncproto.Record, error) {
	if !ValidScope(scope) {
		return nil, syncproto.Errorf(syncproto.EINVALID, "%q is not a scope: a school id or %q.", scope, RefScope)
	}
	return s.Store.Current(ctx, scope, id)
}

// View implements SyncService.
func (s *Syncer) View(ctx context.Context, p Principal, scope string, id uuid.UUID) (RecordView, error) {
	if !ValidScope(scope) {
		return RecordView{}, syncproto.FieldError("Say which school the record belongs to.", map[string]string{"scope": "must be a school id or ref"})
	}
	if err := s.Access.CanSee(ctx, p, scope); err != nil {
		return RecordView{}, err
	}
	r, err := s.Store.Current(ctx, scope, id)
	if err != nil {
		return RecordView{}, err
	}
	return NewRecordView(r, s.Now()), nil
}

// Conflicts implements SyncService.
func (s *Syncer) Conflicts(ctx context.Context, p Principal, f ConflictFilter) ([]Conflict, error) {
	bad := map[string]string{}
	if f.Status != "" && f.Status != ConflictOpen && f.Status != ConflictResolved {
		bad["status"] = "must be open or resolved"
	}
	if f.Scope != "" && !ValidScope(f.Scope) {
		bad["scope"] = "must be a school id or ref"
	}
	if f.Limit < 0 || f.Limit > MaxConflictLimit {
		bad["limit"] = fmt.Sprintf("must be a number from 1 to %d", MaxConflictLimit)
	}
	if len(bad) > 0 {
		return nil, syncproto.FieldError("The filter is not valid.", bad)
	}
	if err := s.Access.ListConflicts(ctx, p, f); err != nil {
		return nil, err
	}
	if f.Limit == 0 {
		f.Limit = DefaultConflictLimit
	}
	cs, err := s.Store.Conflicts(ctx, f)
	if cs == nil && err == nil {
		cs = []Conflict{}
	}
	return cs, err
}

// ResolveConflict implements SyncService.
func (s *Syncer) ResolveConflict(ctx context.Context, p Principal, id string, chosen json.RawMessage) (*syncproto.Record, error) {
	if !office(p) {
		return nil, syncproto.Errorf(syncproto.EFORBIDDEN, "Only the office resolves conflicts.")
	}
	c, err := s.Store.Conflict(ctx, id)
	if err != nil {
		return nil, err
	}
	if err := s.Access.Resolve(ctx, p, c.Scope); err != nil {
		return nil, err
	}
	if c.Status == ConflictResolved {
		return nil, syncproto.Errorf(syncproto.ECONFLICT, "Conflict %s was resolved already.", id)
	}
	value, err := syncproto.CanonicalJSON(chosen)
	if err != nil {
		return nil, syncproto.Errorf(syncproto.EINVALID, "The chosen value is not JSON: %v.", err)
	}
	deleted := c.Field == "deleted"
	if deleted && string(value) != "true" && string(value) != "false" {
		return nil, syncproto.Errorf(syncproto.EINVALID, "A deletion conflict is resolved with true (delete) or false (keep).")
	}
	attempts := max(s.MaxAttempts, 1)
	for range attempts {
		rec, err := s.Store.Current(ctx, c.Scope, c.RecordID)
		if err != nil {
			return nil, err
		}
		if !slices.Contains(rec.ConflictFields(), c.Field) {
			// Resolved meanwhile by a phone that had seen every version.
			if err := s.indexConflicts(ctx, &syncproto.Record{ID: rec.ID, Fields: map[string]syncproto.Field{c.Field: c.Versions}}, rec); err != nil {
				return nil, err
			}
			return rec, nil
		}
		now := s.now()
		var delta *syncproto.Record
		s.mu.Lock()
		w := &syncproto.Writer{Replica: s.Replica, Author: p.UserID, Clock: s.observe(rec), Now: now}
		switch {
		case !deleted:
			_, delta = syncproto.Set(rec, c.Field, value, w)
		case string(value) == "true":
			_, delta = syncproto.Delete(rec, w)
		default:
			_, delta = syncproto.Keep(rec, w)
		}
		s.clock = w.Clock
		s.mu.Unlock()
		d, err := syncproto.Decide(rec, syncproto.StampArrival(rec, stamp(delta, now), now), rec.Version())
		if err != nil {
			return nil, err
		}
		d.Merged.Rev = rec.Rev + 1
		exists, err := s.Store.Insert(ctx, []*syncproto.Record{d.Merged})
		if err != nil {
			return nil, err
		}
		if exists[0] {
			continue // a phone wrote the record meanwhile: read it again
		}
		if err := s.indexConflicts(ctx, rec, d.Merged); err != nil {
			return nil, err
		}
		return d.Merged, nil
	}
	return nil, syncproto.Errorf(syncproto.EUNAVAILABLE, "Record %s is being written too often; retry.", c.RecordID)
}

// observe advances the office clock past every stamp in r; s.mu is held.
func (s *Syncer) observe(r *syncproto.Record) syncproto.HLC {
	s.clock = s.clock.Observe(r.MaxHLC())
	return s.clock
}

// Compact implements SyncService.
func (s *Syncer) Compact(ctx context.Context, p Principal, scope string, opt CompactOptions) (CompactResult, error) {
	if err := s.Access.Compact(p); err != nil {
		return CompactResult{}, err
	}
	if !ValidScope(scope) {
		return CompactResult{}, syncproto.Errorf(syncproto.EINVALID, "%q is not a scope: a school id or %q.", scope, RefScope)
	}
	return s.Store.Compact(ctx, scope, opt)
}

// SortConflicts orders conflicts as SyncStore.Conflicts returns them: most
// recently updated first, then by id. For store implementations.
func SortConflicts(cs []Conflict) {
	sort.SliceStable(cs, func(i, j int) bool {
		if !cs[i].UpdatedAt.Equal(cs[j].UpdatedAt) {
			return cs[i].UpdatedAt.After(cs[j].UpdatedAt)
		}
		return cs[i].ID < cs[j].ID
	})
}
