package mobile

import (
	"bytes"
	"cmp"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/fieldsync/fieldsync/syncproto"
)

// HTTPTransport is the Transport over HTTP (net/http) against the routes
// of the server's API:
//
//	GET  /v1/sync/info                     → syncproto.Info
//	POST /v1/sync/push                     syncproto.PushRequest → PushResponse
//	POST /v1/sync/pull                     syncproto.PullRequest → PullResponse
//	GET  /v1/blobs/{sha256}                → BlobStatus
//	PUT  /v1/blobs/{sha256}/chunks/{offset} raw bytes → BlobStatus
//	POST /v1/blobs/{sha256}/finish         {size, content_type} → BlobStatus
//	PUT  /v1/blobs/{sha256}                raw bytes → BlobStatus
//	POST /v1/devices/enroll                EnrollRequest → EnrollResponse
//
// Requests carry "Authorization: Bearer <device token>". Errors are read
// from {"error":{"code","message","fields"}} into *syncproto.Error; an
// answer without that body gets a code from its HTTP status.
type HTTPTransport struct {
	// BaseURL is the server's address, e.g. "https://sync.example.cn".
	BaseURL string
	// Token returns the device token; nil or "" sends no Authorization.
	Token func() string
	// Client is the HTTP client; nil means a client with a 60 s timeout.
	Client *http.Client
	// GzipRequests compresses push bodies (Content-Encoding: gzip). Pulls
	// are answered compressed whenever the server supports it: net/http
	// asks for gzip and decompresses transparently.
	GzipRequests bool
}

var _ Transport = (*HTTPTransport)(nil)

var defaultClient = &http.Client{Timeout: 60 * time.Second}

func (t *HTTPTransport) client() *http.Client {
	if t.Client != nil {
		return t.Client
	}
	return defaultClient
}

