package api

import (
	"errors"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/middleware/adaptor"

	"github.com/fieldsync/fieldsync/syncproto"
)

// unmatchedRoute is the route label of requests no route matched (404s
// and the like): raw paths would make one series per path.
const unmatchedRoute = "unmatched"

// routesMetrics serves Deps.Metrics at "GET /metrics" in the Prometheus
// text format. It is not authenticated, like /healthz: the reverse proxy
// in front of the replicas keeps it off the public side
// (deploy/haproxy/haproxy.cfg), and Prometheus scrapes each replica
// directly.
func (s *Server) routesMetrics() {
	s.app.Get("/metrics", adaptor.HTTPHandler(s.deps.Metrics.Handler()))
}

// observe is the outermost middleware when Deps.Metrics is set: it times
// every request and counts it by route pattern, method and the status
// sent, and counts the photo bytes of accepted uploads.
func (s *Server) observe(c *fiber.Ctx) error {
	m := s.deps.Metrics
	start := time.Now()
	done := m.RequestStarted()
	err := c.Next()
	done()
	status := c.Response().StatusCode()
	if err != nil { // not turned into a response below us (accessLog does that)
		status = http.StatusInternalServerError
		var fe *fiber.Error
		if errors.As(err, &fe) {
			status = fe.Code
		}
	}
	route := s.routeLabel(c)
	m.ObserveRequest(route, c.Method(), status, time.Since(start))
	if status < 300 && c.Method() == fiber.MethodPut && strings.HasPrefix(route, "/v1/blobs/") {
		kind := "whole"
		if strings.Contains(route, "/chunks/") {
			kind = "chunk"
		}
		m.UploadBytes(kind, requestBodySize(c))
	}
	return err
}

// routeLabel returns the pattern of the route that handled the request,
// or unmatchedRoute.
func (s *Server) routeLabel(c *fiber.Ctx) string {
	s.routesOnce.Do(func() {
		s.routes = map[string]bool{}
		for _, r := range s.app.GetRoutes(true) { // without middleware
			s.routes[r.Method+" "+r.Path] = true
		}
	})
	r := c.Route()
	if r == nil || !s.routes[r.Method+" "+r.Path] {
		return unmatchedRoute
	}
	return r.Path
}

// countPush counts a push's results by status.
func (s *Server) countPush(resp *syncproto.PushResponse) {
	m := s.deps.Metrics
	if m == nil || resp == nil {
		return
	}
	n := map[string]int{}
	for _, r := range resp.Results {
		n[r.Status]++
	}
	for status, k := range n {
		m.SyncOutcome(status, k)
	}
}

// routeIndex is the set of "METHOD /pattern" of the registered routes.
type routeIndex struct {
	routesOnce sync.Once
	routes     map[string]bool
}
