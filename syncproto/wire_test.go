package syncproto_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/fieldsync/fieldsync/syncproto"
	"github.com/google/uuid"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata (then review the diff)")

var (
	deviceID = uuid.MustParse("0192b000-0000-7000-8000-00000000d001")
	batchID  = uuid.MustParse("0192b000-0000-7000-8000-00000000ba01")
	epoch    = uuid.MustParse("0192b000-0000-7000-8000-00000000e001")
	op1      = uuid.MustParse("0192b000-0000-7000-8000-00000000c001")
	op2      = uuid.MustParse("0192b000-0000-7000-8000-00000000c002")
	op3      = uuid.MustParse("0192b000-0000-7000-8000-00000000c003")
	serverT  = time.Date(2024, 11, 16, 8, 2, 0, 0, time.UTC)
)

// goldenHazard is the inspector's late photo of §7.12 scenario 1, as the
// phone pushes it: a delta with the header and one event.
func goldenHazard(t testing.TB) (*syncproto.Record, *syncproto.Record) {
	t.Helper()
	w := &syncproto.Writer{Replica: deviceID, Author: inspector, Now: time.Date(2024, 11, 14, 9, 0, 0, 0, time.UTC)}
	r := &syncproto.Record{ID: uuid.MustParse("0192b000-0000-7000-8000-000000000701"), Kind: "hazard", SchoolID: schoolID,
		FormID: "hazard.report", FormVersion: 1, CreatedAt: at("2024-10-15T08:21:00+08:00"), CreatedBy: inspector}
	ev := syncproto.Event{Type: "photo_added", ActorID: inspector, ActorRole: "inspector", OccurredAt: at("2024-11-14T17:00:00+08:00"),
		Note: "2楼东侧消防箱 <新> & 旧灭火器对比", Photos: []syncproto.EventPhoto{{SHA256: strings.Repeat("ab", 32), Phase: "evidence"}}, BaseRev: 9}
	data, err := ev.Data()
	if err != nil {
		t.Fatal(err)
	}
	next, delta := syncproto.Append(r, "events", "0192b000-0000-7000-8000-000000000720", data, w)
	return next, delta
}

func goldenMessages(t testing.TB) map[string]any {
	full, delta := goldenHazard(t)
	stamped := syncproto.StampArrival(nil, full, serverT)
	stamped.Rev = 11
	form := &syncproto.Record{ID: uuid.MustParse("0192b000-0000-7000-8000-000000000901"), Kind: "monthly_feedback", SchoolID: schoolID,
		FormID: "monthly_feedback", FormVersion: 1, CreatedAt: at("2024-10-28T20:10:00+08:00"), CreatedBy: inspector}
	_, fdelta := syncproto.Set(form, "problems", str("宿舍消防器材过期；八年级作业总量偏大"),
		&syncproto.Writer{Replica: deviceID, Author: inspector, Now: time.Date(2024, 11, 5, 12, 0, 0, 0, time.UTC)})
	cur := syncproto.Cursor{Epoch: epoch, Pos: map[string]int64{schoolID: 1042, "ref": 77}}
	return map[string]any{
		"push_request": syncproto.PushRequest{Protocol: syncproto.ProtocolVersion, DeviceID: deviceID, BatchID: batchID, Changes: []syncproto.Change{
			{OpID: op1, Record: delta, Base: vec()},
			{OpID: op2, Record: fdelta, Base: vec()},
		}},
		"push_response": syncproto.PushResponse{Protocol: syncproto.ProtocolVersion, ServerTime: serverT, Results: []syncproto.Result{
			{OpID: op1, Status: syncproto.StatusApplied, Rev: 11},
			{OpID: op2, Status: syncproto.StatusMerged, Rev: 5},
			{OpID: op3, Status: syncproto.StatusConflict, Rev: 6, Conflicts: []string{"problems"}},
			{OpID: op1, Status: syncproto.StatusDuplicate, Rev: 11},
			{OpID: op2, Status: syncproto.StatusRejected, Error: syncproto.FieldError("Record 0192b000-0000-7000-8000-000000000901 is not valid.",
				map[string]string{"problems": "value must be canonical JSON"})},
		}},
		"pull_request": syncproto.PullRequest{Protocol: syncproto.ProtocolVersion, Cursor: cur.Encode(), Scope: []string{schoolID}, Limit: 200},
		"pull_response": syncproto.PullResponse{Protocol: syncproto.ProtocolVersion, Records: []*syncproto.Record{stamped},
			Cursor: syncproto.Cursor{Epoch: epoch, Pos: map[string]int64{schoolID: 1043, "ref": 77}}.Encode(), More: false, ServerTime: serverT},
		"info": syncproto.Info{Protocol: syncproto.ProtocolVersion, Epoch: epoch, ServerTime: serverT,
			Limits: syncproto.Limits{MaxChanges: 500, MaxBytes: 8 << 20, MaxPull: 1000, ChunkBytes: 1 << 20, MaxBlobSize: 20 << 20}},
		"error_invalid": syncproto.ErrorResponse{Error: syncproto.FieldError("Record 0192b000-0000-7000-8000-000000000901 is not valid.",
			map[string]string{"kind": "must be a lower-case record kind such as visit or hazard", "problems": "value too large"})},
		"error_stale":    syncproto.ErrorResponse{Error: syncproto.StartOverError()},
		"error_protocol": syncproto.ErrorResponse{Error: syncproto.Errorf(syncproto.EPROTOCOL, "Protocol version %d is not supported; this server speaks %d. Update the app.", 2, 1)},
		"error_internal": syncproto.ErrorResponse{Error: syncproto.Errorf(syncproto.EINTERNAL, "Internal error.")},
	}
}

