package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sort"
	"time"
)

// MaintenanceStore is what keeps the sync store from growing without
// bound. Every method is safe to run from several processes at once.
type MaintenanceStore interface {
	// Scopes returns every scope that has a change log, with the last
	// sequence number allocated in it.
	Scopes(ctx context.Context) (map[string]int64, error)
	// ForgetJournal deletes the op ids, batch answers and claims recorded
	// before a time, and returns how many documents it deleted.
	ForgetJournal(ctx context.Context, before time.Time) (int64, error)
	// Compact is SyncStore.Compact.
	Compact(ctx context.Context, scope string, opt CompactOptions) (CompactResult, error)
	// Claim takes the run named key, once across all processes: it
	// reports false when the key was taken before.
	Claim(ctx context.Context, key string) (bool, error)
}

// Maintenance keeps storage from growing: on a schedule, one process of
// all that share the database forgets the exactly-once journal past its
// retention and compacts every scope written since its last compaction.
//
// How long a phone may stay offline, and what happens after:
//
//   - Up to JournalRetention (90 days by default, never less than
//     MaxOffline), a batch a phone sends again gets its first answer and
//     writes nothing (exactly once).
//   - Later, the journal has forgotten it: the batch is applied again.
//     That writes nothing new either (a change is a join: what the record
//     holds stays, arrival times included), but it is answered as if new,
//     and an op id reused for other content is no longer refused.
//   - Tombstones older than TombstoneRetention (180 days, more than the
//     journal's) are forgotten; a cursor from before that point gets 410
//     and the phone starts over, keeping its unsynced edits. An edit of a
//     record deleted and forgotten meanwhile is refused if it names what
//     others wrote (server/admit.go), or creates the record anew if it
//     only holds the phone's own writes.
//
// Compaction replaces the entries of superseded revisions by no-ops, so a
// record's current state is read without its old revisions (see
// mongo.SyncStore), and storage per record stays about one state.
type Maintenance struct {
	Store MaintenanceStore
	// JournalRetention and TombstoneRetention: see the type's doc.
	JournalRetention   time.Duration
	TombstoneRetention time.Duration
	// Every is the period of runs; one process runs each period.
	Every  time.Duration
	Now    func() time.Time
	Logger *slog.Logger
}

// MaxOffline is how long a phone may stay offline and still have every
// batch it sends again answered exactly once: a phone that sent a batch,
// lost the answer and came back within MaxOffline gets that answer. The
// journal's retention may not be shorter (Maintenance.Check).
const MaxOffline = 90 * 24 * time.Hour

// Defaults and bounds of the maintenance settings. A run is cheap when
// nothing was written, but each claims a key; runs further apart than
// MaxMaintenancePeriod let the journal and superseded revisions pile up
// between them.
const (
	DefaultJournalRetention   = MaxOffline
	DefaultTombstoneRetention = 2 * MaxOffline
	DefaultMaintenancePeriod  = 6 * time.Hour
	MinMaintenancePeriod      = time.Minute
	MaxMaintenancePeriod      = 7 * 24 * time.Hour
)

// NewMaintenance returns the maintenance of store with the default
// retentions and period.
func NewMaintenance(store MaintenanceStore) *Maintenance {
	return &Maintenance{Store: store, JournalRetention: DefaultJournalRetention, TombstoneRetention: DefaultTombstoneRetention,
		Every: DefaultMaintenancePeriod, Now: time.Now, Logger: slog.New(slog.DiscardHandler)}
}

// SettingError is a maintenance setting Check refuses. Setting is the
// name of the Maintenance field.
type SettingError struct {
	Setting string
	Reason  string
}

func (e *SettingError) Error() string { return e.Setting + ": " + e.Reason }

