package forms

import (
	"encoding/json"
	"fmt"
	"math"
	"regexp"
	"strings"
	"time"
	"unicode/utf8"
)

// Evaluation is the outcome of evaluating a record against a definition.
type Evaluation struct {
	// Values is the record as it should be stored: the input with
	// calculated fields set to their computed values (or removed when a
	// calculation has no value) and the values of fields that are not
	// relevant removed. Decimals computed by the form are strings, as they
	// travel (docs/domain.md §6.0). Other values are left as they were given.
	Values map[string]any
	// Relevant maps the path of every client field, with repeat rows
	// expanded ("steps[2].note"), to whether it applies to this record.
	Relevant map[string]bool
	// Errors holds what is wrong with the record as given.
	Errors Errors
	// Texts holds, by path like Relevant, the label and hint of every
	// relevant field whose label or hint names other fields as ${name},
	// with the names replaced by the values (see EXPRESSIONS.md).
	Texts map[string]FieldText
	// ReadOnly lists the paths of relevant fields the UI must not let
	// people edit (Field.ReadOnly, or ReadOnlyIf true).
	ReadOnly map[string]bool
}

// FieldText is a field's label and hint with their ${name} filled in.
type FieldText struct {
	Label Text `json:"label,omitzero"`
	Hint  Text `json:"hint,omitzero"`
}

// Validate checks a record's values against the definition and returns the
// problems by field key; an empty result means the record is valid.
//
// values are a record's field values as decoded by encoding/json (numbers
// as float64 or json.Number, objects as map[string]any, arrays as []any),
// without the sync envelope (see StripEnvelope). Keys the definition does
// not declare are errors; fields with origin "server" are ignored whatever
// they hold.
//
// A field that is not relevant must be empty: Validate reports a value in
// it, and Compute removes it. A calculated field may be omitted; if it is
// given it must equal the computed value. The phone runs Compute and then
// Validate before a record enters its outbox; the server runs Validate on
// push.
func (d *Definition) Validate(values map[string]any, env Env) Errors {
	return d.Evaluate(values, env).Errors
}

// Compute returns values with calculated fields filled in and the values of
// fields that are not relevant removed (Evaluation.Values). It fails only
// when the definition itself is invalid; problems of the record are left to
// Validate.
func (d *Definition) Compute(values map[string]any, env Env) (map[string]any, error) {
	r := d.compile()
	if r.f == nil {
		return nil, r.errs.err(Text{ZH: "表单定义无效", EN: "the form definition is invalid"})
	}
	return d.Evaluate(values, env).Values, nil
}

// Evaluate runs the whole engine once: it works out relevance and
// calculated values, checks the record, and builds the values to store.
func (d *Definition) Evaluate(values map[string]any, env Env) *Evaluation {
	r := d.compile()
	if r.f == nil {
		return &Evaluation{Errors: Errors{KeyForm: {ZH: "表单定义无效，无法校验", EN: "the form definition is invalid: " + r.errs.String()}}}
	}
	if values == nil {
		values = map[string]any{}
	}
	s := &state{f: r.f, env: env, errs: Errors{}, texts: map[string]FieldText{}, readOnly: map[string]bool{}}
	s.top = newInst("", nil)
	s.top.vals[nameToday] = env.Today
	s.top.vals[nameNow] = env.Now
	s.top.vals[nameRandom] = env.Random
	if env.Random == nil {
		s.top.vals[nameRandom] = func() float64 { panic("forms: Env.Random is not set") }
	}
	s.top.vals[nameUUID] = env.UUID
	if env.UUID == nil {
		s.top.vals[nameUUID] = func() string { panic("forms: Env.UUID is not set") }
	}
	s.load(values, r.f.top, s.top, "")
	for _, n := range r.f.order {
		for _, in := range s.instances(n) {
			s.eval(n, in)
		}
	}
	rel := map[string]bool{}
	for _, n := range r.f.all {
		if n.server {
			continue
		}
		for _, in := range s.instances(n) {
			path := join(in.prefix, n.rel)
			rel[path] = in.rel[n]
			if n.hasValue() {
				s.check(n, in)
			}
			if in.rel[n] {
				s.fieldTexts(n, in, path)
				if n.f.ReadOnly || (n.readOnlyIf != nil && runBool(n.readOnlyIf, s.envOf(in))) {
					s.readOnly[path] = true
				}
			}
		}
	}
	for _, n := range r.f.all {
		if n.f.Unique && !n.server {
			s.checkUnique(n)
		}
	}
	return &Evaluation{Values: s.output(values, r.f.top, s.top), Relevant: rel, Errors: s.errs, Texts: s.texts, ReadOnly: s.readOnly}
}

