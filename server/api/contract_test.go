package api

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"
	"github.com/google/uuid"

	"github.com/fieldsync/fieldsync/server"
	"github.com/fieldsync/fieldsync/syncproto"
)

// The contract: every request a handler test sends through do is checked
// against openapi.json, and so is every answer. An answer must match the
// operation's documented status, content type and schema, whatever the
// request was; a request the server accepted (2xx) must match the
// documented parameters and body — a server that accepts what the
// document forbids means the document and the code have drifted. A
// request the server refused may break the document: that is what the
// refusal tests send.

// contractDoc is the parsed document and its router, loaded once.
type contractDoc struct {
	doc    *openapi3.T
	router routers.Router
}

var contract = sync.OnceValues(func() (*contractDoc, error) {
	// Record and device ids are UUIDv7, which the default RFC 4122
	// pattern does not know.
	openapi3.DefineStringFormatValidator("uuid", openapi3.NewRegexpFormatValidator(openapi3.FormatOfStringForUUIDOfRFC9562))
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData(openAPIDocument)
	if err != nil {
		return nil, fmt.Errorf("openapi.json: %w", err)
	}
	if err := doc.Validate(loader.Context); err != nil {
		return nil, fmt.Errorf("openapi.json is not a valid OpenAPI document: %w", err)
	}
	for _, ct := range []string{"image/jpeg", "image/png", "image/webp", "image/heic",
		"application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", "image/svg+xml"} {
		openapi3filter.RegisterBodyDecoder(ct, openapi3filter.FileBodyDecoder)
	}
	router, err := gorillamux.NewRouter(doc)
	if err != nil {
		return nil, err
	}
	return &contractDoc{doc: doc, router: router}, nil
})

// contractOptions: authentication is the handlers' to check (tests send
// wrong tokens on purpose); an undocumented status is a drift.
var contractOptions = &openapi3filter.Options{
	AuthenticationFunc:    openapi3filter.NoopAuthenticationFunc,
	IncludeResponseStatus: true,
	MultiError:            true,
}

// contractStats counts what the contract checked, per operation; printed
// by TestMain with -v.
var contractStats = struct {
	sync.Mutex
	exchanges int
	ops       map[string]int
	tests     map[string]bool
}{ops: map[string]int{}, tests: map[string]bool{}}

// inAPI says whether a path belongs to the API the document describes;
// others are the web app's static files, Prometheus' metrics and the
// routes tests register to reach the middleware.
func inAPI(path string) bool {
	return strings.HasPrefix(path, "/v1/") || path == "/healthz" || path == "/readyz"
}

// exchange is one request and its answer, bodies already read and
// decompressed.
type exchange struct {
	method, path, rawQuery string
	reqHeader              http.Header
	reqBody                []byte
	status                 int
	header                 http.Header
	body                   []byte
}

// checkExchange returns how ex breaks the document, or nil.
func checkExchange(ex exchange) error {
	c, err := contract()
	if err != nil {
		return err
	}
	target := ex.path
	if ex.rawQuery != "" {
		target += "?" + ex.rawQuery
	}
	req, err := http.NewRequest(ex.method, target, bytes.NewReader(ex.reqBody))
	if err != nil {
		return err
	}
	req.Header = ex.reqHeader.Clone()
	req.Header.Del("Content-Encoding")
	route, params, err := c.router.FindRoute(req)
	if err != nil {
		// No operation: every error the server sends, from any route,
		// still has the documented shape.
		if ex.status >= 400 {
			return checkErrorBody(c.doc, ex)
		}
		if !inAPI(ex.path) {
			return nil
		}
		return fmt.Errorf("%s %s answered %d but the document has no such operation: %w", ex.method, ex.path, ex.status, err)
	}
	ctx := context.Background()
	in := &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route, Options: contractOptions}
	if ex.status < 300 {
		if err := openapi3filter.ValidateRequest(ctx, in); err != nil {
			return fmt.Errorf("%s %s was accepted (%d) but breaks the document: %w", ex.method, ex.path, ex.status, err)
		}
	}
	out := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: in,
		Status:                 ex.status,
		Header:                 ex.header,
		Body:                   io.NopCloser(bytes.NewReader(ex.body)),
		Options:                contractOptions,
	}
	if err := openapi3filter.ValidateResponse(ctx, out); err != nil {
		return fmt.Errorf("%s %s answered %d, which breaks the document: %w\nbody: %.2000s", ex.method, ex.path, ex.status, err, ex.body)
	}
	contractStats.Lock()
	contractStats.exchanges++
	contractStats.ops[strings.ToUpper(route.Method)+" "+route.Path]++
	contractStats.Unlock()
	return nil
}

