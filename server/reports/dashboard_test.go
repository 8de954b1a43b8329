package reports_test

import (
	"testing"

	"github.com/fieldsync/fieldsync/server/reports"
)

func TestTrend(t *testing.T) {
	for _, tc := range []struct{ period, want string }{
		{"2026-12", "2026-07-01..2026-12-31"},
		{"2026-03", "2025-10-01..2026-03-31"},
		{"2024-02", "2023-09-01..2024-02-29"},
		{"2026-2027-1", "2026-2027-1"},
		{"2026-09-01..2026-09-30", "2026-09-01..2026-09-30"},
		{"nonsense", "nonsense"},
	} {
		if got := reports.Trend(tc.period); got != tc.want {
			t.Errorf("Trend(%q) = %q, want %q", tc.period, got, tc.want)
		}
	}
}
