package storetest

import (
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
	"github.com/google/uuid"

	"github.com/fieldsync/fieldsync/server"
	"github.com/fieldsync/fieldsync/syncproto"
)

// ConcurrencyConfig shapes ConcurrentPushes.
type ConcurrencyConfig struct {
	// Devices push at the same moment in every round, alternately through
	// two Syncers.
	Devices int
	// Processes is 1 when both Syncers share one store (one server
	// process), 2 when each has its own store on the same database (two
	// processes).
	Processes int
	// Rounds of simultaneous pushes.
	Rounds int
	// Seed decides which devices pull before a round (fresh or stale
	// bases) and which also write the shared field (overlapping writes).
	Seed uint64
}

// DefaultConcurrency is the size the contract suite runs: small enough
// for make test, large enough to make two writers race for one revision
// in every round.
var DefaultConcurrency = ConcurrencyConfig{Devices: 6, Rounds: 6, Processes: 2, Seed: 1}

// ConcurrencyStats counts what ConcurrentPushes did.
type ConcurrencyStats struct {
	Pushes    int // acknowledged pushes
	Revisions int // revisions logged
	Lost      int // acknowledged changes missing from a later revision
}

func testConcurrentPushes(t *testing.T, env Env) {
	ConcurrentPushes(t, env, DefaultConcurrency)
}

func testConcurrentPushesOneProcess(t *testing.T, env Env) {
	cfg := DefaultConcurrency
	cfg.Processes, cfg.Seed = 1, 2
	ConcurrentPushes(t, env, cfg)
}

// pushOp is one push of the history: what was sent and what the server
// answered.
type pushOp struct {
	dev    int
	fields []string // the fields the change wrote
	delta  *syncproto.Record
	base   syncproto.Vector
	res    syncproto.Result
}

