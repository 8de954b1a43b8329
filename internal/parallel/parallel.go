// Package parallel runs the iterations of a loop on every CPU: the CPU
// work of a batch (digests, JSON encoding and decoding of record states)
// while the database waits. It is the one such helper of the module; it
// imports only the standard library.
package parallel

import (
	"errors"
	"runtime"
	"sync"
	"sync/atomic"
)

// Do calls fn(0..n-1), each index once, on as many goroutines as there
// are CPUs (inline when that is one), and returns the errors joined. A
// goroutine whose call failed takes no further index; the others finish
// theirs, so some indexes may not be called when an error is returned.
func Do(n int, fn func(i int) error) error {
	return Bounded(n, runtime.GOMAXPROCS(0), fn)
}

// Bounded is Do on at most workers goroutines whatever the CPUs: for
// loops that mostly wait on the database (one round trip per index).
func Bounded(n, workers int, fn func(i int) error) error {
	workers = min(workers, n)
	if workers <= 1 {
		for i := range n {
			if err := fn(i); err != nil {
				return err
			}
		}
		return nil
	}
	var next atomic.Int64
	errs := make([]error, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n || errs[w] != nil {
					return
				}
				errs[w] = fn(i)
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}
