package forms

import (
	"fmt"
	"math"
	"reflect"
	"sort"
	"strings"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/vm"
)

// compileResult is a checked definition: either errs is non-empty, or f is
// ready to evaluate records.
type compileResult struct {
	f    *form
	errs Errors
}

// form is a compiled definition.
type form struct {
	top   []*node // fields stored in the record object, inline groups expanded
	all   []*node // every field, in definition order
	order []*node // every field, each after the fields its relevance and calculation read
}

// node is a compiled field.
type node struct {
	f      *Field
	key    string // Check key: "fields[2].fields[0]"
	parent *node  // enclosing group or repeat
	scope  *node  // enclosing repeat; nil at the top level
	// rel is the field's name inside its scope: "visit_date",
	// "feedback.to_name", "answers.Q1", or "score" inside a repeat row. It
	// is the identifier expressions use and, joined to a row prefix, the
	// key of errors.
	rel    string
	server bool    // set by the server: ignored by Validate
	stored []*node // for groups and repeats: the fields stored in its value

	choices     []Choice
	relevant    *vm.Program
	requiredIf  *vm.Program
	calc        *vm.Program
	filter      *vm.Program
	readOnlyIf  *vm.Program
	repeatCount *vm.Program
	once        bool      // the calculation is computed once (Field.Once, now, random(), uuid(), trigger)
	rng         *rangeDef // the bounds of a range field
	texts       bool      // the label or hint shows other fields' values
	constraints []constraint
	deps        []*node // fields read by relevant and calculation
	refs        []string
}

// rangeDef is the parsed Parameters of a range field.
type rangeDef struct{ start, end, step float64 }

// constraint is a compiled Constraint.
type constraint struct {
	c    *Constraint
	prog *vm.Program
}

func (n *node) inline() bool { return n.f.Type == TypeGroup && n.f.layout() == LayoutInline }

// hasValue reports whether the field holds a value of its own that
// expressions can read.
func (n *node) hasValue() bool { return !n.server && n.f.Type != TypeNote && !n.inline() }

// compiler checks one definition.
type compiler struct {
	d     *Definition
	f     *form
	errs  Errors
	names map[*node]map[string]*node // scope (nil = top level) → name → field
	envs  map[*node]map[string]any   // scope → typed environment for the checker
	funcs []expr.Option              // the functions that read the definition
}

func compileDefinition(d *Definition) *compileResult {
	errs := checkStructure(d)
	if len(errs) > 0 {
		return &compileResult{errs: errs}
	}
	c := &compiler{d: d, f: &form{}, errs: errs, names: map[*node]map[string]*node{}, envs: map[*node]map[string]any{}}
	c.f.top = c.build(d.Fields, "fields", nil, nil, "", map[string]string{})
	c.checkChoices()
	c.checkUniqueKey()
	c.buildEnvs()
	for _, n := range c.f.all {
		c.compileExprs(n)
	}
	c.sort()
	if len(c.errs) > 0 {
		return &compileResult{errs: c.errs}
	}
	return &compileResult{f: c.f, errs: c.errs}
}

// build walks fields, records their nodes and returns those stored in the
// enclosing object. seen holds the keys already used in that object.
func (c *compiler) build(fields []Field, keyPrefix string, parent, scope *node, relPrefix string, seen map[string]string) []*node {
	var stored []*node
	for i := range fields {
		f := &fields[i]
		n := &node{f: f, key: fmt.Sprintf("%s[%d]", keyPrefix, i), parent: parent, scope: scope, rel: relPrefix + f.Key}
		n.server = !f.client() || (parent != nil && parent.server)
		if prev, dup := seen[f.Key]; dup {
			c.errs.add(n.key+".key", textf("名称 %q 重复（%s）", "duplicate key %q (also %s)", f.Key, prev))
		} else {
			seen[f.Key] = n.key
		}
		if keywordNames[f.Key] || (reservedNames[f.Key] && n.rel == f.Key) {
			c.errs.add(n.key+".key", textf("%q 是表达式的保留字，不能作名称", "%q is reserved in expressions and cannot be a key", f.Key))
		}
		c.f.all = append(c.f.all, n)
		if n.hasValue() {
			if c.names[scope] == nil {
				c.names[scope] = map[string]*node{}
			}
			c.names[scope][n.rel] = n
		}
		c.checkField(n)
		switch {
		case n.inline():
			stored = append(stored, c.build(f.Fields, n.key+".fields", n, scope, relPrefix, seen)...)
		case f.Type == TypeGroup:
			n.stored = c.build(f.Fields, n.key+".fields", n, scope, n.rel+".", map[string]string{})
			stored = append(stored, n)
		case f.Type == TypeRepeat:
			n.stored = c.build(f.Fields, n.key+".fields", n, n, "", map[string]string{})
			stored = append(stored, n)
		default:
			stored = append(stored, n)
		}
	}
	return stored
}

