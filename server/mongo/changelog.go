package mongo

import (
	"container/heap"
	"context"
	crand "crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"sort"
	"strconv"
	"time"

	"github.com/google/uuid"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/fieldsync/fieldsync/internal/parallel"
	"github.com/fieldsync/fieldsync/server"
	"github.com/fieldsync/fieldsync/syncproto"
)

// entryDoc is a log entry as written: a record state or a no-op. Every
// key is prefixed by the scope, so that the logs of all scopes share one
// collection (see SyncStore).
type entryDoc struct {
	ID   string    `bson:"_id"` // slotID(scope, seq)
	Seq  int64     `bson:"q"`
	P1   string    `bson:"p1"`          // pageKey(scope, seq/BigPage)
	P2   string    `bson:"p2"`          // pageKey(scope, seq/SmallPage)
	RR   string    `bson:"rr"`          // rr(scope, rid, rev), or noopRR(scope, seq)
	K    string    `bson:"k,omitempty"` // recordKey(scope, rid), on live entries only
	RID  string    `bson:"rid,omitempty"`
	Rev  int64     `bson:"rev,omitempty"`
	At   time.Time `bson:"at"`
	Noop bool      `bson:"noop,omitempty"`
	Del  bool      `bson:"del,omitempty"`
	St   string    `bson:"st,omitempty"`
	// W is the writer's token: random, one per state per Insert call. A
	// writer that finds its slot and its revision taken tells its own
	// entry from another writer's of the same revision by it.
	W string `bson:"w,omitempty"`
}

// markDoc says that small page Q of a scope was allocated; it sits in the
// page before, where a reader of that page finds it.
type markDoc struct {
	ID string    `bson:"_id"` // markID(scope, Q)
	P1 string    `bson:"p1"`
	P2 string    `bson:"p2"`
	RR string    `bson:"rr"`
	At time.Time `bson:"at"`
}

// readDoc is any document of the log as read.
type readDoc struct {
	ID   string    `bson:"_id"`
	Seq  int64     `bson:"q"`
	RR   string    `bson:"rr"`
	RID  string    `bson:"rid"`
	Rev  int64     `bson:"rev"`
	At   time.Time `bson:"at"`
	Noop bool      `bson:"noop"`
	Del  bool      `bson:"del"`
	St   string    `bson:"st"`
	W    string    `bson:"w"`

	dropped bool // its state was read and dropped for lack of budget (see keptStates)
}

// seq returns the entry's sequence number, or false for a mark (sequence
// numbers start at 1).
func (d *readDoc) seq() (int64, bool) { return d.Seq, d.Seq > 0 }

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// The keys of the log. A scope is a school id or "ref", never containing
// "/", so no key of one scope can be the key of another.
func slotID(scope string, seq int64) string { return scope + "/" + itoa(seq) }
func markID(scope string, q int64) string   { return scope + "/m" + itoa(q) }
func pageKey(scope string, n int64) string  { return scope + "/" + itoa(n) }
func noopRR(scope string, seq int64) string { return scope + "/n" + itoa(seq) }
func recordKey(scope, id string) string     { return scope + "/" + id }
func rr(scope, id string, rev int64) string { return scope + "/" + id + "/" + itoa(rev) }
func p2Filter(scope string, q int64) bson.D { return bson.D{{Key: "p2", Value: pageKey(scope, q)}} }
func p1Filter(scope string, q int64) bson.D { return bson.D{{Key: "p1", Value: pageKey(scope, q)}} }

func newMark(scope string, q int64, at time.Time) markDoc {
	id := markID(scope, q)
	return markDoc{ID: id, P1: pageKey(scope, (q*SmallPage-1)/BigPage), P2: pageKey(scope, q-1), RR: id, At: at}
}

// slot returns a document for slot seq of a scope's log with only its
// keys set.
func slot(scope string, seq int64, at time.Time) entryDoc {
	return entryDoc{ID: slotID(scope, seq), Seq: seq, P1: pageKey(scope, seq/BigPage), P2: pageKey(scope, seq/SmallPage), At: at}
}

