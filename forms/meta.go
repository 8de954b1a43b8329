package forms

import (
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/google/uuid"
)

// Meta is what a phone knows about itself and the moment of a save, for
// the metadata fields of a form (Field.Meta). Empty values leave their
// fields empty.
type Meta struct {
	Now         string         // RFC 3339 with the phone's offset: start, end, audit
	Today       string         // YYYY-MM-DD: today
	DeviceID    string         // deviceid
	Username    string         // username: the user the phone is enrolled for
	PhoneNumber string         // phonenumber, when the app knows it
	Email       string         // email, when the app knows it
	Location    map[string]any // start-geopoint: {"lat", "lng", "accuracy_m"}, when known
}

// Audit events the phone appends to an audit field.
const (
	AuditStart = "form_start" // the record was created
	AuditSave  = "form_save"  // the record was saved again
)

// PhoneComputes reports whether the phone must compute the definition's
// values before saving a record: it has metadata, a title field or
// calculations computed once (now, random(), uuid(), once, trigger),
// which only the phone can compute. Forms imported from XLSForm mostly do;
// the phone then stores what Compute gives, as ODK does.
func (d *Definition) PhoneComputes() bool {
	r := d.compile()
	if r.f == nil {
		return false
	}
	if d.TitleField != "" {
		return true
	}
	for _, n := range r.f.all {
		if n.f.Meta != "" || n.once {
			return true
		}
	}
	return false
}

// HasMeta reports whether the definition has metadata fields.
func (d *Definition) HasMeta() bool {
	found := false
	walkFields(d.Fields, func(f *Field) {
		found = found || f.Meta != ""
	})
	return found
}

func walkFields(fields []Field, fn func(*Field)) {
	for i := range fields {
		fn(&fields[i])
		walkFields(fields[i].Fields, fn)
	}
}

// FillMeta returns values with the metadata fields filled in, as the
// phone does on every save: start, today, deviceid, username, phonenumber,
// email and start-geopoint when the record is created (or the field is
// still empty), end on every save, and one line "<now> form_start" or
// "<now> form_save" appended to an audit field. simserial and subscriberid
// stay empty: phones no longer reveal them.
//
// prev are the record's values before this save, nil for a new record:
// metadata belongs to the phone, so a value given without them (a new list
// of answers) keeps theirs. values and prev are not modified; the maps and
// lists on the way to a changed field are copied.
//
// Metadata fields may be at the top level, in groups or among the answers
// of a questionnaire (layout answers); Check keeps them out of repeats.
//
// Values of once calculations (now, random(), uuid(), once, trigger) are
// carried over from prev the same way, unless a field of their trigger
// changed: then they are left empty, for Compute to compute again.
func (d *Definition) FillMeta(values, prev map[string]any, m Meta) map[string]any {
	carry := map[*Field]bool{}
	if r := d.compile(); r.f != nil && prev != nil {
		for _, n := range r.f.all {
			if !n.once || n.scope != nil {
				continue
			}
			changed := false
			for _, t := range n.f.Trigger {
				changed = changed || jsonText(nameValue(values, t)) != jsonText(nameValue(prev, t))
			}
			carry[n.f] = !changed
		}
	}
	return fillMeta(d.Fields, values, prev, m, prev == nil, carry)
}

// nameValue reads a value by the name expressions use: "answers.q1",
// "feedback.to_name", "visit_date".
func nameValue(values map[string]any, name string) any {
	head, rest, more := strings.Cut(name, ".")
	v := values[head]
	if !more {
		return v
	}
	if list, ok := v.([]any); ok {
		_, answers := answerMap(list)
		return nameValue(answers, rest)
	}
	if m, ok := v.(map[string]any); ok {
		return nameValue(m, rest)
	}
	return nil
}

