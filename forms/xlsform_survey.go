//go:build !js

package forms

import (
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// xlsItem is one survey row, or a group or repeat with its rows.
type xlsItem struct {
	row      int
	kind     string // "text", …, "select_one", "calculate", "begin group", "begin repeat", "start", …
	name     string // the XLSForm name, as ${name} refers to it
	key      string // the field key
	list     string // the choice list of a select, rank or select from file
	orOther  bool
	cells    map[string]string
	params   map[string]string
	once     bool // the calculation (or a dynamic default) is computed once
	parent   *xlsItem
	children []*xlsItem
}

// repeat returns the repeat that holds it, or nil.
func (it *xlsItem) repeat() *xlsItem {
	for p := it.parent; p != nil; p = p.parent {
		if p.kind == "begin repeat" {
			return p
		}
	}
	return nil
}

// within reports whether the repeat rep is scope or encloses it.
func within(rep, scope *xlsItem) bool {
	for s := scope; s != nil; s = s.repeat() {
		if s == rep {
			return true
		}
	}
	return rep == nil
}

// valueType is the type of the row's value in expressions: "text",
// "number", "date", "datetime", "list", "bool" or "".
func (it *xlsItem) valueType() string {
	switch it.kind {
	case "text", "select_one", "time", "barcode", "acknowledge", "hidden", "deviceid", "username", "phonenumber", "email", "simserial", "subscriberid":
		return "text"
	case "integer", "decimal", "range":
		return "number"
	case "date", "today":
		return "date"
	case "datetime", "start", "end":
		return "datetime"
	case "select_multiple", "rank", "image", "audio", "video", "file":
		return "list"
	}
	return ""
}

// xsymbols are the named rows of a survey.
type xsymbols struct {
	byName map[string][]*xlsItem
	prefix string // path of the answers group, with a dot
}

// path returns the name expressions use for it, seen from scope (a repeat
// or nil): the bare key inside its own repeat or an enclosing one's row,
// answers.key outside repeats.
func (s *xsymbols) path(it *xlsItem) string {
	if it.repeat() != nil {
		return it.key
	}
	return s.prefix + it.key
}

func walkItems(items []*xlsItem, fn func(*xlsItem)) {
	for _, it := range items {
		fn(it)
		walkItems(it.children, fn)
	}
}

// surveyKinds maps the XLSForm types (lower case, spaces collapsed) to the
// kinds of xlsItem.
var surveyKinds = map[string]string{
	"text": "text", "string": "text", "integer": "integer", "int": "integer", "decimal": "decimal", "range": "range",
	"date": "date", "time": "time", "datetime": "datetime", "date time": "datetime", "date_time": "datetime",
	"geopoint": "geopoint", "gps": "geopoint", "location": "geopoint", "geotrace": "geotrace", "geoshape": "geoshape",
	"image": "image", "photo": "image", "audio": "audio", "video": "video", "file": "file", "barcode": "barcode",
	"note": "note", "acknowledge": "acknowledge", "trigger": "acknowledge", "calculate": "calculate", "hidden": "hidden",
	"start": "start", "end": "end", "today": "today", "deviceid": "deviceid", "imei": "deviceid", "device id": "deviceid",
	"subscriberid": "subscriberid", "simserial": "simserial", "phonenumber": "phonenumber", "phone_number": "phonenumber",
	"username": "username", "email": "email", "audit": "audit", "start-geopoint": "start-geopoint",
	"begin group": "begin group", "begin_group": "begin group", "end group": "end group", "end_group": "end group",
	"begin repeat": "begin repeat", "begin_repeat": "begin repeat", "end repeat": "end repeat", "end_repeat": "end repeat",
	"xml-external": "xml-external", "csv-external": "csv-external",
}

// refusedKinds are types fieldsync cannot do, with the reason.
var refusedKinds = map[string]Text{
	"background-audio":    {ZH: "fieldsync 不在后台录音（background-audio）", EN: "fieldsync does not record audio in the background (background-audio)"},
	"background-geopoint": {ZH: "fieldsync 不在后台记录位置（background-geopoint）", EN: "fieldsync does not track the location in the background (background-geopoint)"},
	"osm":                 {ZH: "fieldsync 不支持 OpenStreetMap 题（osm）", EN: "fieldsync does not have OpenStreetMap questions (osm)"},
	"begin loop":          {ZH: "begin loop 已被 XLSForm 废弃：请改用 begin repeat", EN: "begin loop is deprecated in XLSForm: use begin repeat"},
	"begin_loop":          {ZH: "begin loop 已被 XLSForm 废弃：请改用 begin repeat", EN: "begin loop is deprecated in XLSForm: use begin repeat"},
	"begin kobomatrix":    {ZH: "KoboToolbox 的矩阵题（kobomatrix）不是 XLSForm 标准：请改为分组和单选题", EN: "KoboToolbox matrices (kobomatrix) are not XLSForm: write them as a group of select questions"},
	"begin_kobomatrix":    {ZH: "KoboToolbox 的矩阵题（kobomatrix）不是 XLSForm 标准：请改为分组和单选题", EN: "KoboToolbox matrices (kobomatrix) are not XLSForm: write them as a group of select questions"},
	"begin score":         {ZH: "KoboToolbox 的评分题（score）不是 XLSForm 标准：请改为单选题", EN: "KoboToolbox score blocks are not XLSForm: write them as select questions"},
	"begin rank":          {ZH: "KoboToolbox 的排序块（begin rank）不是 XLSForm 标准：请改用 rank 题型", EN: "KoboToolbox rank blocks are not XLSForm: use the rank type"},
}

func init() {
	for k, v := range refusedKinds {
		refusedKinds[strings.ReplaceAll(k, " ", "_")] = v
	}
}

// selectPrefixes are the spellings of select types, longest first.
var selectPrefixes = []struct{ prefix, kind, source string }{
	{"select_one_from_file", "select_one", "file"}, {"select_multiple_from_file", "select_multiple", "file"},
	{"select one from file", "select_one", "file"}, {"select multiple from file", "select_multiple", "file"},
	{"select_one_external", "select_one", "external"}, {"select_multiple_external", "select_multiple", "external"},
	{"select all that apply from", "select_multiple", ""}, {"select all that apply", "select_multiple", ""},
	{"select multiple from", "select_multiple", ""}, {"select one from", "select_one", ""},
	{"select_one", "select_one", ""}, {"select_multiple", "select_multiple", ""}, {"select1", "select_one", ""},
	{"select one", "select_one", ""}, {"select multiple", "select_multiple", ""}, {"rank", "rank", ""},
}

// parseSelect reads a select type: its kind, list (or file), whether it has
// or_other and where the list comes from.
func parseSelect(raw string) (kind, list, source string, orOther, ok bool) {
	fields := strings.Fields(raw)
	low := strings.ToLower(strings.Join(fields, " "))
	for _, p := range selectPrefixes {
		if !strings.HasPrefix(low, p.prefix+" ") {
			continue
		}
		rest := fields[len(strings.Fields(p.prefix)):]
		if len(rest) == 2 && strings.EqualFold(rest[1], "or_other") {
			orOther, rest = true, rest[:1]
		}
		if len(rest) != 1 {
			return "", "", "", false, false
		}
		return p.kind, rest[0], p.source, orOther, true
	}
	return "", "", "", false, false
}

// survey reads the rows of the survey sheet into a tree of items.
func (imp *importer) survey(s *sheetRows, lists map[string][]Choice, listRows map[string]int) []*xlsItem {
	var top []*xlsItem
	var stack []*xlsItem
	for i, cells := range s.rows {
		row := i + 2
		if cells == nil {
			continue
		}
		rawType := cells["type"]
		typ := strings.ToLower(strings.Join(strings.Fields(rawType), " "))
		if typ == "" {
			if cells["name"] != "" || cells["label"] != "" || cells["label::zh"] != "" || cells["label::en"] != "" {
				imp.problem("survey", row, "type", Text{ZH: "缺少题型 type", EN: "type is missing"})
			} else {
				imp.warn("survey", row, "", Text{ZH: "此行没有题型，已忽略", EN: "a row without a type: ignored"})
			}
			continue
		}
		it := &xlsItem{row: row, name: cells["name"], cells: cells, params: imp.parameters(row, cells["parameters"])}
		if strings.Contains(cells["appearance"], "search(") {
			imp.problem("survey", row, "appearance", Text{ZH: "search() 外观在手机上从 CSV 读取选项，fieldsync 不支持：请改用 select_one_from_file", EN: "the search() appearance loads choices from a CSV on the phone, which fieldsync does not do: use select_one_from_file"})
		}
		skip := func() {
			if it.name != "" {
				imp.skipped[it.name] = true
			}
		}
		if k, list, source, orOther, ok := parseSelect(rawType); ok {
			it.kind, it.list, it.orOther = k, list, orOther
			switch source {
			case "file":
				choices := imp.fromFile(list, row, it.params)
				it.list = listName(list)
				if v, l := it.params["value"], it.params["label"]; v != "" || l != "" {
					it.list += "_" + normalizeID(v+"_"+l)
				}
				if choices != nil {
					lists[it.list] = choices
				}
			default:
				if _, ok := lists[list]; !ok {
					where := "choices"
					if source == "external" {
						where = "external_choices"
					}
					imp.problem("survey", row, "type", textf("选项列表 %q 在 %s 表中不存在", "choice list %q is not on the %s sheet", list, where))
				}
			}
		} else if msg, refused := refusedKinds[typ]; refused {
			imp.problem("survey", row, "type", msg)
			skip()
			continue
		} else if k, ok := surveyKinds[typ]; ok {
			it.kind = k
		} else {
			imp.problem("survey", row, "type", textf("不支持的题型 %q", "unsupported type %q", rawType))
			skip()
			continue
		}
		switch it.kind {
		case "end group", "end repeat":
			want := strings.Replace(it.kind, "end", "begin", 1)
			if len(stack) == 0 || stack[len(stack)-1].kind != want {
				imp.problem("survey", row, "type", textf("%q 没有对应的开始行", "%q without a matching begin", rawType))
				continue
			}
			stack = stack[:len(stack)-1]
			continue
		case "xml-external", "csv-external":
			imp.warn("survey", row, "type", textf("%s 只能经 instance() 使用，fieldsync 不支持 instance()；pulldata() 直接读上传的 CSV", "%s is only used through instance(), which fieldsync does not have; pulldata() reads uploaded CSV files directly", it.kind))
			continue
		case "simserial", "subscriberid":
			imp.warn("survey", row, "type", textf("手机不再提供 %s：此项保持为空", "phones no longer reveal the %s: the value stays empty", it.kind))
		}
		if it.name == "" {
			if it.kind == "begin group" {
				it.name = fmt.Sprintf("group_%d", row)
				imp.warn("survey", row, "name", textf("分组没有名称，已命名为 %s", "a group without a name is named %s", it.name))
			} else {
				imp.problem("survey", row, "name", Text{ZH: "缺少名称 name", EN: "name is missing"})
				continue
			}
		}
		if len(stack) > 0 {
			it.parent = stack[len(stack)-1]
			it.parent.children = append(it.parent.children, it)
		} else {
			top = append(top, it)
		}
		if it.kind == "begin group" || it.kind == "begin repeat" {
			stack = append(stack, it)
		}
	}
	for _, open := range stack {
		imp.problem("survey", open.row, "type", textf("%q 没有结束行", "%q is never ended", open.kind))
	}
	if len(top) == 0 && len(imp.problems) == 0 {
		imp.problem("survey", 0, "", Text{ZH: "survey 表没有题目", EN: "the survey sheet has no questions"})
	}
	imp.assignKeys(top)
	return top
}

var (
	keyInvalidRE     = regexp.MustCompile(`[^A-Za-z0-9_]+`)
	xlsPlaceholderRE = regexp.MustCompile(`\$\{[^}]+\}`)
)

// assignKeys gives every item a field key: its name when that is a valid
// key, unique where the record stores it (the answers, or one repeat's
// rows) and not a name expressions reserve; otherwise a close one, with a
// warning. XLSForm allows two questions of the same name in different
// groups; the later one gets its group's name in front.
func (imp *importer) assignKeys(top []*xlsItem) {
	used := map[*xlsItem]map[string]bool{} // namespace (repeat or nil) → keys
	walkItems(top, func(it *xlsItem) {
		scope := it.repeat()
		if used[scope] == nil {
			used[scope] = map[string]bool{}
		}
		key := it.name
		if !fieldKeyRE.MatchString(key) || len(key) > 64 {
			key = strings.Trim(keyInvalidRE.ReplaceAllString(key, "_"), "_")
			if key == "" {
				key = fmt.Sprintf("q%d", it.row)
			} else if c := key[0]; !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z') {
				key = "q" + key
			}
			if len(key) > 60 {
				key = key[:60]
			}
		}
		if keywordNames[key] || (scope != nil && reservedNames[key]) {
			key += "_"
		}
		for p := it.parent; used[scope][key] && p != nil && p != scope; p = p.parent {
			if cand := p.key + "_" + key; len(cand) <= 64 {
				key = cand
			}
		}
		for n := 2; used[scope][key]; n++ {
			key = fmt.Sprintf("%s_%d", strings.TrimRight(key, "_0123456789"), n)
		}
		used[scope][key] = true
		it.key = key
		if key != it.name {
			imp.warn("survey", it.row, "name", textf("名称 %q 在记录中写作 %q", "the name %q is stored as %q", it.name, key))
		}
	})
}