// ConcurrentPushes is the contract of concurrent writers of one record:
// Devices phones edit one record round after round and push at the same
// moment, through two Syncers on two stores of one database. Every push
// writes a field no other push writes, and some also write one shared
// field, from fresh or stale bases. It checks, over the whole history:
//
//   - linearizability (porcupine): there is one order of the acknowledged
//     pushes, consistent with real time, in which the sequential
//     specification (syncproto.Decide on the record so far) gives every
//     push exactly the status, revision and conflicts the server answered;
//   - every change acknowledged at revision r is in revision r and in
//     every later one (for the shared field: among its versions or in the
//     record's conflict log), and no two pushes were told one revision;
//   - the logged revisions are 1..N, each once, and the final state is the
//     join of every acknowledged change.
func ConcurrentPushes(t *testing.T, env Env, cfg ConcurrencyConfig) ConcurrencyStats {
	ctx := t.Context()
	rng := rand.New(rand.NewPCG(cfg.Seed, 0x5eed))
	t.Logf("seed %d, %d devices, %d rounds, %d processes", cfg.Seed, cfg.Devices, cfg.Rounds, cfg.Processes)

	second := env.Store
	if cfg.Processes > 1 {
		second = env.Second()
	}
	syncers := []*server.Syncer{newSyncer(env, env.Store), newSyncer(env, second)}
	for _, sy := range syncers {
		// Every writer may lose the race for a revision to each of the
		// others in a round; none may give up.
		sy.MaxAttempts = 4 * cfg.Devices
	}
	school := newID().String()
	g := server.Grant{Schools: []string{school}}

	phones := make([]*phone, cfg.Devices)
	for i := range phones {
		phones[i] = newPhone(env.Clock)
	}
	var clock atomic.Int64 // porcupine's timestamps: a logical clock
	var history []porcupine.Operation
	var ops []pushOp
	record := func(op pushOp, call, ret int64) {
		history = append(history, porcupine.Operation{ClientId: op.dev, Input: len(ops), Call: call, Output: len(ops), Return: ret})
		ops = append(ops, op)
	}

	seed := phones[0].create(school, "hazard", "title", "楼梯扶手松动")
	id := seed.Record.ID
	call := clock.Add(1)
	resp := push(t, syncers[0], phones[0], g, seed)
	record(pushOp{dev: 0, fields: []string{"title"}, delta: seed.Record, res: resp.Results[0]}, call, clock.Add(1))

	refresh := func(ph *phone) {
		r, err := syncers[0].Record(ctx, school, id)
		if err != nil {
			t.Fatalf("read %s: %v", id, err)
		}
		ph.learn(t, r)
	}
	for _, ph := range phones {
		refresh(ph)
	}

	for round := range cfg.Rounds {
		changes := make([]syncproto.Change, len(phones))
		written := make([][]string, len(phones))
		for d, ph := range phones {
			if rng.IntN(2) == 0 {
				refresh(ph) // a fresh base; otherwise the phone pushes from what it last saw
			}
			written[d] = []string{fmt.Sprintf("w_%d_%d", round, d)}
			if rng.IntN(2) == 0 {
				written[d] = append(written[d], "shared")
			}
			kv := make([]string, 0, 4)
			for _, f := range written[d] {
				kv = append(kv, f, fmt.Sprintf("第%d轮 设备%d", round, d))
			}
			changes[d] = ph.edit(id, kv...)
		}
		type answer struct {
			call, ret int64
			res       syncproto.Result
			err       error
		}
		answers := make([]answer, len(phones))
		start := make(chan struct{})
		var wg sync.WaitGroup
		for d, ph := range phones {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				a := answer{call: clock.Add(1)}
				resp, err := pushBatch(t, syncers[d%2], ph, g, newID(), changes[d])
				a.ret = clock.Add(1)
				if err == nil {
					a.res = resp.Results[0]
				}
				a.err = err
				answers[d] = a
			}()
		}
		close(start)
		wg.Wait()
		for d, a := range answers {
			if a.err != nil {
				t.Fatalf("round %d, device %d: push: %v", round, d, a.err)
			}
			switch a.res.Status {
			case syncproto.StatusApplied, syncproto.StatusMerged, syncproto.StatusConflict:
			default:
				t.Fatalf("round %d, device %d: status %s (%+v): every push here is a new edit", round, d, a.res.Status, a.res.Error)
			}
			record(pushOp{dev: d, fields: written[d], delta: changes[d].Record, base: changes[d].Base, res: a.res}, a.call, a.ret)
		}
	}

	st := checkHistory(t, env, school, id, ops)
	checkLinearizable(t, history, ops)
	return st
}

// edit writes several fields of the phone's copy of a record in one
// change, as one outbox entry holding several edits folds them.
func (ph *phone) edit(id uuid.UUID, kv ...string) syncproto.Change {
	r := ph.local[id]
	base := r.Version()
	var delta *syncproto.Record
	for i := 0; i+1 < len(kv); i += 2 {
		ph.w.Now = ph.clock.Now()
		var d *syncproto.Record
		r, d = syncproto.Set(r, kv[i], jsonString(kv[i+1]), &ph.w)
		if delta == nil {
			delta = d
		} else {
			delta, _ = syncproto.Merge(delta, d)
		}
	}
	ph.local[id] = r
	return syncproto.Change{OpID: newID(), Record: delta, Base: base}
}

// written returns the version a change wrote to a field.
func written(delta *syncproto.Record, field string) syncproto.FieldVersion {
	return delta.Fields[field][0]
}

func fieldSame(a, b syncproto.Field) bool { return slices.EqualFunc(a, b, sameVersion) }

func sameVersion(a, b syncproto.FieldVersion) bool {
	x, _ := syncproto.Marshal(a)
	y, _ := syncproto.Marshal(b)
	return string(x) == string(y)
}

// holds reports whether state r keeps version v of field f: among the
// field's versions, superseded by a version written by someone who had
// seen v (its vector dominates v's: an ordinary overwrite), or in the
// record's conflict log.
func holds(r *syncproto.Record, f string, v syncproto.FieldVersion) bool {
	if slices.ContainsFunc(r.Fields[f], func(x syncproto.FieldVersion) bool {
		return sameVersion(x, v) || v.Vector.Compare(x.Vector) == syncproto.Lesser
	}) {
		return true
	}
	return slices.ContainsFunc(r.Conflicts, func(c syncproto.ConflictRevision) bool {
		return c.Field == f && sameVersion(c.Version, v)
	})
}

