package storetest

import (
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/fieldsync/fieldsync/server"
	"github.com/fieldsync/fieldsync/syncproto"
)

// state is a record state seen in the log: its id and revision.
type state struct {
	id  uuid.UUID
	rev int64
}

// testPullGapFree runs concurrent pushers on two "processes" (two stores
// on the same data) into two schools, with writers that die between
// allocating and writing, and a clock that jumps past the lease while
// writers are in flight (so readers fill slots that live writers are
// about to write, and those writers must retry elsewhere). Concurrent
// pullers read the log directly. In the end every puller must have seen
// every logged state exactly once, and hold every record at its final
// version.
func testPullGapFree(t *testing.T, env Env) {
	const (
		pushers   = 6
		batches   = 8
		perBatch  = 40
		pullers   = 3
		hotShared = 4 // records every pusher edits (races for revisions)
	)
	stores := []server.SyncStore{env.Store, env.Second()}
	syncers := []*server.Syncer{newSyncer(env, stores[0]), newSyncer(env, stores[1])}
	schools := []string{newID().String(), newID().String()}
	g := server.Grant{Schools: schools}

	// Records every pusher edits, each in its own field.
	seed := newPhone(env.Clock)
	var hot []syncproto.Change
	for i := range hotShared {
		hot = append(hot, seed.create(schools[i%2], "hazard", "title", fmt.Sprintf("hot %d", i)))
	}
	wantStatuses(t, push(t, syncers[0], seed, g, hot...), repeat(syncproto.StatusApplied, hotShared)...)

	var mu sync.Mutex
	logged := map[state]bool{} // every state the pushes wrote
	for _, c := range hot {
		logged[state{c.Record.ID, 1}] = true
	}
	var pushing sync.WaitGroup
	var errMu sync.Mutex
	var errList []error
	report := func(err error) {
		errMu.Lock()
		defer errMu.Unlock()
		errList = append(errList, err)
	}
	for p := range pushers {
		pushing.Add(1)
		go func() {
			defer pushing.Done()
			ph := newPhone(env.Clock)
			rng := rand.New(rand.NewPCG(uint64(p), 7))
			for _, c := range hot {
				ph.local[c.Record.ID] = seed.local[c.Record.ID].Clone()
			}
			for b := range batches {
				var cs []syncproto.Change
				for i := range perBatch {
					cs = append(cs, ph.create(schools[rng.IntN(2)], "visit", "n", fmt.Sprintf("%d-%d-%d", p, b, i)))
				}
				h := hot[rng.IntN(len(hot))].Record.ID
				cs = append(cs, ph.set(h, fmt.Sprintf("p%d", p), fmt.Sprint(b)))
				sy := syncers[(p+b)%2]
				resp, err := pushBatch(t, sy, ph, g, newID(), cs...)
				if err != nil {
					report(fmt.Errorf("pusher %d batch %d: %w", p, b, err))
					return
				}
				mu.Lock()
				for i, res := range resp.Results {
					switch res.Status {
					case syncproto.StatusApplied, syncproto.StatusMerged:
						logged[state{cs[i].Record.ID, res.Rev}] = true
					default:
						report(fmt.Errorf("pusher %d batch %d change %d: %s %+v", p, b, i, res.Status, res.Error))
					}
				}
				mu.Unlock()
				if b%3 == p%3 {
					// A writer of this process dies between allocating
					// and writing.
					if err := env.Reserve(t.Context(), stores[b%2], schools[b%2], 1+rng.IntN(150)); err != nil {
						report(err)
						return
					}
				}
			}
		}()
	}

	// The clock jumps past the lease now and then while writers work.
	done := make(chan struct{})
	var jumps sync.WaitGroup
	jumps.Add(1)
	go func() {
		defer jumps.Done()
		for {
			select {
			case <-done:
				return
			case <-time.After(50 * time.Millisecond):
				env.Clock.Advance(env.Lease + time.Second)
			}
		}
	}()

	var settled atomic.Bool // pushers done and the clock past every lease
	seen := make([]map[state]int, pullers)
	held := make([]map[uuid.UUID]*syncproto.Record, pullers)
	var pulling sync.WaitGroup
	for k := range pullers {
		seen[k], held[k] = map[state]int{}, map[uuid.UUID]*syncproto.Record{}
		pulling.Add(1)
		go func() {
			defer pulling.Done()
			st := stores[k%2]
			rng := rand.New(rand.NewPCG(uint64(k), 11))
			for _, sc := range schools {
				var pos int64
				idle := 0
				for range 100000 {
					// Random count and byte budgets: pages end at either.
					page, err := st.Changes(t.Context(), sc, pos, 1+rng.IntN(150), int64(1+rng.IntN(40000)))
					if err != nil {
						report(fmt.Errorf("puller %d: %w", k, err))
						return
					}
					if page.Pos < pos {
						report(fmt.Errorf("puller %d: position went back from %d to %d", k, pos, page.Pos))
						return
					}
					for _, r := range page.Records {
						seen[k][state{r.ID, r.Rev}]++
						m, err := syncproto.Merge(held[k][r.ID], r)
						if err != nil {
							report(err)
							return
						}
						held[k][r.ID] = m
					}
					if len(page.Records) > 0 || page.Pos != pos {
						pos, idle = page.Pos, 0
						continue
					}
					if settled.Load() {
						if idle++; idle == 2 {
							break
						}
						continue
					}
					time.Sleep(2 * time.Millisecond)
				}
			}
		}()
	}

	pushing.Wait()
	close(done)
	jumps.Wait()
	env.Clock.Advance(env.Lease + time.Second)
	settled.Store(true)
	pulling.Wait()
	for _, err := range errList {
		t.Error(err)
	}
	if t.Failed() {
		return
	}

	// Every revision of every record was logged once, 1..final.
	final := map[uuid.UUID]int64{}
	for s := range logged {
		final[s.id] = max(final[s.id], s.rev)
	}
	for id, rev := range final {
		for r := int64(1); r <= rev; r++ {
			if !logged[state{id, r}] {
				t.Errorf("record %s: revision %d was not reported by any push", id, r)
			}
		}
	}
	for k := range pullers {
		for s := range logged {
			if n := seen[k][s]; n != 1 {
				t.Errorf("puller %d saw %s rev %d %d times, want once", k, s.id, s.rev, n)
			}
		}
		if len(seen[k]) != len(logged) {
			t.Errorf("puller %d saw %d states, the pushes logged %d", k, len(seen[k]), len(logged))
		}
		for id := range final {
			if held[k][id] == nil {
				continue // reported above
			}
			cur, err := env.Store.Current(t.Context(), server.ScopeOf(held[k][id]), id)
			if err != nil {
				t.Fatal(err)
			}
			if !cur.Equal(held[k][id]) {
				t.Errorf("puller %d holds record %s at rev %d, the store at rev %d", k, id, held[k][id].Rev, cur.Rev)
			}
		}
	}
}

func repeat(s string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = s
	}
	return out
}