// checkErrorBody checks the answer of a route the document does not
// describe against the ErrorResponse schema.
func checkErrorBody(doc *openapi3.T, ex exchange) error {
	if !strings.HasPrefix(ex.header.Get("Content-Type"), "application/json") {
		return fmt.Errorf("%s %s answered %d with Content-Type %q, want an ErrorResponse in application/json", ex.method, ex.path, ex.status, ex.header.Get("Content-Type"))
	}
	var v any
	if err := json.Unmarshal(ex.body, &v); err != nil {
		return fmt.Errorf("%s %s answered %d with a body that is not JSON: %w", ex.method, ex.path, ex.status, err)
	}
	if err := doc.Components.Schemas["ErrorResponse"].Value.VisitJSON(v, openapi3.MultiErrors()); err != nil {
		return fmt.Errorf("%s %s answered %d, which is not an ErrorResponse: %w", ex.method, ex.path, ex.status, err)
	}
	return nil
}

// gunzipIf returns body decompressed when encoding is gzip.
func gunzipIf(encoding string, body []byte) ([]byte, error) {
	if !strings.EqualFold(encoding, "gzip") {
		return body, nil
	}
	zr, err := gzip.NewReader(bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	return io.ReadAll(zr)
}

// serveChecked runs req through s, checks the exchange against the
// document, and returns the answer with its body as sent (compressed if it
// was).
func serveChecked(t *testing.T, s *Server, req *http.Request) (*http.Response, []byte) {
	t.Helper()
	var reqBody []byte
	if req.Body != nil {
		b, err := io.ReadAll(req.Body)
		if err != nil {
			t.Fatal(err)
		}
		reqBody = b
		req.Body = io.NopCloser(bytes.NewReader(b))
	}
	reqHeader := req.Header.Clone()
	resp, err := s.Test(req, -1)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL.Path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	ex := exchange{method: req.Method, path: req.URL.Path, rawQuery: req.URL.RawQuery, reqHeader: reqHeader,
		status: resp.StatusCode, header: resp.Header}
	// A body the server could not decompress is refused; the document
	// speaks of what is inside the encoding.
	if ex.reqBody, err = gunzipIf(reqHeader.Get("Content-Encoding"), reqBody); err != nil {
		ex.reqBody = reqBody
	}
	if ex.body, err = gunzipIf(resp.Header.Get("Content-Encoding"), body); err != nil {
		t.Fatalf("%s %s: the answer says gzip but is not: %v", req.Method, req.URL.Path, err)
	}
	if err := checkExchange(ex); err != nil {
		t.Errorf("openapi.json: %v", err)
	}
	contractStats.Lock()
	contractStats.tests[strings.SplitN(t.Name(), "/", 2)[0]] = true
	contractStats.Unlock()
	return resp, body
}

func TestMain(m *testing.M) {
	code := m.Run()
	if testing.Verbose() {
		contractStats.Lock()
		ops := make([]string, 0, len(contractStats.ops))
		for op, n := range contractStats.ops {
			ops = append(ops, fmt.Sprintf("%s ×%d", op, n))
		}
		slices.Sort(ops)
		fmt.Printf("openapi contract: %d exchanges checked in %d tests, %d operations:\n  %s\n",
			contractStats.exchanges, len(contractStats.tests), len(contractStats.ops), strings.Join(ops, "\n  "))
		contractStats.Unlock()
	}
	os.Exit(code)
}

// TestContractCatchesDrift feeds the validator answers that break the
// document in one place each, and one that keeps it, so a validator that
// let everything through would fail here.
func TestContractCatchesDrift(t *testing.T) {
	jsonHeader := http.Header{"Content-Type": {"application/json"}}
	infoJSON, err := syncproto.Marshal(syncproto.Info{Protocol: syncproto.ProtocolVersion, Epoch: uuid.Must(uuid.NewV7()),
		Limits: server.DefaultSyncLimits(), ServerTime: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)})
	if err != nil {
		t.Fatal(err)
	}
	info := string(infoJSON)
	compact := `{"superseded":3,"tombstones":1,"horizon":40}`
	tests := []struct {
		name    string
		ex      exchange
		wantErr string // "" for an exchange that keeps the document
	}{
		{"HealthOK", exchange{method: "GET", path: "/healthz", status: 200, header: jsonHeader, body: []byte(`{"status":"ok"}`)}, ""},
		{"HealthStatusNotString", exchange{method: "GET", path: "/healthz", status: 200, header: jsonHeader, body: []byte(`{"status":1}`)}, "status"},
		{"UndocumentedStatus", exchange{method: "GET", path: "/healthz", status: 418, header: jsonHeader, body: []byte(`{}`)}, "status is not supported"},
		{"ErrorWithoutCode", exchange{method: "GET", path: "/v1/sync/info", status: 401, header: jsonHeader, body: []byte(`{"error":{"message":"no"}}`)}, "code"},
		{"WrongContentType", exchange{method: "GET", path: "/healthz", status: 200, header: http.Header{"Content-Type": {"text/plain"}}, body: []byte(`ok`)}, "Content-Type"},
		{"UndocumentedRouteError", exchange{method: "GET", path: "/test", status: 500, header: jsonHeader, body: []byte(`{"message":"oops"}`)}, "ErrorResponse"},
		{"UnknownRoute", exchange{method: "GET", path: "/v1/nope", status: 200, header: jsonHeader, body: []byte(`{}`)}, "no such operation"},
		{"AcceptedBadRequest", exchange{method: "POST", path: "/v1/sync/pull", reqHeader: jsonHeader, reqBody: []byte(`{"cursor":7}`),
			status: 200, header: jsonHeader, body: []byte(`{"records":[],"cursor":"x","more":false}`)}, "accepted"},
		{"CompactCapitalised", exchange{method: "POST", path: "/v1/admin/compact/0192b000-0000-7000-8000-000000000103", reqHeader: jsonHeader, reqBody: []byte(`{}`),
			status: 200, header: jsonHeader, body: []byte(`{"Superseded":3,"Tombstones":1,"Horizon":40}`)}, "superseded"},
		{"CompactLowerCase", exchange{method: "POST", path: "/v1/admin/compact/0192b000-0000-7000-8000-000000000103", reqHeader: jsonHeader, reqBody: []byte(`{}`),
			status: 200, header: jsonHeader, body: []byte(compact)}, ""},
		{"InfoOK", exchange{method: "GET", path: "/v1/sync/info", status: 200, header: jsonHeader, body: []byte(info)}, ""},
		{"InfoEpochNotUUID", exchange{method: "GET", path: "/v1/sync/info", status: 200, header: jsonHeader,
			body: []byte(regexp.MustCompile(`"epoch":"[^"]*"`).ReplaceAllString(info, `"epoch":"epoch-1"`))}, "epoch"},
		{"InfoLimitsMissing", exchange{method: "GET", path: "/v1/sync/info", status: 200, header: jsonHeader,
			body: []byte(info[:strings.Index(info, `,"limits"`)] + "}")}, "limits"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.ex.reqHeader == nil {
				tt.ex.reqHeader = http.Header{}
			}
			err := checkExchange(tt.ex)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("a conforming exchange was refused: %v", err)
			case tt.wantErr != "" && err == nil:
				t.Fatalf("a drift (%s) passed the contract", tt.name)
			case tt.wantErr != "" && !strings.Contains(err.Error(), tt.wantErr):
				t.Fatalf("the error does not name %q: %v", tt.wantErr, err)
			}
			var re *openapi3filter.ResponseError
			var rq *openapi3filter.RequestError
			var rt *routers.RouteError
			var me openapi3.MultiError
			if err != nil && !errors.As(err, &re) && !errors.As(err, &rq) && !errors.As(err, &rt) && !errors.As(err, &me) {
				t.Errorf("the error is not the validator's: %v", err)
			}
		})
	}
}