func newNoop(scope string, seq int64, at time.Time) entryDoc {
	d := slot(scope, seq, at)
	d.RR, d.Noop = noopRR(scope, seq), true
	return d
}

// newEntry returns the entry of revision rev of record rid, whose state is
// st, at slot seq, written by the writer whose token is w.
func newEntry(scope string, seq int64, at time.Time, rid string, rev int64, del bool, st, w string) entryDoc {
	d := slot(scope, seq, at)
	d.RR, d.K, d.RID, d.Rev, d.Del, d.St, d.W = rr(scope, rid, rev), recordKey(scope, rid), rid, rev, del, st, w
	return d
}

// newToken returns a writer's token (see entryDoc.W).
func newToken() string {
	var b [12]byte
	_, _ = crand.Read(b[:]) // never fails (crypto/rand)
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// Insert implements server.SyncStore.
func (s *SyncStore) Insert(ctx context.Context, states []*syncproto.Record) ([]bool, error) {
	exists := make([]bool, len(states))
	byScope := map[string][]int{}
	var order []string
	for i, r := range states {
		if r.Rev < 1 {
			return nil, fmt.Errorf("mongo: insert %s: rev %d: a logged state needs a revision ≥ 1", r.ID, r.Rev)
		}
		sc := server.ScopeOf(r)
		if err := checkScope(sc); err != nil {
			return nil, err
		}
		if byScope[sc] == nil {
			order = append(order, sc)
		}
		byScope[sc] = append(byScope[sc], i)
	}
	// The scopes are written concurrently: each is its own allocation
	// and its own InsertMany, so a batch across many schools costs about
	// the round trips of its largest school, not their sum. Each call
	// sets only the exists entries of its own indexes.
	if err := parallel.Bounded(len(order), maxScopeWriters, func(k int) error {
		return s.insertScope(ctx, order[k], byScope[order[k]], states, exists)
	}); err != nil {
		return nil, err
	}
	return exists, nil
}

// maxScopeWriters bounds the scopes one Insert writes at once (each holds
// a connection for its allocation and its insert).
const maxScopeWriters = 8

// insertScope writes the states at indexes idx, all of one scope, and sets
// exists for those whose revision was taken.
func (s *SyncStore) insertScope(ctx context.Context, scope string, idx []int, states []*syncproto.Record, exists []bool) error {
	// The first block is allocated while the states are marshalled.
	type allocated struct {
		first int64
		err   error
	}
	firstBlock := make(chan allocated, 1)
	go func() {
		first, err := s.alloc(ctx, scope, len(idx), 0)
		firstBlock <- allocated{first, err}
	}()
	blobs := make([]string, len(states))
	if err := parallel.Do(len(idx), func(k int) error {
		b, err := syncproto.Marshal(states[idx[k]])
		if err != nil {
			return fmt.Errorf("mongo: insert %s: %w", states[idx[k]].ID, err)
		}
		blobs[idx[k]] = string(b)
		return nil
	}); err != nil {
		if a := <-firstBlock; a.err == nil {
			// Give the unused block up at once rather than after the lease.
			seqs := make([]int64, len(idx))
			for k := range seqs {
				seqs[k] = a.first + int64(k)
			}
			_ = s.fillNoops(ctx, scope, seqs)
		}
		return err
	}
	st := s.scope(scope)
	tokens := make(map[int]string, len(idx))
	for _, i := range idx {
		tokens[i] = newToken()
	}
	pending := idx
	var floor int64 // the highest slot seen taken by others
	for round := 0; len(pending) > 0; round++ {
		if round == maxInsertRounds {
			return syncproto.Errorf(syncproto.EUNAVAILABLE, "The change log of %s is too busy; retry.", scope)
		}
		if round > 0 {
			// Writers that collided tend to retry in step; a little
			// jitter lets their next allocations follow one another.
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(time.Duration(rand.Int64N(int64(10 * time.Millisecond)))):
			}
		}
		var first int64
		var err error
		if round == 0 {
			a := <-firstBlock
			first, err = a.first, a.err
		} else {
			first, err = s.alloc(ctx, scope, len(pending), floor)
		}
		if err != nil {
			return err
		}
		last := first + int64(len(pending)) - 1
		now := s.now()
		docs := make([]any, 0, len(pending)+2)
		st.mu.Lock()
		for q := max(first/SmallPage, st.marked+1, 1); q <= last/SmallPage; q++ {
			docs = append(docs, newMark(scope, q, now)) // marks first: see markDoc
		}
		st.mu.Unlock()
		nmarks := len(docs)
		seqOf := make(map[int]int64, len(pending))
		for k, i := range pending {
			r, seq := states[i], first+int64(k)
			seqOf[i] = seq
			docs = append(docs, newEntry(scope, seq, now, r.ID.String(), r.Rev, r.IsDeleted(), blobs[i], tokens[i]))
		}
		failedDocs, err := insertIgnoringDuplicates(ctx, s.log(), docs)
		if err != nil {
			return fmt.Errorf("mongo: insert into the log of %s: %w", scope, err)
		}
		st.mu.Lock()
		st.marked = max(st.marked, last/SmallPage)
		st.mu.Unlock()
		var failed []int
		for _, k := range failedDocs {
			if k >= nmarks { // a mark that exists already is fine
				failed = append(failed, pending[k-nmarks])
			}
		}
		if len(failed) == 0 {
			return nil
		}
		// A failed entry either lost its slot to another writer (retry in a
		// new block) or its (rid, rev) exists (report it, and fill the
		// slot with a no-op so that readers need not wait for the lease),
		// or both: on FerretDB two processes can be handed the same slot,
		// and two writers of the same revision then collide on both keys.
		// Only the writer's token tells its own entry (written after all,
		// behind an ambiguous error) from another writer's entry of the
		// same revision in the same slot.
		seqs := make([]int64, len(failed))
		for k, i := range failed {
			seqs[k] = seqOf[i]
		}
		occupant, err := s.occupants(ctx, scope, seqs)
		if err != nil {
			return err
		}
		for seq := range occupant {
			floor = max(floor, seq)
		}
		var lost []int
		var free []int64
		for _, i := range failed {
			seq := seqOf[i]
			switch got, ok := occupant[seq]; {
			case !ok:
				exists[i] = true
				free = append(free, seq)
			case got.rr == rr(scope, states[i].ID.String(), states[i].Rev) && got.w == tokens[i]:
				// Written after all (an ambiguous error); nothing to do.
			case got.rr == rr(scope, states[i].ID.String(), states[i].Rev):
				exists[i] = true // another writer's entry of this revision, in this very slot
			default:
				lost = append(lost, i)
			}
		}
		if err := s.fillNoops(ctx, scope, free); err != nil {
			return err
		}
		pending = lost
	}
	return nil
}

