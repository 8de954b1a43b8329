package api

import (
	"bytes"
	"compress/gzip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/fieldsync/fieldsync/server"
	"github.com/fieldsync/fieldsync/syncproto"
)

// Schools of the tests: A is assigned to inspector A only, B to B only.
const (
	schoolA = "0192b000-0000-7000-8000-000000000101"
	schoolB = "0192b000-0000-7000-8000-000000000102"
)

func TestEnrollAndRevoke(t *testing.T) {
	forEachStack(t, Config{}, testEnrollAndRevoke)
}

func testEnrollAndRevoke(t *testing.T, st *stack) {
	in := st.newInspector(t, "张督学", schoolA)
	if !strings.HasPrefix(in.token, "fsd_") || len(in.token) != 4+43 {
		t.Fatalf("token %q, want fsd_ and 43 characters", in.token)
	}
	st.mustDo(t, 200, request{method: "GET", path: "/v1/sync/info", token: in.token})

	// A second code, for the tests of enrollment itself.
	var code struct{ Code string }
	st.mustDo(t, 201, request{method: "POST", path: "/v1/admin/inspectors/" + in.id + "/enrollment-codes", token: stackAdminToken}).decode(t, &code)
	enrollAs := func(code, device, name string) request {
		return request{method: "POST", path: "/v1/devices/enroll", json: map[string]string{"code": code, "device_id": device, "device_name": name}}
	}
	enroll := func(code, device string) request { return enrollAs(code, device, "备用手机") }
	putInspector := func(in server.Inspector) request {
		return request{method: "PUT", path: "/v1/admin/inspectors/" + uuid.NewString(), token: stackAdminToken, json: in}
	}
	spare := uuid.Must(uuid.NewV7()).String()
	tests := []struct {
		name   string
		rq     request
		status int
		code   string
		field  string // a key of the error's fields
	}{
		{"UnknownCode", enroll("AAAA-BBBB-CCCC", spare), 401, syncproto.EUNAUTHORIZED, ""},
		{"BadDeviceID", enroll(code.Code, "phone-1"), 400, syncproto.EINVALID, "device_id"},
		{"DeviceAlreadyEnrolled", enroll(code.Code, in.deviceID.String()), 409, syncproto.ECONFLICT, ""},
		{"NULInDeviceName", enrollAs(code.Code, spare, "备用\u0000手机"), 400, syncproto.EINVALID, "device_name"},
		{"DeviceNameTooLong", enrollAs(code.Code, spare, strings.Repeat("机", 201)), 400, syncproto.EINVALID, "device_name"},
		{"NULInInspectorName", putInspector(server.Inspector{UserID: uuid.NewString(), Name: "王\u0000督学", Active: true}), 400, syncproto.EINVALID, "name"},
		{"NULInInspectorPhone", putInspector(server.Inspector{UserID: uuid.NewString(), Name: "王督学", Phone: "\u0000", Active: true}), 400, syncproto.EINVALID, "phone"},
		{"NULInRole", putInspector(server.Inspector{UserID: uuid.NewString(), Name: "王督学", Roles: []string{"\u0000"}, Active: true}), 400, syncproto.EINVALID, "roles[0]"},
		{"CodeForUnknownInspector", request{method: "POST", path: "/v1/admin/inspectors/" + uuid.NewString() + "/enrollment-codes", token: stackAdminToken}, 404, syncproto.ENOTFOUND, ""},
		{"DeviceMakesCodes", request{method: "POST", path: "/v1/admin/inspectors/" + in.id + "/enrollment-codes", token: in.token}, 403, syncproto.EFORBIDDEN, ""},
		{"DeviceRevokes", request{method: "POST", path: "/v1/admin/devices/" + in.deviceID.String() + "/revoke", token: in.token}, 403, syncproto.EFORBIDDEN, ""},
		{"NoToken", request{method: "GET", path: "/v1/sync/info"}, 401, syncproto.EUNAUTHORIZED, ""},
		{"UnknownToken", request{method: "GET", path: "/v1/sync/info", token: "fsd_" + strings.Repeat("A", 43)}, 401, syncproto.EUNAUTHORIZED, ""},
		{"RevokeUnknownDevice", request{method: "POST", path: "/v1/admin/devices/" + uuid.NewString() + "/revoke", token: stackAdminToken}, 404, syncproto.ENOTFOUND, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := st.do(t, tt.rq)
			if r.status != tt.status {
				t.Fatalf("%s %s = %d %s, want %d", tt.rq.method, tt.rq.path, r.status, r.body, tt.status)
			}
			e := r.errorOf(t)
			if e.Code != tt.code {
				t.Errorf("code %q, want %q", e.Code, tt.code)
			}
			if _, ok := e.Fields[tt.field]; tt.field != "" && !ok {
				t.Errorf("fields %v, want %s", e.Fields, tt.field)
			}
		})
	}
	// The refused enrollments above kept the code: it enrolls one phone,
	// once.
	st.mustDo(t, 201, enroll(code.Code, spare))
	if r := st.do(t, enroll(code.Code, uuid.Must(uuid.NewV7()).String())); r.status != 401 || r.errorOf(t).Code != syncproto.EUNAUTHORIZED {
		t.Errorf("a used code = %d %s, want 401 unauthorized", r.status, r.body)
	}

	// Revoked: every route refuses the token at once, with 401.
	st.mustDo(t, 200, request{method: "POST", path: "/v1/admin/devices/" + in.deviceID.String() + "/revoke", token: stackAdminToken})
	for _, rq := range []request{
		{method: "GET", path: "/v1/sync/info", token: in.token},
		{method: "POST", path: "/v1/sync/push", token: in.token, body: pushBody(t, in.deviceID, note(t, in.writer(), schoolA, "撤销后"))},
		{method: "POST", path: "/v1/sync/pull", token: in.token, json: syncproto.PullRequest{Protocol: syncproto.ProtocolVersion}},
		{method: "GET", path: "/v1/forms", token: in.token},
	} {
		r := st.do(t, rq)
		if r.status != 401 || r.errorOf(t).Code != syncproto.EUNAUTHORIZED {
			t.Errorf("revoked token: %s %s = %d %s, want 401 unauthorized", rq.method, rq.path, r.status, r.body)
		}
	}
}