// state is one evaluation.
type state struct {
	f        *form
	env      Env
	errs     Errors
	top      *inst
	texts    map[string]FieldText
	readOnly map[string]bool
}

// inst holds the values of one scope: the record, or one repeat row.
type inst struct {
	prefix string // "" for the record, "steps[2]" for a row
	up     *inst  // the record, for a row
	vals   map[string]any
	given  map[*node]any // type-checked values as given, normalized
	bad    map[*node]bool
	rel    map[*node]bool
	comp   map[*node]any
	rows   map[*node][]*inst
	index  int // 1-based row number, for position
	ver    int // counts changes of vals, for the environments of rows below

	env     map[string]any // a row's expression environment, see envOf
	envVers []int          // the ver of each enclosing inst when env was built
}

func newInst(prefix string, up *inst) *inst {
	return &inst{prefix: prefix, up: up, vals: map[string]any{}, given: map[*node]any{}, bad: map[*node]bool{},
		rel: map[*node]bool{}, comp: map[*node]any{}, rows: map[*node][]*inst{}}
}

func join(prefix, rel string) string {
	if prefix == "" {
		return rel
	}
	return prefix + "." + rel
}

// instances returns the scopes in which n has a value: the record, or
// every row of its repeat (of every row of the enclosing repeats).
func (s *state) instances(n *node) []*inst {
	return s.scopeInstances(n.scope)
}

func (s *state) scopeInstances(scope *node) []*inst {
	if scope == nil {
		return []*inst{s.top}
	}
	var out []*inst
	for _, in := range s.scopeInstances(scope.scope) {
		out = append(out, in.rows[scope]...)
	}
	return out
}

// absent is what expressions read for a field without a value: "" for text
// types, nil for numbers, false for booleans, empty lists.
func absent(n *node) any {
	switch n.f.Type {
	case TypeInteger, TypeDecimal, TypeRange, TypeGeopoint, TypeGroup:
		return nil
	case TypeBoolean:
		return false
	case TypeSelectMultiple, TypePhoto, TypeAudio, TypeVideo, TypeFile, TypeTextList, TypeRank:
		return []string{}
	case TypeRepeat, TypeGeotrace, TypeGeoshape:
		return []any{}
	}
	return ""
}

// setAbsent records that n (and, for groups, its children) has no value.
func (s *state) setAbsent(n *node, in *inst) {
	if n.hasValue() {
		in.vals[n.rel] = absent(n)
	}
	if n.f.Type == TypeGroup {
		for _, c := range n.stored {
			s.setAbsent(c, in)
		}
	}
}

