package client_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers/gorillamux"
	"github.com/google/uuid"

	"github.com/fieldsync/fieldsync/client"
	"github.com/fieldsync/fieldsync/syncproto"
)

// documentServer is a stand-in for fieldsyncd: it checks every request
// against server/api/openapi.json and answers with the canned body of the
// operation (by operationId), so the client's requests are held to the
// same document as the server's handlers.
func documentServer(t *testing.T, answers map[string]string) (*httptest.Server, *[]string) {
	t.Helper()
	openapi3.DefineStringFormatValidator("uuid", openapi3.NewRegexpFormatValidator(openapi3.FormatOfStringForUUIDOfRFC9562))
	b, err := os.ReadFile("../server/api/openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	doc, err := openapi3.NewLoader().LoadFromData(b)
	if err != nil {
		t.Fatal(err)
	}
	router, err := gorillamux.NewRouter(doc)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var seen []string
	opts := &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(body))
		route, params, err := router.FindRoute(r)
		if err != nil {
			t.Errorf("%s %s: not in the document: %v", r.Method, r.URL.Path, err)
			http.Error(w, "no route", 404)
			return
		}
		if err := openapi3filter.ValidateRequest(r.Context(), &openapi3filter.RequestValidationInput{Request: r, PathParams: params, Route: route, Options: opts}); err != nil {
			t.Errorf("%s %s breaks the document: %v", r.Method, r.URL.Path, err)
		}
		if r.Header.Get("Authorization") != "Bearer tok" && route.Operation.OperationID != "enrollDevice" {
			t.Errorf("%s %s: Authorization %q", r.Method, r.URL.Path, r.Header.Get("Authorization"))
		}
		mu.Lock()
		seen = append(seen, route.Operation.OperationID)
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(answers[route.Operation.OperationID]))
	}))
	t.Cleanup(srv.Close)
	return srv, &seen
}

// TestRequestsKeepTheDocument sends every request the client can make to
// a server that checks them against openapi.json.
func TestRequestsKeepTheDocument(t *testing.T) {
	upload := `{"sha256":"` + strings.Repeat("ab", 32) + `","state":"partial","received":4,"chunk_bytes":4}`
	srv, seen := documentServer(t, map[string]string{
		"blobStatus": upload, "putBlobChunk": upload, "finishBlob": upload, "putBlob": upload,
		"enrollDevice":      `{"token":"fsd_x","device_id":"` + uuid.NewString() + `","inspector_id":"i","user_id":"u"}`,
		"newEnrollmentCode": `{"code":"7KQ2-M9XD-4TWA","inspector_id":"i","expires_at":"2026-01-01T00:00:00Z"}`,
		"putInspector":      `{"id":"i","user_id":"u","name":"n","active":true}`,
		"putAssignment":     `{"id":"a","inspector_id":"i","school_id":"s","start_date":"2026-01-01"}`,
		"syncInfo":          `{"protocol":1}`,
		"syncPush":          `{"results":[]}`,
		"syncPull":          `{"records":[],"cursor":"c","more":false}`,
		"blobURL":           `{"url":"http://x/y","expires_at":"2026-01-01T00:00:00Z"}`,
		"listConflicts":     `{"conflicts":[]}`,
		"resolveConflict":   `{}`,
		"revokeDevice":      `{}`,
		"publishForm":       `{}`,
		"publishXLSForm":    `{}`,
		"previewXLSForm":    `{}`,
		"retireForm":        `{}`,
		"exportXLSForm":     ``,
	})
	c := client.New(srv.URL, "tok")
	ctx := t.Context()
	sha := strings.Repeat("ab", 32)
	id, school := uuid.NewString(), uuid.NewString()
	rec := &syncproto.Record{ID: uuid.Must(uuid.NewV7()), Kind: "visit_note", SchoolID: school, CreatedAt: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), CreatedBy: "u"}
	calls := []struct {
		op   string
		call func() error
	}{
		{"syncInfo", func() error { _, err := c.Info(ctx); return err }},
		{"syncPush", func() error {
			_, err := c.Push(ctx, &syncproto.PushRequest{Protocol: syncproto.ProtocolVersion, DeviceID: uuid.Must(uuid.NewV7()), BatchID: uuid.Must(uuid.NewV7()),
				Changes: []syncproto.Change{{OpID: uuid.Must(uuid.NewV7()), Record: rec}}})
			return err
		}},
		{"syncPull", func() error {
			_, err := c.Pull(ctx, &syncproto.PullRequest{Protocol: syncproto.ProtocolVersion, Limit: 10})
			return err
		}},
		{"blobStatus", func() error { _, err := c.BlobStatus(ctx, sha); return err }},
		{"putBlobChunk", func() error { _, err := c.PutChunk(ctx, sha, 0, []byte("abcd")); return err }},
		{"finishBlob", func() error { _, err := c.FinishBlob(ctx, sha, 4, "image/jpeg"); return err }},
		{"putBlob", func() error { _, err := c.PutBlob(ctx, sha, "image/jpeg", []byte("abcd")); return err }},
		{"enrollDevice", func() error {
			_, err := c.Enroll(ctx, client.EnrollRequest{Code: "7KQ2-M9XD-4TWA", DeviceID: uuid.Must(uuid.NewV7()), DeviceName: "手机"})
			return err
		}},
		{"putInspector", func() error {
			_, err := c.PutInspector(ctx, id, client.Inspector{UserID: uuid.NewString(), Name: "陈立群", Active: true})
			return err
		}},
		{"putAssignment", func() error {
			_, err := c.PutAssignment(ctx, uuid.NewString(), client.Assignment{InspectorID: id, SchoolID: school, Start: "2026-01-01"})
			return err
		}},
		{"newEnrollmentCode", func() error { _, err := c.EnrollmentCode(ctx, id); return err }},
		{"revokeDevice", func() error { _, err := c.Revoke(ctx, uuid.NewString()); return err }},
		{"listConflicts", func() error { _, err := c.Conflicts(ctx, "open"); return err }},
		{"resolveConflict", func() error { _, err := c.Resolve(ctx, id+"/title", json.RawMessage(`"新标题"`)); return err }},
		{"publishXLSForm", func() error {
			_, err := c.PublishXLSForm(ctx, []client.File{{Name: "f.xlsx", Data: []byte("PK")}, {Name: "t.csv", Data: []byte("a,b\n")}}, false)
			return err
		}},
		{"previewXLSForm", func() error {
			_, err := c.PublishXLSForm(ctx, []client.File{{Name: "f.xlsx", Data: []byte("PK")}}, true)
			return err
		}},
		{"retireForm", func() error { _, err := c.RetireForm(ctx, "canteen", "2"); return err }},
		{"blobURL", func() error { _, err := c.BlobURL(ctx, sha); return err }},
	}
	for _, tt := range calls {
		if err := tt.call(); err != nil {
			t.Errorf("%s: %v", tt.op, err)
		}
	}
	if len(*seen) != len(calls) {
		t.Fatalf("the server saw %d requests, want %d: %v", len(*seen), len(calls), *seen)
	}
	for i, tt := range calls {
		if (*seen)[i] != tt.op {
			t.Errorf("request %d reached %s, want %s", i, (*seen)[i], tt.op)
		}
	}
}

