package mongo

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/fieldsync/fieldsync/internal/parallel"
	"github.com/fieldsync/fieldsync/server"
	"github.com/fieldsync/fieldsync/syncproto"
)

// Page sizes of the change log. A log entry carries the numbers of the
// small and the big page it belongs to (p2 = seq/SmallPage, p1 =
// seq/BigPage), and a reader fetches a page by one equality filter on one
// of them. Readers catching up read big pages (fewer round trips, and on
// FerretDB fewer scans of the collection); readers that are nearly up to
// date read small pages (less of what they already have).
const (
	SmallPage = 100
	BigPage   = 1000
)

// DefaultLease is how long a reader waits for the writer of an allocated
// but unwritten sequence number before it fills the hole with a no-op.
const DefaultLease = 60 * time.Second

// maxInsertRounds bounds how often Insert re-allocates sequence numbers
// for entries whose slots other writers took.
const maxInsertRounds = 16

// SyncStore implements server.SyncStore on MongoDB, and on FerretDB v1
// (PostgreSQL), with single-document atomic operations only: no
// multi-document transactions and no change streams.
//
// # What the database guarantees, and what it does not
//
// On FerretDB v1 the only atomic primitive is an insert into a unique
// index (PostgreSQL enforces it). Its findAndModify and update run as a
// read followed by a separate write of the whole document, so concurrent
// $inc or compare-and-set updates of one document lose updates (measured:
// 8 goroutines × 50 $inc ended at 64, not 400; a {used:false}→true claim
// had several winners in 50 of 50 trials). Queries push down only
// top-level equality; deploy/postgres/ferretdb-indexes.sql makes those
// index lookups in PostgreSQL (without it each is a scan of its
// collection). And every find costs FerretDB v1 a sorted copy of the list
// of the database's collections, so the number of collections must stay
// small: all scopes share one log. The design therefore rests on unique
// inserts for correctness, uses updates only as hints, reads by equality
// on top-level fields only, and keeps a fixed set of collections.
//
// # Collections
//
//   - log: the change logs of all scopes (a scope is a school id, or
//     "ref"), which are also the record store. Every key starts with the
//     scope. One document per accepted record state: {_id: "<scope>/<seq>",
//     q: seq, p1: "<scope>/<seq/BigPage>", p2: "<scope>/<seq/SmallPage>",
//     rr: "<scope>/<rid>/<rev>", k: "<scope>/<rid>", rid, rev, at, del, st, w}
//     where st is the canonical JSON of the whole record at that revision
//     (a string, so it round-trips byte for byte) and w the writer's token
//     (see below). No-ops that fill holes:
//     {_id, q, p1, p2, rr: "<scope>/n<seq>", noop: true, at}. Page marks:
//     {_id: "<scope>/m<Q>", p2 and p1 of the page before, rr: its _id,
//     at}, written when small page Q is first allocated, so a reader of the
//     page before it learns that something lies beyond. Unique indexes on
//     _id and rr; plain indexes on p1, p2 and k. A record's identity is
//     (scope, id), as when each scope had a collection of its own (log_<scope>,
//     moved into the shared log at startup by EnsureIndexes).
//   - scopes: {_id: scope, next, at, h}: the sequence counter (a hint, see
//     below) and the horizon h.
//   - ops: {_id: op id, h: digest, b: batch id, at}; batches: {_id: batch
//     id, h: digest, d: device, n, at}; results: {_id: batch id, r: JSON}.
//   - conflicts: the conflict index; meta: the epoch.
//
// # Sequence numbers without gaps, and without transactions
//
// A writer allocates a block of sequence numbers with $inc on the scope's
// counter (one round trip per scope per batch; serialized within a
// process) and inserts its entries at those numbers in one unordered
// InsertMany. The unique _id makes every slot write-once: a slot holds the
// writer's entry or a no-op, never both, and never changes afterwards
// (compaction replaces an entry by a no-op in place). On MongoDB $inc is
// atomic, so blocks never overlap; on FerretDB a lost update can hand two
// processes overlapping blocks, and then each slot still goes to exactly
// one of them: the loser sees a duplicate-key error, reads the small page
// to tell a taken slot from an existing revision (below), and retries in a
// new block. Correctness never depends on the counter.
//
// A reader hands out only the contiguous prefix of occupied slots after
// its position. A missing slot below an occupied one (or below a page
// mark) is a hole: its writer is still writing, or died between allocating
// and writing. The reader waits, and once the next occupied slot (or mark)
// is older than the lease it fills the hole with a no-op by inserting it:
// if the writer's entry landed first the insert fails and the reader reads
// the entry; if the no-op lands first, the late writer's insert fails and
// the writer retries in a new block. Either way no reader ever passes a
// slot that is later written: no puller skips a change, and a process
// killed with SIGKILL leaves holes that are filled after the lease. The
// lease only decides when to stop waiting for a writer; a reader that
// fills the slot of a slow but live writer costs that writer a retry, not
// a lost change.
//
// A writer that dies right after allocating can leave whole pages without
// an entry or a mark. A reader stuck at a hole with nothing after it in
// its page therefore also reads the scope's counter: if numbers beyond
// the hole were allocated, it looks for evidence in the next few small
// pages, and if the last allocation is itself older than the lease, every
// allocated slot not written by then is dead and the reader fills up to
// the counter. Only when nothing was allocated beyond the hole is the
// reader up to date.
//
// Exactly-once pushes use the ops and batches collections: the op ids of
// a batch are inserted (unordered) before anything is applied, so a
// duplicate key identifies a replayed op precisely, and its stored digest
// tells a replay (re-applied: a join, which changes nothing) from a reuse
// of the id for other content (refused); a batch's answer is stored last
// and returned verbatim, without writing, when the batch is sent again.
// A process that dies in between leaves claimed ops and no answer: the
// retried batch is applied again, harmlessly, and answered then. Two
// copies of one batch applied at once (a phone that timed out and sent it
// again, to this process or another) are answered alike: the copy that
// finds every op claimed by its own batch waits for the other's answer,
// and the answer document's insert under the batch id decides which
// answer is the batch's should both be written.
//
// # Records, and the compare-and-set
//
// The current state of a record is its entry with the highest rev,
// found by {rid} (an equality lookup). The unique rr index makes "rev r of
// record x" insertable once: a writer that read rev r and inserts r+1
// either wins, or gets a duplicate key, re-reads, re-merges (a join) and
// tries r+2. A new record is inserted at rev 1 directly; a duplicate tells
// the writer the record exists, without a read before the insert. Because
// an entry can fail on either unique index and FerretDB's error does not
// say which, the writer reads the small pages of its failed slots: a slot
// occupied by another revision means "slot taken, retry elsewhere"; an
// empty slot means "revision exists", and the writer fills its slot with a
// no-op. A slot holding the writer's own revision key is its own entry
// only if it also holds the writer's token (w: random, one per state per
// Insert): on FerretDB two processes can be handed overlapping blocks, and
// two writers of the same revision of one record can then land on the same
// slot, where the loser's insert fails on both keys at once. Taking that
// slot for its own (as versions before the token did) told two pushes they
// had written one revision, and the loser's change was lost
// (storetest.ConcurrentPushes catches it).
//
// # Compaction and the horizon
//
// Compact replaces the entries of superseded revisions by no-ops that
// keep their rid, rev and rr (so a revision is never taken twice, and a
// push that tries a record as new still fails), and purges old
// tombstones: every entry of a deleted record becomes a plain no-op, which
// frees its revisions (an edit that arrives later creates the record
// anew). Before it purges, it raises the scope's horizon h above the
// purged tombstones; a cursor between 0 and h may have missed a purge and
// is told to start over. No slot is ever deleted, so no sequence number
// becomes writable again.
//
// Compaction is the only bulk update. It replaces entries one statement
// per document, in commands of at most 40 statements sent one after
// another: FerretDB v1 holds a backend connection per statement of an
// update command until the command ends, and a command with more
// statements than its PostgreSQL pool (50) hangs the server until it is
// restarted.
//
// # Costs, and what they depend on
//
// A push of new records costs, whatever its size: a lookup of its batch
// id, one insert of its op ids, one counter update and one insert of its
// entries per scope, and one write of its answer. A record that exists
// costs a read of its revisions (one equality query) and a retry when
// another writer took its next revision. A pull costs one equality query
// per page (up to BigPage entries) per scope. Each of these is an index
// lookup, on MongoDB and on FerretDB with the twin indexes, so costs do
// not grow with the number of schools or records stored.
type SyncStore struct {
	db *mongo.Database
	// Lease is how long a reader waits before it fills a hole.
	Lease time.Duration
	// Now is the clock used for the "at" stamps and the lease; tests
	// replace it.
	Now func() time.Time

	mu     sync.Mutex
	scopes map[string]*scopeState
	epoch  uuid.UUID

	logMu    sync.Mutex
	logReady bool // the log's indexes exist
}