// load type-checks the values stored in obj.
func (s *state) load(obj map[string]any, stored []*node, in *inst, objPath string) {
	known := make(map[string]bool, len(stored))
	for _, n := range stored {
		known[n.f.Key] = true
		path := join(objPath, n.f.Key)
		if n.server {
			continue
		}
		v := obj[n.f.Key]
		if v == nil {
			s.setAbsent(n, in)
			continue
		}
		switch n.f.Type {
		case TypeNote:
			s.errs.add(path, msgNoteHasValue)
			in.bad[n] = true
		case TypeGroup:
			var m map[string]any
			ok := false
			if n.f.layout() == LayoutAnswers {
				m, ok = s.answers(v, n, in, path)
			} else if m, ok = v.(map[string]any); !ok {
				s.errs.add(path, msgNotObject)
			}
			if !ok {
				in.bad[n] = true
				s.setAbsent(n, in)
				continue
			}
			in.given[n] = m
			in.vals[n.rel] = m
			s.load(m, n.stored, in, path)
		case TypeRepeat:
			l, ok := v.([]any)
			if !ok {
				s.errs.add(path, msgNotList)
				in.bad[n] = true
				in.vals[n.rel] = []any{}
				continue
			}
			rows := make([]any, 0, len(l))
			for i, e := range l {
				row := newInst(fmt.Sprintf("%s[%d]", path, i), in)
				row.index = i + 1
				row.vals[namePosition] = float64(i + 1)
				m, ok := e.(map[string]any)
				if !ok {
					s.errs.add(row.prefix, msgNotObject)
					m = map[string]any{}
				}
				s.load(m, n.stored, row, row.prefix)
				in.rows[n] = append(in.rows[n], row)
				rows = append(rows, row.vals)
			}
			in.given[n] = rows
			in.vals[n.rel] = rows
		default:
			norm, msg := checkValue(n.f, v)
			if msg != nil {
				s.errs.add(path, *msg)
				in.bad[n] = true
				in.vals[n.rel] = absent(n)
				continue
			}
			in.given[n] = norm
			if isEmpty(norm) {
				in.vals[n.rel] = absent(n)
			} else {
				in.vals[n.rel] = norm
			}
		}
	}
	for k := range obj {
		if !known[k] {
			s.errs.add(join(objPath, k), msgUnknownField)
		}
	}
}

// answers turns a list of {qid, value, other_text} into a map qid → value.
func (s *state) answers(v any, n *node, in *inst, path string) (map[string]any, bool) {
	l, ok := v.([]any)
	if !ok {
		s.errs.add(path, msgNotList)
		return nil, false
	}
	m := make(map[string]any, len(l))
	for i, e := range l {
		ep := fmt.Sprintf("%s[%d]", path, i)
		a, ok := e.(map[string]any)
		if !ok {
			s.errs.add(ep, msgNotObject)
			continue
		}
		for k, x := range a {
			switch k {
			case "qid", "value":
			case "other_text":
				if _, ok := x.(string); !ok && x != nil {
					s.errs.add(ep+".other_text", msgNotText)
				}
			default:
				s.errs.add(ep+"."+k, msgUnknownField)
			}
		}
		qid, ok := a["qid"].(string)
		if !ok || qid == "" {
			s.errs.add(ep+".qid", msgAnswerQID)
			continue
		}
		if _, dup := m[qid]; dup {
			s.errs.add(ep+".qid", msgAnswerDupQID)
			continue
		}
		m[qid] = a["value"]
	}
	return m, true
}

// envOf returns the expression environment of in: the record's values
// and today, overlaid with the values of the enclosing rows and then the
// row's own. The record's environment is its value map itself; a row's is
// rebuilt only when the values of an enclosing scope changed since.
// Callers that add self or choice.* remove them afterwards.
func (s *state) envOf(in *inst) map[string]any {
	if in == s.top {
		return s.top.vals
	}
	var chain []*inst
	for p := in.up; p != nil; p = p.up {
		chain = append(chain, p)
	}
	fresh := in.env != nil && len(in.envVers) == len(chain)
	for i := 0; fresh && i < len(chain); i++ {
		fresh = in.envVers[i] == chain[i].ver
	}
	if !fresh {
		size := len(in.vals) + 2
		for _, p := range chain {
			size += len(p.vals)
		}
		m := make(map[string]any, size)
		vers := make([]int, len(chain))
		for i := len(chain) - 1; i >= 0; i-- {
			for k, v := range chain[i].vals {
				m[k] = v
			}
			vers[i] = chain[i].ver
		}
		for k, v := range in.vals {
			m[k] = v
		}
		in.env, in.envVers = m, vers
	}
	return in.env
}