// parameters parses the parameters column: "start=0 end=10 step=1",
// also with commas or semicolons between.
func (imp *importer) parameters(row int, s string) map[string]string {
	if strings.TrimSpace(s) == "" {
		return nil
	}
	out := map[string]string{}
	for _, part := range strings.FieldsFunc(s, func(r rune) bool { return r == ' ' || r == ',' || r == ';' || r == '\t' || r == '\n' }) {
		k, v, ok := strings.Cut(part, "=")
		k = strings.ToLower(strings.TrimSpace(k))
		if !ok || k == "" {
			imp.problem("survey", row, "parameters", textf("参数 %q 应写作 名称=值", "the parameter %q must be written name=value", part))
			continue
		}
		out[k] = strings.TrimSpace(v)
	}
	return out
}

// knownParameters are the parameters of each kind that mean something;
// others are kept for the UI with a warning.
var knownParameters = map[string][]string{
	"range": {"start", "end", "step"}, "image": {"max-pixels", "app"}, "select_one": {"randomize", "seed", "value", "label"},
	"select_multiple": {"randomize", "seed", "value", "label"}, "rank": {"randomize", "seed"},
	"geopoint": {"capture-accuracy", "warning-accuracy", "allow-mock-accuracy"}, "geotrace": {"allow-mock-accuracy", "incremental"},
	"geoshape": {"allow-mock-accuracy", "incremental"}, "audio": {"quality"}, "video": {"quality"},
	"audit": {"location-priority", "location-min-interval", "location-max-age", "track-changes", "identify-user", "track-changes-reasons"},
	"text":  {"rows"}, "barcode": {}, "start-geopoint": {"allow-mock-accuracy"},
}

