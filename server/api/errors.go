package api

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"

	"github.com/gofiber/fiber/v2"
	"github.com/google/uuid"

	"github.com/fieldsync/fieldsync/syncproto"
)

// codeStatus maps each syncproto error code to its HTTP status. A code
// missing here is a bug and is answered as internal.
var codeStatus = map[string]int{
	syncproto.EINVALID:      http.StatusBadRequest,
	syncproto.ENOTFOUND:     http.StatusNotFound,
	syncproto.ECONFLICT:     http.StatusConflict,
	syncproto.ESTALE:        http.StatusGone,
	syncproto.EUNAUTHORIZED: http.StatusUnauthorized,
	syncproto.EFORBIDDEN:    http.StatusForbidden,
	syncproto.ETOOLARGE:     http.StatusRequestEntityTooLarge,
	syncproto.EUNSUPPORTED:  http.StatusUnsupportedMediaType,
	syncproto.EUNAVAILABLE:  http.StatusServiceUnavailable,
	syncproto.EINTERNAL:     http.StatusInternalServerError,
	syncproto.EOPREUSED:     http.StatusConflict,
	syncproto.EPROTOCOL:     http.StatusBadRequest,
}

// retryAfter is the Retry-After of 503 and 429 answers, in seconds.
const retryAfter = "5"

const internalMessage = "Internal error."

// errorBody is the JSON of every error response:
// {"error":{"code":…,"message":…,"fields":{…}}}.
type errorBody struct {
	Error *syncproto.Error `json:"error"`
}

// handleError is the only place where errors become responses (it is
// fiber's ErrorHandler, and accessLog calls it). Internal errors are logged
// with their detail; the client sees only "Internal error.".
func (s *Server) handleError(c *fiber.Ctx, err error) error {
	status, e := s.classify(c, err)
	if status == http.StatusServiceUnavailable || status == http.StatusTooManyRequests {
		c.Set(fiber.HeaderRetryAfter, retryAfter)
	}
	if requestIDOf(c) == "" {
		// fasthttp rejected the request before any middleware ran
		// (headers too large, a malformed request, a body that did not
		// start in time): give it a request id and log it here, as
		// requestID and accessLog would.
		id := uuid.NewString()
		c.Locals(localRequestID, id)
		c.Set(HeaderRequestID, id)
		// fasthttp closes the connection after this answer, perhaps
		// with input unread: close lingering (body.go).
		if lc, ok := c.Context().Conn().(*lingerConn); ok {
			lc.linger.Store(true)
		}
		s.logger.LogAttrs(c.UserContext(), slog.LevelInfo, "request rejected",
			slog.String(keyMethod, c.Method()),
			slog.String(keyPath, c.Path()),
			slog.Int(keyStatus, status),
			slog.String(keyError, e.Message),
			slog.String(keyRequestID, id),
		)
	}
	return c.Status(status).JSON(errorBody{Error: e})
}

// classify returns the status and the client's view of err.
func (s *Server) classify(c *fiber.Ctx, err error) (int, *syncproto.Error) {
	var fe *fiber.Error
	if errors.As(err, &fe) {
		return fiberError(c, fe, s.cfg.BodyLimit)
	}
	if errors.Is(err, context.DeadlineExceeded) {
		s.logError(c, slog.LevelWarn, "request timed out", err)
		return http.StatusServiceUnavailable, syncproto.Errorf(syncproto.EUNAVAILABLE,
			"The server took too long to answer; try again later.")
	}
	code := syncproto.ErrorCode(err)
	status, ok := codeStatus[code]
	if !ok {
		s.logError(c, slog.LevelError, "unknown error code", err)
		return http.StatusInternalServerError, syncproto.Errorf(syncproto.EINTERNAL, internalMessage)
	}
	switch code {
	case syncproto.EINTERNAL:
		s.logError(c, slog.LevelError, "internal error", err)
		return status, syncproto.Errorf(syncproto.EINTERNAL, internalMessage)
	case syncproto.EUNAVAILABLE:
		switch {
		case errors.Is(err, errBodyShare):
			// One principal sending more bodies at once than its share
			// of the budget: the same code (retry later), its own status.
			status = http.StatusTooManyRequests
		case !errors.Is(err, errBodyBudget):
			s.logError(c, slog.LevelWarn, "dependency unavailable", err)
		}
	}
	var pe *syncproto.Error
	errors.As(err, &pe) // never false here: code is not EINTERNAL
	return status, pe
}