// set changes the value expressions read for n in in.
func (s *state) set(n *node, in *inst, v any) {
	in.vals[n.rel] = v
	in.ver++
	if in.env != nil {
		in.env[n.rel] = v
	}
}

// eval works out the relevance and the computed value of n in in.
func (s *state) eval(n *node, in *inst) {
	rel := parentRelevant(n, in) && (n.relevant == nil || runBool(n.relevant, s.envOf(in)))
	in.rel[n] = rel
	if !n.hasValue() {
		return
	}
	switch {
	case !rel:
		s.set(n, in, absent(n))
	case n.calc != nil:
		if given, ok := in.given[n]; n.once && ok && !isEmpty(given) {
			in.comp[n] = given // set by the phone before: kept
			return
		}
		v, ok := run(n.calc, s.envOf(in))
		v = coerce(n.f, v, ok)
		in.comp[n] = v
		if v == nil {
			s.set(n, in, absent(n))
		} else {
			s.set(n, in, v)
		}
	}
}

// coerce turns the result of a calculation into a value of the field's
// type, or nil when it has none.
func coerce(f *Field, v any, ok bool) any {
	if !ok || v == nil {
		return nil
	}
	switch f.Type {
	case TypeInteger, TypeDecimal:
		x, isNum := asNumber(v)
		if !isNum || math.IsNaN(x) || math.IsInf(x, 0) {
			return nil
		}
		if f.Type == TypeInteger && (x != math.Trunc(x) || math.Abs(x) > maxSafeInteger) {
			return nil
		}
		return x
	case TypeBoolean:
		if b, ok := v.(bool); ok {
			return b
		}
		return nil
	}
	str, isStr := v.(string)
	if x, isNum := asNumber(v); isNum && f.Type == TypeText && !math.IsNaN(x) && !math.IsInf(x, 0) {
		str, isStr = formatNumber(x), true
	}
	if !isStr || str == "" {
		return nil
	}
	if f.Type != TypeText && f.Type != TypeSelectOne {
		if _, msg := checkValue(f, str); msg != nil {
			return nil
		}
	}
	return str
}

// wire renders a computed value as a record stores it.
func wire(f *Field, v any) any {
	if f.Type == TypeDecimal {
		if x, ok := v.(float64); ok {
			return formatNumber(x)
		}
	}
	return v
}

// parentAbsent reports whether n sits in an object group, or a chain of
// them, that the record leaves out: then n is not required.
func parentAbsent(n *node, in *inst) bool {
	for p := n.parent; p != nil && p != n.scope; p = p.parent {
		if p.f.Type == TypeGroup && !p.inline() {
			if _, ok := in.given[p]; !ok {
				return true
			}
		}
	}
	return false
}

// parentRelevant reports whether the group or repeat holding n applies.
func parentRelevant(n *node, in *inst) bool {
	if n.parent == nil {
		return true
	}
	if n.parent == n.scope {
		return in.up.rel[n.parent]
	}
	return in.rel[n.parent]
}

// holderRelevant reports whether the nearest group or repeat that holds
// n's value (skipping inline groups, which hold no value) applies.
func holderRelevant(n *node, in *inst) bool {
	for p := n.parent; p != nil; p = p.parent {
		if p.inline() {
			continue
		}
		if p == n.scope {
			return in.up.rel[p]
		}
		return in.rel[p]
	}
	return true
}

