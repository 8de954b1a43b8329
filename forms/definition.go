package forms

import (
	"sync/atomic"
)

// Record kinds: the entity a Definition validates (docs/domain.md §6.3).
const (
	KindVisit                 = "visit"
	KindLessonObservation     = "lesson_observation"
	KindQuestionnaireResponse = "questionnaire_response"
	KindHazard                = "hazard"
	KindHazardEvent           = "hazard_event"
	KindMonthlyFeedback       = "monthly_feedback"
)

// Definition statuses. A published definition never changes; a new version
// is published instead. Retired versions stay readable so that old records
// still validate.
const (
	StatusDraft     = "draft"
	StatusPublished = "published"
	StatusRetired   = "retired"
)

// Field types.
const (
	TypeText           = "text"            // a string
	TypeInteger        = "integer"         // a JSON number without a fraction
	TypeDecimal        = "decimal"         // a decimal as a string ("87.5", docs/domain.md §6.0); JSON numbers are accepted too
	TypeDate           = "date"            // "YYYY-MM-DD"
	TypeTime           = "time"            // "HH:MM" or "HH:MM:SS"
	TypeDateTime       = "datetime"        // RFC 3339 with an offset
	TypeBoolean        = "boolean"         // true or false
	TypeSelectOne      = "select_one"      // one value of a choice list
	TypeSelectMultiple = "select_multiple" // an array of distinct values of a choice list
	TypeTextList       = "text_list"       // an array of strings, such as ids of other records
	TypePhoto          = "photo"           // an array of attachment ids (UUIDs)
	TypeGeopoint       = "geopoint"        // {"lat", "lng", "accuracy_m"}
	TypeNote           = "note"            // text shown to the user; holds no value
	TypeGroup          = "group"           // fields shown and stored together (see Layout)
	TypeRepeat         = "repeat"          // an array of rows, each an object of the child fields

	TypeRange       = "range"       // a number from Parameters start to end in steps of step (a slider)
	TypeRank        = "rank"        // an array ordering every allowed value of a choice list
	TypeGeotrace    = "geotrace"    // an array of at least 2 points {"lat", "lng", "accuracy_m"}
	TypeGeoshape    = "geoshape"    // an array of at least 3 points, a ring (the first point may be repeated last)
	TypeAudio       = "audio"       // an array of attachment ids (UUIDs), like photo
	TypeVideo       = "video"       // an array of attachment ids (UUIDs), like photo
	TypeFile        = "file"        // an array of attachment ids (UUIDs), like photo
	TypeBarcode     = "barcode"     // a string read by the camera
	TypeAcknowledge = "acknowledge" // "OK" once the person confirmed, otherwise empty
)

// Metadata a phone fills in by itself (Field.Meta); see FillMeta.
const (
	MetaStart         = "start"          // datetime: when the record was created on the phone
	MetaEnd           = "end"            // datetime: when the record was last saved
	MetaToday         = "today"          // date: the day the record was created
	MetaDeviceID      = "deviceid"       // text: the phone's device id
	MetaUsername      = "username"       // text: the user the phone is enrolled for
	MetaPhoneNumber   = "phonenumber"    // text: the phone's number, when the app knows it
	MetaEmail         = "email"          // text: the user's e-mail address, when the app knows it
	MetaSimSerial     = "simserial"      // text: left empty (phones no longer reveal it)
	MetaSubscriberID  = "subscriberid"   // text: left empty (phones no longer reveal it)
	MetaAudit         = "audit"          // text_list: "<time> <event>" lines the phone appends
	MetaStartGeopoint = "start-geopoint" // geopoint: where the record was created, when known
)

// Group layouts: how the values of a group's fields are stored.
const (
	// LayoutObject stores the children in a nested object under the group's
	// key: {"feedback": {"to_name": "…"}}. Errors read "feedback.to_name".
	LayoutObject = "object"
	// LayoutInline stores the children next to the group, as if there were
	// no group. The group only shows them together and shares its relevance.
	LayoutInline = "inline"
	// LayoutAnswers stores the children as a list of answers under the
	// group's key, the shape of a questionnaire response (docs/domain.md E16):
	// {"answers": [{"qid": "Q1", "value": "90_120"}, …]}. Each child's key is
	// a qid. Errors about an answer read "answers.Q1"; errors about the list
	// itself read "answers[3].qid".
	LayoutAnswers = "answers"
)