// xlsFieldTypes maps kinds to field types.
var xlsFieldTypes = map[string]string{
	"text": TypeText, "integer": TypeInteger, "decimal": TypeDecimal, "range": TypeRange, "date": TypeDate, "time": TypeTime,
	"datetime": TypeDateTime, "geopoint": TypeGeopoint, "geotrace": TypeGeotrace, "geoshape": TypeGeoshape,
	"image": TypePhoto, "audio": TypeAudio, "video": TypeVideo, "file": TypeFile, "barcode": TypeBarcode, "note": TypeNote,
	"acknowledge": TypeAcknowledge, "calculate": TypeDecimal, "hidden": TypeText, "select_one": TypeSelectOne,
	"select_multiple": TypeSelectMultiple, "rank": TypeRank, "begin group": TypeGroup, "begin repeat": TypeRepeat,
}

// yesNo reads a yes/no cell; ok is false for an expression.
func yesNo(s string) (value, ok bool) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "", "no", "false", "false()", "0", "n":
		return false, true
	case "yes", "true", "true()", "1", "y":
		return true, true
	}
	return false, false
}

// fields turns items into fields, translating their expressions; path is
// the definition path of the slice ("fields[10].fields").
func (imp *importer) fields(items []*xlsItem, syms *xsymbols, path string, lists map[string][]Choice) []Field {
	var out []Field
	for i, it := range items {
		p := fmt.Sprintf("%s[%d]", path, i)
		imp.rowOf[p] = it.row
		cells := it.cells
		f := Field{Key: it.key, Label: imp.text("survey", it.row, cells, "label", p+".label"), Hint: imp.text("survey", it.row, cells, "hint", p+".hint"),
			Appearance: cells["appearance"], RequiredMessage: imp.text("survey", it.row, cells, "required_message", p+".required_message")}
		if g := imp.text("survey", it.row, cells, "guidance_hint", p+".guidance_hint"); !g.IsZero() {
			imp.warn("survey", it.row, "guidance_hint", Text{ZH: "guidance_hint（培训用提示）不在手机上显示，已忽略", EN: "guidance_hint (for training and print) is not shown on phones: ignored"})
		}
		if meta := metaTypes[it.kind]; meta != "" {
			f.Type, f.Meta, f.Hidden = meta, it.kind, true
		} else {
			f.Type = xlsFieldTypes[it.kind]
		}
		switch it.kind {
		case "begin group":
			f.Layout = LayoutInline
		case "select_one", "select_multiple", "rank":
			f.ChoiceList = it.list
			if it.orOther {
				f.ChoiceList, f.OrOther = imp.orOther(it.list, lists), true
			}
		case "image", "audio", "video", "file":
			f.MaxCount = new(1)
		case "hidden":
			f.Hidden = true
		}
		f.Media = imp.mediaOf("survey", it.row, cells)
		if len(it.params) > 0 {
			f.Parameters = it.params
			known := map[string]bool{}
			for _, k := range knownParameters[it.kind] {
				known[k] = true
			}
			for k := range it.params {
				if !known[k] {
					imp.warn("survey", it.row, "parameters", textf("参数 %s 对 %s 题没有作用，仅供界面参考", "the parameter %s does nothing for a %s question; it is kept for the UI", k, it.kind))
				}
			}
		}
		tr := func(column string) string {
			src := cells[column]
			if src == "" {
				return ""
			}
			out, err := translateXPath(src, xcontext{column: column, item: it, syms: syms, imp: imp})
			if errors.Is(err, errSkipped) {
				return ""
			}
			if err != nil {
				imp.problem("survey", it.row, column, textf("无法转换表达式：%s", "cannot translate the expression: %s", err.Error()))
				return ""
			}
			return out
		}
		container := it.kind == "begin group" || it.kind == "begin repeat"
		valueless := container || it.kind == "note"
		if req := cells["required"]; req != "" {
			switch v, ok := yesNo(req); {
			case valueless || it.kind == "calculate" || f.Meta != "":
				if !ok || v {
					imp.warn("survey", it.row, "required", textf("%s 不能设为必填，已忽略", "a %s cannot be required: ignored", it.kind))
				}
			case ok:
				f.Required = v
			default:
				f.RequiredIf = tr("required")
			}
		}
		if ro := cells["read_only"]; ro != "" {
			if v, ok := yesNo(ro); ok {
				f.ReadOnly = v
			} else {
				f.ReadOnlyIf = tr("read_only")
			}
		}
		f.Relevant = tr("relevant")
		if cells["calculation"] != "" {
			if container {
				imp.warn("survey", it.row, "calculation", Text{ZH: "分组不能计算，已忽略", EN: "a group cannot be calculated: ignored"})
			} else {
				f.Calculation = tr("calculation")
				if it.kind == "note" {
					f.Type, f.ReadOnly = TypeText, true
				}
			}
		}
		f.ChoiceFilter = tr("choice_filter")
		if it.kind == "begin repeat" {
			f.RepeatCount = tr("repeat_count")
		} else if cells["repeat_count"] != "" {
			imp.warn("survey", it.row, "repeat_count", Text{ZH: "只有重复组有 repeat_count，已忽略", EN: "only a repeat has a repeat_count: ignored"})
		}
		if cells["constraint"] != "" {
			if valueless || f.Meta != "" {
				imp.warn("survey", it.row, "constraint", textf("%s 没有值，约束已忽略", "a %s has no value to constrain: ignored", it.kind))
			} else if c := tr("constraint"); c != "" {
				f.Constraints = []Constraint{{Expr: c, Message: imp.text("survey", it.row, cells, "constraint_message", p+".constraints[0].message")}}
			}
		} else if msg := imp.text("survey", it.row, cells, "constraint_message", p+".constraints[0].message"); !msg.IsZero() {
			imp.warn("survey", it.row, "constraint_message", Text{ZH: "有约束提示却没有约束，已忽略", EN: "a constraint_message without a constraint: ignored"})
		}
		if def := cells["default"]; def != "" {
			switch {
			case valueless || f.Meta != "" || attachmentType(f.Type) || f.Type == TypeGeotrace || f.Type == TypeGeoshape:
				imp.warn("survey", it.row, "default", textf("%s 不能有默认值，已忽略", "a %s cannot have a default: ignored", it.kind))
			case dynamicDefault(def):
				if f.Calculation == "" {
					f.Calculation = tr("default")
					it.once = true
				}
			default:
				f.Default = xlsDefault(f.Type, def)
			}
		}
		if it.once && f.Calculation != "" {
			f.Once = true
		}
		if trig := cells["trigger"]; trig != "" {
			imp.trigger(it, &f, syms)
		}
		if it.kind == "calculate" && f.Calculation == "" && cells["calculation"] == "" {
			imp.problem("survey", it.row, "calculation", Text{ZH: "calculate 题需要 calculation", EN: "a calculate row needs a calculation"})
		}
		if it.kind == "calculate" || it.kind == "hidden" {
			imp.calcs = append(imp.calcs, p)
		}
		needsLabel := f.Type == TypeNote || (!container && f.Calculation == "" && f.Meta == "" && !f.Hidden && it.kind != "calculate")
		if needsLabel && f.Label.IsZero() {
			if !f.Hint.IsZero() {
				f.Label, f.Hint = f.Hint, Text{}
			} else {
				f.Label = Text{ZH: it.name, EN: it.name}
				if imp.plain == "zh" {
					f.Label = Text{ZH: it.name}
				} else {
					f.Label = Text{EN: it.name}
				}
			}
			imp.warn("survey", it.row, "label", textf("%q 没有标题：以提示或名称作标题", "%q has no label: its hint or name is shown instead", it.name))
		}
		ctx := xcontext{column: "label", item: it, syms: syms, imp: imp}
		f.Label = imp.fillNames(ctx, "label", f.Label, p+".label")
		f.Hint = imp.fillNames(ctx, "hint", f.Hint, p+".hint")
		f.RequiredMessage = imp.fillNames(ctx, "required_message", f.RequiredMessage, p+".required_message")
		for i := range f.Constraints {
			f.Constraints[i].Message = imp.fillNames(ctx, "constraint_message", f.Constraints[i].Message, fmt.Sprintf("%s.constraints[%d].message", p, i))
		}
		f.Fields = imp.fields(it.children, syms, p+".fields", lists)
		out = append(out, f)
	}
	return out
}

