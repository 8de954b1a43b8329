package mobile_test

import (
	"encoding/json"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/fieldsync/fieldsync/forms"
	"github.com/fieldsync/fieldsync/mobile"
	"github.com/fieldsync/fieldsync/mobile/mobiletest"
	"github.com/fieldsync/fieldsync/syncproto"
	"github.com/google/uuid"
)

// metaForm is a questionnaire an office published from XLSForm, with the
// metadata a phone fills in itself.
func metaForm() *forms.Definition {
	return &forms.Definition{ID: "survey.canteen", Version: 1, Kind: forms.KindQuestionnaireResponse, Status: forms.StatusPublished,
		Title: forms.Text{ZH: "食堂检查"}, Fields: []forms.Field{
			{Key: "answers", Type: forms.TypeGroup, Layout: forms.LayoutAnswers, Fields: []forms.Field{
				{Key: "start", Type: forms.TypeDateTime, Meta: forms.MetaStart, Hidden: true},
				{Key: "end", Type: forms.TypeDateTime, Meta: forms.MetaEnd, Hidden: true},
				{Key: "today", Type: forms.TypeDate, Meta: forms.MetaToday, Hidden: true},
				{Key: "deviceid", Type: forms.TypeText, Meta: forms.MetaDeviceID, Hidden: true},
				{Key: "username", Type: forms.TypeText, Meta: forms.MetaUsername, Hidden: true},
				{Key: "phonenumber", Type: forms.TypeText, Meta: forms.MetaPhoneNumber, Hidden: true},
				{Key: "simserial", Type: forms.TypeText, Meta: forms.MetaSimSerial, Hidden: true},
				{Key: "audit", Type: forms.TypeTextList, Meta: forms.MetaAudit, Hidden: true},
				{Key: "clean", Type: forms.TypeText, Label: forms.Text{ZH: "卫生情况"}},
				{Key: "ref", Type: forms.TypeText, Calculation: "concat('R-', uuid())"},
			}},
			{Key: "operator", Type: forms.TypeText, Meta: forms.MetaUsername, Hidden: true},
			{Key: "instance_name", Type: forms.TypeText, Hidden: true, Calculation: "concat(answers.clean, ' ', answers.today)"},
		}, TitleField: "instance_name"}
}

// TestPhoneFillsMetadata: a form published by the office reaches the phone
// on pull; saving a record of it fills start, today, deviceid and username
// once, end and the audit log on every save, and leaves what the phone
// cannot know empty.
func TestPhoneFillsMetadata(t *testing.T) {
	srv := mobiletest.NewServer()
	def := metaForm()
	raw, err := syncproto.Marshal(def)
	if err != nil {
		t.Fatal(err)
	}
	w := &syncproto.Writer{Replica: uuid.MustParse("0192b000-0000-7000-8000-00000000f001"), Author: "office", Now: time.Date(2024, 10, 1, 8, 0, 0, 0, time.UTC)}
	rec := &syncproto.Record{ID: forms.PublishedRecordID(def.ID, def.Version), Kind: "form", CreatedAt: w.Now, CreatedBy: "office"}
	rec, _ = syncproto.Set(rec, "definition", raw, w)
	rec, _ = syncproto.Set(rec, "status", json.RawMessage(`"published"`), w)
	if err := srv.Put(rec); err != nil {
		t.Fatal(err)
	}

	clock := newClock()
	tok := "fsd_meta_" + uuid.NewString()
	mp := mobiletest.OpenPhone(t, "meta", filepath.Join(t.TempDir(), "meta.db"), mobile.Options{Transport: srv.Transport(tok), NoSync: true, Now: clock.Now, PhoneNumber: "13800001234"})
	srv.AddDevice(tok, mp.E.DeviceID(), "user-chen")
	if err := mp.E.SetServer("", tok, "user-chen"); err != nil {
		t.Fatal(err)
	}
	p := &phone{Phone: mp, tb: t}
	p.sync()

	r := p.save(mobile.Draft{Kind: "questionnaire_response", SchoolID: schoolA, FormID: def.ID, FormVersion: 1,
		Values: vals("answers", []any{map[string]any{"qid": "clean", "value": "良好"}})})
	created := "2026-11-03T16:00:00+08:00" // the test clock's 08:00 UTC, in China
	want := []any{
		map[string]any{"qid": "clean", "value": "良好"},
		map[string]any{"qid": "start", "value": created},
		map[string]any{"qid": "end", "value": created},
		map[string]any{"qid": "today", "value": "2026-11-03"},
		map[string]any{"qid": "deviceid", "value": mp.E.DeviceID().String()},
		map[string]any{"qid": "username", "value": "user-chen"},
		map[string]any{"qid": "phonenumber", "value": "13800001234"},
		map[string]any{"qid": "audit", "value": []any{created + " form_start"}},
	}
	// The once calculation got a random value; it is compared apart.
	var ref string
	for _, a := range answers0(t, r) {
		if a.(map[string]any)["qid"] == "ref" {
			ref, _ = a.(map[string]any)["value"].(string)
		}
	}
	if len(ref) != 38 || ref[:2] != "R-" {
		t.Errorf("ref = %q, want R- and a UUID", ref)
	}
	want = append(want, map[string]any{"qid": "ref", "value": ref})
	var title string
	if json.Unmarshal(r.Value("instance_name"), &title); title != "良好 2026-11-03" {
		t.Errorf("title = %q", title)
	}
	answers := func(r *syncproto.Record) []any { return answers0(t, r) }
	if got := answers(r); !reflect.DeepEqual(got, want) {
		t.Errorf("answers after the first save:\n got %v\nwant %v", got, want)
	}
	var op string
	if json.Unmarshal(r.Value("operator"), &op); op != "user-chen" {
		t.Errorf("operator = %q", op)
	}
	if vs := def.Validate(map[string]any{"answers": answers(r), "operator": op, "instance_name": title}, forms.Env{Today: "2026-11-03"}); len(vs) != 0 {
		t.Errorf("the filled record does not validate: %v", vs)
	}

	clock.Advance(3600)
	r = p.save(mobile.Draft{ID: r.ID, Values: vals("answers", []any{map[string]any{"qid": "clean", "value": "较差"}})})
	later := "2026-11-03T17:00:00+08:00"
	want[0] = map[string]any{"qid": "clean", "value": "较差"}
	want[2] = map[string]any{"qid": "end", "value": later}
	want[7] = map[string]any{"qid": "audit", "value": []any{created + " form_start", later + " form_save"}}
	// ref keeps its value: a once calculation is not computed again.
	// The second draft sent only "clean": the filled answers keep their
	// values, start and today are not rewritten.
	got := answers(r)
	byQID := func(l []any) map[string]any {
		m := map[string]any{}
		for _, a := range l {
			m[a.(map[string]any)["qid"].(string)] = a.(map[string]any)["value"]
		}
		return m
	}
	if g, w := byQID(got), byQID(want); !reflect.DeepEqual(g, w) {
		t.Errorf("answers after the second save:\n got %v\nwant %v", g, w)
	}

	// Saving nothing new writes nothing, not even end.
	before := r.Rev
	r = p.save(mobile.Draft{ID: r.ID, Values: vals("operator", "user-chen")})
	if r.Rev != before {
		t.Errorf("a save without changes wrote the record (rev %d → %d)", before, r.Rev)
	}
}

func answers0(t *testing.T, r *syncproto.Record) []any {
	t.Helper()
	var got []any
	if err := json.Unmarshal(r.Value("answers"), &got); err != nil {
		t.Fatal(err)
	}
	return got
}
