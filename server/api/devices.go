package api

import (
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/utils"
	"github.com/google/uuid"

	"github.com/fieldsync/fieldsync/server"
	"github.com/fieldsync/fieldsync/syncproto"
)

// routesDevices registers enrollment and the administration of
// inspectors, assignments and devices.
func (s *Server) routesDevices() {
	s.app.Post("/v1/devices/enroll", s.body(enrollBodyMax), s.handleEnroll)
	admin := s.app.Group("/v1/admin", s.adminOnly)
	admin.Put("/inspectors/:id", s.body(smallBodyMax), s.handlePutInspector)
	admin.Put("/assignments/:id", s.body(smallBodyMax), s.handlePutAssignment)
	// These two read no body, but clients send "{}"; reading it keeps
	// the connection open for the next request.
	admin.Post("/inspectors/:id/enrollment-codes", s.body(smallBodyMax), s.handleNewEnrollmentCode)
	admin.Post("/devices/:id/revoke", s.body(smallBodyMax), s.handleRevokeDevice)
}

type enrollRequest struct {
	Code       string `json:"code"`
	DeviceID   string `json:"device_id"`
	DeviceName string `json:"device_name"`
}

type enrollResponse struct {
	Token       string    `json:"token"`
	DeviceID    uuid.UUID `json:"device_id"`
	InspectorID string    `json:"inspector_id"`
	UserID      string    `json:"user_id"`
	EnrolledAt  time.Time `json:"enrolled_at"`
}

// handleEnroll handles "POST /v1/devices/enroll": a phone exchanges a
// one-time code for its device token.
func (s *Server) handleEnroll(c *fiber.Ctx) error {
	var req enrollRequest
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	if s.deps.Devices == nil {
		return syncproto.Errorf(syncproto.EUNAVAILABLE, "Enrollment is not configured.")
	}
	id, err := syncproto.ParseID(req.DeviceID)
	if err != nil {
		return syncproto.FieldError("The enrollment is not valid.", map[string]string{"device_id": "must be a canonical UUID made by the phone"})
	}
	token, dev, err := s.deps.Devices.Enroll(c.UserContext(), req.Code, id, req.DeviceName)
	if err != nil {
		return err
	}
	return c.Status(fiber.StatusCreated).JSON(enrollResponse{Token: token, DeviceID: dev.ID, InspectorID: dev.InspectorID, UserID: dev.UserID, EnrolledAt: dev.EnrolledAt})
}

// handlePutInspector handles "PUT /v1/admin/inspectors/:id".
func (s *Server) handlePutInspector(c *fiber.Ctx) error {
	var in server.Inspector
	if err := decodeJSON(c, &in); err != nil {
		return err
	}
	in.ID = utils.CopyString(c.Params("id"))
	if err := s.deps.Devices.PutInspector(c.UserContext(), principalOf(c), in); err != nil {
		return err
	}
	stored, err := s.deps.Devices.Store.Inspector(c.UserContext(), in.ID)
	if err != nil {
		return err
	}
	return c.JSON(stored)
}

// handlePutAssignment handles "PUT /v1/admin/assignments/:id".
func (s *Server) handlePutAssignment(c *fiber.Ctx) error {
	var a server.Assignment
	if err := decodeJSON(c, &a); err != nil {
		return err
	}
	a.ID = utils.CopyString(c.Params("id"))
	if err := s.deps.Devices.PutAssignment(c.UserContext(), principalOf(c), a); err != nil {
		return err
	}
	return c.JSON(a)
}

type enrollmentCodeResponse struct {
	Code        string    `json:"code"`
	InspectorID string    `json:"inspector_id"`
	ExpiresAt   time.Time `json:"expires_at"`
}

// handleNewEnrollmentCode handles "POST /v1/admin/inspectors/:id/enrollment-codes".
func (s *Server) handleNewEnrollmentCode(c *fiber.Ctx) error {
	id := utils.CopyString(c.Params("id"))
	code, exp, err := s.deps.Devices.NewEnrollmentCode(c.UserContext(), principalOf(c), id)
	if err != nil {
		return err
	}
	return c.Status(fiber.StatusCreated).JSON(enrollmentCodeResponse{Code: code, InspectorID: id, ExpiresAt: exp})
}

// handleRevokeDevice handles "POST /v1/admin/devices/:id/revoke".
func (s *Server) handleRevokeDevice(c *fiber.Ctx) error {
	id, err := syncproto.ParseID(c.Params("id"))
	if err != nil {
		return syncproto.Errorf(syncproto.EINVALID, "The device id must be a canonical UUID.")
	}
	if err := s.deps.Devices.Revoke(c.UserContext(), principalOf(c), id); err != nil {
		return err
	}
	return c.JSON(fiber.Map{"device_id": id, "revoked": true})
}