// fillNames rewrites the ${name} of a text (and of its translations) to
// the names expressions use: ${age} becomes ${answers.age}.
func (imp *importer) fillNames(ctx xcontext, column string, t Text, defPath string) Text {
	fix := func(s string) string {
		if !strings.Contains(s, "${") {
			return s
		}
		return xlsPlaceholderRE.ReplaceAllStringFunc(s, func(m string) string {
			p, err := ctx.ref(strings.TrimSpace(m[2 : len(m)-1]))
			if errors.Is(err, errSkipped) {
				return m
			}
			if err != nil {
				imp.problem("survey", ctx.item.row, column, textf("无法显示 %s：%s", "cannot show %s: %s", m, err.Error()))
				return m
			}
			return "${" + p + "}"
		})
	}
	for _, texts := range imp.trans {
		if s, ok := texts[defPath]; ok {
			texts[defPath] = fix(s)
		}
	}
	return Text{ZH: fix(t.ZH), EN: fix(t.EN)}
}

// dynamicDefault reports whether a default cell is an expression (ODK
// computes such a default once, when the record is created).
func dynamicDefault(s string) bool {
	return strings.Contains(s, "${") || strings.Contains(s, "()")
}

// trigger reads the trigger column: ${a} or several, comma-separated.
func (imp *importer) trigger(it *xlsItem, f *Field, syms *xsymbols) {
	if f.Calculation == "" {
		imp.warn("survey", it.row, "trigger", Text{ZH: "没有 calculation 的触发只会清空本题，fieldsync 不支持，已忽略", EN: "a trigger without a calculation only clears the value, which fieldsync does not do: ignored"})
		return
	}
	ctx := xcontext{column: "trigger", item: it, syms: syms, imp: imp}
	for _, part := range strings.Split(it.cells["trigger"], ",") {
		toks, err := xlex(strings.TrimSpace(part))
		if err != nil || len(toks) != 1 || toks[0].kind != xRef {
			imp.problem("survey", it.row, "trigger", Text{ZH: "trigger 应为 ${名称}，多个用逗号分隔", EN: "a trigger is ${name}, several separated by commas"})
			return
		}
		p, err := ctx.ref(toks[0].text)
		if err != nil {
			imp.problem("survey", it.row, "trigger", textf("无法转换：%s", "cannot translate: %s", err.Error()))
			return
		}
		f.Trigger = append(f.Trigger, p)
	}
	f.Once = true
}