// do sends one request and decodes a JSON answer into out (when not nil).
func (t *HTTPTransport) do(ctx context.Context, method, path string, body io.Reader, contentType, encoding string, out any) error {
	u := strings.TrimRight(t.BaseURL, "/") + path
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return fmt.Errorf("http: %s %s: %w", method, path, err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if encoding != "" {
		req.Header.Set("Content-Encoding", encoding)
	}
	req.Header.Set("Accept", "application/json")
	if t.Token != nil {
		if tok := t.Token(); tok != "" {
			req.Header.Set("Authorization", "Bearer "+tok)
		}
	}
	resp, err := t.client().Do(req)
	if err != nil {
		return fmt.Errorf("http: %s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 256<<20))
	if err != nil {
		return fmt.Errorf("http: %s %s: read answer: %w", method, path, err)
	}
	if resp.StatusCode >= 300 {
		return decodeError(resp.StatusCode, data)
	}
	if out == nil {
		return nil
	}
	d := json.NewDecoder(bytes.NewReader(data))
	d.UseNumber()
	if err := d.Decode(out); err != nil {
		return fmt.Errorf("http: %s %s: decode answer: %w", method, path, err)
	}
	return nil
}

func (t *HTTPTransport) doJSON(ctx context.Context, method, path string, in, out any) error {
	b, err := syncproto.Marshal(in)
	if err != nil {
		return fmt.Errorf("http: %s %s: encode: %w", method, path, err)
	}
	enc := ""
	if t.GzipRequests && len(b) > 1024 {
		var buf bytes.Buffer
		zw := gzip.NewWriter(&buf)
		zw.Write(b)
		zw.Close()
		b, enc = buf.Bytes(), "gzip"
	}
	return t.do(ctx, method, path, bytes.NewReader(b), "application/json", enc, out)
}

// statusCodes maps HTTP statuses to protocol codes for answers that carry
// no error body (a proxy's 502, an empty 401).
var statusCodes = map[int]string{
	http.StatusBadRequest:            syncproto.EINVALID,
	http.StatusUnauthorized:          syncproto.EUNAUTHORIZED,
	http.StatusForbidden:             syncproto.EFORBIDDEN,
	http.StatusNotFound:              syncproto.ENOTFOUND,
	http.StatusConflict:              syncproto.ECONFLICT,
	http.StatusGone:                  syncproto.ESTALE,
	http.StatusRequestEntityTooLarge: syncproto.ETOOLARGE,
	http.StatusUnsupportedMediaType:  syncproto.EUNSUPPORTED,
	http.StatusServiceUnavailable:    syncproto.EUNAVAILABLE,
	http.StatusBadGateway:            syncproto.EUNAVAILABLE,
	http.StatusGatewayTimeout:        syncproto.EUNAVAILABLE,
	http.StatusTooManyRequests:       syncproto.EUNAVAILABLE,
}

func decodeError(status int, body []byte) error {
	var env struct {
		Error *syncproto.Error `json:"error"`
	}
	if json.Unmarshal(body, &env) == nil && env.Error != nil && env.Error.Code != "" {
		return env.Error
	}
	code, ok := statusCodes[status]
	if !ok {
		code = syncproto.EINTERNAL
		if status >= 500 {
			code = syncproto.EUNAVAILABLE
		}
	}
	return syncproto.Errorf(code, "The server answered %d %s.", status, http.StatusText(status))
}

// Info implements Transport.
func (t *HTTPTransport) Info(ctx context.Context) (syncproto.Info, error) {
	var out syncproto.Info
	err := t.do(ctx, http.MethodGet, "/v1/sync/info", nil, "", "", &out)
	return out, err
}

// Push implements Transport.
func (t *HTTPTransport) Push(ctx context.Context, req *syncproto.PushRequest) (*syncproto.PushResponse, error) {
	var out syncproto.PushResponse
	if err := t.doJSON(ctx, http.MethodPost, "/v1/sync/push", req, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Pull implements Transport.
func (t *HTTPTransport) Pull(ctx context.Context, req *syncproto.PullRequest) (*syncproto.PullResponse, error) {
	var out syncproto.PullResponse
	if err := t.doJSON(ctx, http.MethodPost, "/v1/sync/pull", req, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

func blobPath(sha string) string { return "/v1/blobs/" + url.PathEscape(sha) }

// BlobStatus implements Transport.
func (t *HTTPTransport) BlobStatus(ctx context.Context, sha string) (BlobStatus, error) {
	var out BlobStatus
	err := t.do(ctx, http.MethodGet, blobPath(sha), nil, "", "", &out)
	return out, err
}

// PutChunk implements Transport.
func (t *HTTPTransport) PutChunk(ctx context.Context, sha string, offset int64, data []byte) (BlobStatus, error) {
	var out BlobStatus
	err := t.do(ctx, http.MethodPut, blobPath(sha)+"/chunks/"+strconv.FormatInt(offset, 10), bytes.NewReader(data), "application/octet-stream", "", &out)
	return out, err
}

// FinishBlob implements Transport.
func (t *HTTPTransport) FinishBlob(ctx context.Context, sha string, size int64, contentType string) (BlobStatus, error) {
	var out BlobStatus
	in := map[string]any{"size": size, "content_type": contentType}
	err := t.doJSON(ctx, http.MethodPost, blobPath(sha)+"/finish", in, &out)
	return out, err
}

// PutBlob implements Transport.
func (t *HTTPTransport) PutBlob(ctx context.Context, sha, contentType string, data []byte) (BlobStatus, error) {
	var out BlobStatus
	if contentType == "" {
		contentType = "application/octet-stream"
	}
	err := t.do(ctx, http.MethodPut, blobPath(sha), bytes.NewReader(data), contentType, "", &out)
	return out, err
}

// Enroll implements Transport. It accepts the device's fields either at
// the top level of the answer or under "device" and "inspector".
func (t *HTTPTransport) Enroll(ctx context.Context, req EnrollRequest) (EnrollResponse, error) {
	var raw struct {
		EnrollResponse
		Device *struct {
			ID          string `json:"device_id"`
			InspectorID string `json:"inspector_id"`
			UserID      string `json:"user_id"`
		} `json:"device"`
		Inspector *struct {
			ID     string `json:"id"`
			UserID string `json:"user_id"`
			Name   string `json:"name"`
		} `json:"inspector"`
	}
	if err := t.doJSON(ctx, http.MethodPost, "/v1/devices/enroll", req, &raw); err != nil {
		return EnrollResponse{}, err
	}
	out := raw.EnrollResponse
	if d := raw.Device; d != nil {
		out.DeviceID = cmp.Or(out.DeviceID, d.ID)
		out.InspectorID = cmp.Or(out.InspectorID, d.InspectorID)
		out.UserID = cmp.Or(out.UserID, d.UserID)
	}
	if in := raw.Inspector; in != nil {
		out.InspectorID = cmp.Or(out.InspectorID, in.ID)
		out.UserID = cmp.Or(out.UserID, in.UserID)
		out.Name = cmp.Or(out.Name, in.Name)
	}
	if out.Token == "" {
		return EnrollResponse{}, syncproto.Errorf(syncproto.EINTERNAL, "The enrollment answer has no token.")
	}
	return out, nil
}
