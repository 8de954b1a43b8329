package forms_test

import (
	"errors"
	"reflect"
	"testing"

	"github.com/fieldsync/fieldsync/forms"
	"github.com/fieldsync/fieldsync/syncproto"
)

func intp(n int) *int           { return &n }
func floatp(f float64) *float64 { return &f }

// baseDefinition is a small valid definition that the Check tests break.
func baseDefinition() *forms.Definition {
	return &forms.Definition{
		ID: "test.check", Version: 1, Kind: forms.KindVisit, Status: forms.StatusDraft,
		Title: forms.Text{ZH: "测试", EN: "Test"},
		Fields: []forms.Field{
			{Key: "name", Type: forms.TypeText, Label: forms.Text{ZH: "姓名"}},
			{Key: "kind", Type: forms.TypeSelectOne, ChoiceList: "kinds", Label: forms.Text{ZH: "类型"}},
			{Key: "n", Type: forms.TypeInteger, Label: forms.Text{ZH: "数量"}},
			{Key: "rows", Type: forms.TypeRepeat, Label: forms.Text{ZH: "行"}, Fields: []forms.Field{
				{Key: "v", Type: forms.TypeDecimal, Label: forms.Text{ZH: "值"}},
			}},
		},
		Choices: map[string][]forms.Choice{"kinds": {{Value: "a", Label: forms.Text{ZH: "甲"}}, {Value: "b", Label: forms.Text{ZH: "乙"}}}},
	}
}

