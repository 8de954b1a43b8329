package api

import (
	"context"
	"log/slog"
	"net/http"
	"sync"

	"github.com/gofiber/fiber/v2"
)

// routesHealth registers the probes. They need no credentials.
func (s *Server) routesHealth() {
	s.app.Get("/healthz", s.handleHealthz)
	s.app.Get("/readyz", s.handleReadyz)
}

type healthResponse struct {
	Status  string   `json:"status"`            // "ok" or "unavailable"
	Failing []string `json:"failing,omitempty"` // names of the failing checks
}

// handleHealthz handles "GET /healthz", the liveness probe: the process
// serves HTTP. It checks no dependency, so that a database outage does not
// get the server restarted.
func (s *Server) handleHealthz(c *fiber.Ctx) error {
	return c.JSON(healthResponse{Status: "ok"})
}

// handleReadyz handles "GET /readyz", the readiness probe: 200 when every
// dependency answers, otherwise 503 naming the failing ones, with
// Retry-After.
func (s *Server) handleReadyz(c *fiber.Ctx) error {
	failing := s.runChecks(c.UserContext())
	if len(failing) > 0 {
		c.Set(fiber.HeaderRetryAfter, retryAfter)
		return c.Status(http.StatusServiceUnavailable).JSON(healthResponse{Status: "unavailable", Failing: failing})
	}
	return c.JSON(healthResponse{Status: "ok"})
}

// runChecks runs the checks at once, each bounded by ReadyTimeout, and
// returns the names of the failing ones in Deps order.
func (s *Server) runChecks(ctx context.Context) []string {
	checks := s.deps.Checks
	errs := make([]error, len(checks))
	var wg sync.WaitGroup
	for i, ch := range checks {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(ctx, s.cfg.ReadyTimeout)
			defer cancel()
			errs[i] = ch.Ping(ctx)
		})
	}
	wg.Wait()
	var failing []string
	for i, ch := range checks {
		s.ready.note(s.logger, ch.Name, errs[i])
		if errs[i] != nil {
			failing = append(failing, ch.Name)
		}
	}
	return failing
}

// readiness remembers which dependencies were down at the last check, so
// that a change is logged once, not on every probe.
type readiness struct {
	mu   sync.Mutex
	down map[string]bool
}

func (r *readiness) note(logger *slog.Logger, name string, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.down == nil {
		r.down = make(map[string]bool)
	}
	wasDown, seen := r.down[name]
	isDown := err != nil
	r.down[name] = isDown
	switch {
	case isDown && (!seen || !wasDown):
		logger.LogAttrs(context.Background(), slog.LevelError, "dependency down",
			slog.String(keyCheck, name), slog.String(keyError, err.Error()))
	case !isDown && wasDown:
		logger.LogAttrs(context.Background(), slog.LevelInfo, "dependency up again",
			slog.String(keyCheck, name))
	}
}