// push sends records as the inspector's phone and returns the results.
func (st *stack) push(t *testing.T, in *inspectorAt, recs ...*syncproto.Record) []syncproto.Result {
	t.Helper()
	var resp syncproto.PushResponse
	st.mustDo(t, 200, request{method: "POST", path: "/v1/sync/push", token: in.token, body: pushBody(t, in.deviceID, recs...)}).decode(t, &resp)
	if len(resp.Results) != len(recs) {
		t.Fatalf("%d results for %d changes", len(resp.Results), len(recs))
	}
	return resp.Results
}

// pullAll pulls from an empty cursor until no more remain and returns the
// ids of the records received.
func (st *stack) pullAll(t *testing.T, in *inspectorAt) []uuid.UUID {
	t.Helper()
	var ids []uuid.UUID
	cursor := ""
	for range 100 {
		var resp syncproto.PullResponse
		st.mustDo(t, 200, request{method: "POST", path: "/v1/sync/pull", token: in.token,
			json: syncproto.PullRequest{Protocol: syncproto.ProtocolVersion, Cursor: cursor, Limit: 2}}).decode(t, &resp)
		for _, r := range resp.Records {
			ids = append(ids, r.ID)
		}
		if !resp.More {
			return ids
		}
		cursor = resp.Cursor
	}
	t.Fatal("pull never ended")
	return nil
}

func TestSyncAccessByAssignment(t *testing.T) {
	forEachStack(t, Config{}, testSyncAccessByAssignment)
}

