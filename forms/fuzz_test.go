package forms_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/fieldsync/fieldsync/forms"
)

// fuzzDefinitions are the definitions FuzzValidate runs records through:
// the built-ins and the conformance definitions.
func fuzzDefinitions(tb testing.TB) []*forms.Definition {
	tb.Helper()
	defs := forms.Builtin()
	files, _ := filepath.Glob("testdata/conformance/*.json")
	for _, file := range files {
		b, err := os.ReadFile(file)
		if err != nil {
			tb.Fatal(err)
		}
		var cf conformanceFile
		if err := json.Unmarshal(b, &cf); err != nil {
			tb.Fatal(err)
		}
		if cf.Definition != nil {
			defs = append(defs, conformanceDefinition(tb, &cf))
		}
	}
	return defs
}

// decodeRecord decodes data as encoding/json would for a record, with
// numbers as float64 or as json.Number.
func decodeRecord(data []byte, useNumber bool) map[string]any {
	dec := json.NewDecoder(bytes.NewReader(data))
	if useNumber {
		dec.UseNumber()
	}
	var m map[string]any
	if dec.Decode(&m) != nil {
		return nil
	}
	return m
}

// fuzzRecords returns a valid record for each of defs, or an empty one.
func fuzzRecords(tb testing.TB, defs []*forms.Definition) []map[string]any {
	samples := map[string]func() map[string]any{
		"visit.routine":                     func() map[string]any { return mustSample(tb, "06_visit_routine") },
		"lesson_observation":                func() map[string]any { return mustSample(tb, "07_lesson_observation") },
		"questionnaire.student_burden":      func() map[string]any { return mustSample(tb, "08_questionnaire_response") },
		"questionnaire.parent_satisfaction": func() map[string]any { return parentResponse(tb) },
		"hazard.report":                     func() map[string]any { return mustSample(tb, "09_hazard_with_history") },
		"hazard.event":                      func() map[string]any { return hazardEvents(tb)[2] },
		"monthly_feedback":                  func() map[string]any { return mustSample(tb, "10_monthly_feedback") },
	}
	out := make([]map[string]any, len(defs))
	for i, d := range defs {
		out[i] = map[string]any{}
		if s, ok := samples[d.ID]; ok {
			out[i] = forms.StripEnvelope(s())
		}
	}
	return out
}

// setPath sets "a.b[2].c" in decoded JSON, creating objects on the way;
// it gives up quietly where the path does not fit.
func setPath(m map[string]any, path string, v any) {
	for path != "" {
		step := pathStep.FindStringSubmatch(path)
		if step == nil {
			return
		}
		rest := strings.TrimPrefix(path[len(step[0]):], ".")
		key := step[1]
		idx := regexp.MustCompile(`[0-9]+`).FindAllString(step[2], -1)
		if len(idx) == 0 {
			if rest == "" {
				m[key] = v
				return
			}
			next, ok := m[key].(map[string]any)
			if !ok {
				next = map[string]any{}
				m[key] = next
			}
			m = next
			path = rest
			continue
		}
		cur := m[key]
		for j, is := range idx {
			i, _ := strconv.Atoi(is)
			l, ok := cur.([]any)
			if !ok || i >= len(l) {
				return
			}
			if j == len(idx)-1 && rest == "" {
				l[i] = v
				return
			}
			cur = l[i]
		}
		next, ok := cur.(map[string]any)
		if !ok {
			return
		}
		m, path = next, rest
	}
}

