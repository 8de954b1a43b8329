//go:build !js

package forms

import (
	"bytes"
	"fmt"
	"io"
	"math"
	"sort"
	"strconv"
	"strings"
	"unicode"

	"github.com/fieldsync/fieldsync/syncproto"
	"github.com/xuri/excelize/v2"
)

// Limits of ImportXLSForm: an office's questionnaire is a few hundred rows
// at most; files published with it (choice lists, pulldata tables) a few
// thousand.
const (
	maxWorkbookBytes = 8 << 20
	maxUnzippedBytes = 32 << 20
	maxSheetRows     = 3000    // rows with content
	maxBlankRows     = 200_000 // empty rows (spreadsheet programs write many)
	maxSheetColumns  = 100
	maxProblems      = 200
	maxFileBytes     = 4 << 20
	maxFileRows      = 20_000
)

// XLSFormError lists every problem found in a workbook, and the warnings
// apart. It unwraps to a *syncproto.Error with code syncproto.EINVALID,
// so syncproto.ErrorCode reports it as invalid input.
type XLSFormError struct {
	Problems []XLSFormProblem
	Warnings []XLSFormProblem
}

// XLSFormProblem is one problem (or warning) of a workbook, located by
// sheet, row (as the spreadsheet numbers them, 1 for the header row) and
// column header.
type XLSFormProblem struct {
	Sheet   string `json:"sheet,omitempty"`  // "survey", "choices", "settings", a file name, or "" for the workbook
	Row     int    `json:"row,omitempty"`    // 0 when the problem is not about one row
	Column  string `json:"column,omitempty"` // the column header, when the problem is about one cell
	Message Text   `json:"message"`
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
// "survey[7].type" to the Chinese message and the English one:
// "不支持的题型 / unsupported type".
func (e *XLSFormError) Unwrap() error {
	fields := map[string]string{}
	for _, p := range e.Problems {
		k := p.key()
		msg := bilingual(p.Message)
		if prev, ok := fields[k]; ok {
			fields[k] = prev + "；" + msg
		} else {
			fields[k] = msg
		}
	}
	return syncproto.FieldError(fmt.Sprintf("XLSForm 表格有 %d 处问题 / the XLSForm workbook has %d problem(s)", len(e.Problems), len(e.Problems)), fields)
}

// bilingual renders a message as "中文 / English", or the one it has.
func bilingual(t Text) string {
	switch {
	case t.ZH != "" && t.EN != "" && t.ZH != t.EN:
		return t.ZH + " / " + t.EN
	case t.ZH != "":
		return t.ZH
	}
	return t.EN
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// XLSFormOptions are what ImportXLSFormFile knows besides the workbook.
type XLSFormOptions struct {
	// FileName is the workbook's file name: the form id defaults from it,
	// as the XLSForm convention has it.
	FileName string
	// Files are the files published with the form, by file name: the CSV
	// and XML files of select_one_from_file and select_multiple_from_file,
	// the CSV files pulldata() reads, and media named in media:: columns.
	Files map[string][]byte
}

// XLSFormImport is the outcome of importing a workbook.
type XLSFormImport struct {
	// Definition is the draft definition. Its Version is 0 when
	// VersionDerived is true.
	Definition *Definition `json:"definition"`
	// Warnings are things the importer changed or left out on purpose,
	// each with its place in the workbook. They do not stop the import.
	Warnings []XLSFormProblem `json:"warnings"`
	// VersionDerived is true when the settings gave no whole-number
	// version: publishing then gives the next version number.
	VersionDerived bool `json:"version_derived"`
	// Media are the media files the form names (media::image and the
	// like), and whether each was given in XLSFormOptions.Files.
	Media map[string]bool `json:"media,omitempty"`
}

// ImportXLSForm reads a questionnaire written in the XLSForm convention
// from an .xlsx workbook and returns it as a draft Definition, without a
// file name or other files; see ImportXLSFormFile. A workbook without a
// form_id in its settings gets the id "xlsform", and one without a
// whole-number version gets version 0.
func ImportXLSForm(r io.Reader) (*Definition, error) {
	res, err := ImportXLSFormFile(r, XLSFormOptions{})
	if err != nil {
		return nil, err
	}
	return res.Definition, nil
}

// ImportXLSFormFile reads a questionnaire written in the XLSForm convention
// (https://xlsform.org, as ODK and KoboToolbox use it) from an .xlsx
// workbook and returns it as a draft Definition of kind
// questionnaire_response, with the warnings of the import.
//
// The questions become the children of a group "answers" with layout
// "answers", after the fields every questionnaire response has (template,
// school, respondent, collection mode, collector, time), so the definition
// validates a QuestionnaireResponse record as docs/domain.md E16 describes it.
// XLSFORM.md next to this file lists what is supported, how each feature
// maps to the definition, and what is refused.
//
// Everything a workbook asks for that fieldsync cannot do is a problem with
// its sheet, row and column, never silently dropped; on any problem it
// returns a nil result and an *XLSFormError listing them all (and the
// warnings). It reads everything into memory and writes nothing to disk.
func ImportXLSFormFile(r io.Reader, opts XLSFormOptions) (*XLSFormImport, error) {
	imp := newImporter(opts)
	var res *XLSFormImport
	if raw := imp.readWorkbook(r); raw != nil {
		res = imp.run(raw)
	}
	return imp.result(res)
}

// importRows imports sheets given as rows of cells, as readWorkbook
// returns them; tests and fuzzing use it to skip the .xlsx encoding.
func importRows(raw map[string][][]string) (*Definition, error) {
	imp := newImporter(XLSFormOptions{})
	res, err := imp.result(imp.run(raw))
	if err != nil {
		return nil, err
	}
	return res.Definition, nil
}

var sheetRank = map[string]int{"": 0, "settings": 1, "survey": 2, "choices": 3, "external_choices": 4}

func sortProblems(ps []XLSFormProblem) {
	sort.SliceStable(ps, func(i, j int) bool {
		a, b := ps[i], ps[j]
		ra, oka := sheetRank[a.Sheet]
		rb, okb := sheetRank[b.Sheet]
		if !oka {
			ra = 10
		}
		if !okb {
			rb = 10
		}
		if ra != rb {
			return ra < rb
		}
		if a.Sheet != b.Sheet {
			return a.Sheet < b.Sheet
		}
		if a.Row != b.Row {
			return a.Row < b.Row
		}
		return a.Column < b.Column
	})
}

func (imp *importer) result(res *XLSFormImport) (*XLSFormImport, error) {
	sortProblems(imp.warnings)
	if len(imp.problems) > 0 || res == nil {
		if len(imp.problems) == 0 {
			imp.problem("", 0, "", Text{ZH: "无法导入该表格", EN: "the workbook cannot be imported"})
		}
		sortProblems(imp.problems)
		if imp.dropped > 0 {
			imp.problems = append(imp.problems, XLSFormProblem{Message: textf("另有 %d 处问题未列出", "and %d more problems", imp.dropped)})
		}
		return nil, &XLSFormError{Problems: imp.problems, Warnings: imp.warnings}
	}
	res.Warnings = imp.warnings
	if res.Warnings == nil {
		res.Warnings = []XLSFormProblem{}
	}
	return res, nil
}

// problem records a problem; past maxProblems it only counts them.
func (imp *importer) problem(sheet string, row int, column string, msg Text) {
	if len(imp.problems) >= maxProblems {
		imp.dropped++
		return
	}
	imp.problems = append(imp.problems, XLSFormProblem{Sheet: sheet, Row: row, Column: column, Message: msg})
}

// warn records a warning, once per place and message.
func (imp *importer) warn(sheet string, row int, column string, msg Text) {
	p := XLSFormProblem{Sheet: sheet, Row: row, Column: column, Message: msg}
	if imp.warned[p] || len(imp.warnings) >= maxProblems {
		return
	}
	imp.warned[p] = true
	imp.warnings = append(imp.warnings, p)
}

// readWorkbook opens the workbook and returns the rows of every sheet by
// lower-case name. Numbers in cells formatted as dates or times become
// ISO dates and times. excelize gets limits that keep everything in memory;
// a panic inside it on a malformed file becomes a problem.
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
	if bytes.HasPrefix(b, []byte{0xD0, 0xCF, 0x11, 0xE0}) {
		imp.problem("", 0, "", Text{ZH: "这是旧的 .xls 格式：请在 Excel 或 WPS 中另存为 .xlsx 再上传", EN: "this is an old .xls workbook: save it as .xlsx in Excel, WPS or LibreOffice and upload that"})
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
	date1904 := false
	if props, err := f.GetWorkbookProps(); err == nil && props.Date1904 != nil {
		date1904 = *props.Date1904
	}
	sheets = map[string][][]string{}
	for _, name := range f.GetSheetList() {
		key := strings.ToLower(strings.TrimSpace(name))
		if _, dup := sheets[key]; dup {
			imp.problem(key, 0, "", textf("有两个 %s 工作表", "two %s sheets", key))
			continue
		}
		rows, err := readRows(f, name, date1904)
		if err != nil {
			imp.problem(key, 0, "", Text{ZH: "无法读取工作表：" + err.Error(), EN: "cannot read the sheet: " + err.Error()})
			continue
		}
		sheets[key] = rows
	}
	if len(imp.problems) > 0 {
		return nil
	}
	return sheets
}

// readRows reads a sheet. Trailing empty cells and rows are not content
// (LibreOffice writes styled empty cells far to the right and below).
func readRows(f *excelize.File, sheet string, date1904 bool) ([][]string, error) {
	rows, err := f.Rows(sheet)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out [][]string
	filled, blank := 0, 0
	styles := map[int]string{} // style index → "date", "time", "datetime" or ""
	for rows.Next() {
		cols, err := rows.Columns()
		if err != nil {
			return nil, err
		}
		for len(cols) > 0 && strings.TrimSpace(cols[len(cols)-1]) == "" {
			cols = cols[:len(cols)-1]
		}
		if len(cols) == 0 {
			if blank++; blank > maxBlankRows {
				return nil, fmt.Errorf("more than %d empty rows", maxBlankRows)
			}
			out = append(out, nil)
			continue
		}
		if filled++; filled > maxSheetRows {
			return nil, fmt.Errorf("more than %d rows", maxSheetRows)
		}
		if len(cols) > maxSheetColumns {
			return nil, fmt.Errorf("row %d has more than %d columns", len(out)+1, maxSheetColumns)
		}
		for j, v := range cols {
			x, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err != nil || math.IsInf(x, 0) || math.IsNaN(x) || x < 0 || x > 2958465 {
				continue
			}
			cell, _ := excelize.CoordinatesToCellName(j+1, len(out)+1)
			idx, err := f.GetCellStyle(sheet, cell)
			if err != nil {
				continue
			}
			kind, seen := styles[idx]
			if !seen {
				if st, err := f.GetStyle(idx); err == nil {
					custom := ""
					if st.CustomNumFmt != nil {
						custom = *st.CustomNumFmt
					}
					kind = dateFormatKind(st.NumFmt, custom)
				}
				styles[idx] = kind
			}
			if kind != "" {
				cols[j] = excelDate(x, kind, date1904)
			}
		}
		out = append(out, cols)
	}
	for len(out) > 0 && out[len(out)-1] == nil {
		out = out[:len(out)-1]
	}
	return out, rows.Error()
}

// dateFormatKind tells whether a number format shows a date, a time or
// both: "date", "time", "datetime", or "" for other numbers. The built-in
// formats 14–22 and 45–47 are dates and times, 27–36 and 50–58 the dates
// of Chinese, Japanese and Korean Excel; custom formats are read for their
// y, d, h and s codes outside quotes and brackets.
func dateFormatKind(id int, custom string) string {
	switch {
	case id >= 14 && id <= 17, id >= 27 && id <= 31, id >= 34 && id <= 36, id >= 50 && id <= 58:
		return "date"
	case id >= 18 && id <= 21, id >= 32 && id <= 33, id >= 45 && id <= 47:
		return "time"
	case id == 22:
		return "datetime"
	}
	if custom == "" {
		return ""
	}
	var date, clock bool
	inQuote, inBracket := false, false
	for i := 0; i < len(custom); i++ {
		c := custom[i]
		switch {
		case c == '"':
			inQuote = !inQuote
		case inQuote:
		case c == '\\':
			i++
		case c == '[':
			inBracket = true
			if i+1 < len(custom) && strings.ContainsRune("hHmMsS", rune(custom[i+1])) {
				clock = true
			}
		case c == ']':
			inBracket = false
		case inBracket:
		case c == 'y' || c == 'Y' || c == 'd' || c == 'D' || c == 'e':
			date = true
		case c == 'h' || c == 'H' || c == 's' || c == 'S':
			clock = true
		}
	}
	switch {
	case date && clock:
		return "datetime"
	case date:
		return "date"
	case clock:
		return "time"
	}
	return ""
}

// excelDate renders an Excel serial date as an ISO date "2024-10-15", a
// time "08:30" (or "08:30:15"), or a local date-time "2024-10-15T08:30:00".
func excelDate(x float64, kind string, date1904 bool) string {
	t, err := excelize.ExcelDateToTime(x, date1904)
	if err != nil {
		return strconv.FormatFloat(x, 'f', -1, 64)
	}
	// ExcelDateToTime rounds to the microsecond; round to the second.
	t = t.Add(500 * 1e6).Truncate(1e9)
	switch {
	case kind == "time" || (kind == "datetime" && x < 1):
		if t.Second() != 0 {
			return t.Format("15:04:05")
		}
		return t.Format("15:04")
	case kind == "date" || (x == math.Trunc(x) && kind == "datetime"):
		return t.Format("2006-01-02")
	}
	return t.Format("2006-01-02T15:04:05")
}

// hasHan reports whether s holds Chinese characters.
func hasHan(s string) bool {
	for _, r := range s {
		if unicode.Is(unicode.Han, r) {
			return true
		}
	}
	return false
}