var (
	_ server.SyncStore        = (*SyncStore)(nil)
	_ server.MaintenanceStore = (*SyncStore)(nil)
	_ server.PullPlanner      = (*SyncStore)(nil)
)

// scopeState is what this process knows about one scope's log.
type scopeState struct {
	mu     sync.Mutex // serializes this process's allocations in the scope
	top    int64      // the highest sequence number this process allocated
	marked int64      // the highest small page this process wrote a mark for
}

// NewSyncStore returns a store on db with the default lease and the real
// clock. Call EnsureIndexes once at startup.
func NewSyncStore(db *mongo.Database) *SyncStore {
	return &SyncStore{db: db, Lease: DefaultLease, Now: time.Now, scopes: map[string]*scopeState{}}
}

// EnsureIndexes creates the indexes of the journal and conflict
// collections (the logs' indexes are created when a scope is first
// written). It is idempotent.
func (s *SyncStore) EnsureIndexes(ctx context.Context) error {
	if err := createIndexes(ctx, s.db.Collection(OpsCollection), []mongo.IndexModel{{Keys: bson.D{{Key: "b", Value: 1}}}, {Keys: bson.D{{Key: "d", Value: 1}}}}); err != nil {
		return fmt.Errorf("mongo: ensure ops indexes: %w", err)
	}
	for _, c := range []string{"batches", "results", "claims"} {
		if err := createIndexes(ctx, s.db.Collection(c), []mongo.IndexModel{{Keys: bson.D{{Key: "day", Value: 1}}}}); err != nil {
			return fmt.Errorf("mongo: ensure %s indexes: %w", c, err)
		}
	}
	err := createIndexes(ctx, s.db.Collection(ConflictsCollection), []mongo.IndexModel{
		{Keys: bson.D{{Key: "status", Value: 1}, {Key: "scope", Value: 1}, {Key: "updated_at", Value: -1}}},
		{Keys: bson.D{{Key: "rid", Value: 1}}},
	})
	if err != nil {
		return fmt.Errorf("mongo: ensure conflict indexes: %w", err)
	}
	if err := s.ensureLog(ctx); err != nil {
		return err
	}
	return s.migrateScopeLogs(ctx)
}

