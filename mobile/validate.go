package mobile

import (
	"encoding/json"
	"time"

	"github.com/fieldsync/fieldsync/forms"
)

// FormsValidator returns the Validator the apps use: the built-in form
// definitions of package forms (forms.BuiltinByID and Definition.Validate),
// and the forms the office published that the phone has pulled (it is a
// PublishedValidator): the same checks the server runs on push, with
// "today" taken from now in China time (nil means time.Now). A record of a
// form the phone does not know is not checked here; the server still
// checks it.
func FormsValidator(now func() time.Time) Validator {
	if now == nil {
		now = time.Now
	}
	return formsValidator{now}
}

type formsValidator struct{ now func() time.Time }

// Validate implements Validator for the built-in forms.
func (f formsValidator) Validate(formID string, version int, values map[string]json.RawMessage) error {
	def, ok := forms.BuiltinByID(formID, version)
	if !ok {
		return nil
	}
	return f.ValidatePublished(def, values)
}

// ValidatePublished implements PublishedValidator.
func (f formsValidator) ValidatePublished(def *forms.Definition, values map[string]json.RawMessage) error {
	vals, err := forms.DecodeValues(values)
	if err != nil {
		return err
	}
	env := forms.Env{Today: f.now().In(chinaTime).Format(time.DateOnly)}
	return def.Validate(vals, env).Err()
}

// chinaTime is Asia/Shanghai, which has no daylight saving time: the
// zone of "today" in form rules.
var chinaTime = time.FixedZone("CST", 8*60*60)
