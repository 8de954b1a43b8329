package reports_test

import (
	"bytes"
	"encoding/xml"
	"io"
	"slices"
	"testing"

	"github.com/fieldsync/fieldsync/internal/testenv"
	"github.com/fieldsync/fieldsync/server/reports"
	"github.com/fieldsync/fieldsync/server/reports/chart"
)

func TestChartsAgainstOracle(t *testing.T) {
	p := generate(31, 2, 4, 3, "2026-09-01", "2026-12-20", 8, testNow)
	c := loadCounty(t, testenv.OpenStores(t, "mem"), p)
	period, _ := reports.ParsePeriod("2026-09-01..2026-12-31", reports.Defaults())
	months := []string{"2026-09", "2026-10", "2026-11", "2026-12"}
	o := oracle{p: p, period: period, inScope: func(string) bool { return true }}
	sev := map[string]string{"low": "一般", "medium": "较大", "high": "重大"}
	for _, name := range reports.Charts {
		t.Run(name, func(t *testing.T) {
			ch, err := reports.BuildChart(c, name, period, reports.Filter{})
			if err != nil {
				t.Fatal(err)
			}
			series := map[string][]float64{}
			for _, s := range ch.Series {
				series[s.Name] = s.Values
			}
			want := map[string][]float64{}
			add := func(s, month string) {
				if want[s] == nil {
					want[s] = make([]float64, len(months))
				}
				want[s][slices.Index(months, month)]++
			}
			switch name {
			case reports.ChartCompletionZones:
				if len(ch.Labels) != len(p.zones) {
					t.Errorf("%d zones, want %d", len(ch.Labels), len(p.zones))
				}
			case reports.ChartCompletionInspectors:
				if len(ch.Labels) != len(p.inspectors) {
					t.Errorf("%d inspectors, want %d", len(ch.Labels), len(p.inspectors))
				}
			case reports.ChartHazardsSeverity:
				for _, h := range p.hazards {
					add(sev[h.severity], h.found[:7])
				}
			case reports.ChartOverdue:
				for _, h := range p.hazards {
					add("新发现", h.found[:7])
					if o.overdue(h) {
						add("逾期", h.found[:7])
					}
				}
			case reports.ChartVisits:
				for _, v := range p.visits {
					if o.counted(v) {
						add("实际", v.date[:7])
					}
				}
			}
			for s, vals := range want {
				if !slices.Equal(series[s], vals) {
					t.Errorf("series %s = %v, want %v", s, series[s], vals)
				}
			}
			b, err := chart.Render(ch)
			if err != nil {
				t.Fatal(err)
			}
			d := xml.NewDecoder(bytes.NewReader(b))
			points := 0
			for {
				tok, err := d.Token()
				if err == io.EOF {
					break
				}
				if err != nil {
					t.Fatalf("SVG: %v", err)
				}
				if se, ok := tok.(xml.StartElement); ok {
					for _, a := range se.Attr {
						if a.Name.Local == "class" && a.Value == "point" {
							points++
						}
					}
				}
			}
			if n := len(ch.Labels) * len(ch.Series); points != n || n == 0 {
				t.Errorf("%d points drawn, want %d (>0)", points, n)
			}
		})
	}
	if _, err := reports.BuildChart(c, "pie", period, reports.Filter{}); err == nil {
		t.Error("an unknown chart was built")
	}
}