// checkField checks the attributes of one field against its type.
func (c *compiler) checkField(n *node) {
	f, k := n.f, n.key
	bad := func(attr string, zh, en string) { c.errs.add(k+"."+attr, Text{ZH: zh, EN: en}) }
	isSelect := f.Type == TypeSelectOne || f.Type == TypeSelectMultiple || f.Type == TypeRank
	isText := f.Type == TypeText || f.Type == TypeTextList
	counted := attachmentType(f.Type) || f.Type == TypeSelectMultiple || f.Type == TypeTextList || f.Type == TypeRepeat

	if n.server {
		if f.Required || f.RequiredIf != "" || f.Relevant != "" || f.Calculation != "" || len(f.Constraints) > 0 || f.ChoiceFilter != "" || f.Default != nil {
			bad("origin", "由服务器设置的字段不能有必填、条件、计算、约束或默认值", "a server field cannot have required, relevant, calculation, constraints or default")
		}
		return
	}
	if f.container() {
		if len(f.Fields) == 0 {
			bad("fields", "分组或重复组至少需要一个字段", "a group or repeat needs at least one field")
		}
	} else if len(f.Fields) > 0 {
		bad("fields", "只有分组和重复组可以包含字段", "only groups and repeats hold fields")
	}
	if f.Layout != "" && f.Type != TypeGroup {
		bad("layout", "只有分组有 layout", "only groups have a layout")
	}
	if f.Layout == LayoutAnswers && (n.scope != nil || n.parent != nil) {
		bad("layout", "答案列表分组只能在最外层", "an answers group must be at the top level")
	}
	if n.inline() && (f.Required || f.RequiredIf != "" || len(f.Constraints) > 0) {
		bad("required", "内联分组没有自己的值，不能必填或有约束", "an inline group has no value of its own: it cannot be required or constrained")
	}
	if f.Type == TypeNote {
		if f.Required || f.RequiredIf != "" || f.Calculation != "" || len(f.Constraints) > 0 || f.Default != nil {
			bad("type", "说明项没有值：不能必填、计算、约束或有默认值", "a note has no value: it cannot be required, calculated, constrained or have a default")
		}
	}
	needsLabel := f.Type == TypeNote || (!f.container() && f.Calculation == "" && f.Meta == "" && !f.Hidden)
	if needsLabel && f.Label.IsZero() {
		bad("label", "需要标题（zh 或 en）", "needs a label (zh or en)")
	}
	if isSelect && f.ChoiceList == "" {
		bad("choice_list", "选择题需要选项列表", "a select field needs a choice list")
	}
	if f.ChoiceList != "" {
		if !isSelect {
			bad("choice_list", "只有选择题有选项列表", "only select fields have a choice list")
		} else if list, ok := c.d.Choices[f.ChoiceList]; !ok {
			c.errs.add(k+".choice_list", textf("选项列表 %q 不存在", "choice list %q does not exist", f.ChoiceList))
		} else {
			n.choices = list
		}
	}
	if f.ChoiceFilter != "" && !isSelect {
		bad("choice_filter", "只有选择题有选项筛选", "only select fields have a choice filter")
	}
	if f.OrOther && f.Type != TypeSelectOne && f.Type != TypeSelectMultiple {
		bad("or_other", "只有单选和多选题可以有“其他”", "only select_one and select_multiple fields can have or_other")
	}
	if f.Format != "" && !isText {
		bad("format", "只有文本字段有格式", "only text fields have a format")
	}
	if (f.MinCount != nil || f.MaxCount != nil) && !counted {
		bad("min_count", "只有照片、附件、多选、文本列表和重复组有数量限制", "only photo, audio, video, file, select_multiple, text_list and repeat fields have counts")
	}
	if f.MinCount != nil && f.MaxCount != nil && *f.MinCount > *f.MaxCount {
		bad("min_count", "最少数量大于最多数量", "min_count is above max_count")
	}
	if f.Unique {
		switch {
		case n.scope == nil || n.parent != n.scope:
			bad("unique", "只有重复组里的直接字段可以设为不重复", "only fields directly in a repeat row can be unique")
		case f.container() || f.Type == TypeNote || f.Type == TypeGeopoint || f.Type == TypeGeotrace || f.Type == TypeGeoshape:
			bad("unique", "此类型不能设为不重复", "this type cannot be unique")
		}
	}
	if f.RepeatCount != "" && f.Type != TypeRepeat {
		bad("repeat_count", "只有重复组有行数", "only a repeat has a repeat_count")
	}
	if f.Type == TypeRange {
		c.checkRange(n)
	}
	if f.Meta != "" {
		if want := metaTypes[f.Meta]; f.Type != want {
			c.errs.add(k+".meta", textf("元数据 %s 的类型应为 %s", "metadata %s must have type %s", f.Meta, want))
		}
		if f.Calculation != "" || f.Required || f.RequiredIf != "" || f.Default != nil {
			bad("meta", "元数据由手机填写：不能计算、必填或有默认值", "metadata is filled in by the phone: it cannot be calculated, required or have a default")
		}
		if n.scope != nil {
			bad("meta", "元数据不能放在重复组里", "metadata cannot be inside a repeat")
		}
	}
	if (f.Once || len(f.Trigger) > 0) && f.Calculation == "" {
		bad("once", "只有计算字段可以设为只计算一次或有触发字段", "only a calculated field can be once or have a trigger")
	}
	if f.Calculation != "" {
		switch f.Type {
		case TypeText, TypeInteger, TypeDecimal, TypeDate, TypeTime, TypeDateTime, TypeBoolean, TypeSelectOne, TypeBarcode:
		default:
			bad("calculation", "此类型不能计算", "this type cannot be calculated")
		}
		if f.Required || f.RequiredIf != "" {
			bad("required", "计算字段不能设为必填", "a calculated field cannot be required")
		}
	}
	for i := range f.Constraints {
		c.checkConstraint(n, i)
	}
	if f.Default != nil {
		switch f.Type {
		case TypeNote, TypeGroup, TypeRepeat, TypeGeotrace, TypeGeoshape:
			bad("default", "此类型不能有默认值", "this type cannot have a default")
		default:
			if attachmentType(f.Type) {
				bad("default", "此类型不能有默认值", "this type cannot have a default")
				break
			}
			norm, msg := checkValue(f, f.Default)
			if msg == nil && f.ChoiceList != "" && f.Type != TypeRank {
				msg = notInList(n.choices, norm)
			}
			if msg == nil && n.rng != nil {
				msg = n.rng.check(norm)
			}
			if msg != nil {
				c.errs.add(k+".default", Text{ZH: "默认值无效：" + msg.ZH, EN: "invalid default: " + msg.EN})
			}
		}
	}
}

