package client

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
)

// ReportQuery selects a report: the period (a month "2026-11", a range
// "2026-09-01..2026-12-31" or a semester "2026-2027-1"; for the feedback
// forms a month) and optional zone, school and inspector ids.
type ReportQuery struct {
	Period, Zone, School, Inspector string
	// Photos asks for the photo appendix of one school's hazard ledger.
	Photos bool
}

func (q ReportQuery) values(periodKey string) url.Values {
	v := url.Values{}
	for k, s := range map[string]string{periodKey: q.Period, "zone": q.Zone, "school": q.School, "inspector": q.Inspector} {
		if s != "" {
			v.Set(k, s)
		}
	}
	return v
}

// ReportQuotas returns quota completion per zone, inspector and school
// (GET /v1/reports/quotas) as JSON.
func (c *Client) ReportQuotas(ctx context.Context, q ReportQuery) (json.RawMessage, error) {
	return c.rawJSON(ctx, http.MethodGet, "/v1/reports/quotas?"+q.values("period").Encode(), nil)
}

// ReportFeedback returns the month's prefilled feedback forms (GET
// /v1/reports/feedback) as JSON.
func (c *Client) ReportFeedback(ctx context.Context, q ReportQuery) (json.RawMessage, error) {
	return c.rawJSON(ctx, http.MethodGet, "/v1/reports/feedback?"+q.values("month").Encode(), nil)
}

// ReportSettings returns the office's quotas.
func (c *Client) ReportSettings(ctx context.Context) (json.RawMessage, error) {
	return c.rawJSON(ctx, http.MethodGet, "/v1/reports/settings", nil)
}

// PutReportSettings stores the office's quotas (office head or admin).
func (c *Client) PutReportSettings(ctx context.Context, quotas json.RawMessage) (json.RawMessage, error) {
	return c.rawJSON(ctx, http.MethodPut, "/v1/reports/settings", quotas)
}

// ExportReport streams a ledger ("hazards", "feedback", "visits",
// "observations", "questionnaires") as format ("xlsx" or "csv") to w as
// it arrives, and returns the file name the server suggests and the
// number of bytes written. The answer is not buffered: a ledger of any
// size streams through.
func (c *Client) ExportReport(ctx context.Context, ledger, format string, q ReportQuery, w io.Writer) (string, int64, error) {
	v := q.values("period")
	if format != "" {
		v.Set("format", format)
	}
	if q.Photos {
		v.Set("photos", "true")
	}
	path := "/v1/reports/export/" + pathID(ledger) + "?" + v.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(c.BaseURL, "/")+path, nil)
	if err != nil {
		return "", 0, fmt.Errorf("http: GET %s: %w", path, err)
	}
	if c.Token != nil {
		if tok := c.Token(); tok != "" {
			req.Header.Set("Authorization", "Bearer "+tok)
		}
	}
	// No overall timeout: a large ledger takes what it takes; ctx bounds it.
	hc := *c.httpClient()
	hc.Timeout = 0
	resp, err := hc.Do(req)
	if err != nil {
		return "", 0, fmt.Errorf("http: GET %s: %w", path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 {
		data, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		return "", 0, decodeError(resp.StatusCode, data)
	}
	name := ""
	if cd := resp.Header.Get("Content-Disposition"); cd != "" {
		if i := strings.Index(cd, `filename="`); i >= 0 {
			name, _, _ = strings.Cut(cd[i+len(`filename="`):], `"`)
		}
	}
	n, err := io.Copy(w, resp.Body)
	if err != nil {
		return name, n, fmt.Errorf("http: GET %s: read answer: %w", path, err)
	}
	return name, n, nil
}

// ReportChart returns a chart of the office dashboard (GET
// /v1/reports/charts/{chart}) as SVG.
func (c *Client) ReportChart(ctx context.Context, name string, q ReportQuery) ([]byte, error) {
	b, _, err := c.Raw(ctx, http.MethodGet, "/v1/reports/charts/"+pathID(name)+"?"+q.values("period").Encode(), "", nil)
	return b, err
}