// insertIgnoringDuplicates inserts docs unordered and returns the indexes
// of those refused with a duplicate key. Any other error is returned.
func insertIgnoringDuplicates(ctx context.Context, coll *mongo.Collection, docs []any) ([]int, error) {
	if len(docs) == 0 {
		return nil, nil
	}
	err := retry(ctx, func() error {
		_, err := coll.InsertMany(ctx, docs, options.InsertMany().SetOrdered(false))
		return err
	})
	if err == nil {
		return nil, nil
	}
	var bwe mongo.BulkWriteException
	if !errors.As(err, &bwe) || bwe.WriteConcernError != nil {
		return nil, err
	}
	var dup []int
	for _, we := range bwe.WriteErrors {
		if !isDuplicateCode(we.Code) {
			return nil, err
		}
		dup = append(dup, we.Index)
	}
	return dup, nil
}

func isDuplicateCode(code int) bool { return code == 11000 || code == 11001 || code == 12582 }

// occupant is who holds a slot: the revision key and the writer's token.
type occupant struct{ rr, w string }

// occupants returns who holds each given slot, reading the small pages
// they fall in; slots absent from the map are empty.
func (s *SyncStore) occupants(ctx context.Context, scope string, seqs []int64) (map[int64]occupant, error) {
	pages := map[int64]bool{}
	for _, seq := range seqs {
		pages[seq/SmallPage] = true
	}
	out := map[int64]occupant{}
	for q := range pages {
		docs, err := s.find(ctx, p2Filter(scope, q), bson.D{{Key: "rr", Value: 1}, {Key: "q", Value: 1}, {Key: "w", Value: 1}})
		if err != nil {
			return nil, err
		}
		for i := range docs {
			if seq, ok := docs[i].seq(); ok {
				out[seq] = occupant{docs[i].RR, docs[i].W}
			}
		}
	}
	return out, nil
}

