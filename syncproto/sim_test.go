package syncproto_test

import (
	"flag"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/fieldsync/fieldsync/syncproto"
	"github.com/google/uuid"
)

var (
	simSeed      = flag.Uint64("sim.seed", 1, "first seed of the convergence simulation (schedule i uses seed+i)")
	simSchedules = flag.Int("sim.schedules", 0, "schedules to run (default 10000; 2500 with -race; 500 with -short)")
)

// raceEnabled is set by race_test.go in builds with -race.
var raceEnabled bool

// A write made during a simulation, identified by key: "rec/s/HLC" for a
// field version, "rec/a/ID" for an item, "rec/d/HLC" for a delete.
type simWrite struct {
	key   string
	kind  byte // 's' Set, 'a' Append, 'd' Delete
	rec   int
	field string
	hlc   syncproto.HLC
	vec   syncproto.Vector
	item  string
	seen  map[string]bool // the writes its author had seen (received), itself excluded
}

// simDelta is an outbox entry of a phone: one write's delta, pushed in
// order.
type simDelta struct {
	rec  int
	d    *syncproto.Record
	base syncproto.Vector
	key  string
}

type simReplica struct {
	w      *syncproto.Writer
	offset time.Duration // device clock error
	recs   []*syncproto.Record
	seen   []map[string]bool // per record: keys of the writes this replica has received
	outbox []simDelta
}

type simStats struct {
	schedules, replicas, steps                       int
	sets, appends, deletes, pushes, pulls, gossips   int
	decisions                                        map[string]int
	fieldConflicts, conflictLog, superseded          int
	tombstones, deleteConflicts, finalVersionsInConf int
}

// TestConvergenceSimulation runs seeded schedules in which 3 to 6
// replicas (replica 0 is the server; the others are phones, whose clocks
// are off by up to an hour and sometimes jump back) edit one or two
// shared records offline: Set, Append and Delete. Phones push their
// outbox of single-write deltas to the server in order (Decide, with the
// server's arrival stamps), pull the server's full state, and sometimes
// exchange full states directly with each other, all in random order.
// At the end every phone pushes and pulls once more. Then:
//
//   - after the final pushes, merging any phone's full state into the
//     server changes nothing (every write reached the server as a delta);
//   - all replicas hold byte-identical records;
//   - no edit is lost: a field write is not lost if its version is in
//     the final field, or in the conflict log, or it was superseded by a
//     write that is itself not lost, whose vector is greater, and whose
//     author had actually received it (the simulation tracks what every
//     replica received, independently of the vectors, so a vector that
//     claims knowledge its author did not have is caught); every appended
//     item is in the final collection;
//   - a tombstone hides nothing its deleter had not received (directly,
//     or through an earlier delete it had received). In half the
//     schedules the office deletes every record just before the final
//     exchange, while phones still hold unpushed writes.
func TestConvergenceSimulation(t *testing.T) {
	n := *simSchedules
	switch {
	case n > 0:
	case testing.Short():
		n = 500
	case raceEnabled:
		// This package starts no goroutines: the race detector makes the
		// simulation about five times slower and finds nothing more, so
		// CI's -race run does a quarter of the schedules. The plain run
		// does all 10,000.
		n = 2_500
	default:
		n = 10_000
	}
	st := &simStats{decisions: map[string]int{}}
	for i := range n {
		seed := *simSeed + uint64(i)
		if !runSchedule(t, seed, st, nil) {
			t.Fatalf("schedule with seed %d failed; rerun it with -run TestConvergenceSimulation -sim.seed %d -sim.schedules 1", seed, seed)
		}
	}
	t.Logf("%d schedules (seeds %d..%d), %d replicas in all, %d steps: %d sets, %d appends, %d deletes, %d pushes, %d pulls, %d peer exchanges",
		st.schedules, *simSeed, *simSeed+uint64(n)-1, st.replicas, st.steps, st.sets, st.appends, st.deletes, st.pushes, st.pulls, st.gossips)
	t.Logf("server decisions: %v", st.decisions)
	t.Logf("final records: %d with fields in conflict (%d versions), %d conflict revisions logged, %d writes superseded by writes that had seen them, %d tombstones, %d delete conflicts",
		st.fieldConflicts, st.finalVersionsInConf, st.conflictLog, st.superseded, st.tombstones, st.deleteConflicts)
}

