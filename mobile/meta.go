package mobile

import (
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"time"

	"github.com/google/uuid"

	"github.com/fieldsync/fieldsync/forms"
	"github.com/fieldsync/fieldsync/syncproto"
	bolt "go.etcd.io/bbolt"
)

// definition returns a form version the phone knows: built in, or
// published by the office and pulled with the reference records. It is
// nil when the phone has not seen the version.
func definition(tx *bolt.Tx, formID string, version int) *forms.Definition {
	if d, ok := forms.BuiltinByID(formID, version); ok {
		return d
	}
	r, err := getRecord(tx, bucketRecords, forms.PublishedRecordID(formID, version))
	if err != nil || r == nil || r.Value("definition") == nil {
		return nil
	}
	d := new(forms.Definition)
	if json.Unmarshal(r.Value("definition"), d) != nil || d.ID != formID || d.Version != version {
		return nil
	}
	return d
}

// fillMeta returns the fields that a save of r with values changes, as
// canonical JSON, for forms whose values only the phone can compute
// (forms.Definition.PhoneComputes, as XLSForm forms mostly are): the
// metadata (forms.Definition.FillMeta: start, end, today, deviceid,
// username, phonenumber, email, audit), then Compute's values (once
// calculations with the phone's clock and randomness, the record's title,
// the other calculations; values that do not apply removed, as null).
// Forms the phone does not know, and the built-in forms, get nothing.
func (e *Engine) fillMeta(tx *bolt.Tx, r *syncproto.Record, values map[string]json.RawMessage, created bool) (map[string]json.RawMessage, error) {
	def := definition(tx, r.FormID, r.FormVersion)
	if def == nil || !def.PhoneComputes() {
		return nil, nil
	}
	decode := func(into map[string]any, k string, raw json.RawMessage) {
		d := json.NewDecoder(bytes.NewReader(raw))
		d.UseNumber()
		var v any
		if d.Decode(&v) == nil {
			into[k] = v
		}
	}
	var prev map[string]any // the record as stored, nil when it is new
	if !created {
		prev = map[string]any{}
		for k := range r.Fields {
			decode(prev, k, r.Value(k))
		}
	}
	all := map[string]any{} // the record with the draft on top
	for k, v := range prev {
		all[k] = v
	}
	for k, v := range values {
		decode(all, k, v)
	}
	_, _, author, device := e.settings()
	now := e.now().In(chinaTime)
	m := forms.Meta{Now: now.Format(time.RFC3339), Today: now.Format(time.DateOnly), DeviceID: device.String(),
		Username: author, PhoneNumber: e.opts.PhoneNumber, Email: e.opts.Email}
	filled := def.FillMeta(all, prev, m)
	// Then the calculations only the phone can compute (once ones, the
	// record's title) and the rest, as ODK stores a record: Compute's
	// values, with what does not apply removed.
	env := forms.Env{Today: m.Today, Now: m.Now, Random: rand.Float64, UUID: uuid.NewString}
	if computed, err := def.Compute(filled, env); err == nil {
		filled = computed
	}
	out := map[string]json.RawMessage{}
	for k := range all {
		if _, kept := filled[k]; !kept {
			out[k] = json.RawMessage("null") // removed: it does not apply
		}
	}
	for k, v := range filled {
		b, err := syncproto.Marshal(v)
		if err != nil {
			return nil, err
		}
		c, err := syncproto.CanonicalJSON(b)
		if err != nil {
			return nil, err
		}
		prev, inDraft := values[k]
		if !inDraft {
			prev = r.Value(k)
		}
		if prev != nil && bytes.Equal(prev, c) {
			continue
		}
		out[k] = c
	}
	return out, nil
}
