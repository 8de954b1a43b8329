package reports

import (
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/google/uuid"

	"github.com/fieldsync/fieldsync/syncproto"
)

// Quotas are the numbers an office measures its inspectors against. The
// source documents give them as local practice, so every one is
// configurable per office; Defaults holds the usual values.
type Quotas struct {
	// VisitsPerSchoolPerMonth: every listed school gets at least this many
	// counted visits a month (每所挂牌学校每月至少1次). Default 1.
	VisitsPerSchoolPerMonth int `json:"visits_per_school_per_month"`
	// VisitDaysPerSchoolPerMonth: distinct days on site per school and
	// month (每月至少1天). Default 1.
	VisitDaysPerSchoolPerMonth int `json:"visit_days_per_school_per_month"`
	// VisitsPerSchoolPerSemester: regular supervision at least this many
	// times a semester per school (《教育督导条例》: ≥2). Checked only for
	// semester periods. Default 2.
	VisitsPerSchoolPerSemester int `json:"visits_per_school_per_semester"`
	// ObservationHoursPerSemester: class hours (学时) of lesson
	// observation per inspector and semester (至少听课20学时). Default 20.
	ObservationHoursPerSemester float64 `json:"observation_hours_per_semester"`
	// ClassHourMinutes is the length of one class hour. Default 45.
	ClassHourMinutes int `json:"class_hour_minutes"`
	// CountedVisitKinds are the visit kinds that count toward the visit
	// quota. Default routine, one_day, follow_up, unannounced.
	CountedVisitKinds []string `json:"counted_visit_kinds"`
	// HazardDeadlineDays is the default time to rectify by severity, from
	// the day the hazard was found, used while no notice set a deadline.
	// Default high 3, medium 15, low 30.
	HazardDeadlineDays map[string]int `json:"hazard_deadline_days"`
	// FirstTermStart and SecondTermStart are the month and day (MM-DD) the
	// two semesters of a school year start; the first term ends the day
	// before the second starts, the second at the end of July. Default
	// 09-01 and 02-01.
	FirstTermStart  string `json:"first_term_start"`
	SecondTermStart string `json:"second_term_start"`
}

// Defaults returns the domain's usual quotas.
func Defaults() Quotas {
	return Quotas{
		VisitsPerSchoolPerMonth:     1,
		VisitDaysPerSchoolPerMonth:  1,
		VisitsPerSchoolPerSemester:  2,
		ObservationHoursPerSemester: 20,
		ClassHourMinutes:            45,
		CountedVisitKinds:           []string{"routine", "one_day", "follow_up", "unannounced"},
		HazardDeadlineDays:          map[string]int{"high": 3, "medium": 15, "low": 30},
		FirstTermStart:              "09-01",
		SecondTermStart:             "02-01",
	}
}

// withDefaults fills what a zero value would break (the class hour, the
// term starts) from Defaults.
func (q Quotas) withDefaults() Quotas {
	d := Defaults()
	if q.ClassHourMinutes == 0 {
		q.ClassHourMinutes = d.ClassHourMinutes
	}
	if q.CountedVisitKinds == nil {
		q.CountedVisitKinds = d.CountedVisitKinds
	}
	if q.HazardDeadlineDays == nil {
		q.HazardDeadlineDays = d.HazardDeadlineDays
	}
	if q.FirstTermStart == "" {
		q.FirstTermStart = d.FirstTermStart
	}
	if q.SecondTermStart == "" {
		q.SecondTermStart = d.SecondTermStart
	}
	return q
}

// DecodeQuotas reads quotas from JSON: members left out keep their
// defaults.
func DecodeQuotas(raw []byte) (Quotas, error) {
	q := Defaults()
	if err := json.Unmarshal(raw, &q); err != nil {
		return Quotas{}, err
	}
	return q.withDefaults(), nil
}

