package core_test

import (
	"encoding/json"
	"path/filepath"
	"testing"
	"time"

	"github.com/fieldsync/fieldsync/mobile"
	"github.com/fieldsync/fieldsync/syncproto"
	"github.com/fieldsync/fieldsync/webapp/core"
	"github.com/google/uuid"
)

const school = "0192b000-0000-7000-8000-000000000103"

func call(t *testing.T, name string, req any) map[string]json.RawMessage {
	t.Helper()
	b, err := json.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	var out map[string]json.RawMessage
	if err := json.Unmarshal(core.Call(name, b), &out); err != nil {
		t.Fatalf("%s: answer is not a JSON object: %v", name, err)
	}
	return out
}

func text(t *testing.T, raw json.RawMessage) string {
	t.Helper()
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		t.Fatalf("not a JSON string: %s", raw)
	}
	return s
}

// TestEditMatchesMobileEngine saves the same drafts, at the same times,
// through mobile.Engine and through the core the browser runs, and
// requires the same record bytes after every edit, and the same refusal
// (code and field messages) for an invalid draft.
func TestEditMatchesMobileEngine(t *testing.T) {
	var now time.Time
	clock := func() time.Time { return now }
	e, err := mobile.Open(filepath.Join(t.TempDir(), "phone.db"), mobile.Options{Validator: mobile.FormsValidator(clock), Now: clock, NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	const author = "0192b000-0000-7000-8000-0000000002b1"
	if err := e.SetServer("http://127.0.0.1:1", "token", author); err != nil {
		t.Fatal(err)
	}
	id := uuid.MustParse("01a20000-0000-7000-8000-000000000e01")
	t0 := time.Date(2026, 11, 20, 1, 0, 0, 123e6, time.UTC)
	tests := []struct {
		name  string
		at    time.Duration
		draft core.Draft
		code  string // a refusal, or "" for a saved draft
	}{
		{"NewVisit", 0, core.Draft{ID: id, Kind: "visit", SchoolID: school, FormID: "visit.routine", FormVersion: 1, Values: map[string]json.RawMessage{
			"school_id": js(school), "kind": js("routine"), "announced": js(true), "lead_inspector_id": js("0192b000-0000-7000-8000-0000000002a1"),
			"visit_date": js("2026-11-20"), "check_in_at": js("2026-11-20T09:00:00+08:00"), "status": js("in_progress")}}, ""},
		{"TwoFields", time.Minute, core.Draft{ID: id, Values: map[string]json.RawMessage{"highlights": js("课间操有序"), "problems": js("楼梯灯不亮")}}, ""},
		{"SameSecondAgain", time.Minute + time.Millisecond, core.Draft{ID: id, Values: map[string]json.RawMessage{"highlights": js("课间操组织有序")}}, ""},
		{"NothingChanged", 2 * time.Minute, core.Draft{ID: id, Values: map[string]json.RawMessage{"problems": js("楼梯灯不亮")}}, ""},
		{"CheckInOnAnotherDay", 3 * time.Minute, core.Draft{ID: id, Values: map[string]json.RawMessage{"check_in_at": js("2026-11-21T09:00:00+08:00")}}, syncproto.EINVALID},
		{"HeaderCannotChange", 4 * time.Minute, core.Draft{ID: id, Kind: "hazard"}, syncproto.EINVALID},
		{"UnknownRecord", 5 * time.Minute, core.Draft{ID: uuid.MustParse("01a20000-0000-7000-8000-000000000e99"), Values: map[string]json.RawMessage{"x": js(1)}}, syncproto.ENOTFOUND},
		{"Completed", 6 * time.Minute, core.Draft{ID: id, Values: map[string]json.RawMessage{"status": js("completed"), "feedback": js(map[string]any{
			"given_at": "2026-11-20T11:30:00+08:00", "to_name": "王校长", "to_role": "principal", "mode": "face_to_face"})}}, ""},
	}
	var local core.Text
	clockText := ""
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			now = t0.Add(tt.at)
			_, goErr := e.Save(mobile.Draft{ID: tt.draft.ID, Kind: tt.draft.Kind, SchoolID: tt.draft.SchoolID, FormID: tt.draft.FormID, FormVersion: tt.draft.FormVersion, Values: tt.draft.Values})
			// The app passes the local copy of the draft's record, if any.
			cur := local
			if tt.draft.ID != id {
				cur = nil
			}
			out := call(t, "edit", map[string]any{"op": "save", "record": cur, "draft": tt.draft,
				"writer": map[string]any{"replica": e.DeviceID(), "author": author, "clock": clockText, "now": now}})
			if tt.code != "" {
				var perr struct {
					Code   string
					Fields map[string]string
				}
				json.Unmarshal(out["error"], &perr)
				if got := syncproto.ErrorCode(goErr); got != tt.code || perr.Code != tt.code {
					t.Fatalf("codes: engine %q, core %q; want %q", got, perr.Code, tt.code)
				}
				if goFields := goErr.(*syncproto.Error).Fields; len(goFields) != len(perr.Fields) {
					t.Errorf("field messages: engine %v, core %v", goFields, perr.Fields)
				}
				return
			}
			if goErr != nil {
				t.Fatalf("engine: %v", goErr)
			}
			if out["error"] != nil {
				t.Fatalf("core: %s", out["error"])
			}
			rec, err := e.Record(id)
			if err != nil {
				t.Fatal(err)
			}
			want, _ := syncproto.Marshal(rec)
			got := text(t, out["record"])
			if got != string(want) {
				t.Fatalf("records differ\nengine: %s\ncore:   %s", want, got)
			}
			local, clockText = core.Text(got), text(t, out["clock"])
			if st, _ := e.Status(); st.Clock != clockText {
				t.Errorf("clock: engine %s, core %s", st.Clock, clockText)
			}
		})
	}
}

