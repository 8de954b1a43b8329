package api

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/fieldsync/fieldsync/internal/samples"
	"github.com/fieldsync/fieldsync/server"
	"github.com/fieldsync/fieldsync/syncproto"
)

// TestConflictListAndResolve makes a conflict (two replicas write one
// field without seeing each other), lists it and resolves it over HTTP.
func TestConflictListAndResolve(t *testing.T) {
	t.Parallel()
	forEachStack(t, Config{}, testConflictListAndResolve)
}

func testConflictListAndResolve(t *testing.T, st *stack) {
	const school = "0192b000-0000-7000-8000-000000000103"
	now := time.Date(2024, 11, 5, 9, 0, 0, 0, time.UTC)
	base := &syncproto.Record{ID: uuid.Must(uuid.NewV7()), Kind: "note", SchoolID: school, CreatedAt: now}
	push := func(delta *syncproto.Record) syncproto.Result {
		req := syncproto.PushRequest{Protocol: syncproto.ProtocolVersion, DeviceID: uuid.New(), BatchID: uuid.Must(uuid.NewV7()),
			Changes: []syncproto.Change{{OpID: uuid.Must(uuid.NewV7()), Record: delta}}}
		var resp syncproto.PushResponse
		st.mustDo(t, 200, request{method: "POST", path: "/v1/sync/push", token: stackAdminToken, json: req}).decode(t, &resp)
		return resp.Results[0]
	}
	_, office := syncproto.Set(base, "text", json.RawMessage(`"已整改"`), &syncproto.Writer{Replica: uuid.New(), Author: "office", Now: now})
	_, field := syncproto.Set(base, "text", json.RawMessage(`"仍未整改"`), &syncproto.Writer{Replica: uuid.New(), Author: "inspector", Now: now.Add(time.Minute)})
	if got := push(office).Status; got != syncproto.StatusApplied {
		t.Fatalf("first push: %s", got)
	}
	if got := push(field); got.Status != syncproto.StatusConflict || len(got.Conflicts) != 1 || got.Conflicts[0] != "text" {
		t.Fatalf("second push: %+v, want a conflict on text", got)
	}

	var list struct{ Conflicts []server.Conflict }
	st.mustDo(t, 200, request{method: "GET", path: "/v1/conflicts?status=open&scope=" + school, token: stackAdminToken}).decode(t, &list)
	if len(list.Conflicts) != 1 || len(list.Conflicts[0].Versions) != 2 {
		t.Fatalf("open conflicts: %+v", list.Conflicts)
	}
	c := list.Conflicts[0]
	if c.ID != server.ConflictID(base.ID, "text") {
		t.Fatalf("conflict id %q", c.ID)
	}

	path := "/v1/conflicts/" + base.ID.String() + "/text/resolve"
	tests := []struct {
		name   string
		path   string
		body   any
		status int
	}{
		{"NoValue", path, map[string]any{}, 400},
		{"BadRecordID", "/v1/conflicts/not-a-uuid/text/resolve", map[string]any{"value": "x"}, 400},
		{"UnknownField", "/v1/conflicts/" + base.ID.String() + "/nosuch/resolve", map[string]any{"value": "x"}, 404},
		{"OK", path, map[string]any{"value": "仍未整改，已重新下发整改通知"}, 200},
		{"AlreadyResolved", path, map[string]any{"value": "again"}, 409},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st.mustDo(t, tt.status, request{method: "POST", path: tt.path, token: stackAdminToken, json: tt.body})
		})
	}
	r, err := st.syncer.Record(t.Context(), school, base.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := string(r.Value("text")), `"仍未整改，已重新下发整改通知"`; got != want || r.Fields["text"].InConflict() {
		t.Fatalf("text=%s (conflict %v), want %s resolved", got, r.Fields["text"].InConflict(), want)
	}
	if got := len(r.Conflicts); got != 2 {
		t.Fatalf("conflict log holds %d revisions, want both losers kept (2)", got)
	}
	st.mustDo(t, 200, request{method: "GET", path: "/v1/conflicts?status=open&scope=" + school, token: stackAdminToken}).decode(t, &list)
	if len(list.Conflicts) != 0 {
		t.Fatalf("still open: %+v", list.Conflicts)
	}
}

// TestGetRecordFoldsHazard pushes the sample hazard with its whole
// rectification history and reads it back with its derived state.
func TestGetRecordFoldsHazard(t *testing.T) {
	t.Parallel()
	forEachStack(t, Config{}, testGetRecordFoldsHazard)
}

func testGetRecordFoldsHazard(t *testing.T, st *stack) {
	smp, err := samples.Get("09_hazard_with_history")
	if err != nil {
		t.Fatal(err)
	}
	rec, err := smp.Record(&syncproto.Writer{Replica: samples.OfficeReplica, Author: "office", Now: time.Date(2024, 11, 15, 9, 30, 0, 0, time.UTC)})
	if err != nil {
		t.Fatal(err)
	}
	req := syncproto.PushRequest{Protocol: syncproto.ProtocolVersion, DeviceID: samples.OfficeReplica, BatchID: uuid.Must(uuid.NewV7()),
		Changes: []syncproto.Change{{OpID: uuid.Must(uuid.NewV7()), Record: rec}}}
	var resp syncproto.PushResponse
	st.mustDo(t, 200, request{method: "POST", path: "/v1/sync/push", token: stackAdminToken, json: req}).decode(t, &resp)
	if got := resp.Results[0].Status; got != syncproto.StatusApplied {
		t.Fatalf("push: %+v", resp.Results[0])
	}
	var view struct {
		Hazard syncproto.HazardState `json:"hazard"`
	}
	st.mustDo(t, 200, request{method: "GET", path: "/v1/records/" + rec.ID.String() + "?scope=" + rec.SchoolID, token: stackAdminToken}).decode(t, &view)
	if view.Hazard.Status != "closed" || view.Hazard.NeedsReview {
		t.Fatalf("hazard state %+v, want closed without review", view.Hazard)
	}
}
