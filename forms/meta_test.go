package forms_test

import (
	"reflect"
	"testing"

	"github.com/fieldsync/fieldsync/forms"
)

func TestFillMeta(t *testing.T) {
	d := &forms.Definition{ID: "meta", Version: 1, Kind: forms.KindVisit, Status: forms.StatusDraft, Fields: []forms.Field{
		{Key: "start", Type: forms.TypeDateTime, Meta: forms.MetaStart},
		{Key: "g", Type: forms.TypeGroup, Layout: forms.LayoutInline, Fields: []forms.Field{{Key: "end", Type: forms.TypeDateTime, Meta: forms.MetaEnd}}},
		{Key: "dev", Type: forms.TypeGroup, Fields: []forms.Field{
			{Key: "id", Type: forms.TypeText, Meta: forms.MetaDeviceID},
			{Key: "sim", Type: forms.TypeText, Meta: forms.MetaSimSerial},
			{Key: "at", Type: forms.TypeGeopoint, Meta: forms.MetaStartGeopoint},
		}},
		{Key: "log", Type: forms.TypeTextList, Meta: forms.MetaAudit},
		{Key: "note", Type: forms.TypeText, Label: forms.Text{EN: "note"}},
		{Key: "other", Type: forms.TypeText, Label: forms.Text{EN: "other"}},
		{Key: "stamp", Type: forms.TypeDateTime, Calculation: "now", Trigger: []string{"note"}},
	}}
	if !d.HasMeta() {
		t.Fatal("HasMeta = false")
	}
	at := map[string]any{"lat": 30.5, "lng": 114.3}
	m1 := forms.Meta{Now: "2024-10-15T09:00:00+08:00", Today: "2024-10-15", DeviceID: "dev-1", Location: at}
	m2 := forms.Meta{Now: "2024-10-15T10:00:00+08:00", Today: "2024-10-15", DeviceID: "dev-2"}
	first := d.FillMeta(map[string]any{"note": "x"}, nil, m1)
	want1 := map[string]any{"note": "x", "start": m1.Now, "end": m1.Now, "dev": map[string]any{"id": "dev-1", "at": at},
		"log": []any{m1.Now + " form_start"}}
	if !reflect.DeepEqual(first, want1) {
		t.Errorf("created:\n got %v\nwant %v", first, want1)
	}
	// A later save from another device, whose draft left the metadata out.
	second := d.FillMeta(map[string]any{"note": "y"}, first, m2)
	want2 := map[string]any{"note": "y", "start": m1.Now, "end": m2.Now, "dev": map[string]any{"id": "dev-1", "at": at},
		"log": []any{m1.Now + " form_start", m2.Now + " form_save"}}
	if !reflect.DeepEqual(second, want2) {
		t.Errorf("saved again:\n got %v\nwant %v", second, want2)
	}
	if ev := d.Evaluate(second, forms.Env{Today: "2024-10-15"}); len(ev.Errors) != 0 {
		t.Errorf("filled values do not validate: %v", ev.Errors)
	}
	if got := first["note"]; got != "x" {
		t.Errorf("FillMeta modified its input: %v", got)
	}
}

// TestFillMetaTriggers: a once calculation keeps the phone's value when a
// draft leaves it out, unless a field of its trigger changed.
func TestFillMetaTriggers(t *testing.T) {
	d := &forms.Definition{ID: "trig", Version: 1, Kind: forms.KindVisit, Status: forms.StatusDraft, Fields: []forms.Field{
		{Key: "note", Type: forms.TypeText, Label: forms.Text{EN: "note"}},
		{Key: "other", Type: forms.TypeText, Label: forms.Text{EN: "other"}},
		{Key: "stamp", Type: forms.TypeDateTime, Calculation: "now", Trigger: []string{"note"}},
	}}
	prev := map[string]any{"note": "a", "other": "x", "stamp": "2024-10-15T09:00:00+08:00"}
	m := forms.Meta{Now: "2024-10-15T10:00:00+08:00"}
	tests := []struct {
		name   string
		values map[string]any
		want   any
	}{
		{"OtherFieldChanged", map[string]any{"note": "a", "other": "y"}, "2024-10-15T09:00:00+08:00"},
		{"TriggerChanged", map[string]any{"note": "b", "other": "x"}, nil},
	}
	for _, tt := range tests {
		got := d.FillMeta(tt.values, prev, m)
		if got["stamp"] != tt.want {
			t.Errorf("%s: stamp = %v, want %v", tt.name, got["stamp"], tt.want)
		}
		computed, err := d.Compute(got, forms.Env{Now: m.Now})
		if err != nil {
			t.Fatal(err)
		}
		want := tt.want
		if want == nil {
			want = m.Now // computed again
		}
		if computed["stamp"] != want {
			t.Errorf("%s: computed stamp = %v, want %v", tt.name, computed["stamp"], want)
		}
	}
}
