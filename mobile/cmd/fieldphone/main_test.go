package main

import (
	"bytes"
	"context"
	"encoding/json"
	"maps"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/fieldsync/fieldsync/forms"
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

// TestFillEveryBuiltinForm creates a record of every built-in form from
// the command line, from the domain's sample records as a person would
// type them into a JSON file (envelope and server fields included, as an
// export would have them), and syncs them. A hazard's events are added
// with the event command.
func TestFillEveryBuiltinForm(t *testing.T) {
	srv := mobiletest.NewServer()
	hs := httptest.NewServer(srv.Handler())
	defer hs.Close()
	srv.AddCode("CODE-0002", "0192b000-0000-7000-8000-000000000204")
	dir := t.TempDir()
	data := filepath.Join(dir, "phone.db")
	must(t, data, "", "enroll", "--server", hs.URL, "--code", "CODE-0002", "--name", "demo")
	school := "0192b000-0000-7000-8000-000000000103"
	photo := filepath.Join(dir, "p.jpg")
	os.WriteFile(photo, []byte("\xff\xd8\xff\xe0 jpeg bytes"), 0o644)

	sample := func(name string) map[string]any {
		s, err := samples.Get(name)
		if err != nil {
			t.Fatal(err)
		}
		return s.Values
	}
	// The parent questionnaire has no sample of its own: one shaped like
	// the student one.
	parent := sample("08_questionnaire_response")
	delete(parent, "respondent_grade")
	parent["template_version"], parent["respondent_type"], parent["collection_mode"] = 1, "parent", "paper_transcribed"
	parent["answers"] = []any{
		map[string]any{"qid": "P1", "value": "junior"}, map[string]any{"qid": "P2", "value": 4},
		map[string]any{"qid": "P3", "value": 5}, map[string]any{"qid": "P4", "value": "too_much"},
		map[string]any{"qid": "P5", "value": 3}, map[string]any{"qid": "P6", "value": "yes"},
		map[string]any{"qid": "P7", "value": 2}, map[string]any{"qid": "P8", "value": []any{"bought_materials"}},
		map[string]any{"qid": "P9", "value": "希望减少周末作业。"},
	}
	values := map[string]map[string]any{
		"visit.routine":                     sample("06_visit_routine"),
		"lesson_observation":                sample("07_lesson_observation"),
		"questionnaire.student_burden":      sample("08_questionnaire_response"),
		"questionnaire.parent_satisfaction": parent,
		"hazard.report":                     sample("09_hazard_with_history"),
		"monthly_feedback":                  sample("10_monthly_feedback"),
	}
	var hazard string
	for _, def := range forms.Builtin() {
		if def.ID == "hazard.event" {
			continue // below: events are added to a hazard
		}
		t.Run(def.ID, func(t *testing.T) {
			v, ok := values[def.ID]
			if !ok {
				t.Fatalf("no sample values for built-in form %s: add them here", def.ID)
			}
			v = maps.Clone(v)
			delete(v, "id") // a new record, not an edit of the sample
			delete(v, "events")
			b, err := json.Marshal(v)
			if err != nil {
				t.Fatal(err)
			}
			file := filepath.Join(dir, def.ID+".json")
			if err := os.WriteFile(file, b, 0o644); err != nil {
				t.Fatal(err)
			}
			args := []string{"fill", def.ID, "--version", strconv.Itoa(def.Version), "--json", file, "--school", school}
			if def.ID == "hazard.report" {
				args = append(args, "--photo", photo)
			}
			out := must(t, data, "", args...)
			id := strings.Fields(out)[3]
			rid, err := syncproto.ParseID(id)
			if err != nil {
				t.Fatalf("fill output %q", out)
			}
			if def.ID == "hazard.report" {
				hazard = id
			}
			// Every field of the file the form knows is in the record,
			// "kind" of a visit included.
			shown := must(t, data, "", "show", rid.String())
			for _, f := range def.Fields {
				if _, ok := v[f.Key]; ok && f.Key == "kind" && !strings.Contains(shown, `"kind"`) {
					t.Errorf("the record lost its field kind:\n%s", shown)
				}
			}
		})
	}
	if hazard == "" {
		t.Fatal("no hazard was created")
	}
	must(t, data, "", "event", hazard, "note_added", "--note", "复查：仍未整改")
	out := must(t, data, "", "sync")
	if !strings.Contains(out, "rejected 0") || !strings.Contains(out, "conflicts 0") {
		t.Fatalf("sync: %s", out)
	}
	if out := must(t, data, "", "status"); !strings.Contains(out, "outbox:   0 changes") {
		t.Fatalf("status after sync: %s", out)
	}
	if out := must(t, data, "", "problems"); !strings.Contains(out, "no problems") {
		t.Fatalf("problems: %s", out)
	}
}