// FuzzValidate sets one path of a valid record (a sample for the
// built-ins) to an arbitrary JSON value, or replaces the whole record when
// the path is empty, and evaluates it. Properties: Evaluate never panics,
// every error has a key and a message, Err agrees with the errors, and
// Compute is idempotent.
func FuzzValidate(f *testing.F) {
	defs := fuzzDefinitions(f)
	records := fuzzRecords(f, defs)
	for i := range defs {
		f.Add(uint8(i), "", []byte(`{}`), "2024-11-20")
	}
	seeds := []struct{ path, value string }{
		{"visit_date", `"2024-13-01"`}, {"steps[3].at", `null`}, {"feedback", `[]`}, {"feedback.to_role", `7`},
		{"scores[1].score", `"1e309"`}, {"scores[5].criterion_code", `"C1"`}, {"total_score", `81`}, {"attendance", `{"enrolled":-1}`},
		{"answers[0].value", `["90_120"]`}, {"answers[3]", `{"qid":"Q4","value":4.5,"other_text":1}`}, {"answers", `{"Q1":"x"}`},
		{"photo_ids", `["0192b000-0000-7000-8000-000000000801","0192b000-0000-7000-8000-000000000801"]`},
		{"payload.deadline", `"2024-10-01"`}, {"payload.responsible", `{"name":""}`}, {"matter_summary[0].matter_code", `"M2"`},
		{"location_geo", `{"lat":"30","lng":115}`}, {"month", `"2024-10-01"`}, {"a", `"0.1"`}, {"rows", `[{"v":"x"},5]`},
	}
	for i, s := range seeds {
		f.Add(uint8(i), s.path, []byte(s.value), "2024-11-20")
	}
	for _, name := range []string{"06_visit_routine", "09_hazard_with_history"} {
		b, _ := json.Marshal(forms.StripEnvelope(mustSample(f, name)))
		f.Add(uint8(0), "", b, "")
	}
	f.Fuzz(func(t *testing.T, which uint8, path string, value []byte, today string) {
		i := int(which) % len(defs)
		d := defs[i]
		var values map[string]any
		useNumber := which >= 128
		if path == "" {
			values = decodeRecord(value, useNumber)
		} else {
			b, _ := json.Marshal(records[i])
			values = decodeRecord(b, useNumber)
			var v any
			dec := json.NewDecoder(bytes.NewReader(value))
			if useNumber {
				dec.UseNumber()
			}
			if dec.Decode(&v) != nil {
				v = string(value)
			}
			setPath(values, path, v)
		}
		env := forms.Env{Today: today}
		ev := d.Evaluate(values, env)
		for k, msg := range ev.Errors {
			if k == "" || msg.IsZero() {
				t.Fatalf("error with an empty key or message: %q: %v", k, msg)
			}
		}
		if err := ev.Errors.Err(); (err == nil) != (len(ev.Errors) == 0) {
			t.Fatalf("Err() = %v for %d errors", err, len(ev.Errors))
		}
		again, err := d.Compute(ev.Values, env)
		if err != nil {
			t.Fatal(err)
		}
		if !sameJSON(again, ev.Values) {
			t.Fatalf("Compute is not idempotent:\n once  %v\n twice %v", ev.Values, again)
		}
	})
}

// FuzzCheck decodes arbitrary definitions. Properties: Check never panics,
// and a definition that passes Check evaluates records without panicking.
func FuzzCheck(f *testing.F) {
	files, _ := filepath.Glob("builtin/*.json")
	more, _ := filepath.Glob("testdata/conformance/*.json")
	for _, file := range files {
		b, _ := os.ReadFile(file)
		f.Add(b)
	}
	for _, file := range more {
		b, _ := os.ReadFile(file)
		var cf conformanceFile
		json.Unmarshal(b, &cf)
		if cf.Definition != nil {
			f.Add([]byte(cf.Definition))
		}
	}
	record, _ := json.Marshal(forms.StripEnvelope(mustSample(f, "07_lesson_observation")))
	f.Fuzz(func(t *testing.T, data []byte) {
		var d forms.Definition
		if json.Unmarshal(data, &d) != nil {
			return
		}
		if d.Check() != nil {
			return
		}
		for _, rec := range []map[string]any{{}, decodeRecord(record, false), decodeRecord(data, true)} {
			d.Evaluate(rec, forms.Env{Today: "2024-11-20"})
		}
	})
}

