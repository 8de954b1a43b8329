package server

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/fieldsync/fieldsync/forms"
	"github.com/fieldsync/fieldsync/syncproto"
)

// Published forms are records of kind FormKind in the reference scope, so
// phones receive every published version on pull like any reference data,
// and the office's publish and retire are ordinary sync writes with the
// same guarantees (exactly once, gap-free pull). A form version's record
// id is derived from its form id and version (FormRecordID): publishing
// the same version twice lands on the same record, which is how a
// published version is kept from ever changing.
const FormKind = "form"

// Fields of a form record.
const (
	formFieldDefinition = "definition" // the forms.Definition, as JSON
	formFieldStatus     = "status"     // "published" or "retired"
)

// FlagRetiredForm is set on a record filled in with a form version the
// office has retired: it is accepted (the inspector filled it in offline,
// in good faith) and shown to reviewers.
const FlagRetiredForm = "retired_form"

// FormRecordID returns the record id of a form version: a UUID with the
// version-7 layout whose bits come from a hash of the form id and version,
// so every server and every retry computes the same id.
func FormRecordID(formID string, version int) uuid.UUID {
	return forms.PublishedRecordID(formID, version)
}

// RecordReader reads a record's current state; SyncService is one.
type RecordReader interface {
	Record(ctx context.Context, scope string, id uuid.UUID) (*syncproto.Record, error)
}

// FormValidator is the RecordValidator of forms: it checks a record
// against the form version it names — a built-in form, or one the office
// published — with the same code the phone runs (forms.Definition.Validate).
// A record of an unknown form version is rejected; one of a retired version
// is accepted and flagged FlagRetiredForm. Records without a form (schools,
// office records) are not checked here.
type FormValidator struct {
	records RecordReader
	today   func() string

	mu    sync.Mutex
	cache map[uuid.UUID]formEntry
	// TTL is how long a published form's status is cached (a definition
	// never changes; only published → retired does). Default 30 s.
	TTL time.Duration
	Now func() time.Time
	// Logger, when set, gets the store errors that stopped a record from
	// being checked (the record is refused with EUNAVAILABLE).
	Logger *slog.Logger
}

// Log attribute keys of the form validator.
const (
	logKeyFormID      = "form_id"
	logKeyFormVersion = "form_version"
	logKeyError       = "error"
)

func (v *FormValidator) logger() *slog.Logger {
	if v.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return v.Logger
}

type formEntry struct {
	def     *forms.Definition
	retired bool
	at      time.Time
}

// NewFormValidator returns a validator reading published forms through
// records, with today giving the office's local date for rules that use it.
func NewFormValidator(records RecordReader, today func() string) *FormValidator {
	return &FormValidator{records: records, today: today, cache: map[uuid.UUID]formEntry{}, TTL: 30 * time.Second, Now: time.Now}
}

// Definition returns a form version and whether it is retired. It fails
// with ENOTFOUND for a version that is neither built in nor published.
func (v *FormValidator) Definition(ctx context.Context, formID string, version int) (*forms.Definition, bool, error) {
	if d, ok := forms.BuiltinByID(formID, version); ok {
		return d, d.Status == "retired", nil
	}
	id := FormRecordID(formID, version)
	v.mu.Lock()
	e, ok := v.cache[id]
	v.mu.Unlock()
	if ok && v.Now().Sub(e.at) < v.TTL {
		return e.def, e.retired, nil
	}
	r, err := v.records.Record(ctx, RefScope, id)
	if err != nil {
		if syncproto.ErrorCode(err) == syncproto.ENOTFOUND {
			return nil, false, syncproto.Errorf(syncproto.ENOTFOUND, "Form %s version %d is not published.", formID, version)
		}
		return nil, false, err
	}
	def, retired, err := decodeFormRecord(r)
	if err != nil {
		return nil, false, err
	}
	v.mu.Lock()
	v.cache[id] = formEntry{def: def, retired: retired, at: v.Now()}
	v.mu.Unlock()
	return def, retired, nil
}

