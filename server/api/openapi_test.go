package api

import (
	"compress/gzip"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/fieldsync/fieldsync/server"
	"github.com/fieldsync/fieldsync/server/media"
	"github.com/fieldsync/fieldsync/server/reports"
)

// openAPIDoc is the part of the OpenAPI document the tests read.
type openAPIDoc struct {
	OpenAPI string                                `json:"openapi"`
	Paths   map[string]map[string]json.RawMessage `json:"paths"`
}

// openAPIMethods are the members of an OpenAPI path item that are
// operations; the others (parameters, summary, …) are not.
var openAPIMethods = []string{"get", "put", "post", "delete", "options", "head", "patch", "trace"}

// fiberParam matches a fiber path parameter, ":id".
var fiberParam = regexp.MustCompile(`:([A-Za-z0-9_]+)`)

// routeSet returns the routes the server registered, as "METHOD /path"
// with OpenAPI's {param} syntax. HEAD, which fiber registers with every
// GET, and middleware (Use, Group prefixes) are left out.
func routeSet(s *Server) map[string]bool {
	out := map[string]bool{}
	for _, r := range s.app.GetRoutes(true) {
		if r.Method == http.MethodHead {
			continue
		}
		out[r.Method+" "+fiberParam.ReplaceAllString(r.Path, "{$1}")] = true
	}
	return out
}

// serverWithAllDeps returns a server with every route group registered.
// The services are zero values: the test only lists the routes.
func serverWithAllDeps(t *testing.T) *Server {
	t.Helper()
	s, _ := newTestServer(t, Config{AdminToken: "openapi-test"}, Deps{
		Checks:  []server.Check{},
		Devices: &server.Devices{},
		Sync:    &server.Syncer{},
		Forms:   &server.Forms{},
		Media:   &media.Service{},
		Reports: &reports.Service{},
		// The console's JSON routes; its HTML pages (Desk) are not
		// part of the JSON API.
		Accounts: &server.Accounts{},
	})
	return s
}

func TestOpenAPIMatchesRoutes(t *testing.T) {
	var doc openAPIDoc
	if err := json.Unmarshal(openAPIDocument, &doc); err != nil {
		t.Fatalf("openapi.json is not JSON: %v", err)
	}
	if !strings.HasPrefix(doc.OpenAPI, "3.") {
		t.Errorf("openapi = %q, want an OpenAPI 3 document", doc.OpenAPI)
	}
	documented := map[string]bool{}
	for path, item := range doc.Paths {
		for member := range item {
			if slices.Contains(openAPIMethods, member) {
				documented[strings.ToUpper(member)+" "+path] = true
			}
		}
	}
	registered := routeSet(serverWithAllDeps(t))
	if len(registered) < 20 {
		t.Fatalf("only %d routes registered with every dependency set: %v", len(registered), registered)
	}
	for r := range registered {
		if !documented[r] {
			t.Errorf("route %s is registered but not in openapi.json", r)
		}
	}
	for r := range documented {
		if !registered[r] {
			t.Errorf("openapi.json documents %s, which is not registered", r)
		}
	}
}

// openAPIParam is a parameter of an operation, or a reference to one in
// components.parameters.
type openAPIParam struct {
	Ref  string `json:"$ref"`
	Name string `json:"name"`
	In   string `json:"in"`
}

// TestOpenAPIOperations checks what every operation must say for a client
// developer: a unique operation id, its security, the responses of its
// authentication, and every path parameter.
func TestOpenAPIOperations(t *testing.T) {
	var doc struct {
		Paths map[string]map[string]struct {
			OperationID string                     `json:"operationId"`
			Security    *[]map[string][]string     `json:"security"`
			Parameters  []openAPIParam             `json:"parameters"`
			Responses   map[string]json.RawMessage `json:"responses"`
		} `json:"paths"`
		Components struct {
			Parameters map[string]openAPIParam `json:"parameters"`
		} `json:"components"`
	}
	if err := json.Unmarshal(openAPIDocument, &doc); err != nil {
		t.Fatal(err)
	}
	pathParam := regexp.MustCompile(`\{([A-Za-z0-9_]+)\}`)
	ids := map[string]string{}
	for path, item := range doc.Paths {
		for method, op := range item {
			where := strings.ToUpper(method) + " " + path
			if op.OperationID == "" {
				t.Errorf("%s has no operationId", where)
			} else if prev, dup := ids[op.OperationID]; dup {
				t.Errorf("%s and %s share operationId %s", where, prev, op.OperationID)
			}
			ids[op.OperationID] = where
			var inPath, declared []string
			for _, m := range pathParam.FindAllStringSubmatch(path, -1) {
				inPath = append(inPath, m[1])
			}
			for _, p := range op.Parameters {
				if name, ok := strings.CutPrefix(p.Ref, "#/components/parameters/"); ok {
					p = doc.Components.Parameters[name]
				}
				if p.In == "path" {
					declared = append(declared, p.Name)
				}
			}
			slices.Sort(inPath)
			slices.Sort(declared)
			if !slices.Equal(inPath, declared) {
				t.Errorf("%s declares path parameters %v, want %v", where, declared, inPath)
			}
			if op.Security == nil {
				t.Errorf("%s does not say its security ([] for none)", where)
				continue
			}
			if len(*op.Security) > 0 {
				for _, status := range []string{"401", "500"} {
					if _, ok := op.Responses[status]; !ok {
						t.Errorf("%s needs credentials but documents no %s", where, status)
					}
				}
			}
		}
	}
}

func TestOpenAPIServed(t *testing.T) {
	s, _ := newTestServer(t, Config{}, Deps{})
	status, hdr, body := do(t, s, httptest.NewRequest(http.MethodGet, "/v1/openapi.json", nil))
	if status != http.StatusOK {
		t.Fatalf("GET /v1/openapi.json = %d %s", status, body)
	}
	if ct := hdr.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("Content-Type = %q, want application/json", ct)
	}
	if body != string(openAPIDocument) {
		t.Errorf("the body is not openapi.json (%d bytes, want %d)", len(body), len(openAPIDocument))
	}
	if !json.Valid([]byte(body)) {
		t.Error("the body is not JSON")
	}
}

// TestResponsesGzipped checks that a client asking for gzip gets a gzipped
// answer with the same content, and one that does not ask gets it plain.
func TestResponsesGzipped(t *testing.T) {
	s, _ := newTestServer(t, Config{}, Deps{})
	for _, tt := range []struct {
		accept, wantEncoding string
	}{{"gzip", "gzip"}, {"", ""}} {
		req := httptest.NewRequest(http.MethodGet, "/v1/openapi.json", nil)
		if tt.accept != "" {
			req.Header.Set("Accept-Encoding", tt.accept)
		}
		status, hdr, body := do(t, s, req)
		if status != http.StatusOK || hdr.Get("Content-Encoding") != tt.wantEncoding {
			t.Fatalf("Accept-Encoding %q: %d, Content-Encoding %q, want %q", tt.accept, status, hdr.Get("Content-Encoding"), tt.wantEncoding)
		}
		if tt.wantEncoding == "gzip" {
			zr, err := gzip.NewReader(strings.NewReader(body))
			if err != nil {
				t.Fatal(err)
			}
			b, err := io.ReadAll(zr)
			if err != nil {
				t.Fatal(err)
			}
			body = string(b)
		}
		if body != string(openAPIDocument) {
			t.Errorf("Accept-Encoding %q: the content differs from openapi.json", tt.accept)
		}
	}
}
