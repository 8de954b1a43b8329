package server

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/fieldsync/fieldsync/syncproto"
)

// TestDecodeFormRecordStatus: only "published" and "retired" are statuses;
// anything else is an error, never read as published.
func TestDecodeFormRecordStatus(t *testing.T) {
	tests := []struct {
		name        string
		status      string // the field's JSON; "" leaves the field out
		wantRetired bool
		wantErr     bool
	}{
		{"Published", `"published"`, false, false},
		{"Retired", `"retired"`, true, false},
		{"Missing", ``, false, true},
		{"Number", `1`, false, true},
		{"Null", `null`, false, true},
		{"Unknown", `"draft"`, false, true},
		{"Empty", `""`, false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := &syncproto.Writer{Replica: uuid.Must(uuid.NewV7()), Author: "office", Now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
			r := &syncproto.Record{ID: uuid.Must(uuid.NewV7()), Kind: "form", CreatedAt: w.Now, CreatedBy: w.Author}
			r, _ = syncproto.Set(r, formFieldDefinition, json.RawMessage(`{"id":"canteen","version":2}`), w)
			if tt.status != "" {
				r, _ = syncproto.Set(r, formFieldStatus, json.RawMessage(tt.status), w)
			}
			def, retired, err := decodeFormRecord(r)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, want an error: %v", err, tt.wantErr)
			}
			if err != nil {
				return
			}
			if retired != tt.wantRetired || def.ID != "canteen" || def.Version != 2 {
				t.Errorf("got %s v%d retired %v, want canteen v2 retired %v", def.ID, def.Version, retired, tt.wantRetired)
			}
		})
	}
}
