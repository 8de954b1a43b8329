package api

import (
	"crypto/subtle"
	"encoding/json"
	"strings"

	"github.com/gofiber/fiber/v2"

	"github.com/fieldsync/fieldsync/server"
	"github.com/fieldsync/fieldsync/syncproto"
)

// bearer returns the token of an "Authorization: Bearer …" header.
func bearer(c *fiber.Ctx) string {
	h := c.Get(fiber.HeaderAuthorization)
	if len(h) > 7 && strings.EqualFold(h[:7], "bearer ") {
		return strings.TrimSpace(h[7:])
	}
	return ""
}

// adminPrincipal is who the admin token acts as: automation, holding
// every role. People sign in to the office console with their own
// accounts (console.go).
var adminPrincipal = server.Principal{UserID: "admin", Roles: []string{server.RoleAdmin}, Automation: true}

// principal authenticates the request: the admin token (compared in
// constant time) or an enrolled device's token. It fails with
// EUNAUTHORIZED when neither is given or valid.
func (s *Server) principal(c *fiber.Ctx) (server.Principal, error) {
	tok := bearer(c)
	if tok == "" {
		return server.Principal{}, syncproto.Errorf(syncproto.EUNAUTHORIZED, "Send a device token or the admin token as \"Authorization: Bearer …\".")
	}
	if s.cfg.AdminToken != "" && subtle.ConstantTimeCompare([]byte(tok), []byte(s.cfg.AdminToken)) == 1 {
		return adminPrincipal, nil
	}
	if s.deps.Devices == nil {
		return server.Principal{}, syncproto.Errorf(syncproto.EUNAUTHORIZED, "This token is not valid.")
	}
	return s.deps.Devices.Authenticate(c.UserContext(), tok)
}

// authorize authenticates the request (principal), refuses it when deny
// returns an error for the principal, and otherwise puts the principal in
// the request context and goes on. The middleware below differ only in
// deny.
func (s *Server) authorize(c *fiber.Ctx, deny func(server.Principal) error) error {
	p, err := s.principal(c)
	if err != nil {
		return err
	}
	if deny != nil {
		if err := deny(p); err != nil {
			return err
		}
	}
	c.SetUserContext(server.WithPrincipal(c.UserContext(), p))
	return c.Next()
}

// authenticated is middleware that requires a device or the admin token.
func (s *Server) authenticated(c *fiber.Ctx) error { return s.authorize(c, nil) }

// adminOnly is middleware that requires the admin token.
func (s *Server) adminOnly(c *fiber.Ctx) error { return s.authorize(c, denyNonAdmin) }

func denyNonAdmin(p server.Principal) error {
	if !p.Has(server.RoleAdmin) {
		return syncproto.Errorf(syncproto.EFORBIDDEN, "This route is for administrators.")
	}
	return nil
}

// principalOf returns the principal the auth middleware stored.
func principalOf(c *fiber.Ctx) server.Principal {
	p, _ := server.PrincipalFrom(c.UserContext())
	return p
}

// decodeJSON decodes the JSON request body (requestBody: the route
// declares its body) into v, refusing anything that is not JSON with a
// clear EINVALID.
func decodeJSON(c *fiber.Ctx, v any) error {
	if err := json.Unmarshal(requestBody(c), v); err != nil {
		return syncproto.Errorf(syncproto.EINVALID, "The body must be JSON: %v.", err)
	}
	return nil
}