// MaintenanceReport says what one run did.
type MaintenanceReport struct {
	Ran        bool  `json:"ran"` // false: another process ran this period
	Forgotten  int64 `json:"forgotten"`
	Scopes     int   `json:"scopes"`     // scopes compacted
	Superseded int   `json:"superseded"` // entries replaced by no-ops
	Tombstones int   `json:"tombstones"` // deleted records forgotten
}

// Check validates the settings: every problem, each a *SettingError.
func (m *Maintenance) Check() error {
	var errs []error
	bad := func(setting, format string, a ...any) {
		errs = append(errs, &SettingError{Setting: setting, Reason: fmt.Sprintf(format, a...)})
	}
	if m.Every < MinMaintenancePeriod || m.Every > MaxMaintenancePeriod {
		bad("Every", "%s is not between %s and %s", FormatDays(m.Every), FormatDays(MinMaintenancePeriod), FormatDays(MaxMaintenancePeriod))
	}
	if m.JournalRetention < MaxOffline {
		bad("JournalRetention", "%s is shorter than the %s a phone may stay offline (server.MaxOffline): a batch sent again after that would no longer be answered exactly once", FormatDays(m.JournalRetention), FormatDays(MaxOffline))
	}
	if m.TombstoneRetention <= m.JournalRetention {
		bad("TombstoneRetention", "%s must exceed the journal retention (%s): a batch sent again must never recreate a forgotten record", FormatDays(m.TombstoneRetention), FormatDays(m.JournalRetention))
	}
	return errors.Join(errs...)
}

// FormatDays formats d in whole days when it is a number of days ("90d"), as
// time.Duration does otherwise.
func FormatDays(d time.Duration) string {
	if d > 0 && d%(24*time.Hour) == 0 {
		return fmt.Sprintf("%dd", d/(24*time.Hour))
	}
	return d.String()
}

// Once runs the maintenance of the current period, unless another process
// did.
func (m *Maintenance) Once(ctx context.Context) (MaintenanceReport, error) {
	var rep MaintenanceReport
	now := m.Now().UTC()
	period := now.Truncate(m.Every)
	ok, err := m.Store.Claim(ctx, "maintenance/"+period.Format(time.RFC3339))
	if err != nil || !ok {
		return rep, err
	}
	rep.Ran = true
	if rep.Forgotten, err = m.Store.ForgetJournal(ctx, now.Add(-m.JournalRetention)); err != nil {
		return rep, err
	}
	scopes, err := m.Store.Scopes(ctx)
	if err != nil {
		return rep, err
	}
	names := make([]string, 0, len(scopes))
	for sc := range scopes {
		names = append(names, sc)
	}
	sort.Strings(names)
	for _, sc := range names {
		top := scopes[sc]
		// One compaction per scope and position: a scope not written
		// since is skipped, by this process or any other.
		ok, err := m.Store.Claim(ctx, fmt.Sprintf("compact/%s/%d", sc, top))
		if err != nil {
			return rep, err
		}
		if !ok {
			continue
		}
		res, err := m.Store.Compact(ctx, sc, CompactOptions{UpTo: top, TombstonesBefore: now.Add(-m.TombstoneRetention)})
		if err != nil {
			return rep, fmt.Errorf("compact %s: %w", sc, err)
		}
		rep.Scopes++
		rep.Superseded += res.Superseded
		rep.Tombstones += res.Tombstones
	}
	return rep, nil
}

// Run runs Once every period, starting after a random part of the first,
// until ctx is done, and logs what each run did.
func (m *Maintenance) Run(ctx context.Context) {
	wait := time.Duration(rand.Int64N(int64(m.Every)))
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		rep, err := m.Once(ctx)
		switch {
		case err != nil && ctx.Err() == nil:
			m.Logger.Error("maintenance", "err", err)
		case rep.Ran:
			m.Logger.Info("maintenance", "forgotten", rep.Forgotten, "scopes", rep.Scopes, "superseded", rep.Superseded, "tombstones", rep.Tombstones)
		}
		wait = m.Every
	}
}