// check reports the problems of n in in.
func (s *state) check(n *node, in *inst) {
	if in.bad[n] {
		return
	}
	path := join(in.prefix, n.rel)
	given, present := in.given[n]
	empty := !present || isEmpty(given)
	if !in.rel[n] {
		// Only the outermost field that does not apply reports its value.
		if holderRelevant(n, in) && (!empty || (n.f.Type == TypeGroup && present)) {
			s.errs.add(path, msgNotRelevant)
		}
		return
	}
	if n.calc != nil {
		if !empty && !sameValue(given, in.comp[n]) {
			s.errs.add(path, msgComputed(wire(n.f, in.comp[n])))
		}
		return
	}
	if empty && !(n.f.Type == TypeGroup && present) {
		if parentAbsent(n, in) {
			return
		}
		if n.f.Required || (n.requiredIf != nil && runBool(n.requiredIf, s.envOf(in))) {
			msg := msgRequired
			if !n.f.RequiredMessage.IsZero() {
				msg = s.render(n.f.RequiredMessage, in)
			}
			s.errs.add(path, msg)
		}
		return
	}
	if msg := s.checkCount(n, given); msg != nil {
		s.errs.add(path, *msg)
		return
	}
	if n.repeatCount != nil {
		if want, ok := run(n.repeatCount, s.envOf(in)); ok {
			if x, isNum := asNumber(want); isNum && x == math.Trunc(x) && x >= 0 && x <= 10000 {
				if l, _ := asList(given); len(l) != int(x) {
					s.errs.add(path, msgRepeatCount(int(x)))
					return
				}
			}
		}
	}
	if n.rng != nil {
		if msg := n.rng.check(given); msg != nil {
			s.errs.add(path, *msg)
			return
		}
	}
	if msg := s.checkChoices(n, in, given); msg != nil {
		s.errs.add(path, *msg)
		return
	}
	for _, c := range n.constraints {
		if ok := s.checkConstraint(n, in, c, given); !ok {
			msg := s.render(c.c.Message, in)
			if msg.IsZero() {
				msg = defaultConstraintMessage(c.c)
			}
			s.errs.add(path, msg)
			return
		}
	}
}

func (s *state) checkCount(n *node, given any) *Text {
	l, ok := asList(given)
	if !ok {
		return nil
	}
	photo := n.f.Type == TypePhoto
	files := attachmentType(n.f.Type) && !photo
	if n.f.MinCount != nil && len(l) < *n.f.MinCount {
		m := msgCountMin(*n.f.MinCount, photo)
		if files {
			m = msgCountMinFiles(*n.f.MinCount)
		}
		return &m
	}
	if n.f.MaxCount != nil && len(l) > *n.f.MaxCount {
		m := msgCountMax(*n.f.MaxCount, photo)
		if files {
			m = msgCountMaxFiles(*n.f.MaxCount)
		}
		return &m
	}
	return nil
}

func (s *state) checkChoices(n *node, in *inst, given any) *Text {
	var picked []string
	switch x := given.(type) {
	case string:
		if n.f.Type != TypeSelectOne {
			return nil
		}
		picked = []string{x}
	case []string:
		if n.f.Type != TypeSelectMultiple && n.f.Type != TypeRank {
			return nil
		}
		picked = x
	default:
		return nil
	}
	for _, v := range picked {
		if !s.choiceAllowed(n, in, v) {
			m := msgNotChoice(v)
			return &m
		}
	}
	if n.f.Type == TypeRank {
		// Every allowed choice once: the values are distinct and allowed,
		// so it is enough that none is missing.
		allowed := map[string]bool{}
		for _, ch := range n.choices {
			if s.choiceAllowed(n, in, ch.Value) {
				allowed[ch.Value] = true
			}
		}
		if len(picked) != len(allowed) {
			return &msgRankIncomplete
		}
	}
	return nil
}

func (s *state) choiceAllowed(n *node, in *inst, v string) bool {
	for _, ch := range n.choices {
		if ch.Value != v {
			continue
		}
		if n.filter == nil {
			return true
		}
		if s.filterAllows(n, in, ch) {
			return true // a duplicated value may pass with another choice
		}
	}
	return false
}

// filterAllows runs n's choice filter on one choice.
func (s *state) filterAllows(n *node, in *inst, ch Choice) bool {
	env := s.envOf(in)
	set := []string{nameChoic + ".value"}
	env[nameChoic+".value"] = ch.Value
	for _, c := range n.choices {
		for p := range c.Props {
			env[nameChoic+"."+p] = ""
			set = append(set, nameChoic+"."+p)
		}
	}
	for p, pv := range ch.Props {
		env[nameChoic+"."+p] = pv
	}
	ok := runBool(n.filter, env)
	for _, k := range set {
		delete(env, k)
	}
	return ok
}

