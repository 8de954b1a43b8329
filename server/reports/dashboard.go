package reports

import (
	"context"
	"time"

	"github.com/fieldsync/fieldsync/server"
	"github.com/fieldsync/fieldsync/server/reports/chart"
)

// Dashboard is everything the office console's dashboard shows, computed
// from one read of the county: the quota report (the same as
// GET /v1/reports/quotas) and every chart of Charts (the same as
// GET /v1/reports/charts/{chart}), with names and an index of the
// records the numbers count, so a page can link each number to them.
type Dashboard struct {
	Report *Report
	// Charts, in the order of the Charts list.
	Charts []chart.Chart
	// ChartNames are the charts' names (Charts), and ChartPeriods the
	// period each was computed for (the label ParsePeriod reads), index
	// for index.
	ChartNames, ChartPeriods []string
	// Zones are the zones of the schools the principal may see (id →
	// name), for a zone filter.
	Zones map[string]string
	// Records indexes the records a count may name.
	Records map[string]RecordRef
}

// RecordRef is a record a number counts: where it is and what to call it.
type RecordRef struct {
	ID       string
	Kind     string // "visit", "lesson_observation", "hazard"
	SchoolID string
	Date     string
	Label    string
}

// Dashboard computes the dashboard for a principal, period and filter,
// with the same checks as Quotas. The charts over time (hazards, overdue,
// visits by month) cover trend, a longer period ending with the
// report's (for a month, the six months to it: see Trend); "" is the
// report's period.
func (s *Service) Dashboard(ctx context.Context, p server.Principal, q Query, trend string) (*Dashboard, error) {
	f := Filter{Zone: q.Zone, School: q.School, Inspector: q.Inspector}
	schools, err := s.scope(ctx, p, &f)
	if err != nil {
		return nil, err
	}
	c, err := Load(ctx, s.Store, s.Dir, Scope{Schools: schools}, s.Now())
	if err != nil {
		return nil, err
	}
	period, err := ParsePeriod(q.Period, c.Quotas)
	if err != nil {
		return nil, err
	}
	d := &Dashboard{Report: Compute(c, period, f), Zones: map[string]string{}, Records: map[string]RecordRef{}}
	over := period
	if trend != "" {
		if over, err = ParsePeriod(trend, c.Quotas); err != nil {
			return nil, err
		}
	}
	for _, name := range Charts {
		pp := period
		if name != ChartCompletionZones && name != ChartCompletionInspectors {
			pp = over
		}
		ch, err := BuildChart(c, name, pp, f)
		if err != nil {
			return nil, err
		}
		d.Charts = append(d.Charts, ch)
		d.ChartNames = append(d.ChartNames, name)
		d.ChartPeriods = append(d.ChartPeriods, pp.Label)
	}
	for _, sc := range c.inScope(Filter{}) {
		if sc.ZoneID != "" {
			d.Zones[sc.ZoneID] = c.zoneName(sc.ZoneID)
		}
	}
	for _, v := range c.Visits {
		d.Records[v.ID] = RecordRef{ID: v.ID, Kind: "visit", SchoolID: v.SchoolID, Date: v.Date, Label: or(v.Theme, visitKindZh(v.Kind))}
	}
	for _, o := range c.Observations {
		d.Records[o.ID] = RecordRef{ID: o.ID, Kind: "lesson_observation", SchoolID: o.SchoolID, Date: o.Date, Label: o.Subject + " " + o.Teacher}
	}
	for _, h := range c.Hazards {
		d.Records[h.ID] = RecordRef{ID: h.ID, Kind: "hazard", SchoolID: h.SchoolID, Date: h.Found, Label: h.Title}
	}
	return d, nil
}

// Trend returns the period the dashboard's charts over time cover for a
// report's period: for a month (2026-11), the six months to it as a
// range (2026-06-01..2026-11-30); any other period itself.
func Trend(period string) string {
	t, err := time.Parse("2006-01", period)
	if err != nil || len(period) != 7 {
		return period
	}
	return t.AddDate(0, -5, 0).Format(time.DateOnly) + ".." + t.AddDate(0, 1, -1).Format(time.DateOnly)
}

// SchoolName is a school's name in the county the dashboard read.
func (d *Dashboard) SchoolName(id string) string {
	for _, s := range d.Report.Schools {
		if s.SchoolID == id {
			return s.Name
		}
	}
	return id
}

func or(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func visitKindZh(k string) string {
	if n, ok := map[string]string{"routine": "例行督导", "one_day": "一日督导", "follow_up": "回访", "special": "专项督导", "joint": "联合督导",
		"comprehensive": "综合督导", "unannounced": "暗访", "complaint_check": "投诉核查", "incident": "事件处置"}[k]; ok {
		return n
	}
	return k
}
