package api

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"html/template"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/fieldsync/fieldsync/server/reports"
	"github.com/fieldsync/fieldsync/server/reports/chart"
	"github.com/fieldsync/fieldsync/syncproto"
)

// The console's dashboard (报表): quota completion per zone and per
// inspector, hazards by status and severity, overdue hazards and visits
// by month, for a month or a semester and a zone. The numbers and charts
// come from reports.Service.Dashboard, which computes them with the same
// functions and the same checks (who sees which schools) as the JSON
// routes /v1/reports/quotas and /v1/reports/charts/{chart}; the charts are
// the same SVG, inlined. Every number links to the records it counts
// (/console/reports/source), and the ledgers download through the session
// (/console/reports/export/{ledger}): the console's cookie is not sent to
// /v1/.
//
//	GET /console/reports                    the dashboard (?period=&zone=)
//	GET /console/reports/source             the records one number counts
//	GET /console/reports/export/:ledger     a ledger as XLSX or CSV (?format=)

// routesDashboard registers the dashboard's pages on the console's
// session group.
func (s *Server) routesDashboard(g fiber.Router) {
	g.Get("/reports", s.handleDashboard)
	g.Get("/reports/source", s.handleDashboardSource)
	g.Get("/reports/export/:ledger", s.handleConsoleExport)
}

// dashOption is an option of a select.
type dashOption struct {
	Value, Label string
	On           bool
}

// dashCell is one number of a table: done of required, what is missing,
// and the page listing the records it counts.
type dashCell struct {
	Done, Required, Missing string
	Href                    string
	Short                   bool // something is missing
}

type dashRow struct {
	Name    string
	Cells   []dashCell
	Percent string
}

type dashChart struct {
	Name, Title string
	Period      string // the period it covers, as the API reads it
	Points      int
	SVG         template.HTML
}

type dashView struct {
	page
	Period, Zone     string
	PeriodLabel      string
	Today            string
	Periods, Zones   []dashOption
	ZoneRows         []dashRow
	InspectorRows    []dashRow
	Hazards          []dashRow // per status, per severity: current counts
	Charts           []dashChart
	ExportXLSX       string
	ExportCSV        string
	ExportVisitsXLSX string
}

func num(f float64) string { return strconv.FormatFloat(f, 'f', -1, 64) }

// dashQuery reads the dashboard's filter; the period defaults to this
// month in China.
func dashQuery(c *fiber.Ctx, now time.Time) reports.Query {
	q := reports.Query{Period: strings.Clone(c.Query("period")), Zone: strings.Clone(c.Query("zone"))}
	if q.Period == "" {
		q.Period = now.In(syncproto.ChinaTime).Format("2006-01")
	}
	return q
}

// semesterOf names the semester (2026-2027-1) a month falls in, with the
// usual term starts (September, February).
func semesterOf(t time.Time) string {
	y, m := t.Year(), t.Month()
	switch {
	case m >= time.September:
		return fmt.Sprintf("%d-%d-1", y, y+1)
	case m >= time.February:
		return fmt.Sprintf("%d-%d-2", y-1, y)
	}
	return fmt.Sprintf("%d-%d-1", y-1, y)
}

// periodOptions are the last twelve months and the last three semesters.
func periodOptions(now time.Time, current string) []dashOption {
	t := now.In(syncproto.ChinaTime)
	first := time.Date(t.Year(), t.Month(), 1, 12, 0, 0, 0, syncproto.ChinaTime)
	var out []dashOption
	for i := range 12 {
		m := first.AddDate(0, -i, 0).Format("2006-01")
		out = append(out, dashOption{Value: m, Label: m + " 月"})
	}
	for i := range 3 {
		sem := semesterOf(first.AddDate(0, -6*i, 0))
		parts := strings.Split(sem, "-")
		term := map[string]string{"1": "第一学期", "2": "第二学期"}[parts[2]]
		out = append(out, dashOption{Value: sem, Label: parts[0] + "–" + parts[1] + " 学年" + term})
	}
	found := false
	for i := range out {
		if out[i].Value == current {
			out[i].On, found = true, true
		}
	}
	if !found {
		out = append([]dashOption{{Value: current, Label: current, On: true}}, out...)
	}
	return out
}

