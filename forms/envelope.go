package forms

import (
	"bytes"
	"encoding/json"

	"github.com/fieldsync/fieldsync/syncproto"
)

// EnvelopeKeys are the keys of the sync envelope that every syncable record
// carries (docs/domain.md §6.0) plus "entity", which names the record type in API
// views. They are not form fields: strip them before Validate.
var EnvelopeKeys = []string{
	"id", "rev", "entity", "created_at", "updated_at", "created_by", "updated_by",
	"device_id", "hlc", "server_received_at", "schema_version", "deleted_at",
}

// StripEnvelope returns a shallow copy of record without the envelope keys,
// ready for Validate. record itself is not modified.
func StripEnvelope(record map[string]any) map[string]any {
	out := make(map[string]any, len(record))
	for k, v := range record {
		out[k] = v
	}
	for _, k := range EnvelopeKeys {
		delete(out, k)
	}
	return out
}

// StripServerFields returns a shallow copy of values without the top-level
// fields whose origin is "server", such as status folds, flags and
// counters: what a client may send. values itself is not modified.
func (d *Definition) StripServerFields(values map[string]any) map[string]any {
	out := make(map[string]any, len(values))
	for k, v := range values {
		out[k] = v
	}
	for i := range d.Fields {
		if !d.Fields[i].client() {
			delete(out, d.Fields[i].Key)
		}
	}
	return out
}

// DecodeValues decodes a record's field values, each JSON, as Validate
// takes them (numbers as json.Number). A value that is not JSON is an
// EINVALID error naming its field.
func DecodeValues(values map[string]json.RawMessage) (map[string]any, error) {
	vals := make(map[string]any, len(values))
	for k, raw := range values {
		d := json.NewDecoder(bytes.NewReader(raw))
		d.UseNumber()
		var v any
		if err := d.Decode(&v); err != nil {
			return nil, syncproto.FieldError("The values are not valid JSON.", map[string]string{k: "is not valid JSON"})
		}
		vals[k] = v
	}
	return vals, nil
}