// FuzzExpression puts arbitrary text into the rules of a small definition.
// Properties: Check never panics; an expression it accepts evaluates on
// several records without panicking; the subset rejects what expr would
// otherwise allow (no "matches", "??", pipes …) without crashing.
func FuzzExpression(f *testing.F) {
	b, err := os.ReadFile("testdata/conformance/subset.json")
	if err != nil {
		f.Fatal(err)
	}
	var cf conformanceFile
	if err := json.Unmarshal(b, &cf); err != nil {
		f.Fatal(err)
	}
	for _, e := range cf.Expressions {
		f.Add(e.Expr, uint8(len(e.Where)))
	}
	records := []map[string]any{
		{},
		{"a": "2.5", "n": 3.0, "s": "x", "flag": true, "day": "2024-10-15", "tags": []any{"a"}, "rows": []any{map[string]any{"v": 1.0}}, "g": map[string]any{"x": "y"}, "any": "x", "probe": "p", "probe_self": "abc"},
		{"a": "-1", "n": 0.0, "s": "", "rows": []any{map[string]any{}, map[string]any{"v": "0.1"}}, "probe_self": ""},
	}
	f.Fuzz(func(t *testing.T, expr string, where uint8) {
		w := []string{"relevant", "calculation", "constraint"}[int(where)%3]
		d := probeDefinition(t, cf.Definition, w, expr)
		if d.Check() != nil {
			return
		}
		for _, rec := range records {
			ev := d.Evaluate(rec, forms.Env{Today: "2024-11-20"})
			if _, bad := ev.Errors[forms.KeyForm]; bad {
				t.Fatalf("a checked definition failed to evaluate: %v", ev.Errors)
			}
		}
	})
}

// FuzzImportXLSForm feeds arbitrary bytes to the importer, seeded with
// small valid and invalid workbooks. Properties: it never panics; it
// returns either a definition that passes Check or an *XLSFormError with
// at least one problem.
func FuzzImportXLSForm(f *testing.F) {
	settings := [][]any{{"form_id", "version"}, {"fuzz", 1}}
	f.Add(mustWorkbook(f, fullSurvey()))
	f.Add(mustWorkbook(f, sheets{
		"survey":   {{"type", "name", "label", "relevant"}, {"integer", "age", "Age"}, {"text", "q", "Q", "${age} > 3"}},
		"settings": settings,
	}))
	f.Add(mustWorkbook(f, sheets{
		"survey":   {{"type", "name", "label::zh", "constraint"}, {"begin repeat", "r", "行"}, {"decimal", "v", "值", ". > 0"}, {"end repeat"}, {"calculate", "t", "", ""}},
		"choices":  {{"list_name", "name", "label"}},
		"settings": settings,
	}))
	f.Add(mustWorkbook(f, sheets{"survey": {{"type", "name"}, {"range", "x"}}}))
	f.Add([]byte("PK\x03\x04"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		res, err := forms.ImportXLSFormFile(bytes.NewReader(data), forms.XLSFormOptions{FileName: "fuzz.xlsx"})
		if err != nil {
			var xe *forms.XLSFormError
			if !errors.As(err, &xe) || len(xe.Problems) == 0 || res != nil {
				t.Fatalf("err = %v (%T), res = %v", err, err, res)
			}
			return
		}
		d := res.Definition
		if res.VersionDerived != (d.Version == 0) {
			t.Fatalf("version %d, derived %v", d.Version, res.VersionDerived)
		}
		if d.Version == 0 {
			d.Version = 1
		}
		if err := d.Check(); err != nil {
			t.Fatalf("an imported definition fails Check: %v", err)
		}
		if got := d.Validate(map[string]any{}, forms.Env{}); len(got) == 0 {
			t.Fatal("an empty response is valid, but answers are required")
		}
		if b, err := json.Marshal(d); err != nil {
			t.Fatal(err)
		} else {
			var back forms.Definition
			if err := json.Unmarshal(b, &back); err != nil || back.Check() != nil {
				t.Fatalf("the definition does not survive JSON: %v %v", err, back.Check())
			}
			if !reflect.DeepEqual(back.Fields[10].Key, "answers") {
				t.Fatal("answers group lost")
			}
		}
	})
}
