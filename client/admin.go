package client

import (
	"bytes"
	"context"
	"encoding/json"
	"mime/multipart"
	"net/http"
	"net/url"
	"time"
)

// The office's routes (bearer admin token). Answers fieldsyncctl only
// shows are returned as the server sent them (json.RawMessage).

// Inspector is the body of PUT /v1/admin/inspectors/{id} and its answer.
type Inspector struct {
	ID     string   `json:"id,omitempty"` // the path's; ignored in requests
	UserID string   `json:"user_id"`
	Name   string   `json:"name"`
	Phone  string   `json:"phone,omitempty"`
	Roles  []string `json:"roles,omitempty"` // "inspector" is always added
	Active bool     `json:"active"`
}

// Assignment is the body of PUT /v1/admin/assignments/{id}: a school
// with an inspector from Start to End (inclusive, YYYY-MM-DD; "" is open).
type Assignment struct {
	ID          string `json:"id,omitempty"` // the path's; ignored in requests
	InspectorID string `json:"inspector_id"`
	SchoolID    string `json:"school_id"`
	Role        string `json:"role,omitempty"` // "" is responsibility
	Start       string `json:"start_date"`
	End         string `json:"end_date,omitempty"`
}

// EnrollmentCode is a one-time code a phone enrolls with.
type EnrollmentCode struct {
	Code        string    `json:"code"`
	InspectorID string    `json:"inspector_id"`
	ExpiresAt   time.Time `json:"expires_at"`
}

// SignedURL is a time-limited link to a photo's bytes.
type SignedURL struct {
	URL       string    `json:"url"`
	ExpiresAt time.Time `json:"expires_at"`
}

// File is one file of an XLSForm publication: the workbook first, then
// the media and CSV files published with it.
type File struct {
	Name string
	Data []byte
}

func pathID(s string) string { return url.PathEscape(s) }

// PutInspector creates or replaces the inspector id.
func (c *Client) PutInspector(ctx context.Context, id string, in Inspector) (Inspector, error) {
	var out Inspector
	err := c.Do(ctx, http.MethodPut, "/v1/admin/inspectors/"+pathID(id), in, &out)
	return out, err
}

// PutAssignment creates or replaces the assignment id.
func (c *Client) PutAssignment(ctx context.Context, id string, a Assignment) (Assignment, error) {
	var out Assignment
	err := c.Do(ctx, http.MethodPut, "/v1/admin/assignments/"+pathID(id), a, &out)
	return out, err
}

// EnrollmentCode makes a one-time enrollment code for an inspector (one
// per phone).
func (c *Client) EnrollmentCode(ctx context.Context, inspectorID string) (EnrollmentCode, error) {
	var out EnrollmentCode
	err := c.Do(ctx, http.MethodPost, "/v1/admin/inspectors/"+pathID(inspectorID)+"/enrollment-codes", nil, &out)
	return out, err
}

// NewInspector creates an active inspector, assigns the schools from
// start (YYYY-MM-DD, open-ended; the assignment of a school gets the id
// assignmentID(school)) and returns a one-time enrollment code.
func (c *Client) NewInspector(ctx context.Context, id string, in Inspector, schools []string, start string, assignmentID func(school string) string) (EnrollmentCode, error) {
	in.Active = true
	if _, err := c.PutInspector(ctx, id, in); err != nil {
		return EnrollmentCode{}, err
	}
	for _, s := range schools {
		if _, err := c.PutAssignment(ctx, assignmentID(s), Assignment{InspectorID: id, SchoolID: s, Role: "responsibility", Start: start}); err != nil {
			return EnrollmentCode{}, err
		}
	}
	return c.EnrollmentCode(ctx, id)
}

// Revoke revokes a device's token.
func (c *Client) Revoke(ctx context.Context, deviceID string) (json.RawMessage, error) {
	return c.rawJSON(ctx, http.MethodPost, "/v1/admin/devices/"+pathID(deviceID)+"/revoke", nil)
}

// Conflicts lists the conflicts the caller may see; status "" is the
// server's default (open).
func (c *Client) Conflicts(ctx context.Context, status string) (json.RawMessage, error) {
	q := ""
	if status != "" {
		q = "?status=" + url.QueryEscape(status)
	}
	return c.rawJSON(ctx, http.MethodGet, "/v1/conflicts"+q, nil)
}

