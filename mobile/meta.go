package mobile

import (
	"bytes"
	"encoding/json"
	"time"

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

// fillMeta returns the metadata fields (forms.Field.Meta: start, end,
// today, deviceid, username, phonenumber, email, audit) that a save of r
// with values changes, as canonical JSON: the phone fills them in itself
// (forms.Definition.FillMeta). Forms the phone does not know, and forms
// without metadata, get nothing.
func (e *Engine) fillMeta(tx *bolt.Tx, r *syncproto.Record, values map[string]json.RawMessage, created bool) (map[string]json.RawMessage, error) {
	def := definition(tx, r.FormID, r.FormVersion)
	if def == nil || !def.HasMeta() {
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
	out := map[string]json.RawMessage{}
	for k, v := range def.FillMeta(all, prev, m) {
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
