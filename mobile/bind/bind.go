// Package fieldsync is the facade of the phone engine (package mobile)
// for native apps, bound with gomobile (gobind) into a Java/Kotlin
// library for Android and an Objective-C/Swift framework for iOS.
//
// It uses only types gomobile supports: string, bool, int64, []byte,
// error, pointers to exported structs of this package and interfaces
// whose methods use such types. Records, problems and status travel as
// JSON strings whose shapes are documented on each method. The app keeps
// one Phone open for the life of the process and calls Sync when it has a
// network (and from a background task): every method is safe to call
// from any thread, and the engine survives being killed at any point.
//
// Like all of mobile, this package must not import server (or any
// server/... package) or Fiber.
package fieldsync

import (
	"context"
	"encoding/json"
	"strings"
	"sync"

	"github.com/fieldsync/fieldsync/mobile"
	"github.com/fieldsync/fieldsync/syncproto"
	"github.com/google/uuid"
)

// ProgressListener receives sync progress: phase is "push", "pull" or
// "photos"; done and total count changes, records or bytes (total is 0
// when unknown).
type ProgressListener interface {
	OnProgress(phase string, done, total int64)
}

// Phone is the app's handle on the phone database.
type Phone struct {
	e         *mobile.Engine
	serverURL string

	mu     sync.Mutex
	cancel context.CancelFunc
}

// Open opens (or creates) the phone database at path, a file in the app's
// private storage. serverURL is the sync server used by Enroll; a phone
// enrolled before keeps the server it enrolled with.
func Open(path, serverURL string) (*Phone, error) {
	e, err := mobile.Open(path, mobile.Options{Validator: mobile.FormsValidator(nil)})
	if err != nil {
		return nil, err
	}
	return &Phone{e: e, serverURL: serverURL}, nil
}

// Close closes the database.
func (p *Phone) Close() error { return p.e.Close() }

// DeviceID returns the phone's device id.
func (p *Phone) DeviceID() string { return p.e.DeviceID().String() }

// Enroll exchanges a one-time code from the office for this phone's
// credentials. deviceName is shown to the office ("张老师的手机").
func (p *Phone) Enroll(code, deviceName string) error {
	_, err := p.e.Enroll(context.Background(), p.serverURL, code, deviceName)
	return err
}

// SetOffline switches sync off (true) or back on.
func (p *Phone) SetOffline(offline bool) error { return p.e.SetOffline(offline) }

// envelope members of a record JSON that are not field values.
var envelope = map[string]bool{"id": true, "kind": true, "entity": true, "rev": true, "form_id": true, "form_version": true,
	"created_at": true, "created_by": true, "updated_at": true, "updated_by": true, "device_id": true, "hlc": true,
	"server_received_at": true, "schema_version": true, "deleted_at": true}

// KindOfForm returns the record kind a form's records have: the form id
// up to its first dot ("hazard.report" → "hazard").
func KindOfForm(formID string) string {
	k, _, _ := strings.Cut(formID, ".")
	return k
}

// SaveRecordJSON validates and saves a record filled with a form: a JSON
// object of field values. With an "id" member it edits that record (only
// the fields given change); without one it creates a record of the form's
// kind (or of "kind", if given) and returns its new id. "school_id" names
// the school and is also kept as a field. Validation errors come back as
// an error whose message lists the fields.
func (p *Phone) SaveRecordJSON(formID string, version int64, recordJSON string) (string, error) {
	var obj map[string]json.RawMessage
	if err := json.Unmarshal([]byte(recordJSON), &obj); err != nil {
		return "", syncproto.Errorf(syncproto.EINVALID, "The record is not a JSON object: %v.", err)
	}
	d := mobile.Draft{FormID: formID, FormVersion: int(version), Kind: KindOfForm(formID), Values: map[string]json.RawMessage{}}
	if raw, ok := obj["id"]; ok {
		var s string
		if json.Unmarshal(raw, &s) != nil {
			return "", syncproto.FieldError("The record is not valid.", map[string]string{"id": "must be a UUID"})
		}
		id, err := syncproto.ParseID(s)
		if err != nil {
			return "", syncproto.FieldError("The record is not valid.", map[string]string{"id": "must be a UUID"})
		}
		d.ID = id
	}
	if raw, ok := obj["kind"]; ok {
		json.Unmarshal(raw, &d.Kind)
	}
	if raw, ok := obj["school_id"]; ok {
		json.Unmarshal(raw, &d.SchoolID)
	}
	for k, v := range obj {
		if !envelope[k] {
			d.Values[k] = v
		}
	}
	if d.ID != uuid.Nil {
		if cur, err := p.e.Record(d.ID); err == nil {
			// An edit: the header is the record's own.
			d.Kind, d.SchoolID, d.FormID, d.FormVersion = "", "", "", 0
			if formID != "" && (formID != cur.FormID || int(version) != cur.FormVersion) {
				return "", syncproto.Errorf(syncproto.EINVALID, "Record %s was filled with form %s v%d.", cur.ID, cur.FormID, cur.FormVersion)
			}
		}
	}
	r, err := p.e.Save(d)
	if err != nil {
		return "", err
	}
	return r.ID.String(), nil
}

