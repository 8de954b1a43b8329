package forms

import (
	"bytes"
	"fmt"
	"io"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/fieldsync/fieldsync/syncproto"
	"github.com/xuri/excelize/v2"
)

// Limits of ImportXLSForm: an office's questionnaire is a few dozen rows.
const (
	maxWorkbookBytes = 8 << 20
	maxUnzippedBytes = 32 << 20
	maxSheetRows     = 3000
	maxSheetColumns  = 100
	maxProblems      = 200
)

// XLSFormError lists every problem found in a workbook. It unwraps to a
// *syncproto.Error with code syncproto.EINVALID, so syncproto.ErrorCode
// reports it as invalid input.
type XLSFormError struct {
	Problems []XLSFormProblem
}

// XLSFormProblem is one problem of a workbook, located by sheet, row (as
// the spreadsheet numbers them, 1 for the header row) and column header.
type XLSFormProblem struct {
	Sheet   string // "survey", "choices", "settings", or "" for the file
	Row     int    // 0 when the problem is not about one row
	Column  string // the column header, when the problem is about one cell
	Message Text
}

// String renders the problem in English: survey row 7: unsupported type "range".
func (p XLSFormProblem) String() string {
	return p.where() + ": " + cmpOr(p.Message.EN, p.Message.ZH)
}

func (p XLSFormProblem) where() string {
	var b strings.Builder
	b.WriteString(cmpOr(p.Sheet, "workbook"))
	if p.Row > 0 {
		fmt.Fprintf(&b, " row %d", p.Row)
	}
	if p.Column != "" {
		fmt.Fprintf(&b, ", column %s", p.Column)
	}
	return b.String()
}

// key is the problem's key in syncproto.Error.Fields: survey[7].relevant.
func (p XLSFormProblem) key() string {
	k := cmpOr(p.Sheet, "workbook")
	if p.Row > 0 {
		k += fmt.Sprintf("[%d]", p.Row)
	}
	if p.Column != "" {
		k += "." + p.Column
	}
	return k
}

// Error implements error.
func (e *XLSFormError) Error() string {
	parts := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		parts[i] = p.String()
	}
	return "xlsform: " + strings.Join(parts, "; ")
}