// fillNoops writes no-ops into the given slots; slots already taken are
// left as they are.
func (s *SyncStore) fillNoops(ctx context.Context, scope string, seqs []int64) error {
	if len(seqs) == 0 {
		return nil
	}
	now := s.now()
	docs := make([]any, len(seqs))
	for i, seq := range seqs {
		docs[i] = newNoop(scope, seq, now)
	}
	if _, err := insertIgnoringDuplicates(ctx, s.log(), docs); err != nil {
		return fmt.Errorf("mongo: fill holes in the log of %s: %w", scope, err)
	}
	return nil
}

// readBatch is the batch size of every read of the log. It bounds a
// reply from the server to readBatch documents, so to readBatch ×
// MaxRecordBytes of record states: FerretDB v1 does not cut a reply at
// 16 MB as MongoDB does, and the driver refuses a reply above 48 MB, so
// a page of large records read with the default batch (101) failed every
// pull of its school. Small batches are also the faster ones on FerretDB:
// reading 5,000 entries of 3 KB took 1.1 s in batches of 8, 1.2 s of 16,
// 1.9 s of 256, 2.4 s with the default and 5.9 s in batches of 1,000.
const readBatch = 8

// MaxRecordBytes is the largest syncproto.Limits.MaxRecordBytes this
// store can serve: a read of readBatch record states stays under the
// driver's 48 MB limit on a reply, with room for BSON's overhead and the
// entries' other fields.
const MaxRecordBytes = 4 << 20

// scan reads the documents of the log that match filter, readBatch at a
// time, and calls each for every one; begin is called before the first,
// and again if a transient failure restarts the read.
func (s *SyncStore) scan(ctx context.Context, filter bson.D, projection bson.D, begin func(), each func(*readDoc)) error {
	opts := options.Find().SetBatchSize(readBatch)
	if projection != nil {
		opts.SetProjection(projection)
	}
	err := retry(ctx, func() error {
		cur, err := s.log().Find(ctx, filter, opts)
		if err != nil {
			return err
		}
		defer cur.Close(context.WithoutCancel(ctx))
		begin()
		for cur.Next(ctx) {
			var d readDoc
			if err := cur.Decode(&d); err != nil {
				return err
			}
			each(&d)
		}
		return cur.Err()
	})
	if err != nil {
		return fmt.Errorf("mongo: read %s: %w", LogCollection, err)
	}
	return nil
}

// find reads every document of the log that matches filter, without
// the record states (projection noState) or with them.
func (s *SyncStore) find(ctx context.Context, filter bson.D, projection bson.D) ([]readDoc, error) {
	var docs []readDoc
	err := s.scan(ctx, filter, projection, func() { docs = docs[:0] }, func(d *readDoc) { docs = append(docs, *d) })
	return docs, err
}

// noState is the projection of log reads that need no record state.
var noState = bson.D{{Key: "st", Value: 0}}

func decodeState(d *readDoc) (*syncproto.Record, error) {
	var r syncproto.Record
	if err := json.Unmarshal([]byte(d.St), &r); err != nil {
		return nil, fmt.Errorf("mongo: decode state %s: %w", d.RR, err)
	}
	return &r, nil
}

// Current implements server.SyncStore. It keeps only the highest
// revision's state while it reads the record's entries, so a record with
// many revisions costs one state of memory.
func (s *SyncStore) Current(ctx context.Context, scope string, id uuid.UUID) (*syncproto.Record, error) {
	if err := checkScope(scope); err != nil {
		return nil, err
	}
	var best *readDoc
	err := s.scan(ctx, bson.D{{Key: "k", Value: recordKey(scope, id.String())}}, nil,
		func() { best = nil },
		func(d *readDoc) {
			if !d.Noop && d.RID == id.String() && (best == nil || d.Rev > best.Rev) {
				best = d
			}
		})
	if err != nil {
		return nil, err
	}
	if best == nil {
		return nil, syncproto.Errorf(syncproto.ENOTFOUND, "No record %s in %s.", id, scope)
	}
	return decodeState(best)
}