// metaTypes is the field type of each kind of metadata.
var metaTypes = map[string]string{
	MetaStart: TypeDateTime, MetaEnd: TypeDateTime, MetaToday: TypeDate, MetaDeviceID: TypeText,
	MetaUsername: TypeText, MetaPhoneNumber: TypeText, MetaEmail: TypeText, MetaSimSerial: TypeText,
	MetaSubscriberID: TypeText, MetaAudit: TypeTextList, MetaStartGeopoint: TypeGeopoint,
}

// attachmentType reports whether values of type t are lists of attachment
// ids.
func attachmentType(t string) bool {
	return t == TypePhoto || t == TypeAudio || t == TypeVideo || t == TypeFile
}

// checkRange parses the start, end and step parameters of a range field.
func (c *compiler) checkRange(n *node) {
	r := &rangeDef{start: 0, end: 10, step: 1}
	for _, p := range []struct {
		name string
		v    *float64
	}{{"start", &r.start}, {"end", &r.end}, {"step", &r.step}} {
		s, ok := n.f.Parameters[p.name]
		if !ok {
			continue
		}
		x, ok := parseDecimal(s)
		if !ok {
			c.errs.add(n.key+".parameters."+p.name, textf("应为数字，而不是 %q", "must be a number, not %q", s))
			return
		}
		*p.v = x
	}
	if r.step <= 0 {
		c.errs.add(n.key+".parameters.step", Text{ZH: "步长应大于 0", EN: "step must be above 0"})
		return
	}
	if r.start == r.end {
		c.errs.add(n.key+".parameters.end", Text{ZH: "起点和终点不能相同", EN: "start and end must differ"})
		return
	}
	n.rng = r
}

