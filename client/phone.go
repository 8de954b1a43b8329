package client

import (
	"cmp"
	"context"
	"net/http"
	"net/url"
	"strconv"

	"github.com/google/uuid"

	"github.com/fieldsync/fieldsync/syncproto"
)

// The phone's routes:
//
//	GET  /v1/sync/info                      → syncproto.Info
//	POST /v1/sync/push                      syncproto.PushRequest → PushResponse
//	POST /v1/sync/pull                      syncproto.PullRequest → PullResponse
//	GET  /v1/blobs/{sha256}                 → BlobStatus
//	PUT  /v1/blobs/{sha256}/chunks/{offset} raw bytes → BlobStatus
//	POST /v1/blobs/{sha256}/finish          {size, content_type} → BlobStatus
//	PUT  /v1/blobs/{sha256}                 raw bytes → BlobStatus
//	POST /v1/devices/enroll                 EnrollRequest → EnrollResponse

// Blob states reported by the server.
const (
	BlobMissing  = "missing"
	BlobPartial  = "partial"
	BlobComplete = "complete"
)

// BlobStatus is the server's view of one photo: the body of
// GET /v1/blobs/{sha256} (the Upload schema).
type BlobStatus struct {
	SHA256   string `json:"sha256,omitempty"`
	State    string `json:"state"`    // BlobMissing, BlobPartial or BlobComplete
	Received int64  `json:"received"` // bytes the server holds
	Size     int64  `json:"size,omitempty"`
}

// EnrollRequest is the body of POST /v1/devices/enroll.
type EnrollRequest struct {
	Code       string    `json:"code"`
	DeviceID   uuid.UUID `json:"device_id"`
	DeviceName string    `json:"device_name"`
}

// EnrollResponse is the answer to an enrollment.
type EnrollResponse struct {
	Token       string `json:"token"`
	DeviceID    string `json:"device_id,omitempty"`
	InspectorID string `json:"inspector_id,omitempty"`
	UserID      string `json:"user_id,omitempty"`
	Name        string `json:"name,omitempty"`
}

// Info returns the server's protocol, epoch and limits.
func (c *Client) Info(ctx context.Context) (syncproto.Info, error) {
	var out syncproto.Info
	err := c.Do(ctx, http.MethodGet, "/v1/sync/info", nil, &out)
	return out, err
}

// Push sends one batch of changes and returns one result per change.
func (c *Client) Push(ctx context.Context, req *syncproto.PushRequest) (*syncproto.PushResponse, error) {
	var out syncproto.PushResponse
	if err := c.Do(ctx, http.MethodPost, "/v1/sync/push", req, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Pull returns the next page of records after req.Cursor.
func (c *Client) Pull(ctx context.Context, req *syncproto.PullRequest) (*syncproto.PullResponse, error) {
	var out syncproto.PullResponse
	if err := c.Do(ctx, http.MethodPost, "/v1/sync/pull", req, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

func blobPath(sha string) string { return "/v1/blobs/" + url.PathEscape(sha) }

// BlobStatus says how much of a photo the server holds.
func (c *Client) BlobStatus(ctx context.Context, sha string) (BlobStatus, error) {
	var out BlobStatus
	err := c.Do(ctx, http.MethodGet, blobPath(sha), nil, &out)
	return out, err
}

// PutChunk stores data at offset of a partial upload.
func (c *Client) PutChunk(ctx context.Context, sha string, offset int64, data []byte) (BlobStatus, error) {
	return c.putBytes(ctx, blobPath(sha)+"/chunks/"+strconv.FormatInt(offset, 10), "application/octet-stream", data)
}

// FinishBlob completes a chunked upload.
func (c *Client) FinishBlob(ctx context.Context, sha string, size int64, contentType string) (BlobStatus, error) {
	var out BlobStatus
	in := map[string]any{"size": size, "content_type": contentType}
	err := c.Do(ctx, http.MethodPost, blobPath(sha)+"/finish", in, &out)
	return out, err
}

// PutBlob uploads a whole photo in one request.
func (c *Client) PutBlob(ctx context.Context, sha, contentType string, data []byte) (BlobStatus, error) {
	return c.putBytes(ctx, blobPath(sha), cmp.Or(contentType, "application/octet-stream"), data)
}

func (c *Client) putBytes(ctx context.Context, path, contentType string, data []byte) (BlobStatus, error) {
	var out BlobStatus
	if data == nil {
		data = []byte{}
	}
	b, _, err := c.Raw(ctx, http.MethodPut, path, contentType, data)
	if err == nil {
		err = decodeAnswer(http.MethodPut, path, b, &out)
	}
	return out, err
}

// Enroll exchanges a one-time code for a device token. It accepts the
// device's fields either at the top level of the answer or under "device"
// and "inspector".
func (c *Client) Enroll(ctx context.Context, req EnrollRequest) (EnrollResponse, error) {
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
	if err := c.Do(ctx, http.MethodPost, "/v1/devices/enroll", req, &raw); err != nil {
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