func (s *state) checkConstraint(n *node, in *inst, c constraint, given any) bool {
	cs := c.c
	switch {
	case cs.Min != nil || cs.Max != nil:
		x, ok := asNumber(given)
		if !ok {
			return true
		}
		return (cs.Min == nil || x >= *cs.Min) && (cs.Max == nil || x <= *cs.Max)
	case cs.MinLength != nil || cs.MaxLength != nil:
		for _, t := range texts(given) {
			l := utf8.RuneCountInString(t)
			if (cs.MinLength != nil && l < *cs.MinLength) || (cs.MaxLength != nil && l > *cs.MaxLength) {
				return false
			}
		}
		return true
	case cs.Pattern != "":
		re, err := compiledPattern(cs.Pattern)
		if err != nil {
			return false
		}
		for _, t := range texts(given) {
			if !re.MatchString(t) {
				return false
			}
		}
		return true
	case c.prog != nil:
		env := s.envOf(in)
		env[nameSelf] = in.vals[n.rel]
		ok := runBool(c.prog, env)
		delete(env, nameSelf)
		return ok
	}
	return true
}

func texts(v any) []string {
	switch x := v.(type) {
	case string:
		return []string{x}
	case []string:
		return x
	}
	return nil
}

func defaultConstraintMessage(c *Constraint) Text {
	switch {
	case c.Min != nil || c.Max != nil:
		return msgRange(c.Min, c.Max)
	case c.MinLength != nil || c.MaxLength != nil:
		return msgLength(c.MinLength, c.MaxLength)
	case c.Pattern != "":
		return msgBadPattern
	}
	return msgRuleFailed
}

// checkUnique reports rows that repeat an earlier row's value of n.
// Rows are compared within the same list of rows (the rows of a nested
// repeat in one row of the enclosing repeat).
func (s *state) checkUnique(n *node) {
	type key struct {
		up *inst
		v  string
	}
	first := map[key]int{}
	for _, row := range s.instances(n) {
		v, ok := row.given[n]
		if !ok || isEmpty(v) || row.bad[n] || !row.rel[n] {
			continue
		}
		k := key{row.up, fmt.Sprintf("%T:%v", v, v)}
		if j, dup := first[k]; dup {
			s.errs.add(join(row.prefix, n.rel), msgDuplicateRow(j))
			continue
		}
		first[k] = row.index
	}
}

// sameValue compares a given value with a computed one.
func sameValue(given, computed any) bool {
	if computed == nil {
		return isEmpty(given)
	}
	if a, ok := asNumber(given); ok {
		b, ok := asNumber(computed)
		return ok && a == b
	}
	return given == computed
}

// output builds the stored form of obj: calculated values set, values of
// fields that are not relevant removed.
func (s *state) output(obj map[string]any, stored []*node, in *inst) map[string]any {
	out := make(map[string]any, len(obj))
	for k, v := range obj {
		out[k] = v
	}
	for _, n := range stored {
		if n.server {
			continue
		}
		k := n.f.Key
		if !in.rel[n] {
			// Empty values (null, "", []) may stay: they hold nothing.
			if v := out[k]; !isEmpty(v) || (n.f.Type == TypeGroup && v != nil) {
				delete(out, k)
			}
			continue
		}
		if n.calc != nil {
			if v := in.comp[n]; v != nil {
				out[k] = wire(n.f, v)
			} else {
				delete(out, k)
			}
			continue
		}
		switch n.f.Type {
		case TypeGroup:
			if in.bad[n] {
				continue
			}
			m, _ := in.given[n].(map[string]any)
			var sub map[string]any
			if m == nil {
				sub = s.output(map[string]any{}, n.stored, in)
				if len(sub) == 0 {
					continue
				}
			} else {
				sub = s.output(m, n.stored, in)
			}
			if n.f.layout() == LayoutAnswers {
				out[k] = answerList(obj[k], sub, n)
			} else {
				out[k] = sub
			}
		case TypeRepeat:
			l, ok := obj[k].([]any)
			if !ok {
				continue
			}
			rows := make([]any, len(l))
			for i, e := range l {
				m, ok := e.(map[string]any)
				if !ok || i >= len(in.rows[n]) {
					rows[i] = e
					continue
				}
				rows[i] = s.output(m, n.stored, in.rows[n][i])
			}
			out[k] = rows
		}
	}
	return out
}

