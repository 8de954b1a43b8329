package api

import (
	"encoding/json"
	"time"

	"strconv"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/utils"

	"github.com/fieldsync/fieldsync/server"
	"github.com/fieldsync/fieldsync/syncproto"
)

// routesSync registers the sync protocol and the review routes built on
// it: conflicts and records.
func (s *Server) routesSync() {
	s.app.Get("/v1/sync/info", s.authenticated, s.handleSyncInfo)
	s.app.Post("/v1/sync/push", s.authenticated, s.body(s.cfg.BodyLimit), s.handlePush)
	s.app.Post("/v1/sync/pull", s.authenticated, s.body(pullBodyMax), s.handlePull)
	s.app.Get("/v1/records/:id", s.authenticated, s.handleGetRecord)
	s.app.Get("/v1/conflicts", s.authenticated, s.handleListConflicts)
	s.app.Post("/v1/conflicts/:record/:field/resolve", s.authenticated, s.body(s.cfg.BodyLimit), s.handleResolveConflict)
	s.app.Post("/v1/admin/compact/:scope", s.adminOnly, s.body(smallBodyMax), s.handleCompact)
}

// handleSyncInfo handles "GET /v1/sync/info".
func (s *Server) handleSyncInfo(c *fiber.Ctx) error {
	info, err := s.deps.Sync.Info(c.UserContext())
	if err != nil {
		return err
	}
	return c.JSON(info)
}

// handlePush handles "POST /v1/sync/push". A device pushes its outbox; the
// office and the admin token may push office records.
func (s *Server) handlePush(c *fiber.Ctx) error {
	req, rejected, err := syncproto.DecodePush(requestBody(c))
	if err != nil {
		return err
	}
	resp, err := s.deps.Sync.Push(c.UserContext(), principalOf(c), req, rejected)
	if err != nil {
		return err
	}
	s.countPush(&resp)
	return c.JSON(resp)
}

// handlePull handles "POST /v1/sync/pull": the records of the device's
// assigned schools and the reference data.
func (s *Server) handlePull(c *fiber.Ctx) error {
	req, cur, err := syncproto.DecodePull(requestBody(c))
	if err != nil {
		return err
	}
	resp, err := s.deps.Sync.Pull(c.UserContext(), principalOf(c), req, cur)
	if err != nil {
		return err
	}
	s.deps.Metrics.Pulled(len(resp.Records))
	return c.JSON(resp)
}

// handleGetRecord handles "GET /v1/records/:id?scope=SCHOOL": a record's
// current state, with its conflicts and the hazard fold for hazards.
func (s *Server) handleGetRecord(c *fiber.Ctx) error {
	id, err := syncproto.ParseID(c.Params("id"))
	if err != nil {
		return syncproto.Errorf(syncproto.EINVALID, "The record id must be a canonical UUID.")
	}
	v, err := s.deps.Sync.View(c.UserContext(), principalOf(c), utils.CopyString(c.Query("scope")), id)
	if err != nil {
		return err
	}
	return c.JSON(v)
}

// handleListConflicts handles "GET /v1/conflicts?status=open&scope=…&record=…&limit=…".
func (s *Server) handleListConflicts(c *fiber.Ctx) error {
	f := server.ConflictFilter{Status: utils.CopyString(c.Query("status")), Scope: utils.CopyString(c.Query("scope"))}
	bad := map[string]string{}
	if v := c.Query("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			bad["limit"] = "must be a number from 1 to " + strconv.Itoa(server.MaxConflictLimit)
		}
		f.Limit = n
	}
	if v := c.Query("record"); v != "" {
		id, err := syncproto.ParseID(v)
		if err != nil {
			bad["record"] = "must be a canonical UUID"
		}
		f.RecordID = id
	}
	if len(bad) > 0 {
		return syncproto.FieldError("The filter is not valid.", bad)
	}
	cs, err := s.deps.Sync.Conflicts(c.UserContext(), principalOf(c), f)
	if err != nil {
		return err
	}
	return c.JSON(fiber.Map{"conflicts": cs})
}

// handleResolveConflict handles "POST /v1/conflicts/:record/:field/resolve"
// with {"value": <the chosen JSON value>}: the office writes the chosen
// value having seen every version. A conflict's id is "<record>/<field>",
// so its two parts are two path segments and need no escaping.
func (s *Server) handleResolveConflict(c *fiber.Ctx) error {
	var req struct {
		Value json.RawMessage `json:"value"`
	}
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	if len(req.Value) == 0 {
		return syncproto.FieldError("Say which value to keep.", map[string]string{"value": "is required (any JSON value)"})
	}
	rec, err := syncproto.ParseID(c.Params("record"))
	if err != nil {
		return syncproto.Errorf(syncproto.EINVALID, "The record id must be a canonical UUID.")
	}
	id := server.ConflictID(rec, utils.CopyString(c.Params("field")))
	r, err := s.deps.Sync.ResolveConflict(c.UserContext(), principalOf(c), id, []byte(req.Value))
	if err != nil {
		return err
	}
	return c.JSON(fiber.Map{"record": r})
}

// handleCompact handles "POST /v1/admin/compact/:scope" with optional
// {"tombstones_before": RFC 3339}.
func (s *Server) handleCompact(c *fiber.Ctx) error {
	scope := utils.CopyString(c.Params("scope"))
	if !server.ValidScope(scope) {
		return syncproto.FieldError("The scope is not valid.", map[string]string{"scope": "must be a school id or ref"})
	}
	var opt server.CompactOptions
	if len(requestBody(c)) > 0 {
		var req struct {
			UpTo             int64  `json:"up_to"`
			TombstonesBefore string `json:"tombstones_before"`
		}
		if err := decodeJSON(c, &req); err != nil {
			return err
		}
		opt.UpTo = req.UpTo
		if req.TombstonesBefore != "" {
			t, err := time.Parse(time.RFC3339, req.TombstonesBefore)
			if err != nil {
				return syncproto.FieldError("The request is not valid.", map[string]string{"tombstones_before": "must be an RFC 3339 time"})
			}
			opt.TombstonesBefore = t
		}
	}
	res, err := s.deps.Sync.Compact(c.UserContext(), principalOf(c), scope, opt)
	if err != nil {
		return err
	}
	return c.JSON(res)
}
