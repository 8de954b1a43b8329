package forms_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/fieldsync/fieldsync/forms"
	"github.com/fieldsync/fieldsync/syncproto"
	"github.com/xuri/excelize/v2"
)

// sheets is a workbook to build: sheet name → rows, the first being the
// header. Sheets are created in the order survey, choices, settings, then
// the others by name. A cell may be an xlDate: a date with a number
// format.
type sheets map[string][][]any

// xlDate is a date cell: the serial number of t shown with the built-in
// number format id, or with the custom format when it is set.
type xlDate struct {
	t      time.Time
	id     int
	custom string
}

// mustWorkbook writes an .xlsx workbook in memory.
func mustWorkbook(tb testing.TB, s sheets) []byte {
	tb.Helper()
	f := excelize.NewFile()
	defer f.Close()
	first := true
	names := []string{"survey", "choices", "settings"}
	var others []string
	for name := range s {
		if name != "survey" && name != "choices" && name != "settings" {
			others = append(others, name)
		}
	}
	sort.Strings(others)
	for _, name := range append(names, others...) {
		rows, ok := s[name]
		if !ok {
			continue
		}
		if first {
			if err := f.SetSheetName("Sheet1", name); err != nil {
				tb.Fatal(err)
			}
			first = false
		} else if _, err := f.NewSheet(name); err != nil {
			tb.Fatal(err)
		}
		for i, row := range rows {
			cell, _ := excelize.CoordinatesToCellName(1, i+1)
			r := make([]any, len(row))
			var dates []int
			for j, v := range row {
				if d, ok := v.(xlDate); ok {
					r[j] = d.t.Sub(time.Date(1899, 12, 30, 0, 0, 0, 0, time.UTC)).Hours() / 24
					dates = append(dates, j)
					continue
				}
				r[j] = v
			}
			if err := f.SetSheetRow(name, cell, &r); err != nil {
				tb.Fatal(err)
			}
			for _, j := range dates {
				d := row[j].(xlDate)
				st := &excelize.Style{NumFmt: d.id}
				if d.custom != "" {
					st.CustomNumFmt = &d.custom
				}
				style, err := f.NewStyle(st)
				if err != nil {
					tb.Fatal(err)
				}
				c, _ := excelize.CoordinatesToCellName(j+1, i+1)
				if err := f.SetCellStyle(name, c, c, style); err != nil {
					tb.Fatal(err)
				}
			}
		}
	}
	var buf bytes.Buffer
	if _, err := f.WriteTo(&buf); err != nil {
		tb.Fatal(err)
	}
	return buf.Bytes()
}