// TestGolden compares the canonical JSON of each wire message with
// testdata/<name>.golden (indented for review). Any change to the wire
// format fails here until the files are rewritten with
//
//	go test ./syncproto -run Golden -update
//
// and the diff is reviewed: phones in the field keep old builds for
// months, so the wire format changes only on purpose.
func TestGolden(t *testing.T) {
	for name, msg := range goldenMessages(t) {
		t.Run(name, func(t *testing.T) {
			b := mustJSON(t, msg)
			var ind bytes.Buffer
			if err := json.Indent(&ind, b, "", "  "); err != nil {
				t.Fatal(err)
			}
			ind.WriteByte('\n')
			path := filepath.Join("testdata", name+".golden")
			if *update {
				if err := os.WriteFile(path, ind.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if !bytes.Equal(ind.Bytes(), want) {
				t.Fatalf("%s differs from the golden file; if intended, rerun with -update and review the diff.\ngot:\n%s", path, ind.Bytes())
			}
			// The golden file decodes back to the same message.
			back := reflect.New(reflect.TypeOf(msg))
			if err := json.Unmarshal(want, back.Interface()); err != nil {
				t.Fatalf("decoding %s: %v", path, err)
			}
			if again := mustJSON(t, back.Elem().Interface()); !bytes.Equal(again, b) {
				t.Fatalf("%s does not round-trip:\n%s\n%s", path, again, b)
			}
		})
	}
}

func pushBody(t testing.TB, mod func(m map[string]any)) []byte {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(mustJSON(t, goldenMessages(t)["push_request"]), &m); err != nil {
		t.Fatal(err)
	}
	mod(m)
	return mustJSON(t, m)
}

func change(m map[string]any, i int) map[string]any {
	return m["changes"].([]any)[i].(map[string]any)
}

func TestDecodePush(t *testing.T) {
	// Whole-request failures.
	for _, tt := range []struct {
		name string
		body []byte
		code string
	}{
		{"NotJSON", []byte(`{"protocol":1,`), syncproto.EINVALID},
		{"Empty", nil, syncproto.EINVALID},
		{"Array", []byte(`[]`), syncproto.EINVALID},
		{"Trailing", append(pushBody(t, func(map[string]any) {}), []byte(` {}`)...), syncproto.EINVALID},
		{"NoProtocol", pushBody(t, func(m map[string]any) { delete(m, "protocol") }), syncproto.EPROTOCOL},
		{"Protocol2", pushBody(t, func(m map[string]any) { m["protocol"] = 2 }), syncproto.EPROTOCOL},
		{"ProtocolString", pushBody(t, func(m map[string]any) { m["protocol"] = "1" }), syncproto.EINVALID},
		{"NoDevice", pushBody(t, func(m map[string]any) { delete(m, "device_id") }), syncproto.EINVALID},
		{"NoBatch", pushBody(t, func(m map[string]any) { m["batch_id"] = uuid.Nil.String() }), syncproto.EINVALID},
		{"BadDevice", pushBody(t, func(m map[string]any) { m["device_id"] = "phone-1" }), syncproto.EINVALID},
		{"ChangesNotArray", pushBody(t, func(m map[string]any) { m["changes"] = map[string]any{} }), syncproto.EINVALID},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := syncproto.DecodePush(tt.body)
			if got := syncproto.ErrorCode(err); got != tt.code {
				t.Fatalf("err=%v, want code %s", err, tt.code)
			}
		})
	}

	// Per-change rejections: the rest of the batch goes on.
	for _, tt := range []struct {
		name  string
		mod   func(m map[string]any)
		field string // a key expected in Error.Fields, or ""
		msg   string
	}{
		{"NoOpID", func(m map[string]any) { delete(change(m, 1), "op_id") }, "", "no op_id"},
		{"DuplicateOpID", func(m map[string]any) { change(m, 1)["op_id"] = op1.String() }, "", "appears twice"},
		{"NoRecord", func(m map[string]any) { delete(change(m, 1), "record") }, "", "no record"},
		{"InvalidRecord", func(m map[string]any) { change(m, 1)["record"].(map[string]any)["kind"] = "Monthly Feedback" }, "kind", ""},
		{"ZeroCounter", func(m map[string]any) { change(m, 1)["base"] = map[string]any{deviceID.String(): 0} }, "", "malformed"},
		{"BadHLC", func(m map[string]any) {
			f := change(m, 1)["record"].(map[string]any)["fields"].(map[string]any)["problems"].([]any)[0].(map[string]any)
			f["hlc"] = "1730468100000-2-" + deviceID.String()
		}, "", "malformed"},
		{"ChangeNotObject", func(m map[string]any) { m["changes"].([]any)[1] = "x" }, "", "malformed"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			req, rej, err := syncproto.DecodePush(pushBody(t, tt.mod))
			if err != nil {
				t.Fatalf("whole request failed: %v", err)
			}
			if len(req.Changes) != 2 || len(rej) != 1 || rej[1] == nil || rej[0] != nil {
				t.Fatalf("changes=%d rejected=%v, want only change 1", len(req.Changes), rej)
			}
			if rej[1].Code != syncproto.EINVALID || !strings.Contains(rej[1].Error(), tt.msg) {
				t.Fatalf("rejection=%v, want EINVALID mentioning %q", rej[1], tt.msg)
			}
			if _, ok := rej[1].Fields[tt.field]; tt.field != "" && !ok {
				t.Fatalf("rejection fields=%v, want %q", rej[1].Fields, tt.field)
			}
			if req.Changes[0].Record == nil || req.Changes[0].Record.Validate() != nil {
				t.Fatal("the good change was not decoded")
			}
		})
	}

	// A value that is not canonical JSON (keys unsorted) rejects only its
	// change, with a message on the field.
	body0 := pushBody(t, func(map[string]any) {})
	bad := bytes.Replace(body0, []byte(`"value":"宿舍消防器材过期；八年级作业总量偏大"`), []byte(`"value":{"b":1,"a":2}`), 1)
	if bytes.Equal(bad, body0) {
		t.Fatal("test body has no problems value to replace")
	}
	if _, rej, err := syncproto.DecodePush(bad); err != nil || len(rej) != 1 || rej[1] == nil || rej[1].Fields["problems"] == "" {
		t.Fatalf("non-canonical value: err=%v rejected=%v", err, rej)
	}

	// A good batch decodes as sent.
	body := mustJSON(t, goldenMessages(t)["push_request"])
	req, rej, err := syncproto.DecodePush(body)
	if err != nil || len(rej) != 0 || !bytes.Equal(mustJSON(t, req), body) {
		t.Fatalf("good batch: err=%v rejected=%v", err, rej)
	}
}

