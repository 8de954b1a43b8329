// Package metrics holds fieldsyncd's Prometheus metrics: HTTP requests by
// route, sync outcomes, photo bytes received, the latency of every call to
// MongoDB and MinIO, and the MongoDB connection pool. /metrics serves them
// in the Prometheus text format (server/api), and deploy/prometheus has
// alert rules written against these names.
//
// The packages that observe call its methods: server/api (requests, sync
// outcomes, upload bytes), server/mongo (the driver's command and pool
// monitors) and server/minio (an http.RoundTripper around minio-go's
// transport). Every method is safe on a nil *Metrics, which records
// nothing, so tests and tools need no registry.
//
// It imports only the Prometheus client and the standard library: no
// Fiber, no storage driver (each observer translates its driver's events
// into the calls here).
package metrics

import (
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Namespace starts every metric name.
const Namespace = "fieldsync"

// Stores, the "store" label of the store metrics.
const (
	StoreMongo = "mongo"
	StoreMinio = "minio"
)

// Pool events, translated from the MongoDB driver's pool monitor by
// server/mongo.
const (
	PoolConnOpened     = "opened"      // a connection was created
	PoolConnClosed     = "closed"      // a connection was closed
	PoolCheckedOut     = "checked_out" // an operation took a connection
	PoolCheckedIn      = "checked_in"  // and gave it back
	PoolCheckoutFailed = "checkout_failed"
	PoolCleared        = "cleared" // the pool was emptied (the server went away)
)

// Metrics is the set of fieldsyncd's metrics on their own registry. It is
// safe for concurrent use; a nil *Metrics records nothing.
type Metrics struct {
	reg *prometheus.Registry

	httpRequests *prometheus.CounterVec
	httpDuration *prometheus.HistogramVec
	httpInFlight prometheus.Gauge
	syncChanges  *prometheus.CounterVec
	syncPulled   prometheus.Counter
	uploadBytes  *prometheus.CounterVec

	storeDuration *prometheus.HistogramVec
	storeErrors   *prometheus.CounterVec

	poolConns    *prometheus.GaugeVec
	poolWait     prometheus.Histogram
	poolFailures *prometheus.CounterVec
	poolCleared  prometheus.Counter
}

// New returns the metrics on a new registry, with the Go runtime and
// process collectors and fieldsync_build_info{version}.
func New(version string) *Metrics {
	m := &Metrics{reg: prometheus.NewRegistry()}
	f := func(c prometheus.Collector) { m.reg.MustRegister(c) }
	f(collectors.NewGoCollector())
	f(collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	build := prometheus.NewGauge(prometheus.GaugeOpts{Namespace: Namespace, Name: "build_info",
		Help: "Always 1; the version label says which build runs.", ConstLabels: prometheus.Labels{"version": version}})
	build.Set(1)
	f(build)

	m.httpRequests = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: Namespace, Name: "http_requests_total",
		Help: "HTTP requests answered, by route pattern, method and status code."}, []string{"route", "method", "code"})
	m.httpDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: Namespace, Name: "http_request_duration_seconds",
		Help:    "Time from receiving a request to the end of its handler, by route pattern and method.",
		Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60}}, []string{"route", "method"})
	m.httpInFlight = prometheus.NewGauge(prometheus.GaugeOpts{Namespace: Namespace, Name: "http_requests_in_flight",
		Help: "HTTP requests being handled now."})
	m.syncChanges = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: Namespace, Name: "sync_changes_total",
		Help: "Pushed changes by outcome: applied, merged, conflict, duplicate or rejected."}, []string{"outcome"})
	m.syncPulled = prometheus.NewCounter(prometheus.CounterOpts{Namespace: Namespace, Name: "sync_pulled_records_total",
		Help: "Records sent to phones in pull answers."})
	m.uploadBytes = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: Namespace, Name: "upload_bytes_total",
		Help: "Photo bytes received in accepted uploads, by kind: chunk (resumable) or whole."}, []string{"kind"})
	m.storeDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: Namespace, Name: "store_duration_seconds",
		Help:    "Duration of calls to the stores: MongoDB commands by name, MinIO requests by HTTP method.",
		Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}}, []string{"store", "op"})
	m.storeErrors = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: Namespace, Name: "store_errors_total",
		Help: "Failed calls to the stores (network errors, command errors, MinIO 5xx answers), by store and op."}, []string{"store", "op"})
	m.poolConns = prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: Namespace, Name: "mongo_pool_connections",
		Help: "MongoDB driver connections: open (state=open), and of those lent to an operation (state=in_use)."}, []string{"state"})
	m.poolWait = prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: Namespace, Name: "mongo_pool_checkout_seconds",
		Help:    "Time an operation waited for a MongoDB connection.",
		Buckets: []float64{.0001, .0005, .001, .005, .01, .05, .1, .5, 1, 5}})
	m.poolFailures = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: Namespace, Name: "mongo_pool_checkout_failures_total",
		Help: "Operations that got no MongoDB connection, by reason (timeout, connectionError, poolClosed)."}, []string{"reason"})
	m.poolCleared = prometheus.NewCounter(prometheus.CounterOpts{Namespace: Namespace, Name: "mongo_pool_cleared_total",
		Help: "Times the driver emptied a pool because its server became unreachable."})
	for _, c := range []prometheus.Collector{m.httpRequests, m.httpDuration, m.httpInFlight, m.syncChanges, m.syncPulled,
		m.uploadBytes, m.storeDuration, m.storeErrors, m.poolConns, m.poolWait, m.poolFailures, m.poolCleared} {
		f(c)
	}
	// Both states are exported from the start, so that a dashboard shows
	// 0 rather than nothing before the first connection.
	m.poolConns.WithLabelValues("open")
	m.poolConns.WithLabelValues("in_use")
	return m
}