// Field origins.
const (
	// OriginClient fields are filled in by people (the default).
	OriginClient = "client"
	// OriginServer fields are set or derived by the server (the S and D
	// columns of docs/domain.md §6): status folds, flags, counters, overdue,
	// needs_review, linked ids. Validate ignores whatever a client sends in
	// them, and expressions cannot read them.
	OriginServer = "server"
)

// Text is a message or label in Simplified Chinese, with an English
// fallback. The UI shows ZH and falls back to EN when ZH is empty.
type Text struct {
	ZH string `json:"zh,omitempty" validate:"max=2000"`
	EN string `json:"en,omitempty" validate:"max=2000"`
}

// String returns the Chinese text, or the English one when there is no
// Chinese text.
func (t Text) String() string {
	if t.ZH != "" {
		return t.ZH
	}
	return t.EN
}

// IsZero reports whether t has no text in any language.
func (t Text) IsZero() bool { return t.ZH == "" && t.EN == "" }

// Definition is one version of a form. Once published it never changes:
// records name the ID and Version they were filled with, and old versions
// stay available to validate old records.
//
// A Definition must not be modified after its first Check, Validate or
// Compute call: those calls compile its expressions once and keep the result.
type Definition struct {
	// ID names the form across versions, for example "visit.routine".
	ID string `json:"id" validate:"required,max=100,formid"`
	// Version is 1, 2, 3… Published versions are immutable.
	Version int `json:"version" validate:"min=1"`
	// Kind is the record kind the form validates (KindVisit, …).
	Kind   string `json:"kind" validate:"required,oneof=visit lesson_observation questionnaire_response hazard hazard_event monthly_feedback"`
	Title  Text   `json:"title"`
	Status string `json:"status" validate:"required,oneof=draft published retired"`
	// UniqueKey names top-level fields whose values together identify at
	// most one record, for example inspector_id, school_id and month for
	// the monthly feedback form. The server enforces it; Validate does not
	// see other records.
	UniqueKey []string `json:"unique_key,omitempty" validate:"omitempty,dive,required"`
	Fields    []Field  `json:"fields" validate:"required,min=1,max=500,dive"`
	// Choices maps a list name to its choices.
	Choices map[string][]Choice `json:"choices,omitempty" validate:"omitempty,max=200,dive,keys,listname,endkeys,required,max=5000,dive"`
	// AllowChoiceDuplicates lets a choice list hold one value twice, told
	// apart by a choice filter (cascading selects).
	AllowChoiceDuplicates bool `json:"allow_choice_duplicates,omitempty"`
	// TitleField names a top-level calculated field whose value is a
	// record's display title on the phone and in the office.
	TitleField string `json:"title_field,omitempty" validate:"max=64"`
	// Style is a UI hint for the whole form ("pages", "theme-grid").
	Style string `json:"style,omitempty" validate:"max=100"`
	// Translations hold texts in languages other than Chinese and English:
	// language → definition path of the text ("title",
	// "fields[10].fields[2].label", "choices.yes_no[0].label") → text.
	// The language is written as the form's author wrote it, such as
	// "Tibetan (bo)" or "default".
	Translations map[string]map[string]string `json:"translations,omitempty" validate:"omitempty,max=20,dive,keys,max=100,endkeys,max=5000,dive,keys,max=300,endkeys,max=2000"`
	// Tables are data published with the form for pulldata(): file name
	// without extension → columns and rows.
	Tables map[string]*Table `json:"tables,omitempty" validate:"omitempty,max=20,dive,keys,max=100,endkeys,required"`

	compiled atomic.Pointer[compileResult]
}

