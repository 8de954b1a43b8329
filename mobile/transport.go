package mobile

import (
	"context"

	"github.com/fieldsync/fieldsync/client"
	"github.com/fieldsync/fieldsync/syncproto"
)

// Transport is how the engine reaches the server. Every method is one
// request; none retries. Errors from the server are *syncproto.Error with
// the server's code; a request that never got an answer (no network, a
// timeout, a connection reset) is any other error, and the engine treats
// both the same way: the step is repeated on the next Sync.
type Transport interface {
	// Info returns the server's protocol, epoch and limits.
	Info(ctx context.Context) (syncproto.Info, error)
	// Push sends one batch of changes and returns one result per change,
	// in order.
	Push(ctx context.Context, req *syncproto.PushRequest) (*syncproto.PushResponse, error)
	// Pull returns the next page of records after req.Cursor. A cursor the
	// server no longer knows gets ESTALE.
	Pull(ctx context.Context, req *syncproto.PullRequest) (*syncproto.PullResponse, error)
	// BlobStatus says how much of a photo the server holds.
	BlobStatus(ctx context.Context, sha256 string) (BlobStatus, error)
	// PutChunk stores data at offset of a partial upload. Offset must not
	// be beyond what the server holds (BlobStatus.Received).
	PutChunk(ctx context.Context, sha256 string, offset int64, data []byte) (BlobStatus, error)
	// FinishBlob completes a chunked upload; the server checks the size
	// and the hash and answers complete, or an error.
	FinishBlob(ctx context.Context, sha256 string, size int64, contentType string) (BlobStatus, error)
	// PutBlob uploads a whole photo in one request.
	PutBlob(ctx context.Context, sha256, contentType string, data []byte) (BlobStatus, error)
	// Enroll exchanges a one-time code for a device token.
	Enroll(ctx context.Context, req EnrollRequest) (EnrollResponse, error)
}

// Blob states reported by the server.
const (
	BlobMissing  = client.BlobMissing
	BlobPartial  = client.BlobPartial
	BlobComplete = client.BlobComplete
)

// BlobStatus is the server's view of one photo: the body of
// GET /v1/blobs/{sha256}.
type BlobStatus = client.BlobStatus

// EnrollRequest is the body of POST /v1/devices/enroll.
type EnrollRequest = client.EnrollRequest

// EnrollResponse is the answer to an enrollment.
type EnrollResponse = client.EnrollResponse
