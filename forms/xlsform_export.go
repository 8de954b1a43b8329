//go:build !js

package forms

import (
	"bytes"
	"encoding/csv"
	"errors"
	"fmt"
	"strings"

	"github.com/expr-lang/expr/file"
	"github.com/expr-lang/expr/parser/lexer"
	"github.com/xuri/excelize/v2"
)

// XLSFormExport is a form version written back as an XLSForm workbook,
// with the CSV files its pulldata() reads.
type XLSFormExport struct {
	Workbook []byte
	Files    map[string][]byte
}

// ExportXLSForm writes a definition that ImportXLSFormFile made (a
// questionnaire with an answers group) as an XLSForm workbook that imports
// to the same definition: texts in explicit language columns, expressions
// translated back to XLSForm's XPath, choice lists read from files written
// into the choices sheet, and pulldata() tables as CSV files. A definition
// of another shape (a built-in form, one published as JSON with
// constraints XLSForm cannot say) is refused with the reason.
func ExportXLSForm(d *Definition) (*XLSFormExport, error) {
	ex := &exporter{d: d, byList: map[string]string{}, repeats: map[string]bool{}}
	answers := -1
	for i, f := range d.Fields {
		if f.Key == "answers" && f.Type == TypeGroup && f.Layout == LayoutAnswers {
			answers = i
		}
	}
	if d.Kind != KindQuestionnaireResponse || answers < 0 {
		return nil, errors.New("only questionnaires (forms with an answers group, as XLSForm imports make) can be written as XLSForm")
	}
	ex.answers = fmt.Sprintf("fields[%d].fields", answers)
	ex.index(d.Fields[answers].Fields)
	ex.langs = sortedKeys(d.Translations)

	survey := [][]string{ex.surveyHeader()}
	if err := ex.rows(d.Fields[answers].Fields, ex.answers, &survey); err != nil {
		return nil, err
	}
	choices, err := ex.choices()
	if err != nil {
		return nil, err
	}
	settings, err := ex.settings()
	if err != nil {
		return nil, err
	}
	out := &XLSFormExport{Files: map[string][]byte{}}
	for _, name := range sortedKeys(d.Tables) {
		var buf bytes.Buffer
		w := csv.NewWriter(&buf)
		t := d.Tables[name]
		_ = w.Write(t.Columns)
		_ = w.WriteAll(t.Rows)
		out.Files[name+".csv"] = buf.Bytes()
	}
	f := excelize.NewFile()
	defer f.Close()
	for i, sheet := range []struct {
		name string
		rows [][]string
	}{{"survey", survey}, {"choices", choices}, {"settings", settings}} {
		if i == 0 {
			if err := f.SetSheetName("Sheet1", sheet.name); err != nil {
				return nil, err
			}
		} else if _, err := f.NewSheet(sheet.name); err != nil {
			return nil, err
		}
		for r, row := range sheet.rows {
			cells := make([]any, len(row))
			for j, v := range row {
				cells[j] = v
			}
			cell, _ := excelize.CoordinatesToCellName(1, r+1)
			if err := f.SetSheetRow(sheet.name, cell, &cells); err != nil {
				return nil, err
			}
		}
	}
	var buf bytes.Buffer
	if _, err := f.WriteTo(&buf); err != nil {
		return nil, err
	}
	out.Workbook = buf.Bytes()
	return out, nil
}

// exporter holds the state of one export.
type exporter struct {
	d       *Definition
	answers string            // definition path of the answers' fields
	langs   []string          // other languages, in order
	byList  map[string]string // choice list → the key of a question using it
	repeats map[string]bool   // keys of repeats
	derived map[string]bool   // choice lists the importer derived for or_other
	media   []string          // media:: columns
}

// index records the repeats, the questions of each list and the media
// columns.
func (ex *exporter) index(fields []Field) {
	ex.derived = map[string]bool{}
	media := map[string]bool{}
	var walk func([]Field)
	walk = func(fields []Field) {
		for _, f := range fields {
			if f.Type == TypeRepeat {
				ex.repeats[f.Key] = true
			}
			if f.ChoiceList != "" {
				if _, ok := ex.byList[f.ChoiceList]; !ok {
					ex.byList[f.ChoiceList] = f.Key
				}
				if base, ok := strings.CutSuffix(f.ChoiceList, "_or_other"); ok && f.OrOther && ex.d.Choices[base] != nil {
					ex.derived[f.ChoiceList] = true
				}
			}
			for k := range f.Media {
				media[k] = true
			}
			walk(f.Fields)
		}
	}
	walk(fields)
	for _, list := range ex.d.Choices {
		for _, c := range list {
			for k := range c.Media {
				media[k] = true
			}
		}
	}
	ex.media = sortedKeys(media)
}

