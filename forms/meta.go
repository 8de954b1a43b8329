package forms

import (
	"crypto/sha256"
	"fmt"

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
func (d *Definition) FillMeta(values, prev map[string]any, m Meta) map[string]any {
	return fillMeta(d.Fields, values, prev, m, prev == nil)
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

func fillMeta(fields []Field, values, prev map[string]any, m Meta, created bool) map[string]any {
	out := make(map[string]any, len(values))
	for k, v := range values {
		out[k] = v
	}
	for i := range fields {
		f := &fields[i]
		switch {
		case f.Type == TypeGroup && f.layout() == LayoutInline:
			out = fillMeta(f.Fields, out, prev, m, created)
		case f.Type == TypeGroup && f.layout() == LayoutAnswers:
			if !hasMetaField(f.Fields) {
				continue
			}
			list, answers := answerMap(out[f.Key])
			_, before := answerMap(prev[f.Key])
			filled := fillMeta(f.Fields, answers, before, m, created)
			out[f.Key] = answerList(list, filled, &node{stored: storedNodes(f.Fields)})
		case f.Type == TypeGroup:
			if !hasMetaField(f.Fields) {
				continue
			}
			sub, _ := out[f.Key].(map[string]any)
			before, _ := prev[f.Key].(map[string]any)
			out[f.Key] = fillMeta(f.Fields, sub, before, m, created)
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
	walkFields(fields, func(f *Field) { found = found || f.Meta != "" })
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