// fiberError maps fiber's own errors (no route, body too large, …) to the
// protocol's codes, keeping fiber's status.
func fiberError(c *fiber.Ctx, fe *fiber.Error, bodyLimit int) (int, *syncproto.Error) {
	status := fe.Code
	switch status {
	case http.StatusNotFound:
		return status, syncproto.Errorf(syncproto.ENOTFOUND, "No such endpoint: %s %s.", c.Method(), c.Path())
	case http.StatusMethodNotAllowed:
		return status, syncproto.Errorf(syncproto.EINVALID, "Method %s is not allowed on %s.", c.Method(), c.Path())
	case http.StatusRequestEntityTooLarge:
		return status, syncproto.Errorf(syncproto.ETOOLARGE, "The request body is larger than the limit of %s.", formatBytes(bodyLimit))
	case http.StatusRequestHeaderFieldsTooLarge:
		return status, syncproto.Errorf(syncproto.ETOOLARGE, "The request headers are too large.")
	case http.StatusUnauthorized:
		return status, syncproto.Errorf(syncproto.EUNAUTHORIZED, "%s", fe.Message)
	case http.StatusForbidden:
		return status, syncproto.Errorf(syncproto.EFORBIDDEN, "%s", fe.Message)
	case http.StatusConflict:
		return status, syncproto.Errorf(syncproto.ECONFLICT, "%s", fe.Message)
	case http.StatusUnsupportedMediaType:
		return status, syncproto.Errorf(syncproto.EUNSUPPORTED, "%s", fe.Message)
	case http.StatusServiceUnavailable:
		return status, syncproto.Errorf(syncproto.EUNAVAILABLE, "The server is unavailable; try again later.")
	case http.StatusRequestTimeout:
		// A body cut off for arriving too slowly (body.go), or a request
		// fasthttp gave up reading: the client should send it again.
		return status, syncproto.Errorf(syncproto.EUNAVAILABLE, slowBodyMessage)
	}
	if status >= 500 {
		return http.StatusInternalServerError, syncproto.Errorf(syncproto.EINTERNAL, internalMessage)
	}
	if status < 400 {
		status = http.StatusBadRequest
	}
	return status, syncproto.Errorf(syncproto.EINVALID, "%s", fe.Message)
}

func (s *Server) logError(c *fiber.Ctx, level slog.Level, msg string, err error) {
	s.logger.LogAttrs(c.UserContext(), level, msg,
		slog.String(keyMethod, c.Method()),
		slog.String(keyPath, c.Path()),
		slog.String(keyRequestID, requestIDOf(c)),
		slog.String(keyError, err.Error()),
	)
}

// formatBytes writes n bytes for people: "32 MiB", "1.5 KiB", "100 bytes".
func formatBytes(n int) string {
	const unit = 1024
	switch {
	case n >= unit*unit*unit && n%(unit*unit*unit) == 0:
		return fmt.Sprintf("%d GiB", n/(unit*unit*unit))
	case n >= unit*unit && n%(unit*unit) == 0:
		return fmt.Sprintf("%d MiB", n/(unit*unit))
	case n >= unit*unit:
		return fmt.Sprintf("%.1f MiB", float64(n)/(unit*unit))
	case n >= unit && n%unit == 0:
		return fmt.Sprintf("%d KiB", n/unit)
	case n >= unit:
		return fmt.Sprintf("%.1f KiB", float64(n)/unit)
	}
	return fmt.Sprintf("%d bytes", n)
}