func TestDecodePull(t *testing.T) {
	good := syncproto.Cursor{Epoch: epoch, Pos: map[string]int64{schoolID: 3}}.Encode()
	for _, tt := range []struct {
		name, body, code string
	}{
		{"Empty", `{"protocol":1}`, ""},
		{"Cursor", `{"protocol":1,"cursor":"` + good + `","scope":["ref"],"limit":10}`, ""},
		{"NoProtocol", `{}`, syncproto.EPROTOCOL},
		{"NotJSON", `{`, syncproto.EINVALID},
		{"Trailing", `{"protocol":1} x`, syncproto.EINVALID},
		{"NegativeLimit", `{"protocol":1,"limit":-1}`, syncproto.EINVALID},
		{"BadCursor", `{"protocol":1,"cursor":"%%%"}`, syncproto.ESTALE},
		{"EmptyScope", `{"protocol":1,"scope":[""]}`, syncproto.EINVALID},
		{"DuplicateScope", `{"protocol":1,"scope":["ref","ref"]}`, syncproto.EINVALID},
		{"TooManyScopes", `{"protocol":1,"scope":["` + strings.Repeat(`a","`, syncproto.MaxScopes) + `b"]}`, syncproto.EINVALID},
	} {
		t.Run(tt.name, func(t *testing.T) {
			req, cur, err := syncproto.DecodePull([]byte(tt.body))
			if got := syncproto.ErrorCode(err); got != tt.code {
				t.Fatalf("err=%v, want code %q", err, tt.code)
			}
			if tt.name == "Cursor" && (cur.Epoch != epoch || cur.Pos[schoolID] != 3 || req.Limit != 10 || req.Scope[0] != "ref") {
				t.Fatalf("req=%+v cur=%+v", req, cur)
			}
		})
	}
}