// TestSimulationReplaysFromSeed runs schedules twice with one seed and
// checks that the two runs' traces (every write with its stamps, every
// server decision, exchange and clock change, and the final records) are
// byte-identical: a failing seed of TestConvergenceSimulation replays.
func TestSimulationReplaysFromSeed(t *testing.T) {
	for i := range uint64(20) {
		seed := *simSeed + i
		var traces [2]strings.Builder
		for k := range traces {
			if !runSchedule(t, seed, &simStats{decisions: map[string]int{}}, &traces[k]) {
				t.Fatalf("schedule with seed %d failed", seed)
			}
		}
		a, b := traces[0].String(), traces[1].String()
		if a != b {
			t.Fatalf("seed %d: two runs differ:\n%s\n---\n%s", seed, a, b)
		}
		if !strings.Contains(a, "final ") || strings.Count(a, "\n") < 10 {
			t.Fatalf("seed %d: the trace does not show the run:\n%s", seed, a)
		}
	}
}

// runSchedule runs one schedule and reports whether its checks passed.
// When trace is not nil, it writes there a line per step and the final
// records.
func runSchedule(t *testing.T, seed uint64, st *simStats, trace *strings.Builder) bool {
	t.Helper()
	tr := func(format string, args ...any) {
		if trace != nil {
			fmt.Fprintf(trace, format+"\n", args...)
		}
	}
	rng := rand.New(rand.NewPCG(seed, 0x5eed))
	nrep := 3 + rng.IntN(4)
	nrec := 1 + rng.IntN(2)
	fields := []string{"a", "b", "c"}
	now := t0
	serverNow := func() time.Time { return now }

	created := now.Add(-time.Hour)
	reps := make([]*simReplica, nrep)
	for i := range reps {
		rp := &simReplica{w: &syncproto.Writer{Replica: rid(i), Author: fmt.Sprintf("u%d", i)}}
		if i > 0 {
			rp.offset = []time.Duration{0, 0, time.Second, -time.Second, time.Hour, -time.Hour}[rng.IntN(6)]
		}
		for k := range nrec {
			r := &syncproto.Record{ID: uuid.MustParse(fmt.Sprintf("0192b000-0000-7000-8000-%012x", 0x500+k)), Kind: "visit", SchoolID: schoolID, CreatedAt: created, CreatedBy: "u0"}
			r.ServerReceivedAt = &created
			rp.recs = append(rp.recs, r.Clone())
			rp.seen = append(rp.seen, map[string]bool{})
		}
		reps[i] = rp
	}
	var writes []*simWrite
	seq := 0
	st.schedules++
	st.replicas += nrep

	write := func(i, k int, kind byte) {
		rp := reps[i]
		rp.w.Now = now.Add(rp.offset)
		cur := rp.recs[k]
		base := cur.Version()
		seq++
		var next, delta *syncproto.Record
		w := &simWrite{kind: kind, rec: k, seen: maps.Clone(rp.seen[k])}
		switch kind {
		case 's':
			w.field = fields[rng.IntN(len(fields))]
			next, delta = syncproto.Set(cur, w.field, str(fmt.Sprintf("v%d.%d", i, seq)), rp.w)
			fv := delta.Fields[w.field][0]
			w.hlc, w.vec = fv.HLC, fv.Vector
			w.key = fmt.Sprintf("%d/s/%s", k, fv.HLC)
			st.sets++
		case 'a':
			w.item = fmt.Sprintf("i%d.%d", i, seq)
			next, delta = syncproto.Append(cur, "events", w.item, js(fmt.Sprintf(`{"n":%d}`, seq)), rp.w)
			w.key = fmt.Sprintf("%d/a/%s", k, w.item)
			st.appends++
		case 'd':
			next, delta = syncproto.Delete(cur, rp.w)
			w.hlc, w.vec = delta.Deleted[0].HLC, delta.Deleted[0].Vector
			w.key = fmt.Sprintf("%d/d/%s", k, w.hlc)
			st.deletes++
		}
		writes = append(writes, w)
		rp.seen[k][w.key] = true
		if trace != nil {
			tr("%s write %c on %d by %d: %s %s", now.Format(time.TimeOnly), kind, k, i, w.key, mustJSON(t, delta))
		}
		if i == 0 {
			// An office write on the server: stored with its arrival stamps.
			next = mustMerge(t, cur, syncproto.StampArrival(cur, delta, serverNow()))
		} else {
			rp.outbox = append(rp.outbox, simDelta{rec: k, d: delta, base: base, key: w.key})
		}
		rp.recs[k] = next
	}
	push := func(i int) {
		rp, srv := reps[i], reps[0]
		for _, d := range rp.outbox {
			stored := srv.recs[d.rec]
			dec, err := syncproto.Decide(stored, syncproto.StampArrival(stored, d.d, serverNow()), d.base)
			if err != nil {
				t.Fatalf("seed %d: Decide: %v", seed, err)
			}
			st.decisions[dec.Status]++
			tr("push %d %s: %s rev %d conflicts %v", i, d.key, dec.Status, dec.Merged.Rev, dec.Conflicts)
			srv.recs[d.rec] = dec.Merged
			srv.seen[d.rec][d.key] = true
		}
		rp.outbox = nil
		st.pushes++
	}
	receive := func(dst, src *simReplica) {
		tr("receive %s <- %s", dst.w.Author, src.w.Author)
		for k := range nrec {
			dst.recs[k] = mustMerge(t, dst.recs[k], src.recs[k])
			maps.Copy(dst.seen[k], src.seen[k])
		}
	}

	steps := 10 + rng.IntN(21)
	st.steps += steps
	for range steps {
		now = now.Add(time.Duration(rng.IntN(3)) * time.Second)
		i := rng.IntN(nrep)
		k := rng.IntN(nrec)
		switch x := rng.IntN(100); {
		case x < 40:
			write(i, k, 's')
		case x < 50:
			write(i, k, 'a')
		case x < 56:
			write(i, k, 'd')
		case x < 72:
			if i > 0 {
				push(i)
			}
		case x < 88:
			if i > 0 {
				receive(reps[i], reps[0])
				st.pulls++
			}
		case x < 96:
			if j := 1 + rng.IntN(nrep-1); i > 0 && j != i {
				a, b := reps[i].recs[k], reps[j].recs[k]
				if !mustMerge(t, a, b).Equal(mustMerge(t, b, a)) {
					t.Errorf("seed %d: Merge not commutative", seed)
					return false
				}
				receive(reps[j], reps[i])
				st.gossips++
			}
		default:
			if i > 0 { // the phone's clock is corrected, possibly backwards
				reps[i].offset = time.Duration(rng.IntN(7200)-3600) * time.Second
				tr("clock %d off by %s", i, reps[i].offset)
			}
		}
	}

	// In half the schedules the office deletes the records from what the
	// server holds while phones still have writes in their outboxes: the
	// moment a delete that claimed more than it had received would hide
	// them.
	if rng.IntN(2) == 0 {
		for k := range nrec {
			write(0, k, 'd')
		}
	}

	// Full exchange.
	now = now.Add(time.Minute)
	for i := 1; i < nrep; i++ {
		push(i)
	}
	for i := 1; i < nrep; i++ {
		for k := range nrec {
			if m := mustMerge(t, reps[0].recs[k], reps[i].recs[k]); !m.Equal(reps[0].recs[k]) {
				t.Errorf("seed %d: after all pushes, phone %d still holds something the server lacks:\nserver %s\nmerged %s",
					seed, i, mustJSON(t, reps[0].recs[k]), mustJSON(t, m))
				return false
			}
		}
	}
	for i := 1; i < nrep; i++ {
		receive(reps[i], reps[0])
	}
	for k := range nrec {
		final := reps[0].recs[k]
		if trace != nil {
			tr("final %d %s", k, mustJSON(t, final))
		}
		for i := 1; i < nrep; i++ {
			if !reps[i].recs[k].Equal(final) {
				t.Errorf("seed %d: replica %d differs from the server after full exchange:\n%s\n%s", seed, i, mustJSON(t, reps[i].recs[k]), mustJSON(t, final))
				return false
			}
		}
		if err := final.Validate(); err != nil {
			t.Errorf("seed %d: final record invalid: %v", seed, err)
			return false
		}
		if msg := checkNoLoss(final, k, writes, st); msg != "" {
			t.Errorf("seed %d, record %d: %s\nfinal: %s", seed, k, msg, mustJSON(t, final))
			return false
		}
	}
	return true
}