// textColumns are the columns of a translatable text: Chinese, English,
// then the other languages.
func (ex *exporter) textColumns(base string) []string {
	cols := []string{base + "::Chinese (zh)", base + "::English (en)"}
	for _, l := range ex.langs {
		cols = append(cols, base+"::"+l)
	}
	return cols
}

// textCells fills a text's columns; defPath finds its translations.
func (ex *exporter) textCells(row map[string]string, base string, t Text, defPath string) {
	cols := ex.textColumns(base)
	row[cols[0]], row[cols[1]] = ex.names(t.ZH), ex.names(t.EN)
	for i, l := range ex.langs {
		row[cols[2+i]] = ex.names(ex.d.Translations[l][defPath])
	}
}

// names writes the ${answers.x} of a text as XLSForm's ${x}.
func (ex *exporter) names(s string) string {
	return placeholderRE.ReplaceAllStringFunc(s, func(m string) string {
		name := m[2 : len(m)-1]
		return "${" + strings.TrimPrefix(name, "answers.") + "}"
	})
}

var surveyOther = []string{"required", "relevant", "constraint", "calculation", "trigger", "default", "read_only",
	"appearance", "choice_filter", "parameters", "repeat_count"}

func (ex *exporter) surveyColumns() []string {
	cols := []string{"type", "name"}
	cols = append(cols, ex.textColumns("label")...)
	cols = append(cols, ex.textColumns("hint")...)
	cols = append(cols, ex.textColumns("required_message")...)
	cols = append(cols, ex.textColumns("constraint_message")...)
	cols = append(cols, surveyOther...)
	for _, m := range ex.media {
		cols = append(cols, "media::"+m)
	}
	return cols
}

func (ex *exporter) surveyHeader() []string { return ex.surveyColumns() }

// line turns a row of cells into the columns of the header.
func line(cols []string, cells map[string]string) []string {
	out := make([]string, len(cols))
	for i, c := range cols {
		out[i] = cells[c]
	}
	for len(out) > 0 && out[len(out)-1] == "" {
		out = out[:len(out)-1]
	}
	return out
}

// rows writes the survey rows of fields.
func (ex *exporter) rows(fields []Field, path string, out *[][]string) error {
	cols := ex.surveyColumns()
	for i := range fields {
		f := &fields[i]
		p := fmt.Sprintf("%s[%d]", path, i)
		row := map[string]string{"name": f.Key, "appearance": f.Appearance}
		typ, err := ex.fieldType(f)
		if err != nil {
			return fmt.Errorf("%s (%s): %w", f.Key, p, err)
		}
		row["type"] = typ
		ex.textCells(row, "label", f.Label, p+".label")
		ex.textCells(row, "hint", f.Hint, p+".hint")
		ex.textCells(row, "required_message", f.RequiredMessage, p+".required_message")
		for k, v := range f.Media {
			row["media::"+k] = v
		}
		if len(f.Parameters) > 0 {
			var ps []string
			for _, k := range sortedKeys(f.Parameters) {
				ps = append(ps, k+"="+f.Parameters[k])
			}
			row["parameters"] = strings.Join(ps, " ")
		}
		if f.Origin != "" && f.Origin != OriginClient || f.Format != "" || f.MinCount != nil || f.Unique ||
			(f.MaxCount != nil && !(attachmentType(f.Type) && *f.MaxCount == 1)) {
			return fmt.Errorf("%s: origin, format, counts and unique cannot be written in XLSForm", f.Key)
		}
		xp := func(column, src string) (string, error) {
			if src == "" {
				return "", nil
			}
			s, err := toXPath(src, column, ex)
			if err != nil {
				return "", fmt.Errorf("%s, %s: %w", f.Key, column, err)
			}
			return s, nil
		}
		set := func(column, src string) {
			if err == nil && src != "" {
				row[column], err = xp(column, src)
			}
		}
		if f.Required {
			row["required"] = "yes"
		}
		set("required", f.RequiredIf)
		if f.ReadOnly {
			row["read_only"] = "yes"
		}
		set("read_only", f.ReadOnlyIf)
		set("relevant", f.Relevant)
		set("choice_filter", f.ChoiceFilter)
		set("repeat_count", f.RepeatCount)
		switch len(f.Constraints) {
		case 0:
		case 1:
			c := f.Constraints[0]
			if c.Expr == "" {
				return fmt.Errorf("%s: only expression constraints can be written in XLSForm", f.Key)
			}
			set("constraint", c.Expr)
			ex.textCells(row, "constraint_message", c.Message, p+".constraints[0].message")
		default:
			return fmt.Errorf("%s: XLSForm has one constraint per question", f.Key)
		}
		if f.Calculation != "" {
			calc := f.Calculation
			column := "calculation"
			switch {
			case len(f.Trigger) > 0:
				var ts []string
				for _, t := range f.Trigger {
					ts = append(ts, "${"+strings.TrimPrefix(t, "answers.")+"}")
				}
				row["trigger"] = strings.Join(ts, ", ")
			case f.Once && wrapped(calc):
				s, e := xp(column, calc[1:len(calc)-1])
				if e != nil {
					return e
				}
				row[column] = "once(" + s + ")"
				calc = ""
			case f.Once:
				column = "default"
			}
			if calc != "" {
				set(column, calc)
			}
		}
		if f.Default != nil {
			row["default"] = defaultCell(f.Default)
		}
		if err != nil {
			return err
		}
		*out = append(*out, line(cols, row))
		if f.container() {
			if err := ex.rows(f.Fields, p+".fields", out); err != nil {
				return err
			}
			end := "end group"
			if f.Type == TypeRepeat {
				end = "end repeat"
			}
			*out = append(*out, []string{end})
		}
	}
	return nil
}

