package reports_test

import (
	"encoding/json"
	"slices"
	"testing"

	"github.com/fieldsync/fieldsync/forms"
	"github.com/fieldsync/fieldsync/internal/testenv"
	"github.com/fieldsync/fieldsync/server/reports"
)

func TestPrefillAgainstOracle(t *testing.T) {
	p := generate(7, 2, 4, 3, "2026-09-01", "2026-12-20", 8, testNow)
	st := testenv.OpenStores(t, "mem")
	c := loadCounty(t, st, p)
	def, ok := forms.BuiltinByID("monthly_feedback", 1)
	if !ok {
		t.Fatal("no built-in monthly_feedback form")
	}
	checked := 0
	for _, month := range []string{"2026-09", "2026-10", "2026-11", "2026-12"} {
		pairs := reports.FeedbackMonths(c, month, reports.Filter{})
		if len(pairs) == 0 {
			t.Fatalf("%s: no forms due", month)
		}
		for _, pair := range pairs {
			insp, school := pair[0], pair[1]
			d := reports.Prefill(c, insp, school, month)
			var visits, obs, resp, opened, closed, overdue []string
			days := map[string]bool{}
			for _, v := range p.visits {
				if v.school == school && v.date[:7] == month && (v.inspector == insp || slices.Contains(v.co, insp)) && v.status != "planned" && v.status != "cancelled" {
					visits = append(visits, v.id)
					days[v.date] = true
				}
			}
			for _, o := range p.obs {
				if o.school == school && o.observer == insp && o.date[:7] == month {
					obs = append(obs, o.id)
				}
			}
			for _, r := range p.responses {
				if r.school == school && r.inspector == insp && r.date[:7] == month {
					resp = append(resp, r.id)
				}
			}
			o := oracle{p: p}
			for _, h := range p.hazards {
				if h.school != school {
					continue
				}
				if h.found[:7] == month {
					opened = append(opened, h.id)
				}
				if h.stage == 4 && h.closed[:7] == month {
					closed = append(closed, h.id)
				}
				if h.found[:7] <= month && o.overdue(h) {
					overdue = append(overdue, h.id)
				}
			}
			for name, want := range map[string][]string{"visit_ids": visits, "counters.observations": obs, "counters.questionnaires": resp,
				"counters.hazards_opened": opened, "counters.hazards_closed": closed, "counters.hazards_overdue": overdue} {
				if !slices.Equal(sorted(d.Sources[name]), sorted(want)) {
					t.Errorf("%s %s %s: %s %v, want %v", insp, school, month, name, d.Sources[name], want)
				}
			}
			counters := d.Values["counters"].(map[string]int)
			if counters["hazards_opened"] != len(opened) || counters["observations"] != len(obs) {
				t.Errorf("counters %v disagree with their sources", counters)
			}
			if want := len(days); d.Values["days_on_site"] != itoa(want) {
				t.Errorf("days_on_site %v, want %d", d.Values["days_on_site"], want)
			}
			// The draft is a valid monthly feedback form as the phone
			// would save it.
			b, err := json.Marshal(d.Values)
			if err != nil {
				t.Fatal(err)
			}
			var values map[string]any
			if err := json.Unmarshal(b, &values); err != nil {
				t.Fatal(err)
			}
			if len(visits) == 0 {
				values["no_visit_reason"] = "本月因培训未进校"
			}
			if errs := def.Validate(values, forms.Env{Today: "2026-12-20"}); len(errs) > 0 {
				t.Errorf("%s %s %s: the draft does not validate: %v", insp, school, month, errs)
			}
			checked++
		}
	}
	t.Logf("%d forms checked", checked)
}

func itoa(n int) string {
	b, _ := json.Marshal(n)
	return string(b)
}