// keptStates holds the record states a page read keeps: those of the
// lowest sequence numbers, within a byte budget (at least one).
type keptStates struct {
	h     seqHeap
	bytes int64
}

// add keeps d's state, then drops the states of the highest sequence
// numbers kept until the rest fit in budget.
func (k *keptStates) add(d *readDoc, budget int64) {
	if d.St == "" {
		return
	}
	heap.Push(&k.h, d)
	k.bytes += int64(len(d.St))
	for k.bytes > budget && k.h.Len() > 1 {
		top := heap.Pop(&k.h).(*readDoc)
		k.bytes -= int64(len(top.St))
		top.St, top.dropped = "", true
	}
}

// seqHeap is a max-heap of log entries by sequence number.
type seqHeap []*readDoc

func (h seqHeap) Len() int           { return len(h) }
func (h seqHeap) Less(i, j int) bool { return h[i].Seq > h[j].Seq }
func (h seqHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *seqHeap) Push(x any)        { *h = append(*h, x.(*readDoc)) }
func (h *seqHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// maxChangesSteps bounds the page reads of one Changes call.
const maxChangesSteps = 64

// Changes implements server.SyncStore. See SyncStore for why it never
// skips an entry. Its memory is bounded by maxBytes whatever the size of
// the page it reads: while a page streams in, it keeps the states of the
// lowest sequence numbers within the budget and drops the states of the
// others (keeping that their slots are taken), since those cannot be
// handed out in this call anyway.
func (s *SyncStore) Changes(ctx context.Context, scope string, after int64, limit int, maxBytes int64) (server.ChangesPage, error) {
	if err := checkScope(scope); err != nil {
		return server.ChangesPage{}, err
	}
	if after < 0 {
		return server.ChangesPage{}, syncproto.Errorf(syncproto.EINVALID, "A log position is not negative.")
	}
	limit = max(limit, 1)
	page := server.ChangesPage{Pos: after}
	counter, _ := plannedCounter(ctx, scope)
	for range maxChangesSteps {
		if len(page.Records) >= limit {
			page.More = true
			break
		}
		n := page.Pos + 1
		var hi int64
		var filter bson.D
		// A big page when the reader is in its first half and wants at
		// least half a big page: one query instead of up to ten, for at
		// most half a page read in vain.
		if n%BigPage < BigPage/2 && limit-len(page.Records) >= BigPage/2 {
			hi = (n/BigPage + 1) * BigPage
			filter = p1Filter(scope, n/BigPage)
		} else {
			hi = (n/SmallPage + 1) * SmallPage
			filter = p2Filter(scope, n/SmallPage)
		}
		var bySeq map[int64]*readDoc
		var mark *readDoc
		var kept keptStates
		budget := maxBytes - page.Bytes
		err := s.scan(ctx, filter, nil,
			func() { bySeq, mark, kept = map[int64]*readDoc{}, nil, keptStates{} },
			func(d *readDoc) {
				seq, ok := d.seq()
				switch {
				case !ok:
					if d.ID == markID(scope, hi/SmallPage) {
						mark = d
					}
				case seq >= n && seq < hi: // the entries before n were handed out already
					bySeq[seq] = d
					kept.add(d, budget)
				}
			})
		if err != nil {
			return server.ChangesPage{}, err
		}
		seq := n
		var take []*readDoc
		for ; seq < hi && len(page.Records)+len(take) < limit; seq++ {
			d := bySeq[seq]
			if d == nil {
				break
			}
			if d.dropped || (page.Bytes+int64(len(d.St)) > maxBytes && len(page.Records)+len(take) > 0) {
				page.More = true
				break
			}
			if !d.Noop {
				take = append(take, d)
				page.Bytes += int64(len(d.St))
			}
			page.Pos = seq
		}
		recs := make([]*syncproto.Record, len(take))
		if err := parallel.Do(len(take), func(i int) (err error) {
			recs[i], err = decodeState(take[i])
			return err
		}); err != nil {
			return server.ChangesPage{}, err
		}
		page.Records = append(page.Records, recs...)
		if page.More {
			break
		}
		if seq == hi || len(page.Records) >= limit {
			continue
		}
		// seq is a hole. Is anything written beyond it?
		next := hi
		for t := seq + 1; t < hi; t++ {
			if bySeq[t] != nil {
				next = t
				break
			}
		}
		var ref *readDoc
		switch {
		case next < hi:
			ref = bySeq[next]
		case mark != nil:
			ref = mark
		default:
			// Nothing beyond in this page, but a writer that died right
			// after allocating leaves whole pages empty and unmarked: ask
			// the counter whether anything was allocated beyond.
			ref, err = s.beyond(ctx, scope, seq, hi, &counter)
			if err != nil {
				return server.ChangesPage{}, err
			}
			if ref == nil {
				if page.Pos == after && after > counter.Next {
					// The cursor claims what was never allocated, unless
					// the counter lags (FerretDB): then its slot exists.
					if ok, err := s.slotTaken(ctx, scope, after); err != nil {
						return server.ChangesPage{}, err
					} else if !ok {
						return server.ChangesPage{}, syncproto.StartOverError()
					}
				}
				return page, nil // up to date
			}
			if ref.ID == "" { // the counter: fill only what was allocated
				next = min(next, counter.Next+1)
			}
		}
		// A no-op beyond is a slot already given up for dead: no live
		// writer to wait for. Otherwise wait out the lease.
		if !ref.Noop && s.now().Sub(ref.At) < s.Lease {
			return page, nil // its writer may still be writing
		}
		holes := make([]int64, 0, next-seq)
		for t := seq; t < next; t++ {
			holes = append(holes, t)
		}
		if err := s.fillNoops(ctx, scope, holes); err != nil {
			return server.ChangesPage{}, err
		}
	}
	return page, nil
}

// slotTaken reports whether slot seq of a scope's log holds anything.
func (s *SyncStore) slotTaken(ctx context.Context, scope string, seq int64) (bool, error) {
	err := retry(ctx, func() error {
		return s.log().FindOne(ctx, bson.D{{Key: "_id", Value: slotID(scope, seq)}}, options.FindOne().SetProjection(bson.D{{Key: "_id", Value: 1}})).Err()
	})
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, mongo.ErrNoDocuments):
		return false, nil
	}
	return false, fmt.Errorf("mongo: read slot %s: %w", slotID(scope, seq), err)
}