// wrapped reports whether s is one parenthesized expression, as once()
// leaves a calculation: "(…)".
func wrapped(s string) bool {
	if len(s) < 2 || s[0] != '(' || s[len(s)-1] != ')' {
		return false
	}
	depth, quote := 0, byte(0)
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case quote != 0:
			if c == '\\' {
				i++
			} else if c == quote {
				quote = 0
			}
		case c == '\'' || c == '"':
			quote = c
		case c == '(':
			depth++
		case c == ')':
			depth--
			if depth == 0 && i != len(s)-1 {
				return false
			}
		}
	}
	return true
}

// fieldType is the XLSForm type of a field.
func (ex *exporter) fieldType(f *Field) (string, error) {
	if f.Meta != "" {
		return f.Meta, nil
	}
	switch f.Type {
	case TypeGroup:
		if f.Layout != LayoutInline {
			return "", errors.New("only inline groups can be written in XLSForm")
		}
		return "begin group", nil
	case TypeRepeat:
		return "begin repeat", nil
	case TypeSelectOne, TypeSelectMultiple, TypeRank:
		list := f.ChoiceList
		if ex.derived[list] {
			list = strings.TrimSuffix(list, "_or_other")
		}
		t := f.Type + " " + list
		if f.OrOther {
			t += " or_other"
		}
		return t, nil
	case TypePhoto:
		return "image", nil
	case TypeDateTime:
		return "dateTime", nil
	case TypeBoolean:
		if f.Calculation == "" {
			return "", errors.New("XLSForm has no yes/no question: use a select_one")
		}
		return "calculate", nil
	case TypeTextList:
		return "", errors.New("XLSForm has no list of texts")
	}
	if f.Hidden && f.Type == TypeText || f.Hidden && f.Calculation != "" {
		return "hidden", nil
	}
	if f.Calculation != "" && (f.Type == TypeText || f.Type == TypeDecimal) {
		return "calculate", nil
	}
	return f.Type, nil
}

// defaultCell writes a default as XLSForm writes it.
func defaultCell(v any) string {
	switch x := v.(type) {
	case []any:
		parts := make([]string, len(x))
		for i, e := range x {
			parts[i] = fmt.Sprint(e)
		}
		return strings.Join(parts, " ")
	case map[string]any:
		s := valueText(x)
		if acc, ok := asNumber(x["accuracy_m"]); ok {
			s += " 0 " + formatNumber(acc)
		}
		return s
	}
	return valueText(v)
}