func testSyncAccessByAssignment(t *testing.T, st *stack) {
	a := st.newInspector(t, "张督学", schoolA)
	b := st.newInspector(t, "李督学", schoolB)

	bRecords := []*syncproto.Record{note(t, b.writer(), schoolB, "B 校食堂"), note(t, b.writer(), schoolB, "B 校宿舍")}
	for i, res := range st.push(t, b, bRecords...) {
		if res.Status != syncproto.StatusApplied {
			t.Fatalf("B's record %d: %+v", i, res)
		}
	}

	// A pushes one record of its own school and one of B's in one batch:
	// the second is refused, the first goes through.
	aOwn := note(t, a.writer(), schoolA, "A 校操场")
	intruder := note(t, a.writer(), schoolB, "写到 B 校")
	res := st.push(t, a, aOwn, intruder)
	if res[0].Status != syncproto.StatusApplied {
		t.Errorf("A's own record: %+v", res[0])
	}
	if res[1].Status != syncproto.StatusRejected || res[1].Error == nil || res[1].Error.Code != syncproto.EFORBIDDEN {
		t.Errorf("A's record in B's school: %+v, want rejected forbidden", res[1])
	}
	// Nor may A edit B's existing record.
	edit, _ := syncproto.Set(bRecords[0].Header(), "text", []byte(`"A 改的"`), a.writer())
	if res := st.push(t, a, edit); res[0].Status != syncproto.StatusRejected || res[0].Error.Code != syncproto.EFORBIDDEN {
		t.Errorf("A's edit of B's record: %+v, want rejected forbidden", res[0])
	}

	recordPath := func(r *syncproto.Record, scope string) string {
		return "/v1/records/" + r.ID.String() + "?scope=" + scope
	}
	tests := []struct {
		name   string
		rq     request
		status int
		code   string
	}{
		{"AReadsOwn", request{method: "GET", path: recordPath(aOwn, schoolA), token: a.token}, 200, ""},
		{"AReadsB", request{method: "GET", path: recordPath(bRecords[0], schoolB), token: a.token}, 403, syncproto.EFORBIDDEN},
		{"AReadsBUnderOwnScope", request{method: "GET", path: recordPath(bRecords[0], schoolA), token: a.token}, 404, syncproto.ENOTFOUND},
		{"AReadsIntruder", request{method: "GET", path: recordPath(intruder, schoolB), token: a.token}, 403, syncproto.EFORBIDDEN},
		{"BReadsOwn", request{method: "GET", path: recordPath(bRecords[0], schoolB), token: b.token}, 200, ""},
		{"IntruderNotStored", request{method: "GET", path: recordPath(intruder, schoolB), token: b.token}, 404, syncproto.ENOTFOUND},
		{"NoScope", request{method: "GET", path: "/v1/records/" + aOwn.ID.String(), token: a.token}, 400, syncproto.EINVALID},
		{"AListsBConflicts", request{method: "GET", path: "/v1/conflicts?scope=" + schoolB, token: a.token}, 403, syncproto.EFORBIDDEN},
		{"APullsBScope", request{method: "POST", path: "/v1/sync/pull", token: a.token,
			json: syncproto.PullRequest{Protocol: syncproto.ProtocolVersion, Scope: []string{schoolB}}}, 403, syncproto.EFORBIDDEN},
		// The office reads schools' records one by one; a pull gives it the
		// reference data only.
		{"AdminPullsNoSchool", request{method: "POST", path: "/v1/sync/pull", token: stackAdminToken,
			json: syncproto.PullRequest{Protocol: syncproto.ProtocolVersion, Scope: []string{schoolA}}}, 403, syncproto.EFORBIDDEN},
		{"AdminPullsReference", request{method: "POST", path: "/v1/sync/pull", token: stackAdminToken,
			json: syncproto.PullRequest{Protocol: syncproto.ProtocolVersion, Scope: []string{"ref"}}}, 200, ""},
		{"APushesAsB", request{method: "POST", path: "/v1/sync/push", token: a.token,
			body: pushBody(t, b.deviceID, note(t, a.writer(), schoolA, "冒充"))}, 403, syncproto.EFORBIDDEN},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := st.do(t, tt.rq)
			if r.status != tt.status {
				t.Fatalf("%s %s = %d %s, want %d", tt.rq.method, tt.rq.path, r.status, r.body, tt.status)
			}
			if tt.code != "" {
				if e := r.errorOf(t); e.Code != tt.code {
					t.Errorf("code %q, want %q", e.Code, tt.code)
				}
			}
		})
	}

	// The admin writes to any school and to the reference data.
	office := &syncproto.Writer{Replica: uuid.Must(uuid.NewV7()), Author: "admin", Now: time.Now().UTC()}
	adminB := note(t, office, schoolB, "办公室通知 B 校")
	adminRef := note(t, office, "", "全县通知")
	var resp syncproto.PushResponse
	st.mustDo(t, 200, request{method: "POST", path: "/v1/sync/push", token: stackAdminToken, body: pushBody(t, office.Replica, adminB, adminRef)}).decode(t, &resp)
	for i, r := range resp.Results {
		if r.Status != syncproto.StatusApplied {
			t.Errorf("admin's record %d: %+v", i, r)
		}
	}
	// A device may not write reference data.
	if res := st.push(t, a, note(t, a.writer(), "", "设备写的通知")); res[0].Status != syncproto.StatusRejected || res[0].Error.Code != syncproto.EFORBIDDEN {
		t.Errorf("device's reference record: %+v, want rejected forbidden", res[0])
	}

	// Pulls bring each inspector their own schools and the reference
	// data, never the other's school.
	aGot, bGot := st.pullAll(t, a), st.pullAll(t, b)
	for _, c := range []struct {
		who       string
		got       []uuid.UUID
		want, not []*syncproto.Record
	}{
		{"A", aGot, []*syncproto.Record{aOwn, adminRef}, append([]*syncproto.Record{adminB, intruder}, bRecords...)},
		{"B", bGot, append([]*syncproto.Record{adminB, adminRef}, bRecords...), []*syncproto.Record{aOwn, intruder}},
	} {
		for _, r := range c.want {
			if !slices.Contains(c.got, r.ID) {
				t.Errorf("%s's pull lacks %s (%s)", c.who, r.ID, r.Value("text"))
			}
		}
		for _, r := range c.not {
			if slices.Contains(c.got, r.ID) {
				t.Errorf("%s's pull has %s (%s) of another school", c.who, r.ID, r.Value("text"))
			}
		}
	}
}

