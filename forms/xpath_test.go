package forms

import (
	"reflect"
	"testing"
)

// testSymbols is a survey with top-level questions, a group and a repeat:
//
//	age (integer), name (text), likes (select_multiple), yn (select_one),
//	grp: { inner (text) }, kids: [ kid_age (integer), kid_name (text),
//	toys: [ toy (text), price (decimal) ] ], dob (date), at (datetime)
func testSymbols() (*xsymbols, map[string]*xlsItem) {
	grp := &xlsItem{kind: "begin group", name: "grp"}
	kids := &xlsItem{kind: "begin repeat", name: "kids"}
	toys := &xlsItem{kind: "begin repeat", name: "toys", parent: kids}
	items := map[string]*xlsItem{
		"age": {kind: "integer", name: "age"}, "name": {kind: "text", name: "name"},
		"likes": {kind: "select_multiple", name: "likes", list: "drinks"}, "yn": {kind: "select_one", name: "yn", list: "yes_no"},
		"grp": grp, "inner": {kind: "text", name: "inner", parent: grp},
		"kids": kids, "kid_age": {kind: "integer", name: "kid_age", parent: kids},
		"kid_name": {kind: "text", name: "kid_name", parent: kids},
		"toys":     toys, "toy": {kind: "text", name: "toy", parent: toys}, "price": {kind: "decimal", name: "price", parent: toys},
		"info": {kind: "note", name: "info"}, "dob": {kind: "date", name: "dob"}, "at": {kind: "datetime", name: "at"},
	}
	byName := map[string][]*xlsItem{}
	for name, it := range items {
		it.key = name
		byName[name] = []*xlsItem{it}
	}
	return &xsymbols{byName: byName, prefix: "answers."}, items
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
		{"name = ${yn}", "choice_filter", "name", "choice.value == answers.yn"},
		{"district = ${age}", "choice_filter", "name", "choice.district == string(answers.age)"},
		{"concat(${name}, ' (', ${age}, ')')", "calculation", "dob", "concat(answers.name, ' (', answers.age, ')')"},
		{"jr:choice-name(${yn}, '${yn}')", "calculation", "age", "choice_label(answers.yn, 'yes_no')"},
		{"contains(${name}, 'x') and starts-with(${name}, 'a')", "relevant", "age", "contains_text(answers.name, 'x') && starts_with(answers.name, 'a')"},
		{"int((today() - ${dob}) div 365.25)", "calculation", "age", "int((days(today) - days(answers.dob)) / 365.25)"},
		{"${at} + 1", "calculation", "age", "(seconds(answers.at) / 86400) + 1"},
		{"${dob} < today()", "constraint", "name", "answers.dob < today"},
		{"format-date(${dob}, '%Y年%n月')", "calculation", "age", "format_date(answers.dob, '%Y年%n月')"},
		{"${likes} = 'tea coffee'", "relevant", "age", "join(' ', answers.likes) == 'tea coffee'"},
		{"${age} = '5'", "relevant", "name", "answers.age == 5"},
		{"${name} = ${age}", "relevant", "dob", "number(answers.name) == answers.age"},
		{"max(${kid_age}) + min(${age}, 3)", "calculation", "name", "max(answers.kids, 'kid_age') + min(answers.age, 3)"},
		{"count-non-empty(${kid_name})", "calculation", "age", "count_non_empty(answers.kids, 'kid_name')"},
		{"indexed-repeat(${kid_name}, ${kids}, 1)", "calculation", "name", "indexed(answers.kids, 'kid_name', 1)"},
		{"sum(${price})", "calculation", "kid_name", "sum(toys, 'price')"},
		{"${price} * ${kid_age}", "calculation", "toy", "price * kid_age"},
		{"position(..)", "calculation", "kid_name", "position"},
		{"once(now())", "calculation", "name", "(now)"},
		{"if(${age} > 1, 'a', 2)", "calculation", "name", "(answers.age > 1 ? 'a' : '2')"},
		{"substring(${name}, 2, 3)", "calculation", "age", "substr(answers.name, number(2) - 1, number(2) - 1 + number(3))"},
		{"round(${age} div 3, 2) + pow(2, 10) + abs(-1)", "calculation", "name", "round(answers.age / 3, 2) + pow(2, 10) + abs(- 1)"},
		{"random() < 0.5", "calculation", "name", "random() < 0.5"},
		{"concat('uuid:', uuid())", "calculation", "name", "concat('uuid:', uuid())"},
		{"selected-at(${likes}, 0)", "calculation", "name", "selected_at(answers.likes, 0)"},
		{"date(${dob}) = date('2024-01-01')", "relevant", "name", "date(answers.dob) == date('2024-01-01')"},
		{"decimal-date-time(${at})", "calculation", "name", "decimal_date_time(answers.at)"},
		{"distance(${at})", "calculation", "name", "distance(answers.at)"},
		{"checklist(1, 2, ${yn} = 'yes', ${age} > 3)", "relevant", "name", "checklist(1, 2, answers.yn == 'yes', answers.age > 3)"},
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
		{"${kid_age} > 1", "relevant", "name", "${kid_age} is inside the repeat kids: use sum(${kid_age}), count(${kids}) or indexed-repeat()"},
		{"${toy} = 'x'", "relevant", "kid_name", "${toy} is inside the repeat toys: use sum(${toy}), count(${toys}) or indexed-repeat()"},
		{"instance('x')/root/item", "calculation", "age", "instance() reads secondary instances, which fieldsync does not have: use select_one_from_file or pulldata()"},
		{"digest(${name}, 'SHA-1')", "calculation", "age", "digest() is not supported"},
		{"position(.)", "calculation", "kid_name", "only position(..) is supported"},
		{"position(..)", "calculation", "age", "position(..) is only meaningful inside a repeat"},
		{"once(today())", "relevant", "age", "once() is only meaningful in a calculation"},
		{"jr:choice-name(${yn}, 'yn')", "calculation", "age", "the second argument of jr:choice-name() must be '${question}'"},
		{"jr:choice-name(${yn}, '${age}')", "calculation", "name", "${age} is not a select question"},
		{"sum(${price})", "calculation", "age", "sum(): the repeat toys is inside the repeat kids: read it from a row of kids"},
		{"indexed-repeat(${kid_age}, ${toys}, 1)", "calculation", "age", "indexed-repeat() needs a field of a repeat and that repeat"},
		{"round()", "calculation", "age", "round() takes 1 to 2 arguments"},
		{"upper(${name})", "calculation", "age", "unsupported function upper()"},
		{"${grp} = ''", "relevant", "name", "${grp} is a group: refer to its fields"},
		{"${info} = 'x'", "relevant", "name", "${info} is a note and has no value"},
		{"/data/age > 1", "relevant", "name", `XPath "/" is not supported: refer to fields as ${name}`},
		{"../age > 1", "relevant", "name", `XPath ".." is not supported: refer to fields as ${name}`},
		{"age > 1", "relevant", "name", `unsupported name "age": refer to fields as ${name}`},
		{"${age} | ${name}", "relevant", "name", "the union operator | is not supported"},
		{"if(${age} > 1, 2)", "calculation", "name", "if() takes 3 argument(s)"},
		{"regex(., ${name})", "constraint", "name", "the pattern of regex() must be text in quotes"},
		{"sum(${age})", "calculation", "name", "sum() needs a repeat, or a field inside a repeat"},
		{"sum(${kids})", "calculation", "name", "sum() needs a field inside the repeat, not the repeat"},
		{"sum(${kid_age})", "calculation", "kid_name", "sum(${kid_age}) is inside the repeat kids itself: refer to the row's fields directly"},
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

// FuzzTranslateXPath translates random XLSForm expressions. Properties: no
// panic; a translation that is in the subset translates back to XPath
// (ExportXLSForm's way) and again to the very same text, so a published
// form round-trips through its workbook.
func FuzzTranslateXPath(f *testing.F) {
	seeds := []string{
		"${age} > 10 and selected(${likes}, 'tea')", "if(${age} > 17, 'adult', 'minor')", ". >= 0 and . <= 120",
		"count-selected(${likes}) <= 2", "sum(${kid_age}) + count(${kids})", "concat(${name}, '-', today())",
		"int((today() - ${dob}) div 365.25)", "${yn} = 1 or ${age} = '5'", "not(${name} = '')", "format-date(${at}, '%Y')",
		"round(${age} div 3, 2)", "jr:choice-name(${yn}, '${yn}')", "once(now())", "position(..) mod 2 = 0",
		"substring(${name}, 2, 3)", "max(${kid_age}) - min(${age}, 3)", "indexed-repeat(${kid_name}, ${kids}, 1)",
		"district = ${yn}", "'it''s' != \"x\"", "-${age} * 2", "${likes} = 'a b'", "regex(., '[\\u4e00-\\u9fa5]+')",
	}
	for i, s := range seeds {
		f.Add(s, uint8(i))
	}
	syms, items := testSymbols()
	ex := &exporter{d: &Definition{}, byList: map[string]string{"yes_no": "yn", "drinks": "likes"}, repeats: map[string]bool{"kids": true, "toys": true}}
	columns := []string{"relevant", "constraint", "calculation", "choice_filter", "required"}
	rows := []string{"name", "age", "kid_name", "toy", "dob"}
	f.Fuzz(func(t *testing.T, src string, where uint8) {
		column := columns[int(where)%len(columns)]
		item := items[rows[int(where/8)%len(rows)]]
		ctx := xcontext{column: column, item: item, syms: syms}
		out, err := translateXPath(src, ctx)
		if err != nil {
			return
		}
		if _, err := parseExpr(out); err != nil {
			return // Check reports it with the row
		}
		back, err := toXPath(out, column, ex)
		if err != nil {
			t.Fatalf("%q → %q has no XPath spelling: %v", src, out, err)
		}
		again, err := translateXPath(back, ctx)
		if err != nil || again != out {
			t.Fatalf("%q → %q → XPath %q → %q (%v)", src, out, back, again, err)
		}
	})
}