// choices writes the choice lists, without those of the response itself
// and those the importer derived for or_other.
func (ex *exporter) choices() ([][]string, error) {
	meta := questionnaireMetaChoices()
	props := map[string]bool{}
	var lists []string
	for _, name := range sortedKeys(ex.d.Choices) {
		if _, ok := meta[name]; ok || ex.derived[name] {
			continue
		}
		lists = append(lists, name)
		for _, c := range ex.d.Choices[name] {
			for p := range c.Props {
				props[p] = true
			}
		}
	}
	cols := append([]string{"list_name", "name"}, ex.textColumns("label")...)
	for _, m := range ex.media {
		cols = append(cols, "media::"+m)
	}
	propCols := sortedKeys(props)
	for _, p := range propCols {
		low := strings.ToLower(p)
		if _, alias := columnAliases[low]; alias || choicesColumns[low] || translatable[low] {
			return nil, fmt.Errorf("the choice property %q cannot be a column of the choices sheet", p)
		}
	}
	cols = append(cols, propCols...)
	out := [][]string{cols}
	for _, name := range lists {
		for i, c := range ex.d.Choices[name] {
			row := map[string]string{"list_name": name, "name": c.Value}
			ex.textCells(row, "label", c.Label, fmt.Sprintf("choices.%s[%d].label", name, i))
			for k, v := range c.Media {
				row["media::"+k] = v
			}
			for k, v := range c.Props {
				row[k] = v
			}
			out = append(out, line(cols, row))
		}
	}
	return out, nil
}

// settings writes the settings sheet.
func (ex *exporter) settings() ([][]string, error) {
	d := ex.d
	row := map[string]string{"form_id": d.ID, "style": d.Style}
	if d.Version > 0 {
		row["version"] = fmt.Sprint(d.Version)
	}
	ex.textCells(row, "form_title", d.Title, "title")
	if d.AllowChoiceDuplicates {
		row["allow_choice_duplicates"] = "yes"
	}
	if d.TitleField != "" {
		for _, f := range d.Fields {
			if f.Key != d.TitleField {
				continue
			}
			src := f.Calculation
			if f.Once && wrapped(src) {
				s, err := toXPath(src[1:len(src)-1], "calculation", ex)
				if err != nil {
					return nil, fmt.Errorf("instance_name: %w", err)
				}
				row["instance_name"] = "once(" + s + ")"
			} else {
				s, err := toXPath(src, "calculation", ex)
				if err != nil {
					return nil, fmt.Errorf("instance_name: %w", err)
				}
				row["instance_name"] = s
			}
		}
	}
	cols := append([]string{"form_id", "version"}, ex.textColumns("form_title")...)
	cols = append(cols, "instance_name", "style", "allow_choice_duplicates")
	return [][]string{cols, line(cols, row)}, nil
}

// toXPath translates an expression of the subset back to XLSForm's XPath,
// the inverse of translateXPath for what it produces.
func toXPath(src, column string, ex *exporter) (string, error) {
	toks, err := lexer.Lex(file.NewSource(src))
	if err != nil {
		return "", err
	}
	if n := len(toks); n > 0 && toks[n-1].Kind == lexer.EOF {
		toks = toks[:n-1]
	}
	return ex.xpath(toks, column)
}

// xfuncNames maps the subset's function names back to XPath's.
var xfuncNames = func() map[string]string {
	m := map[string]string{}
	for x, f := range xfuncs {
		if _, ok := m[f.name]; !ok || x == f.name {
			m[f.name] = x
		}
	}
	m["count"], m["len"] = "count-selected", "string-length"
	m["max"], m["min"], m["sum"] = "max", "min", "sum"
	return m
}()