// sourceURL is the page of the records a number counts.
func sourceURL(q reports.Query, row, id, count string) string {
	v := url.Values{"period": {q.Period}, "row": {row}, "id": {id}, "count": {count}}
	if q.Zone != "" {
		v.Set("zone", q.Zone)
	}
	return "/console/reports/source?" + v.Encode()
}

func cell(q reports.Query, row, id, count string, n reports.Count, required bool) dashCell {
	c := dashCell{Done: num(n.Done), Href: sourceURL(q, row, id, count), Short: n.Missing > 0}
	if required {
		c.Required, c.Missing = num(n.Required), num(n.Missing)
	}
	return c
}

// countOf finds a number of the report: a row (zone, inspector or school)
// by id, and one of its counts by its JSON name.
func countOf(rep *reports.Report, row, id, count string) (reports.Count, string, bool) {
	var counts map[string]reports.Count
	var name string
	switch row {
	case "zone":
		for _, z := range rep.Zones {
			if z.ZoneID == id {
				counts = map[string]reports.Count{"visits": z.Visits, "visit_days": z.VisitDays, "hazards_open": z.HazardsOpen, "hazards_overdue": z.HazardsOverdue}
			}
		}
	case "inspector":
		for _, in := range rep.Inspectors {
			if in.InspectorID == id {
				name = in.Name
				counts = map[string]reports.Count{"visits": in.Visits, "visit_days": in.VisitDays, "observation_hours": in.ObservationHours, "hazards_overdue": in.HazardsOverdue}
			}
		}
	case "school":
		for _, sc := range rep.Schools {
			if sc.SchoolID == id {
				name = sc.Name
				counts = map[string]reports.Count{"visits": sc.Visits, "visit_days": sc.VisitDays, "observations": sc.Observations,
					"hazards_found": sc.HazardsFound, "hazards_closed": sc.HazardsClosed, "hazards_open": sc.HazardsOpen, "hazards_overdue": sc.HazardsOverdue}
			}
		}
	}
	n, ok := counts[count]
	return n, name, ok
}

var countNames = map[string]string{
	"visits": "进校次数", "visit_days": "在校天数", "observation_hours": "听课学时", "observations": "听课节数",
	"hazards_found": "发现隐患", "hazards_closed": "已消号隐患", "hazards_open": "未整改隐患", "hazards_overdue": "逾期隐患",
}