// TestErrors checks how answers become errors: the server's code when the
// body has one, a code from the status otherwise, a refused workbook as a
// *Refusal that still carries its code.
func TestErrors(t *testing.T) {
	tests := []struct {
		name     string
		status   int
		body     string
		code     string
		problems int
	}{
		{"ServerCode", 409, `{"error":{"code":"op_reused","message":"Op reused."}}`, syncproto.EOPREUSED, 0},
		{"FieldErrors", 400, `{"error":{"code":"invalid","message":"Check.","fields":{"title":"Required."}}}`, syncproto.EINVALID, 0},
		{"ProxyBadGateway", 502, `<html>bad gateway</html>`, syncproto.EUNAVAILABLE, 0},
		{"EmptyUnauthorized", 401, ``, syncproto.EUNAUTHORIZED, 0},
		{"Gone", 410, ``, syncproto.ESTALE, 0},
		{"UnknownServerError", 507, ``, syncproto.EUNAVAILABLE, 0},
		{"UnknownClientError", 418, ``, syncproto.EINTERNAL, 0},
		{"ErrorWithoutCode", 400, `{"error":{"message":"?"}}`, syncproto.EINVALID, 0},
		{"Refusal", 400, `{"error":{"code":"invalid","message":"1 problem"},"problems":[{"sheet":"survey","row":3,"column":"type","message":{"zh":"不支持","en":"unsupported"}}],"warnings":[]}`, syncproto.EINVALID, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(tt.status)
				w.Write([]byte(tt.body))
			}))
			defer srv.Close()
			_, err := client.New(srv.URL, "").Conflicts(context.Background(), "")
			if got := syncproto.ErrorCode(err); got != tt.code {
				t.Fatalf("code %q (%v), want %q", got, err, tt.code)
			}
			var re *client.Refusal
			if errors.As(err, &re) != (tt.problems > 0) {
				t.Fatalf("refusal %v, want one: %v", re, tt.problems > 0)
			}
			if re != nil && (len(re.Problems) != tt.problems || !strings.Contains(err.Error(), "survey 第 3 行 row 3, type: 不支持 / unsupported")) {
				t.Errorf("refusal %q", err)
			}
		})
	}
}

// TestNoAnswer: a request that gets no answer is not a protocol error.
func TestNoAnswer(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close()
	_, err := client.New(url, "").Info(context.Background())
	var pe *syncproto.Error
	if err == nil || errors.As(err, &pe) {
		t.Fatalf("err = %v, want a transport error", err)
	}
}
