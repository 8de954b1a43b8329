package memstore

import (
	"cmp"
	"context"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/fieldsync/fieldsync/server"
	"github.com/fieldsync/fieldsync/syncproto"
)

// ConsoleStore implements the office console's stores in memory:
// accounts and sessions, the audit log and the read model. Its methods
// are safe for concurrent use.
type ConsoleStore struct {
	mu       sync.Mutex
	accounts map[string]server.Account
	sessions map[string]server.Session
	failures map[string][]time.Time
	audit    []server.AuditEntry // by Seq
	pending  []server.AuditEntry
	hazards  map[string]server.HazardRow
	schools  map[string]server.SchoolRow
	records  map[string]server.RecordRow
}

var _ server.ConsoleStore = (*ConsoleStore)(nil)

// NewConsoleStore returns an empty store.
func NewConsoleStore() *ConsoleStore {
	return &ConsoleStore{accounts: map[string]server.Account{}, sessions: map[string]server.Session{}, failures: map[string][]time.Time{},
		hazards: map[string]server.HazardRow{}, schools: map[string]server.SchoolRow{}}
}

func notFound(what string) error { return syncproto.Errorf(syncproto.ENOTFOUND, "No %s.", what) }

// CreateAccount implements server.AccountStore.
func (s *ConsoleStore) CreateAccount(_ context.Context, a server.Account) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, o := range s.accounts {
		if o.ID == a.ID || strings.EqualFold(o.Login, a.Login) {
			return syncproto.FieldError("The login is taken.", map[string]string{"login": "is taken"})
		}
	}
	s.accounts[a.ID] = a
	return nil
}

// UpdateAccount implements server.AccountStore.
func (s *ConsoleStore) UpdateAccount(_ context.Context, a server.Account) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.accounts[a.ID]; !ok {
		return notFound("account")
	}
	s.accounts[a.ID] = a
	return nil
}

// Account implements server.AccountStore.
func (s *ConsoleStore) Account(_ context.Context, id string) (server.Account, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, ok := s.accounts[id]
	if !ok {
		return server.Account{}, notFound("account")
	}
	return a, nil
}

// AccountByLogin implements server.AccountStore.
func (s *ConsoleStore) AccountByLogin(_ context.Context, login string) (server.Account, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, a := range s.accounts {
		if strings.EqualFold(a.Login, login) {
			return a, nil
		}
	}
	return server.Account{}, notFound("account")
}

// CountAccounts implements server.AccountStore.
func (s *ConsoleStore) CountAccounts(context.Context) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.accounts), nil
}

// PutSession implements server.AccountStore.
func (s *ConsoleStore) PutSession(_ context.Context, ss server.Session) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sessions[ss.ID] = ss
	return nil
}

// Session implements server.AccountStore.
func (s *ConsoleStore) Session(_ context.Context, id string) (server.Session, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ss, ok := s.sessions[id]
	if !ok {
		return server.Session{}, notFound("session")
	}
	return ss, nil
}

// DeleteSession implements server.AccountStore.
func (s *ConsoleStore) DeleteSession(_ context.Context, id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.sessions, id)
	return nil
}

// DeleteSessions implements server.AccountStore.
func (s *ConsoleStore) DeleteSessions(_ context.Context, accountID, keep string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for id, ss := range s.sessions {
		if ss.AccountID == accountID && id != keep {
			delete(s.sessions, id)
		}
	}
	return nil
}

// AddLoginFailure implements server.AccountStore.
func (s *ConsoleStore) AddLoginFailure(_ context.Context, key string, at time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failures[key] = append(s.failures[key], at)
	return nil
}

// LoginFailures implements server.AccountStore.
func (s *ConsoleStore) LoginFailures(_ context.Context, key string, since time.Time) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, t := range s.failures[key] {
		if t.After(since) {
			n++
		}
	}
	return n, nil
}

// ClearLoginFailures implements server.AccountStore.
func (s *ConsoleStore) ClearLoginFailures(_ context.Context, key string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.failures, key)
	return nil
}

