// Package core is the part of the inspector's web app that must agree
// with the Go phone engine byte for byte: every edit of a record (Set,
// Append, Delete), every merge of a pulled record, form validation and
// calculation, the hazard fold and the push body are made here, by
// syncproto and forms, and compiled to WebAssembly (webapp/cmd/corewasm)
// for the browser. The app's JavaScript keeps records as the canonical
// JSON text this package returns and never re-encodes them.
//
// Each entry point takes one JSON request and returns one JSON answer
// (Call), so the bridge to JavaScript is a single string in, string out
// function and the same calls are tested on the host with go test.
// Errors are answered as {"error":{"code","message","fields"}}, the wire
// shape of syncproto.Error.
//
// The steps mirror mobile.Engine (engine.go, sync.go): where the engine
// reads and writes bbolt, the app reads and writes IndexedDB and calls
// these functions in between. core_test.go checks the two against each
// other with the same clock and ids.
//
// The package is pure like syncproto and forms: no I/O, no clock reads
// (time comes in the request), and it imports only syncproto, forms and
// uuid; never mobile (bbolt) or server.
package core

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/fieldsync/fieldsync/forms"
	"github.com/fieldsync/fieldsync/syncproto"
	"github.com/google/uuid"
)

// Call runs the entry point name on the JSON request req and returns its
// JSON answer. It never panics: a panic inside becomes an EINTERNAL answer,
// so a bug shows as an error in the app rather than a dead page.
func Call(name string, req []byte) (out []byte) {
	defer func() {
		if p := recover(); p != nil {
			out = errorJSON(syncproto.Errorf(syncproto.EINTERNAL, "core: %s: %v", name, p))
		}
	}()
	f, ok := entries[name]
	if !ok {
		return errorJSON(syncproto.Errorf(syncproto.EINVALID, "core: no entry point %q", name))
	}
	v, err := f(req)
	if err != nil {
		return errorJSON(err)
	}
	b, err := syncproto.Marshal(v)
	if err != nil {
		return errorJSON(err)
	}
	return b
}

var entries = map[string]func([]byte) (any, error){
	"edit":       edit,
	"merge":      merge,
	"mergeBase":  mergeBaseEntry,
	"pulled":     pulled,
	"decodePull": decodePull,
	"pushBody":   pushBody,
	"view":       view,
	"evaluate":   evaluate,
	"forms":      builtinForms,
	"wroteTo":    wroteToEntry,
	"newID":      newID,
}

func errorJSON(err error) []byte {
	e, ok := err.(*syncproto.Error)
	if !ok {
		e = &syncproto.Error{Code: syncproto.ErrorCode(err), Message: err.Error()}
	}
	b, _ := syncproto.Marshal(syncproto.ErrorResponse{Error: e})
	return b
}

func decode(req []byte, v any) error {
	d := json.NewDecoder(bytes.NewReader(req))
	d.UseNumber()
	if err := d.Decode(v); err != nil {
		return syncproto.Errorf(syncproto.EINVALID, "core: bad request: %v", err)
	}
	return nil
}

// record decodes a stored record; empty or null is nil.
func record(raw Text) (*syncproto.Record, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	var r syncproto.Record
	if err := decode([]byte(raw), &r); err != nil {
		return nil, err
	}
	return &r, nil
}

func raw(r *syncproto.Record) Text {
	if r == nil {
		return nil
	}
	b, err := syncproto.Marshal(r)
	if err != nil {
		panic(err)
	}
	return b
}

// Text is canonical JSON carried as a JSON string between the app and
// the core, so that the app stores and sends exactly the bytes the core
// made and never re-encodes a record (JavaScript's JSON would reorder
// nothing, but could rewrite numbers). It also accepts a JSON object.
type Text []byte

// MarshalJSON implements json.Marshaler.
func (t Text) MarshalJSON() ([]byte, error) {
	if t == nil {
		return []byte("null"), nil
	}
	return json.Marshal(string(t))
}

// UnmarshalJSON implements json.Unmarshaler.
func (t *Text) UnmarshalJSON(b []byte) error {
	switch {
	case string(b) == "null":
		*t = nil
	case len(b) > 0 && b[0] == '"':
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		*t = Text(s)
	default:
		*t = Text(bytes.Clone(b))
	}
	return nil
}

// Writer is who writes and when: the enrolled device (replica), the
// inspector's user id from the enrollment answer, the stored clock (HLC
// text, empty at first) and the device time.
type Writer struct {
	Replica uuid.UUID `json:"replica"`
	Author  string    `json:"author"`
	Clock   string    `json:"clock"`
	Now     time.Time `json:"now"`
}

