package api

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/fieldsync/fieldsync/server"
	"github.com/fieldsync/fieldsync/server/metrics"
)

// TestMetricsCountRequestsByRoute checks that /metrics counts requests by
// the route pattern that matched (never the raw path), method and the
// status sent, including statuses made from errors, and that a nil
// Metrics serves no /metrics.
func TestMetricsCountRequestsByRoute(t *testing.T) {
	m := metrics.New("test")
	s, _ := newTestServer(t, Config{}, Deps{
		Metrics: m,
		Checks:  []server.Check{{Name: "mongo", Ping: func(context.Context) error { return errors.New("down") }}},
	})
	requests := []struct {
		method, path string
		times        int
	}{
		{http.MethodGet, "/healthz", 3},
		{http.MethodGet, "/readyz", 2},
		{http.MethodGet, "/no/such/route-1", 1},
		{http.MethodGet, "/no/such/route-2", 1},
	}
	for _, r := range requests {
		for range r.times {
			do(t, s, httptest.NewRequest(r.method, r.path, nil))
		}
	}
	_, _, body := do(t, s, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	for _, want := range []string{
		`fieldsync_http_requests_total{code="200",method="GET",route="/healthz"} 3`,
		`fieldsync_http_requests_total{code="503",method="GET",route="/readyz"} 2`,
		`fieldsync_http_requests_total{code="404",method="GET",route="unmatched"} 2`,
		`fieldsync_http_request_duration_seconds_count{method="GET",route="/healthz"} 3`,
		`fieldsync_mongo_pool_connections{state="in_use"} 0`,
		`fieldsync_build_info{version="test"} 1`,
	} {
		if !strings.Contains(body, want+"\n") {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	if strings.Contains(body, "route-1") {
		t.Error("/metrics names a raw path")
	}

	plain, _ := newTestServer(t, Config{}, Deps{})
	if code, _, _ := do(t, plain, httptest.NewRequest(http.MethodGet, "/metrics", nil)); code != http.StatusNotFound {
		t.Errorf("without Metrics, /metrics answered %d, want 404", code)
	}
}

// TestMetricsNilIsSafe checks that every method of a nil *Metrics is a
// no-op, as the packages that observe rely on.
func TestMetricsNilIsSafe(t *testing.T) {
	var m *metrics.Metrics
	m.RequestStarted()()
	m.ObserveRequest("/x", "GET", 200, 0)
	m.SyncOutcome("applied", 1)
	m.Pulled(3)
	m.UploadBytes("chunk", 10)
	m.ObserveStore(metrics.StoreMongo, "find", 0, true)
	m.Pool(metrics.PoolCheckedOut, 0, "")
	if rt := m.RoundTripper(metrics.StoreMinio, nil); rt != http.DefaultTransport {
		t.Errorf("nil Metrics wrapped the transport: %T", rt)
	}
}