// checkHistory reads every logged revision of the record and checks the
// acknowledged pushes against them.
func checkHistory(t *testing.T, env Env, school string, id uuid.UUID, ops []pushOp) ConcurrencyStats {
	t.Helper()
	page, err := env.Store.Changes(t.Context(), school, 0, 1<<20, 1<<40)
	if err != nil {
		t.Fatalf("read the log: %v", err)
		return ConcurrencyStats{}
	}
	byRev := map[int64]*syncproto.Record{}
	var top int64
	for _, r := range page.Records {
		if r.ID != id {
			continue
		}
		if byRev[r.Rev] != nil {
			t.Errorf("revision %d is logged twice", r.Rev)
		}
		byRev[r.Rev] = r
		top = max(top, r.Rev)
	}
	for rev := int64(1); rev <= top; rev++ {
		if byRev[rev] == nil {
			t.Errorf("revision %d is missing from the log (top %d)", rev, top)
		}
	}
	told := map[int64]int{}
	lost := 0
	for i, op := range ops {
		if prev, ok := told[op.res.Rev]; ok {
			t.Errorf("pushes %d and %d were both told revision %d", prev, i, op.res.Rev)
		}
		told[op.res.Rev] = i
		for rev := op.res.Rev; rev <= top; rev++ {
			st := byRev[rev]
			if st == nil {
				continue
			}
			for _, f := range op.fields {
				if !holds(st, f, written(op.delta, f)) {
					lost++
					if lost <= 10 {
						t.Errorf("push %d (device %d, %s at rev %d): field %s is not in revision %d", i, op.dev, op.res.Status, op.res.Rev, f, rev)
					}
				}
			}
		}
	}
	if lost > 10 {
		t.Errorf("… %d losses in all", lost)
	}

	// The final state is the join of every acknowledged change.
	var join *syncproto.Record
	for _, op := range ops {
		if join, err = syncproto.Merge(join, op.delta); err != nil {
			t.Fatal(err)
		}
	}
	final, err := env.Store.Current(t.Context(), school, id)
	if err != nil {
		t.Fatal(err)
		return ConcurrencyStats{}
	}
	if got, want := contentOf(final), contentOf(join); got != want {
		var diff []string
		for f, want := range join.Fields {
			if got := final.Fields[f]; !fieldSame(got, want) {
				diff = append(diff, fmt.Sprintf("%s: %d versions, want %d", f, len(got), len(want)))
			}
		}
		slices.Sort(diff)
		t.Errorf("the final state is not the join of the acknowledged changes (%d conflict log entries, want %d):\n  %s",
			len(final.Conflicts), len(join.Conflicts), strings.Join(diff, "\n  "))
	}
	t.Logf("%d pushes acknowledged, %d revisions logged, %d lost", len(ops), top, lost)
	return ConcurrencyStats{Pushes: len(ops), Revisions: int(top), Lost: lost}
}

// contentOf returns the canonical JSON of what the phones wrote in a
// record: its fields and conflict log, without the server's stamps.
func contentOf(r *syncproto.Record) string {
	b, err := syncproto.Marshal(struct {
		Fields    map[string]syncproto.Field   `json:"fields"`
		Conflicts []syncproto.ConflictRevision `json:"conflicts"`
	}{r.Fields, r.Conflicts})
	if err != nil {
		return err.Error()
	}
	return string(b)
}

// modelState is the sequential specification's state: the record as the
// pushes so far made it, and its revision.
type modelState struct {
	rev int64
	rec *syncproto.Record
	key string // contentOf(rec), for Equal
}