// check reports a value of a range field that is out of bounds or
// between steps.
func (r *rangeDef) check(v any) *Text {
	x, ok := asNumber(v)
	if !ok {
		return nil
	}
	lo, hi := min(r.start, r.end), max(r.start, r.end)
	k := (x - r.start) / r.step
	if x < lo || x > hi || math.Abs(k-math.Round(k)) > 1e-9 {
		m := msgRangeStep(lo, hi, r.step)
		return &m
	}
	return nil
}

// notInList explains a selected value that is not in choices.
func notInList(choices []Choice, v any) *Text {
	picked := texts(v)
	for _, p := range picked {
		found := false
		for _, ch := range choices {
			found = found || ch.Value == p
		}
		if !found {
			m := msgNotChoice(p)
			return &m
		}
	}
	return nil
}

func (c *compiler) checkConstraint(n *node, i int) {
	k := fmt.Sprintf("%s.constraints[%d]", n.key, i)
	cs := &n.f.Constraints[i]
	kinds := 0
	isRange := cs.Min != nil || cs.Max != nil
	isLength := cs.MinLength != nil || cs.MaxLength != nil
	for _, set := range []bool{isRange, isLength, cs.Pattern != "", cs.Expr != ""} {
		if set {
			kinds++
		}
	}
	if kinds != 1 {
		c.errs.add(k, Text{ZH: "每条约束只能是范围、长度、格式或表达式之一", EN: "a constraint is exactly one of range, length, pattern or expr"})
		return
	}
	t := n.f.Type
	switch {
	case isRange:
		if t != TypeInteger && t != TypeDecimal {
			c.errs.add(k, Text{ZH: "范围只适用于整数和小数", EN: "a range applies to integer and decimal fields"})
		}
		for _, v := range []*float64{cs.Min, cs.Max} {
			if v != nil && (math.IsNaN(*v) || math.IsInf(*v, 0)) {
				c.errs.add(k, Text{ZH: "范围应为有限数字", EN: "a range needs finite numbers"})
			}
		}
		if cs.Min != nil && cs.Max != nil && *cs.Min > *cs.Max {
			c.errs.add(k+".min", Text{ZH: "最小值大于最大值", EN: "min is above max"})
		}
	case isLength:
		if t != TypeText && t != TypeTextList {
			c.errs.add(k, Text{ZH: "长度只适用于文本", EN: "a length applies to text fields"})
		}
		if cs.MinLength != nil && cs.MaxLength != nil && *cs.MinLength > *cs.MaxLength {
			c.errs.add(k+".min_length", Text{ZH: "最小长度大于最大长度", EN: "min_length is above max_length"})
		}
	case cs.Pattern != "":
		if t != TypeText && t != TypeTextList {
			c.errs.add(k+".pattern", Text{ZH: "格式只适用于文本", EN: "a pattern applies to text fields"})
		} else if err := checkPattern(cs.Pattern); err != nil {
			c.errs.add(k+".pattern", textf("格式无效：%s", "invalid pattern: %s", err.Error()))
		}
	}
}

func (c *compiler) checkChoices() {
	lists := make([]string, 0, len(c.d.Choices))
	for name := range c.d.Choices {
		lists = append(lists, name)
	}
	sort.Strings(lists)
	for _, name := range lists {
		seen := map[string]int{}
		for i, ch := range c.d.Choices[name] {
			if j, dup := seen[ch.Value]; dup && !c.d.AllowChoiceDuplicates {
				c.errs.add(fmt.Sprintf("choices.%s[%d].value", name, i), textf("选项值 %q 重复（第 %d 项）", "duplicate value %q (also item %d)", ch.Value, j))
			} else {
				seen[ch.Value] = i
			}
		}
	}
}

func (c *compiler) checkUniqueKey() {
	for i, key := range c.d.UniqueKey {
		n := c.names[nil][key]
		if n == nil || n.f.container() || strings.Contains(key, ".") {
			c.errs.add(fmt.Sprintf("unique_key[%d]", i), textf("%q 不是最外层的字段", "%q is not a top-level field", key))
		}
	}
}

// zeroValue is a value of the type expressions see for n, used to declare
// n in the type checker's environment.
func zeroValue(n *node) any {
	switch n.f.Type {
	case TypeInteger, TypeDecimal, TypeRange:
		return 0.0
	case TypeBoolean:
		return false
	case TypeSelectMultiple, TypePhoto, TypeAudio, TypeVideo, TypeFile, TypeTextList, TypeRank:
		return []string{}
	case TypeGeopoint, TypeGroup:
		return map[string]any{}
	case TypeRepeat, TypeGeotrace, TypeGeoshape:
		return []any{}
	}
	return ""
}