// Unwrap returns the problems as a *syncproto.Error whose Fields map
// "survey[7].type" to the Chinese message.
func (e *XLSFormError) Unwrap() error {
	fields := map[string]string{}
	for _, p := range e.Problems {
		k := p.key()
		if prev, ok := fields[k]; ok {
			fields[k] = prev + "；" + p.Message.String()
		} else {
			fields[k] = p.Message.String()
		}
	}
	return syncproto.FieldError(fmt.Sprintf("XLSForm 表格有 %d 处问题 / the XLSForm workbook has %d problem(s)", len(e.Problems), len(e.Problems)), fields)
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// ImportXLSForm reads a questionnaire written in the XLSForm convention
// (https://xlsform.org) from an .xlsx workbook and returns it as a draft
// Definition of kind questionnaire_response.
//
// Sheets: "survey" (required), "choices" and "settings". Survey columns:
// type, name, label, hint, required, required_message, relevant,
// constraint, constraint_message, calculation, default, appearance and
// choice_filter; label, hint and the messages may carry a language,
// "label::English (en)" or "label::zh". Choices columns: list_name, name,
// label; other columns become choice properties for choice filters.
// Settings columns: form_id, version, form_title and default_language
// (Chinese unless set).
//
// Types: text, integer, decimal, date, time, dateTime, select_one and
// select_multiple with a list, image (one photo), geopoint, note,
// calculate (its type is inferred from the calculation: number, text or
// boolean), begin/end group (shown together; the values are not nested)
// and begin/end repeat (rows, which may not nest).
//
// The questions become the children of a group "answers" with layout
// "answers", after the fields every questionnaire response has (template,
// school, respondent, collection mode, collector, time), so the definition
// validates a QuestionnaireResponse record as docs/domain.md E16 describes it.
//
// Expressions are translated: ${name} becomes the field's name (answers.q1,
// or q1 inside the same repeat row), "." becomes self, = becomes ==, and,
// or, not() become &&, ||, !, div and mod become / and %, if(c, a, b)
// becomes c ? a : b, count-selected() and string-length() become count()
// and len(), sum(${f}) and count(${f}) of a field in a repeat become
// sum(repeat, 'f') and count(repeat), today() becomes today, and
// a comparison of ${x} with the empty string becomes empty(x). Bare names in a choice filter are choice
// properties.
//
// Anything the importer does not support (a type, a column with a value, a
// function, an XPath path) is a problem with its row number, never silently
// dropped. On any problem ImportXLSForm returns a nil Definition and an
// *XLSFormError listing them all. It reads the whole workbook into memory
// and writes nothing to disk.
func ImportXLSForm(r io.Reader) (*Definition, error) {
	imp := &importer{rowOf: map[string]int{}, choiceRow: map[string]int{}}
	var d *Definition
	if raw := imp.readWorkbook(r); raw != nil {
		d = imp.run(raw)
	}
	return imp.result(d)
}

// importRows imports sheets given as rows of cells, as readWorkbook
// returns them; tests and fuzzing use it to skip the .xlsx encoding.
func importRows(raw map[string][][]string) (*Definition, error) {
	imp := &importer{rowOf: map[string]int{}, choiceRow: map[string]int{}}
	return imp.result(imp.run(raw))
}

func (imp *importer) result(d *Definition) (*Definition, error) {
	if len(imp.problems) > 0 {
		sheetRank := map[string]int{"": 0, "settings": 1, "survey": 2, "choices": 3}
		sort.SliceStable(imp.problems, func(i, j int) bool {
			a, b := imp.problems[i], imp.problems[j]
			if sheetRank[a.Sheet] != sheetRank[b.Sheet] {
				return sheetRank[a.Sheet] < sheetRank[b.Sheet]
			}
			if a.Row != b.Row {
				return a.Row < b.Row
			}
			return a.Column < b.Column
		})
		if imp.dropped > 0 {
			imp.problems = append(imp.problems, XLSFormProblem{Message: textf("另有 %d 处问题未列出", "and %d more problems", imp.dropped)})
		}
		return nil, &XLSFormError{Problems: imp.problems}
	}
	return d, nil
}

// importer holds the state of one import.
type importer struct {
	problems []XLSFormProblem
	lang     string         // default language: "zh" or "en"
	rowOf    map[string]int // definition path "fields[10].fields[2]" → survey row
	// choiceRow maps "choices.list[i]" to its row on the choices sheet.
	choiceRow map[string]int
	calcs     []string // definition paths of calculate rows
	dropped   int      // problems beyond maxProblems
}

// problem records a problem; past maxProblems it only counts them.
func (imp *importer) problem(sheet string, row int, column string, msg Text) {
	if len(imp.problems) >= maxProblems {
		imp.dropped++
		return
	}
	imp.problems = append(imp.problems, XLSFormProblem{Sheet: sheet, Row: row, Column: column, Message: msg})
}

// sheetRows is one sheet: its header and its rows of cells keyed by
// normalized column ("label::zh", "constraint_message::en", "type").
type sheetRows struct {
	name string
	rows []map[string]string // rows[i] is spreadsheet row i+2
}

func (imp *importer) run(raw map[string][][]string) *Definition {
	sheets := map[string]*sheetRows{}
	for _, name := range []string{"survey", "choices", "settings"} {
		if rows, ok := raw[name]; ok {
			sheets[name] = imp.parseSheet(name, rows)
		}
	}
	imp.lang = "zh"
	d := &Definition{Kind: KindQuestionnaireResponse, Status: StatusDraft}
	imp.settings(sheets["settings"], d)
	lists := imp.choices(sheets["choices"])
	survey := sheets["survey"]
	if survey == nil {
		imp.problem("survey", 0, "", Text{ZH: "缺少 survey 工作表", EN: "the survey sheet is missing"})
		return nil
	}
	before := len(imp.problems)
	items := imp.survey(survey, lists)
	if len(imp.problems) > before {
		return nil // the rows do not make a form yet
	}
	syms := &xsymbols{byName: map[string]*xlsItem{}, prefix: "answers."}
	walkItems(items, func(it *xlsItem) {
		if it.name != "" {
			syms.byName[it.name] = it
		}
	})
	meta := questionnaireMeta()
	answers := Field{Key: "answers", Type: TypeGroup, Layout: LayoutAnswers, Required: true,
		Label: Text{ZH: "答卷", EN: "Answers"}, Fields: imp.fields(items, syms, fmt.Sprintf("fields[%d].fields", len(meta)))}
	d.Fields = append(append(meta, answers), questionnaireMetaTail()...)
	d.Choices = questionnaireMetaChoices()
	for name, l := range lists {
		if _, clash := d.Choices[name]; clash {
			imp.problem("choices", imp.choiceRow[fmt.Sprintf("choices.%s[0]", name)], "list_name",
				textf("选项列表名 %q 已被答卷信息使用", "the list name %q is used by the response's own fields", name))
			continue
		}
		d.Choices[name] = l
	}
	imp.inferCalculateTypes(d)
	imp.check(d)
	if len(imp.problems) > 0 {
		return nil
	}
	return d
}

// readWorkbook opens the workbook and returns the rows of the survey,
// choices and settings sheets. excelize gets limits that keep everything in
// memory; a panic inside it on a malformed file becomes a problem.
func (imp *importer) readWorkbook(r io.Reader) (sheets map[string][][]string) {
	defer func() {
		if v := recover(); v != nil {
			imp.problem("", 0, "", Text{ZH: "无法读取该 .xlsx 文件", EN: fmt.Sprintf("not a readable .xlsx workbook (%v)", v)})
			sheets = nil
		}
	}()
	b, err := io.ReadAll(io.LimitReader(r, maxWorkbookBytes+1))
	if err != nil {
		imp.problem("", 0, "", Text{ZH: "读取文件失败", EN: "cannot read the file: " + err.Error()})
		return nil
	}
	if len(b) > maxWorkbookBytes {
		imp.problem("", 0, "", textf("文件超过 %d MB", "the file is larger than %d MB", maxWorkbookBytes>>20))
		return nil
	}
	f, err := excelize.OpenReader(bytes.NewReader(b), excelize.Options{
		RawCellValue: true, UnzipSizeLimit: maxUnzippedBytes, UnzipXMLSizeLimit: maxUnzippedBytes,
	})
	if err != nil {
		imp.problem("", 0, "", Text{ZH: "无法读取该 .xlsx 文件", EN: "not a readable .xlsx workbook: " + err.Error()})
		return nil
	}
	defer f.Close()
	sheets = map[string][][]string{}
	for _, name := range f.GetSheetList() {
		key := strings.ToLower(strings.TrimSpace(name))
		if key != "survey" && key != "choices" && key != "settings" {
			continue
		}
		if _, dup := sheets[key]; dup {
			imp.problem(key, 0, "", textf("有两个 %s 工作表", "two %s sheets", key))
			continue
		}
		rows, err := readRows(f, name)
		if err != nil {
			imp.problem(key, 0, "", Text{ZH: "无法读取工作表", EN: "cannot read the sheet: " + err.Error()})
			continue
		}
		sheets[key] = rows
	}
	if len(imp.problems) > 0 {
		return nil
	}
	return sheets
}

func readRows(f *excelize.File, sheet string) ([][]string, error) {
	rows, err := f.Rows(sheet)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out [][]string
	for rows.Next() {
		if len(out) >= maxSheetRows {
			return nil, fmt.Errorf("more than %d rows", maxSheetRows)
		}
		cols, err := rows.Columns()
		if err != nil {
			return nil, err
		}
		if len(cols) > maxSheetColumns {
			return nil, fmt.Errorf("row %d has more than %d columns", len(out)+1, maxSheetColumns)
		}
		out = append(out, cols)
	}
	return out, rows.Error()
}

// Columns each sheet supports; label-like columns may carry a language.
var (
	sheetColumns = map[string]map[string]bool{
		"survey": {"type": true, "name": true, "label": true, "hint": true, "required": true, "required_message": true,
			"relevant": true, "constraint": true, "constraint_message": true, "calculation": true, "default": true,
			"appearance": true, "choice_filter": true},
		"choices":  {"list_name": true, "name": true, "label": true},
		"settings": {"form_id": true, "version": true, "form_title": true, "default_language": true},
	}
	translatable = map[string]bool{"label": true, "hint": true, "required_message": true, "constraint_message": true, "form_title": true}
	// mediaColumns of the choices sheet are not properties: they hold media.
	mediaColumns = map[string]bool{"image": true, "audio": true, "video": true, "media": true, "big-image": true}
	langCodeRE   = regexp.MustCompile(`\(([A-Za-z-]+)\)\s*$`)
)

// language maps an XLSForm language ("English (en)", "zh", "中文") to
// "zh" or "en"; other languages are not supported.
func language(s string) (string, bool) {
	s = strings.TrimSpace(s)
	if m := langCodeRE.FindStringSubmatch(s); m != nil {
		s = m[1]
	}
	s = strings.ToLower(s)
	switch {
	case s == "zh" || strings.HasPrefix(s, "zh-") || strings.HasPrefix(s, "zh_") || s == "chinese" || s == "中文" || s == "简体中文" || s == "汉语":
		return "zh", true
	case s == "en" || strings.HasPrefix(s, "en-") || strings.HasPrefix(s, "en_") || s == "english" || s == "英文" || s == "英语":
		return "en", true
	}
	return "", false
}

// parseSheet reads the header row and keys every cell by its column.
func (imp *importer) parseSheet(sheet string, rows [][]string) *sheetRows {
	out := &sheetRows{name: sheet}
	if len(rows) == 0 {
		return out
	}
	type col struct {
		key    string // normalized key, "" when the column is unsupported
		header string
	}
	cols := make([]col, len(rows[0]))
	seen := map[string]bool{}
	for j, h := range rows[0] {
		header := strings.TrimSpace(h)
		cols[j].header = header
		if header == "" {
			continue
		}
		base, lang, hasLang := strings.Cut(header, "::")
		base = strings.ReplaceAll(strings.ToLower(strings.TrimSpace(base)), " ", "_")
		if base == "list name" || base == "list_name" {
			base = "list_name"
		}
		key := base
		switch {
		case sheet == "choices" && !sheetColumns[sheet][base] && !hasLang && !mediaColumns[base] && fieldKeyRE.MatchString(header):
			key = "prop::" + header // a property for choice filters
		case !sheetColumns[sheet][base]:
			key = ""
		case hasLang:
			code, ok := language(lang)
			if !ok || !translatable[base] {
				imp.problem(sheet, 1, header, textf("不支持的语言列 %q（支持 zh 和 en）", "unsupported language column %q (zh and en are supported)", header))
				key = "-"
				break
			}
			key = base + "::" + code
		}
		if key != "" && key != "-" {
			if seen[key] {
				imp.problem(sheet, 1, header, textf("列 %q 重复", "duplicate column %q", header))
			}
			seen[key] = true
		}
		cols[j].key = key
	}
	for i, cells := range rows[1:] {
		rowNum := i + 2
		m := map[string]string{}
		for j, v := range cells {
			v = strings.TrimSpace(v)
			if v == "" {
				continue
			}
			if j >= len(cols) || cols[j].header == "" {
				imp.problem(sheet, rowNum, "", Text{ZH: "没有列名的单元格里有内容", EN: "a value in a column without a header"})
				continue
			}
			switch cols[j].key {
			case "":
				imp.problem(sheet, rowNum, cols[j].header, textf("不支持的列 %q", "unsupported column %q", cols[j].header))
			case "-":
			default:
				m[cols[j].key] = v
			}
		}
		out.rows = append(out.rows, m)
	}
	return out
}

// text reads a translatable column: "label", "label::zh", "label::en".
func (imp *importer) text(cells map[string]string, base string) Text {
	t := Text{ZH: cells[base+"::zh"], EN: cells[base+"::en"]}
	if plain := cells[base]; plain != "" {
		if imp.lang == "en" && t.EN == "" {
			t.EN = plain
		} else if imp.lang == "zh" && t.ZH == "" {
			t.ZH = plain
		}
	}
	return t
}

func (imp *importer) settings(s *sheetRows, d *Definition) {
	if s == nil || len(s.rows) == 0 {
		imp.problem("settings", 0, "", Text{ZH: "缺少 settings 工作表或其第 2 行（form_id、version）", EN: "the settings sheet with form_id and version in row 2 is missing"})
		return
	}
	cells := s.rows[0]
	for i := 1; i < len(s.rows); i++ {
		if len(s.rows[i]) > 0 {
			imp.problem("settings", i+2, "", Text{ZH: "设置只能写在第 2 行", EN: "settings belong in row 2 only"})
		}
	}
	if lang := cells["default_language"]; lang != "" {
		code, ok := language(lang)
		if !ok {
			imp.problem("settings", 2, "default_language", textf("不支持的语言 %q（支持 zh 和 en）", "unsupported language %q (zh and en are supported)", lang))
		} else {
			imp.lang = code
		}
	}
	d.ID = cells["form_id"]
	if d.ID == "" {
		imp.problem("settings", 2, "form_id", Text{ZH: "缺少表单编号 form_id", EN: "form_id is missing"})
	}
	v := cells["version"]
	n, err := strconv.Atoi(v)
	switch {
	case v == "":
		imp.problem("settings", 2, "version", Text{ZH: "缺少版本号 version", EN: "version is missing"})
	case err != nil || n < 1:
		imp.problem("settings", 2, "version", textf("版本号应为正整数，而不是 %q", "version must be a positive whole number, not %q", v))
	default:
		d.Version = n
	}
	d.Title = imp.text(cells, "form_title")
	if d.Title.IsZero() {
		d.Title = Text{ZH: d.ID}
	}
}

func (imp *importer) choices(s *sheetRows) map[string][]Choice {
	lists := map[string][]Choice{}
	if s == nil {
		return lists
	}
	seen := map[string]int{}
	for i, cells := range s.rows {
		row := i + 2
		if len(cells) == 0 {
			continue
		}
		list, name := cells["list_name"], cells["name"]
		if list == "" || name == "" {
			imp.problem("choices", row, "", Text{ZH: "选项需要 list_name 和 name", EN: "a choice needs list_name and name"})
			continue
		}
		if !listNameRE.MatchString(list) {
			imp.problem("choices", row, "list_name", textf("选项列表名 %q 无效", "invalid list name %q", list))
			continue
		}
		if first, dup := seen[list+"\x00"+name]; dup {
			imp.problem("choices", row, "name", textf("选项 %q 与第 %d 行重复", "duplicate choice %q (also row %d)", name, first))
			continue
		}
		seen[list+"\x00"+name] = row
		c := Choice{Value: name, Label: imp.text(cells, "label")}
		for k, v := range cells {
			if p, ok := strings.CutPrefix(k, "prop::"); ok {
				if c.Props == nil {
					c.Props = map[string]string{}
				}
				c.Props[p] = v
			}
		}
		imp.choiceRow[fmt.Sprintf("choices.%s[%d]", list, len(lists[list]))] = row
		lists[list] = append(lists[list], c)
	}
	return lists
}

// xlsItem is one survey row, or a group or repeat with its rows.
type xlsItem struct {
	row      int
	kind     string // "text", …, "select_one", "calculate", "begin group", "begin repeat"
	name     string
	list     string
	cells    map[string]string
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

// textual reports whether the row's value is a string in expressions.
func (it *xlsItem) textual() bool {
	switch it.kind {
	case "text", "select_one", "date", "time", "datetime":
		return true
	}
	return false
}

// xsymbols are the named rows of a survey.
type xsymbols struct {
	byName map[string]*xlsItem
	prefix string // path of the answers group, with a dot
}

// path returns the name expressions use for it, seen from scope (a repeat
// or nil). Groups are inline, so only repeats change the path.
func (s *xsymbols) path(it *xlsItem, scope *xlsItem) string {
	if it.repeat() != nil && it.repeat() == scope {
		return it.name
	}
	return s.prefix + it.name
}

func walkItems(items []*xlsItem, fn func(*xlsItem)) {
	for _, it := range items {
		fn(it)
		walkItems(it.children, fn)
	}
}

// surveyTypes maps XLSForm types to field types.
var surveyTypes = map[string]string{
	"text": TypeText, "string": TypeText, "integer": TypeInteger, "int": TypeInteger, "decimal": TypeDecimal,
	"date": TypeDate, "time": TypeTime, "datetime": TypeDateTime, "geopoint": TypeGeopoint, "note": TypeNote,
	"image": TypePhoto, "calculate": TypeDecimal, // until inferCalculateTypes
}

// survey reads the rows of the survey sheet into a tree of items.
func (imp *importer) survey(s *sheetRows, lists map[string][]Choice) []*xlsItem {
	var top []*xlsItem
	var stack []*xlsItem
	names := map[string]int{}
	for i, cells := range s.rows {
		row := i + 2
		if len(cells) == 0 {
			continue
		}
		typ := strings.Join(strings.Fields(strings.ToLower(cells["type"])), " ")
		typ = strings.NewReplacer("begin_group", "begin group", "end_group", "end group", "begin_repeat", "begin repeat", "end_repeat", "end repeat").Replace(typ)
		if typ == "" {
			imp.problem("survey", row, "", Text{ZH: "缺少题型 type", EN: "type is missing"})
			continue
		}
		it := &xlsItem{row: row, kind: typ, name: cells["name"], cells: cells}
		switch {
		case typ == "end group" || typ == "end repeat":
			want := strings.Replace(typ, "end", "begin", 1)
			if len(stack) == 0 || stack[len(stack)-1].kind != want {
				imp.problem("survey", row, "type", textf("%q 没有对应的开始行", "%q without a matching begin", typ))
				continue
			}
			stack = stack[:len(stack)-1]
			continue
		case typ == "begin group" || typ == "begin repeat":
			if typ == "begin repeat" && inRepeat(stack) {
				imp.problem("survey", row, "type", Text{ZH: "不支持重复组嵌套", EN: "a repeat inside a repeat is not supported"})
			}
		case strings.HasPrefix(typ, "select_one ") || strings.HasPrefix(typ, "select_multiple "):
			parts := strings.Fields(cells["type"]) // the list name keeps its case
			if len(parts) != 2 {
				imp.problem("survey", row, "", textf("不支持的题型 %q", "unsupported type %q", cells["type"]))
				continue
			}
			kind, list := strings.ToLower(parts[0]), parts[1]
			if _, ok := lists[list]; !ok {
				imp.problem("survey", row, "type", textf("选项列表 %q 在 choices 表中不存在", "choice list %q is not on the choices sheet", list))
			}
			it.kind, it.list = kind, list
		default:
			if _, ok := surveyTypes[typ]; !ok {
				imp.problem("survey", row, "", textf("不支持的题型 %q", "unsupported type %q", cells["type"]))
				continue
			}
		}
		switch {
		case it.name == "":
			imp.problem("survey", row, "name", Text{ZH: "缺少名称 name", EN: "name is missing"})
		case !fieldKeyRE.MatchString(it.name) || len(it.name) > 64:
			imp.problem("survey", row, "name", textf("名称 %q 只能用字母、数字和下划线，并以字母开头", "name %q must use letters, digits and _, starting with a letter", it.name))
		case reservedNames[it.name]:
			imp.problem("survey", row, "name", textf("%q 是表达式的保留字，不能作名称", "%q is reserved in expressions and cannot be a name", it.name))
		case names[it.name] > 0:
			imp.problem("survey", row, "name", textf("名称 %q 与第 %d 行重复", "duplicate name %q (also row %d)", it.name, names[it.name]))
		default:
			names[it.name] = row
		}
		if len(stack) > 0 {
			it.parent = stack[len(stack)-1]
			it.parent.children = append(it.parent.children, it)
		} else {
			top = append(top, it)
		}
		if typ == "begin group" || typ == "begin repeat" {
			stack = append(stack, it)
		}
	}
	for _, open := range stack {
		imp.problem("survey", open.row, "type", textf("%q 没有结束行", "%q is never ended", open.kind))
	}
	if len(top) == 0 && len(imp.problems) == 0 {
		imp.problem("survey", 0, "", Text{ZH: "survey 表没有题目", EN: "the survey sheet has no questions"})
	}
	return top
}

// inRepeat reports whether the open groups and repeats include a repeat.
func inRepeat(stack []*xlsItem) bool {
	for _, p := range stack {
		if p.kind == "begin repeat" {
			return true
		}
	}
	return false
}

// fields turns items into fields, translating their expressions; path is
// the definition path of the slice ("fields[10].fields").
func (imp *importer) fields(items []*xlsItem, syms *xsymbols, path string) []Field {
	var out []Field
	for i, it := range items {
		p := fmt.Sprintf("%s[%d]", path, i)
		imp.rowOf[p] = it.row
		f := Field{Key: it.name, Label: imp.text(it.cells, "label"), Hint: imp.text(it.cells, "hint"),
			Appearance: it.cells["appearance"], RequiredMessage: imp.text(it.cells, "required_message")}
		switch it.kind {
		case "begin group":
			f.Type, f.Layout = TypeGroup, LayoutInline
		case "begin repeat":
			f.Type = TypeRepeat
		case "select_one", "select_multiple":
			f.Type, f.ChoiceList = it.kind, it.list
		default:
			f.Type = surveyTypes[it.kind]
		}
		if it.kind == "image" {
			f.MaxCount = new(1)
		}
		if it.kind == "calculate" {
			imp.calcs = append(imp.calcs, p)
		}
		tr := func(column string) string {
			src := it.cells[column]
			if src == "" {
				return ""
			}
			out, err := translateXPath(src, xcontext{column: column, item: it, syms: syms})
			if err != nil {
				imp.problem("survey", it.row, column, textf("无法转换表达式：%s", "cannot translate the expression: %s", err.Error()))
				return ""
			}
			return out
		}
		switch req := strings.ToLower(it.cells["required"]); req {
		case "", "no", "false", "false()", "0":
		case "yes", "true", "true()", "1":
			f.Required = true
		default:
			f.RequiredIf = tr("required")
		}
		f.Relevant = tr("relevant")
		f.Calculation = tr("calculation")
		f.ChoiceFilter = tr("choice_filter")
		if c := tr("constraint"); c != "" {
			f.Constraints = []Constraint{{Expr: c, Message: imp.text(it.cells, "constraint_message")}}
		} else if msg := imp.text(it.cells, "constraint_message"); !msg.IsZero() && it.cells["constraint"] == "" {
			imp.problem("survey", it.row, "constraint_message", Text{ZH: "有约束提示却没有约束", EN: "a constraint_message without a constraint"})
		}
		if def := it.cells["default"]; def != "" {
			f.Default = xlsDefault(f.Type, def)
		}
		if it.kind == "calculate" && f.Calculation == "" && it.cells["calculation"] == "" {
			imp.problem("survey", it.row, "calculation", Text{ZH: "calculate 题需要 calculation", EN: "a calculate row needs a calculation"})
		}
		f.Fields = imp.fields(it.children, syms, p+".fields")
		out = append(out, f)
	}
	return out
}

// xlsDefault converts a default cell to a value of the field's type; Check
// reports a value that does not fit.
func xlsDefault(typ, s string) any {
	switch typ {
	case TypeInteger:
		if n, err := strconv.ParseFloat(s, 64); err == nil {
			return n
		}
	case TypeSelectMultiple:
		var l []any
		for _, v := range strings.Fields(s) {
			l = append(l, v)
		}
		return l
	}
	return s
}

// inferCalculateTypes gives each calculate row the type of its
// calculation's result: decimal for numbers, boolean, or text. Calculations
// that read other calculations are inferred after them.
func (imp *importer) inferCalculateTypes(d *Definition) {
	calc := map[*Field]bool{}
	for _, p := range imp.calcs {
		if f := fieldAt(d, p); f != nil {
			calc[f] = true
		}
	}
	for range len(calc) + 1 {
		c := &compiler{d: d, f: &form{}, errs: Errors{}, names: map[*node]map[string]*node{}, envs: map[*node]map[string]any{}}
		c.f.top = c.build(d.Fields, "fields", nil, nil, "", map[string]string{})
		c.buildEnvs()
		changed := false
		for _, n := range c.f.all {
			if !calc[n.f] || n.f.Calculation == "" {
				continue
			}
			p, err := parseExpr(n.f.Calculation)
			if err != nil {
				continue
			}
			prog, err := compileExpr(p, c.envFor(n, exprCalc), exprCalc, definitionFuncs(d)...)
			if err != nil {
				continue
			}
			t := TypeText
			if rt := prog.Node().Type(); rt != nil {
				switch rt.Kind() {
				case reflect.Float64, reflect.Int:
					t = TypeDecimal
				case reflect.Bool:
					t = TypeBoolean
				}
			}
			if t != n.f.Type {
				n.f.Type, changed = t, true
			}
		}
		if !changed {
			return
		}
	}
}

// fieldAt returns the field at a definition path such as
// "fields[10].fields[2]".
func fieldAt(d *Definition, path string) *Field {
	fields := d.Fields
	var f *Field
	for _, part := range strings.Split(path, ".") {
		var i int
		if _, err := fmt.Sscanf(part, "fields[%d]", &i); err != nil || i < 0 || i >= len(fields) {
			return nil
		}
		f = &fields[i]
		fields = f.Fields
	}
	return f
}

// checkColumns maps an attribute of a Check key to the survey column that
// holds it.
var checkColumns = []struct{ attr, column string }{
	{".relevant", "relevant"}, {".required_if", "required"}, {".required", "required"},
	{".calculation", "calculation"}, {".constraints", "constraint"}, {".choice_filter", "choice_filter"},
	{".default", "default"}, {".label", "label"}, {".key", "name"}, {".type", "type"},
	{".choice_list", "type"}, {".fields", "type"}, {".layout", "type"}, {".unique", "type"},
	{".min_count", "type"}, {".format", "type"}, {".origin", "type"},
}

// check runs Definition.Check and reports its problems on the rows they
// come from.
func (imp *importer) check(d *Definition) {
	rowKey := func(p XLSFormProblem) string {
		if p.Sheet == "settings" { // one row of settings: any problem there stands for all
			return p.Sheet
		}
		return fmt.Sprintf("%s/%d", p.Sheet, p.Row)
	}
	reported := map[string]bool{}
	for _, p := range imp.problems {
		reported[rowKey(p)] = true
	}
	n := len(imp.problems)
	defer func() {
		// A row that already has a problem keeps only the importer's.
		kept := imp.problems[:n]
		for _, p := range imp.problems[n:] {
			if !reported[rowKey(p)] {
				kept = append(kept, p)
			}
		}
		imp.problems = kept
	}()
	errs := compileDefinition(d).errs
	keys := make([]string, 0, len(errs))
	for k := range errs {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		msg := errs[k]
		switch {
		case k == "id":
			imp.problem("settings", 2, "form_id", msg)
			continue
		case k == "version":
			imp.problem("settings", 2, "version", msg)
			continue
		case strings.HasPrefix(k, "title"):
			imp.problem("settings", 2, "form_title", msg)
			continue
		case strings.HasPrefix(k, "choices."):
			prefix := k
			if i := strings.Index(k, "]"); i >= 0 {
				prefix = k[:i+1]
			}
			imp.problem("choices", imp.choiceRow[prefix], "", msg)
			continue
		}
		// The longest field path that is a prefix of k names the row.
		best := ""
		for p := range imp.rowOf {
			if strings.HasPrefix(k, p) && len(p) > len(best) && (len(k) == len(p) || k[len(p)] == '.') {
				best = p
			}
		}
		if best == "" {
			imp.problem("", 0, "", Text{ZH: "表单定义无效：" + msg.ZH, EN: "invalid definition: " + k + ": " + msg.EN})
			continue
		}
		column := ""
		rest := k[len(best):]
		for _, c := range checkColumns {
			if strings.HasPrefix(rest, c.attr) {
				column = c.column
				break
			}
		}
		imp.problem("survey", imp.rowOf[best], column, msg)
	}
}

// questionnaireMeta are the fields every questionnaire response has before
// its answers (docs/domain.md E16). The built-in questionnaires have the same ones,
// with a constraint on the respondent type.
func questionnaireMeta() []Field {
	uuid := func(key, zh, en string, required bool) Field {
		return Field{Key: key, Type: TypeText, Format: "uuid", Required: required, Label: Text{ZH: zh, EN: en}}
	}
	return []Field{
		uuid("template_id", "问卷模板", "Template", true),
		{Key: "template_version", Type: TypeInteger, Required: true, Label: Text{ZH: "模板版本", EN: "Template version"}, Constraints: []Constraint{{Min: new(1.0)}}},
		uuid("school_id", "学校", "School", true),
		uuid("visit_id", "所属督导", "Visit", false),
		uuid("campaign_id", "所属督导任务", "Campaign", false),
		{Key: "respondent_type", Type: TypeSelectOne, ChoiceList: "respondent_type", Required: true, Label: Text{ZH: "答卷人", EN: "Respondent"}},
		{Key: "respondent_grade", Type: TypeText, Relevant: "respondent_type == 'student'", Label: Text{ZH: "年级", EN: "Grade"}, Constraints: []Constraint{{MaxLength: new(20)}}},
		{Key: "collection_mode", Type: TypeSelectOne, ChoiceList: "collection_mode", Required: true, Label: Text{ZH: "填写方式", EN: "Collection mode"}},
		uuid("collector_id", "收集人", "Collector", true),
		{Key: "collected_at", Type: TypeDateTime, Required: true, Label: Text{ZH: "填写时间", EN: "Collected at"}},
	}
}

// questionnaireMetaTail are the server fields after the answers.
func questionnaireMetaTail() []Field {
	return []Field{{Key: "status", Type: TypeText, Origin: OriginServer}, {Key: "void_reason", Type: TypeText, Origin: OriginServer}}
}

func questionnaireMetaChoices() map[string][]Choice {
	c := func(v, zh, en string) Choice { return Choice{Value: v, Label: Text{ZH: zh, EN: en}} }
	return map[string][]Choice{
		"respondent_type": {c("student", "学生", "student"), c("parent", "家长", "parent"), c("teacher", "教师", "teacher"),
			c("staff", "职工", "staff"), c("principal", "校长", "principal"), c("public", "社会公众", "public")},
		"collection_mode": {c("self_on_device", "本人在设备上填写", "self on device"), c("interview", "访谈代填", "interview"),
			c("paper_transcribed", "纸质录入", "paper transcribed"), c("online_link", "在线链接", "online link")},
	}
}