// Resolve resolves the conflict of a record's field ("RECORD/FIELD") with
// the chosen value.
func (c *Client) Resolve(ctx context.Context, recordField string, value json.RawMessage) (json.RawMessage, error) {
	return c.rawJSON(ctx, http.MethodPost, "/v1/conflicts/"+recordField+"/resolve", map[string]any{"value": value})
}

// PublishForm publishes a form definition given as JSON.
func (c *Client) PublishForm(ctx context.Context, definition json.RawMessage) (json.RawMessage, error) {
	return c.rawJSON(ctx, http.MethodPost, "/v1/admin/forms", definition)
}

// PublishXLSForm publishes an XLSForm workbook (files[0]) with the files
// it uses; dryRun asks the preview route, which writes nothing. A
// workbook with problems is a *Refusal.
func (c *Client) PublishXLSForm(ctx context.Context, files []File, dryRun bool) (json.RawMessage, error) {
	var body bytes.Buffer
	w := multipart.NewWriter(&body)
	for i, f := range files {
		field := "files"
		if i == 0 {
			field = "workbook"
		}
		part, err := w.CreateFormFile(field, f.Name)
		if err != nil {
			return nil, err
		}
		if _, err := part.Write(f.Data); err != nil {
			return nil, err
		}
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	path := "/v1/admin/forms/xlsform"
	if dryRun {
		path += "/preview"
	}
	b, _, err := c.Raw(ctx, http.MethodPost, path, w.FormDataContentType(), body.Bytes())
	return b, err
}

// ExportXLSForm returns a questionnaire version as an XLSForm workbook,
// or a zip archive with its CSV files, and the answer's Content-Type.
func (c *Client) ExportXLSForm(ctx context.Context, id, version string) ([]byte, string, error) {
	b, h, err := c.Raw(ctx, http.MethodGet, "/v1/admin/forms/"+pathID(id)+"/"+pathID(version)+"/xlsform", "", nil)
	if err != nil {
		return nil, "", err
	}
	return b, h.Get("Content-Type"), nil
}

// RetireForm retires a form version: phones stop offering it.
func (c *Client) RetireForm(ctx context.Context, id, version string) (json.RawMessage, error) {
	return c.rawJSON(ctx, http.MethodPost, "/v1/admin/forms/"+pathID(id)+"/"+pathID(version)+"/retire", nil)
}

// BlobURL returns a time-limited link to a photo's bytes.
func (c *Client) BlobURL(ctx context.Context, sha string) (SignedURL, error) {
	var out SignedURL
	err := c.Do(ctx, http.MethodGet, blobPath(sha)+"/url", nil, &out)
	return out, err
}

func (c *Client) rawJSON(ctx context.Context, method, path string, in any) (json.RawMessage, error) {
	var out json.RawMessage
	err := c.Do(ctx, method, path, in, &out)
	return out, err
}

// Account is an office account (POST /v1/admin/accounts).
type Account struct {
	ID       string   `json:"id,omitempty"`
	Login    string   `json:"login"`
	Name     string   `json:"name"`
	Password string   `json:"password,omitempty"`
	Roles    []string `json:"roles"`
	Zones    []string `json:"zones,omitempty"`
	Schools  []string `json:"schools,omitempty"`
}

// CreateAccount creates an office account that signs in to the console.
func (c *Client) CreateAccount(ctx context.Context, a Account) (Account, error) {
	var out Account
	err := c.Do(ctx, http.MethodPost, "/v1/admin/accounts", a, &out)
	return out, err
}

// AuditReport is the answer of GET /v1/admin/audit/verify.
type AuditReport struct {
	OK      bool   `json:"ok"`
	Checked int64  `json:"checked"`
	Broken  int64  `json:"broken_seq,omitempty"`
	Reason  string `json:"reason,omitempty"`
	Last    string `json:"last_hash,omitempty"`
}

// VerifyAudit walks the audit log's hash chain on the server and names
// the first broken or missing link.
func (c *Client) VerifyAudit(ctx context.Context) (AuditReport, error) {
	var out AuditReport
	err := c.Do(ctx, http.MethodGet, "/v1/admin/audit/verify", nil, &out)
	return out, err
}

// RebuildReadModel rebuilds the console's read model from the change log
// and returns what it read.
func (c *Client) RebuildReadModel(ctx context.Context) (json.RawMessage, error) {
	return c.rawJSON(ctx, http.MethodPost, "/v1/admin/read-model/rebuild", struct{}{})
}
