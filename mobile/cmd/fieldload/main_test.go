package main

import (
	"bytes"
	"context"
	"os"
	"strconv"
	"strings"
	"testing"
)

func TestFieldloadFake(t *testing.T) {
	var out, errb bytes.Buffer
	m := &Main{Stdout: &out, Stderr: &errb, Getenv: func(string) string { return "" }}
	err := m.Run(context.Background(), []string{"--fake", "--phones", "4", "--concurrency", "2", "--records", "9", "--photos", "6",
		"--photo-kb", "2", "--server-pid", strings.TrimSpace(pid())})
	if err != nil {
		t.Fatal(err, errb.String())
	}
	t.Log(out.String())
	r := m.Result
	if r.Errors != 0 || r.Phones != 4 || r.Photos != 4*6 {
		t.Fatalf("result %+v\n%s", r, out.String())
	}
	if n, _, _, _ := r.Latency("push"); n == 0 {
		t.Fatal("no push latency recorded")
	}
	if r.ServerHWM == 0 {
		t.Fatal("no peak memory read")
	}
	for _, want := range []string{"changes/s", "p99", "errors: 0", "server peak RSS"} {
		if !strings.Contains(out.String(), want) {
			t.Fatalf("output lacks %q", want)
		}
	}
}

// pid is this test's own pid: the fake server runs in this process.
func pid() string { return strconv.Itoa(os.Getpid()) }