func gzipped(t *testing.T, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if _, err := zw.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// pushBodyLimit is the body limit of TestPushBodies.
const pushBodyLimit = 64 << 10

func TestPushBodies(t *testing.T) { forEachStack(t, Config{BodyLimit: pushBodyLimit}, testPushBodies) }

func testPushBodies(t *testing.T, st *stack) {
	const limit = pushBodyLimit
	st.syncer.Limits.MaxChanges = 5
	in := st.newInspector(t, "王督学", schoolA)

	var recs []*syncproto.Record
	for i := range 6 {
		recs = append(recs, note(t, in.writer(), schoolA, strings.Repeat("记", i+1)))
	}
	// A body that compresses well and is over the limit once inflated.
	huge := note(t, in.writer(), schoolA, strings.Repeat("很长的记录。", limit/12))
	hugeBody := pushBody(t, in.deviceID, huge)
	if len(hugeBody) <= limit || len(gzipped(t, hugeBody)) >= limit {
		t.Fatalf("the inflating body is %d bytes, %d gzipped: want over and under %d", len(hugeBody), len(gzipped(t, hugeBody)), limit)
	}

	tests := []struct {
		name     string
		body     []byte
		encoding string
		status   int
		code     string
	}{
		{name: "Gzip", body: gzipped(t, pushBody(t, in.deviceID, recs[0], recs[1])), encoding: "gzip", status: 200},
		{name: "GzipUpperCase", body: gzipped(t, pushBody(t, in.deviceID, recs[2])), encoding: "GZIP", status: 200},
		{name: "Identity", body: pushBody(t, in.deviceID, recs[3]), encoding: "identity", status: 200},
		{name: "CorruptGzip", body: pushBody(t, in.deviceID, recs[4]), encoding: "gzip", status: 400, code: syncproto.EINVALID},
		{name: "Brotli", body: pushBody(t, in.deviceID, recs[4]), encoding: "br", status: 415, code: syncproto.EUNSUPPORTED},
		{name: "InflatesOverLimit", body: gzipped(t, hugeBody), encoding: "gzip", status: 413, code: syncproto.ETOOLARGE},
		{name: "TooManyChanges", body: pushBody(t, in.deviceID, recs...), status: 413, code: syncproto.ETOOLARGE},
		{name: "OldProtocol", body: []byte(`{"protocol":0,"device_id":"` + in.deviceID.String() + `","batch_id":"` + uuid.NewString() + `","changes":[]}`), status: 400, code: syncproto.EPROTOCOL},
		{name: "NotJSON", body: []byte("changes=1"), status: 400, code: syncproto.EINVALID},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := st.do(t, request{method: "POST", path: "/v1/sync/push", token: in.token, body: tt.body, encoding: tt.encoding})
			if r.status != tt.status {
				t.Fatalf("status %d %s, want %d", r.status, r.body, tt.status)
			}
			if tt.code != "" {
				if e := r.errorOf(t); e.Code != tt.code {
					t.Errorf("code %q (%s), want %q", e.Code, e.Message, tt.code)
				}
				return
			}
			var resp syncproto.PushResponse
			r.decode(t, &resp)
			for _, res := range resp.Results {
				if res.Status != syncproto.StatusApplied {
					t.Errorf("result %+v, want applied", res)
				}
			}
		})
	}
	for i, r := range recs[2:4] {
		if _, err := st.syncer.Record(t.Context(), schoolA, r.ID); err != nil {
			t.Errorf("record %d pushed in an accepted body is not stored: %v", i, err)
		}
	}

	// A raw body over the limit (413 before any handler runs) is
	// TestBodyLimit's case.
	// The advertised limit is the one enforced.
	var info syncproto.Info
	st.mustDo(t, 200, request{method: "GET", path: "/v1/sync/info", token: in.token}).decode(t, &info)
	if info.Limits.MaxBytes != limit || info.Limits.MaxChanges != 5 {
		t.Errorf("advertised limits %+v, want max_bytes %d and max_changes 5", info.Limits, limit)
	}
}