// LastAudit implements server.AuditStore.
func (s *ConsoleStore) LastAudit(context.Context) (server.AuditEntry, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.audit) == 0 {
		return server.AuditEntry{}, false, nil
	}
	return s.audit[len(s.audit)-1], true, nil
}

// InsertAudit implements server.AuditStore.
func (s *ConsoleStore) InsertAudit(_ context.Context, entries []server.AuditEntry) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, e := range entries {
		taken := slices.ContainsFunc(s.audit, func(o server.AuditEntry) bool { return o.Seq == e.Seq || o.Key == e.Key })
		if taken {
			return i, syncproto.Errorf(syncproto.ECONFLICT, "audit entry %d or key %s is taken", e.Seq, e.Key)
		}
		s.audit = append(s.audit, e)
		slices.SortFunc(s.audit, func(a, b server.AuditEntry) int { return cmp.Compare(a.Seq, b.Seq) })
	}
	return len(entries), nil
}

// AuditKeys implements server.AuditStore.
func (s *ConsoleStore) AuditKeys(_ context.Context, keys []string) (map[string]bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]bool{}
	for _, e := range s.audit {
		if slices.Contains(keys, e.Key) {
			out[e.Key] = true
		}
	}
	return out, nil
}

// AuditRange implements server.AuditStore.
func (s *ConsoleStore) AuditRange(_ context.Context, after int64, limit int) ([]server.AuditEntry, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []server.AuditEntry
	for _, e := range s.audit {
		if e.Seq > after && (limit <= 0 || len(out) < limit) {
			out = append(out, e)
		}
	}
	return out, nil
}

// AuditOf implements server.AuditStore.
func (s *ConsoleStore) AuditOf(_ context.Context, recordID string) ([]server.AuditEntry, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []server.AuditEntry
	for _, e := range s.audit {
		if e.RecordID == recordID {
			out = append(out, e)
		}
	}
	return out, nil
}

// TamperAudit replaces the detail of the audit entry seq, as someone
// with access to the database could: for the tests of Audit.Verify.
func (s *ConsoleStore) TamperAudit(seq int64, detail string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := range s.audit {
		if s.audit[i].Seq == seq {
			s.audit[i].Detail = detail
		}
	}
}

// PutHazard implements server.ReadModelStore.
func (s *ConsoleStore) PutHazard(_ context.Context, h server.HazardRow) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if old, ok := s.hazards[h.ID]; ok && old.Rev > h.Rev {
		return nil
	}
	s.hazards[h.ID] = h
	return nil
}

// PutSchool implements server.ReadModelStore.
func (s *ConsoleStore) PutSchool(_ context.Context, r server.SchoolRow) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.schools[r.ID] = r
	return nil
}

// Hazard implements server.ReadModelStore.
func (s *ConsoleStore) Hazard(_ context.Context, id string) (server.HazardRow, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	h, ok := s.hazards[id]
	if !ok {
		return server.HazardRow{}, notFound("hazard " + id)
	}
	return h, nil
}

func match(h server.HazardRow, f server.HazardFilter, withStatus bool) bool {
	switch {
	case !f.AllSchools && !slices.Contains(f.Schools, h.SchoolID),
		f.Zone != "" && h.ZoneID != f.Zone,
		f.School != "" && h.SchoolID != f.School,
		f.Severity != "" && h.Severity != f.Severity,
		withStatus && f.Status != "" && h.Status != f.Status,
		withStatus && f.Overdue && !h.Overdue(f.Today):
		return false
	}
	return true
}

// Hazards implements server.ReadModelStore.
func (s *ConsoleStore) Hazards(_ context.Context, f server.HazardFilter) ([]server.HazardRow, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []server.HazardRow
	for _, h := range s.hazards {
		if match(h, f, true) {
			out = append(out, h)
		}
	}
	slices.SortFunc(out, func(a, b server.HazardRow) int {
		if f.Sort == "urgent" {
			return cmp.Or(cmp.Compare(b.SeverityRank, a.SeverityRank), cmp.Compare(a.Deadline, b.Deadline), cmp.Compare(a.ID, b.ID))
		}
		return cmp.Or(b.ReportedAt.Compare(a.ReportedAt), cmp.Compare(a.ID, b.ID))
	})
	limit := f.Limit
	if limit <= 0 || limit > 500 {
		limit = 100
	}
	if len(out) > limit {
		out = out[:limit]
	}
	return out, nil
}

