package mobiletest

import (
	"compress/gzip"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/fieldsync/fieldsync/mobile"
	"github.com/fieldsync/fieldsync/syncproto"
	"github.com/google/uuid"
)

// Handler serves the server over HTTP with the routes the phone's
// HTTPTransport uses (see mobile.HTTPTransport), errors as
// {"error":{"code","message","fields"}}.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/sync/info", func(w http.ResponseWriter, r *http.Request) {
		if _, ok := s.httpAuth(w, r); ok {
			writeJSON(w, http.StatusOK, s.Info())
		}
	})
	mux.HandleFunc("POST /v1/sync/push", func(w http.ResponseWriter, r *http.Request) {
		dev, ok := s.httpAuth(w, r)
		if !ok {
			return
		}
		var req syncproto.PushRequest
		if !readJSON(w, r, &req) {
			return
		}
		resp, err := s.Push(dev, &req)
		reply(w, resp, err)
	})
	mux.HandleFunc("POST /v1/sync/pull", func(w http.ResponseWriter, r *http.Request) {
		if _, ok := s.httpAuth(w, r); !ok {
			return
		}
		var req syncproto.PullRequest
		if !readJSON(w, r, &req) {
			return
		}
		resp, err := s.Pull(&req)
		reply(w, resp, err)
	})
	mux.HandleFunc("GET /v1/blobs/{sha}", func(w http.ResponseWriter, r *http.Request) {
		if _, ok := s.httpAuth(w, r); ok {
			writeJSON(w, http.StatusOK, s.BlobStatus(r.PathValue("sha")))
		}
	})
	mux.HandleFunc("PUT /v1/blobs/{sha}/chunks/{off}", func(w http.ResponseWriter, r *http.Request) {
		if _, ok := s.httpAuth(w, r); !ok {
			return
		}
		off, err := strconv.ParseInt(r.PathValue("off"), 10, 64)
		if err != nil || off < 0 {
			writeError(w, syncproto.Errorf(syncproto.EINVALID, "Bad offset."))
			return
		}
		data, _ := io.ReadAll(r.Body)
		st, err := s.PutChunk(r.PathValue("sha"), off, data)
		reply(w, st, err)
	})
	mux.HandleFunc("POST /v1/blobs/{sha}/finish", func(w http.ResponseWriter, r *http.Request) {
		if _, ok := s.httpAuth(w, r); !ok {
			return
		}
		var req struct {
			Size        int64  `json:"size"`
			ContentType string `json:"content_type"`
		}
		if !readJSON(w, r, &req) {
			return
		}
		st, err := s.FinishBlob(r.PathValue("sha"), req.Size, req.ContentType)
		reply(w, st, err)
	})
	mux.HandleFunc("PUT /v1/blobs/{sha}", func(w http.ResponseWriter, r *http.Request) {
		if _, ok := s.httpAuth(w, r); !ok {
			return
		}
		data, _ := io.ReadAll(r.Body)
		st, err := s.PutBlob(r.PathValue("sha"), r.Header.Get("Content-Type"), data)
		reply(w, st, err)
	})
	mux.HandleFunc("POST /v1/devices/enroll", func(w http.ResponseWriter, r *http.Request) {
		var req mobile.EnrollRequest
		if !readJSON(w, r, &req) {
			return
		}
		resp, err := s.Enroll(req)
		reply(w, resp, err)
	})
	return mux
}

func (s *Server) httpAuth(w http.ResponseWriter, r *http.Request) (uuid.UUID, bool) {
	tok, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	dev, err := s.auth(tok)
	if err != nil {
		writeError(w, err)
		return uuid.Nil, false
	}
	return dev, true
}

func readJSON(w http.ResponseWriter, r *http.Request, v any) bool {
	var body io.Reader = r.Body
	if r.Header.Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(r.Body)
		if err != nil {
			writeError(w, syncproto.Errorf(syncproto.EINVALID, "Bad gzip body."))
			return false
		}
		body = zr
	}
	if err := json.NewDecoder(body).Decode(v); err != nil {
		writeError(w, syncproto.Errorf(syncproto.EINVALID, "Invalid JSON body."))
		return false
	}
	return true
}

func reply(w http.ResponseWriter, v any, err error) {
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, v)
}

var statuses = map[string]int{
	syncproto.EINVALID: 400, syncproto.EPROTOCOL: 400, syncproto.EUNAUTHORIZED: 401, syncproto.EFORBIDDEN: 403,
	syncproto.ENOTFOUND: 404, syncproto.ECONFLICT: 409, syncproto.EOPREUSED: 409, syncproto.ESTALE: 410,
	syncproto.ETOOLARGE: 413, syncproto.EUNSUPPORTED: 415, syncproto.EUNAVAILABLE: 503,
}

func writeError(w http.ResponseWriter, err error) {
	code := syncproto.ErrorCode(err)
	st, ok := statuses[code]
	if !ok {
		st = 500
	}
	e, _ := err.(*syncproto.Error)
	if e == nil {
		e = syncproto.Errorf(syncproto.EINTERNAL, "Internal error.")
	}
	writeJSON(w, st, map[string]any{"error": e})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := syncproto.Marshal(v)
	if err != nil {
		status, b = 500, []byte(`{"error":{"code":"internal","message":"Internal error."}}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write(b)
}