// Gatherer returns the registry, for tests and for serving.
func (m *Metrics) Gatherer() prometheus.Gatherer { return m.reg }

// Handler serves the metrics in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}

// RequestStarted counts a request in flight; call the function it returns
// when the request is done.
func (m *Metrics) RequestStarted() func() {
	if m == nil {
		return func() {}
	}
	m.httpInFlight.Inc()
	return m.httpInFlight.Dec
}

// ObserveRequest records a request answered: route is the pattern the
// router matched ("/v1/blobs/:sha256"), never the raw path, so that the
// number of series stays bounded.
func (m *Metrics) ObserveRequest(route, method string, code int, d time.Duration) {
	if m == nil {
		return
	}
	m.httpRequests.WithLabelValues(route, method, strconv.Itoa(code)).Inc()
	m.httpDuration.WithLabelValues(route, method).Observe(d.Seconds())
}

// SyncOutcome counts n pushed changes with one outcome (a result status of
// syncproto).
func (m *Metrics) SyncOutcome(outcome string, n int) {
	if m == nil || n <= 0 {
		return
	}
	m.syncChanges.WithLabelValues(outcome).Add(float64(n))
}

// Pulled counts records sent in a pull answer.
func (m *Metrics) Pulled(n int) {
	if m == nil || n <= 0 {
		return
	}
	m.syncPulled.Add(float64(n))
}

// UploadBytes counts photo bytes of an accepted upload; kind is "chunk"
// or "whole".
func (m *Metrics) UploadBytes(kind string, n int) {
	if m == nil || n <= 0 {
		return
	}
	m.uploadBytes.WithLabelValues(kind).Add(float64(n))
}

// ObserveStore records one call to a store.
func (m *Metrics) ObserveStore(store, op string, d time.Duration, failed bool) {
	if m == nil {
		return
	}
	m.storeDuration.WithLabelValues(store, op).Observe(d.Seconds())
	if failed {
		m.storeErrors.WithLabelValues(store, op).Inc()
	}
}

// Pool records an event of the MongoDB connection pool (one of the Pool*
// constants); wait is how long a checkout took, reason why it failed.
func (m *Metrics) Pool(event string, wait time.Duration, reason string) {
	if m == nil {
		return
	}
	switch event {
	case PoolConnOpened:
		m.poolConns.WithLabelValues("open").Inc()
	case PoolConnClosed:
		m.poolConns.WithLabelValues("open").Dec()
	case PoolCheckedOut:
		m.poolConns.WithLabelValues("in_use").Inc()
		m.poolWait.Observe(wait.Seconds())
	case PoolCheckedIn:
		m.poolConns.WithLabelValues("in_use").Dec()
	case PoolCheckoutFailed:
		if reason == "" {
			reason = "unknown"
		}
		m.poolFailures.WithLabelValues(reason).Inc()
		m.poolWait.Observe(wait.Seconds())
	case PoolCleared:
		m.poolCleared.Inc()
	}
}

// RoundTripper wraps next (nil: http.DefaultTransport) so that every
// request to a store is timed, by HTTP method; an answer of 500 or more or
// a transport error counts as failed.
func (m *Metrics) RoundTripper(store string, next http.RoundTripper) http.RoundTripper {
	if next == nil {
		next = http.DefaultTransport
	}
	if m == nil {
		return next
	}
	return roundTripper(func(req *http.Request) (*http.Response, error) {
		start := time.Now()
		resp, err := next.RoundTrip(req)
		m.ObserveStore(store, req.Method, time.Since(start), err != nil || resp.StatusCode >= 500)
		return resp, err
	})
}

type roundTripper func(*http.Request) (*http.Response, error)

func (f roundTripper) RoundTrip(req *http.Request) (*http.Response, error) { return f(req) }