// maxLookAhead bounds how many small pages beyond a hole a reader reads
// to find out whether anything was written after it.
const maxLookAhead = 8

// counterDoc is a scope's sequence counter, read by readers at a hole.
type counterDoc struct {
	Next int64     `bson:"next"`
	At   time.Time `bson:"at"`
	H    int64     `bson:"h"` // the horizon
	read bool
}

// counter reads a scope's sequence counter; a scope never written has
// none, and reads as zero.
func (s *SyncStore) counter(ctx context.Context, scope string) (counterDoc, error) {
	var c counterDoc
	err := retry(ctx, func() error {
		return s.db.Collection(ScopesCollection).FindOne(ctx, bson.D{{Key: "_id", Value: scope}}).Decode(&c)
	})
	if err != nil && !errors.Is(err, mongo.ErrNoDocuments) {
		return counterDoc{}, fmt.Errorf("mongo: read counter of %s: %w", scope, err)
	}
	return c, nil
}

// beyond returns evidence that slots after seq in page [.., hi) or later
// were allocated,
// for a reader stuck at hole seq with nothing after it in its page, or
// nil when there is none (nothing was allocated beyond seq, or only so
// recently that no page ahead holds anything yet). If the latest
// allocation (the counter's time) is older than the lease, every slot not
// written by then is dead and the counter is the evidence; otherwise the
// earliest document of the next few small pages is. The counter is read
// at most once per call of Changes (cached in *c).
func (s *SyncStore) beyond(ctx context.Context, scope string, seq, hi int64, c *counterDoc) (*readDoc, error) {
	if !c.read {
		var err error
		if *c, err = s.counter(ctx, scope); err != nil {
			return nil, err
		}
		c.read = true
	}
	if c.Next < seq {
		return nil, nil
	}
	if s.now().Sub(c.At) >= s.Lease {
		return &readDoc{At: c.At}, nil
	}
	for q := hi / SmallPage; q <= c.Next/SmallPage && q < hi/SmallPage+maxLookAhead; q++ {
		docs, err := s.find(ctx, p2Filter(scope, q), noState)
		if err != nil {
			return nil, err
		}
		var first *readDoc
		for i := range docs {
			if first == nil || docs[i].At.Before(first.At) {
				first = &docs[i]
			}
		}
		if first != nil {
			return first, nil
		}
	}
	return nil, nil
}