func (w Writer) writer() *syncproto.Writer {
	h, err := syncproto.ParseHLC(w.Clock)
	if err != nil {
		h = syncproto.HLC{Replica: w.Replica}
	}
	h.Replica = w.Replica
	return &syncproto.Writer{Replica: w.Replica, Author: w.Author, Clock: h, Now: w.Now}
}

// Draft is mobile.Draft: an edit of a record through its form.
type Draft struct {
	ID          uuid.UUID                  `json:"id"`
	Kind        string                     `json:"kind"`
	SchoolID    string                     `json:"school_id"`
	FormID      string                     `json:"form_id"`
	FormVersion int                        `json:"form_version"`
	Values      map[string]json.RawMessage `json:"values"`
}

// EditRequest is the request of "edit": Op "save" (Draft), "append"
// (Collection, ItemID, Data) or "delete", on Record, the local copy (null
// for a new record). Definition is the published form version the record
// names when it is not built in, so that published questionnaires are
// checked on the phone too.
type EditRequest struct {
	Op         string          `json:"op"`
	Record     Text            `json:"record"`
	Draft      *Draft          `json:"draft,omitempty"`
	Collection string          `json:"collection,omitempty"`
	ItemID     string          `json:"item_id,omitempty"`
	Data       json.RawMessage `json:"data,omitempty"`
	Writer     Writer          `json:"writer"`
	Definition json.RawMessage `json:"definition,omitempty"`
}

// EditResponse is the new local record, the delta for the outbox (null
// when nothing changed) with the version it was based on, the writer's
// clock to store, the id of an appended item, and the record's view.
type EditResponse struct {
	Record Text             `json:"record"`
	Delta  Text             `json:"delta"`
	Base   syncproto.Vector `json:"base"`
	Clock  string           `json:"clock"`
	ItemID string           `json:"item_id,omitempty"`
	View   View             `json:"view"`
}

func edit(req []byte) (any, error) {
	var in EditRequest
	if err := decode(req, &in); err != nil {
		return nil, err
	}
	cur, err := record(in.Record)
	if err != nil {
		return nil, err
	}
	w := in.Writer.writer()
	var next, delta *syncproto.Record
	var base syncproto.Vector
	out := EditResponse{}
	switch in.Op {
	case "save":
		if in.Draft == nil {
			return nil, syncproto.Errorf(syncproto.EINVALID, "core: save needs a draft")
		}
		next, delta, base, err = save(cur, *in.Draft, w, in.Definition)
	case "append":
		if cur == nil {
			return nil, syncproto.Errorf(syncproto.ENOTFOUND, "No record on this phone.")
		}
		c, cerr := syncproto.CanonicalJSON(in.Data)
		if cerr != nil {
			return nil, syncproto.FieldError("The item is not valid JSON.", map[string]string{in.Collection: "is not valid JSON"})
		}
		id := in.ItemID
		if id == "" {
			id = uuid.Must(uuid.NewV7()).String()
		}
		out.ItemID = id
		base = cur.Version()
		next, delta = syncproto.Append(cur, in.Collection, id, c, w)
	case "delete":
		if cur == nil {
			return nil, syncproto.Errorf(syncproto.ENOTFOUND, "No record on this phone.")
		}
		base = cur.Version()
		next, delta = syncproto.Delete(cur, w)
	default:
		return nil, syncproto.Errorf(syncproto.EINVALID, "core: unknown edit %q", in.Op)
	}
	if err != nil {
		return nil, err
	}
	out.Record, out.Delta, out.Base, out.Clock = raw(next), raw(delta), base, w.Clock.String()
	out.View = viewOf(next, in.Writer.Now)
	return out, nil
}