// RecordView is the JSON shape of a record for the app: the header, the
// winning value of each field, the fields in conflict, and the items of
// each append-only collection (their data, in id order).
type recordView struct {
	ID          string                       `json:"id"`
	Kind        string                       `json:"kind"`
	SchoolID    string                       `json:"school_id,omitempty"`
	FormID      string                       `json:"form_id,omitempty"`
	FormVersion int                          `json:"form_version,omitempty"`
	CreatedAt   string                       `json:"created_at"`
	CreatedBy   string                       `json:"created_by,omitempty"`
	Rev         int64                        `json:"rev"`
	Deleted     bool                         `json:"deleted,omitempty"`
	Values      map[string]json.RawMessage   `json:"values"`
	Conflicts   []string                     `json:"conflicts,omitempty"`
	Items       map[string][]json.RawMessage `json:"items,omitempty"`
}

func view(r *syncproto.Record) recordView {
	v := recordView{ID: r.ID.String(), Kind: r.Kind, SchoolID: r.SchoolID, FormID: r.FormID, FormVersion: r.FormVersion,
		CreatedAt: r.CreatedAt.Format("2006-01-02T15:04:05.000Z07:00"), CreatedBy: r.CreatedBy, Rev: r.Rev, Deleted: r.IsDeleted(),
		Values: map[string]json.RawMessage{}, Conflicts: r.ConflictFields()}
	for k := range r.Fields {
		v.Values[k] = r.Value(k)
	}
	for coll, items := range r.Items {
		if v.Items == nil {
			v.Items = map[string][]json.RawMessage{}
		}
		for _, it := range items {
			v.Items[coll] = append(v.Items[coll], it.Data)
		}
	}
	return v
}

func toJSON(v any) (string, error) {
	b, err := syncproto.Marshal(v)
	return string(b), err
}

func parseID(s string) (uuid.UUID, error) {
	id, err := syncproto.ParseID(s)
	if err != nil {
		return uuid.Nil, syncproto.Errorf(syncproto.EINVALID, "%q is not a record id.", s)
	}
	return id, nil
}

// RecordJSON returns one record as {"id","kind","school_id","form_id",
// "form_version","created_at","created_by","rev","deleted","values":{…},
// "conflicts":[…],"items":{"events":[…]}}.
func (p *Phone) RecordJSON(id string) (string, error) {
	rid, err := parseID(id)
	if err != nil {
		return "", err
	}
	r, err := p.e.Record(rid)
	if err != nil {
		return "", err
	}
	return toJSON(view(r))
}

// RecordsJSON returns a JSON array of records (shape of RecordJSON) of a
// kind and school; empty strings match all. Schools the inspector is
// assigned are records of kind "school"; open hazards are kind "hazard".
func (p *Phone) RecordsJSON(kind, schoolID string) (string, error) {
	recs, err := p.e.Records(mobile.Filter{Kind: kind, SchoolID: schoolID})
	if err != nil {
		return "", err
	}
	out := make([]recordView, 0, len(recs))
	for _, r := range recs {
		out = append(out, view(r))
	}
	return toJSON(out)
}

// AppendJSON adds an item (a hazard event, say) to a record's append-only
// collection and returns the item's id.
func (p *Phone) AppendJSON(recordID, collection, itemJSON string) (string, error) {
	rid, err := parseID(recordID)
	if err != nil {
		return "", err
	}
	return p.e.Append(rid, collection, json.RawMessage(itemJSON))
}

// DeleteRecord deletes a record.
func (p *Phone) DeleteRecord(recordID string) error {
	rid, err := parseID(recordID)
	if err != nil {
		return err
	}
	return p.e.Delete(rid)
}