// Names that the environment of every expression declares besides fields.
const (
	nameNow      = "now"      // Env.Now
	namePosition = "position" // the 1-based index of the current repeat row
	nameRandom   = "random"   // random(): Env.Random, once calculations only
	nameUUID     = "uuid"     // uuid(): Env.UUID, once calculations only
)

// buildEnvs declares every readable field, per scope, for the checker.
// The environment of a repeat row holds the top-level names, those of the
// rows of every enclosing repeat, and its own, the innermost winning.
func (c *compiler) buildEnvs() {
	top := map[string]any{nameToday: "", nameNow: "", nameRandom: func() float64 { return 0 }, nameUUID: func() string { return "" }}
	for name, n := range c.names[nil] {
		top[name] = zeroValue(n)
	}
	c.envs[nil] = top
	var chain func(scope *node) map[string]any
	chain = func(scope *node) map[string]any {
		if env, ok := c.envs[scope]; ok {
			return env
		}
		outer := chain(scope.scope)
		env := make(map[string]any, len(outer)+len(c.names[scope])+1)
		for k, v := range outer {
			env[k] = v
		}
		for name, n := range c.names[scope] {
			env[name] = zeroValue(n)
		}
		env[namePosition] = 0.0
		c.envs[scope] = env
		return env
	}
	for _, n := range c.f.all {
		if n.f.Type == TypeRepeat && !n.server {
			chain(n)
		}
	}
}

// envFor returns the checker environment of n's scope, extended for the
// kind of expression.
func (c *compiler) envFor(n *node, kind exprKind) map[string]any {
	base := c.envs[n.scope]
	if base == nil {
		base = c.envs[nil]
	}
	if kind != exprConstraint && kind != exprFilter {
		return base
	}
	env := make(map[string]any, len(base)+4)
	for k, v := range base {
		env[k] = v
	}
	if kind == exprConstraint {
		env[nameSelf] = zeroValue(n)
	} else {
		env[nameChoic+".value"] = ""
		for _, ch := range n.choices {
			for p := range ch.Props {
				env[nameChoic+"."+p] = ""
			}
		}
	}
	return env
}

// compileExprs compiles the expressions of n.
func (c *compiler) compileExprs(n *node) {
	if n.server {
		return
	}
	f := n.f
	one := func(attr, src string, kind exprKind) (*vm.Program, []string) {
		if src == "" {
			return nil, nil
		}
		p, err := parseExpr(src)
		if err == nil {
			err = c.resolve(n, p.refs, kind)
		}
		var prog *vm.Program
		if err == nil {
			if c.funcs == nil {
				c.funcs = definitionFuncs(c.d)
			}
			prog, err = compileExpr(p, c.envFor(n, kind), kind, c.funcs...)
		}
		if err != nil {
			c.errs.add(n.key+"."+attr, textf("表达式无效：%s", "invalid expression: %s", err.Error()))
			return nil, nil
		}
		return prog, p.refs
	}
	var refs []string
	n.relevant, refs = one("relevant", f.Relevant, exprBool)
	n.refs = append(n.refs, refs...)
	n.requiredIf, _ = one("required_if", f.RequiredIf, exprBool)
	n.calc, refs = one("calculation", f.Calculation, exprCalc)
	n.refs = append(n.refs, refs...)
	calcRefs := refs
	if n.calc != nil && !calcTypeFits(f.Type, n.calc.Node().Type()) {
		c.errs.add(n.key+".calculation", textf("计算结果类型（%s）与字段类型 %s 不符", "the calculation gives %s but the field is %s", typeName(n.calc.Node().Type()), f.Type))
	}
	n.filter, _ = one("choice_filter", f.ChoiceFilter, exprFilter)
	n.readOnlyIf, _ = one("read_only_if", f.ReadOnlyIf, exprBool)
	c.checkTexts(n)
	n.repeatCount, _ = one("repeat_count", f.RepeatCount, exprCalc)
	if n.repeatCount != nil && !calcTypeFits(TypeInteger, n.repeatCount.Node().Type()) {
		c.errs.add(n.key+".repeat_count", textf("行数应为数字，而不是 %s", "the repeat_count gives %s, not a number", typeName(n.repeatCount.Node().Type())))
	}
	n.once = f.Once || len(f.Trigger) > 0
	for i, t := range f.Trigger {
		if c.lookup(n.scope, t) == nil {
			c.errs.add(fmt.Sprintf("%s.trigger[%d]", n.key, i), textf("触发字段 %s 不存在", "the trigger %s is not a field", t))
		}
	}
	for _, r := range calcRefs {
		if r == nameNow || r == nameRandom || r == nameUUID {
			n.once = true
		}
	}
	for i := range f.Constraints {
		cs := &f.Constraints[i]
		prog, _ := one(fmt.Sprintf("constraints[%d].expr", i), cs.Expr, exprConstraint)
		n.constraints = append(n.constraints, constraint{c: cs, prog: prog})
	}
	for _, r := range n.refs {
		m := c.lookup(n.scope, r)
		if m == nil {
			continue
		}
		n.deps = append(n.deps, m)
		if m.f.Type == TypeRepeat {
			for _, d := range c.f.all {
				if d.scope == m {
					n.deps = append(n.deps, d)
				}
			}
		}
	}
	if n.parent != nil {
		n.deps = append(n.deps, n.parent)
	}
}

