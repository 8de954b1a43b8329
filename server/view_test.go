package server_test

import (
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/fieldsync/fieldsync/internal/samples"
	"github.com/fieldsync/fieldsync/server"
	"github.com/fieldsync/fieldsync/syncproto"
)

// TestRecordViewHazardStatus checks the status the server shows for the
// sample hazard: closed from its whole history, and reported — as on the
// phone — when it holds no events, as a hazard filled in with the report
// form does.
func TestRecordViewHazardStatus(t *testing.T) {
	now := time.Date(2024, 11, 20, 9, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name   string
		events bool
		want   string
	}{
		{"with its history", true, syncproto.HazardClosed},
		{"reported without events", false, syncproto.HazardReported},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := samples.Get("09_hazard_with_history")
			if err != nil {
				t.Fatal(err)
			}
			if !tc.events {
				delete(s.Values, "events")
			}
			w := &syncproto.Writer{Replica: syncproto.ReplicaID(uuid.New()), Author: "0192b000-0000-7000-8000-000000000211", Now: now}
			r, err := s.Record(w)
			if err != nil {
				t.Fatal(err)
			}
			v := server.NewRecordView(r, now)
			if v.Hazard == nil || v.Hazard.Status != tc.want {
				t.Fatalf("hazard view %+v, want status %q", v.Hazard, tc.want)
			}
			if phone := syncproto.FoldHazard(r, now).Status; phone != v.Hazard.Status {
				t.Fatalf("the phone folds %q, the server %q", phone, v.Hazard.Status)
			}
		})
	}
}
