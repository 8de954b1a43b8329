package forms_test

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/fieldsync/fieldsync/forms"
)

var updateFixtures = flag.Bool("update", false, "rewrite forms/testdata/xlsform/*.xlsx from the county questionnaires")

// The county questionnaires below are written as a county office writes
// them for ODK or KoboToolbox: Chinese labels in the plain column, English
// next to it, metadata rows, groups with field-list, skip logic, and the
// functions such forms use.

// studentBurden is the student burden survey (学生课业负担调查).
func studentBurden() sheets {
	return sheets{
		"survey": {
			{"type", "name", "label", "label::English (en)", "hint", "required", "relevant", "constraint", "constraint_message", "calculation", "appearance", "choice_filter"},
			{"start", "start"},
			{"end", "end"},
			{"today", "today"},
			{"deviceid", "deviceid"},
			{"note", "intro", "本问卷匿名填写，请如实回答。", "This survey is anonymous."},
			{"begin group", "basic", "基本情况", "About you", "", "", "", "", "", "", "field-list"},
			{"select_one stage", "stage", "学段", "Stage", "", "yes"},
			{"select_one grade", "grade", "年级", "Grade", "", "yes", "", "", "", "", "minimal", "stage = ${stage}"},
			{"select_one sex", "sex", "性别", "Sex", "", "yes"},
			{"end group"},
			{"select_one hw", "hw_time", "你每天完成书面作业大约需要多长时间？", "Daily homework time", "", "yes"},
			{"decimal", "sleep", "你平均每天睡眠多少小时？", "Hours of sleep", "精确到 0.5 小时", "yes", "", ". >= 4 and . <= 12", "睡眠时间应在 4–12 小时之间"},
			{"select_one yn", "tutoring", "你参加校外学科类培训吗？", "Private tutoring?", "", "yes"},
			{"select_multiple subjects", "tutoring_subjects", "参加哪些科目？", "Which subjects?", "", "yes", "${tutoring} = 'yes'", "count-selected(.) <= 3", "最多选 3 项"},
			{"integer", "sport_days", "每周有几天参加 1 小时以上体育活动？", "Days with 1h+ of sport", "", "yes", "", ". >= 0 and . <= 7"},
			{"calculate", "overload", "", "", "", "", "", "", "", "if(${hw_time} = 'gt120' or ${sleep} < 8, 'yes', 'no')"},
			{"note", "sleep_note", "你每天睡眠 ${sleep} 小时，教育部要求初中生不少于 9 小时。", "", "", "", "${stage} = 'junior' and ${sleep} < 9"},
			{"text", "wish", "你对减轻课业负担有什么建议？", "Suggestions", "", "no", "", "string-length(.) <= 200"},
		},
		"choices": {
			{"list_name", "name", "label", "label::English (en)", "stage"},
			{"stage", "primary", "小学", "Primary"},
			{"stage", "junior", "初中", "Junior"},
			{"grade", "g4", "四年级", "Grade 4", "primary"},
			{"grade", "g5", "五年级", "Grade 5", "primary"},
			{"grade", "g6", "六年级", "Grade 6", "primary"},
			{"grade", "g7", "七年级", "Grade 7", "junior"},
			{"grade", "g8", "八年级", "Grade 8", "junior"},
			{"grade", "g9", "九年级", "Grade 9", "junior"},
			{"sex", "m", "男", "Male"},
			{"sex", "f", "女", "Female"},
			{"hw", "lt60", "60 分钟以内", "Under 60 min"},
			{"hw", "60_90", "60–90 分钟", "60–90 min"},
			{"hw", "90_120", "90–120 分钟", "90–120 min"},
			{"hw", "gt120", "120 分钟以上", "Over 120 min"},
			{"yn", "yes", "是", "Yes"},
			{"yn", "no", "否", "No"},
			{"subjects", "chinese", "语文", "Chinese"},
			{"subjects", "math", "数学", "Maths"},
			{"subjects", "english", "英语", "English"},
			{"subjects", "physics", "物理", "Physics"},
		},
		"settings": {
			{"form_title", "form_id", "version", "default_language", "instance_name"},
			{"学生课业负担调查（2024 秋）", "student_burden_2024", "2024101501", "中文 (zh)", "concat(${grade}, '-', ${today})"},
		},
	}
}

