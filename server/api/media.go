package api

import (
	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/utils"

	"github.com/fieldsync/fieldsync/server/media"
)

// routesMedia registers the photo routes. A phone uploads a photo after
// the record that refers to it:
//
//	GET  /v1/blobs/:sha256                   what the server holds: missing, partial {received}, complete
//	PUT  /v1/blobs/:sha256/chunks/:offset    one chunk, the raw bytes as the body
//	POST /v1/blobs/:sha256/finish            {size, content_type}: check and store the photo
//	PUT  /v1/blobs/:sha256                   the whole photo in one request (good networks)
//	GET  /v1/blobs/:sha256/url?variant=V     a presigned link: V is original (default), 320 or 1280
//	GET  /v1/records/:id/photos?scope=S      the photos a record (of school S) expects, received and missing
//
// Every upload answer is the upload's state (media.Upload), so the phone
// always knows the offset to go on from. When MinIO is down, photo calls
// answer 503 with Retry-After (EUNAVAILABLE) while record pushes go on.
func (s *Server) routesMedia() {
	s.app.Get("/v1/blobs/:sha256", s.authenticated, s.handleBlobStatus)
	s.app.Put("/v1/blobs/:sha256/chunks/:offset", s.authenticated, s.body(s.chunkMax), s.handlePutChunk)
	s.app.Post("/v1/blobs/:sha256/finish", s.authenticated, s.body(smallBodyMax), s.handleFinishBlob)
	s.app.Put("/v1/blobs/:sha256", s.authenticated, s.body(s.blobMax), s.handlePutBlob)
	s.app.Get("/v1/blobs/:sha256/url", s.authenticated, s.handleBlobURL)
	s.app.Get("/v1/records/:id/photos", s.authenticated, s.handleRecordPhotos)
}

// shaParam returns the :sha256 path parameter, copied: fiber reuses its
// memory after the handler returns.
func shaParam(c *fiber.Ctx) string { return utils.CopyString(c.Params("sha256")) }

// handleBlobStatus handles "GET /v1/blobs/:sha256".
func (s *Server) handleBlobStatus(c *fiber.Ctx) error {
	u, err := s.deps.Media.Status(c.UserContext(), shaParam(c))
	if err != nil {
		return err
	}
	return c.JSON(u)
}

// handlePutChunk handles "PUT /v1/blobs/:sha256/chunks/:offset".
func (s *Server) handlePutChunk(c *fiber.Ctx) error {
	off, err := media.ParseOffset(c.Params("offset"))
	if err != nil {
		return err
	}
	u, err := s.deps.Media.PutChunk(c.UserContext(), shaParam(c), off, requestBody(c))
	if err != nil {
		return err
	}
	return c.JSON(u)
}

// finishRequest is the body of "POST /v1/blobs/:sha256/finish".
type finishRequest struct {
	Size        int64  `json:"size"`
	ContentType string `json:"content_type"`
}

// handleFinishBlob handles "POST /v1/blobs/:sha256/finish".
func (s *Server) handleFinishBlob(c *fiber.Ctx) error {
	var req finishRequest
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	u, err := s.deps.Media.Finish(c.UserContext(), shaParam(c), req.Size, req.ContentType)
	if err != nil {
		return err
	}
	return c.JSON(u)
}

// handlePutBlob handles "PUT /v1/blobs/:sha256": the whole photo as the
// body, its Content-Type as the phone believes it is.
func (s *Server) handlePutBlob(c *fiber.Ctx) error {
	u, err := s.deps.Media.Put(c.UserContext(), shaParam(c), requestBody(c), utils.CopyString(c.Get(fiber.HeaderContentType)))
	if err != nil {
		return err
	}
	return c.JSON(u)
}

// handleBlobURL handles "GET /v1/blobs/:sha256/url".
func (s *Server) handleBlobURL(c *fiber.Ctx) error {
	u, err := s.deps.Media.URL(c.UserContext(), principalOf(c), shaParam(c), utils.CopyString(c.Query("variant")))
	if err != nil {
		return err
	}
	return c.JSON(u)
}

// handleRecordPhotos handles "GET /v1/records/:id/photos".
func (s *Server) handleRecordPhotos(c *fiber.Ctx) error {
	rp, err := s.deps.Media.RecordPhotos(c.UserContext(), principalOf(c), utils.CopyString(c.Params("id")), utils.CopyString(c.Query("scope")))
	if err != nil {
		return err
	}
	return c.JSON(rp)
}
