//go:build !js

package forms

import (
	"bytes"
	"encoding/csv"
	"encoding/xml"
	"fmt"
	"io"
	"path"
	"regexp"
	"strconv"
	"strings"
	"unicode/utf8"
)

// importer holds the state of one import.
type importer struct {
	opts     XLSFormOptions
	problems []XLSFormProblem
	warnings []XLSFormProblem
	warned   map[XLSFormProblem]bool
	dropped  int // problems beyond maxProblems

	// plain is the language of plain "label" and "hint" columns: "zh",
	// "en", or another language as the form writes it.
	plain string
	// trans collects texts in other languages: language → definition
	// path → text.
	trans map[string]map[string]string
	// langCols are the languages of the workbook's columns, for warnings.
	langCols map[string]bool

	rowOf     map[string]int // definition path "fields[10].fields[2]" → survey row
	choiceRow map[string]int // "choices.list[i]" → its row on the choices sheet
	calcs     []string       // definition paths of calculate rows
	media     map[string]bool
	tables    map[string]*Table
	allowDup  bool // allow_choice_duplicates
	plainSet  bool // the settings name the default language
	// skipped are the names of rows refused before the form was built:
	// expressions that name them are not reported again.
	skipped map[string]bool
}

func newImporter(opts XLSFormOptions) *importer {
	return &importer{opts: opts, warned: map[XLSFormProblem]bool{}, trans: map[string]map[string]string{}, langCols: map[string]bool{},
		rowOf: map[string]int{}, choiceRow: map[string]int{}, media: map[string]bool{}, tables: map[string]*Table{}, skipped: map[string]bool{}}
}

// sheetRows is one sheet: its rows of cells keyed by normalized column
// ("label", "label::zh", "label::@Tibetan (bo)", "constraint_message::en",
// "type", "prop::stage").
type sheetRows struct {
	name    string
	headers map[string]string   // normalized column → header as written
	rows    []map[string]string // rows[i] is spreadsheet row i+2; nil for an empty row
}

// Columns each sheet supports, after aliases; translatable ones may carry
// a language. Columns not listed are warned about and ignored.
var (
	surveyColumns = map[string]bool{"type": true, "name": true, "label": true, "hint": true, "guidance_hint": true,
		"required": true, "required_message": true, "relevant": true, "constraint": true, "constraint_message": true,
		"calculation": true, "default": true, "read_only": true, "appearance": true, "choice_filter": true,
		"parameters": true, "repeat_count": true, "trigger": true, "media::image": true, "media::audio": true,
		"media::video": true, "media::big-image": true}
	choicesColumns  = map[string]bool{"list_name": true, "name": true, "label": true, "media::image": true, "media::audio": true, "media::video": true, "media::big-image": true}
	settingsColumns = map[string]bool{"form_id": true, "version": true, "form_title": true, "default_language": true,
		"instance_name": true, "style": true, "allow_choice_duplicates": true, "name": true, "public_key": true,
		"submission_url": true, "auto_send": true, "auto_delete": true, "namespaces": true, "clean_text_values": true}
	translatable = map[string]bool{"label": true, "hint": true, "guidance_hint": true, "required_message": true, "constraint_message": true,
		"form_title": true, "media::image": true, "media::audio": true, "media::video": true, "media::big-image": true}
	columnAliases = map[string]string{
		"list name": "list_name", "list": "list_name", "value": "name", "caption": "label",
		"relevance": "relevant", "constraint message": "constraint_message", "constraint-msg": "constraint_message",
		"jr:constraintmsg": "constraint_message", "constraint_msg": "constraint_message", "bind::jr:constraintmsg": "constraint_message",
		"required message": "required_message", "requiredmsg": "required_message", "jr:requiredmsg": "required_message", "bind::jr:requiredmsg": "required_message",
		"calculate": "calculation", "bind::calculate": "calculation", "readonly": "read_only", "bind::readonly": "read_only",
		"bind::required": "required", "bind::relevant": "relevant", "bind::constraint": "constraint",
		"count": "repeat_count", "jr:count": "repeat_count", "repeat count": "repeat_count", "control::jr:count": "repeat_count",
		"choice filter": "choice_filter", "guidance hint": "guidance_hint", "read only": "read_only",
		"image": "media::image", "audio": "media::audio", "video": "media::video", "big-image": "media::big-image",
		"media::big_image": "media::big-image", "id_string": "form_id", "title": "form_title", "set form id": "form_id", "set form title": "form_title",
		"form title": "form_title", "form id": "form_id", "default language": "default_language", "instance name": "instance_name",
		"control::appearance": "appearance",
	}
	langCodeRE = regexp.MustCompile(`\(([A-Za-z]{2,3}(?:[-_][A-Za-z0-9]+)*)\)\s*$`)
)