func decodeFormRecord(r *syncproto.Record) (*forms.Definition, bool, error) {
	var def forms.Definition
	if err := json.Unmarshal(r.Value(formFieldDefinition), &def); err != nil {
		return nil, false, fmt.Errorf("form record %s: %w", r.ID, err)
	}
	// A status that does not decode, or is neither of the two, is a
	// damaged record: reading it as published would serve a form the
	// office may have retired.
	var status string
	if err := json.Unmarshal(r.Value(formFieldStatus), &status); err != nil {
		return nil, false, fmt.Errorf("form record %s: status: %w", r.ID, err)
	}
	switch status {
	case "published":
		return &def, false, nil
	case "retired":
		return &def, true, nil
	}
	return nil, false, fmt.Errorf("form record %s: status %q is neither published nor retired", r.ID, status)
}

// ValidateRecord implements RecordValidator.
func (v *FormValidator) ValidateRecord(ctx context.Context, r *syncproto.Record) *syncproto.Error {
	if r.FormID == "" || r.IsDeleted() {
		return nil
	}
	def, retired, err := v.Definition(ctx, r.FormID, r.FormVersion)
	if err != nil {
		if syncproto.ErrorCode(err) == syncproto.ENOTFOUND {
			return syncproto.FieldError("The record names a form version this server does not know.",
				map[string]string{"form_version": fmt.Sprintf("form %s version %d is not published", r.FormID, r.FormVersion)})
		}
		if syncproto.ErrorCode(err) == syncproto.EINTERNAL {
			// The store failed, not the record: do not call it invalid,
			// and keep the store's error text from the phone.
			v.logger().LogAttrs(ctx, slog.LevelWarn, "form not readable", slog.String(logKeyFormID, r.FormID),
				slog.Int(logKeyFormVersion, r.FormVersion), slog.String(logKeyError, err.Error()))
			return syncproto.Errorf(syncproto.EUNAVAILABLE, "The server could not read form %s version %d to check the record; push it again later.", r.FormID, r.FormVersion)
		}
		return asProtoError(err)
	}
	if def.Kind != "" && def.Kind != r.Kind {
		return syncproto.FieldError("The record's kind does not match its form.",
			map[string]string{"kind": fmt.Sprintf("form %s is for %s records", r.FormID, def.Kind)})
	}
	values, perr := RecordValues(r)
	if perr != nil {
		return perr
	}
	if e := def.Validate(values, forms.Env{Today: v.today()}).Err(); e != nil {
		return asProtoError(e)
	}
	if retired {
		// The state is about to be stored: the flag travels with it.
		r.Flags = unionFlag(r.Flags, FlagRetiredForm)
	}
	return nil
}

func unionFlag(flags []string, f string) []string {
	for _, x := range flags {
		if x == f {
			return flags
		}
	}
	out := append(append([]string(nil), flags...), f)
	sort.Strings(out)
	return out
}

// RecordValues returns the winning value of each field of a record,
// decoded as forms.Definition.Validate takes them (numbers as
// json.Number).
func RecordValues(r *syncproto.Record) (map[string]any, *syncproto.Error) {
	out := make(map[string]any, len(r.Fields))
	for k := range r.Fields {
		d := json.NewDecoder(bytes.NewReader(r.Value(k)))
		d.UseNumber()
		var x any
		if err := d.Decode(&x); err != nil {
			return nil, syncproto.FieldError("The record is not valid.", map[string]string{k: "is not valid JSON"})
		}
		out[k] = x
	}
	return out, nil
}

// FormVersion is a form version as the forms API lists it.
type FormVersion struct {
	ID      string     `json:"id"`
	Version int        `json:"version"`
	Title   forms.Text `json:"title"`
	Kind    string     `json:"kind"`
	Status  string     `json:"status"`
	Builtin bool       `json:"builtin"`
}