// Field is one question, value or container of a Definition.
type Field struct {
	// Key is the field's name in the record, unique among the fields stored
	// in the same object: letters, digits and underscores, starting with a
	// letter.
	Key  string `json:"key" validate:"required,max=64,fieldkey"`
	Type string `json:"type" validate:"required,oneof=text integer decimal date time datetime boolean select_one select_multiple text_list photo geopoint note group repeat range rank geotrace geoshape audio video file barcode acknowledge"`
	// Origin is OriginClient (the default when empty) or OriginServer.
	Origin string `json:"origin,omitempty" validate:"omitempty,oneof=client server"`
	Label  Text   `json:"label,omitzero"`
	Hint   Text   `json:"hint,omitzero"`

	// Required makes a value mandatory whenever the field is relevant.
	Required bool `json:"required,omitempty"`
	// RequiredIf is an expression: when it is true, a value is mandatory.
	// It is how "R@completed" columns of docs/domain.md §6 are written.
	RequiredIf string `json:"required_if,omitempty" validate:"max=2000"`
	// RequiredMessage replaces the default "required" message.
	RequiredMessage Text `json:"required_message,omitzero"`
	// Relevant is an expression; when it is false the field does not apply:
	// it is not required, its value must be empty, and Compute clears it.
	// Children of a non-relevant group or repeat are not relevant either.
	Relevant string `json:"relevant,omitempty" validate:"max=2000"`
	// Calculation is an expression whose result is the field's value. A
	// record may omit a calculated value; if it sends one, it must equal
	// the computed value.
	Calculation string `json:"calculation,omitempty" validate:"max=2000"`
	// Constraints are checked, in order, on a value that is present.
	Constraints []Constraint `json:"constraints,omitempty" validate:"max=20,dive"`

	// ChoiceList names the list in Definition.Choices of a select field.
	ChoiceList string `json:"choice_list,omitempty" validate:"max=64"`
	// ChoiceFilter is an expression evaluated once per choice; only choices
	// for which it is true may be selected. choice.value and
	// choice.<property> name the choice being tested.
	ChoiceFilter string `json:"choice_filter,omitempty" validate:"max=2000"`
	// Format restricts a text or text_list value: "uuid", "email", "url"
	// or "month" (YYYY-MM).
	Format string `json:"format,omitempty" validate:"omitempty,oneof=uuid email url month"`
	// MinCount and MaxCount bound the number of photos, selected choices,
	// list items or repeat rows.
	MinCount *int `json:"min_count,omitempty" validate:"omitempty,min=0,max=10000"`
	MaxCount *int `json:"max_count,omitempty" validate:"omitempty,min=1,max=10000"`
	// Unique, on a field of a repeat row, forbids two rows with the same
	// value.
	Unique bool `json:"unique,omitempty"`
	// Layout says how a group stores its children: LayoutObject (the
	// default), LayoutInline or LayoutAnswers.
	Layout string `json:"layout,omitempty" validate:"omitempty,oneof=object inline answers"`
	// Default is the value a new record starts with on the phone.
	Default any `json:"default,omitempty"`
	// Appearance is a hint for the UI, passed through untouched.
	Appearance string `json:"appearance,omitempty" validate:"max=200"`
	// Fields are the children of a group or repeat.
	Fields []Field `json:"fields,omitempty" validate:"max=500,dive"`

	// ReadOnly asks the UI not to let people edit the value (it comes from
	// a default, a calculation or the phone); ReadOnlyIf is the same as an
	// expression. Validate does not enforce them.
	ReadOnly   bool   `json:"read_only,omitempty"`
	ReadOnlyIf string `json:"read_only_if,omitempty" validate:"max=2000"`
	// Hidden fields are not shown to the person filling in the form.
	Hidden bool `json:"hidden,omitempty"`
	// Meta names the metadata the phone fills in by itself (MetaStart, …).
	Meta string `json:"meta,omitempty" validate:"omitempty,oneof=start end today deviceid username phonenumber email simserial subscriberid audit start-geopoint"`
	// Once makes a calculation a value set by the phone: it is computed
	// when the field is empty and then kept, and Validate accepts any value
	// of the field's type. Calculations that read now, random() or uuid()
	// are always computed once.
	Once bool `json:"once,omitempty"`
	// Trigger names fields (as expressions name them) whose change makes
	// the phone compute a once calculation again.
	Trigger []string `json:"trigger,omitempty" validate:"max=20,dive,max=200"`
	// RepeatCount is an expression giving the number of rows a repeat must
	// have, evaluated outside the repeat.
	RepeatCount string `json:"repeat_count,omitempty" validate:"max=2000"`
	// OrOther, on a select field, asks the UI for a text when the choice
	// "other" is picked; the text travels as the answer's other_text.
	OrOther bool `json:"or_other,omitempty"`
	// Parameters are the XLSForm parameters of the field: start, end and
	// step of a range (required there), and hints for the UI passed
	// through (max-pixels, randomize, seed, capture-accuracy…).
	Parameters map[string]string `json:"parameters,omitempty" validate:"omitempty,max=20,dive,keys,max=64,endkeys,max=200"`
	// Media names files shown with the label: "image", "audio", "video",
	// "big-image", optionally with a language ("image::en").
	Media map[string]string `json:"media,omitempty" validate:"omitempty,max=20,dive,keys,max=64,endkeys,max=200"`
}