// Validate checks the quotas and returns field-level messages (EINVALID).
func (q Quotas) Validate() *syncproto.Error {
	bad := map[string]string{}
	nonneg := func(name string, v int) {
		if v < 0 || v > 31 {
			bad[name] = "must be between 0 and 31"
		}
	}
	nonneg("visits_per_school_per_month", q.VisitsPerSchoolPerMonth)
	nonneg("visit_days_per_school_per_month", q.VisitDaysPerSchoolPerMonth)
	if q.VisitsPerSchoolPerSemester < 0 || q.VisitsPerSchoolPerSemester > 200 {
		bad["visits_per_school_per_semester"] = "must be between 0 and 200"
	}
	if q.ObservationHoursPerSemester < 0 || q.ObservationHoursPerSemester > 1000 || math.IsNaN(q.ObservationHoursPerSemester) {
		bad["observation_hours_per_semester"] = "must be between 0 and 1000"
	}
	if q.ClassHourMinutes < 1 || q.ClassHourMinutes > 240 {
		bad["class_hour_minutes"] = "must be between 1 and 240"
	}
	for _, k := range q.CountedVisitKinds {
		if !slices.Contains(visitKinds, k) {
			bad["counted_visit_kinds"] = "unknown visit kind " + k + "; one of " + strings.Join(visitKinds, ", ")
		}
	}
	for sev, d := range q.HazardDeadlineDays {
		if sev != "low" && sev != "medium" && sev != "high" {
			bad["hazard_deadline_days"] = "severities are low, medium and high, not " + sev
		} else if d < 0 || d > 366 {
			bad["hazard_deadline_days."+sev] = "must be between 0 and 366 days"
		}
	}
	for name, v := range map[string]string{"first_term_start": q.FirstTermStart, "second_term_start": q.SecondTermStart} {
		if _, _, ok := monthDay(v); !ok {
			bad[name] = "must be MM-DD, e.g. 09-01"
		}
	}
	if len(bad) > 0 {
		return syncproto.FieldError("The quotas are not valid.", bad)
	}
	return nil
}

// monthDay parses "MM-DD".
func monthDay(s string) (m, d int, ok bool) {
	if len(s) != 5 || s[2] != '-' {
		return 0, 0, false
	}
	if _, err := fmt.Sscanf(s, "%02d-%02d", &m, &d); err != nil || m < 1 || m > 12 || d < 1 || d > 28 {
		return 0, 0, false
	}
	return m, d, true
}

// visitKinds are the kinds of E12 Visit.
var visitKinds = []string{"routine", "one_day", "follow_up", "special", "joint", "comprehensive", "unannounced", "complaint_check", "incident"}

// SettingsKind is the record kind of an office's report settings, and
// SettingsField the field holding its Quotas as JSON.
const (
	SettingsKind  = "report_settings"
	SettingsField = "quotas"
)

// SettingsRecordID returns the id of an office's settings record in the
// reference scope: derived from the office id (empty for the server's one
// office), so every server and every retry writes the same record and
// concurrent edits merge (or show as a conflict) like any other record.
func SettingsRecordID(office string) uuid.UUID {
	u := uuid.NewSHA1(uuid.NameSpaceOID, []byte("fieldsync report settings "+office))
	// The version-7 layout every record id has (syncproto.ParseID).
	u[6] = (u[6] & 0x0f) | 0x70
	u[8] = (u[8] & 0x3f) | 0x80
	return u
}

// QuotasFromRecord decodes the quotas of a settings record, filling what
// it does not say from Defaults. A nil record gives Defaults.
func QuotasFromRecord(r *syncproto.Record) (Quotas, error) {
	if r == nil || r.IsDeleted() {
		return Defaults(), nil
	}
	raw := r.Value(SettingsField)
	if len(raw) == 0 || string(raw) == "null" {
		return Defaults(), nil
	}
	q, err := DecodeQuotas(raw)
	if err != nil {
		return Quotas{}, fmt.Errorf("reports: settings %s: %w", r.ID, err)
	}
	return q, nil
}