// handleDashboard handles "GET /console/reports".
func (s *Server) handleDashboard(c *fiber.Ctx) error {
	if s.deps.Reports == nil {
		return s.consoleError(c, http.StatusServiceUnavailable, syncproto.Errorf(syncproto.EUNAVAILABLE, "报表服务未配置。Reports are not configured."))
	}
	ctx, p := c.UserContext(), principalOf(c)
	q := dashQuery(c, s.deps.Reports.Now())
	d, err := s.deps.Reports.Dashboard(ctx, p, q, reports.Trend(q.Period))
	var bad *syncproto.Error
	if errors.As(err, &bad) && bad.Code == syncproto.EINVALID {
		// A bad filter: the form again, with what is wrong.
		v := dashView{page: s.basePage(c, "报表"), Period: q.Period, Zone: q.Zone, Periods: periodOptions(s.deps.Reports.Now(), q.Period),
			Zones: []dashOption{{Value: "", Label: "全部责任区 All zones", On: true}}}
		v.Error, v.Fields = bad.Message, bad.Fields
		return s.render(c, http.StatusBadRequest, "reports", v, nil)
	}
	if err != nil {
		return s.consoleError(c, statusOf(err), err)
	}
	rep := d.Report
	v := dashView{page: s.basePage(c, "报表"), Period: q.Period, Zone: q.Zone, PeriodLabel: rep.Period.From + " 至 " + rep.Period.To, Today: rep.Today,
		Periods: periodOptions(s.deps.Reports.Now(), q.Period)}
	v.Zones = append(v.Zones, dashOption{Value: "", Label: "全部责任区 All zones", On: q.Zone == ""})
	zoneIDs := make([]string, 0, len(d.Zones))
	for id := range d.Zones {
		zoneIDs = append(zoneIDs, id)
	}
	slices.SortFunc(zoneIDs, func(a, b string) int { return strings.Compare(d.Zones[a], d.Zones[b]) })
	for _, id := range zoneIDs {
		v.Zones = append(v.Zones, dashOption{Value: id, Label: d.Zones[id], On: id == q.Zone})
	}
	for _, z := range rep.Zones {
		name := d.Zones[z.ZoneID]
		if name == "" {
			name = or(z.ZoneID, "未分区")
		}
		v.ZoneRows = append(v.ZoneRows, dashRow{Name: name, Percent: num(float64(int(z.Completion*1000+0.5))/10) + "%", Cells: []dashCell{
			{Done: strconv.Itoa(z.Schools)},
			cell(q, "zone", z.ZoneID, "visits", z.Visits, true),
			cell(q, "zone", z.ZoneID, "visit_days", z.VisitDays, true),
			cell(q, "zone", z.ZoneID, "hazards_open", z.HazardsOpen, false),
			cell(q, "zone", z.ZoneID, "hazards_overdue", z.HazardsOverdue, false),
		}})
	}
	seen := map[string]int{}
	for _, in := range rep.Inspectors {
		seen[in.Name]++
	}
	for _, in := range rep.Inspectors {
		name := in.Name
		if seen[name] > 1 {
			name += "（…" + in.InspectorID[max(0, len(in.InspectorID)-4):] + "）"
		}
		pct := 1.0
		if in.Visits.Required > 0 {
			pct = (in.Visits.Required - in.Visits.Missing) / in.Visits.Required
		}
		v.InspectorRows = append(v.InspectorRows, dashRow{Name: name, Percent: num(float64(int(pct*1000+0.5))/10) + "%", Cells: []dashCell{
			{Done: strconv.Itoa(len(in.SchoolIDs))},
			cell(q, "inspector", in.InspectorID, "visits", in.Visits, true),
			cell(q, "inspector", in.InspectorID, "visit_days", in.VisitDays, true),
			cell(q, "inspector", in.InspectorID, "observation_hours", in.ObservationHours, true),
			cell(q, "inspector", in.InspectorID, "hazards_overdue", in.HazardsOverdue, false),
		}})
	}
	for i, ch := range d.Charts {
		svg, err := chart.Render(ch)
		if err != nil {
			return err
		}
		points := len(ch.Labels)
		if ch.Kind != chart.KindBars {
			points *= len(ch.Series)
		} else if len(ch.Series) == 0 {
			points = 0
		}
		v.Charts = append(v.Charts, dashChart{Name: d.ChartNames[i], Period: d.ChartPeriods[i], Title: ch.Title, Points: points, SVG: template.HTML(inlineSVG(svg))}) // #nosec G203 -- chart.Render escapes every text it writes
	}
	export := func(ledger, format string) string {
		u := url.Values{"period": {q.Period}, "format": {format}}
		if q.Zone != "" {
			u.Set("zone", q.Zone)
		}
		return "/console/reports/export/" + ledger + "?" + u.Encode()
	}
	v.ExportXLSX, v.ExportCSV, v.ExportVisitsXLSX = export(reports.LedgerHazards, "xlsx"), export(reports.LedgerHazards, "csv"), export(reports.LedgerVisits, "xlsx")
	return s.render(c, http.StatusOK, "reports", v, nil)
}

// sourceRow is one record a number counts.
type sourceRow struct {
	Href, Kind, School, Date, Label, ID string
}