// save is mobile.Engine.save without the store: it validates the whole
// record (current values with the draft's on top) and returns the new
// record and the delta of the fields that changed (nil when none did).
func save(r *syncproto.Record, d Draft, w *syncproto.Writer, def json.RawMessage) (next, delta *syncproto.Record, base syncproto.Vector, err error) {
	values := make(map[string]json.RawMessage, len(d.Values))
	for k, v := range d.Values {
		c, err := syncproto.CanonicalJSON(v)
		if err != nil {
			return nil, nil, base, syncproto.FieldError("The values are not valid JSON.", map[string]string{k: "is not valid JSON"})
		}
		values[k] = c
	}
	isNew := r == nil
	if isNew {
		if d.Kind == "" {
			if d.ID != uuid.Nil {
				return nil, nil, base, syncproto.Errorf(syncproto.ENOTFOUND, "No record %s on this phone.", d.ID)
			}
			return nil, nil, base, syncproto.FieldError("A new record needs a kind.", map[string]string{"kind": "is required"})
		}
		id := d.ID
		if id == uuid.Nil {
			id = uuid.Must(uuid.NewV7())
		}
		r = &syncproto.Record{ID: id, Kind: d.Kind, SchoolID: d.SchoolID, FormID: d.FormID, FormVersion: d.FormVersion,
			CreatedAt: w.Now.UTC().Truncate(time.Millisecond), CreatedBy: w.Author}
		if err := r.Header().Validate(); err != nil {
			return nil, nil, base, err
		}
	} else if (d.Kind != "" && d.Kind != r.Kind) || (d.SchoolID != "" && d.SchoolID != r.SchoolID) ||
		(d.FormID != "" && d.FormID != r.FormID) || (d.FormVersion != 0 && d.FormVersion != r.FormVersion) {
		return nil, nil, base, syncproto.Errorf(syncproto.EINVALID, "Record %s is a %s of form %s v%d; its header cannot change.", r.ID, r.Kind, r.FormID, r.FormVersion)
	}
	changed := make([]string, 0, len(values))
	for k, v := range values {
		if cur := r.Value(k); cur == nil || string(cur) != string(v) {
			changed = append(changed, k)
		}
	}
	slices.Sort(changed)
	if r.FormID != "" {
		all := make(map[string]json.RawMessage, len(r.Fields)+len(values))
		for k := range r.Fields {
			all[k] = r.Value(k)
		}
		maps.Copy(all, values)
		if err := validate(r.FormID, r.FormVersion, def, all, w.Now); err != nil {
			return nil, nil, base, err
		}
	}
	if len(changed) == 0 && !isNew {
		return r, nil, base, nil
	}
	base = r.Version()
	cur := r
	delta = cur.Header()
	for _, k := range changed {
		var d *syncproto.Record
		cur, d = syncproto.Set(cur, k, values[k], w)
		delta, _ = syncproto.Merge(delta, d)
	}
	return cur, delta, base, nil
}

// definition returns the form version: built in, or the published
// definition the app passed; nil when neither (the server still checks).
func definition(formID string, version int, def json.RawMessage) (*forms.Definition, error) {
	if d, ok := forms.BuiltinByID(formID, version); ok {
		return d, nil
	}
	if len(def) == 0 || string(def) == "null" {
		return nil, nil
	}
	var d forms.Definition
	if err := json.Unmarshal(def, &d); err != nil {
		return nil, syncproto.Errorf(syncproto.EINVALID, "core: bad form definition: %v", err)
	}
	if d.ID != formID || d.Version != version {
		return nil, syncproto.Errorf(syncproto.EINVALID, "core: the definition is %s v%d, not %s v%d", d.ID, d.Version, formID, version)
	}
	return &d, nil
}

// validate is mobile.FormsValidator, extended to published forms.
func validate(formID string, version int, def json.RawMessage, values map[string]json.RawMessage, now time.Time) error {
	d, err := definition(formID, version, def)
	if err != nil || d == nil {
		return err
	}
	vals, err := forms.DecodeValues(values)
	if err != nil {
		return err
	}
	return d.Validate(vals, forms.Env{Today: today(now)}).Err()
}

func today(now time.Time) string { return now.In(syncproto.ChinaTime).Format(time.DateOnly) }

// merge joins two states of a record (outbox folding, pulled states).
func merge(req []byte) (any, error) {
	var in struct{ A, B Text }
	if err := decode(req, &in); err != nil {
		return nil, err
	}
	a, err := record(in.A)
	if err != nil {
		return nil, err
	}
	b, err := record(in.B)
	if err != nil {
		return nil, err
	}
	m, err := syncproto.Merge(a, b)
	if err != nil {
		return nil, err
	}
	return raw(m), nil
}

func mergeBaseEntry(req []byte) (any, error) {
	var in struct{ A, B syncproto.Vector }
	if err := decode(req, &in); err != nil {
		return nil, err
	}
	return in.A.Meet(in.B), nil
}

// PulledItem is one pulled record with the phone's two copies of it.
type PulledItem struct {
	Incoming Text `json:"incoming"`
	Server   Text `json:"server"`
	Local    Text `json:"local"`
}

// PulledResult is what to store for one pulled record; Skipped when it
// could not be merged (another record under the same id: a bug or an
// attack, never a conflict; the phone keeps its own).
type PulledResult struct {
	ID      string `json:"id"`
	Server  Text   `json:"server,omitempty"`
	Local   Text   `json:"local,omitempty"`
	View    *View  `json:"view,omitempty"`
	Skipped string `json:"skipped,omitempty"`
}

