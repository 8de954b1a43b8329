// Command fieldbudget measures what hostile traffic costs a running sync
// server. It runs attacks one after the other, each for a while, while an
// honest phone keeps saving records and syncing (push and pull), and
// prints for each attack the server's answers, its peak resident memory
// during the attack (also as a ratio to its peak with the phone alone,
// measured first in the same run), and how the phone fared:
//
//	fieldbudget --server http://127.0.0.1:8080 --admin-token $FIELDSYNC_ADMIN_TOKEN \
//	    --server-pid $(pgrep -n fieldsyncd)
//
// The attacks (--attacks picks some, by number):
//
//  1. 60 connections announcing 32 MiB bodies without a token, each
//     sending at 64 KiB/s until it is answered or cut off;
//  2. 30 gzip bodies of 32 KB that inflate to 32 MiB, without a token;
//  3. 60 bodies of 1 MiB trickling at 100 bytes/s, with a device token;
//  4. the gzip bodies of 2 with a device token;
//  5. hostile photos uploaded with a device token, for the thumbnail
//     workers: 8192×8192 16-bit PNGs (0.5 MB sent; RGBA, 768 MiB decoded,
//     beyond the decode budget, and grey, 128 MiB, within it), a JPEG
//     whose EXIF Orientation has count 0x80000001, and one whose IFDs
//     point at each other. It runs last: the thumbnail jobs it queues go
//     on after it ends, and would count in the next attack's peak.
//
// The attack with the largest peak comes last: Go returns freed memory to
// the system over minutes, so an attack's peak includes what the attacks
// before it left resident.
//
// Each attacker works on one connection at a time and starts its next
// request a moment after the last one ended, so that the attack is about
// bodies in flight, not about the rate of new connections.
//
// The peak is the kernel's (VmHWM of /proc/PID/status), reset before each
// attack by writing 5 to /proc/PID/clear_refs, so the server must run on
// this machine as a user this command may act for.
//
// mobile/cmd/fieldbudget/bench.sh (make budget) starts a throwaway stack
// and fieldsyncd and runs it. With --fake it runs against an in-process
// fake server, to try the command without one.
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
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	m := &Main{Stdout: os.Stdout, Stderr: os.Stderr, Getenv: os.Getenv}
	if err := m.Run(ctx, os.Args[1:]); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "fieldbudget:", err)
		}
		os.Exit(1)
	}
}

// Config is what to run.
type Config struct {
	Server     string
	AdminToken string
	ServerPID  int
	Duration   time.Duration // of each attack
	Attacks    []int         // numbers of the attacks to run, in order
	PNGSide    int           // width and height of attack 5's PNG
	Slow       int           // connections of the slow-body attacks
	Bombs      int           // concurrent gzip bodies
	Announce   int64         // body length the slow attackers announce
	BombSize   int64         // what a gzip body inflates to
	SlowRate   int64         // bytes per second of attack 1
	Fake       bool
	GoalMB     int    // the peak RSS to stay under, in MB
	Label      string // names the server build in the output
}

// Main is the program, as a value tests can run.
type Main struct {
	Stdout, Stderr io.Writer
	Getenv         func(string) string
	// Rows are the last run's results, for tests.
	Rows []Row
}

// Run parses flags and runs the attacks.
func (m *Main) Run(ctx context.Context, args []string) error {
	var c Config
	var attacks, announce, bomb, rate string
	fs := flag.NewFlagSet("fieldbudget", flag.ContinueOnError)
	fs.SetOutput(m.Stderr)
	fs.StringVar(&c.Server, "server", m.Getenv("FIELDSYNC_URL"), "server URL ($FIELDSYNC_URL)")
	fs.StringVar(&c.AdminToken, "admin-token", m.Getenv("FIELDSYNC_ADMIN_TOKEN"), "admin token, to enroll the honest phone and the attacker's device ($FIELDSYNC_ADMIN_TOKEN)")
	fs.IntVar(&c.ServerPID, "server-pid", 0, "pid of the server process, whose memory is measured")
	fs.DurationVar(&c.Duration, "duration", 30*time.Second, "how long each attack lasts")
	fs.StringVar(&attacks, "attacks", "1,2,3,4,5", "attacks to run, by number, in order")
	fs.IntVar(&c.PNGSide, "png-side", 8192, "width and height of attack 5's 16-bit PNG")
	fs.IntVar(&c.Slow, "slow", 60, "connections of the slow-body attacks")
	fs.IntVar(&c.Bombs, "bombs", 30, "gzip bodies sent at once")
	fs.StringVar(&announce, "announce", "32MiB", "body length the slow attackers announce")
	fs.StringVar(&bomb, "bomb", "32MiB", "what each gzip body inflates to")
	fs.StringVar(&rate, "slow-rate", "64KiB", "bytes per second the attackers of attack 1 send")
	fs.BoolVar(&c.Fake, "fake", false, "run against an in-process fake server")
	fs.IntVar(&c.GoalMB, "goal-mb", 300, "peak RSS the server should stay under, MB")
	fs.StringVar(&c.Label, "label", "", "what server build this is, printed above the table")
	if err := fs.Parse(args); err != nil {
		return err
	}
	var err error
	for _, p := range []struct {
		s   string
		dst *int64
	}{{announce, &c.Announce}, {bomb, &c.BombSize}, {rate, &c.SlowRate}} {
		if *p.dst, err = parseBytes(p.s); err != nil || *p.dst < 1 {
			return fmt.Errorf("%q is not a size (examples: 32MiB, 64KiB, 1000)", p.s)
		}
	}
	for _, f := range strings.Split(attacks, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 || n > len(attackList) {
			return fmt.Errorf("--attacks: %q is not an attack number (1 to %d)", f, len(attackList))
		}
		c.Attacks = append(c.Attacks, n)
	}
	if !c.Fake && (c.Server == "" || c.AdminToken == "") {
		return errors.New("--server and --admin-token are required (or --fake)")
	}
	if c.Slow < 1 || c.Bombs < 1 || c.Duration <= 0 || c.PNGSide < 1 {
		return errors.New("--slow, --bombs, --duration and --png-side must be positive")
	}
	rows, err := run(ctx, c, m.Stderr)
	m.Rows = rows
	printTable(m.Stdout, c, rows)
	return err
}

// parseBytes parses "1000", "64KiB", "32MiB" (K, M, G, with or without
// "iB"; all powers of 1024).
func parseBytes(s string) (int64, error) {
	s = strings.TrimSpace(s)
	i := strings.IndexFunc(s, func(r rune) bool { return r < '0' || r > '9' })
	num, unit := s, ""
	if i >= 0 {
		num, unit = s[:i], strings.ToLower(strings.TrimSpace(s[i:]))
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil {
		return 0, err
	}
	switch strings.TrimSuffix(strings.TrimSuffix(unit, "b"), "i") {
	case "":
		return n, nil
	case "k":
		return n << 10, nil
	case "m":
		return n << 20, nil
	case "g":
		return n << 30, nil
	}
	return 0, fmt.Errorf("unknown unit %q", unit)
}