// handleDashboardSource handles "GET /console/reports/source": the
// records one number of the dashboard counts, each linking to its page.
func (s *Server) handleDashboardSource(c *fiber.Ctx) error {
	if s.deps.Reports == nil {
		return s.consoleError(c, http.StatusServiceUnavailable, syncproto.Errorf(syncproto.EUNAVAILABLE, "报表服务未配置。Reports are not configured."))
	}
	ctx, p := c.UserContext(), principalOf(c)
	q := dashQuery(c, s.deps.Reports.Now())
	row, id, count := strings.Clone(c.Query("row")), strings.Clone(c.Query("id")), strings.Clone(c.Query("count"))
	d, err := s.deps.Reports.Dashboard(ctx, p, q, "")
	if err != nil {
		return s.consoleError(c, statusOf(err), err)
	}
	n, name, ok := countOf(d.Report, row, id, count)
	if !ok {
		return s.consoleError(c, http.StatusNotFound, syncproto.FieldError("没有这个数字。There is no such number in this report.",
			map[string]string{"row": "zone, inspector or school of the report", "count": "one of the row's counts"}))
	}
	if row == "zone" {
		name = or(d.Zones[id], "未分区")
	}
	var rows []sourceRow
	for _, rid := range n.IDs {
		ref, ok := d.Records[rid]
		if !ok {
			rows = append(rows, sourceRow{ID: rid, Label: "—"})
			continue
		}
		r := sourceRow{ID: rid, Kind: or(kindNames[ref.Kind], ref.Kind), School: d.SchoolName(ref.SchoolID), Date: ref.Date, Label: ref.Label}
		if ref.Kind == "hazard" {
			r.Href = "/console/hazards/" + url.PathEscape(rid)
		} else {
			r.Href = "/console/records/" + url.PathEscape(ref.SchoolID) + "/" + url.PathEscape(rid)
		}
		rows = append(rows, r)
	}
	slices.SortStableFunc(rows, func(a, b sourceRow) int {
		return strings.Compare(a.Date+a.School+a.ID, b.Date+b.School+b.ID)
	})
	back := url.Values{"period": {q.Period}}
	if q.Zone != "" {
		back.Set("zone", q.Zone)
	}
	title := name + " · " + or(countNames[count], count)
	data := struct {
		page
		Heading, Period, Back string
		Count                 dashCell
		Rows                  []sourceRow
	}{page: s.basePage(c, title), Heading: title, Period: d.Report.Period.Label, Back: "/console/reports?" + back.Encode(),
		Count: dashCell{Done: num(n.Done), Required: num(n.Required), Missing: num(n.Missing)}, Rows: rows}
	return s.render(c, http.StatusOK, "reportsource", data, nil)
}

// handleConsoleExport handles "GET /console/reports/export/:ledger": the
// export of /v1/reports/export/:ledger, with the session's principal. It
// changes nothing, and the session cookie is SameSite=Strict, so a plain
// GET is safe without a CSRF token. A refused request gets a console page.
func (s *Server) handleConsoleExport(c *fiber.Ctx) error {
	if s.deps.Reports == nil {
		return s.consoleError(c, http.StatusServiceUnavailable, syncproto.Errorf(syncproto.EUNAVAILABLE, "报表服务未配置。Reports are not configured."))
	}
	ledger := strings.Clone(c.Params("ledger"))
	q := dashQuery(c, s.deps.Reports.Now())
	q.School, q.Inspector = strings.Clone(c.Query("school")), strings.Clone(c.Query("inspector"))
	pe, err := s.deps.Reports.PrepareExport(c.UserContext(), principalOf(c), ledger, strings.Clone(c.Query("format")), false, q)
	if err != nil {
		return s.consoleError(c, statusOf(err), err)
	}
	s.consoleHeaders(c)
	c.Set(fiber.HeaderContentType, pe.MIME)
	c.Set(fiber.HeaderContentDisposition, `attachment; filename="`+pe.Filename+`"; filename*=UTF-8''`+url.PathEscape(pe.Filename))
	ctx, cancel := context.WithTimeout(context.WithoutCancel(c.UserContext()), s.cfg.RequestTimeout)
	rid, _ := c.Locals(localRequestID).(string)
	c.Context().SetBodyStreamWriter(func(w *bufio.Writer) {
		defer cancel()
		if err := s.deps.Reports.WriteExport(ctx, w, pe); err != nil && !errors.Is(err, io.ErrClosedPipe) {
			s.logger.Error("console export failed mid-stream", "ledger", ledger, "request_id", rid, "error", err.Error())
		}
		_ = w.Flush()
	})
	return nil
}

// inlineSVG strips what must not be inside HTML from a standalone SVG
// document (an XML declaration).
func inlineSVG(b []byte) []byte {
	if i := bytes.Index(b, []byte("<svg")); i > 0 {
		return b[i:]
	}
	return b
}
