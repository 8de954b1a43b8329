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
	s.app.Post("/v1/sync/push", s.authenticated, s.handlePush)
	s.app.Post("/v1/sync/pull", s.deviceOnly, s.handlePull)
	s.app.Get("/v1/records/:id", s.authenticated, s.handleGetRecord)
	s.app.Get("/v1/conflicts", s.authenticated, s.handleListConflicts)
	s.app.Post("/v1/conflicts/:record/:field/resolve", s.authenticated, s.handleResolveConflict)
	s.app.Post("/v1/admin/compact/:scope", s.adminOnly, s.handleCompact)
}

// grant returns what the principal may write: an inspector's device the
// schools assigned today, the admin everything.
func (s *Server) grant(c *fiber.Ctx, p server.Principal) (server.Grant, error) {
	if p.Has(server.RoleAdmin) {
		return server.Grant{AllSchools: true, Reference: true}, nil
	}
	schools, err := s.deps.Devices.Schools(c.UserContext(), p)
	if err != nil {
		return server.Grant{}, err
	}
	return server.Grant{Schools: schools}, nil
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
// admin token may push office records (schools, forms) for any scope.
func (s *Server) handlePush(c *fiber.Ctx) error {
	// The raw body: decodeBody has inflated a gzip body within the limit.
	req, rejected, err := syncproto.DecodePush(c.Request().Body())
	if err != nil {
		return err
	}
	p := principalOf(c)
	if p.IsDevice() && req.DeviceID != p.DeviceID {
		return syncproto.Errorf(syncproto.EFORBIDDEN, "device_id %s is not the device of this token.", req.DeviceID)
	}
	g, err := s.grant(c, p)
	if err != nil {
		return err
	}
	resp, err := s.deps.Sync.Push(c.UserContext(), p, g, req, rejected)
	if err != nil {
		return err
	}
	s.countPush(&resp)
	return c.JSON(resp)
}

// handlePull handles "POST /v1/sync/pull": the records of the device's
// assigned schools and the reference data.
func (s *Server) handlePull(c *fiber.Ctx) error {
	req, cur, err := syncproto.DecodePull(c.Request().Body())
	if err != nil {
		return err
	}
	p := principalOf(c)
	schools, err := s.deps.Devices.Schools(c.UserContext(), p)
	if err != nil {
		return err
	}
	scopes := append([]string{server.RefScope}, schools...)
	resp, err := s.deps.Sync.Pull(c.UserContext(), p, scopes, req, cur)
	if err != nil {
		return err
	}
	s.deps.Metrics.Pulled(len(resp.Records))
	return c.JSON(resp)
}

// canSee checks that the principal may see a scope (a school or
// reference data).
func (s *Server) canSee(c *fiber.Ctx, p server.Principal, scope string) error {
	if scope == server.RefScope {
		return nil
	}
	ok, err := s.deps.Devices.CanSeeSchool(c.UserContext(), p, scope)
	if err != nil {
		return err
	}
	if !ok {
		return syncproto.Errorf(syncproto.EFORBIDDEN, "You may not see the records of school %s.", scope)
	}
	return nil
}

// handleGetRecord handles "GET /v1/records/:id?scope=SCHOOL": a record's
// current state, with its conflicts and the hazard fold for hazards.
func (s *Server) handleGetRecord(c *fiber.Ctx) error {
	id, err := syncproto.ParseID(c.Params("id"))
	if err != nil {
		return syncproto.Errorf(syncproto.EINVALID, "The record id must be a canonical UUID.")
	}
	scope := utils.CopyString(c.Query("scope"))
	if !server.ValidScope(scope) {
		return syncproto.FieldError("Say which school the record belongs to.", map[string]string{"scope": "must be a school id or ref"})
	}
	if err := s.canSee(c, principalOf(c), scope); err != nil {
		return err
	}
	r, err := s.deps.Sync.Record(c.UserContext(), scope, id)
	if err != nil {
		return err
	}
	out := fiber.Map{"record": r, "conflict_fields": r.ConflictFields(), "deleted": r.IsDeleted()}
	// The derived state reviewers work from: a hazard's status is folded
	// from its events with server time (overdue, needs_review), a
	// follow-up task's from its events too.
	switch r.Kind {
	case "hazard":
		out["hazard"] = syncproto.FoldHazard(r, time.Now())
	case "follow_up_task":
		out["task"] = syncproto.FoldTask(r)
	}
	return c.JSON(out)
}

// handleListConflicts handles "GET /v1/conflicts?status=open&scope=…&limit=…".
// Office users see every school; a device the schools assigned to it.
func (s *Server) handleListConflicts(c *fiber.Ctx) error {
	p := principalOf(c)
	f := server.ConflictFilter{Status: utils.CopyString(c.Query("status")), Scope: utils.CopyString(c.Query("scope"))}
	if f.Status != "" && f.Status != server.ConflictOpen && f.Status != server.ConflictResolved {
		return syncproto.FieldError("The filter is not valid.", map[string]string{"status": "must be open or resolved"})
	}
	if v := c.Query("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 1000 {
			return syncproto.FieldError("The filter is not valid.", map[string]string{"limit": "must be a number from 1 to 1000"})
		}
		f.Limit = n
	}
	if v := c.Query("record"); v != "" {
		id, err := syncproto.ParseID(v)
		if err != nil {
			return syncproto.FieldError("The filter is not valid.", map[string]string{"record": "must be a canonical UUID"})
		}
		f.RecordID = id
	}
	office := p.Has(server.RoleOfficeReviewer) || p.Has(server.RoleOfficeHead)
	if f.Scope != "" {
		if !server.ValidScope(f.Scope) {
			return syncproto.FieldError("The filter is not valid.", map[string]string{"scope": "must be a school id or ref"})
		}
		if err := s.canSee(c, p, f.Scope); err != nil {
			return err
		}
	} else if !office {
		return syncproto.FieldError("Say which school's conflicts to list.", map[string]string{"scope": "is required for a device"})
	}
	cs, err := s.deps.Sync.Conflicts(c.UserContext(), f)
	if err != nil {
		return err
	}
	if cs == nil {
		cs = []server.Conflict{}
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
	if len(c.Request().Body()) > 0 {
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