// language maps an XLSForm language ("English (en)", "zh", "中文") to
// "zh" or "en", or returns "" for another language.
func language(s string) string {
	s = strings.TrimSpace(s)
	if m := langCodeRE.FindStringSubmatch(s); m != nil {
		s = m[1]
	}
	s = strings.ToLower(s)
	switch {
	case s == "zh" || strings.HasPrefix(s, "zh-") || strings.HasPrefix(s, "zh_") || s == "chinese" || s == "中文" || s == "简体中文" || s == "汉语" || s == "zho" || s == "chi":
		return "zh"
	case s == "en" || strings.HasPrefix(s, "en-") || strings.HasPrefix(s, "en_") || s == "english" || s == "英文" || s == "英语" || s == "eng":
		return "en"
	}
	return ""
}

// splitHeader splits "label::English (en)", "label:English" or
// "media::image::zh" into the column and its language ("" when none).
func splitHeader(h string) (base, lang string) {
	h = strings.TrimSpace(h)
	low := strings.ToLower(h)
	for _, m := range []string{"media::image", "media::audio", "media::video", "media::big-image", "media::big_image"} {
		if strings.HasPrefix(low, m) {
			rest := h[len(m):]
			if rest == "" {
				return m, ""
			}
			if strings.HasPrefix(rest, "::") {
				return m, strings.TrimSpace(rest[2:])
			}
		}
	}
	if b, l, ok := strings.Cut(h, "::"); ok {
		base, lang = b, l
	} else if b, l, ok := strings.Cut(h, ":"); ok && translatable[normColumn(b)] {
		base, lang = b, l // the single-colon spelling, "label:English"
	} else {
		base = h
	}
	return base, strings.TrimSpace(lang)
}

// normColumn lower-cases a column name and applies the aliases.
func normColumn(s string) string {
	s = strings.Join(strings.Fields(strings.ToLower(strings.TrimSpace(s))), " ")
	if a, ok := columnAliases[s]; ok {
		return a
	}
	u := strings.ReplaceAll(s, " ", "_")
	if a, ok := columnAliases[u]; ok {
		return a
	}
	return u
}