func TestCursor(t *testing.T) {
	c := syncproto.Cursor{Epoch: epoch, Pos: map[string]int64{"b": 2, "a": 1}}
	got, err := syncproto.DecodeCursor(c.Encode())
	if err != nil || !reflect.DeepEqual(got, c) {
		t.Fatalf("round trip: %+v %v", got, err)
	}
	if got := got.Scopes(); !reflect.DeepEqual(got, []string{"a", "b"}) {
		t.Fatalf("Scopes=%v", got)
	}
	if z, err := syncproto.DecodeCursor(""); err != nil || z.Epoch != uuid.Nil {
		t.Fatalf("empty cursor: %+v %v", z, err)
	}
	enc := func(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }
	for name, s := range map[string]string{
		"NotBase64":     "!!",
		"NotJSON":       enc("{"),
		"UnknownField":  enc(`{"e":"` + epoch.String() + `","x":1}`),
		"NegativeSeq":   enc(`{"e":"` + epoch.String() + `","p":{"a":-1}}`),
		"EmptyScope":    enc(`{"e":"` + epoch.String() + `","p":{"":1}}`),
		"Padded":        base64.URLEncoding.EncodeToString([]byte(`{"e":"` + epoch.String() + `"}`)),
		"TrailingValue": enc(`{"e":"` + epoch.String() + `"} {}`),
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := syncproto.DecodeCursor(s); syncproto.ErrorCode(err) != syncproto.ESTALE {
				t.Fatalf("err=%v, want ESTALE (start over)", err)
			}
		})
	}
	if e := syncproto.StartOverError(); e.Code != syncproto.ESTALE || e.Message != syncproto.StartOver {
		t.Fatalf("StartOverError=%+v", e)
	}
}

func TestErrors(t *testing.T) {
	e := syncproto.FieldError("Record x is not valid.", map[string]string{"b": "two", "a": "one"})
	if got, want := e.Error(), "invalid: Record x is not valid. (a: one; b: two)"; got != want {
		t.Fatalf("Error()=%q, want %q", got, want)
	}
	wrapped := errorsJoin(e)
	if syncproto.ErrorCode(wrapped) != syncproto.EINVALID || syncproto.ErrorMessage(wrapped) != "Record x is not valid." {
		t.Fatal("ErrorCode/ErrorMessage do not unwrap")
	}
	foreign := os.ErrNotExist
	if syncproto.ErrorCode(foreign) != syncproto.EINTERNAL || syncproto.ErrorMessage(foreign) != "Internal error." {
		t.Fatal("a foreign error is not internal")
	}
	if syncproto.ErrorCode(nil) != "" || syncproto.ErrorMessage(nil) != "" {
		t.Fatal("nil error")
	}
}

type wrapErr struct{ err error }

func (w wrapErr) Error() string { return "wrapped: " + w.err.Error() }
func (w wrapErr) Unwrap() error { return w.err }

func errorsJoin(err error) error { return wrapErr{err} }

