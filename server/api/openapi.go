package api

import (
	_ "embed"

	"github.com/gofiber/fiber/v2"
)

// openAPIDocument is the OpenAPI 3 description of the API, written by
// hand in openapi.json beside this file. TestOpenAPIMatchesRoutes fails
// when a route is added, removed or renamed without it.
//
//go:embed openapi.json
var openAPIDocument []byte

// routesOpenAPI registers the API's description. It needs no credentials:
// phone and browser developers read it before they have a token.
func (s *Server) routesOpenAPI() {
	s.app.Get("/v1/openapi.json", s.handleOpenAPI)
}

// handleOpenAPI handles "GET /v1/openapi.json".
func (s *Server) handleOpenAPI(c *fiber.Ctx) error {
	c.Set(fiber.HeaderContentType, fiber.MIMEApplicationJSONCharsetUTF8)
	return c.Send(openAPIDocument)
}