// parseSheet reads the header row and keys every cell by its column.
// Unknown columns are warnings; on the choices sheet they become choice
// properties for choice filters.
func (imp *importer) parseSheet(sheet string, rows [][]string, known map[string]bool) *sheetRows {
	out := &sheetRows{name: sheet, headers: map[string]string{}}
	if len(rows) == 0 {
		return out
	}
	type col struct {
		key    string // normalized key, "" when ignored
		header string
	}
	cols := make([]col, len(rows[0]))
	for j, h := range rows[0] {
		header := cleanCell(h)
		cols[j].header = header
		if header == "" {
			continue
		}
		b, lang := splitHeader(header)
		base := normColumn(b)
		if base == "label" && strings.HasPrefix(strings.ToLower(lang), "jr:") {
			lang = ""
		}
		key := base
		switch {
		case known[base] && lang != "" && translatable[base]:
			code := language(lang)
			if code == "" {
				code = "@" + lang
			}
			imp.langCols[lang] = true
			key = base + "::" + code
		case known[base] && lang == "":
		case sheet == "choices" || sheet == "external_choices":
			if fieldKeyRE.MatchString(header) {
				key = "prop::" + header
				break
			}
			imp.warn(sheet, 1, header, textf("列 %q 不是选项的属性名（需字母、数字和下划线），已忽略", "column %q is not a property name (letters, digits and _): ignored", header))
			key = ""
		default:
			imp.warn(sheet, 1, header, ignoredColumn(header))
			key = ""
		}
		if key != "" {
			if prev, dup := out.headers[key]; dup {
				imp.problem(sheet, 1, header, textf("列 %q 与列 %q 重复", "column %q duplicates column %q", header, prev))
				key = ""
			} else {
				out.headers[key] = header
			}
		}
		cols[j].key = key
	}
	for i, cells := range rows[1:] {
		rowNum := i + 2
		var m map[string]string
		for j, v := range cells {
			v = cleanCell(v)
			if v == "" {
				continue
			}
			if j >= len(cols) || cols[j].header == "" {
				imp.warn(sheet, rowNum, "", Text{ZH: "没有列名的单元格里有内容，已忽略", EN: "a value in a column without a header: ignored"})
				continue
			}
			if cols[j].key == "" {
				continue
			}
			if m == nil {
				m = map[string]string{}
			}
			m[cols[j].key] = v
		}
		out.rows = append(out.rows, m)
	}
	return out
}

// cleanCell trims a cell and drops what a workbook's XML cannot hold
// (invalid UTF-8, control characters other than tab and line ends), so
// rows given directly read as a saved workbook would.
func cleanCell(s string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	s = strings.Map(func(r rune) rune {
		if r < 0x20 && r != '\t' && r != '\n' && r != '\r' || r == 0xFFFE || r == 0xFFFF {
			return -1
		}
		return r
	}, s)
	return strings.TrimSpace(s)
}

// ignoredColumn explains why a column is ignored.
func ignoredColumn(header string) Text {
	low := strings.ToLower(header)
	switch {
	case strings.HasPrefix(low, "bind::"), strings.HasPrefix(low, "instance::"), strings.HasPrefix(low, "body::"), strings.HasPrefix(low, "control::"):
		return textf("列 %q 是 XForm 的扩展属性，fieldsync 不使用，已忽略", "column %q is an XForm extension attribute fieldsync does not use: ignored", header)
	case strings.HasPrefix(low, "$") || strings.HasPrefix(low, "kobo") || strings.HasPrefix(low, "_"):
		return textf("列 %q 是 KoboToolbox 的内部列，已忽略", "column %q is KoboToolbox bookkeeping: ignored", header)
	case low == "save_to" || strings.HasPrefix(low, "entities"):
		return textf("列 %q 属于 ODK 实体（entities），fieldsync 不支持，已忽略", "column %q belongs to ODK entities, which fieldsync does not have: ignored", header)
	}
	return textf("不认识的列 %q，已忽略", "unknown column %q: ignored", header)
}

// text reads a translatable column at a definition path: Chinese and
// English into the Text, other languages into the translations. A plain
// column is in the workbook's default language; when that language also
// has its own column with another text, the plain text is kept as the
// language "default".
func (imp *importer) text(sheet string, row int, cells map[string]string, base, defPath string) Text {
	t := Text{ZH: cells[base+"::zh"], EN: cells[base+"::en"]}
	for k, v := range cells {
		if name, ok := strings.CutPrefix(k, base+"::@"); ok {
			imp.translate(name, defPath, v)
		}
	}
	plain := cells[base]
	if plain == "" {
		return imp.fallback(t, defPath)
	}
	lang := imp.plain
	if !imp.plainSet && hasHan(plain) {
		lang = "zh" // without a default_language, Chinese text is Chinese
	}
	var slot *string
	switch lang {
	case "zh":
		slot = &t.ZH
	case "en":
		slot = &t.EN
	default:
		if other := cells[base+"::@"+imp.plain]; other != "" && other != plain {
			imp.translate("default", defPath, plain)
		} else {
			imp.translate(imp.plain, defPath, plain)
		}
		if t.IsZero() {
			t.EN = plain // shown where English would be: the UI needs zh or en
		}
		return t
	}
	switch {
	case *slot == "":
		*slot = plain
	case *slot != plain:
		imp.translate("default", defPath, plain)
		imp.warn(sheet, row, base, textf("%s 与同语言列的内容不同：原文保留为语言 default", "the plain %s differs from its language column: kept as the language \"default\"", base))
	}
	return t
}

