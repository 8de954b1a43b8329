package api

import (
	"testing"
	"time"

	"github.com/fieldsync/fieldsync/syncproto"
)

func TestDashboardPeriods(t *testing.T) {
	at := func(s string) time.Time {
		d, _ := time.ParseInLocation(time.DateOnly, s, syncproto.ChinaTime)
		return d.Add(12 * time.Hour)
	}
	for _, tc := range []struct {
		now, current string
		first, sem   string // the first option, the first semester
		n            int
	}{
		{"2026-12-04", "2026-12", "2026-12", "2026-2027-1", 15},
		{"2026-01-31", "2026-01", "2026-01", "2025-2026-1", 15},
		{"2026-03-01", "2026-03", "2026-03", "2025-2026-2", 15},
		{"2026-12-04", "2026-09-01..2026-09-30", "2026-09-01..2026-09-30", "2026-2027-1", 16}, // a period not offered comes first
	} {
		opts := periodOptions(at(tc.now), tc.current)
		on := 0
		for _, o := range opts {
			if o.On {
				on++
				if o.Value != tc.current {
					t.Errorf("%s: %q selected, want %q", tc.now, o.Value, tc.current)
				}
			}
		}
		if len(opts) != tc.n || opts[0].Value != tc.first || opts[tc.n-3].Value != tc.sem || on != 1 {
			t.Errorf("%s, %s: options %+v", tc.now, tc.current, opts)
		}
	}
}