// oldLogDoc is a document of a per-scope log collection (log_<scope>) as
// versions before the shared log wrote it: _id a sequence number, or
// "m<q>" for a page mark.
type oldLogDoc struct {
	ID   bson.RawValue `bson:"_id"`
	RID  string        `bson:"rid"`
	Rev  int64         `bson:"rev"`
	At   time.Time     `bson:"at"`
	Noop bool          `bson:"noop"`
	Del  bool          `bson:"del"`
	St   string        `bson:"st"`
}

// migrateScopeLogs moves the per-scope log collections of earlier
// versions into the shared log, keeping every sequence number, so that
// the phones' cursors stay valid. It is idempotent and safe to interrupt:
// documents are inserted ignoring duplicates, and a scope's old
// collection is dropped only after all of it was copied.
func (s *SyncStore) migrateScopeLogs(ctx context.Context) error {
	names, err := s.db.ListCollectionNames(ctx, bson.D{})
	if err != nil {
		return fmt.Errorf("mongo: list collections: %w", err)
	}
	for _, name := range names {
		scope, ok := strings.CutPrefix(name, oldLogPrefix)
		if !ok || !server.ValidScope(scope) {
			continue
		}
		if err := s.migrateScopeLog(ctx, name, scope); err != nil {
			return fmt.Errorf("mongo: move %s into %s: %w", name, LogCollection, err)
		}
	}
	return nil
}

