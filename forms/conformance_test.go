package forms_test

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/fieldsync/fieldsync/forms"
)

// conformanceFile is the format of testdata/conformance/*.json, the
// contract that every implementation of the form engine must pass (see
// testdata/conformance/README.md).
type conformanceFile struct {
	Description string          `json:"description"`
	Definition  json.RawMessage `json:"definition"`
	Builtin     *struct {
		ID      string `json:"id"`
		Version int    `json:"version"`
	} `json:"builtin"`
	Cases []struct {
		Name     string                     `json:"name"`
		Today    string                     `json:"today"`
		Now      string                     `json:"now"`
		Values   json.RawMessage            `json:"values"`
		Texts    map[string]forms.FieldText `json:"texts"`
		ReadOnly []string                   `json:"read_only"`
		Errors   map[string]forms.Text      `json:"errors"`
		Relevant map[string]bool            `json:"relevant"`
		Computed map[string]any             `json:"computed"`
	} `json:"cases"`
	// Expressions lists expressions that Check must accept or reject.
	Expressions []struct {
		Expr  string `json:"expr"`
		Where string `json:"where"`
		Valid bool   `json:"valid"`
	} `json:"expressions"`
}

func TestConformance(t *testing.T) {
	files, err := filepath.Glob("testdata/conformance/*.json")
	if err != nil || len(files) == 0 {
		t.Fatalf("no conformance files: %v", err)
	}
	for _, file := range files {
		t.Run(strings.TrimSuffix(filepath.Base(file), ".json"), func(t *testing.T) {
			b, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			var cf conformanceFile
			dec := json.NewDecoder(bytes.NewReader(b))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&cf); err != nil {
				t.Fatalf("decode: %v", err)
			}
			if len(cf.Cases) == 0 && len(cf.Expressions) == 0 {
				t.Fatal("file has no cases and no expressions")
			}
			d := conformanceDefinition(t, &cf)
			if err := d.Check(); err != nil {
				t.Fatalf("Check: %v", err)
			}
			for _, c := range cf.Cases {
				// Run each case with numbers decoded as float64 and as
				// json.Number: both are what encoding/json produces.
				for _, useNumber := range []bool{false, true} {
					name := c.Name
					if useNumber {
						name += "/json.Number"
					}
					t.Run(name, func(t *testing.T) {
						values := map[string]any{}
						if len(c.Values) > 0 {
							dec := json.NewDecoder(bytes.NewReader(c.Values))
							if useNumber {
								dec.UseNumber()
							}
							if err := dec.Decode(&values); err != nil {
								t.Fatal(err)
							}
						}
						ev := d.Evaluate(values, forms.Env{Today: c.Today, Now: c.Now})
						want := c.Errors
						if want == nil {
							want = forms.Errors{}
						}
						if !reflect.DeepEqual(ev.Errors, forms.Errors(want)) {
							t.Errorf("errors:\n got %v\nwant %v", ev.Errors, forms.Errors(want))
						}
						for path, want := range c.Relevant {
							got, ok := ev.Relevant[path]
							if !ok {
								t.Errorf("relevant[%s] missing", path)
							} else if got != want {
								t.Errorf("relevant[%s] = %v, want %v", path, got, want)
							}
						}
						for path, want := range c.Texts {
							if got := ev.Texts[path]; got != want {
								t.Errorf("texts[%s] = %+v, want %+v", path, got, want)
							}
						}
						if c.ReadOnly != nil {
							var got []string
							for path := range ev.ReadOnly {
								got = append(got, path)
							}
							sort.Strings(got)
							if !reflect.DeepEqual(got, c.ReadOnly) {
								t.Errorf("read only = %v, want %v", got, c.ReadOnly)
							}
						}
						for path, want := range c.Computed {
							got := lookupPath(ev.Values, path)
							if !sameJSON(got, want) {
								t.Errorf("computed %s = %#v, want %#v", path, got, want)
							}
						}
					})
				}
			}
			for _, e := range cf.Expressions {
				err := probeDefinition(t, cf.Definition, e.Where, e.Expr).Check()
				if got := err == nil; got != e.Valid {
					t.Errorf("%s %q: valid = %v, want %v (%v)", e.Where, e.Expr, got, e.Valid, err)
				}
			}
		})
	}
}

func conformanceDefinition(tb testing.TB, cf *conformanceFile) *forms.Definition {
	tb.Helper()
	if cf.Builtin != nil {
		return mustBuiltin(tb, cf.Builtin.ID, cf.Builtin.Version)
	}
	d := new(forms.Definition)
	dec := json.NewDecoder(bytes.NewReader(cf.Definition))
	dec.DisallowUnknownFields()
	if err := dec.Decode(d); err != nil {
		tb.Fatalf("definition: %v", err)
	}
	return d
}

// probeDefinition puts expr into the definition: as the relevance of the
// field "probe", the calculation of "probe_calc", or a constraint of the
// field "probe_self".
func probeDefinition(tb testing.TB, raw json.RawMessage, where, expr string) *forms.Definition {
	tb.Helper()
	d := new(forms.Definition)
	if err := json.Unmarshal(raw, d); err != nil {
		tb.Fatal(err)
	}
	for i := range d.Fields {
		f := &d.Fields[i]
		switch {
		case (where == "" || where == "relevant") && f.Key == "probe":
			f.Relevant = expr
		case where == "calculation" && f.Key == "probe_calc":
			f.Calculation = expr
		case where == "constraint" && f.Key == "probe_self":
			f.Constraints = []forms.Constraint{{Expr: expr}}
		}
	}
	return d
}

var pathStep = regexp.MustCompile(`^([^.\[]+)((?:\[[0-9]+\])*)`)

// lookupPath reads "a.b[2].c" out of decoded JSON; nil when absent.
func lookupPath(v any, path string) any {
	for path != "" {
		m := pathStep.FindStringSubmatch(path)
		if m == nil {
			return nil
		}
		obj, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = obj[m[1]]
		for _, idx := range regexp.MustCompile(`[0-9]+`).FindAllString(m[2], -1) {
			i, _ := strconv.Atoi(idx)
			l, ok := v.([]any)
			if !ok || i >= len(l) {
				return nil
			}
			v = l[i]
		}
		path = strings.TrimPrefix(path[len(m[0]):], ".")
	}
	return v
}

// sameJSON compares values after a JSON round trip, so that float64 and
// json.Number compare by value.
func sameJSON(a, b any) bool {
	ja, err1 := json.Marshal(a)
	jb, err2 := json.Marshal(b)
	if err1 != nil || err2 != nil {
		return false
	}
	var x, y any
	json.Unmarshal(ja, &x)
	json.Unmarshal(jb, &y)
	return reflect.DeepEqual(x, y)
}
