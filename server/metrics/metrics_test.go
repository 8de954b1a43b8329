package metrics

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// scrape returns the text exposition of m.
func scrape(t *testing.T, m *Metrics) string {
	t.Helper()
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("/metrics: %d", rec.Code)
	}
	return rec.Body.String()
}

// TestPoolGauges replays sequences of pool events and checks the gauges
// and counters they leave.
func TestPoolGauges(t *testing.T) {
	tests := []struct {
		name   string
		events []string
		want   []string
	}{
		{"opened and lent", []string{PoolConnOpened, PoolConnOpened, PoolCheckedOut},
			[]string{`fieldsync_mongo_pool_connections{state="open"} 2`, `fieldsync_mongo_pool_connections{state="in_use"} 1`}},
		{"given back and closed", []string{PoolConnOpened, PoolCheckedOut, PoolCheckedIn, PoolConnClosed},
			[]string{`fieldsync_mongo_pool_connections{state="open"} 0`, `fieldsync_mongo_pool_connections{state="in_use"} 0`,
				`fieldsync_mongo_pool_checkout_seconds_count 1`}},
		{"failures and clears", []string{PoolCheckoutFailed, PoolCheckoutFailed, PoolCleared},
			[]string{`fieldsync_mongo_pool_checkout_failures_total{reason="timeout"} 2`, `fieldsync_mongo_pool_cleared_total 1`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := New("test")
			for _, e := range tt.events {
				m.Pool(e, time.Millisecond, "timeout")
			}
			body := scrape(t, m)
			for _, w := range tt.want {
				if !strings.Contains(body, w+"\n") {
					t.Errorf("lacks %q", w)
				}
			}
		})
	}
}

// TestRoundTripperCountsFailures checks that the store transport times
// every request by method and counts transport errors and 5xx answers,
// not 4xx ones, as failures.
func TestRoundTripperCountsFailures(t *testing.T) {
	status := 200
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(status) }))
	defer srv.Close()
	m := New("test")
	c := &http.Client{Transport: m.RoundTripper(StoreMinio, nil)}
	for _, s := range []int{200, 404, 503, 507} {
		status = s
		resp, err := c.Get(srv.URL)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	if _, err := c.Get("http://127.0.0.1:1/"); err == nil { // nothing listens on port 1
		t.Fatal("a request to port 1 succeeded")
	}
	body := scrape(t, m)
	for _, w := range []string{
		`fieldsync_store_duration_seconds_count{op="GET",store="minio"} 5`,
		`fieldsync_store_errors_total{op="GET",store="minio"} 3`,
	} {
		if !strings.Contains(body, w+"\n") {
			t.Errorf("lacks %q in\n%s", w, body)
		}
	}
}