// Forms publishes, retires and lists form versions. Publishing is a sync
// write of a form record in the reference scope by the server's office
// replica, so it reaches every phone on its next pull.
type Forms struct {
	Sync      SyncService
	Validator *FormValidator
	Replica   syncproto.ReplicaID
	Now       func() time.Time

	mu    sync.Mutex
	clock syncproto.HLC
}

// NewForms returns the forms service.
func NewForms(s SyncService, v *FormValidator, replica syncproto.ReplicaID) *Forms {
	return &Forms{Sync: s, Validator: v, Replica: replica, Now: time.Now}
}

func mayPublish(p Principal) error {
	if p.Has(RoleAdmin) || p.Has(RoleOfficeHead) {
		return nil
	}
	return syncproto.Errorf(syncproto.EFORBIDDEN, "Only the office head or an administrator can publish or retire forms.")
}

// write pushes one delta of a form record as the office and checks that
// it was applied. The office principal p acts through this process's
// replica, which stamped the delta (writer).
func (f *Forms) write(ctx context.Context, p Principal, delta *syncproto.Record) error {
	p.Replica = f.Replica
	op, err := uuid.NewV7()
	if err != nil {
		return fmt.Errorf("forms: op id: %w", err)
	}
	batch, err := uuid.NewV7()
	if err != nil {
		return fmt.Errorf("forms: batch id: %w", err)
	}
	req := syncproto.PushRequest{Protocol: syncproto.ProtocolVersion, DeviceID: f.Replica, BatchID: batch,
		Changes: []syncproto.Change{{OpID: op, Record: delta}}}
	resp, err := f.Sync.Push(ctx, p, req, nil)
	if err != nil {
		return err
	}
	if r := resp.Results[0]; r.Status == syncproto.StatusRejected {
		return r.Error
	} else if r.Status == syncproto.StatusConflict {
		return syncproto.Errorf(syncproto.ECONFLICT, "Someone else changed this form version at the same time; see the conflicts list.")
	}
	return nil
}

func (f *Forms) writer(p Principal) *syncproto.Writer {
	return &syncproto.Writer{Replica: f.Replica, Author: p.UserID, Clock: f.clock, Now: f.Now().UTC()}
}

// What publishing did (PublishResult.Outcome).
const (
	OutcomePublished = "published" // the version was written
	OutcomeUnchanged = "unchanged" // the same content was already published
	OutcomePreview   = "preview"   // a dry run: nothing was written
)

// PublishResult is a form version and what publishing it did.
type PublishResult struct {
	FormVersion
	Outcome string `json:"outcome"`
	// VersionDerived is true when the definition had no version (0) and
	// the server gave it the next one: one above the latest published
	// version of the form, or the latest itself when its content is the
	// same.
	VersionDerived bool `json:"version_derived,omitempty"`
}

// Publish checks a definition (forms.Definition.Check) and publishes it.
// Publishing a version that is already published with the same content
// changes nothing; with other content it fails with ECONFLICT: a
// published version never changes, publish the next version instead. A
// definition with version 0 gets the next version number (see
// PublishResult.VersionDerived). Built-in form ids are reserved.
func (f *Forms) Publish(ctx context.Context, p Principal, def *forms.Definition) (FormVersion, error) {
	res, err := f.publish(ctx, p, def, false)
	return res.FormVersion, err
}

// PublishResult is Publish that also says what it did.
func (f *Forms) PublishResult(ctx context.Context, p Principal, def *forms.Definition) (PublishResult, error) {
	return f.publish(ctx, p, def, false)
}

// Preview checks a definition and says what Publish would do with it,
// without writing anything: the version it would get and whether it would
// be new (OutcomePreview) or is already published (OutcomeUnchanged). It
// fails as Publish would (ECONFLICT for other content under a published
// version).
func (f *Forms) Preview(ctx context.Context, p Principal, def *forms.Definition) (PublishResult, error) {
	return f.publish(ctx, p, def, true)
}