func jsonText(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// answerMap reads a list of answers into qid → value.
func answerMap(v any) ([]any, map[string]any) {
	list, _ := v.([]any)
	answers := map[string]any{}
	for _, e := range list {
		if a, ok := e.(map[string]any); ok {
			if qid, ok := a["qid"].(string); ok {
				answers[qid] = a["value"]
			}
		}
	}
	return list, answers
}

func fillMeta(fields []Field, values, prev map[string]any, m Meta, created bool, carry map[*Field]bool) map[string]any {
	out := make(map[string]any, len(values))
	for k, v := range values {
		out[k] = v
	}
	for i := range fields {
		f := &fields[i]
		switch {
		case f.Type == TypeGroup && f.layout() == LayoutInline:
			out = fillMeta(f.Fields, out, prev, m, created, carry)
		case f.Type == TypeGroup && f.layout() == LayoutAnswers:
			if !hasMetaField(f.Fields) {
				continue
			}
			list, answers := answerMap(out[f.Key])
			_, before := answerMap(prev[f.Key])
			filled := fillMeta(f.Fields, answers, before, m, created, carry)
			out[f.Key] = answerList(list, filled, &node{stored: storedNodes(f.Fields)})
		case f.Type == TypeGroup:
			if !hasMetaField(f.Fields) {
				continue
			}
			sub, _ := out[f.Key].(map[string]any)
			before, _ := prev[f.Key].(map[string]any)
			out[f.Key] = fillMeta(f.Fields, sub, before, m, created, carry)
		case carry[f]:
			if isEmpty(out[f.Key]) && !isEmpty(prev[f.Key]) {
				out[f.Key] = prev[f.Key]
			}
		case f.Meta != "":
			cur := out[f.Key]
			if isEmpty(cur) && !isEmpty(prev[f.Key]) {
				cur = prev[f.Key]
				out[f.Key] = cur
			}
			if v, ok := metaValue(f.Meta, cur, m, created); ok {
				out[f.Key] = v
			}
		}
	}
	return out
}

func hasMetaField(fields []Field) bool {
	found := false
	walkFields(fields, func(f *Field) { found = found || f.Meta != "" || f.Calculation != "" })
	return found
}

// storedNodes are the nodes answerList needs to order new answers: the
// fields stored in an answers group, inline groups expanded.
func storedNodes(fields []Field) []*node {
	var out []*node
	for i := range fields {
		f := &fields[i]
		if f.Type == TypeGroup && f.layout() == LayoutInline {
			out = append(out, storedNodes(f.Fields)...)
			continue
		}
		out = append(out, &node{f: f})
	}
	return out
}

// metaValue is the new value of a metadata field, or false to leave it.
func metaValue(meta string, cur any, m Meta, created bool) (any, bool) {
	once := func(v any, known bool) (any, bool) {
		if !known || (!created && !isEmpty(cur)) {
			return nil, false
		}
		return v, true
	}
	switch meta {
	case MetaStart:
		return once(m.Now, m.Now != "")
	case MetaToday:
		return once(m.Today, m.Today != "")
	case MetaDeviceID:
		return once(m.DeviceID, m.DeviceID != "")
	case MetaUsername:
		return once(m.Username, m.Username != "")
	case MetaPhoneNumber:
		return once(m.PhoneNumber, m.PhoneNumber != "")
	case MetaEmail:
		return once(m.Email, m.Email != "")
	case MetaStartGeopoint:
		return once(m.Location, m.Location != nil)
	case MetaEnd:
		return m.Now, m.Now != ""
	case MetaAudit:
		if m.Now == "" {
			return nil, false
		}
		var lines []any
		if l, ok := cur.([]any); ok && !created {
			lines = append(lines, l...)
		}
		event := AuditSave
		if created || len(lines) == 0 {
			event = AuditStart
		}
		return append(lines, m.Now+" "+event), true
	}
	return nil, false
}

// PublishedRecordID returns the record id of a published form version: a
// UUID with the version-7 layout whose bits come from a hash of the form
// id and version, so the server, every retry and the phone (which finds
// published forms among its reference records) compute the same id.
func PublishedRecordID(formID string, version int) uuid.UUID {
	sum := sha256.Sum256(fmt.Appendf(nil, "fieldsync form %s@%d", formID, version))
	var id uuid.UUID
	copy(id[:], sum[:16])
	id[6] = id[6]&0x0f | 0x70 // version 7
	id[8] = id[8]&0x3f | 0x80 // RFC 4122 variant
	return id
}