func TestCheck(t *testing.T) {
	if err := baseDefinition().Check(); err != nil {
		t.Fatalf("base definition: %v", err)
	}
	tests := []struct {
		name   string
		break_ func(d *forms.Definition)
		want   map[string]string // key → Chinese message
	}{
		{"UnknownType", func(d *forms.Definition) { d.Fields[2].Type = "slider" },
			map[string]string{"fields[2].type": "应为以下之一：text integer decimal date time datetime boolean select_one select_multiple text_list photo geopoint note group repeat range rank geotrace geoshape audio video file barcode acknowledge"}},
		{"MissingKeyAndBadID", func(d *forms.Definition) { d.Fields[0].Key = ""; d.ID = "Test Form"; d.Version = 0 },
			map[string]string{
				"fields[0].key": "此项必填",
				"id":            "表单编号只能用小写字母、数字、下划线和点，如 visit.routine",
				"version":       "应不小于 1",
			}},
		{"BadKindStatusAndKey", func(d *forms.Definition) { d.Kind = "survey"; d.Status = "live"; d.Fields[0].Key = "1name" },
			map[string]string{
				"kind":          "应为以下之一：visit lesson_observation questionnaire_response hazard hazard_event monthly_feedback",
				"status":        "应为以下之一：draft published retired",
				"fields[0].key": "名称只能用字母、数字和下划线，并以字母开头",
			}},
		{"NoFields", func(d *forms.Definition) { d.Fields = nil },
			map[string]string{"fields": "此项必填"}},
		{"DuplicateKey", func(d *forms.Definition) { d.Fields[2].Key = "name" },
			map[string]string{"fields[2].key": `名称 "name" 重复（fields[0]）`}},
		{"DuplicateKeyThroughInlineGroup", func(d *forms.Definition) {
			d.Fields = append(d.Fields, forms.Field{Key: "sec", Type: forms.TypeGroup, Layout: forms.LayoutInline, Fields: []forms.Field{
				{Key: "n", Type: forms.TypeText, Label: forms.Text{EN: "n"}}}})
		}, map[string]string{"fields[4].fields[0].key": `名称 "n" 重复（fields[2]）`}},
		{"ReservedKey", func(d *forms.Definition) { d.Fields[0].Key = "today" },
			map[string]string{"fields[0].key": `"today" 是表达式的保留字，不能作名称`}},
		{"MissingChoiceList", func(d *forms.Definition) { d.Fields[1].ChoiceList = "sizes" },
			map[string]string{"fields[1].choice_list": `选项列表 "sizes" 不存在`}},
		{"SelectWithoutList", func(d *forms.Definition) { d.Fields[1].ChoiceList = "" },
			map[string]string{"fields[1].choice_list": "选择题需要选项列表"}},
		{"DuplicateChoice", func(d *forms.Definition) { d.Choices["kinds"] = append(d.Choices["kinds"], forms.Choice{Value: "a"}) },
			map[string]string{"choices.kinds[2].value": `选项值 "a" 重复（第 0 项）`}},
		// Structural problems (validator tags) are reported alone: the
		// semantic checks run on a definition whose structure is sound.
		{"BadListNameAndEmptyChoiceValue", func(d *forms.Definition) {
			d.Choices["bad name"] = []forms.Choice{{Value: "x"}}
			d.Choices["kinds"][1].Value = ""
			d.Fields[0].Key = "name"
			d.Fields[2].Key = "name"
		}, map[string]string{
			"choices.bad name":       "选项列表名只能用字母、数字、下划线和连字符，并以字母开头",
			"choices.kinds[1].value": "此项必填",
		}},
		{"MissingLabel", func(d *forms.Definition) { d.Fields[0].Label = forms.Text{} },
			map[string]string{"fields[0].label": "需要标题（zh 或 en）"}},
		{"ReferenceToMissingField", func(d *forms.Definition) { d.Fields[0].Relevant = "nope > 1" },
			map[string]string{"fields[0].relevant": "表达式无效：unknown field nope"}},
		{"ReferenceIntoRepeat", func(d *forms.Definition) { d.Fields[0].Relevant = "v > 1" },
			map[string]string{"fields[0].relevant": "表达式无效：v is inside the repeat rows: read it with count(rows) or sum(rows, 'v')"}},
		{"ExpressionDoesNotCompile", func(d *forms.Definition) { d.Fields[0].Relevant = "n >" },
			map[string]string{"fields[0].relevant": "表达式无效：unexpected token EOF (1:3)"}},
		{"ExpressionTypeMismatch", func(d *forms.Definition) { d.Fields[0].RequiredIf = "name > 3" },
			map[string]string{"fields[0].required_if": "表达式无效：invalid operation: > (mismatched types string and int) (1:6)"}},
		{"ExpressionOutsideSubset", func(d *forms.Definition) { d.Fields[2].Constraints = []forms.Constraint{{Expr: "self matches '1'"}} },
			map[string]string{"fields[2].constraints[0].expr": `表达式无效：operator "matches" is not allowed: use ! && || == != < <= > >= + - * / % ?: in`}},
		{"SelfOutsideConstraint", func(d *forms.Definition) { d.Fields[0].Relevant = "self == ''" },
			map[string]string{"fields[0].relevant": "表达式无效：self is only defined in constraints"}},
		{"CircularCalculation", func(d *forms.Definition) {
			d.Fields = append(d.Fields,
				forms.Field{Key: "c1", Type: forms.TypeInteger, Calculation: "c2 + 1"},
				forms.Field{Key: "c2", Type: forms.TypeInteger, Calculation: "c1 + 1"})
		}, map[string]string{"fields[4].calculation": "循环引用：c1 → c2 → c1"}},
		{"CalculationOfWrongType", func(d *forms.Definition) { d.Fields[2].Calculation = "name + 'x'"; d.Fields[2].Label = forms.Text{} },
			map[string]string{"fields[2].calculation": "计算结果类型（text）与字段类型 integer 不符"}},
		{"CalculatedAndRequired", func(d *forms.Definition) { d.Fields[2].Calculation = "1"; d.Fields[2].Required = true },
			map[string]string{"fields[2].required": "计算字段不能设为必填"}},
		{"ConstraintKinds", func(d *forms.Definition) {
			d.Fields[0].Constraints = []forms.Constraint{{Min: floatp(1)}, {MinLength: intp(1), Pattern: "x"}, {Pattern: "(?i)abc"}, {MinLength: intp(5), MaxLength: intp(2)}}
			d.Fields[2].Constraints = []forms.Constraint{{Pattern: "[0-9]+"}, {Min: floatp(5), Max: floatp(1)}}
		}, map[string]string{
			"fields[0].constraints[0]":            "范围只适用于整数和小数",
			"fields[0].constraints[1]":            "每条约束只能是范围、长度、格式或表达式之一",
			"fields[0].constraints[2].pattern":    "格式无效：pattern: only (?:…) groups are portable; flags and named groups are not",
			"fields[0].constraints[3].min_length": "最小长度大于最大长度",
			"fields[2].constraints[0].pattern":    "格式只适用于文本",
			"fields[2].constraints[1].min":        "最小值大于最大值",
		}},
		{"InvalidDefault", func(d *forms.Definition) { d.Fields[2].Default = "many"; d.Fields[1].Default = "c" },
			map[string]string{"fields[2].default": "默认值无效：应为整数", "fields[1].default": "默认值无效：“c”不是可选项"}},
		{"UniqueOutsideARepeat", func(d *forms.Definition) {
			d.Fields[3].Fields = append(d.Fields[3].Fields, forms.Field{Key: "inner", Type: forms.TypeRepeat, Fields: []forms.Field{{Key: "w", Type: forms.TypeText, Label: forms.Text{EN: "w"}}}})
			d.Fields[0].Unique = true
		}, map[string]string{
			"fields[0].unique": "只有重复组里的直接字段可以设为不重复",
		}},
		{"AttributesOfOtherTypes", func(d *forms.Definition) {
			d.Fields[0].MinCount = intp(1)
			d.Fields[2].Format = "uuid"
			d.Fields[2].Layout = forms.LayoutInline
			d.Fields[0].ChoiceFilter = "true"
		}, map[string]string{
			"fields[0].min_count":     "只有照片、附件、多选、文本列表和重复组有数量限制",
			"fields[2].format":        "只有文本字段有格式",
			"fields[2].layout":        "只有分组有 layout",
			"fields[0].choice_filter": "只有选择题有选项筛选",
		}},
		{"EmptyGroupAndNoteWithRule", func(d *forms.Definition) {
			d.Fields = append(d.Fields,
				forms.Field{Key: "g", Type: forms.TypeGroup},
				forms.Field{Key: "info", Type: forms.TypeNote, Label: forms.Text{ZH: "说明"}, Required: true})
		}, map[string]string{
			"fields[4].fields": "分组或重复组至少需要一个字段",
			"fields[5].type":   "说明项没有值：不能必填、计算、约束或有默认值",
		}},
		{"ServerFieldWithRule", func(d *forms.Definition) {
			d.Fields = append(d.Fields, forms.Field{Key: "status", Type: forms.TypeText, Origin: forms.OriginServer, Required: true})
		}, map[string]string{"fields[4].origin": "由服务器设置的字段不能有必填、条件、计算、约束或默认值"}},
		{"ServerFieldInRule", func(d *forms.Definition) {
			d.Fields = append(d.Fields, forms.Field{Key: "status", Type: forms.TypeText, Origin: forms.OriginServer})
			d.Fields[0].Relevant = "status == 'open'"
		}, map[string]string{"fields[0].relevant": "表达式无效：status is set by the server and cannot be read by rules"}},
		{"AnswersGroupNotAtTop", func(d *forms.Definition) {
			d.Fields[3].Fields[0] = forms.Field{Key: "a", Type: forms.TypeGroup, Layout: forms.LayoutAnswers, Fields: []forms.Field{{Key: "Q1", Type: forms.TypeText, Label: forms.Text{EN: "q"}}}}
		},
			map[string]string{"fields[3].fields[0].layout": "答案列表分组只能在最外层"}},
		{"UniqueKeyUnknown", func(d *forms.Definition) { d.UniqueKey = []string{"name", "month"} },
			map[string]string{"unique_key[1]": `"month" 不是最外层的字段`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := baseDefinition()
			tt.break_(d)
			err := d.Check()
			var pe *syncproto.Error
			if !errors.As(err, &pe) || pe.Code != syncproto.EINVALID {
				t.Fatalf("Check() = %v, want an EINVALID *syncproto.Error", err)
			}
			if !reflect.DeepEqual(pe.Fields, tt.want) {
				t.Errorf("Check().Fields:\n got %q\nwant %q", pe.Fields, tt.want)
			}
			// A definition that fails Check cannot validate records.
			errs := d.Validate(map[string]any{}, forms.Env{})
			if _, ok := errs[forms.KeyForm]; !ok || len(errs) != 1 {
				t.Errorf("Validate on an invalid definition = %v, want only %s", errs, forms.KeyForm)
			}
			if _, err := d.Compute(map[string]any{}, forms.Env{}); syncproto.ErrorCode(err) != syncproto.EINVALID {
				t.Errorf("Compute on an invalid definition: err = %v", err)
			}
		})
	}
}

