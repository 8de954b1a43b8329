package mobile_test

import (
	"encoding/json"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/fieldsync/fieldsync/forms"
	"github.com/fieldsync/fieldsync/mobile"
	"github.com/fieldsync/fieldsync/mobile/mobiletest"
	"github.com/fieldsync/fieldsync/syncproto"
)

// TestPhoneValidatesPublishedForms: a record of a form the office
// published is checked on the phone against the pulled definition, as the
// server checks it on push, so a bad value is refused before it enters the
// outbox; a phone without a validator accepts it (the server refuses it).
func TestPhoneValidatesPublishedForms(t *testing.T) {
	ten := 10.0
	def := &forms.Definition{ID: "survey.dorm", Version: 2, Kind: forms.KindQuestionnaireResponse, Status: forms.StatusPublished,
		Title: forms.Text{ZH: "宿舍检查"}, Fields: []forms.Field{
			{Key: "beds", Type: forms.TypeInteger, Label: forms.Text{ZH: "床位数"}, Required: true},
			{Key: "score", Type: forms.TypeInteger, Label: forms.Text{ZH: "评分"}, Constraints: []forms.Constraint{{Max: &ten}}},
		}}
	if err := def.Check(); err != nil {
		t.Fatalf("the test's form does not check: %v", err)
	}
	raw, err := syncproto.Marshal(def)
	if err != nil {
		t.Fatal(err)
	}
	w := &syncproto.Writer{Replica: uuid.MustParse("0192b000-0000-7000-8000-00000000f002"), Author: "office", Now: time.Date(2026, 10, 1, 8, 0, 0, 0, time.UTC)}
	rec := &syncproto.Record{ID: forms.PublishedRecordID(def.ID, def.Version), Kind: "form", CreatedAt: w.Now, CreatedBy: "office"}
	rec, _ = syncproto.Set(rec, "definition", raw, w)
	rec, _ = syncproto.Set(rec, "status", json.RawMessage(`"published"`), w)
	srv := mobiletest.NewServer()
	if err := srv.Put(rec); err != nil {
		t.Fatal(err)
	}

	open := func(name string, v mobile.Validator) *phone {
		clock := newClock()
		tok := "fsd_" + name + "_" + uuid.NewString()
		mp := mobiletest.OpenPhone(t, name, filepath.Join(t.TempDir(), name+".db"), mobile.Options{Transport: srv.Transport(tok), NoSync: true, Now: clock.Now, Validator: v})
		srv.AddDevice(tok, mp.E.DeviceID(), "user-chen")
		if err := mp.E.SetServer("", tok, "user-chen"); err != nil {
			t.Fatal(err)
		}
		p := &phone{Phone: mp, tb: t}
		p.sync()
		return p
	}
	checked := open("checked", mobile.FormsValidator(nil))
	unchecked := open("unchecked", nil)
	draft := func(kv ...any) mobile.Draft {
		return mobile.Draft{Kind: "questionnaire_response", SchoolID: schoolA, FormID: def.ID, FormVersion: def.Version, Values: vals(kv...)}
	}
	tests := []struct {
		name  string
		draft mobile.Draft
		field string // the field the phone names, "" when the save is accepted
	}{
		{"Valid", draft("beds", 40, "score", 8), ""},
		{"OverMax", draft("beds", 40, "score", 11), "score"},
		{"RequiredMissing", draft("score", 5), "beds"},
		{"WrongType", draft("beds", "四十"), "beds"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := checked.E.Save(tt.draft)
			if tt.field == "" {
				if err != nil {
					t.Fatalf("save refused: %v", err)
				}
			} else {
				var se *syncproto.Error
				if !asError(err, &se) || se.Code != syncproto.EINVALID || se.Fields[tt.field] == "" {
					t.Fatalf("save: %v, want EINVALID naming %q", err, tt.field)
				}
			}
			if _, err := unchecked.E.Save(tt.draft); err != nil {
				t.Errorf("a phone without a validator refused the save: %v", err)
			}
		})
	}
}
