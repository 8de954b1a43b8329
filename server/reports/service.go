package reports

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/fieldsync/fieldsync/server"
	"github.com/fieldsync/fieldsync/syncproto"
)

// Service answers the report routes (/v1/reports/...). Who sees what:
//
//	office reviewer, office head, admin   every zone, school and inspector
//	the same, scoped (console accounts)   the schools of their zones and
//	                                      their schools (server.Access)
//	an inspector's enrolled device        their own numbers at the schools
//	                                      assigned to them today
//	anyone else                           nothing (EFORBIDDEN)
//
// Only the office head or an administrator changes the quotas.
type Service struct {
	Store  Store
	Dir    Directory
	Access *server.Access
	// Sync writes the settings record through the push, as the office.
	Sync    server.SyncService
	Replica syncproto.ReplicaID
	// Now is the server clock.
	Now func() time.Time
	// BaseURL prefixes photo links in exports.
	BaseURL string
	// Photos returns the photo source of a principal for the hazard
	// ledger's photo appendix (MediaThumbs); nil: no appendix.
	Photos func(p server.Principal) PhotoSource

	mu    sync.Mutex
	clock syncproto.HLC
}

// NewService returns the reports service.
func NewService(store Store, dir Directory, access *server.Access, sync server.SyncService, replica syncproto.ReplicaID) *Service {
	return &Service{Store: store, Dir: dir, Access: access, Sync: sync, Replica: replica, Now: time.Now}
}

// Query is a report request as the API receives it.
type Query struct {
	Period    string
	Zone      string
	School    string
	Inspector string
}

// scope checks who asks and narrows the filter: the schools to read (nil:
// every school).
func (s *Service) scope(ctx context.Context, p server.Principal, f *Filter) ([]string, error) {
	bad := map[string]string{}
	for name, v := range map[string]string{"zone": f.Zone, "school": f.School, "inspector": f.Inspector} {
		if v != "" {
			if _, err := uuid.Parse(v); err != nil {
				bad[name] = "must be an id (UUID)"
			}
		}
	}
	if len(bad) > 0 {
		return nil, syncproto.FieldError("The filter is not valid.", bad)
	}
	switch {
	case !p.IsDevice() && (p.Has(server.RoleOfficeReviewer) || p.Has(server.RoleOfficeHead)) && p.Scoped && !p.Automation:
		// An office account scoped to zones and schools (the console's
		// accounts) sees the schools Access grants it, nothing more.
		g, err := s.Access.Grant(ctx, p)
		if err != nil {
			return nil, err
		}
		schools := slices.Clone(g.Schools)
		if schools == nil {
			schools = []string{}
		}
		if f.School != "" {
			if !slices.Contains(schools, f.School) {
				return nil, syncproto.Errorf(syncproto.EFORBIDDEN, "You may not see the reports of school %s.", f.School)
			}
			schools = []string{f.School}
		}
		return schools, nil
	case !p.IsDevice() && (p.Has(server.RoleOfficeReviewer) || p.Has(server.RoleOfficeHead)):
		if f.School != "" {
			return []string{f.School}, nil
		}
		return nil, nil
	case p.IsDevice() && p.InspectorID != "":
		if f.Inspector != "" && f.Inspector != p.InspectorID {
			return nil, syncproto.Errorf(syncproto.EFORBIDDEN, "A phone sees only its own inspector's reports.")
		}
		f.Inspector = p.InspectorID
		g, err := s.Access.Grant(ctx, p)
		if err != nil {
			return nil, err
		}
		schools := slices.Clone(g.Schools)
		if schools == nil {
			schools = []string{}
		}
		if f.School != "" {
			if !slices.Contains(schools, f.School) {
				return nil, syncproto.Errorf(syncproto.EFORBIDDEN, "You may not see the reports of school %s.", f.School)
			}
			schools = []string{f.School}
		}
		return schools, nil
	}
	return nil, syncproto.Errorf(syncproto.EFORBIDDEN, "Reports are for the office and for inspectors' phones.")
}

