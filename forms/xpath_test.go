package forms

import (
	"reflect"
	"testing"
)

// testSymbols is a survey with top-level questions, a group and a repeat:
//
//	age (integer), name (text), likes (select_multiple), yn (select_one),
//	grp: { inner (text) }, kids: [ kid_age (integer), kid_name (text) ]
func testSymbols() (*xsymbols, map[string]*xlsItem) {
	grp := &xlsItem{kind: "begin group", name: "grp"}
	kids := &xlsItem{kind: "begin repeat", name: "kids"}
	items := map[string]*xlsItem{
		"age": {kind: "integer", name: "age"}, "name": {kind: "text", name: "name"},
		"likes": {kind: "select_multiple", name: "likes"}, "yn": {kind: "select_one", name: "yn"},
		"grp": grp, "inner": {kind: "text", name: "inner", parent: grp},
		"kids": kids, "kid_age": {kind: "integer", name: "kid_age", parent: kids},
		"kid_name": {kind: "text", name: "kid_name", parent: kids},
		"info":     {kind: "note", name: "info"},
	}
	return &xsymbols{byName: items, prefix: "answers."}, items
}

func TestTranslateXPath(t *testing.T) {
	syms, items := testSymbols()
	tests := []struct {
		src    string
		column string
		at     string // the row the expression is on
		want   string
	}{
		{"${age} > 10", "relevant", "name", "answers.age > 10"},
		{"${age} >= 10 and ${yn} = 'yes'", "relevant", "name", "answers.age >= 10 && answers.yn == 'yes'"},
		{"${age}<10 or not(${yn}='no')", "relevant", "name", "answers.age < 10 || !(answers.yn == 'no')"},
		{"${yn} != \"no\"", "relevant", "name", "answers.yn != 'no'"},
		{"${yn} = 1", "relevant", "name", "answers.yn == '1'"},
		{"1 = ${yn}", "relevant", "name", "'1' == answers.yn"},
		{"${age} = 1", "relevant", "name", "answers.age == 1"},
		{"selected(${likes}, 'tea')", "relevant", "name", "selected(answers.likes, 'tea')"},
		{"selected(${likes}, 2)", "relevant", "name", "selected(answers.likes, '2')"},
		{"count-selected(${likes}) <= 2", "relevant", "name", "count(answers.likes) <= 2"},
		{". >= 0 and . <= 120", "constraint", "age", "self >= 0 && self <= 120"},
		{"string-length(.) <= 20", "constraint", "name", "len(self) <= 20"},
		{"regex(., '[0-9]{11}')", "constraint", "name", "regex(self, '[0-9]{11}')"},
		{". != ''", "constraint", "name", "!empty(self)"},
		{"${name} = ''", "relevant", "age", "empty(answers.name)"},
		{"'' != ${name}", "relevant", "age", "!empty(answers.name)"},
		{"${age} div 2 + ${age} mod 3", "calculation", "name", "answers.age / 2 + answers.age % 3"},
		{"if(${age} > 17, 'adult', 'minor')", "calculation", "name", "(answers.age > 17 ? 'adult' : 'minor')"},
		{"if(${age} > 17, if(${age} > 64, 'old', 'adult'), 'minor')", "calculation", "name", "(answers.age > 17 ? (answers.age > 64 ? 'old' : 'adult') : 'minor')"},
		{"(${age} + 1) * 2", "calculation", "name", "(answers.age + 1) * 2"},
		{"-${age}", "calculation", "name", "- answers.age"},
		{"today()", "calculation", "name", "today"},
		{"true()", "relevant", "name", "true"},
		{"coalesce(${age}, 0) + number('1.5')", "calculation", "name", "coalesce(answers.age, 0) + number('1.5')"},
		{"${inner} = 'x'", "relevant", "name", "answers.inner == 'x'"},
		{"count(${kids})", "calculation", "name", "count(answers.kids)"},
		{"sum(${kid_age})", "calculation", "name", "sum(answers.kids, 'kid_age')"},
		{"count(${kid_age}) > 0", "relevant", "name", "count(answers.kids) > 0"},
		{"${kid_age} < ${age}", "constraint", "kid_name", "kid_age < answers.age"},
		{". < ${age}", "constraint", "kid_age", "self < answers.age"},
		{"${kid_name} != ''", "relevant", "kid_age", "!empty(kid_name)"},
		{"'it''s'", "calculation", "name", "'it' 's'"},
		{`'back\slash'`, "calculation", "name", `'back\\slash'`},
		{"state = ${yn}", "choice_filter", "name", "choice.state == answers.yn"},
		{"${age} > 10", "required", "name", "answers.age > 10"},
	}
	for _, tt := range tests {
		got, err := translateXPath(tt.src, xcontext{column: tt.column, item: items[tt.at], syms: syms})
		if err != nil {
			t.Errorf("%s (%s on %s): %v", tt.src, tt.column, tt.at, err)
			continue
		}
		if got != tt.want {
			t.Errorf("%s (%s on %s) = %s, want %s", tt.src, tt.column, tt.at, got, tt.want)
		}
	}
}