// checkNoLoss is the oracle: see TestConvergenceSimulation.
func checkNoLoss(final *syncproto.Record, k int, writes []*simWrite, st *simStats) string {
	byKey := map[string]*simWrite{}
	for _, w := range writes {
		if w.rec == k {
			byKey[w.key] = w
		}
	}
	present := map[string]bool{}
	for f, fld := range final.Fields {
		for _, v := range fld {
			present[fmt.Sprintf("%d/s/%s", k, v.HLC)] = true
			_ = f
		}
	}
	logged := map[string]bool{}
	for _, c := range final.Conflicts {
		logged[fmt.Sprintf("%d/s/%s", k, c.Version.HLC)] = true
	}
	items := map[string]bool{}
	for _, it := range final.Items["events"] {
		items[it.ID] = true
	}

	notLost := map[string]bool{}
	var sets []*simWrite
	for _, w := range writes {
		if w.rec != k {
			continue
		}
		switch w.kind {
		case 's':
			sets = append(sets, w)
			if present[w.key] || logged[w.key] {
				notLost[w.key] = true
			}
		case 'a':
			if !items[w.item] {
				return "appended item " + w.item + " is missing"
			}
		}
	}
	for changed := true; changed; {
		changed = false
		for _, w := range sets {
			if notLost[w.key] {
				continue
			}
			for _, v := range sets {
				if v.field == w.field && notLost[v.key] && v.seen[w.key] && w.vec.Compare(v.vec) == syncproto.Lesser {
					notLost[w.key] = true
					changed = true
					st.superseded++
					break
				}
			}
		}
	}
	var lost []string
	for _, w := range sets {
		if !notLost[w.key] {
			lost = append(lost, fmt.Sprintf("%s (field %s, vv %v)", w.key, w.field, w.vec))
		}
	}
	if len(lost) > 0 {
		sort.Strings(lost)
		return "lost edits: " + strings.Join(lost, ", ")
	}

	if final.IsDeleted() {
		st.tombstones++
		win, _ := final.Deleted.Winner()
		del := byKey[fmt.Sprintf("%d/d/%s", k, win.HLC)]
		if del == nil {
			return "the winning delete is not a write of this simulation"
		}
		known := knowledge(del, byKey, map[string]bool{})
		for _, key := range slices.Sorted(maps.Keys(present)) {
			if !known[key] {
				return "the tombstone hides " + key + ", which its deleter had not received"
			}
		}
		for _, id := range slices.Sorted(maps.Keys(items)) {
			if !known[fmt.Sprintf("%d/a/%s", k, id)] {
				return "the tombstone hides item " + id + ", which its deleter had not received"
			}
		}
	} else if final.DeleteConflict() {
		st.deleteConflicts++
	}
	if c := final.ConflictFields(); len(c) > 0 && !slices.Equal(c, []string{"deleted"}) {
		st.fieldConflicts++
		for _, f := range c {
			st.finalVersionsInConf += len(final.Fields[f])
		}
	}
	st.conflictLog += len(final.Conflicts)
	return ""
}

// knowledge returns what a delete's author had received, with what the
// authors of the deletes it had received had received, recursively.
func knowledge(d *simWrite, byKey map[string]*simWrite, visited map[string]bool) map[string]bool {
	out := maps.Clone(d.seen)
	visited[d.key] = true
	for key := range d.seen {
		if w := byKey[key]; w != nil && w.kind == 'd' && !visited[key] {
			maps.Copy(out, knowledge(w, byKey, visited))
		}
	}
	return out
}
