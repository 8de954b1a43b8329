package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/fieldsync/fieldsync/mobile"
	"github.com/fieldsync/fieldsync/syncproto"
)

// Result is what a load run measured.
type Result struct {
	mu         sync.Mutex
	Phones     int
	Syncs      int // sync attempts
	Changes    int // changes pushed
	Pulled     int
	Photos     int
	PhotoBytes int64
	Rejected   int
	Errors     int
	FirstErrs  []string
	Wall       time.Duration
	lat        map[string][]time.Duration

	ServerHWM, ServerPeakRSS int64 // bytes; 0 when unknown
}

func newResult() *Result { return &Result{lat: map[string][]time.Duration{}} }

func (r *Result) fail(msg string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.Errors++
	if len(r.FirstErrs) < 10 {
		r.FirstErrs = append(r.FirstErrs, msg)
	}
}

func (r *Result) addSync(rep mobile.SyncReport, err error) {
	r.mu.Lock()
	r.Syncs++
	r.Changes += rep.Pushed
	r.Pulled += rep.Pulled
	r.Photos += rep.Photos
	r.PhotoBytes += rep.PhotoBytes
	r.Rejected += rep.Rejected
	r.mu.Unlock()
	if err != nil {
		r.fail("sync: " + err.Error())
	}
}

func (r *Result) observe(kind string, d time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.lat[kind] = append(r.lat[kind], d)
}

// Latency returns the count and the p50, p99 and max of a call kind.
func (r *Result) Latency(kind string) (n int, p50, p99, maxd time.Duration) {
	r.mu.Lock()
	ds := slices.Clone(r.lat[kind])
	r.mu.Unlock()
	if len(ds) == 0 {
		return 0, 0, 0, 0
	}
	slices.Sort(ds)
	q := func(p float64) time.Duration { return ds[min(len(ds)-1, int(p*float64(len(ds))))] }
	return len(ds), q(0.50), q(0.99), ds[len(ds)-1]
}

func mb(b int64) float64 { return float64(b) / (1 << 20) }

func (r *Result) print(w io.Writer, c Config) {
	secs := r.Wall.Seconds()
	fmt.Fprintf(w, "\nfieldload: %d phones (%d at a time), each %d schools, %d records, %d photos of ~%d KB, %d syncs\n\n",
		c.Phones, c.Concurrency, c.Schools, c.Records, c.Photos, c.PhotoKB, c.Syncs)
	fmt.Fprintf(w, "%-8s %8s %8s %8s %9s %9s %10s %11s\n", "phones", "changes", "pulled", "photos", "photo MB", "wall", "changes/s", "photo MB/s")
	fmt.Fprintf(w, "%-8d %8d %8d %8d %9.1f %9s %10.1f %11.2f\n\n", r.Phones, r.Changes, r.Pulled, r.Photos, mb(r.PhotoBytes),
		r.Wall.Round(time.Second), float64(r.Changes)/secs, mb(r.PhotoBytes)/secs)
	fmt.Fprintf(w, "%-8s %8s %9s %9s %9s\n", "call", "n", "p50", "p99", "max")
	for _, k := range []string{"info", "push", "pull", "upload", "enroll"} {
		n, p50, p99, mx := r.Latency(k)
		fmt.Fprintf(w, "%-8s %8d %9s %9s %9s\n", k, n, ms(p50), ms(p99), ms(mx))
	}
	fmt.Fprintf(w, "\nerrors: %d (sync attempts %d, rejected changes %d)\n", r.Errors, r.Syncs, r.Rejected)
	for _, e := range r.FirstErrs {
		fmt.Fprintf(w, "  %s\n", e)
	}
	switch {
	case c.ServerPID == 0:
		fmt.Fprintln(w, "server peak RSS: unknown (give --server-pid)")
	default:
		fmt.Fprintf(w, "server peak RSS: %.0f MB (VmHWM; peak seen while sampling %.0f MB)\n", mb(r.ServerHWM), mb(r.ServerPeakRSS))
	}
}

func ms(d time.Duration) string { return fmt.Sprintf("%.1fms", float64(d)/float64(time.Millisecond)) }

// timed is a Transport that records each call's latency.
type timed struct {
	T   mobile.Transport
	res *Result
}

func measure[T any](t *timed, kind string, f func() (T, error)) (T, error) {
	start := time.Now()
	v, err := f()
	t.res.observe(kind, time.Since(start))
	return v, err
}

func (t *timed) Info(ctx context.Context) (syncproto.Info, error) {
	return measure(t, "info", func() (syncproto.Info, error) { return t.T.Info(ctx) })
}

func (t *timed) Push(ctx context.Context, req *syncproto.PushRequest) (*syncproto.PushResponse, error) {
	return measure(t, "push", func() (*syncproto.PushResponse, error) { return t.T.Push(ctx, req) })
}

func (t *timed) Pull(ctx context.Context, req *syncproto.PullRequest) (*syncproto.PullResponse, error) {
	return measure(t, "pull", func() (*syncproto.PullResponse, error) { return t.T.Pull(ctx, req) })
}

func (t *timed) BlobStatus(ctx context.Context, sha string) (mobile.BlobStatus, error) {
	return measure(t, "upload", func() (mobile.BlobStatus, error) { return t.T.BlobStatus(ctx, sha) })
}

func (t *timed) PutChunk(ctx context.Context, sha string, off int64, data []byte) (mobile.BlobStatus, error) {
	return measure(t, "upload", func() (mobile.BlobStatus, error) { return t.T.PutChunk(ctx, sha, off, data) })
}

func (t *timed) FinishBlob(ctx context.Context, sha string, size int64, ct string) (mobile.BlobStatus, error) {
	return measure(t, "upload", func() (mobile.BlobStatus, error) { return t.T.FinishBlob(ctx, sha, size, ct) })
}

func (t *timed) PutBlob(ctx context.Context, sha, ct string, data []byte) (mobile.BlobStatus, error) {
	return measure(t, "upload", func() (mobile.BlobStatus, error) { return t.T.PutBlob(ctx, sha, ct, data) })
}

func (t *timed) Enroll(ctx context.Context, req mobile.EnrollRequest) (mobile.EnrollResponse, error) {
	return measure(t, "enroll", func() (mobile.EnrollResponse, error) { return t.T.Enroll(ctx, req) })
}

// watchMemory samples the server's resident memory every 250 ms until
// the returned function is called, which returns VmHWM (the kernel's peak
// resident set) and the largest VmRSS sampled, in bytes.
func watchMemory(ctx context.Context, pid int) func() (hwm, peak int64) {
	if pid <= 0 {
		return func() (int64, int64) { return 0, 0 }
	}
	var mu sync.Mutex
	var peak int64
	ctx, cancel := context.WithCancel(ctx)
	go func() {
		t := time.NewTicker(250 * time.Millisecond)
		defer t.Stop()
		for {
			if v := procStatus(pid, "VmRSS"); v > 0 {
				mu.Lock()
				peak = max(peak, v)
				mu.Unlock()
			}
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
	return func() (int64, int64) {
		cancel()
		mu.Lock()
		defer mu.Unlock()
		return procStatus(pid, "VmHWM"), peak
	}
}

// procStatus reads a "kB" line of /proc/PID/status, in bytes.
func procStatus(pid int, key string) int64 {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok || k != key {
			continue
		}
		n, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		if err != nil {
			return 0
		}
		return n * 1024
	}
	return 0
}