func (s *SyncStore) migrateScopeLog(ctx context.Context, name, scope string) error {
	old := s.db.Collection(name)
	cur, err := old.Find(ctx, bson.D{}, options.Find().SetBatchSize(1000))
	if err != nil {
		return err
	}
	defer cur.Close(ctx)
	var docs []any
	flush := func() error {
		_, err := insertIgnoringDuplicates(ctx, s.log(), docs)
		docs = docs[:0]
		return err
	}
	for cur.Next(ctx) {
		var d oldLogDoc
		if err := cur.Decode(&d); err != nil {
			return err
		}
		if m, ok := d.ID.StringValueOK(); ok {
			q, err := strconv.ParseInt(strings.TrimPrefix(m, "m"), 10, 64)
			if err != nil {
				return fmt.Errorf("unknown document %q", m)
			}
			docs = append(docs, newMark(scope, q, d.At))
		} else {
			seq, ok := d.ID.AsInt64OK()
			if !ok || seq < 1 {
				return fmt.Errorf("unknown document %s", d.ID)
			}
			if d.Noop { // a filled hole, or a compacted entry that keeps its revision
				docs = append(docs, compacted{seq: seq, rid: d.RID, rev: d.Rev}.doc(scope, d.At))
			} else {
				docs = append(docs, newEntry(scope, seq, d.At, d.RID, d.Rev, d.Del, d.St, ""))
			}
		}
		if len(docs) == 1000 {
			if err := flush(); err != nil {
				return err
			}
		}
	}
	if err := cur.Err(); err != nil {
		return err
	}
	if err := flush(); err != nil {
		return err
	}
	return old.Drop(ctx)
}

func (s *SyncStore) now() time.Time { return s.Now().UTC().Truncate(time.Millisecond) }

func (s *SyncStore) scope(name string) *scopeState {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.scopes[name]
	if st == nil {
		st = &scopeState{}
		s.scopes[name] = st
	}
	return st
}

// LogCollection is the collection that holds the change logs of all
// scopes.
const LogCollection = "log"

func (s *SyncStore) log() *mongo.Collection { return s.db.Collection(LogCollection) }

func checkScope(scope string) error {
	if !server.ValidScope(scope) {
		return syncproto.Errorf(syncproto.EINVALID, "%q is not a scope: a school id or %q.", scope, server.RefScope)
	}
	return nil
}

// logIndexes returns the indexes of every log collection. It builds them
// anew on each call: the driver's option builders are not safe to share
// between goroutines (they are read lazily, under the race detector's eyes,
// by every CreateOne).
func logIndexes() []mongo.IndexModel {
	return []mongo.IndexModel{
		{Keys: bson.D{{Key: "rr", Value: 1}}, Options: options.Index().SetUnique(true).SetName("rr")},
		{Keys: bson.D{{Key: "p1", Value: 1}}, Options: options.Index().SetName("p1")},
		{Keys: bson.D{{Key: "p2", Value: 1}}, Options: options.Index().SetName("p2")},
		{Keys: bson.D{{Key: "k", Value: 1}}, Options: options.Index().SetName("k")},
	}
}