// answerList turns answers back into the list shape, keeping the order of
// the given list and appending computed answers in definition order.
func answerList(given any, answers map[string]any, n *node) []any {
	var out []any
	used := map[string]bool{}
	l, _ := given.([]any)
	for _, e := range l {
		a, ok := e.(map[string]any)
		if !ok {
			out = append(out, e)
			continue
		}
		qid, _ := a["qid"].(string)
		if used[qid] {
			continue
		}
		v, keep := answers[qid]
		if !keep {
			continue
		}
		used[qid] = true
		na := make(map[string]any, len(a))
		for k, x := range a {
			na[k] = x
		}
		na["value"] = v
		out = append(out, na)
	}
	for _, c := range n.stored {
		if v, ok := answers[c.f.Key]; ok && !used[c.f.Key] {
			used[c.f.Key] = true
			out = append(out, map[string]any{"qid": c.f.Key, "value": v})
		}
	}
	if out == nil {
		out = []any{}
	}
	return out
}

// maxSafeInteger is the largest integer that JavaScript represents
// exactly; integer values beyond it are refused.
const maxSafeInteger = 1<<53 - 1

var timeRE = regexp.MustCompile(`^([01][0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9])?$`)

// checkValue checks one value against a scalar or list field type and
// returns it normalized for expressions: float64 for numbers, []string for
// lists, map[string]any with float64 coordinates for geopoints.
func checkValue(f *Field, v any) (any, *Text) {
	fail := func(t Text) (any, *Text) { return nil, &t }
	switch f.Type {
	case TypeText:
		s, ok := v.(string)
		if !ok {
			return fail(msgNotText)
		}
		if s != "" {
			if msg := checkFormat(f.Format, s); msg != nil {
				return nil, msg
			}
		}
		return s, nil
	case TypeInteger:
		x, ok := jsonNumber(v)
		if !ok || x != math.Trunc(x) || math.Abs(x) > maxSafeInteger {
			return fail(msgNotInteger)
		}
		return x, nil
	case TypeBarcode:
		s, ok := v.(string)
		if !ok {
			return fail(msgNotText)
		}
		return s, nil
	case TypeAcknowledge:
		s, ok := v.(string)
		if !ok || (s != "" && s != "OK") {
			return fail(msgNotAcknowledge)
		}
		return s, nil
	case TypeGeotrace, TypeGeoshape:
		l, ok := v.([]any)
		msg, least := msgNotGeotrace, 2
		if f.Type == TypeGeoshape {
			msg, least = msgNotGeoshape, 3
		}
		if !ok {
			return fail(msg)
		}
		if len(l) == 0 {
			return []any{}, nil
		}
		if len(l) < least || len(l) > 10000 {
			return fail(msg)
		}
		pts := make([]any, len(l))
		for i, e := range l {
			p, m := checkValue(&Field{Type: TypeGeopoint}, e)
			if m != nil {
				return fail(msg)
			}
			pts[i] = p
		}
		return pts, nil
	case TypeDecimal, TypeRange:
		if s, ok := v.(string); ok {
			if s == "" {
				return s, nil
			}
			x, ok := parseDecimal(s)
			if !ok {
				return fail(msgNotDecimal)
			}
			return x, nil
		}
		x, ok := jsonNumber(v)
		if !ok {
			return fail(msgNotDecimal)
		}
		return x, nil
	case TypeDate:
		s, ok := v.(string)
		if !ok {
			return fail(msgNotDate)
		}
		if s != "" && !isDate(s) {
			return fail(msgNotDate)
		}
		return s, nil
	case TypeTime:
		s, ok := v.(string)
		if !ok || (s != "" && !timeRE.MatchString(s)) {
			return fail(msgNotTime)
		}
		return s, nil
	case TypeDateTime:
		s, ok := v.(string)
		if !ok || (s != "" && !isDateTime(s)) {
			return fail(msgNotDateTime)
		}
		return s, nil
	case TypeBoolean:
		b, ok := v.(bool)
		if !ok {
			return fail(msgNotBoolean)
		}
		return b, nil
	case TypeSelectOne:
		s, ok := v.(string)
		if !ok {
			return fail(msgNotChoiceText)
		}
		return s, nil
	case TypeSelectMultiple, TypeTextList, TypePhoto, TypeAudio, TypeVideo, TypeFile, TypeRank:
		var items []any
		switch x := v.(type) {
		case []any:
			items = x
		case []string:
			items, _ = asList(x)
		default:
			return fail(msgNotList)
		}
		out := make([]string, 0, len(items))
		seen := make(map[string]bool, len(items))
		for _, it := range items {
			s, ok := it.(string)
			if !ok || s == "" {
				if f.Type == TypeSelectMultiple || f.Type == TypeRank {
					return fail(msgNotChoiceText)
				}
				return fail(msgNotText)
			}
			format := f.Format
			if attachmentType(f.Type) {
				format = "uuid"
			}
			if msg := checkFormat(format, s); msg != nil {
				return nil, msg
			}
			if seen[s] {
				return fail(msgDuplicateItem)
			}
			seen[s] = true
			out = append(out, s)
		}
		return out, nil
	case TypeGeopoint:
		m, ok := v.(map[string]any)
		if !ok {
			return fail(msgNotGeopoint)
		}
		out := make(map[string]any, 3)
		for k, x := range m {
			n, ok := jsonNumber(x)
			switch {
			case k != "lat" && k != "lng" && k != "accuracy_m":
				return fail(msgNotGeopoint)
			case x == nil && k == "accuracy_m":
				continue
			case !ok,
				k == "lat" && math.Abs(n) > 90,
				k == "lng" && math.Abs(n) > 180,
				k == "accuracy_m" && n < 0:
				return fail(msgNotGeopoint)
			}
			out[k] = n
		}
		if out["lat"] == nil || out["lng"] == nil {
			return fail(msgNotGeopoint)
		}
		return out, nil
	}
	return fail(msgRuleFailed)
}

