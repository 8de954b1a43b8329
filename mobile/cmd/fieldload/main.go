// Command fieldload drives many simulated phones against a running sync
// server. Each phone is a real mobile.Engine on its own bbolt file,
// enrolled as its own device for its own inspector through the server's
// admin API, and does a month of work offline: visits and hazard reports
// in about 5 schools (60 records), 40 small synthetic JPEG photos, hazard
// events and edits; it syncs mid-month and at the end. fieldload then
// prints throughput, p50/p99 latency of push, pull and photo calls, the
// errors, and the server's peak memory.
//
//	fieldload --server http://127.0.0.1:8080 --admin-token $FIELDSYNC_ADMIN_TOKEN \
//	    --phones 1000 --concurrency 50 --server-pid $(pgrep -n fieldsyncd)
//
// With --fake it runs against an in-process fake server (mobiletest), to
// try the command without a server.
//
// Like all of mobile it must not import server or Fiber: it reaches the
// server only over HTTP.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"os/signal"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/fieldsync/fieldsync/mobile/mobiletest"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	m := &Main{Stdout: os.Stdout, Stderr: os.Stderr, Getenv: os.Getenv}
	if err := m.Run(ctx, os.Args[1:]); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "fieldload:", err)
		}
		os.Exit(1)
	}
}

// Config is the load to apply.
type Config struct {
	Server      string
	AdminToken  string
	Phones      int
	Concurrency int
	Schools     int // per phone
	Records     int // form records per phone (visits and hazards)
	Photos      int // photos per phone
	PhotoKB     int // approximate photo size
	Syncs       int // syncs per phone over the month
	ServerPID   int
	Dir         string
	Keep        bool
	Seed        uint64
	Fake        bool
	Timeout     time.Duration
}

// Main is the program, as a value tests can run.
type Main struct {
	Stdout, Stderr io.Writer
	Getenv         func(string) string
	// Result is the last run's result, for tests.
	Result *Result
}

// Run parses flags and runs the load.
func (m *Main) Run(ctx context.Context, args []string) error {
	var c Config
	fs := flag.NewFlagSet("fieldload", flag.ContinueOnError)
	fs.SetOutput(m.Stderr)
	fs.StringVar(&c.Server, "server", m.Getenv("FIELDSYNC_URL"), "server URL ($FIELDSYNC_URL)")
	fs.StringVar(&c.AdminToken, "admin-token", m.Getenv("FIELDSYNC_ADMIN_TOKEN"), "admin token to create inspectors, assignments and enrollment codes ($FIELDSYNC_ADMIN_TOKEN)")
	fs.IntVar(&c.Phones, "phones", 100, "simulated phones")
	fs.IntVar(&c.Concurrency, "concurrency", 50, "phones working at the same time")
	fs.IntVar(&c.Schools, "schools", 5, "schools per phone")
	fs.IntVar(&c.Records, "records", 60, "form records per phone in a month")
	fs.IntVar(&c.Photos, "photos", 40, "photos per phone in a month")
	fs.IntVar(&c.PhotoKB, "photo-kb", 4, "approximate size of a synthetic photo in KB")
	fs.IntVar(&c.Syncs, "syncs", 2, "syncs per phone over the month (the last at the end)")
	fs.IntVar(&c.ServerPID, "server-pid", 0, "pid of the server process, to report its peak memory (VmHWM)")
	fs.StringVar(&c.Dir, "dir", "", "folder for the phones' databases and photos (default: a temporary folder)")
	fs.BoolVar(&c.Keep, "keep", false, "keep the phones' files")
	fs.Uint64Var(&c.Seed, "seed", 1, "seed of the simulated work")
	fs.BoolVar(&c.Fake, "fake", false, "run against an in-process fake server")
	fs.DurationVar(&c.Timeout, "timeout", 30*time.Minute, "give up after this long")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if !c.Fake && c.Server == "" {
		return errors.New("--server (or --fake) is required")
	}
	if c.Phones < 1 || c.Concurrency < 1 || c.Schools < 1 || c.Syncs < 1 {
		return errors.New("--phones, --concurrency, --schools and --syncs must be positive")
	}
	ctx, cancel := context.WithTimeout(ctx, c.Timeout)
	defer cancel()
	res, err := run(ctx, c, m.Stderr)
	if err != nil {
		return err
	}
	m.Result = res
	res.print(m.Stdout, c)
	return nil
}

func run(ctx context.Context, c Config, log io.Writer) (*Result, error) {
	var prov provisioner
	if c.Fake {
		srv := mobiletest.NewServer()
		hs := httptest.NewServer(srv.Handler())
		defer hs.Close()
		c.Server = hs.URL
		prov = &fakeProvisioner{srv: srv}
	} else {
		if c.AdminToken == "" {
			return nil, errors.New("--admin-token (or $FIELDSYNC_ADMIN_TOKEN) is required to enroll phones")
		}
		prov = &adminProvisioner{admin: &mobiletest.Admin{URL: c.Server, Token: c.AdminToken}}
	}
	dir := c.Dir
	if dir == "" {
		d, err := os.MkdirTemp("", "fieldload-")
		if err != nil {
			return nil, err
		}
		dir = d
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	if !c.Keep {
		defer os.RemoveAll(dir)
	}
	client := &http.Client{Timeout: 2 * time.Minute, Transport: &http.Transport{
		MaxIdleConns: c.Concurrency * 2, MaxIdleConnsPerHost: c.Concurrency * 2, IdleConnTimeout: 30 * time.Second,
	}}
	res := newResult()
	mem := watchMemory(ctx, c.ServerPID)
	start := time.Now()
	var next, finished atomic.Int64
	var progress sync.Mutex // the phones share log
	var wg sync.WaitGroup
	for range min(c.Concurrency, c.Phones) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= c.Phones || ctx.Err() != nil {
					return
				}
				ph := &phone{i: i, cfg: c, dir: filepath.Join(dir, fmt.Sprintf("phone-%05d", i)), client: client, res: res,
					rng: rand.New(rand.NewPCG(c.Seed, uint64(i)))}
				if err := ph.run(ctx, prov); err != nil {
					res.fail(fmt.Sprintf("phone %d: %v", i, err))
				}
				if !c.Keep {
					os.RemoveAll(ph.dir)
				}
				if n := finished.Add(1); n%max(1, int64(c.Phones)/20) == 0 || n == int64(c.Phones) {
					progress.Lock()
					fmt.Fprintf(log, "\rphones done %d/%d (%s)", n, c.Phones, time.Since(start).Round(time.Second))
					progress.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	fmt.Fprintln(log)
	res.Wall = time.Since(start)
	res.Phones = int(finished.Load())
	res.ServerHWM, res.ServerPeakRSS = mem()
	if err := ctx.Err(); err != nil {
		res.fail("run: " + err.Error())
	}
	return res, nil
}