// orOther returns a list with the choice "other" added (the list itself
// when it has one).
func (imp *importer) orOther(list string, lists map[string][]Choice) string {
	for _, c := range lists[list] {
		if c.Value == "other" {
			return list
		}
	}
	name := list + "_or_other"
	if _, ok := lists[name]; !ok {
		lists[name] = append(append([]Choice(nil), lists[list]...), Choice{Value: "other", Label: Text{ZH: "其他", EN: "Other"}})
	}
	return name
}

// xlsDefault converts a default cell to a value of the field's type; Check
// reports a value that does not fit.
func xlsDefault(typ, s string) any {
	switch typ {
	case TypeInteger:
		if n, err := strconv.ParseFloat(s, 64); err == nil {
			return n
		}
	case TypeRange:
		if n, ok := parseDecimal(s); ok {
			return n
		}
	case TypeSelectMultiple, TypeRank:
		l := []any{}
		for _, v := range strings.Fields(s) {
			l = append(l, v)
		}
		return l
	case TypeDateTime:
		if len(s) == 19 && s[10] == 'T' {
			return s + "+08:00" // a date-time cell holds no zone: the zone of today
		}
		if len(s) == 16 && (s[10] == 'T' || s[10] == ' ') {
			return s[:10] + "T" + s[11:] + ":00+08:00"
		}
	case TypeDate:
		if len(s) == 19 && s[10] == 'T' {
			return s[:10]
		}
	case TypeGeopoint:
		parts := strings.Fields(s)
		if len(parts) >= 2 {
			lat, err1 := strconv.ParseFloat(parts[0], 64)
			lng, err2 := strconv.ParseFloat(parts[1], 64)
			if err1 == nil && err2 == nil {
				pt := map[string]any{"lat": lat, "lng": lng}
				if len(parts) >= 4 {
					if acc, err := strconv.ParseFloat(parts[3], 64); err == nil {
						pt["accuracy_m"] = acc
					}
				}
				return pt
			}
		}
	case TypeBoolean:
		if v, ok := yesNo(s); ok {
			return v
		}
	}
	return s
}