func TestErrorsErr(t *testing.T) {
	if err := (forms.Errors{}).Err(); err != nil {
		t.Fatalf("empty Errors.Err() = %v, want nil", err)
	}
	errs := forms.Errors{
		"a":      {ZH: "此项必填", EN: "required"},
		"b[0].c": {EN: "english only"},
	}
	err := errs.Err()
	var pe *syncproto.Error
	if !errors.As(err, &pe) {
		t.Fatalf("Err() = %T, want *syncproto.Error", err)
	}
	if got, want := pe.Fields, map[string]string{"a": "此项必填", "b[0].c": "english only"}; !reflect.DeepEqual(got, want) {
		t.Errorf("Fields = %v, want %v", got, want)
	}
	if got, want := pe.Message, "记录未通过校验（2）/ the record failed validation (2)"; got != want {
		t.Errorf("Message = %q, want %q", got, want)
	}
	if got, want := errs.String(), "a: required; b[0].c: english only"; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
}

// TestValidateIsSafeForConcurrentUse runs one definition from several
// goroutines, as the server does; run with -race.
func TestValidateIsSafeForConcurrentUse(t *testing.T) {
	d := mustBuiltin(t, "lesson_observation", 1)
	rec := forms.StripEnvelope(mustSample(t, "07_lesson_observation"))
	done := make(chan forms.Errors)
	for range 8 {
		go func() { done <- d.Validate(rec, today) }()
	}
	for range 8 {
		if errs := <-done; len(errs) > 0 {
			t.Errorf("Validate: %v", errs)
		}
	}
}