// Quotas computes quota completion (GET /v1/reports/quotas).
func (s *Service) Quotas(ctx context.Context, p server.Principal, q Query) (*Report, error) {
	f := Filter{Zone: q.Zone, School: q.School, Inspector: q.Inspector}
	schools, err := s.scope(ctx, p, &f)
	if err != nil {
		return nil, err
	}
	c, err := Load(ctx, s.Store, s.Dir, Scope{Schools: schools}, s.Now())
	if err != nil {
		return nil, err
	}
	period, err := ParsePeriod(q.Period, c.Quotas)
	if err != nil {
		return nil, err
	}
	return Compute(c, period, f), nil
}

// FeedbackList is the answer of GET /v1/reports/feedback.
type FeedbackList struct {
	Month string           `json:"month"`
	Today string           `json:"today"`
	Forms []*FeedbackDraft `json:"forms"`
}

// Feedback prefills the month's feedback forms in the filter's scope: one
// per inspector and school listed together that month.
func (s *Service) Feedback(ctx context.Context, p server.Principal, q Query) (*FeedbackList, error) {
	f := Filter{Zone: q.Zone, School: q.School, Inspector: q.Inspector}
	schools, err := s.scope(ctx, p, &f)
	if err != nil {
		return nil, err
	}
	period, err := ParsePeriod(q.Period, Defaults())
	if err == nil && period.Kind != PeriodMonth {
		err = syncproto.FieldError("The feedback form is monthly.", map[string]string{"month": "must be a month, YYYY-MM"})
	}
	if err != nil {
		if e, ok := err.(*syncproto.Error); ok && e.Fields["period"] != "" {
			return nil, syncproto.FieldError("The month is not valid.", map[string]string{"month": "must be a month, YYYY-MM"})
		}
		return nil, err
	}
	c, err := Load(ctx, s.Store, s.Dir, Scope{Schools: schools}, s.Now())
	if err != nil {
		return nil, err
	}
	out := &FeedbackList{Month: period.Label, Today: Today(c.Now), Forms: []*FeedbackDraft{}}
	for _, pair := range FeedbackMonths(c, period.Label, f) {
		out.Forms = append(out.Forms, Prefill(c, pair[0], pair[1], period.Label))
	}
	return out, nil
}

// PreparedExport is an export that was checked and may be streamed.
type PreparedExport struct {
	Spec      Spec
	Filename  string
	MIME      string
	principal server.Principal
}

// PrepareExport checks an export request (before any byte is sent).
func (s *Service) PrepareExport(ctx context.Context, p server.Principal, ledger, format string, photos bool, q Query) (*PreparedExport, error) {
	f := Filter{Zone: q.Zone, School: q.School, Inspector: q.Inspector}
	schools, err := s.scope(ctx, p, &f)
	if err != nil {
		return nil, err
	}
	if Columns(ledger) == nil {
		return nil, syncproto.FieldError("Unknown ledger.", map[string]string{"ledger": "is one of hazards, feedback, visits, observations, questionnaires"})
	}
	if format == "" {
		format = "xlsx"
	}
	mime := map[string]string{"xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", "csv": "text/csv; charset=utf-8"}[format]
	if mime == "" {
		return nil, syncproto.FieldError("Unknown export format.", map[string]string{"format": "is xlsx or csv"})
	}
	q2, err := s.Settings(ctx)
	if err != nil {
		return nil, err
	}
	period, err := ParsePeriod(q.Period, q2)
	if err != nil {
		return nil, err
	}
	if photos {
		switch {
		case ledger != LedgerHazards:
			return nil, syncproto.FieldError("The photo appendix is for the hazard ledger.", map[string]string{"photos": "only with the hazards ledger"})
		case f.School == "":
			return nil, syncproto.FieldError("The photo appendix is made for one school.", map[string]string{"school": "is required with photos"})
		case format != "xlsx":
			return nil, syncproto.FieldError("The photo appendix is in XLSX only.", map[string]string{"format": "must be xlsx with photos"})
		case s.Photos == nil:
			return nil, syncproto.Errorf(syncproto.EUNAVAILABLE, "This server has no photo service for the appendix.")
		}
	}
	return &PreparedExport{Spec: Spec{Ledger: ledger, Period: period, Filter: f, Format: format, Schools: schools, Photos: photos},
		Filename: fmt.Sprintf("%s-%s.%s", ledger, period.Label, format), MIME: mime, principal: p}, nil
}