func (c *compiler) lookup(scope *node, name string) *node {
	for ; scope != nil; scope = scope.scope {
		if n := c.names[scope][name]; n != nil {
			return n
		}
	}
	return c.names[nil][name]
}

// resolve explains names that do not resolve, better than the type
// checker would.
func (c *compiler) resolve(n *node, refs []string, kind exprKind) error {
	for _, r := range refs {
		switch {
		case r == nameToday || r == nameNow || r == "true" || r == "false" || r == "nil":
			continue
		case r == namePosition:
			if n.scope == nil {
				return fmt.Errorf("position is only defined inside a repeat")
			}
			continue
		case r == nameRandom || r == nameUUID:
			if kind != exprCalc {
				return fmt.Errorf("%s() may only be used in a calculation", r)
			}
			continue
		case r == nameSelf:
			if kind != exprConstraint {
				return fmt.Errorf("self is only defined in constraints")
			}
			continue
		case strings.HasPrefix(r, nameChoic+"."):
			if kind != exprFilter {
				return fmt.Errorf("choice.* is only defined in choice filters")
			}
			continue
		}
		if c.lookup(n.scope, r) != nil {
			continue
		}
		for scope, names := range c.names {
			if scope != nil && names[r] != nil {
				return fmt.Errorf("%s is inside the repeat %s: read it with count(%s) or sum(%s, '%s')", r, scope.rel, scope.rel, scope.rel, r)
			}
		}
		for _, m := range c.f.all {
			if m.server && m.rel == r {
				return fmt.Errorf("%s is set by the server and cannot be read by rules", r)
			}
		}
		return fmt.Errorf("unknown field %s", r)
	}
	return nil
}

func calcTypeFits(fieldType string, t reflect.Type) bool {
	if t == nil || t.Kind() == reflect.Interface {
		return true
	}
	switch fieldType {
	case TypeInteger, TypeDecimal:
		return t.Kind() == reflect.Float64 || t.Kind() == reflect.Int
	case TypeBoolean:
		return t.Kind() == reflect.Bool
	}
	return t.Kind() == reflect.String
}

func typeName(t reflect.Type) string {
	if t == nil {
		return "any"
	}
	switch t.Kind() {
	case reflect.Float64, reflect.Int:
		return "number"
	case reflect.String:
		return "text"
	case reflect.Bool:
		return "boolean"
	}
	return t.String()
}

// sort orders c.f.all so that every field comes after the fields its
// relevance and calculation read, and reports cycles.
func (c *compiler) sort() {
	const (
		unvisited = iota
		visiting
		done
	)
	state := map[*node]int{}
	var stack []*node
	var visit func(n *node) bool
	visit = func(n *node) bool {
		switch state[n] {
		case done:
			return true
		case visiting:
			i := len(stack) - 1
			for i > 0 && stack[i] != n {
				i--
			}
			var names []string
			for _, m := range stack[i:] {
				names = append(names, m.rel)
			}
			names = append(names, n.rel)
			path := strings.Join(names, " → ")
			attr := ".calculation"
			if n.f.Calculation == "" {
				attr = ".relevant"
			}
			c.errs.add(n.key+attr, textf("循环引用：%s", "circular reference: %s", path))
			return false
		}
		state[n] = visiting
		stack = append(stack, n)
		for _, d := range n.deps {
			if !visit(d) {
				return false
			}
		}
		stack = stack[:len(stack)-1]
		state[n] = done
		c.f.order = append(c.f.order, n)
		return true
	}
	for _, n := range c.f.all {
		if !visit(n) {
			return
		}
	}
}