// FuzzDecodePush checks that DecodePush never panics, that everything it
// accepts is valid, and that a decoded request re-encodes to a body that
// decodes to the same request, every accepted change accepted again with
// the same digest. (A rejected change need not stay rejected: re-encoding
// turns a missing value into null, which is valid.)
func FuzzDecodePush(f *testing.F) {
	good := mustJSON(f, goldenMessages(f)["push_request"])
	f.Add(good)
	f.Add([]byte(`{"protocol":1,"device_id":"0192b000-0000-7000-8000-00000000d001","batch_id":"0192b000-0000-7000-8000-00000000ba01","changes":[{"op_id":"0192b000-0000-7000-8000-00000000c001"},7,null]}`))
	f.Add([]byte(`{"protocol":2}`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, body []byte) {
		req, rej, err := syncproto.DecodePush(body)
		if err != nil {
			if c := syncproto.ErrorCode(err); c != syncproto.EINVALID && c != syncproto.EPROTOCOL {
				t.Fatalf("error code %q", c)
			}
			return
		}
		for i, c := range req.Changes {
			if rej[i] != nil {
				continue
			}
			if c.OpID == uuid.Nil || c.Record == nil || c.Record.Validate() != nil || c.Base.Validate() != nil {
				t.Fatalf("change %d accepted but not valid", i)
			}
		}
		for i := range rej {
			if i < 0 || i >= len(req.Changes) {
				t.Fatalf("rejection index %d out of range", i)
			}
		}
		again, rej2, err := syncproto.DecodePush(mustJSON(t, req))
		if err != nil {
			t.Fatalf("re-encoded request fails: %v", err)
		}
		if len(again.Changes) != len(req.Changes) {
			t.Fatalf("re-decoding: %d changes; was %d", len(again.Changes), len(req.Changes))
		}
		for i, c := range req.Changes {
			if rej[i] == nil && (rej2[i] != nil || again.Changes[i].Digest() != c.Digest()) {
				t.Fatalf("change %d does not round-trip: %v", i, rej2[i])
			}
		}
	})
}

// FuzzDecodePull checks that DecodePull never panics and that what it
// accepts round-trips.
func FuzzDecodePull(f *testing.F) {
	f.Add([]byte(`{"protocol":1}`))
	f.Add(mustJSON(f, goldenMessages(f)["pull_request"]))
	f.Add([]byte(`{"protocol":1,"cursor":"e30","limit":-1,"scope":["a","a"]}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		req, cur, err := syncproto.DecodePull(body)
		if err != nil {
			if c := syncproto.ErrorCode(err); c != syncproto.EINVALID && c != syncproto.EPROTOCOL {
				t.Fatalf("error code %q", c)
			}
			return
		}
		if req.Limit < 0 || req.Protocol != syncproto.ProtocolVersion || len(req.Scope) > syncproto.MaxScopes {
			t.Fatalf("accepted %+v", req)
		}
		req2, cur2, err := syncproto.DecodePull(mustJSON(t, req))
		if err != nil || !reflect.DeepEqual(req, req2) || !reflect.DeepEqual(cur, cur2) {
			t.Fatalf("round trip: %+v %+v %v", req2, cur2, err)
		}
	})
}

// FuzzDecodeCursor checks that DecodeCursor never panics, refuses only
// with ESTALE (the phone starts over), and that a cursor it accepts encodes to a text that decodes to the same cursor.
func FuzzDecodeCursor(f *testing.F) {
	f.Add("")
	f.Add(syncproto.Cursor{Epoch: epoch, Pos: map[string]int64{schoolID: 1042, "ref": 77}}.Encode())
	f.Add(base64.RawURLEncoding.EncodeToString([]byte(`{"e":"` + epoch.String() + `","p":{"a":-1}}`)))
	f.Add("e30")
	f.Fuzz(func(t *testing.T, s string) {
		c, err := syncproto.DecodeCursor(s)
		if err != nil {
			if syncproto.ErrorCode(err) != syncproto.ESTALE {
				t.Fatalf("error code %q, want stale (start over)", syncproto.ErrorCode(err))
			}
			return
		}
		for k, v := range c.Pos {
			if k == "" || v < 0 {
				t.Fatalf("accepted %+v", c)
			}
		}
		enc := c.Encode()
		c2, err := syncproto.DecodeCursor(enc)
		if err != nil || c2.Epoch != c.Epoch || len(c2.Pos) != len(c.Pos) {
			t.Fatalf("round trip %+v → %q → %+v, %v", c, enc, c2, err)
		}
		for k, v := range c.Pos {
			if c2.Pos[k] != v {
				t.Fatalf("round trip lost %s", k)
			}
		}
		if c2.Encode() != enc {
			t.Fatal("encoding not stable")
		}
	})
}
