package reports

import (
	"context"

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
	// ChartNames are the charts' names (Charts), index for index.
	ChartNames []string
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
// with the same checks as Quotas.
func (s *Service) Dashboard(ctx context.Context, p server.Principal, q Query) (*Dashboard, error) {
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
	for _, name := range Charts {
		ch, err := BuildChart(c, name, period, f)
		if err != nil {
			return nil, err
		}
		d.Charts = append(d.Charts, ch)
		d.ChartNames = append(d.ChartNames, name)
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