// fallback shows a text written only in other languages where English
// would be (the UI needs Chinese or English): the default language's, or
// the first language's by name.
func (imp *importer) fallback(t Text, defPath string) Text {
	if !t.IsZero() || len(imp.trans) == 0 {
		return t
	}
	if s := imp.trans[imp.plain][defPath]; s != "" {
		return Text{EN: s}
	}
	for _, lang := range sortedKeys(imp.trans) {
		if s := imp.trans[lang][defPath]; s != "" {
			return Text{EN: s}
		}
	}
	return t
}

func (imp *importer) translate(lang, defPath, text string) {
	if imp.trans[lang] == nil {
		imp.trans[lang] = map[string]string{}
	}
	imp.trans[lang][defPath] = text
}

// plainLanguage decides the language of plain label columns: the
// settings' default_language, else Chinese when any plain label or hint
// holds Chinese characters, else English.
func (imp *importer) plainLanguage(def string, sheets ...*sheetRows) {
	imp.plainSet = def != ""
	if def != "" {
		if code := language(def); code != "" {
			imp.plain = code
		} else {
			imp.plain = def
		}
		return
	}
	imp.plain = "en"
	for _, s := range sheets {
		if s == nil {
			continue
		}
		for _, cells := range s.rows {
			if hasHan(cells["label"]) || hasHan(cells["hint"]) {
				imp.plain = "zh"
				return
			}
		}
	}
}

// settingsOf returns the settings row (the first non-empty row after the
// header) and warns about other rows and unsupported settings.
func (imp *importer) settingsOf(s *sheetRows) map[string]string {
	if s == nil {
		return map[string]string{}
	}
	var cells map[string]string
	for i, row := range s.rows {
		if row == nil {
			continue
		}
		if cells == nil {
			cells = row
			continue
		}
		imp.warn("settings", i+2, "", Text{ZH: "设置只读第一行，此行已忽略", EN: "only the first row of settings is read: this row is ignored"})
	}
	if cells == nil {
		cells = map[string]string{}
	}
	for k := range cells {
		switch k {
		case "name", "submission_url", "auto_send", "auto_delete", "namespaces", "clean_text_values":
			imp.warn("settings", 2, s.headers[k], textf("设置 %s 对 fieldsync 没有意义，已忽略", "the setting %s has no meaning in fieldsync: ignored", s.headers[k]))
		}
	}
	return cells
}

// formIDFrom derives a form id from a file name: "Canteen Check v2.xlsx"
// becomes "canteen_check_v2"; a name with no letters or digits a form id
// from its hash.
func formIDFrom(name string) string {
	base := strings.TrimSuffix(path.Base(strings.ReplaceAll(name, "\\", "/")), path.Ext(name))
	id := normalizeID(base)
	if id == "" && base != "" && base != "." && base != "/" {
		id = fmt.Sprintf("xlsform_%08x", fnv32(base))
	}
	return id
}

// normalizeID turns an XLSForm form id into one fieldsync accepts:
// lower-case letters, digits and _, dot-separated parts starting with a
// letter.
func normalizeID(s string) string {
	var parts []string
	for _, part := range strings.Split(strings.ToLower(s), ".") {
		var b strings.Builder
		lastUnderscore := true
		for _, r := range part {
			switch {
			case r >= 'a' && r <= 'z' || r >= '0' && r <= '9':
				b.WriteRune(r)
				lastUnderscore = false
			case !lastUnderscore:
				b.WriteByte('_')
				lastUnderscore = true
			}
		}
		p := strings.Trim(b.String(), "_")
		if p == "" {
			continue
		}
		if p[0] >= '0' && p[0] <= '9' {
			p = "f" + p
		}
		parts = append(parts, p)
	}
	id := strings.Join(parts, ".")
	if len(id) > 100 {
		id = strings.TrimRight(id[:100], "._")
	}
	return id
}