// NewRecordID returns an id for a record about to be created, so that
// its photos can be attached (AttachPhoto) before it is saved: a hazard
// report requires a photo. Pass it as "id" to SaveRecordJSON.
func NewRecordID() string { return mobile.NewRecordID().String() }

// AttachPhoto queues the photo file at path for upload and creates its
// attachment record for the owner record (kind, id and school; the owner
// may not be saved yet). It returns the attachment id to put in the
// owner's photo field. Keep the file until PhotosJSON says it is "done".
func (p *Phone) AttachPhoto(ownerKind, ownerID, schoolID, path string) (string, error) {
	oid, err := parseID(ownerID)
	if err != nil {
		return "", err
	}
	id, _, err := p.e.NewAttachment(ownerKind, oid, schoolID, path, "")
	if err != nil {
		return "", err
	}
	return id.String(), nil
}

// AttachPhotoTo queues a photo and adds it to a saved record in one step:
// to a photo field (a new attachment id) or, for the "events" collection
// of a hazard, as a photo_added event. It returns the photo's reference
// {"sha256","size","content_type"}.
func (p *Phone) AttachPhotoTo(recordID, field, path string) (string, error) {
	rid, err := parseID(recordID)
	if err != nil {
		return "", err
	}
	ref, err := p.e.AttachPhotoTo(rid, field, path, "")
	if err != nil {
		return "", err
	}
	return toJSON(ref)
}

// PhotosJSON lists photos: [{"sha256","path","size","content_type",
// "state":"queued|uploading|done","received","last_error"}].
func (p *Phone) PhotosJSON() (string, error) {
	ph, err := p.e.Photos()
	if err != nil {
		return "", err
	}
	if ph == nil {
		ph = []mobile.PhotoInfo{}
	}
	return toJSON(ph)
}

// Sync pushes the phone's changes, pulls the server's and uploads photos,
// reporting progress to listener (which may be nil). It returns when done
// or failed; call it again after any error. Cancel stops it.
func (p *Phone) Sync(listener ProgressListener) error {
	ctx, cancel := context.WithCancel(context.Background())
	p.mu.Lock()
	p.cancel = cancel
	p.mu.Unlock()
	defer cancel()
	var progress func(mobile.Progress)
	if listener != nil {
		progress = func(pr mobile.Progress) { listener.OnProgress(pr.Phase, pr.Done, pr.Total) }
	}
	_, err := p.e.Sync(ctx, progress)
	return err
}

// Cancel stops a running Sync; what was stored stays stored.
func (p *Phone) Cancel() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cancel != nil {
		p.cancel()
	}
}

// ProblemsJSON lists what the inspector must look at: rejected changes
// {"id","type":"rejected","record_id","code","message","field_errors"}
// and conflicts {"id","type":"conflict","record_id","fields",
// "versions":{field:[{"value","author","device","at"}]}}.
func (p *Phone) ProblemsJSON() (string, error) {
	probs, err := p.e.Problems()
	if err != nil {
		return "", err
	}
	if probs == nil {
		probs = []mobile.Problem{}
	}
	return toJSON(probs)
}

// ResolveConflict settles a field in conflict with the chosen value (JSON).
func (p *Phone) ResolveConflict(recordID, field, valueJSON string) error {
	rid, err := parseID(recordID)
	if err != nil {
		return err
	}
	return p.e.ResolveConflict(rid, field, json.RawMessage(valueJSON))
}

// RetryRejected sends a rejected change again at the next sync.
func (p *Phone) RetryRejected(problemID string) error { return p.e.RetryRejected(problemID) }

// DiscardRejected gives up a rejected change and restores the record to
// what the server and the remaining changes say.
func (p *Phone) DiscardRejected(problemID string) error { return p.e.DiscardRejected(problemID) }

// StatusJSON returns {"device_id","server_url","enrolled","offline",
// "records","outbox","in_flight","photos","photo_bytes","rejected",
// "conflicts","last_sync":{…}}.
func (p *Phone) StatusJSON() (string, error) {
	st, err := p.e.Status()
	if err != nil {
		return "", err
	}
	return toJSON(st)
}

// ErrorCode returns the protocol code of an error returned by this
// package ("invalid", "unauthorized", "offline"…), or "" for nil.
func ErrorCode(err error) string {
	if err == mobile.ErrOffline {
		return "offline"
	}
	return syncproto.ErrorCode(err)
}