func (f *Forms) publish(ctx context.Context, p Principal, def *forms.Definition, dryRun bool) (PublishResult, error) {
	if err := mayPublish(p); err != nil {
		return PublishResult{}, err
	}
	for _, b := range forms.Builtin() {
		if b.ID == def.ID {
			return PublishResult{}, syncproto.FieldError("The form id is reserved.", map[string]string{"id": fmt.Sprintf("%s is a built-in form; choose another id", def.ID)})
		}
	}
	def.Status = "published"
	// Read, compare and write under one lock: two publishes of one version
	// that both found it unpublished would write it twice as this
	// process's replica with equal version vectors, and the second would
	// silently replace the first instead of being refused.
	f.mu.Lock()
	defer f.mu.Unlock()
	derived := def.Version == 0
	if derived {
		latest, err := f.latestVersion(ctx, p, def.ID)
		if err != nil {
			return PublishResult{}, err
		}
		def.Version = latest
		if same, err := f.samePublished(ctx, def); err != nil || !same {
			if err != nil {
				return PublishResult{}, err
			}
			def.Version = latest + 1
		}
	}
	if err := def.Check(); err != nil {
		return PublishResult{}, asProtoError(err)
	}
	canon, err := canonicalDefinition(def)
	if err != nil {
		return PublishResult{}, err
	}
	res := PublishResult{FormVersion: FormVersion{ID: def.ID, Version: def.Version, Title: def.Title, Kind: def.Kind, Status: "published"},
		Outcome: OutcomePublished, VersionDerived: derived}
	id := FormRecordID(def.ID, def.Version)
	cur, err := f.Sync.Record(ctx, RefScope, id)
	switch {
	case err == nil:
		if !bytes.Equal(cur.Value(formFieldDefinition), canon) {
			return PublishResult{}, syncproto.Errorf(syncproto.ECONFLICT, "Form %s version %d is already published with other content; published versions never change. Publish version %d.", def.ID, def.Version, def.Version+1)
		}
		_, retired, _ := decodeFormRecord(cur)
		if retired {
			res.Status = "retired"
		}
		res.Outcome = OutcomeUnchanged
		return res, nil
	case syncproto.ErrorCode(err) != syncproto.ENOTFOUND:
		return PublishResult{}, err
	}
	if dryRun {
		res.Outcome = OutcomePreview
		return res, nil
	}
	w := f.writer(p)
	rec := &syncproto.Record{ID: id, Kind: FormKind, CreatedAt: w.Now, CreatedBy: p.UserID}
	rec, _ = syncproto.Set(rec, formFieldDefinition, canon, w)
	_, delta := syncproto.Set(rec, formFieldStatus, json.RawMessage(`"published"`), w)
	delta.Fields[formFieldDefinition] = rec.Fields[formFieldDefinition]
	f.clock = w.Clock
	if err := f.write(ctx, p, delta); err != nil {
		return PublishResult{}, err
	}
	return res, nil
}

// canonicalDefinition is the stored form of a definition.
func canonicalDefinition(def *forms.Definition) ([]byte, error) {
	raw, err := syncproto.Marshal(def)
	if err != nil {
		return nil, err
	}
	return syncproto.CanonicalJSON(raw)
}

// samePublished reports whether def's version is published with def's
// content.
func (f *Forms) samePublished(ctx context.Context, def *forms.Definition) (bool, error) {
	if def.Version < 1 {
		return false, nil
	}
	cur, err := f.Sync.Record(ctx, RefScope, FormRecordID(def.ID, def.Version))
	switch {
	case syncproto.ErrorCode(err) == syncproto.ENOTFOUND:
		return false, nil
	case err != nil:
		return false, err
	}
	canon, err := canonicalDefinition(def)
	if err != nil {
		return false, err
	}
	return bytes.Equal(cur.Value(formFieldDefinition), canon), nil
}