func js(v any) json.RawMessage {
	b, err := syncproto.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

// TestCallRefusesBadRequests checks that every refusal is an error answer
// with the protocol's code, never a panic.
func TestCallRefusesBadRequests(t *testing.T) {
	tests := []struct {
		name, entry, req, code string
	}{
		{"UnknownEntry", "nope", `{}`, syncproto.EINVALID},
		{"NotJSON", "edit", `{`, syncproto.EINVALID},
		{"UnknownEdit", "edit", `{"op":"rename","writer":{}}`, syncproto.EINVALID},
		{"AppendToNothing", "edit", `{"op":"append","collection":"events","data":{}}`, syncproto.ENOTFOUND},
		{"NewRecordWithoutKind", "edit", `{"op":"save","draft":{"values":{}}}`, syncproto.EINVALID},
		{"BadRecord", "merge", `{"a":"{\"id\":\"x\"}","b":null}`, syncproto.EINVALID},
		{"UnknownForm", "evaluate", `{"form_id":"none","form_version":1}`, syncproto.ENOTFOUND},
		{"WrongDefinition", "evaluate", `{"form_id":"q","form_version":1,"definition":{"id":"other","version":1}}`, syncproto.EINVALID},
		{"PullNotJSON", "decodePull", `<html>`, syncproto.EINVALID},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out struct{ Error *syncproto.Error }
			if err := json.Unmarshal(core.Call(tt.entry, []byte(tt.req)), &out); err != nil || out.Error == nil {
				t.Fatalf("answer %s: want an error", core.Call(tt.entry, []byte(tt.req)))
			}
			if out.Error.Code != tt.code {
				t.Errorf("code %q (%s), want %q", out.Error.Code, out.Error.Message, tt.code)
			}
		})
	}
}

// TestPulledIsMerge checks the pull step against syncproto.Merge: the
// incoming state joined into both copies, the clock past its stamps.
func TestPulledIsMerge(t *testing.T) {
	office := uuid.MustParse("0192b000-0000-7000-8000-00000000f001")
	phone := uuid.MustParse("0192b000-0000-7000-8000-0000000000a1")
	w := &syncproto.Writer{Replica: office, Author: "office", Now: time.Date(2026, 11, 20, 1, 0, 0, 0, time.UTC)}
	r := &syncproto.Record{ID: uuid.MustParse("01a20000-0000-7000-8000-000000000e01"), Kind: "school", SchoolID: school}
	r, _ = syncproto.Set(r, "name", js("东河县第二初级中学"), w)
	pw := &syncproto.Writer{Replica: phone, Author: "u", Now: w.Now.Add(-time.Hour)}
	local, _ := syncproto.Set(r.Header(), "note", js("本地"), pw)
	inc, _ := syncproto.Marshal(r)
	loc, _ := syncproto.Marshal(local)
	out := call(t, "pulled", map[string]any{"replica": phone, "now": w.Now, "items": []any{map[string]any{"incoming": string(inc), "local": string(loc)}}})
	var res struct {
		Clock   string
		Results []struct{ Server, Local string }
	}
	b, _ := json.Marshal(out)
	json.Unmarshal(b, &res)
	want, _ := syncproto.Merge(local, r)
	wb, _ := syncproto.Marshal(want)
	if len(res.Results) != 1 || res.Results[0].Local != string(wb) || res.Results[0].Server != string(inc) {
		t.Fatalf("pulled: %s\nwant local %s", b, wb)
	}
	h, err := syncproto.ParseHLC(res.Clock)
	if err != nil || h.Replica != phone || h.Compare(r.MaxHLC()) < 0 && h.Wall < r.MaxHLC().Wall {
		t.Errorf("clock %s is not past the pulled stamps %v", res.Clock, r.MaxHLC())
	}
}

// FuzzCall: whatever the app sends, the core answers JSON and never
// panics out of Call.
func FuzzCall(f *testing.F) {
	names := []string{"edit", "merge", "mergeBase", "pulled", "decodePull", "pushBody", "view", "evaluate", "wroteTo", "newID"}
	f.Add(uint8(0), []byte(`{"op":"save","draft":{"kind":"visit","values":{"a":1}},"writer":{}}`))
	f.Add(uint8(1), []byte(`{"a":null,"b":null}`))
	f.Add(uint8(4), []byte(`{"records":[{"id":"01a20000-0000-7000-8000-000000000e01","kind":"x"}],"cursor":"c","more":false}`))
	f.Add(uint8(7), []byte(`{"form_id":"visit.routine","form_version":1,"values":{"status":"completed"}}`))
	f.Fuzz(func(t *testing.T, n uint8, req []byte) {
		out := core.Call(names[int(n)%len(names)], req)
		if !json.Valid(out) {
			t.Fatalf("answer is not JSON: %q", out)
		}
	})
}
