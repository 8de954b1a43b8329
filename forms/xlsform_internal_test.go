package forms

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

// table parses "a|b|c\nd|e" into rows of cells.
func table(s string) [][]string {
	var rows [][]string
	for _, line := range strings.Split(s, "\n") {
		rows = append(rows, strings.Split(line, "|"))
	}
	return rows
}

// FuzzImportRows fuzzes the importer above the .xlsx encoding: sheets are
// written as text, rows split by newlines and cells by "|". Properties: no
// panic; either a definition that passes Check and evaluates an empty
// response, or an *XLSFormError with at least one problem.
func FuzzImportRows(f *testing.F) {
	settings := "form_id|version|form_title|default_language\nsurvey.fuzz|1|问卷|zh"
	f.Add("type|name|label|relevant|constraint|calculation|required\ninteger|age|Age||. > 0||yes\ntext|q|Q|${age} > 3\ncalculate|c|||| ${age} * 2", "", settings)
	f.Add("type|name|label::zh|label::en|choice_filter\nselect_one stage|st|学段|Stage\nselect_one school|sc|学校|School|stage = ${st}\nselect_multiple stage|ms|多选|Many",
		"list_name|name|label|stage\nstage|p|小学\nstage|j|初中\nschool|s1|一小|p\nschool|s2|二中|j", settings)
	f.Add("type|name|label|relevant\nbegin group|g|G\ntext|a|A\nend group\nbegin repeat|r|R|count-selected(${m}) > 0\ninteger|v|V\ntext|w|W|${v} > 1\nend repeat\nselect_multiple yn|m|M\ncalculate|s|||sum(${v})", "list_name|name|label\nyn|y|Y\nyn|n|N", settings)
	f.Add("type|name|label|constraint|constraint_message|default|appearance|hint\ndate|d|D|. <= today()|不能晚于今天|2024-01-01|minimal|h\ntime|t|T\ndateTime|dt|DT\ngeopoint|gp|GP\nimage|im|IM\nnote|n|N\ndecimal|x|X|regex(string-length(.), '[0-9]')", "", settings)
	f.Add("type|name\nrange|x\nend repeat", "list_name", "form_id\nBad")
	f.Fuzz(func(t *testing.T, survey, choices, settings string) {
		raw := map[string][][]string{"survey": table(survey), "settings": table(settings)}
		if choices != "" {
			raw["choices"] = table(choices)
		}
		d, err := importRows(raw)
		if d != nil && d.Version == 0 {
			d.Version = 1 // derived when published
		}
		if err != nil {
			var xe *XLSFormError
			if !errors.As(err, &xe) || len(xe.Problems) == 0 || d != nil {
				t.Fatalf("err = %v, d = %v", err, d)
			}
			for _, p := range xe.Problems {
				if p.Message.IsZero() {
					t.Fatalf("problem without a message: %+v", p)
				}
			}
			return
		}
		if err := d.Check(); err != nil {
			t.Fatalf("imported definition fails Check: %v", err)
		}
		// The definition round-trips through an exported workbook.
		ex, err := ExportXLSForm(d)
		if err != nil {
			t.Fatalf("an imported definition does not export: %v", err)
		}
		back, err := ImportXLSFormFile(bytes.NewReader(ex.Workbook), XLSFormOptions{Files: ex.Files})
		if err != nil {
			t.Fatalf("the exported workbook does not import: %v", err)
		}
		if back.Definition.Version == 0 {
			back.Definition.Version = 1
		}
		a, _ := json.Marshal(d)
		b, _ := json.Marshal(back.Definition)
		if !bytes.Equal(a, b) {
			t.Fatalf("round trip:\n%s\n%s", a, b)
		}
		d.Evaluate(map[string]any{"answers": []any{}}, Env{Today: "2024-11-20"})
	})
}
