package reports

import (
	"context"
	"slices"
	"strings"

	"github.com/fieldsync/fieldsync/server"
	"github.com/fieldsync/fieldsync/server/reports/chart"
	"github.com/fieldsync/fieldsync/syncproto"
)

// The dashboard's charts (GET /v1/reports/charts/{chart}).
const (
	ChartCompletionZones      = "completion-zones"      // share of required visits done, per zone
	ChartCompletionInspectors = "completion-inspectors" // the same per inspector
	ChartHazardsSeverity      = "hazards-severity"      // hazards found per month, by severity
	ChartHazardsStatus        = "hazards-status"        // hazards found per month, by where they stand now
	ChartOverdue              = "overdue"               // hazards found per month, and of those overdue now
	ChartVisits               = "visits"                // counted visits per month against the required
)

// Charts lists the chart names.
var Charts = []string{ChartCompletionZones, ChartCompletionInspectors, ChartHazardsSeverity, ChartHazardsStatus, ChartOverdue, ChartVisits}

func completion(c Count) float64 {
	if c.Required <= 0 {
		return 1
	}
	return (c.Required - c.Missing) / c.Required
}

// BuildChart returns a chart of the county for the period and filter,
// computed from the same numbers as Compute.
func BuildChart(c *County, name string, p Period, f Filter) (chart.Chart, error) {
	switch name {
	case ChartCompletionZones, ChartCompletionInspectors:
		rep := Compute(c, p, f)
		ch := chart.Chart{Kind: chart.KindBars, Percent: true}
		s := chart.Series{Name: "进校完成率"}
		if name == ChartCompletionZones {
			ch.Title = "各责任区进校完成率 " + p.Label
			for _, z := range rep.Zones {
				ch.Labels = append(ch.Labels, c.zoneName(z.ZoneID))
				s.Values = append(s.Values, z.Completion)
			}
		} else {
			ch.Title = "各督学进校完成率 " + p.Label
			for _, in := range rep.Inspectors {
				ch.Labels = append(ch.Labels, c.inspectorName(in.InspectorID))
				s.Values = append(s.Values, completion(in.Visits))
			}
		}
		ch.Series = []chart.Series{s}
		return ch, nil
	case ChartHazardsSeverity, ChartHazardsStatus, ChartOverdue:
		months := p.Months()
		scope := map[string]bool{}
		for _, s := range c.inScope(f) {
			scope[s.ID] = true
		}
		var names []string
		var group func(h *Hazard) string
		ch := chart.Chart{Kind: chart.KindStacked, Unit: "项", Labels: months}
		switch name {
		case ChartHazardsSeverity:
			ch.Title = "每月发现隐患（按严重程度）"
			names = []string{"一般", "较大", "重大", "未分级"}
			group = func(h *Hazard) string {
				if s, ok := severityZh[h.Severity]; ok {
					return s
				}
				return "未分级"
			}
		case ChartHazardsStatus:
			ch.Title = "每月发现隐患（按目前状态）"
			names = []string{"待整改", "待复查", "已消号", "已驳回或撤销"}
			group = func(h *Hazard) string {
				switch h.Status {
				case syncproto.HazardPendingVerification, syncproto.HazardVerified:
					return "待复查"
				case syncproto.HazardClosed:
					return "已消号"
				case syncproto.HazardRejected, syncproto.HazardDuplicate, syncproto.HazardCancelled:
					return "已驳回或撤销"
				}
				return "待整改"
			}
		case ChartOverdue:
			ch.Kind, ch.Title = chart.KindLines, "每月发现隐患与其中逾期未整改（截至 "+Today(c.Now)+"）"
			names = []string{"新发现", "逾期"}
		}
		series := make([]chart.Series, len(names))
		for i, n := range names {
			series[i] = chart.Series{Name: n, Values: make([]float64, len(months)), Color: seriesColors[n]}
		}
		for _, h := range c.Hazards {
			if !scope[h.SchoolID] || !p.Contains(h.Found) {
				continue
			}
			m := slices.Index(months, h.Found[:7])
			if name == ChartOverdue {
				series[0].Values[m]++
				if h.Overdue {
					series[1].Values[m]++
				}
				continue
			}
			series[slices.Index(names, group(h))].Values[m]++
		}
		// Drop a category no hazard falls in (keep the first, so an
		// empty period still has a legend).
		for i := len(series) - 1; i > 0 && name != ChartOverdue; i-- {
			if slices.Max(append([]float64{0}, series[i].Values...)) == 0 {
				series = slices.Delete(series, i, i+1)
			}
		}
		ch.Series = series
		return ch, nil
	case ChartVisits:
		rep := Compute(c, p, f)
		months := p.Months()
		done := make([]float64, len(months))
		required := make([]float64, len(months))
		for _, v := range c.Visits {
			if c.counted(v) && p.Contains(v.Date) && slices.ContainsFunc(rep.Schools, func(s SchoolRow) bool { return s.SchoolID == v.SchoolID }) {
				done[slices.Index(months, v.Date[:7])]++
			}
		}
		for _, s := range rep.Schools {
			for i, m := range months {
				from, to := p.monthSpan(m)
				rv, _, _ := c.required(s.SchoolID, "", from, to)
				required[i] += rv
			}
		}
		return chart.Chart{Kind: chart.KindLines, Title: "每月进校次数", Unit: "次", Labels: months,
			Series: []chart.Series{{Name: "实际", Values: done}, {Name: "应到", Values: required}}}, nil
	}
	return chart.Chart{}, syncproto.FieldError("Unknown chart.", map[string]string{"chart": "is one of " + strings.Join(Charts, ", ")})
}

