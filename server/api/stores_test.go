package api

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/fieldsync/fieldsync/internal/testenv"
	"github.com/fieldsync/fieldsync/server"
	"github.com/fieldsync/fieldsync/server/reports"
	"github.com/fieldsync/fieldsync/syncproto"
)

// The tests in conflicts_test.go, forms_test.go and sync_test.go run the
// HTTP layer on the real services, on the in-memory stores and on the real
// ones (FerretDB), wired as server/cmd/fieldsyncd wires them, minus the
// photo store.

const stackAdminToken = "stack-test-admin-token"

// stack is an API server on real stores.
type stack struct {
	srv     *Server
	devices *server.Devices
	syncer  *server.Syncer
	forms   *server.Forms
	reports *reports.Service
}

// forEachStack runs test as a parallel subtest per store backend
// (testenv.ForEachStore), each on a stack of its own.
func forEachStack(t *testing.T, cfg Config, test func(t *testing.T, st *stack)) {
	testenv.ForEachStore(t, func(t *testing.T, stores testenv.Stores) { test(t, newStack(t, cfg, stores)) })
}

// newStack builds the services and the server on fresh stores.
// cfg.AdminToken is set.
func newStack(t *testing.T, cfg Config, stores testenv.Stores) *stack {
	t.Helper()
	devices := server.NewDevices(stores.Devices)
	syncer := server.NewSyncer(stores.Sync, uuid.Must(uuid.NewV7()))
	syncer.Access.Assigned = devices.Assigned
	syncer.Logger = testenv.Logger(t)
	if cfg.BodyLimit > 0 {
		syncer.Limits.MaxBytes = int64(cfg.BodyLimit)
	}
	validator := server.NewFormValidator(syncer, devices.Today)
	validator.Logger = testenv.Logger(t)
	syncer.Validator = validator
	forms := server.NewForms(syncer, validator, syncer.Replica)
	cfg.AdminToken = stackAdminToken
	rep := reports.NewService(stores.Sync.(reports.Store), stores.Devices, syncer.Access, syncer, syncer.Replica)
	srv, _ := newTestServer(t, cfg, Deps{Devices: devices, Sync: syncer, Forms: forms, Reports: rep})
	return &stack{srv: srv, devices: devices, syncer: syncer, forms: forms, reports: rep}
}

// request is one HTTP request to a stack's server.
type request struct {
	method, path string
	token        string // bearer token, "" for none
	body         []byte
	json         any    // encoded as the body when set
	contentType  string // default application/json when there is a body
	encoding     string // Content-Encoding
}

// response is what came back.
type response struct {
	status int
	header http.Header
	body   []byte
}

// decode decodes the body into v, failing the test when it is not JSON.
func (r response) decode(t *testing.T, v any) {
	t.Helper()
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("answer %d is not the JSON expected: %v\n%s", r.status, err, r.body)
	}
}

// errorOf returns the error of an error answer.
func (r response) errorOf(t *testing.T) *syncproto.Error {
	t.Helper()
	var e syncproto.ErrorResponse
	r.decode(t, &e)
	if e.Error == nil {
		t.Fatalf("answer %d has no error: %s", r.status, r.body)
	}
	return e.Error
}

func (st *stack) do(t *testing.T, rq request) response {
	t.Helper()
	body := rq.body
	if rq.json != nil {
		var err error
		if body, err = json.Marshal(rq.json); err != nil {
			t.Fatal(err)
		}
	}
	req := httptest.NewRequest(rq.method, rq.path, bytes.NewReader(body))
	if rq.token != "" {
		req.Header.Set("Authorization", "Bearer "+rq.token)
	}
	switch {
	case rq.contentType != "":
		req.Header.Set("Content-Type", rq.contentType)
	case body != nil:
		req.Header.Set("Content-Type", "application/json")
	}
	if rq.encoding != "" {
		req.Header.Set("Content-Encoding", rq.encoding)
	}
	status, header, b := do(t, st.srv, req)
	return response{status: status, header: header, body: []byte(b)}
}

// mustDo is do that fails the test unless the status is want.
func (st *stack) mustDo(t *testing.T, want int, rq request) response {
	t.Helper()
	r := st.do(t, rq)
	if r.status != want {
		t.Fatalf("%s %s = %d %s, want %d", rq.method, rq.path, r.status, r.body, want)
	}
	return r
}

// inspectorAt is an inspector with one enrolled phone, assigned to
// schools from 2024-09-01 on.
type inspectorAt struct {
	id, userID string
	schools    []string
	deviceID   uuid.UUID
	token      string
}

// newInspector creates an inspector through the admin API, assigns the
// schools and enrolls a phone with a one-time code, as the office and the
// inspector do.
func (st *stack) newInspector(t *testing.T, name string, schools ...string) *inspectorAt {
	t.Helper()
	in := &inspectorAt{id: uuid.NewString(), userID: uuid.NewString(), schools: schools, deviceID: uuid.Must(uuid.NewV7())}
	st.mustDo(t, 200, request{method: "PUT", path: "/v1/admin/inspectors/" + in.id, token: stackAdminToken,
		json: server.Inspector{UserID: in.userID, Name: name, Active: true}})
	for _, school := range schools {
		st.mustDo(t, 200, request{method: "PUT", path: "/v1/admin/assignments/" + uuid.NewString(), token: stackAdminToken,
			json: server.Assignment{InspectorID: in.id, SchoolID: school, Start: "2024-09-01"}})
	}
	var code struct{ Code string }
	st.mustDo(t, 201, request{method: "POST", path: "/v1/admin/inspectors/" + in.id + "/enrollment-codes", token: stackAdminToken}).decode(t, &code)
	var enrolled struct {
		Token string `json:"token"`
	}
	st.mustDo(t, 201, request{method: "POST", path: "/v1/devices/enroll",
		json: map[string]string{"code": code.Code, "device_id": in.deviceID.String(), "device_name": name + "的手机"}}).decode(t, &enrolled)
	in.token = enrolled.Token
	return in
}

// writer returns a writer of the inspector's phone.
func (in *inspectorAt) writer() *syncproto.Writer {
	return &syncproto.Writer{Replica: in.deviceID, Author: in.userID, Now: time.Now().UTC()}
}

// note returns a new record without a form in school: what any phone
// may write.
func note(t *testing.T, w *syncproto.Writer, school, text string) *syncproto.Record {
	t.Helper()
	r := &syncproto.Record{ID: uuid.Must(uuid.NewV7()), Kind: "visit_note", SchoolID: school, CreatedAt: w.Now.Truncate(time.Second), CreatedBy: w.Author}
	raw, err := syncproto.Marshal(text)
	if err != nil {
		t.Fatal(err)
	}
	r, _ = syncproto.Set(r, "text", raw, w)
	return r
}

// pushBody returns the body of a push of the records by device, one
// change each.
func pushBody(t *testing.T, device uuid.UUID, recs ...*syncproto.Record) []byte {
	t.Helper()
	req := syncproto.PushRequest{Protocol: syncproto.ProtocolVersion, DeviceID: device, BatchID: uuid.Must(uuid.NewV7())}
	for _, r := range recs {
		req.Changes = append(req.Changes, syncproto.Change{OpID: uuid.Must(uuid.NewV7()), Record: r})
	}
	b, err := syncproto.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