// parentSatisfaction is the parent satisfaction survey (家长满意度调查).
func parentSatisfaction() sheets {
	likert := func(name, zh string) []any {
		return []any{"select_one sat5", name, zh, "", "yes", "", "", "likert"}
	}
	return sheets{
		"survey": {
			{"type", "name", "label", "hint", "required", "required_message", "constraint", "appearance", "constraint_message", "parameters", "relevant", "calculation"},
			{"start", "start"},
			{"username", "collector"},
			{"select_one relation", "relation", "您是孩子的", "", "yes", "请选择您与孩子的关系"},
			{"select_one grade", "child_grade", "孩子所在年级", "", "yes"},
			{"text", "phone", "联系电话（选填）", "11 位手机号", "", "", "regex(., '^1[3-9][0-9]{9}$')", "numbers", "请填写 11 位手机号"},
			{"begin group", "satisfaction", "请对以下方面打分", "", "", "", "", "table-list"},
			likert("teaching", "教学质量"),
			likert("safety", "校园安全"),
			likert("canteen", "食堂伙食"),
			likert("homework", "作业量"),
			{"end group"},
			{"range", "overall", "总体满意度（1–10 分）", "", "yes", "", "", "rating", "", "start=1 end=10 step=1"},
			{"calculate", "avg", "", "", "", "", "", "", "", "", "", "(${teaching} + ${safety} + ${canteen} + ${homework}) div 4"},
			{"select_multiple channel or_other", "channels", "您通过哪些渠道了解学校？", "可多选", "yes"},
			{"text", "complaint", "您对学校有什么意见？", "", "", "", "", "multiline", "", "", "${overall} <= 5"},
		},
		"choices": {
			{"list_name", "name", "label"},
			{"relation", "father", "父亲"}, {"relation", "mother", "母亲"}, {"relation", "grandparent", "祖父母"}, {"relation", "other_rel", "其他监护人"},
			{"grade", "g1", "一年级"}, {"grade", "g2", "二年级"}, {"grade", "g3", "三年级"},
			{"sat5", "5", "非常满意"}, {"sat5", "4", "满意"}, {"sat5", "3", "一般"}, {"sat5", "2", "不满意"}, {"sat5", "1", "非常不满意"},
			{"channel", "wechat", "家长微信群"}, {"channel", "meeting", "家长会"}, {"channel", "website", "学校网站"},
		},
		"settings": {
			{"form_title", "form_id", "default_language", "instance_name"},
			{"家长满意度调查", "parent_satisfaction", "Chinese (zh)", "concat('家长-', jr:choice-name(${child_grade}, '${child_grade}'))"},
		},
	}
}

// canteenSafety is the canteen safety checklist (食堂安全检查表).
func canteenSafety() sheets {
	check := func(name, zh string) []any {
		return []any{"select_one pass", name, zh, "", "yes"}
	}
	photo := func(name, of string) []any {
		return []any{"image", name, "请拍摄问题照片", "", "${" + of + "} = 'fail'", "${" + of + "} = 'fail'"}
	}
	return sheets{
		"survey": {
			{"type", "name", "label", "hint", "required", "relevant", "constraint", "constraint_message", "calculation", "default", "repeat_count", "appearance"},
			{"today", "today"},
			{"username", "inspector"},
			{"date", "check_date", "检查日期", "", "yes", "", ". <= today()", "检查日期不能晚于今天", "", xlDate{t: time.Date(2024, 10, 15, 0, 0, 0, 0, time.UTC), custom: "yyyy\"年\"m\"月\"d\"日\""}},
			{"geopoint", "location", "食堂位置", "在食堂门口定位"},
			{"begin group", "purchase", "一、原料采购", "", "", "", "", "", "", "", "", "field-list"},
			check("supplier", "定点采购，索证索票齐全"),
			photo("supplier_photo", "supplier"),
			check("storage", "库房物品离地离墙，出入库台账完整"),
			photo("storage_photo", "storage"),
			{"end group"},
			{"begin group", "cooking", "二、加工制作", "", "", "", "", "", "", "", "", "field-list"},
			check("raw_cooked", "生熟分开"),
			photo("raw_cooked_photo", "raw_cooked"),
			{"integer", "sample_hours", "食品留样时长（小时）", "应不少于 48 小时", "yes", "", ". >= 48", "留样应不少于 48 小时"},
			{"decimal", "sample_grams", "每样留样量（克）", "", "yes", "", ". >= 125", "每样不少于 125 克"},
			{"end group"},
			{"integer", "staff_count", "从业人员人数", "", "yes", "", ". > 0 and . < 100"},
			{"begin repeat", "staff", "从业人员健康证", "", "", "", "", "", "", "", "${staff_count}"},
			{"text", "staff_name", "姓名", "", "yes"},
			{"date", "cert_expiry", "健康证有效期至", "", "yes", "", ". >= ${check_date}", "健康证已过期"},
			{"calculate", "expired", "", "", "", "", "", "", "if(${cert_expiry} < ${check_date}, 1, 0)"},
			{"end repeat"},
			{"calculate", "fails", "", "", "", "", "", "", "if(${supplier} = 'fail', 1, 0) + if(${storage} = 'fail', 1, 0) + if(${raw_cooked} = 'fail', 1, 0)"},
			{"calculate", "result", "", "", "", "", "", "", "if(${fails} = 0, '合格', if(${fails} = 1, '基本合格', '不合格'))"},
			{"note", "result_note", "检查结论：${result}（不合格 ${fails} 项）"},
			{"text", "rectify", "整改要求", "", "${fails} > 0", "${fails} > 0"},
			{"image", "signature", "食堂负责人签字", "", "yes", "", "", "", "", "", "", "signature"},
		},
		"choices": {
			{"list_name", "name", "label"},
			{"pass", "pass", "合格"},
			{"pass", "fail", "不合格"},
			{"pass", "na", "不适用"},
		},
		"settings": {
			{"form_title", "form_id", "version", "style"},
			{"学校食堂食品安全检查表", "canteen_safety", 3, "pages"},
		},
	}
}