func fnv32(s string) uint32 {
	h := uint32(2166136261)
	for i := 0; i < len(s); i++ {
		h ^= uint32(s[i])
		h *= 16777619
	}
	return h
}

// settings fills in the definition's id, version and title.
func (imp *importer) settings(cells map[string]string, d *Definition, res *XLSFormImport) {
	const sheet = "settings"
	raw := cells["form_id"]
	switch {
	case raw != "":
		d.ID = normalizeID(raw)
		if d.ID != raw {
			imp.warn(sheet, 2, "form_id", textf("表单编号 %q 按 fieldsync 的规则写作 %q", "the form id %q is written %q, as fieldsync ids are", raw, d.ID))
		}
		if d.ID == "" {
			imp.problem(sheet, 2, "form_id", textf("表单编号 %q 中没有字母或数字", "the form id %q has no letters or digits", raw))
		}
	case imp.opts.FileName != "":
		d.ID = formIDFrom(imp.opts.FileName)
		imp.warn(sheet, 0, "form_id", textf("没有 form_id：表单编号取自文件名，为 %q", "no form_id: the form id %q comes from the file name", d.ID))
	default:
		d.ID = "xlsform"
		imp.warn(sheet, 0, "form_id", Text{ZH: "没有 form_id，也不知道文件名：表单编号为 \"xlsform\"", EN: "no form_id and no file name: the form id is \"xlsform\""})
	}
	v := cells["version"]
	n, err := strconv.Atoi(strings.TrimSpace(v))
	switch {
	case v == "":
		res.VersionDerived = true
		imp.warn(sheet, 0, "version", Text{ZH: "没有 version：发布时自动取下一个版本号", EN: "no version: publishing gives the next version number"})
	case err != nil || n < 1:
		res.VersionDerived = true
		imp.warn(sheet, 2, "version", textf("版本 %q 不是正整数：发布时自动取下一个版本号", "the version %q is not a positive whole number: publishing gives the next version number", v))
	default:
		d.Version = n
	}
	d.Title = imp.text(sheet, 2, cells, "form_title", "title")
	if d.Title.IsZero() {
		d.Title = Text{ZH: cmpOr(raw, d.ID)}
		if imp.plain == "en" {
			d.Title = Text{EN: cmpOr(raw, d.ID)}
		}
	}
	if s := cells["style"]; s != "" {
		d.Style = s
	}
	switch strings.ToLower(cells["allow_choice_duplicates"]) {
	case "yes", "true", "true()", "1":
		d.AllowChoiceDuplicates = true
	}
	if cells["public_key"] != "" {
		imp.problem(sheet, 2, "public_key", Text{ZH: "fieldsync 不支持加密表单（public_key）：记录要在办公室审阅，不能加密", EN: "fieldsync does not encrypt records (public_key): the office reviews them"})
	}
}