func (ex *exporter) xpath(toks []lexer.Token, column string) (string, error) {
	var parts []string
	for i := 0; i < len(toks); i++ {
		t := toks[i]
		switch t.Kind {
		case lexer.Number:
			parts = append(parts, t.Value)
		case lexer.String:
			s, err := xpathString(t.Value)
			if err != nil {
				return "", err
			}
			parts = append(parts, s)
		case lexer.Operator:
			switch t.Value {
			case "==":
				parts = append(parts, "=")
			case "&&":
				parts = append(parts, "and")
			case "||":
				parts = append(parts, "or")
			case "/":
				parts = append(parts, "div")
			case "%":
				parts = append(parts, "mod")
			case "!":
				// !(x) → not(x); !empty(x) → x != ''
				if i+1 < len(toks) && toks[i+1].Is(lexer.Bracket, "(") {
					j := closingTok(toks, i+1)
					inner, err := ex.xpath(toks[i+2:j], column)
					if err != nil {
						return "", err
					}
					parts = append(parts, "not("+inner+")")
					i = j
					continue
				}
				if i+2 < len(toks) && toks[i+1].Is(lexer.Identifier, "empty") && toks[i+2].Is(lexer.Bracket, "(") {
					j := closingTok(toks, i+2)
					inner, err := ex.xpath(toks[i+3:j], column)
					if err != nil {
						return "", err
					}
					parts = append(parts, inner+" != ''")
					i = j
					continue
				}
				return "", errors.New("! without parentheses")
			case "+", "-", "*", "<", "<=", ">", ">=", "!=":
				parts = append(parts, t.Value)
			default:
				return "", fmt.Errorf("operator %s has no XLSForm spelling", t.Value)
			}
		case lexer.Bracket:
			if t.Value != "(" {
				return "", fmt.Errorf("unexpected %s", t.Value)
			}
			j := closingTok(toks, i)
			inner := toks[i+1 : j]
			i = j
			// (seconds(x) / 86400) is how a date-time in arithmetic was
			// translated: XPath writes the date-time itself.
			if len(inner) > 4 && inner[0].Is(lexer.Identifier, "seconds") && inner[1].Is(lexer.Bracket, "(") {
				k := closingTok(inner, 1)
				if k+3 == len(inner) && inner[k+1].Is(lexer.Operator, "/") && inner[k+2].Value == "86400" {
					s, err := ex.xpath(inner[2:k], column)
					if err != nil {
						return "", err
					}
					parts = append(parts, s)
					continue
				}
			}
			if q := topLevel(inner, "?"); q >= 0 {
				c := topLevel(inner[q+1:], ":")
				if c < 0 {
					return "", errors.New("a ? without its : branch")
				}
				var args []string
				for _, seg := range [][]lexer.Token{inner[:q], inner[q+1 : q+1+c], inner[q+2+c:]} {
					s, err := ex.xpath(seg, column)
					if err != nil {
						return "", err
					}
					args = append(args, s)
				}
				parts = append(parts, "if("+strings.Join(args, ", ")+")")
				continue
			}
			s, err := ex.xpath(inner, column)
			if err != nil {
				return "", err
			}
			parts = append(parts, "("+s+")")
		case lexer.Identifier:
			if i+1 < len(toks) && toks[i+1].Is(lexer.Bracket, "(") {
				j := closingTok(toks, i+1)
				s, err := ex.call(t.Value, splitTokArgs(toks[i+2:j]), column)
				if err != nil {
					return "", err
				}
				parts = append(parts, s)
				i = j
				continue
			}
			name := t.Value
			for i+2 < len(toks) && toks[i+1].Is(lexer.Operator, ".") && toks[i+2].Kind == lexer.Identifier {
				name += "." + toks[i+2].Value
				i += 2
			}
			s, err := ex.name(name, column)
			if err != nil {
				return "", err
			}
			parts = append(parts, s)
		default:
			return "", fmt.Errorf("%v has no XLSForm spelling", t)
		}
	}
	return strings.Join(parts, " "), nil
}

// name writes a name of the subset in XPath.
func (ex *exporter) name(name, column string) (string, error) {
	switch name {
	case nameSelf:
		return ".", nil
	case nameToday:
		return "today()", nil
	case nameNow:
		return "now()", nil
	case namePosition:
		return "position(..)", nil
	case "true", "false":
		return name + "()", nil
	case "nil":
		return "", errors.New("nil has no XLSForm spelling")
	case nameChoic + ".value":
		return "name", nil
	}
	if p, ok := strings.CutPrefix(name, nameChoic+"."); ok && column == "choice_filter" {
		return p, nil
	}
	key := strings.TrimPrefix(name, "answers.")
	if strings.Contains(key, ".") {
		return "", fmt.Errorf("%s has no XLSForm spelling", name)
	}
	return "${" + key + "}", nil
}