// fullSurvey uses every supported type, groups, a repeat, skip logic,
// constraints, calculations, defaults, a choice filter and two languages.
func fullSurvey() sheets {
	return sheets{
		"survey": {
			{"type", "name", "label::Chinese (zh)", "label::English (en)", "hint::zh", "required", "required_message::zh",
				"relevant", "constraint", "constraint_message::Chinese (zh)", "constraint_message::English (en)", "calculation", "default", "appearance", "choice_filter"},
			{"note", "intro", "本问卷匿名填写", "This questionnaire is anonymous"},
			{"select_one yes_no", "consent", "同意参加吗？", "Do you agree?", "", "yes", "请选择是否同意"},
			{"begin group", "about", "基本情况", "About you", "", "", "", "${consent} = 'yes'"},
			{"text", "nickname", "昵称", "Nickname", "可不填"},
			{"integer", "age", "年龄", "Age", "", "yes", "", "", ". >= 6 and . <= 18", "年龄应在6到18岁之间", "age must be 6 to 18", "", "", "numbers"},
			{"decimal", "height", "身高（米）", "Height (m)", "", "no", "", "", ". > 0.5"},
			{"select_one stage", "stage", "学段", "Stage", "", "yes", "", "", "", "", "", "", "junior"},
			{"select_one school", "school", "学校", "School", "", "", "", "", "", "", "", "", "", "minimal", "stage = ${stage}"},
			{"select_multiple subjects", "subjects", "喜欢的学科", "Favourite subjects", "", "", "", "", "count-selected(.) <= 2", "最多选两项", "two at most", "", "math"},
			{"end group"},
			{"date", "birthday", "生日", "Birthday", "", "", "", "${age} != ''"},
			{"time", "wake_up", "起床时间", "Wake-up time"},
			{"dateTime", "filled_at", "填写时间", "Filled in at"},
			{"geopoint", "where", "位置", "Location"},
			{"image", "photo", "照片", "Photo"},
			{"begin repeat", "siblings", "兄弟姐妹", "Siblings", "", "", "", "${consent} = 'yes'"},
			{"integer", "sib_age", "年龄", "Age", "", "yes", "", "", ". < ${age} + 30"},
			{"text", "sib_school", "学校", "School", "", "", "", "${sib_age} >= 6"},
			{"end repeat"},
			{"calculate", "sibling_count", "", "", "", "", "", "", "", "", "", "count(${siblings})"},
			{"calculate", "older", "", "", "", "", "", "", "", "", "", "if(${age} > 14, 'older', 'younger')"},
			{"calculate", "many_siblings", "", "", "", "", "", "", "", "", "", "${sibling_count} > 2"},
			{"text", "comment", "意见", "Comments", "", "", "", "not(${consent} = 'no')", "string-length(.) <= 200"},
		},
		"choices": {
			{"list_name", "name", "label::Chinese (zh)", "label::English (en)", "stage"},
			{"yes_no", "yes", "是", "Yes"},
			{"yes_no", "no", "否", "No"},
			{"stage", "primary", "小学", "Primary"},
			{"stage", "junior", "初中", "Junior"},
			{"school", "s1", "中心小学", "Central primary", "primary"},
			{"school", "s2", "第二中学", "No. 2 Middle School", "junior"},
			{"subjects", "math", "数学", "Maths"},
			{"subjects", "chinese", "语文", "Chinese"},
			{"subjects", "pe", "体育", "PE"},
		},
		"settings": {
			{"form_id", "version", "form_title", "form_title::English (en)", "default_language"},
			{"survey.student_life", 2024101501, "学生生活问卷", "Student life survey", "Chinese (zh)"},
		},
	}
}