// latestVersion returns the highest published version of a form, or 0.
func (f *Forms) latestVersion(ctx context.Context, p Principal, formID string) (int, error) {
	recs, err := f.published(ctx, p)
	if err != nil {
		return 0, err
	}
	latest := 0
	for _, r := range recs {
		def, _, err := decodeFormRecord(r)
		if err != nil {
			return 0, err
		}
		if def.ID == formID && def.Version > latest {
			latest = def.Version
		}
	}
	return latest, nil
}

// published returns the latest state of every published form record,
// read from the reference scope's change log, which holds only forms and
// a few office records.
func (f *Forms) published(ctx context.Context, p Principal) (map[uuid.UUID]*syncproto.Record, error) {
	latest := map[uuid.UUID]*syncproto.Record{}
	cur := syncproto.Cursor{}
	for {
		resp, err := f.Sync.Pull(ctx, p, syncproto.PullRequest{Protocol: syncproto.ProtocolVersion, Cursor: cur.Encode(), Scope: []string{RefScope}}, cur)
		if err != nil {
			return nil, err
		}
		for _, r := range resp.Records {
			if r.Kind == FormKind {
				if old, ok := latest[r.ID]; !ok || r.Rev > old.Rev {
					latest[r.ID] = r
				}
			}
		}
		if !resp.More {
			return latest, nil
		}
		if cur, err = syncproto.DecodeCursor(resp.Cursor); err != nil {
			return nil, err
		}
	}
}

// Retire marks a published version retired: phones stop offering it, and
// records filled in with it are still accepted, flagged FlagRetiredForm.
func (f *Forms) Retire(ctx context.Context, p Principal, formID string, version int) error {
	if err := mayPublish(p); err != nil {
		return err
	}
	cur, err := f.Sync.Record(ctx, RefScope, FormRecordID(formID, version))
	if err != nil {
		if syncproto.ErrorCode(err) == syncproto.ENOTFOUND {
			return syncproto.Errorf(syncproto.ENOTFOUND, "Form %s version %d is not published.", formID, version)
		}
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	w := f.writer(p)
	_, delta := syncproto.Set(cur, formFieldStatus, json.RawMessage(`"retired"`), w)
	f.clock = w.Clock
	if err := f.write(ctx, p, delta); err != nil {
		return err
	}
	if f.Validator != nil {
		f.Validator.mu.Lock()
		delete(f.Validator.cache, cur.ID)
		f.Validator.mu.Unlock()
	}
	return nil
}

// Get returns one form version (built in or published) and whether it
// is retired.
func (f *Forms) Get(ctx context.Context, formID string, version int) (*forms.Definition, bool, error) {
	return f.Validator.Definition(ctx, formID, version)
}

// List returns the built-in forms and every published version, sorted by
// id and version. The published ones are read from the reference scope's
// change log, which holds only forms and a few office records.
func (f *Forms) List(ctx context.Context, p Principal) ([]FormVersion, error) {
	var out []FormVersion
	for _, d := range forms.Builtin() {
		out = append(out, FormVersion{ID: d.ID, Version: d.Version, Title: d.Title, Kind: d.Kind, Status: d.Status, Builtin: true})
	}
	latest, err := f.published(ctx, p)
	if err != nil {
		return nil, err
	}
	for _, r := range latest {
		def, retired, err := decodeFormRecord(r)
		if err != nil {
			return nil, err
		}
		st := "published"
		if retired {
			st = "retired"
		}
		out = append(out, FormVersion{ID: def.ID, Version: def.Version, Title: def.Title, Kind: def.Kind, Status: st})
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].ID != out[j].ID {
			return out[i].ID < out[j].ID
		}
		return out[i].Version < out[j].Version
	})
	return out, nil
}
