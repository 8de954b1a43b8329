package minio

import (
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/minio/minio-go/v7"

	"github.com/fieldsync/fieldsync/syncproto"
)

// TestTranslate checks the syncproto code and message MinIO's answers
// become at the package's edge; a full disk (507 XMinioStorageFull) must
// reach the phone as "unavailable, try later" with a message saying why,
// not as an internal error.
func TestTranslate(t *testing.T) {
	tests := []struct {
		name     string
		err      error
		code     string
		contains string
	}{
		{"storage full", minio.ErrorResponse{Code: "XMinioStorageFull", StatusCode: http.StatusInsufficientStorage}, syncproto.EUNAVAILABLE, "full"},
		{"507 without a code", minio.ErrorResponse{StatusCode: http.StatusInsufficientStorage}, syncproto.EUNAVAILABLE, "full"},
		{"not initialized", minio.ErrorResponse{Code: "XMinioServerNotInitialized", StatusCode: 503}, syncproto.EUNAVAILABLE, "unavailable"},
		{"no such key", minio.ErrorResponse{Code: minio.NoSuchKey, StatusCode: 404}, syncproto.ENOTFOUND, "No such object"},
		{"checksum", minio.ErrorResponse{Code: "XAmzContentChecksumMismatch", StatusCode: 400}, syncproto.EINVALID, "checksum"},
		{"internal error on a full disk", minio.ErrorResponse{Code: "InternalError", StatusCode: 500, Message: "write /data/x: no space left on device"}, syncproto.EUNAVAILABLE, "full"},
		{"below the free drive threshold", minio.ErrorResponse{Code: "XMinioAdminStorageFull", StatusCode: 400, Message: "Storage backend has reached its minimum free drive threshold. Please delete a few objects to proceed."}, syncproto.EUNAVAILABLE, "full"},
		{"internal error", minio.ErrorResponse{Code: "InternalError", StatusCode: 500}, syncproto.EUNAVAILABLE, "unavailable"},
		{"incomplete body", minio.ErrorResponse{Code: "IncompleteBody", StatusCode: 400, Message: "You did not provide the number of bytes specified by the Content-Length HTTP header."}, syncproto.EUNAVAILABLE, "unavailable"},
		{"bad gateway", minio.ErrorResponse{StatusCode: 502}, syncproto.EUNAVAILABLE, "unavailable"},
		{"other", errors.New("boom"), syncproto.EINTERNAL, "Internal error"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := translate("put", "k", tt.err)
			if got := syncproto.ErrorCode(err); got != tt.code {
				t.Errorf("code %q, want %q (%v)", got, tt.code, err)
			}
			if msg := syncproto.ErrorMessage(err); !strings.Contains(msg, tt.contains) {
				t.Errorf("message %q lacks %q", msg, tt.contains)
			}
		})
	}
}