// run imports the sheets.
func (imp *importer) run(raw map[string][][]string) *XLSFormImport {
	sheets := map[string]*sheetRows{}
	for name, rows := range raw {
		switch name {
		case "survey":
			sheets[name] = imp.parseSheet(name, rows, surveyColumns)
		case "choices", "external_choices":
			sheets[name] = imp.parseSheet(name, rows, choicesColumns)
		case "settings":
			sheets[name] = imp.parseSheet(name, rows, settingsColumns)
		default:
			if len(rows) > 0 {
				imp.warn(name, 0, "", textf("工作表 %q 不被 XLSForm 导入使用，已忽略", "the sheet %q is not used by the XLSForm import: ignored", name))
			}
		}
	}
	res := &XLSFormImport{}
	d := &Definition{Kind: KindQuestionnaireResponse, Status: StatusDraft}
	cells := imp.settingsOf(sheets["settings"])
	imp.plainLanguage(cells["default_language"], sheets["survey"], sheets["choices"])
	if v, ok := yesNo(cells["allow_choice_duplicates"]); ok && v {
		imp.allowDup = true
	}
	imp.settings(cells, d, res)
	lists := map[string][]Choice{}
	listRows := map[string]int{}
	imp.choices(sheets["choices"], lists, listRows)
	imp.choices(sheets["external_choices"], lists, listRows)
	survey := sheets["survey"]
	if survey == nil {
		imp.problem("survey", 0, "", Text{ZH: "缺少 survey 工作表", EN: "the survey sheet is missing"})
		return nil
	}
	for name, row := range listRows {
		if !listNameRE.MatchString(name) {
			imp.problem("choices", row, "list_name", textf("选项列表名 %q 只能用字母、数字、_ 和 -，并以字母开头", "the list name %q must use letters, digits, _ and -, starting with a letter", name))
		}
	}
	items := imp.survey(survey, lists, listRows)
	syms := &xsymbols{byName: map[string][]*xlsItem{}, prefix: "answers."}
	walkItems(items, func(it *xlsItem) { syms.byName[it.name] = append(syms.byName[it.name], it) })
	meta := questionnaireMeta()
	answers := Field{Key: "answers", Type: TypeGroup, Layout: LayoutAnswers, Required: true,
		Label: Text{ZH: "答卷", EN: "Answers"}, Fields: imp.fields(items, syms, fmt.Sprintf("fields[%d].fields", len(meta)), lists)}
	d.Fields = append(append(meta, answers), questionnaireMetaTail()...)
	if src := cells["instance_name"]; src != "" {
		it := &xlsItem{row: 2, kind: "calculate", name: "instance_name"}
		calc, err := translateXPath(src, xcontext{column: "instance_name", syms: syms, imp: imp, item: it})
		if err != nil {
			imp.problem("settings", 2, "instance_name", textf("无法转换表达式：%s", "cannot translate the expression: %s", err.Error()))
		} else {
			d.Fields = append(d.Fields, Field{Key: "instance_name", Type: TypeText, Hidden: true, Calculation: calc, Once: it.once,
				Label: Text{ZH: "记录标题", EN: "Record title"}})
			d.TitleField = "instance_name"
		}
	}
	d.Choices = questionnaireMetaChoices()
	for name, l := range lists {
		if _, clash := d.Choices[name]; clash {
			imp.problem("choices", listRows[name], "list_name",
				textf("选项列表名 %q 已被答卷信息使用", "the list name %q is used by the response's own fields", name))
			continue
		}
		d.Choices[name] = l
	}
	if len(imp.trans) > 0 {
		d.Translations = imp.trans
	}
	for name, t := range imp.tables {
		if t != nil {
			if d.Tables == nil {
				d.Tables = map[string]*Table{}
			}
			d.Tables[name] = t
		}
	}
	if len(imp.problems) > 0 {
		return nil // the rows do not make a form yet: Check would only repeat them
	}
	if res.VersionDerived {
		d.Version = 1 // for Check; the result has 0
	}
	imp.inferCalculateTypes(d)
	imp.check(d)
	if len(imp.problems) > 0 {
		return nil
	}
	if res.VersionDerived {
		d.Version = 0
	}
	res.Definition = d
	if len(imp.media) > 0 {
		res.Media = imp.media
	}
	return res
}

// sortedKeys returns the keys of m in order.
func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