// call writes a function call of the subset in XPath.
func (ex *exporter) call(fn string, args [][]lexer.Token, column string) (string, error) {
	xs := make([]string, len(args))
	for i, a := range args {
		s, err := ex.xpath(a, column)
		if err != nil {
			return "", err
		}
		xs[i] = s
	}
	// rows of a repeat and a key: sum(${key}) and the like.
	rowsKey := func() (string, bool) {
		if len(args) < 2 || len(args[1]) != 1 || args[1][0].Kind != lexer.String {
			return "", false
		}
		rows := strings.TrimPrefix(strings.TrimSuffix(strings.TrimPrefix(xs[0], "${"), "}"), "answers.")
		if !ex.repeats[rows] {
			return "", false
		}
		return args[1][0].Value, true
	}
	switch fn {
	case "empty":
		return xs[0] + " = ''", nil
	case "days":
		return xs[0], nil
	case "count":
		if strings.HasPrefix(xs[0], "${") && ex.repeats[xs[0][2:len(xs[0])-1]] {
			return "count(" + xs[0] + ")", nil
		}
		return "count-selected(" + xs[0] + ")", nil
	case "sum", "max", "min", "count_non_empty":
		if key, ok := rowsKey(); ok {
			return xfuncNamesOr(fn) + "(${" + key + "})", nil
		}
	case "indexed":
		if key, ok := rowsKey(); ok && len(xs) == 3 {
			return "indexed-repeat(${" + key + "}, " + xs[0] + ", " + xs[2] + ")", nil
		}
		return "", errors.New("indexed() has no XLSForm spelling here")
	case "choice_label":
		if len(args) == 2 && len(args[1]) == 1 && args[1][0].Kind == lexer.String {
			if q, ok := ex.byList[args[1][0].Value]; ok {
				return "jr:choice-name(" + xs[0] + ", '${" + q + "}')", nil
			}
		}
		return "", errors.New("choice_label() names a list no question uses")
	case "pulldata", "random", "uuid", "selected", "coalesce", "regex", "substr", "join", "number", "string":
		return fn + "(" + strings.Join(xs, ", ") + ")", nil
	}
	x, ok := xfuncNames[fn]
	if !ok {
		return "", fmt.Errorf("%s() has no XLSForm spelling", fn)
	}
	return x + "(" + strings.Join(xs, ", ") + ")", nil
}

func xfuncNamesOr(fn string) string {
	if fn == "count_non_empty" {
		return "count-non-empty"
	}
	return fn
}

// xpathString writes an XPath string literal: XPath has no escapes, so a
// text with both kinds of quote cannot be written.
func xpathString(s string) (string, error) {
	switch {
	case !strings.Contains(s, "'"):
		return "'" + s + "'", nil
	case !strings.Contains(s, `"`):
		return `"` + s + `"`, nil
	}
	return "", fmt.Errorf("the text %q holds both kinds of quote", s)
}

// closingTok returns the index of the bracket closing toks[open].
func closingTok(toks []lexer.Token, open int) int {
	depth := 0
	for j := open; j < len(toks); j++ {
		if toks[j].Kind != lexer.Bracket {
			continue
		}
		switch toks[j].Value {
		case "(", "[":
			depth++
		case ")", "]":
			depth--
			if depth == 0 {
				return j
			}
		}
	}
	return len(toks) - 1
}

// topLevel returns the index of the first operator op outside brackets
// (and, for "?", outside nested conditionals), or -1.
func topLevel(toks []lexer.Token, op string) int {
	depth, nested := 0, 0
	for i, t := range toks {
		switch {
		case t.Kind == lexer.Bracket && (t.Value == "(" || t.Value == "["):
			depth++
		case t.Kind == lexer.Bracket:
			depth--
		case depth == 0 && t.Is(lexer.Operator, "?"):
			if op == "?" {
				return i
			}
			nested++
		case depth == 0 && t.Is(lexer.Operator, ":"):
			if op == ":" {
				if nested == 0 {
					return i
				}
				nested--
			}
		}
	}
	return -1
}

// splitTokArgs splits function arguments at top-level commas.
func splitTokArgs(toks []lexer.Token) [][]lexer.Token {
	if len(toks) == 0 {
		return nil
	}
	var args [][]lexer.Token
	depth, start := 0, 0
	for j, t := range toks {
		switch {
		case t.Kind == lexer.Bracket && (t.Value == "(" || t.Value == "["):
			depth++
		case t.Kind == lexer.Bracket:
			depth--
		case depth == 0 && t.Is(lexer.Operator, ","):
			args = append(args, toks[start:j])
			start = j + 1
		}
	}
	return append(args, toks[start:])
}
