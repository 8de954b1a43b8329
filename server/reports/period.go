package reports

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/fieldsync/fieldsync/syncproto"
)

// Period kinds.
const (
	PeriodMonth    = "month"
	PeriodRange    = "range"
	PeriodSemester = "semester"
)

// Period is the span a report covers: whole days From..To inclusive
// (YYYY-MM-DD, China's calendar).
type Period struct {
	Kind  string `json:"kind"`
	Label string `json:"label"` // as given: "2026-11", "2026-09-01..2026-12-31", "2026-2027-1"
	From  string `json:"from"`
	To    string `json:"to"`
}

// ParsePeriod reads a period:
//
//	2026-11                  a month
//	2026-09-01..2026-12-31   a range of days, inclusive
//	2026-2027-1              a semester: school year 2026–2027, first term
//	                         (from FirstTermStart in 2026 to the day before
//	                         SecondTermStart in 2027); -2 is the second term
//	                         (SecondTermStart to 31 July 2027)
//
// Bad input is EINVALID with a message on the field "period".
func ParsePeriod(s string, q Quotas) (Period, error) {
	q = q.withDefaults()
	bad := func(why string) (Period, error) {
		return Period{}, syncproto.FieldError("The period is not valid.", map[string]string{"period": why})
	}
	s = strings.TrimSpace(s)
	switch {
	case s == "":
		return bad("is required: a month (2026-11), a range (2026-09-01..2026-12-31) or a semester (2026-2027-1)")
	case strings.Contains(s, ".."):
		from, to, _ := strings.Cut(s, "..")
		if !isDay(from) || !isDay(to) {
			return bad("a range is two dates YYYY-MM-DD joined by '..'")
		}
		if to < from {
			return bad("the range ends before it starts")
		}
		if days(from, to) > 3*366 {
			return bad("a range covers at most three years")
		}
		return Period{Kind: PeriodRange, Label: s, From: from, To: to}, nil
	case len(s) == 7:
		t, err := time.Parse("2006-01", s)
		if err != nil {
			return bad("a month is YYYY-MM")
		}
		return Period{Kind: PeriodMonth, Label: s, From: t.Format(time.DateOnly), To: t.AddDate(0, 1, -1).Format(time.DateOnly)}, nil
	case len(s) == 11:
		parts := strings.Split(s, "-")
		if len(parts) != 3 {
			return bad("a semester is YYYY-YYYY-1 or YYYY-YYYY-2")
		}
		y1, e1 := strconv.Atoi(parts[0])
		y2, e2 := strconv.Atoi(parts[1])
		if e1 != nil || e2 != nil || y2 != y1+1 || y1 < 2000 || y1 > 2100 {
			return bad("a semester names a school year of two consecutive years, e.g. 2026-2027-1")
		}
		fm, fd, _ := monthDay(q.FirstTermStart)
		sm, sd, _ := monthDay(q.SecondTermStart)
		first := time.Date(y1, time.Month(fm), fd, 0, 0, 0, 0, time.UTC)
		second := time.Date(y2, time.Month(sm), sd, 0, 0, 0, 0, time.UTC)
		switch parts[2] {
		case "1":
			return Period{Kind: PeriodSemester, Label: s, From: first.Format(time.DateOnly), To: second.AddDate(0, 0, -1).Format(time.DateOnly)}, nil
		case "2":
			return Period{Kind: PeriodSemester, Label: s, From: second.Format(time.DateOnly), To: fmt.Sprintf("%d-07-31", y2)}, nil
		}
		return bad("the term is 1 or 2")
	}
	return bad("write a month (2026-11), a range (2026-09-01..2026-12-31) or a semester (2026-2027-1)")
}

// Contains reports whether the day (YYYY-MM-DD) is in the period.
func (p Period) Contains(day string) bool { return day != "" && p.From <= day && day <= p.To }

// Months returns the months (YYYY-MM) the period touches, in order.
func (p Period) Months() []string {
	var out []string
	t, _ := time.Parse(time.DateOnly, p.From[:8]+"01")
	for m := t.Format("2006-01"); m <= p.To[:7]; m = t.Format("2006-01") {
		out = append(out, m)
		t = t.AddDate(0, 1, 0)
	}
	return out
}

// Days returns the number of days in the period.
func (p Period) Days() int { return days(p.From, p.To) + 1 }

func isDay(s string) bool {
	_, err := time.Parse(time.DateOnly, s)
	return err == nil && len(s) == 10
}

// days returns to − from in days.
func days(from, to string) int {
	a, err1 := time.Parse(time.DateOnly, from)
	b, err2 := time.Parse(time.DateOnly, to)
	if err1 != nil || err2 != nil {
		return 0
	}
	return int(b.Sub(a).Hours() / 24)
}

// semesterMonths returns the number of months of the semester a month
// belongs to (0 in the summer break), for prorating the per-semester
// observation quota to a month.
func semesterMonths(month string, q Quotas) int {
	fm, _, _ := monthDay(q.FirstTermStart)
	sm, _, _ := monthDay(q.SecondTermStart)
	m, _ := strconv.Atoi(month[5:7])
	// Months of the first term: fm..sm-1 (wrapping over the new year);
	// of the second: sm..7.
	inSecond := m >= sm && m <= 7
	if inSecond {
		return 7 - sm + 1
	}
	inFirst := (m >= fm) || (m < sm)
	if inFirst {
		return (sm - fm + 12) % 12
	}
	return 0
}

// Today returns the server's date in China for a server time.
func Today(now time.Time) string { return now.In(syncproto.ChinaTime).Format(time.DateOnly) }

// chinaDay returns the date in China of a time, "" for the zero time.
func chinaDay(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.In(syncproto.ChinaTime).Format(time.DateOnly)
}
