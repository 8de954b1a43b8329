package api

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net/url"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/utils"

	"github.com/fieldsync/fieldsync/server/reports"
	"github.com/fieldsync/fieldsync/syncproto"
)

// routesReports registers the report routes: quota completion, the
// prefilled monthly feedback forms, the ledgers as XLSX or CSV, and the
// office's quotas. The service decides who sees what (office roles
// everything, a phone its own inspector's numbers).
func (s *Server) routesReports() {
	s.app.Get("/v1/reports/quotas", s.authenticated, s.handleReportQuotas)
	s.app.Get("/v1/reports/feedback", s.authenticated, s.handleReportFeedback)
	s.app.Get("/v1/reports/export/:ledger", s.authenticated, s.handleReportExport)
	s.app.Get("/v1/reports/charts/:chart", s.authenticated, s.handleReportChart)
	s.app.Get("/v1/reports/settings", s.authenticated, s.handleGetReportSettings)
	s.app.Put("/v1/reports/settings", s.authenticated, s.body(smallBodyMax), s.handlePutReportSettings)
}

func reportQuery(c *fiber.Ctx, period string) reports.Query {
	return reports.Query{Period: utils.CopyString(c.Query(period)), Zone: utils.CopyString(c.Query("zone")),
		School: utils.CopyString(c.Query("school")), Inspector: utils.CopyString(c.Query("inspector"))}
}

// handleReportQuotas handles "GET /v1/reports/quotas".
func (s *Server) handleReportQuotas(c *fiber.Ctx) error {
	rep, err := s.deps.Reports.Quotas(c.UserContext(), principalOf(c), reportQuery(c, "period"))
	if err != nil {
		return err
	}
	return c.JSON(rep)
}

// handleReportFeedback handles "GET /v1/reports/feedback".
func (s *Server) handleReportFeedback(c *fiber.Ctx) error {
	list, err := s.deps.Reports.Feedback(c.UserContext(), principalOf(c), reportQuery(c, "month"))
	if err != nil {
		return err
	}
	return c.JSON(list)
}

// handleReportExport handles "GET /v1/reports/export/:ledger": the
// request is checked first (errors are ordinary JSON answers), then the
// ledger is streamed as it is written, one school at a time. An error in
// the middle of the stream can no longer change the status: it is logged
// and the connection closed, so the client sees a cut-off file.
func (s *Server) handleReportExport(c *fiber.Ctx) error {
	ledger := utils.CopyString(c.Params("ledger"))
	photos := false
	switch c.Query("photos") {
	case "", "false", "0":
	case "true", "1":
		photos = true
	default:
		return syncproto.FieldError("The photos flag is not valid.", map[string]string{"photos": "is true or false"})
	}
	pe, err := s.deps.Reports.PrepareExport(c.UserContext(), principalOf(c), ledger, utils.CopyString(c.Query("format")), photos, reportQuery(c, "period"))
	if err != nil {
		return err
	}
	c.Set(fiber.HeaderContentType, pe.MIME)
	c.Set(fiber.HeaderContentDisposition, `attachment; filename="`+pe.Filename+`"; filename*=UTF-8''`+url.PathEscape(pe.Filename))
	c.Set(fiber.HeaderCacheControl, "no-store")
	// The stream runs after the handler returns, past the request's
	// deadline context: it gets its own, as long.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(c.UserContext()), s.cfg.RequestTimeout)
	rid, _ := c.Locals(localRequestID).(string)
	c.Context().SetBodyStreamWriter(func(w *bufio.Writer) {
		defer cancel()
		if err := s.deps.Reports.WriteExport(ctx, w, pe); err != nil && !errors.Is(err, io.ErrClosedPipe) {
			s.logger.Error("report export failed mid-stream", "ledger", ledger, "request_id", rid, "error", err.Error())
		}
		_ = w.Flush()
	})
	return nil
}

// handleReportChart handles "GET /v1/reports/charts/:chart": a chart of
// the dashboard as SVG.
func (s *Server) handleReportChart(c *fiber.Ctx) error {
	name := utils.CopyString(c.Params("chart"))
	switch c.Query("format") {
	case "", "svg":
	case "json":
		ch, err := s.deps.Reports.ChartData(c.UserContext(), principalOf(c), name, reportQuery(c, "period"))
		if err != nil {
			return err
		}
		return c.JSON(ch)
	default:
		return syncproto.FieldError("Unknown chart format.", map[string]string{"format": "is svg or json"})
	}
	svg, err := s.deps.Reports.Chart(c.UserContext(), principalOf(c), name, reportQuery(c, "period"))
	if err != nil {
		return err
	}
	c.Set(fiber.HeaderContentType, "image/svg+xml; charset=utf-8")
	c.Set(fiber.HeaderCacheControl, "no-store")
	return c.Send(svg)
}

// handleGetReportSettings handles "GET /v1/reports/settings".
func (s *Server) handleGetReportSettings(c *fiber.Ctx) error {
	q, err := s.deps.Reports.Settings(c.UserContext())
	if err != nil {
		return err
	}
	return c.JSON(q)
}

// handlePutReportSettings handles "PUT /v1/reports/settings".
func (s *Server) handlePutReportSettings(c *fiber.Ctx) error {
	q, err := reports.DecodeQuotas(requestBody(c))
	if err != nil {
		return syncproto.Errorf(syncproto.EINVALID, "The body must be the quotas as JSON: %v.", err)
	}
	saved, err := s.deps.Reports.PutSettings(c.UserContext(), principalOf(c), q)
	if err != nil {
		return err
	}
	return c.JSON(saved)
}