// compacted is a log slot that compaction turns into a no-op: a plain one,
// or one that keeps its record's revision taken.
type compacted struct {
	seq int64
	rid string
	rev int64
}

func (c compacted) doc(scope string, now time.Time) entryDoc {
	d := newNoop(scope, c.seq, now)
	if c.rid != "" {
		d.RID, d.Rev, d.RR = c.rid, c.rev, rr(scope, c.rid, c.rev)
	}
	return d
}

// readScope reads every entry of a scope's log without the states, big
// page by big page, up to the counter and then on while pages are found
// (on FerretDB the counter can lag behind what was written; see
// SyncStore).
func (s *SyncStore) readScope(ctx context.Context, scope string) ([]readDoc, error) {
	counter, err := s.counter(ctx, scope)
	if err != nil {
		return nil, err
	}
	var out []readDoc
	for p := int64(0); ; p++ {
		docs, err := s.find(ctx, p1Filter(scope, p), noState)
		if err != nil {
			return nil, err
		}
		out = append(out, docs...)
		if len(docs) == 0 && p > counter.Next/BigPage {
			return out, nil
		}
	}
}

// Compact implements server.SyncStore.
func (s *SyncStore) Compact(ctx context.Context, scope string, opt server.CompactOptions) (server.CompactResult, error) {
	if err := checkScope(scope); err != nil {
		return server.CompactResult{}, err
	}
	docs, err := s.readScope(ctx, scope)
	if err != nil {
		return server.CompactResult{}, err
	}
	type entry struct {
		seq int64
		d   *readDoc
	}
	byRecord := map[string][]entry{}
	for i := range docs {
		seq, ok := docs[i].seq()
		if !ok || docs[i].Noop || docs[i].RID == "" { // marks, no-ops, compacted entries
			continue
		}
		byRecord[docs[i].RID] = append(byRecord[docs[i].RID], entry{seq, &docs[i]})
	}
	within := func(seq int64) bool { return opt.UpTo <= 0 || seq <= opt.UpTo }
	var res server.CompactResult
	var replace []compacted
	var horizon int64
	for _, es := range byRecord {
		sort.Slice(es, func(i, j int) bool { return es[i].d.Rev < es[j].d.Rev })
		latest := es[len(es)-1]
		maxSeq := int64(0)
		for _, e := range es {
			maxSeq = max(maxSeq, e.seq)
		}
		if latest.d.Del && !opt.TombstonesBefore.IsZero() && latest.d.At.Before(opt.TombstonesBefore) && within(maxSeq) {
			// Forget the record: plain no-ops free its revisions, so a
			// phone that edits it later creates it anew at rev 1.
			for _, e := range es {
				replace = append(replace, compacted{seq: e.seq})
			}
			res.Tombstones++
			res.Superseded += len(es) - 1
			horizon = max(horizon, latest.seq)
			continue
		}
		for _, e := range es[:len(es)-1] {
			if within(e.seq) {
				// Keep the revision taken: a push tries a record as new
				// (rev 1) before reading it, and must fail.
				replace = append(replace, compacted{seq: e.seq, rid: e.d.RID, rev: e.d.Rev})
				res.Superseded++
			}
		}
	}
	if horizon > 0 {
		// Raise the horizon before forgetting: a puller that reads the
		// purged slots afterwards is then told to start over (the sync
		// service checks horizons again after reading).
		_, err := s.db.Collection(ScopesCollection).UpdateOne(ctx, bson.D{{Key: "_id", Value: scope}},
			bson.D{{Key: "$max", Value: bson.D{{Key: "h", Value: horizon}}}}, options.UpdateOne().SetUpsert(true))
		if err != nil {
			return server.CompactResult{}, fmt.Errorf("mongo: compact %s: raise horizon: %w", scope, err)
		}
	}
	now := s.now()
	// At most 40 statements per update command, one command at a time:
	// FerretDB v1 keeps a PostgreSQL connection per statement until the
	// command ends, and a command with more statements than its pool (50)
	// hangs the server until it is restarted.
	const chunk = 40
	for i := 0; i < len(replace); i += chunk {
		var models []mongo.WriteModel
		for _, c := range replace[i:min(i+chunk, len(replace))] {
			models = append(models, mongo.NewReplaceOneModel().SetFilter(bson.D{{Key: "_id", Value: slotID(scope, c.seq)}}).SetReplacement(c.doc(scope, now)))
		}
		if _, err := s.log().BulkWrite(ctx, models, options.BulkWrite().SetOrdered(true)); err != nil {
			return server.CompactResult{}, fmt.Errorf("mongo: compact %s: %w", scope, err)
		}
	}
	hz, err := s.Horizons(ctx, []string{scope})
	if err != nil {
		return server.CompactResult{}, err
	}
	res.Horizon = hz[scope]
	return res, nil
}

