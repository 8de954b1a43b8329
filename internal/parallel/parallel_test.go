package parallel

import (
	"errors"
	"math/rand/v2"
	"runtime"
	"sync/atomic"
	"testing"
)

// TestDoCallsEachIndexOnce: for random n and CPU counts, every index is
// called exactly once (the oracle is a plain loop's count: one per index).
func TestDoCallsEachIndexOnce(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(0))
	for range 200 {
		n, procs := rng.IntN(300), 1+rng.IntN(8)
		runtime.GOMAXPROCS(procs)
		calls := make([]atomic.Int32, n)
		if err := Do(n, func(i int) error { calls[i].Add(1); return nil }); err != nil {
			t.Fatal(err)
		}
		for i := range calls {
			if c := calls[i].Load(); c != 1 {
				t.Fatalf("n=%d procs=%d: index %d called %d times", n, procs, i, c)
			}
		}
	}
}

// TestDoReturnsErrors: a failing index's error comes back, on one CPU and
// on several.
func TestDoReturnsErrors(t *testing.T) {
	boom := errors.New("boom")
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(0))
	for _, procs := range []int{1, 4} {
		runtime.GOMAXPROCS(procs)
		err := Do(100, func(i int) error {
			if i == 37 {
				return boom
			}
			return nil
		})
		if !errors.Is(err, boom) {
			t.Errorf("procs=%d: err = %v, want boom", procs, err)
		}
	}
}