func TestImportXLSFormEveryType(t *testing.T) {
	d, err := forms.ImportXLSForm(bytes.NewReader(mustWorkbook(t, fullSurvey())))
	if err != nil {
		t.Fatalf("ImportXLSForm: %v", err)
	}
	if err := d.Check(); err != nil {
		t.Fatalf("Check: %v", err)
	}
	if got, want := [4]any{d.ID, d.Version, d.Kind, d.Status}, [4]any{"survey.student_life", 2024101501, forms.KindQuestionnaireResponse, forms.StatusDraft}; got != want {
		t.Errorf("id, version, kind, status = %v, want %v", got, want)
	}
	if got, want := d.Title, (forms.Text{ZH: "学生生活问卷", EN: "Student life survey"}); got != want {
		t.Errorf("title = %v, want %v", got, want)
	}
	var keys []string
	for _, f := range d.Fields {
		keys = append(keys, f.Key)
	}
	if got, want := strings.Join(keys, " "), "template_id template_version school_id visit_id campaign_id respondent_type respondent_grade collection_mode collector_id collected_at answers status void_reason"; got != want {
		t.Fatalf("fields = %s, want %s", got, want)
	}
	T := func(zh, en string) forms.Text { return forms.Text{ZH: zh, EN: en} }
	want := forms.Field{Key: "answers", Type: forms.TypeGroup, Layout: forms.LayoutAnswers, Required: true, Label: T("答卷", "Answers"), Fields: []forms.Field{
		{Key: "intro", Type: forms.TypeNote, Label: T("本问卷匿名填写", "This questionnaire is anonymous")},
		{Key: "consent", Type: forms.TypeSelectOne, ChoiceList: "yes_no", Label: T("同意参加吗？", "Do you agree?"), Required: true, RequiredMessage: forms.Text{ZH: "请选择是否同意"}},
		{Key: "about", Type: forms.TypeGroup, Layout: forms.LayoutInline, Label: T("基本情况", "About you"), Relevant: "answers.consent == 'yes'", Fields: []forms.Field{
			{Key: "nickname", Type: forms.TypeText, Label: T("昵称", "Nickname"), Hint: forms.Text{ZH: "可不填"}},
			{Key: "age", Type: forms.TypeInteger, Label: T("年龄", "Age"), Required: true, Appearance: "numbers",
				Constraints: []forms.Constraint{{Expr: "self >= 6 && self <= 18", Message: T("年龄应在6到18岁之间", "age must be 6 to 18")}}},
			{Key: "height", Type: forms.TypeDecimal, Label: T("身高（米）", "Height (m)"), Constraints: []forms.Constraint{{Expr: "self > 0.5"}}},
			{Key: "stage", Type: forms.TypeSelectOne, ChoiceList: "stage", Label: T("学段", "Stage"), Required: true, Default: "junior"},
			{Key: "school", Type: forms.TypeSelectOne, ChoiceList: "school", Label: T("学校", "School"), Appearance: "minimal", ChoiceFilter: "choice.stage == answers.stage"},
			{Key: "subjects", Type: forms.TypeSelectMultiple, ChoiceList: "subjects", Label: T("喜欢的学科", "Favourite subjects"), Default: []any{"math"},
				Constraints: []forms.Constraint{{Expr: "count(self) <= 2", Message: T("最多选两项", "two at most")}}},
		}},
		{Key: "birthday", Type: forms.TypeDate, Label: T("生日", "Birthday"), Relevant: "!empty(answers.age)"},
		{Key: "wake_up", Type: forms.TypeTime, Label: T("起床时间", "Wake-up time")},
		{Key: "filled_at", Type: forms.TypeDateTime, Label: T("填写时间", "Filled in at")},
		{Key: "where", Type: forms.TypeGeopoint, Label: T("位置", "Location")},
		{Key: "photo", Type: forms.TypePhoto, Label: T("照片", "Photo"), MaxCount: intp(1)},
		{Key: "siblings", Type: forms.TypeRepeat, Label: T("兄弟姐妹", "Siblings"), Relevant: "answers.consent == 'yes'", Fields: []forms.Field{
			{Key: "sib_age", Type: forms.TypeInteger, Label: T("年龄", "Age"), Required: true, Constraints: []forms.Constraint{{Expr: "self < answers.age + 30"}}},
			{Key: "sib_school", Type: forms.TypeText, Label: T("学校", "School"), Relevant: "sib_age >= 6"},
		}},
		{Key: "sibling_count", Type: forms.TypeDecimal, Calculation: "count(answers.siblings)"},
		{Key: "older", Type: forms.TypeText, Calculation: "(answers.age > 14 ? 'older' : 'younger')"},
		{Key: "many_siblings", Type: forms.TypeBoolean, Calculation: "answers.sibling_count > 2"},
		{Key: "comment", Type: forms.TypeText, Label: T("意见", "Comments"), Relevant: "!(answers.consent == 'no')", Constraints: []forms.Constraint{{Expr: "len(self) <= 200"}}},
	}}
	if got := d.Fields[10]; !reflect.DeepEqual(got, want) {
		g, _ := json.MarshalIndent(got, "", " ")
		w, _ := json.MarshalIndent(want, "", " ")
		t.Errorf("answers group:\n got %s\nwant %s", g, w)
	}
	wantChoices := map[string][]forms.Choice{
		"yes_no":   {{Value: "yes", Label: T("是", "Yes")}, {Value: "no", Label: T("否", "No")}},
		"stage":    {{Value: "primary", Label: T("小学", "Primary")}, {Value: "junior", Label: T("初中", "Junior")}},
		"school":   {{Value: "s1", Label: T("中心小学", "Central primary"), Props: map[string]string{"stage": "primary"}}, {Value: "s2", Label: T("第二中学", "No. 2 Middle School"), Props: map[string]string{"stage": "junior"}}},
		"subjects": {{Value: "math", Label: T("数学", "Maths")}, {Value: "chinese", Label: T("语文", "Chinese")}, {Value: "pe", Label: T("体育", "PE")}},
	}
	for name, list := range wantChoices {
		if got := d.Choices[name]; !reflect.DeepEqual(got, list) {
			t.Errorf("choices %s = %v, want %v", name, got, list)
		}
	}
	if got, want := len(d.Choices), len(wantChoices)+2; got != want { // + respondent_type, collection_mode
		t.Errorf("%d choice lists, want %d", got, want)
	}
}