// zoneName is a zone's name from its record, or a short form of its id.
func (c *County) zoneName(id string) string {
	if n := c.Zones[id]; n != "" {
		return n
	}
	if id == "" {
		return "未分区"
	}
	return "责任区 …" + id[max(0, len(id)-4):]
}

// Chart renders one of the dashboard's charts as SVG.
func (s *Service) Chart(ctx context.Context, p server.Principal, name string, q Query) ([]byte, error) {
	ch, err := s.ChartData(ctx, p, name, q)
	if err != nil {
		return nil, err
	}
	return chart.Render(ch)
}

// ChartData returns one of the dashboard's charts as data: its labels and
// series, for a page that draws it itself.
func (s *Service) ChartData(ctx context.Context, p server.Principal, name string, q Query) (chart.Chart, error) {
	f := Filter{Zone: q.Zone, School: q.School, Inspector: q.Inspector}
	schools, err := s.scope(ctx, p, &f)
	if err != nil {
		return chart.Chart{}, err
	}
	if !slices.Contains(Charts, name) {
		return chart.Chart{}, syncproto.FieldError("Unknown chart.", map[string]string{"chart": "is one of " + strings.Join(Charts, ", ")})
	}
	c, err := Load(ctx, s.Store, s.Dir, Scope{Schools: schools}, s.Now())
	if err != nil {
		return chart.Chart{}, err
	}
	period, err := ParsePeriod(q.Period, c.Quotas)
	if err != nil {
		return chart.Chart{}, err
	}
	ch, err := BuildChart(c, name, period, f)
	if ch.Labels == nil {
		ch.Labels = []string{}
	}
	if ch.Series == nil {
		ch.Series = []chart.Series{}
	}
	return ch, err
}

// seriesColors gives the series whose meaning has a color one: severity
// from amber to red, open work red, closed green, withdrawn grey (the
// palette's order would paint 重大 green).
var seriesColors = map[string]string{
	"一般": "#d4a017", "较大": "#e07b39", "重大": "#c0392b", "未分级": "#7f8c8d",
	"待整改": "#c0392b", "待复查": "#e07b39", "已消号": "#3a9a5b", "已驳回或撤销": "#7f8c8d",
	"新发现": "#2f6fb0", "逾期": "#c0392b",
}
