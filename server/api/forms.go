package api

import (
	"archive/zip"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"mime"
	"mime/multipart"
	"path"
	"slices"
	"strconv"
	"strings"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/utils"

	"github.com/fieldsync/fieldsync/forms"
	"github.com/fieldsync/fieldsync/server"
	"github.com/fieldsync/fieldsync/syncproto"
)

// routesForms registers the form routes: everyone authenticated reads
// form versions; the office publishes (as JSON or as an XLSForm workbook)
// and retires them. Phones also receive published versions on pull.
func (s *Server) routesForms() {
	s.app.Get("/v1/forms", s.authenticated, s.handleListForms)
	s.app.Get("/v1/forms/:id/:version", s.authenticated, s.handleGetForm)
	s.app.Post("/v1/admin/forms", s.adminOnly, s.body(s.cfg.BodyLimit), s.handlePublishForm)
	s.app.Post("/v1/admin/forms/xlsform", s.adminOnly, s.body(s.cfg.BodyLimit), s.handlePublishXLSForm)
	s.app.Post("/v1/admin/forms/xlsform/preview", s.adminOnly, s.body(s.cfg.BodyLimit), s.handlePreviewXLSForm)
	s.app.Post("/v1/admin/forms/:id/:version/retire", s.adminOnly, s.body(smallBodyMax), s.handleRetireForm)
	s.app.Get("/v1/admin/forms/:id/:version/xlsform", s.adminOnly, s.handleExportXLSForm)
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
	d := json.NewDecoder(bytes.NewReader(requestBody(c)))
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

// xlsformAnswer is the answer of the XLSForm routes: the form version
// (as FormVersion, inline), what publishing did, and the import's
// warnings; a preview also shows the definition.
type xlsformAnswer struct {
	server.PublishResult
	Warnings   []forms.XLSFormProblem `json:"warnings"`
	Media      map[string]bool        `json:"media,omitempty"`
	Definition *forms.Definition      `json:"definition,omitempty"`
}

// xlsformRefusal is the 400 answer to a workbook with problems: the usual
// error (fields keyed "survey[7].type"), and every problem and warning
// with its sheet, row, column and message in Chinese and English.
type xlsformRefusal struct {
	Error    *syncproto.Error       `json:"error"`
	Problems []forms.XLSFormProblem `json:"problems"`
	Warnings []forms.XLSFormProblem `json:"warnings"`
}

// handlePublishXLSForm handles "POST /v1/admin/forms/xlsform": an .xlsx
// workbook in the XLSForm convention as the body, or a multipart form
// with the workbook (part "workbook") and the files published with it
// (parts "files": CSV and XML choice lists, pulldata tables, media).
func (s *Server) handlePublishXLSForm(c *fiber.Ctx) error { return s.xlsform(c, false) }

// handlePreviewXLSForm handles "POST /v1/admin/forms/xlsform/preview":
// what publishing the workbook would do, without writing anything.
func (s *Server) handlePreviewXLSForm(c *fiber.Ctx) error { return s.xlsform(c, true) }

func (s *Server) xlsform(c *fiber.Ctx, preview bool) error {
	wb, opts, err := xlsformRequest(c)
	if err != nil {
		return err
	}
	res, err := forms.ImportXLSFormFile(bytes.NewReader(wb), opts)
	if err != nil {
		var xe *forms.XLSFormError
		if errors.As(err, &xe) {
			var pe *syncproto.Error
			errors.As(err, &pe)
			return c.Status(fiber.StatusBadRequest).JSON(xlsformRefusal{Error: pe, Problems: xe.Problems, Warnings: orEmpty(xe.Warnings)})
		}
		return err
	}
	ans := xlsformAnswer{Warnings: res.Warnings, Media: res.Media}
	status := fiber.StatusCreated
	if preview {
		ans.PublishResult, err = s.deps.Forms.Preview(c.UserContext(), principalOf(c), res.Definition)
		ans.Definition, status = res.Definition, fiber.StatusOK
	} else {
		ans.PublishResult, err = s.deps.Forms.PublishResult(c.UserContext(), principalOf(c), res.Definition)
	}
	if err != nil {
		return err
	}
	return c.Status(status).JSON(ans)
}

func orEmpty(ps []forms.XLSFormProblem) []forms.XLSFormProblem {
	if ps == nil {
		return []forms.XLSFormProblem{}
	}
	return ps
}

// xlsformRequest reads the workbook and the files published with it. A
// raw body is the workbook, named by the query parameter file_name (the
// form id defaults from it). A multipart body is parsed from the bytes
// the route read within its limit (requestBody): fiber's MultipartForm
// would read the body again, without a limit, to memory and files.
func xlsformRequest(c *fiber.Ctx) ([]byte, forms.XLSFormOptions, error) {
	opts := forms.XLSFormOptions{FileName: utils.CopyString(c.Query("file_name"))}
	body := requestBody(c)
	mt, params, err := mime.ParseMediaType(c.Get(fiber.HeaderContentType))
	if err != nil || mt != fiber.MIMEMultipartForm {
		return body, opts, nil
	}
	// The whole form is in memory already: parse it there, never to
	// temporary files.
	mf, err := multipart.NewReader(bytes.NewReader(body), params["boundary"]).ReadForm(int64(len(body)) + 1<<20)
	if err != nil {
		return nil, opts, syncproto.Errorf(syncproto.EINVALID, "The body is not a valid multipart form: %v.", err)
	}
	defer mf.RemoveAll()
	var wb []byte
	opts.Files = map[string][]byte{}
	for field, headers := range mf.File {
		for _, h := range headers {
			b, err := readPart(h)
			if err != nil {
				return nil, opts, err
			}
			name := path.Base(strings.ReplaceAll(h.Filename, "\\", "/"))
			if field == "workbook" {
				if wb != nil {
					return nil, opts, syncproto.FieldError("The form has two workbooks.", map[string]string{"workbook": "send one workbook"})
				}
				wb, opts.FileName = b, name
				continue
			}
			if _, dup := opts.Files[name]; dup {
				return nil, opts, syncproto.FieldError("Two files have the same name.", map[string]string{"files": name + " is sent twice"})
			}
			opts.Files[name] = b
		}
	}
	if wb == nil {
		return nil, opts, syncproto.FieldError("The form has no workbook.", map[string]string{"workbook": "send the .xlsx workbook in the part \"workbook\""})
	}
	return wb, opts, nil
}

func readPart(h *multipart.FileHeader) ([]byte, error) {
	f, err := h.Open()
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(f)
}

// handleExportXLSForm handles "GET /v1/admin/forms/:id/:version/xlsform":
// a questionnaire version as an XLSForm workbook that imports to the same
// definition; with the CSV files its pulldata() reads, a zip archive of
// the workbook and the files.
func (s *Server) handleExportXLSForm(c *fiber.Ctx) error {
	id, v, err := formParams(c)
	if err != nil {
		return err
	}
	def, _, err := s.deps.Forms.Get(c.UserContext(), id, v)
	if err != nil {
		return err
	}
	ex, err := forms.ExportXLSForm(def)
	if err != nil {
		return syncproto.Errorf(syncproto.EINVALID, "Form %s version %d cannot be written as XLSForm: %v.", id, v, err)
	}
	name := fmt.Sprintf("%s-v%d.xlsx", id, v)
	if len(ex.Files) == 0 {
		c.Set(fiber.HeaderContentType, xlsxContentType)
		c.Set(fiber.HeaderContentDisposition, `attachment; filename="`+name+`"`)
		return c.Send(ex.Workbook)
	}
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	files := map[string][]byte{name: ex.Workbook}
	for k, b := range ex.Files {
		files[k] = b
	}
	for _, k := range slices.Sorted(maps.Keys(files)) {
		w, err := zw.Create(k)
		if err != nil {
			return err
		}
		if _, err := w.Write(files[k]); err != nil {
			return err
		}
	}
	if err := zw.Close(); err != nil {
		return err
	}
	c.Set(fiber.HeaderContentType, "application/zip")
	c.Set(fiber.HeaderContentDisposition, fmt.Sprintf(`attachment; filename="%s-v%d.zip"`, id, v))
	return c.Send(buf.Bytes())
}

// xlsxContentType is the media type of .xlsx workbooks.
const xlsxContentType = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"

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