func TestCountyQuestionnaires(t *testing.T) {
	const photo1 = "0192b000-0000-7000-8000-000000000a01"
	tests := []featureCase{
		{
			name: "StudentBurden",
			wb:   studentBurden(),
			answers: []forms.Field{
				{Key: "start", Type: forms.TypeDateTime, Meta: forms.MetaStart, Hidden: true},
				{Key: "end", Type: forms.TypeDateTime, Meta: forms.MetaEnd, Hidden: true},
				{Key: "today", Type: forms.TypeDate, Meta: forms.MetaToday, Hidden: true},
				{Key: "deviceid", Type: forms.TypeText, Meta: forms.MetaDeviceID, Hidden: true},
				{Key: "intro", Type: forms.TypeNote, Label: T("本问卷匿名填写，请如实回答。", "This survey is anonymous.")},
				{Key: "basic", Type: forms.TypeGroup, Layout: forms.LayoutInline, Label: T("基本情况", "About you"), Appearance: "field-list", Fields: []forms.Field{
					{Key: "stage", Type: forms.TypeSelectOne, ChoiceList: "stage", Label: T("学段", "Stage"), Required: true},
					{Key: "grade", Type: forms.TypeSelectOne, ChoiceList: "grade", Label: T("年级", "Grade"), Required: true, Appearance: "minimal", ChoiceFilter: "choice.stage == answers.stage"},
					{Key: "sex", Type: forms.TypeSelectOne, ChoiceList: "sex", Label: T("性别", "Sex"), Required: true},
				}},
				{Key: "hw_time", Type: forms.TypeSelectOne, ChoiceList: "hw", Label: T("你每天完成书面作业大约需要多长时间？", "Daily homework time"), Required: true},
				{Key: "sleep", Type: forms.TypeDecimal, Label: T("你平均每天睡眠多少小时？", "Hours of sleep"), Hint: ZH("精确到 0.5 小时"), Required: true,
					Constraints: []forms.Constraint{{Expr: "self >= 4 && self <= 12", Message: ZH("睡眠时间应在 4–12 小时之间")}}},
				{Key: "tutoring", Type: forms.TypeSelectOne, ChoiceList: "yn", Label: T("你参加校外学科类培训吗？", "Private tutoring?"), Required: true},
				{Key: "tutoring_subjects", Type: forms.TypeSelectMultiple, ChoiceList: "subjects", Label: T("参加哪些科目？", "Which subjects?"), Required: true,
					Relevant: "answers.tutoring == 'yes'", Constraints: []forms.Constraint{{Expr: "count(self) <= 3", Message: ZH("最多选 3 项")}}},
				{Key: "sport_days", Type: forms.TypeInteger, Label: T("每周有几天参加 1 小时以上体育活动？", "Days with 1h+ of sport"), Required: true,
					Constraints: []forms.Constraint{{Expr: "self >= 0 && self <= 7"}}},
				{Key: "overload", Type: forms.TypeText, Calculation: "(answers.hw_time == 'gt120' || answers.sleep < 8 ? 'yes' : 'no')"},
				{Key: "sleep_note", Type: forms.TypeNote, Label: ZH("你每天睡眠 ${answers.sleep} 小时，教育部要求初中生不少于 9 小时。"),
					Relevant: "answers.stage == 'junior' && answers.sleep < 9"},
				{Key: "wish", Type: forms.TypeText, Label: T("你对减轻课业负担有什么建议？", "Suggestions"), Constraints: []forms.Constraint{{Expr: "len(self) <= 200"}}},
			},
			check: func(t *testing.T, res *forms.XLSFormImport) {
				d := res.Definition
				if d.ID != "student_burden_2024" || d.Version != 2024101501 || d.Title != ZH("学生课业负担调查（2024 秋）") || d.TitleField != "instance_name" {
					t.Errorf("settings: %s %d %v %s", d.ID, d.Version, d.Title, d.TitleField)
				}
			},
			warnings: []string{},
			records: []recordCase{
				{"Valid", []any{a("start", "2024-10-15T08:00:00+08:00"), a("end", "2024-10-15T08:12:00+08:00"), a("today", "2024-10-15"), a("deviceid", uuid1),
					a("stage", "junior"), a("grade", "g8"), a("sex", "f"), a("hw_time", "90_120"), a("sleep", "7.5"), a("tutoring", "yes"),
					a("tutoring_subjects", []any{"math", "english"}), a("sport_days", 3.0), a("wish", "希望作业少一点")}, nil,
					map[string]any{"overload": "yes"}},
				{"Broken", []any{a("stage", "primary"), a("grade", "g8"), a("sex", "f"), a("hw_time", "lt60"), a("sleep", "15"), a("tutoring", "no"),
					a("tutoring_subjects", []any{"math"}), a("sport_days", 8.0), a("overload", "no")}, forms.Errors{
					"answers.grade":             {ZH: "“g8”不是可选项", EN: `"g8" is not one of the choices`},
					"answers.sleep":             ZH("睡眠时间应在 4–12 小时之间"),
					"answers.tutoring_subjects": notApplicable,
					"answers.sport_days":        {ZH: "不符合填写规则", EN: "does not satisfy the rule"},
				}, nil},
			},
		},
		{
			name: "ParentSatisfaction",
			wb:   parentSatisfaction(),
			opts: forms.XLSFormOptions{FileName: "家长满意度调查.xlsx"},
			check: func(t *testing.T, res *forms.XLSFormImport) {
				d := res.Definition
				if !res.VersionDerived || d.ID != "parent_satisfaction" {
					t.Errorf("id %s, derived %v", d.ID, res.VersionDerived)
				}
				ans := answersOf(d)
				if got := ans[5]; got.Key != "satisfaction" || got.Appearance != "table-list" || len(got.Fields) != 4 || got.Fields[0].Appearance != "likert" {
					t.Errorf("satisfaction group %s", jsonOf(got))
				}
				if got := ans[6]; got.Type != forms.TypeRange || got.Appearance != "rating" || got.Parameters["end"] != "10" {
					t.Errorf("overall %s", jsonOf(got))
				}
				if got := ans[7]; got.Type != forms.TypeDecimal || got.Calculation != "(number(answers.teaching) + number(answers.safety) + number(answers.canteen) + number(answers.homework)) / 4" {
					t.Errorf("avg %s", jsonOf(got))
				}
				if got := ans[8]; got.ChoiceList != "channel_or_other" || !got.OrOther || got.Hint != ZH("可多选") {
					t.Errorf("channels %s", jsonOf(got))
				}
				last := d.Fields[len(d.Fields)-1]
				if last.Calculation != "concat('家长-', choice_label(answers.child_grade, 'grade'))" {
					t.Errorf("instance_name %q", last.Calculation)
				}
			},
			records: []recordCase{
				{"Valid", []any{a("relation", "mother"), a("child_grade", "g2"), a("phone", "13912345678"), a("teaching", "5"), a("safety", "4"),
					a("canteen", "3"), a("homework", "4"), a("overall", 8.0), map[string]any{"qid": "channels", "value": []any{"wechat", "other"}, "other_text": "班主任电话"}},
					nil, map[string]any{"avg": "4"}},
				{"Broken", []any{a("child_grade", "g2"), a("phone", "1391234"), a("teaching", "6"), a("overall", 11.0), a("complaint", "食堂太咸")}, forms.Errors{
					"answers.relation":  ZH("请选择您与孩子的关系"),
					"answers.phone":     ZH("请填写 11 位手机号"),
					"answers.teaching":  {ZH: "“6”不是可选项", EN: `"6" is not one of the choices`},
					"answers.safety":    {ZH: "此项必填", EN: "required"},
					"answers.canteen":   {ZH: "此项必填", EN: "required"},
					"answers.homework":  {ZH: "此项必填", EN: "required"},
					"answers.overall":   {ZH: "应在 1 到 10 之间，步长 1", EN: "must be between 1 and 10 in steps of 1"},
					"answers.channels":  {ZH: "此项必填", EN: "required"},
					"answers.complaint": notApplicable,
				}, nil},
			},
		},
		{
			name: "CanteenSafety",
			wb:   canteenSafety(),
			answers: func() []forms.Field {
				pass := func(key, zh string) forms.Field {
					return forms.Field{Key: key, Type: forms.TypeSelectOne, ChoiceList: "pass", Label: ZH(zh), Required: true}
				}
				photo := func(key, of string) forms.Field {
					return forms.Field{Key: key, Type: forms.TypePhoto, Label: ZH("请拍摄问题照片"), MaxCount: intp(1), RequiredIf: "answers." + of + " == 'fail'", Relevant: "answers." + of + " == 'fail'"}
				}
				return []forms.Field{
					{Key: "today", Type: forms.TypeDate, Meta: forms.MetaToday, Hidden: true},
					{Key: "inspector", Type: forms.TypeText, Meta: forms.MetaUsername, Hidden: true},
					{Key: "check_date", Type: forms.TypeDate, Label: ZH("检查日期"), Required: true, Default: "2024-10-15",
						Constraints: []forms.Constraint{{Expr: "self <= today", Message: ZH("检查日期不能晚于今天")}}},
					{Key: "location", Type: forms.TypeGeopoint, Label: ZH("食堂位置"), Hint: ZH("在食堂门口定位")},
					{Key: "purchase", Type: forms.TypeGroup, Layout: forms.LayoutInline, Label: ZH("一、原料采购"), Appearance: "field-list", Fields: []forms.Field{
						pass("supplier", "定点采购，索证索票齐全"), photo("supplier_photo", "supplier"),
						pass("storage", "库房物品离地离墙，出入库台账完整"), photo("storage_photo", "storage"),
					}},
					{Key: "cooking", Type: forms.TypeGroup, Layout: forms.LayoutInline, Label: ZH("二、加工制作"), Appearance: "field-list", Fields: []forms.Field{
						pass("raw_cooked", "生熟分开"), photo("raw_cooked_photo", "raw_cooked"),
						{Key: "sample_hours", Type: forms.TypeInteger, Label: ZH("食品留样时长（小时）"), Hint: ZH("应不少于 48 小时"), Required: true,
							Constraints: []forms.Constraint{{Expr: "self >= 48", Message: ZH("留样应不少于 48 小时")}}},
						{Key: "sample_grams", Type: forms.TypeDecimal, Label: ZH("每样留样量（克）"), Required: true,
							Constraints: []forms.Constraint{{Expr: "self >= 125", Message: ZH("每样不少于 125 克")}}},
					}},
					{Key: "staff_count", Type: forms.TypeInteger, Label: ZH("从业人员人数"), Required: true, Constraints: []forms.Constraint{{Expr: "self > 0 && self < 100"}}},
					{Key: "staff", Type: forms.TypeRepeat, Label: ZH("从业人员健康证"), RepeatCount: "answers.staff_count", Fields: []forms.Field{
						{Key: "staff_name", Type: forms.TypeText, Label: ZH("姓名"), Required: true},
						{Key: "cert_expiry", Type: forms.TypeDate, Label: ZH("健康证有效期至"), Required: true,
							Constraints: []forms.Constraint{{Expr: "self >= answers.check_date", Message: ZH("健康证已过期")}}},
						{Key: "expired", Type: forms.TypeDecimal, Calculation: "(cert_expiry < answers.check_date ? 1 : 0)"},
					}},
					{Key: "fails", Type: forms.TypeDecimal, Calculation: "(answers.supplier == 'fail' ? 1 : 0) + (answers.storage == 'fail' ? 1 : 0) + (answers.raw_cooked == 'fail' ? 1 : 0)"},
					{Key: "result", Type: forms.TypeText, Calculation: "(answers.fails == 0 ? '合格' : (answers.fails == 1 ? '基本合格' : '不合格'))"},
					{Key: "result_note", Type: forms.TypeNote, Label: ZH("检查结论：${answers.result}（不合格 ${answers.fails} 项）")},
					{Key: "rectify", Type: forms.TypeText, Label: ZH("整改要求"), RequiredIf: "answers.fails > 0", Relevant: "answers.fails > 0"},
					{Key: "signature", Type: forms.TypePhoto, Label: ZH("食堂负责人签字"), Required: true, MaxCount: intp(1), Appearance: "signature"},
				}
			}(),
			warnings: []string{},
			records: []recordCase{
				{"AllPass", []any{a("today", "2024-10-15"), a("inspector", "chen"), a("check_date", "2024-10-15"), a("supplier", "pass"), a("storage", "pass"),
					a("raw_cooked", "na"), a("sample_hours", 48.0), a("sample_grams", "150"), a("staff_count", 2.0), a("staff", []any{
						map[string]any{"staff_name": "王师傅", "cert_expiry": "2025-03-01"}, map[string]any{"staff_name": "李阿姨", "cert_expiry": "2025-06-30"}}),
					a("signature", []any{photo1})}, nil, map[string]any{"fails": "0", "result": "合格"}},
				{"ProblemsFound", []any{a("check_date", "2024-10-15"), a("supplier", "fail"), a("storage", "fail"), a("raw_cooked", "pass"),
					a("sample_hours", 24.0), a("sample_grams", "100"), a("staff_count", 2.0), a("staff", []any{
						map[string]any{"staff_name": "王师傅", "cert_expiry": "2024-09-30"}}), a("signature", []any{photo1}), a("storage_photo", []any{photo1})},
					forms.Errors{
						"answers.supplier_photo":       {ZH: "此项必填", EN: "required"},
						"answers.sample_hours":         ZH("留样应不少于 48 小时"),
						"answers.sample_grams":         ZH("每样不少于 125 克"),
						"answers.staff":                {ZH: "应有 2 行", EN: "must have 2 row(s)"},
						"answers.staff[0].cert_expiry": ZH("健康证已过期"),
						"answers.rectify":              {ZH: "此项必填", EN: "required"},
					}, map[string]any{"fails": "2", "result": "不合格"}},
				{"FutureDate", []any{a("check_date", "2024-10-16")}, nil, nil},
			},
		},
	}
	// FutureDate is refused with the message of the constraint; the rest of
	// that response is missing, which the other cases cover.
	tests[2].records[2].want = forms.Errors{
		"answers.check_date": ZH("检查日期不能晚于今天"), "answers.supplier": {ZH: "此项必填", EN: "required"},
		"answers.storage": {ZH: "此项必填", EN: "required"}, "answers.raw_cooked": {ZH: "此项必填", EN: "required"},
		"answers.sample_hours": {ZH: "此项必填", EN: "required"}, "answers.sample_grams": {ZH: "此项必填", EN: "required"},
		"answers.staff_count": {ZH: "此项必填", EN: "required"}, "answers.signature": {ZH: "此项必填", EN: "required"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { runFeature(t, tc) })
	}
	if *updateFixtures {
		for name, wb := range map[string]sheets{"student_burden": studentBurden(), "parent_satisfaction": parentSatisfaction(), "canteen_safety": canteenSafety()} {
			if err := os.WriteFile(filepath.Join("testdata", "xlsform", name+".xlsx"), mustWorkbook(t, wb), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// TestXLSFormFixtures imports the committed workbooks, as an office would
// publish them with fieldsyncctl.
func TestXLSFormFixtures(t *testing.T) {
	files, _ := filepath.Glob("testdata/xlsform/*.xlsx")
	if len(files) < 3 {
		t.Fatalf("fixtures: %v", files)
	}
	for _, file := range files {
		b, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		res, err := forms.ImportXLSFormFile(bytes.NewReader(b), forms.XLSFormOptions{FileName: filepath.Base(file)})
		if err != nil {
			t.Errorf("%s: %v", file, err)
			continue
		}
		if len(answersOf(res.Definition)) < 5 {
			t.Errorf("%s: %d questions", file, len(answersOf(res.Definition)))
		}
	}
}