// WriteExport streams a prepared export to w.
func (s *Service) WriteExport(ctx context.Context, w io.Writer, pe *PreparedExport) error {
	ex := &Exporter{Store: s.Store, Dir: s.Dir, BaseURL: s.BaseURL}
	if pe.Spec.Photos && s.Photos != nil {
		ex.Photos = s.Photos(pe.principal)
	}
	return ex.Export(ctx, w, pe.Spec, s.Now())
}

// Settings returns the office's quotas: the settings record's, or the
// defaults.
func (s *Service) Settings(ctx context.Context) (Quotas, error) {
	r, err := s.Sync.Record(ctx, server.RefScope, SettingsRecordID(""))
	switch {
	case syncproto.ErrorCode(err) == syncproto.ENOTFOUND:
		return Defaults(), nil
	case err != nil:
		return Quotas{}, err
	}
	return QuotasFromRecord(r)
}

// PutSettings validates and stores the office's quotas as a change of
// the settings record, pushed like any other change (so it is versioned,
// merged and pulled by phones). Office head or administrator only.
func (s *Service) PutSettings(ctx context.Context, p server.Principal, q Quotas) (Quotas, error) {
	if p.IsDevice() || !(p.Has(server.RoleOfficeHead) || p.Has(server.RoleAdmin)) {
		return Quotas{}, syncproto.Errorf(syncproto.EFORBIDDEN, "Only the office head or an administrator changes the quotas.")
	}
	q = q.withDefaults()
	if err := q.Validate(); err != nil {
		return Quotas{}, err
	}
	raw, err := syncproto.Marshal(q)
	if err != nil {
		return Quotas{}, err
	}
	if raw, err = syncproto.CanonicalJSON(raw); err != nil {
		return Quotas{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	id := SettingsRecordID("")
	cur, err := s.Sync.Record(ctx, server.RefScope, id)
	now := s.Now().UTC()
	switch {
	case syncproto.ErrorCode(err) == syncproto.ENOTFOUND:
		cur = &syncproto.Record{ID: id, Kind: SettingsKind, CreatedAt: now.Truncate(time.Millisecond), CreatedBy: p.UserID}
	case err != nil:
		return Quotas{}, err
	}
	w := &syncproto.Writer{Replica: s.Replica, Author: p.UserID, Clock: s.clock, Now: now}
	_, delta := syncproto.Set(cur, SettingsField, json.RawMessage(raw), w)
	s.clock = w.Clock
	op, err := uuid.NewV7()
	if err != nil {
		return Quotas{}, err
	}
	batch, err := uuid.NewV7()
	if err != nil {
		return Quotas{}, err
	}
	p.Replica = s.Replica
	resp, err := s.Sync.Push(ctx, p, syncproto.PushRequest{Protocol: syncproto.ProtocolVersion, DeviceID: s.Replica, BatchID: batch,
		Changes: []syncproto.Change{{OpID: op, Record: delta}}}, nil)
	if err != nil {
		return Quotas{}, err
	}
	switch r := resp.Results[0]; r.Status {
	case syncproto.StatusRejected:
		return Quotas{}, r.Error
	case syncproto.StatusConflict:
		return Quotas{}, syncproto.Errorf(syncproto.ECONFLICT, "Someone else changed the quotas at the same time; see the conflicts list.")
	}
	return q, nil
}