// response is a questionnaire response to fullSurvey.
func response(answers ...any) map[string]any {
	return map[string]any{
		"template_id": "0192b000-0000-7000-8000-000000000601", "template_version": 1.0,
		"school_id": "0192b000-0000-7000-8000-000000000103", "respondent_type": "student", "respondent_grade": "八年级",
		"collection_mode": "self_on_device", "collector_id": "0192b000-0000-7000-8000-000000000211",
		"collected_at": "2024-10-15T10:24:00+08:00", "answers": answers,
	}
}

func a(qid string, v any) map[string]any { return map[string]any{"qid": qid, "value": v} }

func TestImportedDefinitionValidates(t *testing.T) {
	d, err := forms.ImportXLSForm(bytes.NewReader(mustWorkbook(t, fullSurvey())))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		values   map[string]any
		want     forms.Errors
		computed map[string]any // qid → computed value
	}{
		{"Valid", response(
			a("consent", "yes"), a("age", 13.0), a("height", "1.55"), a("stage", "junior"), a("school", "s2"),
			a("subjects", []any{"math", "pe"}), a("birthday", "2011-05-01"),
			a("siblings", []any{map[string]any{"sib_age": 8.0, "sib_school": "中心小学"}, map[string]any{"sib_age": 3.0}}),
			a("comment", "食堂很好"),
		), forms.Errors{}, map[string]any{"sibling_count": "2", "older": "younger", "many_siblings": false}},
		{"Declined", response(a("consent", "no")), forms.Errors{}, map[string]any{"older": nil, "sibling_count": "0"}},
		{"Broken", response(
			a("consent", "yes"), a("age", 19.0), a("stage", "primary"), a("school", "s2"),
			a("subjects", []any{"math", "pe", "chinese"}),
			a("siblings", []any{map[string]any{"sib_age": 4.0, "sib_school": "幼儿园"}, map[string]any{}}),
			a("comment", strings.Repeat("好", 201)), a("older", "adult"),
		), forms.Errors{
			"answers.age":                    {ZH: "年龄应在6到18岁之间", EN: "age must be 6 to 18"},
			"answers.school":                 {ZH: "“s2”不是可选项", EN: `"s2" is not one of the choices`},
			"answers.subjects":               {ZH: "最多选两项", EN: "two at most"},
			"answers.siblings[0].sib_school": notRelevant,
			"answers.siblings[1].sib_age":    required,
			"answers.comment":                {ZH: "不符合填写规则", EN: "does not satisfy the rule"},
			"answers.older":                  computed("older"),
		}, nil},
		{"MissingConsent", response(a("age", 10.0)), forms.Errors{
			"answers.consent": {ZH: "请选择是否同意"},
			"answers.age":     notRelevant,
		}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev := d.Evaluate(tt.values, forms.Env{Today: "2024-10-15"})
			if !reflect.DeepEqual(ev.Errors, tt.want) {
				t.Errorf("errors:\n got %v\nwant %v", ev.Errors, tt.want)
			}
			got := map[string]any{}
			for _, x := range ev.Values["answers"].([]any) {
				got[x.(map[string]any)["qid"].(string)] = x.(map[string]any)["value"]
			}
			for qid, want := range tt.computed {
				if got[qid] != want {
					t.Errorf("computed %s = %#v, want %#v", qid, got[qid], want)
				}
			}
		})
	}
}

