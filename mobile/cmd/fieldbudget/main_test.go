package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

// TestFieldbudgetFake runs every attack briefly against the in-process
// fake server, whose memory is this process's.
func TestFieldbudgetFake(t *testing.T) {
	if testing.Short() {
		t.Skip("runs five steps of a second or more")
	}
	var out, errb bytes.Buffer
	m := &Main{Stdout: &out, Stderr: &errb, Getenv: func(string) string { return "" }}
	err := m.Run(context.Background(), []string{"--fake", "--duration", "1500ms", "--slow", "3", "--bombs", "2",
		"--announce", "64KiB", "--bomb", "1MiB", "--slow-rate", "16KiB"})
	if err != nil {
		t.Fatal(err, errb.String())
	}
	t.Log(out.String())
	if len(m.Rows) != 1+len(attackList) {
		t.Fatalf("%d rows, want the phone alone and %d attacks", len(m.Rows), len(attackList))
	}
	for i, r := range m.Rows {
		if r.Syncs == 0 || r.Failed != 0 {
			t.Errorf("%s: the phone synced %d times, %d failed (%s)", r.Attack, r.Syncs, r.Failed, r.FirstErr)
		}
		if i > 0 && r.Requests == 0 {
			t.Errorf("%s: no attack request ended", r.Attack)
		}
		if r.PeakRSS == 0 {
			t.Errorf("%s: no peak RSS read", r.Attack)
		}
	}
	for _, want := range []string{"server peak RSS", "every peak under 300 MB", "401 ×", "vs idle", "×1.00"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q", want)
		}
	}
}

func TestParseBytes(t *testing.T) {
	for in, want := range map[string]int64{"1000": 1000, "64KiB": 64 << 10, "32MiB": 32 << 20, "2m": 2 << 20, "1GB": 1 << 30} {
		if got, err := parseBytes(in); err != nil || got != want {
			t.Errorf("parseBytes(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "MiB", "1.5MiB", "12TB"} {
		if _, err := parseBytes(in); err == nil {
			t.Errorf("parseBytes(%q) succeeded", in)
		}
	}
}
