package server

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestMaintenanceCheck(t *testing.T) {
	const day = 24 * time.Hour
	tests := []struct {
		name                 string
		journal, tomb, every time.Duration
		want                 map[string]string // setting → words its reason must hold; empty: accepted
	}{
		{name: "Defaults", journal: DefaultJournalRetention, tomb: DefaultTombstoneRetention, every: DefaultMaintenancePeriod},
		{name: "LongerRetentions", journal: 365 * day, tomb: 730 * day, every: time.Hour},
		{name: "JournalAtTheOfflineBound", journal: MaxOffline, tomb: MaxOffline + day, every: MinMaintenancePeriod},
		{name: "WeeklyRuns", journal: MaxOffline, tomb: 2 * MaxOffline, every: MaxMaintenancePeriod},
		{name: "JournalShorterThanOffline", journal: MaxOffline - time.Hour, tomb: 2 * MaxOffline, every: time.Hour,
			want: map[string]string{"JournalRetention": "exactly once"}},
		{name: "JournalOneDay", journal: day, tomb: 2 * MaxOffline, every: time.Hour,
			want: map[string]string{"JournalRetention": "1d is shorter than the 90d"}},
		{name: "TombstonesAsLongAsJournal", journal: MaxOffline, tomb: MaxOffline, every: time.Hour,
			want: map[string]string{"TombstoneRetention": "recreate"}},
		{name: "TombstonesShorter", journal: 120 * day, tomb: 100 * day, every: time.Hour,
			want: map[string]string{"TombstoneRetention": "must exceed the journal retention (120d)"}},
		{name: "PeriodZero", journal: MaxOffline, tomb: 2 * MaxOffline, every: 0,
			want: map[string]string{"Every": "between"}},
		{name: "PeriodTooShort", journal: MaxOffline, tomb: 2 * MaxOffline, every: 30 * time.Second,
			want: map[string]string{"Every": "between 1m0s and 7d"}},
		{name: "PeriodTooLong", journal: MaxOffline, tomb: 2 * MaxOffline, every: 8 * day,
			want: map[string]string{"Every": "8d is not between"}},
		{name: "AllAtOnce", journal: day, tomb: day, every: -time.Hour,
			want: map[string]string{"JournalRetention": "offline", "TombstoneRetention": "exceed", "Every": "between"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := &Maintenance{JournalRetention: tt.journal, TombstoneRetention: tt.tomb, Every: tt.every}
			err := m.Check()
			got := map[string]string{}
			if err != nil {
				for _, e := range err.(interface{ Unwrap() []error }).Unwrap() {
					var se *SettingError
					if !errors.As(e, &se) {
						t.Fatalf("%v is not a *SettingError", e)
					}
					got[se.Setting] = se.Reason
				}
			}
			if len(got) != len(tt.want) {
				t.Fatalf("Check() = %v, want problems with %v", err, tt.want)
			}
			for setting, words := range tt.want {
				if !strings.Contains(got[setting], words) {
					t.Errorf("%s: %q does not say %q", setting, got[setting], words)
				}
			}
		})
	}
}

func TestNewMaintenanceDefaultsPassCheck(t *testing.T) {
	if err := NewMaintenance(nil).Check(); err != nil {
		t.Fatalf("the defaults are refused: %v", err)
	}
}
