package fieldsync_test

import (
	"encoding/json"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"

	fieldsync "github.com/fieldsync/fieldsync/mobile/bind"
	"github.com/fieldsync/fieldsync/mobile/mobiletest"
)

type listener struct{ phases map[string]int }

func (l *listener) OnProgress(phase string, done, total int64) { l.phases[phase]++ }

func TestPhone(t *testing.T) {
	srv := mobiletest.NewServer()
	hs := httptest.NewServer(srv.Handler())
	defer hs.Close()
	srv.AddCode("ABCD-EFGH-JKLM", "inspector-7")
	dir := t.TempDir()
	p, err := fieldsync.Open(filepath.Join(dir, "phone.db"), hs.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if err := p.Enroll("ABCD-EFGH-JKLM", "张老师的手机"); err != nil {
		t.Fatal(err)
	}
	photo := filepath.Join(dir, "p.jpg")
	os.WriteFile(photo, []byte("\xff\xd8\xff\xe0 not really a jpeg but bytes"), 0o644)
	const school = "0192b000-0000-7000-8000-000000000101"
	id := fieldsync.NewRecordID()
	att, err := p.AttachPhoto("hazard", id, school, photo)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.SaveRecordJSON("hazard.report", 1, `{"id":"`+id+`","school_id":"`+school+`","source":"inspector_visit","title":"电线裸露","category":"electrical","severity":"high","location_desc":"宿舍楼","description":"插座外壳破损"}`); fieldsync.ErrorCode(err) != "invalid" {
		t.Fatalf("a hazard without its photo: %v", err)
	}
	if _, err := p.SaveRecordJSON("hazard.report", 1, `{"id":"`+id+`","school_id":"`+school+`","source":"inspector_visit","title":"电线裸露","category":"electrical","severity":"high","location_desc":"宿舍楼","description":"插座外壳破损","photo_ids":["`+att+`"]}`); err != nil {
		t.Fatal(err)
	}
	if _, err := p.SaveRecordJSON("hazard.report", 1, `{"id":"`+id+`","severity":"medium"}`); err != nil {
		t.Fatal(err)
	}
	photo2 := filepath.Join(dir, "p2.jpg")
	os.WriteFile(photo2, []byte("\xff\xd8\xff\xe0 a second photo"), 0o644)
	if _, err := p.AttachPhotoTo(id, "events", photo2); err != nil {
		t.Fatal(err)
	}
	if _, err := p.AppendJSON(id, "events", `{"type":"note_added","note":"已通知校长"}`); err != nil {
		t.Fatal(err)
	}
	l := &listener{phases: map[string]int{}}
	if err := p.Sync(l); err != nil {
		t.Fatal(err)
	}
	if l.phases["push"] == 0 || l.phases["pull"] == 0 || l.phases["photos"] == 0 {
		t.Fatalf("progress phases %v", l.phases)
	}
	s, err := p.RecordJSON(id)
	if err != nil {
		t.Fatal(err)
	}
	var v struct {
		Kind   string                     `json:"kind"`
		Rev    int64                      `json:"rev"`
		Values map[string]json.RawMessage `json:"values"`
		Items  map[string][]json.RawMessage
	}
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		t.Fatal(err)
	}
	if v.Kind != "hazard" || v.Rev == 0 || string(v.Values["severity"]) != `"medium"` || len(v.Items["events"]) != 2 {
		t.Fatalf("record %s", s)
	}
	st, _ := p.StatusJSON()
	var status struct {
		Outbox, Photos int
		Enrolled       bool
	}
	json.Unmarshal([]byte(st), &status)
	if status.Outbox != 0 || status.Photos != 0 || !status.Enrolled {
		t.Fatalf("status %s", st)
	}
	if probs, _ := p.ProblemsJSON(); probs != "[]" {
		t.Fatalf("problems %s", probs)
	}
	if err := p.SetOffline(true); err != nil {
		t.Fatal(err)
	}
	if err := p.Sync(nil); fieldsync.ErrorCode(err) != "offline" {
		t.Fatalf("offline sync: %v", err)
	}
	if _, err := p.SaveRecordJSON("hazard.report", 1, `[1]`); fieldsync.ErrorCode(err) != "invalid" {
		t.Fatalf("bad JSON: %v", err)
	}
}