// choices reads the choices (and external_choices) sheet into lists.
func (imp *importer) choices(s *sheetRows, lists map[string][]Choice, listRows map[string]int) {
	if s == nil {
		return
	}
	seen := map[string]int{}
	for i, cells := range s.rows {
		row := i + 2
		if cells == nil {
			continue
		}
		list, name := cells["list_name"], cells["name"]
		if list == "" && name == "" {
			continue // only labels or properties: a note to the author
		}
		if list == "" || name == "" {
			imp.problem(s.name, row, "", Text{ZH: "选项需要 list_name 和 name", EN: "a choice needs list_name and name"})
			continue
		}
		if first, dup := seen[list+"\x00"+name]; dup && !imp.allowDup {
			imp.problem(s.name, row, "name", textf("选项 %q 与第 %d 行重复（如需重复，请在 settings 中设 allow_choice_duplicates 为 yes）", "duplicate choice %q (also row %d; set allow_choice_duplicates to yes in settings to allow it)", name, first))
			continue
		}
		seen[list+"\x00"+name] = row
		if _, ok := listRows[list]; !ok {
			listRows[list] = row
		}
		p := fmt.Sprintf("choices.%s[%d]", list, len(lists[list]))
		c := Choice{Value: name, Label: imp.text(s.name, row, cells, "label", p+".label")}
		for k, v := range cells {
			if prop, ok := strings.CutPrefix(k, "prop::"); ok {
				if c.Props == nil {
					c.Props = map[string]string{}
				}
				c.Props[prop] = v
			}
		}
		c.Media = imp.mediaOf(s.name, row, cells)
		imp.choiceRow[p] = row
		lists[list] = append(lists[list], c)
	}
}

// mediaOf reads the media:: columns of a row.
func (imp *importer) mediaOf(sheet string, row int, cells map[string]string) map[string]string {
	var out map[string]string
	for k, v := range cells {
		kind, ok := strings.CutPrefix(k, "media::")
		if !ok {
			continue
		}
		if out == nil {
			out = map[string]string{}
		}
		kind = strings.Replace(kind, "::@", "::", 1)
		out[kind] = v
		_, given := imp.opts.Files[v]
		imp.media[v] = given
		if !given && imp.opts.Files != nil {
			imp.warn(sheet, row, "", textf("媒体文件 %q 没有随表单上传", "the media file %q was not uploaded with the form", v))
		}
	}
	return out
}

// fromFile reads the choices of select_one_from_file: a CSV file with
// name and label columns (or the columns named by the parameters value
// and label), or an XML file of items with name and label elements.
// Other columns become choice properties. It returns nil after reporting
// a problem at row.
func (imp *importer) fromFile(file string, row int, params map[string]string) []Choice {
	data, ok := imp.opts.Files[file]
	if !ok {
		imp.problem("survey", row, "type", textf("选项文件 %q 没有随表单上传", "the choice file %q was not uploaded with the form", file))
		return nil
	}
	valueCol, labelCol := cmpOr(params["value"], "name"), cmpOr(params["label"], "label")
	var cols []string
	var recs [][]string
	var err error
	switch strings.ToLower(path.Ext(file)) {
	case ".csv":
		cols, recs, err = readCSV(data)
	case ".xml":
		cols, recs, err = readItemsXML(data)
	default:
		imp.problem("survey", row, "type", textf("选项文件 %q 应为 .csv 或 .xml", "the choice file %q must be .csv or .xml", file))
		return nil
	}
	if err != nil {
		imp.problem(file, 0, "", textf("无法读取：%s", "cannot read it: %s", err.Error()))
		return nil
	}
	vi, li := -1, -1
	for i, c := range cols {
		switch c {
		case valueCol:
			vi = i
		case labelCol:
			li = i
		}
	}
	if vi < 0 {
		imp.problem(file, 1, valueCol, textf("没有 %q 列", "there is no column %q", valueCol))
		return nil
	}
	var out []Choice
	seen := map[string]bool{}
	for r, rec := range recs {
		if vi >= len(rec) || rec[vi] == "" {
			continue
		}
		if seen[rec[vi]] && !imp.allowDup {
			imp.problem(file, r+2, valueCol, textf("选项 %q 重复", "duplicate choice %q", rec[vi]))
			continue
		}
		seen[rec[vi]] = true
		c := Choice{Value: rec[vi]}
		if li >= 0 && li < len(rec) {
			c.Label = Text{EN: rec[li]}
			if imp.plain == "zh" || hasHan(rec[li]) {
				c.Label = Text{ZH: rec[li]}
			}
		}
		for i, col := range cols {
			// name and label, when other columns hold the value and label,
			// are not properties: a choice filter's name is the value.
			if i == vi || i == li || i >= len(rec) || !fieldKeyRE.MatchString(col) || rec[i] == "" || col == "name" || col == "label" || col == "list_name" {
				continue
			}
			if c.Props == nil {
				c.Props = map[string]string{}
			}
			c.Props[col] = rec[i]
		}
		out = append(out, c)
	}
	if len(out) == 0 {
		imp.problem(file, 0, "", Text{ZH: "文件中没有选项", EN: "the file has no choices"})
	}
	return out
}