func TestImportXLSFormDefaultLanguageAndAliases(t *testing.T) {
	wb := sheets{
		"survey": {
			{"Type", "Name", "Label", "Label::中文", "Constraint Message", "constraint"},
			{"string", "q1", "Your name", "你的名字", "too long", "string-length(.) < 5"},
			{"int", "q2", "Your age", "", "", ""},
			{"begin_group", "g"},
			{"select_one yn", "q3", "OK?"},
			{"end_group"},
			{"", "", ""},
			{"begin_repeat", "r", "Rows"},
			{"text", "q4", "Row"},
			{"end_repeat"},
		},
		"choices": {
			{"list name", "name", "label"},
			{"yn", "y", "yes"},
		},
		"settings": {{"form_id", "version", "default_language"}, {"simple", "3", "English (en)"}},
	}
	d, err := forms.ImportXLSForm(bytes.NewReader(mustWorkbook(t, wb)))
	if err != nil {
		t.Fatal(err)
	}
	ans := d.Fields[10].Fields
	if got, want := ans[0], (forms.Field{Key: "q1", Type: forms.TypeText, Label: forms.Text{ZH: "你的名字", EN: "Your name"},
		Constraints: []forms.Constraint{{Expr: "len(self) < 5", Message: forms.Text{EN: "too long"}}}}); !reflect.DeepEqual(got, want) {
		t.Errorf("q1 = %+v, want %+v", got, want)
	}
	if got, want := ans[1].Type, forms.TypeInteger; got != want {
		t.Errorf("q2 type %s, want %s", got, want)
	}
	if got, want := ans[2].Fields[0].Key, "q3"; got != want {
		t.Errorf("group child %s, want %s", got, want)
	}
	if got, want := ans[3].Fields[0].Key, "q4"; got != want {
		t.Errorf("repeat child %s, want %s", got, want)
	}
	if got, want := d.Title, (forms.Text{EN: "simple"}); got != want {
		t.Errorf("title %v, want %v (the form id)", got, want)
	}
	if got, want := d.Choices["yn"][0].Label, (forms.Text{EN: "yes"}); got != want {
		t.Errorf("choice label %v, want %v", got, want)
	}
}

func TestImportXLSFormNotAWorkbook(t *testing.T) {
	for _, b := range [][]byte{nil, []byte("type,name,label\ntext,q1,Q1\n"), []byte("PK\x03\x04 broken zip")} {
		_, err := forms.ImportXLSForm(bytes.NewReader(b))
		var xe *forms.XLSFormError
		if !errors.As(err, &xe) || len(xe.Problems) != 1 || !strings.HasPrefix(xe.Problems[0].String(), "workbook: not a readable .xlsx workbook") {
			t.Errorf("%q: err = %v", b, err)
		}
	}
	big := bytes.Repeat([]byte{0}, 8<<20+1)
	_, err := forms.ImportXLSForm(bytes.NewReader(big))
	if err == nil || !strings.Contains(err.Error(), "larger than 8 MB") {
		t.Errorf("8 MB + 1: err = %v", err)
	}
}

func TestXLSFormErrorFields(t *testing.T) {
	err := &forms.XLSFormError{Problems: []forms.XLSFormProblem{
		{Sheet: "survey", Row: 7, Column: "type", Message: forms.Text{ZH: "不支持的题型 \"osm\"", EN: `unsupported type "osm"`}},
		{Sheet: "survey", Row: 7, Column: "type", Message: forms.Text{ZH: "又一个问题", EN: "another"}},
		{Sheet: "settings", Row: 2, Message: forms.Text{EN: "english only"}},
	}}
	var pe *syncproto.Error
	if !errors.As(err, &pe) {
		t.Fatal("XLSFormError does not unwrap to *syncproto.Error")
	}
	want := map[string]string{"survey[7].type": "不支持的题型 \"osm\" / unsupported type \"osm\"；又一个问题 / another", "settings[2]": "english only"}
	if !reflect.DeepEqual(pe.Fields, want) {
		t.Errorf("Fields = %v, want %v", pe.Fields, want)
	}
	if got, want := err.Error(), `xlsform: survey row 7, column type: unsupported type "osm"; survey row 7, column type: another; settings row 2: english only`; got != want {
		t.Errorf("Error() = %s\nwant %s", got, want)
	}
}