// Constraint is one rule on a field's value. Exactly one kind is set: a
// range (Min and/or Max), a length (MinLength and/or MaxLength), a Pattern
// or an Expr. Message replaces the default message when the rule fails.
type Constraint struct {
	// Min and Max bound an integer or decimal value, inclusive.
	Min *float64 `json:"min,omitempty"`
	Max *float64 `json:"max,omitempty"`
	// MinLength and MaxLength bound the length of a text value, or of each
	// item of a text_list, in Unicode characters (code points).
	MinLength *int `json:"min_length,omitempty" validate:"omitempty,min=0,max=100000"`
	MaxLength *int `json:"max_length,omitempty" validate:"omitempty,min=1,max=100000"`
	// Pattern is a regular expression the whole text must match. It must be
	// valid both in Go (RE2) and in JavaScript; see EXPRESSIONS.md.
	Pattern string `json:"pattern,omitempty" validate:"max=500"`
	// Expr is an expression that must be true; self is the field's value.
	Expr    string `json:"expr,omitempty" validate:"max=2000"`
	Message Text   `json:"message,omitzero"`
}

// Table is a CSV file published with a form, read by pulldata().
type Table struct {
	Columns []string   `json:"columns" validate:"required,max=100,dive,max=100"`
	Rows    [][]string `json:"rows" validate:"max=20000,dive,max=100,dive,max=2000"`
}

// Choice is one option of a choice list.
type Choice struct {
	// Value is what a record stores.
	Value string `json:"value" validate:"required,max=200"`
	Label Text   `json:"label,omitzero"`
	// Props are extra properties that a choice filter can test, for example
	// {"stage": "junior"}.
	Props map[string]string `json:"props,omitempty" validate:"omitempty,max=50,dive,keys,fieldkey,endkeys,max=200"`
	// Media names files shown with the choice, as Field.Media.
	Media map[string]string `json:"media,omitempty" validate:"omitempty,max=20,dive,keys,max=64,endkeys,max=200"`
}

// Env is what rules may need from outside the record.
type Env struct {
	// Today is the local date, "YYYY-MM-DD", in Asia/Shanghai: the server's
	// date when the server validates, the phone's date on the phone. Rules
	// read it as `today`; a rule that uses today fails when it is empty.
	Today string
	// Now is the local time, RFC 3339 with its offset: rules read it as
	// `now`. Empty makes rules that use it fail.
	Now string
	// Random returns a number in [0, 1) for random(); UUID returns a new
	// random UUID for uuid(). Both are used only by once calculations,
	// on the phone. Nil makes those calculations empty.
	Random func() float64
	UUID   func() string
}

// client reports whether f is filled in by people rather than the server.
func (f *Field) client() bool { return f.Origin == "" || f.Origin == OriginClient }

// container reports whether f holds other fields.
func (f *Field) container() bool { return f.Type == TypeGroup || f.Type == TypeRepeat }

// layout returns the group layout with the default filled in.
func (f *Field) layout() string {
	if f.Layout == "" {
		return LayoutObject
	}
	return f.Layout
}
