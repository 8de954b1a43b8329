package api

import (
	"net/http"
	"strings"

	"github.com/gofiber/fiber/v2"
)

// routesApp serves the inspector's offline web app (package webapp) at
// /app/. It needs no credentials: the app enrolls with a one-time code
// like any phone. Files are revalidated on every load (ETag, "no-cache"):
// the app's service worker keeps them for offline use and replaces them
// as a whole when the server's version changes.
func (s *Server) routesApp() {
	s.app.Get("/app/*", s.handleApp)
}

// handleApp handles "GET /app/*" (and "/app", which Fiber routes here
// too, redirected to "/app/" so the app's relative paths resolve).
func (s *Server) handleApp(c *fiber.Ctx) error {
	if c.Path() == "/app" {
		return c.Redirect("/app/", http.StatusMovedPermanently)
	}
	gz := strings.Contains(c.Get(fiber.HeaderAcceptEncoding), "gzip")
	f, ok := s.deps.App.Lookup(c.Params("*"), gz)
	if !ok {
		return c.Status(http.StatusNotFound).SendString("Not found.")
	}
	c.Set(fiber.HeaderContentType, f.ContentType)
	c.Set(fiber.HeaderCacheControl, "no-cache")
	c.Set(fiber.HeaderETag, f.ETag)
	c.Set(fiber.HeaderVary, fiber.HeaderAcceptEncoding)
	c.Set("X-Content-Type-Options", "nosniff")
	if c.Path() == "/app/sw.js" {
		c.Set("Service-Worker-Allowed", "/app/")
	}
	if match := c.Get(fiber.HeaderIfNoneMatch); match != "" && strings.Contains(match, f.ETag) {
		return c.SendStatus(http.StatusNotModified)
	}
	if f.Encoding != "" {
		c.Set(fiber.HeaderContentEncoding, f.Encoding)
	}
	return c.Send(f.Body)
}
