package api

import (
	"bytes"
	"encoding/json"
	"io"
	"strconv"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/utils"

	"github.com/fieldsync/fieldsync/forms"
	"github.com/fieldsync/fieldsync/syncproto"
)

// routesForms registers the form routes: everyone authenticated reads
// form versions; the office publishes (as JSON or as an XLSForm workbook)
// and retires them. Phones also receive published versions on pull.
func (s *Server) routesForms() {
	s.app.Get("/v1/forms", s.authenticated, s.handleListForms)
	s.app.Get("/v1/forms/:id/:version", s.authenticated, s.handleGetForm)
	s.app.Post("/v1/admin/forms", s.adminOnly, s.handlePublishForm)
	s.app.Post("/v1/admin/forms/xlsform", s.adminOnly, s.handlePublishXLSForm)
	s.app.Post("/v1/admin/forms/:id/:version/retire", s.adminOnly, s.handleRetireForm)
}

func formParams(c *fiber.Ctx) (string, int, error) {
	id := utils.CopyString(c.Params("id"))
	v, err := strconv.Atoi(c.Params("version"))
	if err != nil || v < 1 {
		return "", 0, syncproto.FieldError("The form version is not valid.", map[string]string{"version": "must be a positive whole number"})
	}
	return id, v, nil
}

// handleListForms handles "GET /v1/forms".
func (s *Server) handleListForms(c *fiber.Ctx) error {
	list, err := s.deps.Forms.List(c.UserContext(), adminPrincipal)
	if err != nil {
		return err
	}
	return c.JSON(fiber.Map{"forms": list})
}

// handleGetForm handles "GET /v1/forms/:id/:version".
func (s *Server) handleGetForm(c *fiber.Ctx) error {
	id, v, err := formParams(c)
	if err != nil {
		return err
	}
	def, retired, err := s.deps.Forms.Get(c.UserContext(), id, v)
	if err != nil {
		return err
	}
	return c.JSON(fiber.Map{"definition": def, "retired": retired})
}

// handlePublishForm handles "POST /v1/admin/forms" with a form definition
// as JSON. Unknown members are refused, not dropped: a misspelt
// "required_iff" would otherwise publish a form without its rule, and a
// published version never changes.
func (s *Server) handlePublishForm(c *fiber.Ctx) error {
	var def forms.Definition
	d := json.NewDecoder(bytes.NewReader(c.Request().Body()))
	d.DisallowUnknownFields()
	if err := d.Decode(&def); err != nil {
		return syncproto.Errorf(syncproto.EINVALID, "The body must be a form definition as JSON: %v.", err)
	}
	if _, err := d.Token(); err != io.EOF {
		return syncproto.Errorf(syncproto.EINVALID, "The body must hold one form definition and nothing after it.")
	}
	fv, err := s.deps.Forms.Publish(c.UserContext(), principalOf(c), &def)
	if err != nil {
		return err
	}
	return c.Status(fiber.StatusCreated).JSON(fv)
}

// handlePublishXLSForm handles "POST /v1/admin/forms/xlsform" with an
// .xlsx workbook in the XLSForm convention as the body.
//
// The publish handlers read the raw body: fiber's Ctx.Body would inflate
// a body sent with a Content-Encoding, without any size limit.
func (s *Server) handlePublishXLSForm(c *fiber.Ctx) error {
	def, err := forms.ImportXLSForm(bytes.NewReader(c.Request().Body()))
	if err != nil {
		return err
	}
	fv, err := s.deps.Forms.Publish(c.UserContext(), principalOf(c), def)
	if err != nil {
		return err
	}
	return c.Status(fiber.StatusCreated).JSON(fv)
}

// handleRetireForm handles "POST /v1/admin/forms/:id/:version/retire".
func (s *Server) handleRetireForm(c *fiber.Ctx) error {
	id, v, err := formParams(c)
	if err != nil {
		return err
	}
	if err := s.deps.Forms.Retire(c.UserContext(), principalOf(c), id, v); err != nil {
		return err
	}
	return c.JSON(fiber.Map{"id": id, "version": v, "status": "retired"})
}
