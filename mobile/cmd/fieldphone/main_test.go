package main

import (
	"bytes"
	"context"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fieldsync/fieldsync/internal/samples"
	"github.com/fieldsync/fieldsync/mobile/mobiletest"
	"github.com/fieldsync/fieldsync/syncproto"
)

// run runs one fieldphone command and returns its output.
func run(t *testing.T, data string, stdin string, args ...string) (string, error) {
	t.Helper()
	var out, errb bytes.Buffer
	m := &Main{Stdin: strings.NewReader(stdin), Stdout: &out, Stderr: &errb, Getenv: func(string) string { return "" }}
	err := m.Run(context.Background(), append([]string{"--data", data}, args...))
	return out.String() + errb.String(), err
}

func must(t *testing.T, data, stdin string, args ...string) string {
	t.Helper()
	out, err := run(t, data, stdin, args...)
	if err != nil {
		t.Fatalf("fieldphone %v: %v\n%s", args, err, out)
	}
	return out
}

func TestFieldphone(t *testing.T) {
	srv := mobiletest.NewServer()
	w := &syncproto.Writer{Replica: samples.OfficeReplica, Author: "office", Now: time.Date(2026, 11, 1, 8, 0, 0, 0, time.UTC)}
	recs, err := samples.Records(w)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range recs {
		if err := srv.Put(r); err != nil {
			t.Fatal(err)
		}
	}
	hs := httptest.NewServer(srv.Handler())
	defer hs.Close()
	srv.AddCode("CODE-0001", "0192b000-0000-7000-8000-000000000204")
	dir := t.TempDir()
	data := filepath.Join(dir, "phone.db")

	if out, err := run(t, data, "", "enroll", "--server", hs.URL); err == nil {
		t.Fatalf("enroll without a code: %s", out)
	}
	must(t, data, "", "enroll", "--server", hs.URL, "--code", "CODE-0001", "--name", "demo")
	if out := must(t, data, "", "schools"); !strings.Contains(out, "no schools") {
		t.Fatalf("schools before sync: %s", out)
	}
	out := must(t, data, "", "sync")
	if !strings.Contains(out, "pulled 13") {
		t.Fatalf("sync: %s", out)
	}
	out = must(t, data, "", "schools")
	if !strings.Contains(out, "0192b000-0000-7000-8000-000000000103") {
		t.Fatalf("schools: %s", out)
	}
	out = must(t, data, "", "hazards", "--all")
	if !strings.Contains(out, "0192b000-0000-7000-8000-000000000701") {
		t.Fatalf("hazards: %s", out)
	}

	must(t, data, "", "offline", "on")
	file := filepath.Join(dir, "hazard.json")
	os.WriteFile(file, []byte(`{"source":"inspector_visit","title":"灭火器过期","category":"fire","severity":"medium","location_desc":"教学楼二层","description":"两具灭火器压力不足"}`), 0o644)
	photo := filepath.Join(dir, "x.jpg")
	os.WriteFile(photo, []byte("\xff\xd8\xff\xe0 jpeg bytes"), 0o644)
	if out, err := run(t, data, "", "fill", "hazard.report", "--json", file, "--school", "0192b000-0000-7000-8000-000000000103"); err == nil || !strings.Contains(out+err.Error(), "photo_ids") {
		t.Fatalf("a hazard without a photo was saved: %v %s", err, out)
	}
	out = must(t, data, "", "fill", "hazard.report", "--json", file, "--school", "0192b000-0000-7000-8000-000000000103", "--photo", photo)
	id := strings.Fields(out)[3]
	if _, err := syncproto.ParseID(id); err != nil {
		t.Fatalf("fill output %q", out)
	}
	os.Remove(photo) // the phone kept its own copy
	// Interactive: one answer per prompt, empty for optional fields.
	answers := "\n\ninspector_visit\ngatehouse_security\n门卫室\n\n门卫室无登记\n来访人员未登记\n\nlow\n\n\n\n"
	photo2 := filepath.Join(dir, "y.jpg")
	os.WriteFile(photo2, []byte("\xff\xd8\xff\xe0 more jpeg bytes"), 0o644)
	out = must(t, data, answers, "fill", "hazard.report", "--school", "0192b000-0000-7000-8000-000000000103", "--photo", photo2)
	if !strings.Contains(out, "saved hazard") || !strings.Contains(out, "隐患名称 (Title)") {
		t.Fatalf("interactive fill: %s", out)
	}
	photo3 := filepath.Join(dir, "z.jpg")
	os.WriteFile(photo3, []byte("\xff\xd8\xff\xe0 evidence"), 0o644)
	must(t, data, "", "attach", id, "events", photo3)
	must(t, data, "", "event", id, "note_added", "--note", "已告知校长")
	if out, err := run(t, data, "", "sync"); err == nil || !strings.Contains(err.Error(), "offline") {
		t.Fatalf("sync while offline: %v %s", err, out)
	}
	out = must(t, data, "", "status")
	if !strings.Contains(out, "outbox:   4 changes") || !strings.Contains(out, "photos:     3 waiting") {
		t.Fatalf("status: %s", out)
	}
	must(t, data, "", "offline", "off")
	out = must(t, data, "", "sync")
	if !strings.Contains(out, "applied 4") || !strings.Contains(out, "photos 3") || !strings.Contains(out, "上传照片") {
		t.Fatalf("sync: %s", out)
	}
	out = must(t, data, "", "show", id)
	if !strings.Contains(out, "两具灭火器压力不足") || !strings.Contains(out, "已告知校长") {
		t.Fatalf("show: %s", out)
	}
	if out := must(t, data, "", "problems"); !strings.Contains(out, "no problems") {
		t.Fatalf("problems: %s", out)
	}
}