// pullPlan is the counters of the scopes of one pull, read in one query
// by PlanPull.
type pullPlan struct {
	counters map[string]counterDoc // every scope planned; a scope never written has a zero counter
}

type pullPlanKey struct{}

// plannedPull is the most scopes a pull reads the counters of one by one
// (when it needs them); for more, PlanPull reads them all in one query.
const plannedPull = horizonLookups

// PlanPull implements server.PullPlanner: for a pull of many scopes it
// reads the counters of every scope in one query, so that a scope with
// nothing new costs Changes one page read instead of a page read and a
// counter read. A counter read earlier than Changes would have read it is
// as good: "nothing allocated beyond" then holds at an earlier moment
// (the reader is up to date as of then, as if it had come a little
// earlier), and the lease is judged on an older allocation time only for
// the slots allocated by then.
func (s *SyncStore) PlanPull(ctx context.Context, scopes []string) (context.Context, error) {
	if len(scopes) <= plannedPull {
		return ctx, nil
	}
	plan := &pullPlan{counters: make(map[string]counterDoc, len(scopes))}
	for _, sc := range scopes {
		plan.counters[sc] = counterDoc{read: true}
	}
	err := retry(ctx, func() error {
		cur, err := s.db.Collection(ScopesCollection).Find(ctx, bson.D{})
		if err != nil {
			return err
		}
		defer cur.Close(context.WithoutCancel(ctx))
		for cur.Next(ctx) {
			var d struct {
				ID   string    `bson:"_id"`
				Next int64     `bson:"next"`
				At   time.Time `bson:"at"`
				H    int64     `bson:"h"`
			}
			if err := cur.Decode(&d); err != nil {
				return err
			}
			if _, ok := plan.counters[d.ID]; ok {
				plan.counters[d.ID] = counterDoc{Next: d.Next, At: d.At, H: d.H, read: true}
			}
		}
		return cur.Err()
	})
	if err != nil {
		return ctx, fmt.Errorf("mongo: read counters: %w", err)
	}
	return context.WithValue(ctx, pullPlanKey{}, plan), nil
}

// plannedCounter returns the counter of scope read by PlanPull, if any.
func plannedCounter(ctx context.Context, scope string) (counterDoc, bool) {
	if plan, ok := ctx.Value(pullPlanKey{}).(*pullPlan); ok {
		c, ok := plan.counters[scope]
		return c, ok
	}
	return counterDoc{}, false
}