// jsonNumber accepts the numbers encoding/json produces (float64 or
// json.Number) and Go integers.
func jsonNumber(v any) (float64, bool) {
	switch x := v.(type) {
	case float64:
		return x, !math.IsNaN(x) && !math.IsInf(x, 0)
	case json.Number:
		f, err := x.Float64()
		return f, err == nil && !math.IsInf(f, 0)
	case int:
		return float64(x), true
	case int64:
		return float64(x), true
	}
	return 0, false
}

func checkFormat(format, s string) *Text {
	var msg Text
	switch format {
	case "":
		return nil
	case "month":
		if monthRE.MatchString(s) {
			return nil
		}
		msg = msgNotMonth
	default:
		tag, ok := formatTags[format]
		if ok && validate().Var(s, tag) == nil {
			return nil
		}
		switch format {
		case "uuid":
			msg = msgNotUUID
		case "email":
			msg = msgNotEmail
		default:
			msg = msgNotURL
		}
	}
	return &msg
}

func isDate(s string) bool {
	if len(s) != 10 {
		return false
	}
	_, err := time.Parse(time.DateOnly, s)
	return err == nil
}

// isDateTime accepts RFC 3339 timestamps with a "T", seconds and an offset
// or Z, as in 2024-10-15T07:58:00+08:00.
func isDateTime(s string) bool {
	if len(s) < 20 || s[10] != 'T' || strings.ContainsAny(s, " t") {
		return false
	}
	_, err := time.Parse(time.RFC3339, s)
	return err == nil
}
