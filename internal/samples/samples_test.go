package samples_test

import (
	"testing"
	"time"

	"github.com/fieldsync/fieldsync/internal/samples"
	"github.com/fieldsync/fieldsync/syncproto"
)

func TestRecords(t *testing.T) {
	w := &syncproto.Writer{Replica: samples.OfficeReplica, Author: "office", Now: time.Date(2024, 11, 15, 9, 30, 0, 0, time.UTC)}
	recs, err := samples.Records(w)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := len(recs), 13; got != want {
		t.Fatalf("records=%d, want %d", got, want)
	}
	kinds := map[string]*syncproto.Record{}
	for _, r := range recs {
		if err := r.Validate(); err != nil {
			t.Errorf("%s %s: %v", r.Kind, r.ID, err)
		}
		kinds[r.Kind] = r
	}
	tests := []struct {
		kind, school string
		events       int
	}{
		{"hazard", "0192b000-0000-7000-8000-000000000103", 10},
		{"visit", "0192b000-0000-7000-8000-000000000103", 0},
		{"school", "", 0},
	}
	for _, tt := range tests {
		r := kinds[tt.kind]
		if r == nil {
			t.Fatalf("no %s record", tt.kind)
		}
		if tt.school != "" && r.SchoolID != tt.school {
			t.Errorf("%s school=%q, want %q", tt.kind, r.SchoolID, tt.school)
		}
		if got := len(r.Items["events"]); got != tt.events {
			t.Errorf("%s events=%d, want %d", tt.kind, got, tt.events)
		}
		if _, ok := r.Fields["entity"]; ok {
			t.Errorf("%s: envelope member entity became a field", tt.kind)
		}
	}
	if got, want := string(kinds["hazard"].Value("title")), `"学生宿舍楼灭火器过期"`; got != want {
		t.Errorf("hazard title=%s, want %s", got, want)
	}
}

func TestKind(t *testing.T) {
	for in, want := range map[string]string{"Hazard": "hazard", "LessonObservation": "lesson_observation", "QuestionnaireResponse": "questionnaire_response"} {
		if got := samples.Kind(in); got != want {
			t.Errorf("Kind(%q)=%q, want %q", in, got, want)
		}
	}
}