// pulled merges a page of pulled records into the server and local
// copies and advances the clock past them (mobile's storePage).
func pulled(req []byte) (any, error) {
	var in struct {
		Clock   string       `json:"clock"`
		Replica uuid.UUID    `json:"replica"`
		Now     time.Time    `json:"now"`
		Items   []PulledItem `json:"items"`
	}
	if err := decode(req, &in); err != nil {
		return nil, err
	}
	clock := Writer{Replica: in.Replica, Clock: in.Clock}.writer().Clock
	out := struct {
		Clock   string         `json:"clock"`
		Results []PulledResult `json:"results"`
	}{Results: make([]PulledResult, 0, len(in.Items))}
	for _, it := range in.Items {
		inc, err := record(it.Incoming)
		if err != nil || inc == nil {
			out.Results = append(out.Results, PulledResult{Skipped: "unreadable record"})
			continue
		}
		srv, err1 := record(it.Server)
		loc, err2 := record(it.Local)
		var srv2, loc2 *syncproto.Record
		var err3, err4 error
		if err1 == nil && err2 == nil {
			srv2, err3 = syncproto.Merge(srv, inc)
			loc2, err4 = syncproto.Merge(loc, inc)
		}
		if err := firstErr(err1, err2, err3, err4); err != nil {
			out.Results = append(out.Results, PulledResult{ID: inc.ID.String(), Skipped: err.Error()})
			continue
		}
		v := viewOf(loc2, in.Now)
		out.Results = append(out.Results, PulledResult{ID: inc.ID.String(), Server: raw(srv2), Local: raw(loc2), View: &v})
		clock = clock.Observe(inc.MaxHLC())
	}
	out.Clock = clock.String()
	return out, nil
}

func firstErr(errs ...error) error {
	for _, e := range errs {
		if e != nil {
			return e
		}
	}
	return nil
}

// decodePull reads a pull answer as the Go engine does and returns each
// record in canonical form, so the app stores exactly what the engine
// would.
func decodePull(req []byte) (any, error) {
	var resp syncproto.PullResponse
	d := json.NewDecoder(bytes.NewReader(req))
	d.UseNumber()
	if err := d.Decode(&resp); err != nil {
		return nil, syncproto.Errorf(syncproto.EINVALID, "http: decode answer: %v", err)
	}
	recs := make([]Text, 0, len(resp.Records))
	for _, r := range resp.Records {
		if r != nil {
			recs = append(recs, raw(r))
		}
	}
	return struct {
		Records    []Text    `json:"records"`
		Cursor     string    `json:"cursor"`
		More       bool      `json:"more"`
		ServerTime time.Time `json:"server_time"`
	}{recs, resp.Cursor, resp.More, resp.ServerTime}, nil
}

// pushBody builds the body of POST /v1/sync/push from outbox entries,
// exactly as mobile's push does.
func pushBody(req []byte) (any, error) {
	var in struct {
		DeviceID uuid.UUID `json:"device_id"`
		BatchID  uuid.UUID `json:"batch_id"`
		Changes  []struct {
			OpID   uuid.UUID        `json:"op_id"`
			Record Text             `json:"record"`
			Base   syncproto.Vector `json:"base"`
		} `json:"changes"`
	}
	if err := decode(req, &in); err != nil {
		return nil, err
	}
	out := syncproto.PushRequest{Protocol: syncproto.ProtocolVersion, DeviceID: in.DeviceID, BatchID: in.BatchID}
	for _, c := range in.Changes {
		r, err := record(c.Record)
		if err != nil {
			return nil, err
		}
		out.Changes = append(out.Changes, syncproto.Change{OpID: c.OpID, Record: r, Base: c.Base})
	}
	return out, nil
}

func wroteToEntry(req []byte) (any, error) {
	var in struct {
		Record  Text      `json:"record"`
		Replica uuid.UUID `json:"replica"`
	}
	if err := decode(req, &in); err != nil {
		return nil, err
	}
	r, err := record(in.Record)
	if err != nil || r == nil {
		return false, err
	}
	return r.WrittenBy(in.Replica), nil
}

// newID returns n new UUIDv7s (record, op, batch and item ids), from the
// same generator as the Go engine's.
func newID(req []byte) (any, error) {
	var in struct {
		N int `json:"n"`
	}
	if err := decode(req, &in); err != nil {
		return nil, err
	}
	if in.N < 1 || in.N > 1000 {
		in.N = 1
	}
	ids := make([]string, in.N)
	for i := range ids {
		ids[i] = uuid.Must(uuid.NewV7()).String()
	}
	return ids, nil
}