// HazardCounts implements server.ReadModelStore.
func (s *ConsoleStore) HazardCounts(_ context.Context, f server.HazardFilter) (map[string]int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]int{"overdue": 0}
	for _, h := range s.hazards {
		if match(h, f, false) {
			out[h.Status]++
			if h.Overdue(f.Today) {
				out["overdue"]++
			}
		}
	}
	return out, nil
}

// Schools implements server.ReadModelStore.
func (s *ConsoleStore) Schools(context.Context) ([]server.SchoolRow, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]server.SchoolRow, 0, len(s.schools))
	for _, r := range s.schools {
		out = append(out, r)
	}
	slices.SortFunc(out, func(a, b server.SchoolRow) int { return cmp.Compare(a.Name, b.Name) })
	return out, nil
}

// ZoneSchools implements server.ReadModelStore.
func (s *ConsoleStore) ZoneSchools(_ context.Context, zone string) ([]string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, r := range s.schools {
		if r.ZoneID == zone {
			out = append(out, r.ID)
		}
	}
	slices.Sort(out)
	return out, nil
}

// PutRecord implements server.ReadModelStore.
func (s *ConsoleStore) PutRecord(_ context.Context, r server.RecordRow) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.records == nil {
		s.records = map[string]server.RecordRow{}
	}
	if old, ok := s.records[r.ID]; ok && old.Rev > r.Rev {
		return nil
	}
	s.records[r.ID] = r
	return nil
}

// Records implements server.ReadModelStore.
func (s *ConsoleStore) Records(_ context.Context, f server.RecordFilter) ([]server.RecordRow, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []server.RecordRow
	for _, r := range s.records {
		switch {
		case !f.AllSchools && !slices.Contains(f.Schools, r.SchoolID),
			f.School != "" && r.SchoolID != f.School,
			f.Kind != "" && r.Kind != f.Kind,
			f.ReviewState != "" && r.ReviewState != f.ReviewState:
			continue
		}
		out = append(out, r)
	}
	slices.SortFunc(out, func(a, b server.RecordRow) int {
		return cmp.Or(b.CreatedAt.Compare(a.CreatedAt), cmp.Compare(a.ID, b.ID))
	})
	if f.Limit > 0 && len(out) > f.Limit {
		out = out[:f.Limit]
	}
	return out, nil
}

// RecountSchools implements server.ReadModelStore: the in-memory store
// counts from its rows on every call.
func (s *ConsoleStore) RecountSchools(context.Context, []string) error { return nil }

// AuditBy implements server.AuditStore.
func (s *ConsoleStore) AuditBy(_ context.Context, actor string, limit int) ([]server.AuditEntry, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []server.AuditEntry
	for i := len(s.audit) - 1; i >= 0 && (limit <= 0 || len(out) < limit); i-- {
		if s.audit[i].Actor == actor {
			out = append(out, s.audit[i])
		}
	}
	return out, nil
}

// AddPending implements server.AuditStore.
func (s *ConsoleStore) AddPending(_ context.Context, entries []server.AuditEntry) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, e := range entries {
		if !slices.ContainsFunc(s.pending, func(o server.AuditEntry) bool { return o.Key == e.Key }) {
			s.pending = append(s.pending, e)
		}
	}
	return nil
}

// Pending implements server.AuditStore.
func (s *ConsoleStore) Pending(_ context.Context, limit int) ([]server.AuditEntry, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := slices.Clone(s.pending)
	slices.SortFunc(out, func(a, b server.AuditEntry) int { return cmp.Or(a.At.Compare(b.At), cmp.Compare(a.Key, b.Key)) })
	if limit > 0 && len(out) > limit {
		out = out[:limit]
	}
	return out, nil
}

// DeletePending implements server.AuditStore.
func (s *ConsoleStore) DeletePending(_ context.Context, keys []string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.pending = slices.DeleteFunc(s.pending, func(e server.AuditEntry) bool { return slices.Contains(keys, e.Key) })
	return nil
}