// TestPushRetriedBatch sends one batch twice, as a phone does after a
// lost answer: the same results, nothing written twice; the same batch id
// with other content is refused.
func TestPushRetriedBatch(t *testing.T) {
	forEachStack(t, Config{}, testPushRetriedBatch)
}

func testPushRetriedBatch(t *testing.T, st *stack) {
	in := st.newInspector(t, "赵督学", schoolA)
	body := pushBody(t, in.deviceID, note(t, in.writer(), schoolA, "第一次"), note(t, in.writer(), schoolA, "第二次"))
	var first, again syncproto.PushResponse
	st.mustDo(t, 200, request{method: "POST", path: "/v1/sync/push", token: in.token, body: body}).decode(t, &first)
	st.mustDo(t, 200, request{method: "POST", path: "/v1/sync/push", token: in.token, body: body}).decode(t, &again)
	if !slices.EqualFunc(first.Results, again.Results, func(a, b syncproto.Result) bool {
		return a.OpID == b.OpID && a.Status == b.Status && a.Rev == b.Rev
	}) {
		t.Errorf("retried batch got %+v, first %+v", again.Results, first.Results)
	}
	other := bytes.Replace(body, []byte("第二次"), []byte("第三次"), 1)
	r := st.mustDo(t, 409, request{method: "POST", path: "/v1/sync/push", token: in.token, body: other})
	if e := r.errorOf(t); e.Code != syncproto.EOPREUSED {
		t.Errorf("batch id reused for other content: %v, want op_reused", e)
	}
}