// evaluate runs a form on values: computed values, relevance and errors
// with both languages, for the live form screen (a lesson's total and
// band as the scores are typed).
func evaluate(req []byte) (any, error) {
	var in struct {
		FormID      string                     `json:"form_id"`
		FormVersion int                        `json:"form_version"`
		Definition  json.RawMessage            `json:"definition"`
		Values      map[string]json.RawMessage `json:"values"`
		Now         time.Time                  `json:"now"`
	}
	if err := decode(req, &in); err != nil {
		return nil, err
	}
	d, err := definition(in.FormID, in.FormVersion, in.Definition)
	if err != nil {
		return nil, err
	}
	if d == nil {
		return nil, syncproto.Errorf(syncproto.ENOTFOUND, "No form %s v%d on this phone.", in.FormID, in.FormVersion)
	}
	vals, err := forms.DecodeValues(in.Values)
	if err != nil {
		return nil, err
	}
	return d.Evaluate(vals, forms.Env{Today: today(in.Now)}), nil
}

func builtinForms([]byte) (any, error) { return forms.Builtin(), nil }

// View is what the app's lists show of a record without loading the
// WebAssembly core: the winning value of each field, the fields in
// conflict with their versions, and a hazard's folded state.
type View struct {
	ID          string                     `json:"id"`
	Kind        string                     `json:"kind"`
	SchoolID    string                     `json:"school_id,omitempty"`
	FormID      string                     `json:"form_id,omitempty"`
	FormVersion int                        `json:"form_version,omitempty"`
	CreatedAt   time.Time                  `json:"created_at"`
	CreatedBy   string                     `json:"created_by,omitempty"`
	Rev         int64                      `json:"rev,omitempty"`
	Deleted     bool                       `json:"deleted"`
	Values      map[string]json.RawMessage `json:"values"`
	Conflicts   map[string][]Version       `json:"conflicts,omitempty"`
	Items       map[string][]ViewItem      `json:"items,omitempty"`
	Hazard      *syncproto.HazardState     `json:"hazard,omitempty"`
	Photos      []syncproto.PhotoRef       `json:"photos,omitempty"`
}

// Version is one of the concurrent values of a field (mobile.Version).
type Version struct {
	Value  json.RawMessage `json:"value"`
	Author string          `json:"author,omitempty"`
	Device string          `json:"device"`
	At     time.Time       `json:"at"`
}

// ViewItem is an item of an append-only collection (a hazard event, a
// comment) with its data.
type ViewItem struct {
	ID       string          `json:"id"`
	Data     json.RawMessage `json:"data"`
	Device   string          `json:"device"`
	At       time.Time       `json:"at"`
	Received *time.Time      `json:"server_received_at,omitempty"`
}

func viewOf(r *syncproto.Record, now time.Time) View {
	v := View{ID: r.ID.String(), Kind: r.Kind, SchoolID: r.SchoolID, FormID: r.FormID, FormVersion: r.FormVersion,
		CreatedAt: r.CreatedAt, CreatedBy: r.CreatedBy, Rev: r.Rev, Deleted: r.IsDeleted(), Values: map[string]json.RawMessage{}}
	for k, f := range r.Fields {
		if w, ok := f.Winner(); ok {
			v.Values[k] = w.Value
		}
		if f.InConflict() {
			if v.Conflicts == nil {
				v.Conflicts = map[string][]Version{}
			}
			for _, fv := range f {
				v.Conflicts[k] = append(v.Conflicts[k], Version{Value: fv.Value, Author: fv.Author, Device: fv.HLC.Replica.String(), At: fv.HLC.Time()})
			}
		}
	}
	for c, items := range r.Items {
		if v.Items == nil {
			v.Items = map[string][]ViewItem{}
		}
		for _, it := range items {
			v.Items[c] = append(v.Items[c], ViewItem{ID: it.ID, Data: it.Data, Device: it.HLC.Replica.String(), At: it.HLC.Time(), Received: it.ServerReceivedAt})
		}
	}
	if r.Kind == forms.KindHazard {
		st := syncproto.FoldHazard(r, now)
		v.Hazard = &st
	}
	v.Photos = syncproto.PhotoRefs(r)
	return v
}

func view(req []byte) (any, error) {
	var in struct {
		Record Text      `json:"record"`
		Now    time.Time `json:"now"`
	}
	if err := decode(req, &in); err != nil {
		return nil, err
	}
	r, err := record(in.Record)
	if err != nil {
		return nil, err
	}
	if r == nil {
		return nil, fmt.Errorf("core: view: no record")
	}
	return viewOf(r, in.Now), nil
}
