package api

import (
	"context"
	"fmt"
	"log/slog"
	"runtime/debug"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/utils"
	"github.com/google/uuid"
)

// Log attribute keys.
const (
	keyRequestID = "request_id"
	keyMethod    = "method"
	keyPath      = "path"
	keyStatus    = "status"
	keyDuration  = "duration_ms"
	keyBytes     = "bytes"
	keyError     = "error"
	keyCheck     = "dependency"
)

// HeaderRequestID carries the request id: a client may send one (it is
// echoed if it looks sane), otherwise the server makes one. It is in every
// response and in the log lines about the request.
const HeaderRequestID = "X-Request-Id"

// localRequestID is the fiber.Ctx Locals key of the request id.
const localRequestID = "fieldsync.request_id"

// requestID sets the request id.
func (s *Server) requestID(c *fiber.Ctx) error {
	id := c.Get(HeaderRequestID)
	if !validRequestID(id) {
		id = uuid.NewString()
	} else {
		id = utils.CopyString(id) // fasthttp reuses header memory
	}
	c.Locals(localRequestID, id)
	c.Set(HeaderRequestID, id)
	return c.Next()
}

// validRequestID accepts ids of up to 128 letters, digits and "-_.:".
func validRequestID(id string) bool {
	if id == "" || len(id) > 128 {
		return false
	}
	for _, r := range id {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9',
			r == '-', r == '_', r == '.', r == ':':
		default:
			return false
		}
	}
	return true
}

func requestIDOf(c *fiber.Ctx) string {
	id, _ := c.Locals(localRequestID).(string)
	return id
}

// accessLog writes one line per request. It turns an error from the chain
// into the response first, so the line shows the status sent.
func (s *Server) accessLog(c *fiber.Ctx) error {
	start := time.Now()
	if err := c.Next(); err != nil {
		if err := s.handleError(c, err); err != nil {
			return err
		}
	}
	s.logger.LogAttrs(c.UserContext(), slog.LevelInfo, "request",
		slog.String(keyMethod, c.Method()),
		slog.String(keyPath, c.Path()),
		slog.Int(keyStatus, c.Response().StatusCode()),
		slog.Float64(keyDuration, float64(time.Since(start).Microseconds())/1000),
		slog.Int(keyBytes, len(c.Response().Body())),
		slog.String(keyRequestID, requestIDOf(c)),
	)
	return nil
}

// recoverPanic turns a panic in a handler into an internal error, with the
// stack for the log.
func (s *Server) recoverPanic(c *fiber.Ctx) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("panic: %v\n%s", r, debug.Stack())
		}
	}()
	return c.Next()
}

// deadline gives every handler's context a deadline: fiber's UserContext
// has none unless it is set. Handlers pass c.UserContext() down, never c.
func (s *Server) deadline(c *fiber.Ctx) error {
	ctx, cancel := context.WithTimeout(c.UserContext(), s.cfg.RequestTimeout)
	defer cancel()
	c.SetUserContext(ctx)
	return c.Next()
}