// table reads a CSV file for pulldata().
func (imp *importer) table(name string, row int, column string) *Table {
	if t, ok := imp.tables[name]; ok {
		return t
	}
	data, ok := imp.opts.Files[name+".csv"]
	if !ok {
		imp.problem("survey", row, column, textf("pulldata 读取的 %s.csv 没有随表单上传", "%s.csv, which pulldata reads, was not uploaded with the form", name))
		imp.tables[name] = nil
		return nil
	}
	cols, recs, err := readCSV(data)
	if err != nil {
		imp.problem(name+".csv", 0, "", textf("无法读取：%s", "cannot read it: %s", err.Error()))
		imp.tables[name] = nil
		return nil
	}
	t := &Table{Columns: cols, Rows: recs}
	imp.tables[name] = t
	return t
}

// readCSV reads a UTF-8 CSV file (a byte-order mark is skipped) with a
// header row.
func readCSV(data []byte) ([]string, [][]string, error) {
	if len(data) > maxFileBytes {
		return nil, nil, fmt.Errorf("larger than %d MB", maxFileBytes>>20)
	}
	data = bytes.TrimPrefix(data, []byte("\xEF\xBB\xBF"))
	if !utf8.Valid(data) {
		return nil, nil, fmt.Errorf("not UTF-8 text: save the CSV as UTF-8")
	}
	r := csv.NewReader(bytes.NewReader(data))
	r.FieldsPerRecord = -1
	header, err := r.Read()
	if err != nil {
		return nil, nil, err
	}
	for i := range header {
		header[i] = strings.TrimSpace(header[i])
	}
	var recs [][]string
	for {
		rec, err := r.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, nil, err
		}
		if len(recs) >= maxFileRows {
			return nil, nil, fmt.Errorf("more than %d rows", maxFileRows)
		}
		for i := range rec {
			rec[i] = strings.TrimSpace(rec[i])
		}
		recs = append(recs, rec)
	}
	return header, recs, nil
}

// readItemsXML reads <root><item><name/><label/>…</item>…</root>: every
// child element of an item is a column.
func readItemsXML(data []byte) ([]string, [][]string, error) {
	if len(data) > maxFileBytes {
		return nil, nil, fmt.Errorf("larger than %d MB", maxFileBytes>>20)
	}
	var doc struct {
		Items []struct {
			Fields []struct {
				XMLName xml.Name
				Value   string `xml:",chardata"`
			} `xml:",any"`
		} `xml:"item"`
	}
	if err := xml.Unmarshal(data, &doc); err != nil {
		return nil, nil, err
	}
	if len(doc.Items) > maxFileRows {
		return nil, nil, fmt.Errorf("more than %d items", maxFileRows)
	}
	index := map[string]int{}
	var cols []string
	var recs [][]string
	for _, it := range doc.Items {
		rec := make([]string, len(cols))
		for _, f := range it.Fields {
			name := f.XMLName.Local
			i, ok := index[name]
			if !ok {
				i = len(cols)
				index[name] = i
				cols = append(cols, name)
			}
			for len(rec) <= i {
				rec = append(rec, "")
			}
			rec[i] = strings.TrimSpace(f.Value)
		}
		recs = append(recs, rec)
	}
	return cols, recs, nil
}

// listName turns a file name into a choice list name: "schools.csv"
// becomes "file_schools_csv".
func listName(file string) string {
	var b strings.Builder
	b.WriteString("file_")
	for _, r := range strings.ToLower(file) {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '_' {
			b.WriteRune(r)
		} else {
			b.WriteByte('_')
		}
	}
	return b.String()
}