// ensureLog creates the indexes of the log once per process. They are
// listed first and created only when missing.
func (s *SyncStore) ensureLog(ctx context.Context) error {
	s.logMu.Lock()
	defer s.logMu.Unlock()
	if s.logReady {
		return nil
	}
	coll := s.log()
	if !hasIndexes(ctx, coll) {
		if err := createIndexes(ctx, coll, logIndexes()); err != nil {
			return fmt.Errorf("mongo: create indexes of %s: %w", LogCollection, err)
		}
	}
	s.logReady = true
	return nil
}

// createIndexes creates indexes one per command, each retried a few
// times. FerretDB v1 panics (and drops the connection) when a
// createIndexes command naming several indexes runs while another one
// does, which happens when two processes start, or write a new scope, at
// the same moment: measured, 49 to 59 of 60 concurrent two-index commands
// failed, and none of 60 one-index commands.
func createIndexes(ctx context.Context, coll *mongo.Collection, models []mongo.IndexModel) error {
	for _, m := range models {
		var err error
		for attempt := range 5 {
			if attempt > 0 {
				wait := time.Duration(10<<attempt)*time.Millisecond + time.Duration(rand.Int64N(int64(20*time.Millisecond)))
				select {
				case <-ctx.Done():
					return ctx.Err()
				case <-time.After(wait):
				}
			}
			if _, err = coll.Indexes().CreateOne(ctx, m); err == nil {
				break
			}
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// hasIndexes reports whether coll has every index of logIndexes, by name.
func hasIndexes(ctx context.Context, coll *mongo.Collection) bool {
	cur, err := coll.Indexes().List(ctx)
	if err != nil {
		return false
	}
	var got []struct {
		Name string `bson:"name"`
	}
	if err := cur.All(ctx, &got); err != nil {
		return false
	}
	have := map[string]bool{}
	for _, ix := range got {
		have[ix.Name] = true
	}
	for _, name := range []string{"rr", "p1", "p2", "k"} {
		if !have[name] {
			return false
		}
	}
	return true
}

// alloc allocates n consecutive sequence numbers in scope, all above
// floor, and returns the first.
func (s *SyncStore) alloc(ctx context.Context, scope string, n int, floor int64) (int64, error) {
	st := s.scope(scope)
	st.mu.Lock()
	defer st.mu.Unlock()
	if err := s.ensureLog(ctx); err != nil {
		return 0, err
	}
	var doc struct {
		Next int64 `bson:"next"`
	}
	var err error
	for range 3 {
		// Retried when it fails transiently: should the failed increment
		// have been applied after all, its block is never written and
		// readers fill it with no-ops after the lease.
		err = retry(ctx, func() error {
			return s.db.Collection(ScopesCollection).FindOneAndUpdate(ctx,
				bson.D{{Key: "_id", Value: scope}},
				bson.D{{Key: "$inc", Value: bson.D{{Key: "next", Value: int64(n)}}}, {Key: "$set", Value: bson.D{{Key: "at", Value: s.now()}}}},
				options.FindOneAndUpdate().SetUpsert(true).SetReturnDocument(options.After),
			).Decode(&doc)
		})
		if !mongo.IsDuplicateKeyError(err) { // two first upserts raced: the loser retries
			break
		}
	}
	if err != nil {
		return 0, fmt.Errorf("mongo: allocate %d in %s: %w", n, scope, err)
	}
	first := doc.Next - int64(n) + 1
	if first <= max(st.top, floor) {
		// The counter is behind: on FerretDB an increment by another
		// process can be lost, and even written back lower (see
		// SyncStore). Start above what this process allocated and what
		// the caller saw taken, and push the counter up as a hint.
		first = max(st.top, floor) + 1
		_, err := s.db.Collection(ScopesCollection).UpdateOne(ctx, bson.D{{Key: "_id", Value: scope}},
			bson.D{{Key: "$max", Value: bson.D{{Key: "next", Value: first + int64(n) - 1}}}})
		if err != nil {
			return 0, fmt.Errorf("mongo: allocate %d in %s: %w", n, scope, err)
		}
	}
	st.top = first + int64(n) - 1
	return first, nil
}

// Reserve allocates n sequence numbers in scope and writes nothing: what
// a writer killed between allocating and writing leaves behind. It is for
// tests of the hole filling.
func (s *SyncStore) Reserve(ctx context.Context, scope string, n int) (first int64, err error) {
	if err := checkScope(scope); err != nil {
		return 0, err
	}
	return s.alloc(ctx, scope, n, 0)
}

type metaDoc struct {
	ID    string    `bson:"_id"`
	Epoch string    `bson:"epoch"`
	At    time.Time `bson:"at"`
}

// Epoch implements server.SyncStore. The epoch is created once, by the
// first insert to succeed.
func (s *SyncStore) Epoch(ctx context.Context) (uuid.UUID, error) {
	s.mu.Lock()
	e := s.epoch
	s.mu.Unlock()
	if e != uuid.Nil {
		return e, nil
	}
	meta := s.db.Collection(MetaCollection)
	var doc metaDoc
	err := meta.FindOne(ctx, bson.D{{Key: "_id", Value: "epoch"}}).Decode(&doc)
	if errors.Is(err, mongo.ErrNoDocuments) {
		doc = metaDoc{ID: "epoch", Epoch: uuid.Must(uuid.NewV7()).String(), At: s.now()}
		_, err = meta.InsertOne(ctx, doc)
		if mongo.IsDuplicateKeyError(err) {
			err = meta.FindOne(ctx, bson.D{{Key: "_id", Value: "epoch"}}).Decode(&doc)
		}
	}
	if err != nil {
		return uuid.Nil, fmt.Errorf("mongo: epoch: %w", err)
	}
	e, err = uuid.Parse(doc.Epoch)
	if err != nil {
		return uuid.Nil, fmt.Errorf("mongo: epoch: %w", err)
	}
	s.mu.Lock()
	s.epoch = e
	s.mu.Unlock()
	return e, nil
}

// Horizons implements server.SyncStore.
func (s *SyncStore) Horizons(ctx context.Context, scopes []string) (map[string]int64, error) {
	if len(scopes) > horizonLookups {
		return s.allHorizons(ctx, scopes)
	}
	// One equality lookup per scope: an $in would be evaluated by
	// FerretDB v1 over the whole collection.
	hs := make([]int64, len(scopes))
	if err := parallel.Do(len(scopes), func(i int) error {
		c, err := s.counter(ctx, scopes[i])
		hs[i] = c.H
		return err
	}); err != nil {
		return nil, fmt.Errorf("mongo: horizons: %w", err)
	}
	out := map[string]int64{}
	for i, h := range hs {
		if h > 0 {
			out[scopes[i]] = h
		}
	}
	return out, nil
}

// horizonLookups is the most scopes Horizons looks up one by one; for
// more (an office user, a zone leader: hundreds of schools) it reads the
// horizons of every scope in one query instead. The scopes collection
// holds one small document per scope, and only the few with a horizon
// are sent back, so one scan of it costs less than hundreds of round
// trips.
const horizonLookups = 16

func (s *SyncStore) allHorizons(ctx context.Context, scopes []string) (map[string]int64, error) {
	want := make(map[string]bool, len(scopes))
	for _, sc := range scopes {
		want[sc] = true
	}
	out := map[string]int64{}
	err := retry(ctx, func() error {
		clear(out)
		cur, err := s.db.Collection(ScopesCollection).Find(ctx, bson.D{{Key: "h", Value: bson.D{{Key: "$gt", Value: 0}}}},
			options.Find().SetProjection(bson.D{{Key: "h", Value: 1}}))
		if err != nil {
			return err
		}
		defer cur.Close(context.WithoutCancel(ctx))
		for cur.Next(ctx) {
			var d struct {
				ID string `bson:"_id"`
				H  int64  `bson:"h"`
			}
			if err := cur.Decode(&d); err != nil {
				return err
			}
			if want[d.ID] && d.H > 0 {
				out[d.ID] = d.H
			}
		}
		return cur.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("mongo: horizons: %w", err)
	}
	return out, nil
}