func TestTranslateXPathErrors(t *testing.T) {
	syms, items := testSymbols()
	tests := []struct {
		src, column, at, want string
	}{
		{"${nope} > 1", "relevant", "name", "${nope} is not a field of this form"},
		{". > 1", "relevant", "age", "'.' may only be used in constraint"},
		{". = ''", "relevant", "age", "'.' may only be used in constraint"},
		{"${kid_age} > 1", "relevant", "name", "${kid_age} is inside the repeat kids: use sum(${kid_age}) or count(${kids})"},
		{"${grp} = ''", "relevant", "name", "${grp} is a group: refer to its fields"},
		{"${info} = 'x'", "relevant", "name", "${info} is a note and has no value"},
		{"concat(${name}, 'x')", "calculation", "age", "unsupported function concat()"},
		{"jr:choice-name(${yn}, '${yn}')", "calculation", "age", "unsupported function jr:choice-name()"},
		{"/data/age > 1", "relevant", "name", `XPath "/" is not supported: refer to fields as ${name}`},
		{"../age > 1", "relevant", "name", `XPath ".." is not supported: refer to fields as ${name}`},
		{"age > 1", "relevant", "name", `unsupported name "age": refer to fields as ${name}`},
		{"${age} | ${name}", "relevant", "name", "the union operator | is not supported"},
		{"if(${age} > 1, 2)", "calculation", "name", "if() takes 3 argument(s)"},
		{"selected(${likes}, ${yn})", "relevant", "name", "the second argument of selected() must be a choice name in quotes"},
		{"regex(., ${name})", "constraint", "name", "the pattern of regex() must be in quotes"},
		{"sum(${age})", "calculation", "name", "sum() needs a repeat, or a field inside a repeat, read from outside it"},
		{"sum(${kids})", "calculation", "name", "sum() needs a field inside the repeat, not the repeat"},
		{"sum(${kid_age})", "calculation", "kid_name", "sum() needs a repeat, or a field inside a repeat, read from outside it"},
		{"(${age} > 1", "relevant", "name", "unbalanced ("},
		{"${age} > 1)", "relevant", "name", "unbalanced )"},
		{"${age", "relevant", "name", "${ without }"},
		{"'open", "relevant", "name", "unterminated string"},
		{"1.2.3 > ${age}", "relevant", "name", `bad number "1.2.3"`},
		{"   ", "relevant", "name", "empty expression"},
		{"${age} > 1, 2", "relevant", "name", "unexpected ,"},
	}
	for _, tt := range tests {
		_, err := translateXPath(tt.src, xcontext{column: tt.column, item: items[tt.at], syms: syms})
		if err == nil || err.Error() != tt.want {
			t.Errorf("%s (%s on %s): err = %v, want %q", tt.src, tt.column, tt.at, err, tt.want)
		}
	}
}

// TestQuestionnaireMetaMatchesBuiltins keeps the fields the importer puts
// before the answers the same as those of the built-in questionnaires.
func TestQuestionnaireMetaMatchesBuiltins(t *testing.T) {
	type shape struct {
		Key, Type, Format, ChoiceList, Relevant, Origin string
		Required                                        bool
	}
	shapes := func(fields []Field) []shape {
		var out []shape
		for _, f := range fields {
			if f.Key == "answers" {
				continue
			}
			out = append(out, shape{f.Key, f.Type, f.Format, f.ChoiceList, f.Relevant, f.Origin, f.Required})
		}
		return out
	}
	want := shapes(append(questionnaireMeta(), questionnaireMetaTail()...))
	for _, id := range []string{"questionnaire.student_burden", "questionnaire.parent_satisfaction"} {
		for _, d := range Builtin() {
			if d.ID != id {
				continue
			}
			if got := shapes(d.Fields); !reflect.DeepEqual(got, want) {
				t.Errorf("%s metadata fields:\n got %v\nwant %v", id, got, want)
			}
			for name, list := range questionnaireMetaChoices() {
				if !reflect.DeepEqual(d.Choices[name], list) {
					t.Errorf("%s: choice list %s differs from the importer's", id, name)
				}
			}
		}
	}
}