// checkLinearizable checks the history against the sequential
// specification of a push: Decide on the record so far.
func checkLinearizable(t *testing.T, history []porcupine.Operation, ops []pushOp) {
	t.Helper()
	model := porcupine.Model{
		Init: func() any { return modelState{} },
		Step: func(state, input, output any) (bool, any) {
			st := state.(modelState)
			op := ops[input.(int)]
			d, err := syncproto.Decide(st.rec, op.delta, op.base)
			if err != nil {
				return false, st
			}
			rev := st.rev
			if d.Changed {
				rev++
			}
			if op.res.Rev != rev || op.res.Status != d.Status || !slices.Equal(op.res.Conflicts, d.Conflicts) {
				return false, st
			}
			return true, modelState{rev: rev, rec: d.Merged, key: contentOf(d.Merged)}
		},
		Equal: func(a, b any) bool {
			x, y := a.(modelState), b.(modelState)
			return x.rev == y.rev && x.key == y.key
		},
		DescribeOperation: func(input, output any) string {
			op := ops[input.(int)]
			return fmt.Sprintf("device %d writes %s → %s@%d %v", op.dev, strings.Join(op.fields, ","), op.res.Status, op.res.Rev, op.res.Conflicts)
		},
	}
	res, _ := porcupine.CheckOperationsVerbose(model, history, time.Minute)
	switch res {
	case porcupine.Ok:
	case porcupine.Illegal:
		var lines []string
		for _, h := range history {
			lines = append(lines, fmt.Sprintf("  [%d,%d] %s", h.Call, h.Return, model.DescribeOperation(h.Input, h.Output)))
		}
		t.Errorf("the acknowledged pushes are not linearizable:\n%s", strings.Join(lines, "\n"))
	default:
		t.Errorf("the linearizability check did not finish: %v", res)
	}
}

// testConcurrentSameBatch sends one batch twice at the same moment, as a
// phone whose first attempt timed out does, to two server processes whose
// clocks differ by a second: both copies must get one stored answer, and
// the batch must be written once (no second revision of the edited
// record, one revision of the new one).
func testConcurrentSameBatch(t *testing.T, env Env) {
	ctx := t.Context()
	a := newSyncer(env, env.Store)
	b := newSyncer(env, env.Second())
	// The second process's clock is behind, so that its copy of the batch,
	// should it be applied after the first, would carry an earlier arrival
	// time than the one stored.
	b.Now = func() time.Time { return env.Clock.Now().Add(-time.Second) }
	s := newID().String()
	g := server.Grant{Schools: []string{s}}
	ph := newPhone(env.Clock)
	old := ph.create(s, "hazard", "title", "配电箱未上锁")
	push(t, a, ph, g, old)
	for try := range 8 {
		changes := []syncproto.Change{ph.set(old.Record.ID, "title", fmt.Sprintf("配电箱未上锁 %d", try)), ph.create(s, "visit", "theme", "安全")}
		batch := newID()
		before, err := env.Store.Current(ctx, s, old.Record.ID)
		if err != nil {
			t.Fatal(err)
		}
		var answers [2]syncproto.PushResponse
		var errs [2]error
		start := make(chan struct{})
		var wg sync.WaitGroup
		for i, sy := range []*server.Syncer{a, b} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				answers[i], errs[i] = pushBatch(t, sy, ph, g, batch, changes...)
			}()
		}
		close(start)
		wg.Wait()
		if errs[0] != nil || errs[1] != nil {
			t.Fatalf("try %d: %v, %v", try, errs[0], errs[1])
		}
		if !reflect.DeepEqual(answers[0].Results, answers[1].Results) {
			t.Errorf("try %d: two answers to one batch:\n%+v\n%+v", try, answers[0].Results, answers[1].Results)
		}
		for _, r := range answers[0].Results {
			if r.Status != syncproto.StatusApplied {
				t.Errorf("try %d: %s %s@%d, want applied", try, r.OpID, r.Status, r.Rev)
			}
		}
		after, err := env.Store.Current(ctx, s, old.Record.ID)
		if err != nil {
			t.Fatal(err)
		}
		if after.Rev != before.Rev+1 {
			t.Errorf("try %d: the edited record went from rev %d to %d: the batch was written more than once", try, before.Rev, after.Rev)
		}
		created, err := env.Store.Current(ctx, s, changes[1].Record.ID)
		if err != nil {
			t.Fatal(err)
		}
		if created.Rev != 1 {
			t.Errorf("try %d: the new record is at rev %d, want 1", try, created.Rev)
		}
	}
}
