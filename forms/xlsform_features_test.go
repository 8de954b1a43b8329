package forms_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/fieldsync/fieldsync/forms"
	"github.com/xuri/excelize/v2"
)

// recordCase is a response to validate: its answers and the exact errors.
type recordCase struct {
	name    string
	answers []any
	want    forms.Errors
	// computed lists answers the stored record must hold (qid → value).
	computed map[string]any
}

// featureCase is one feature of the XLSForm convention: a workbook, what
// its import must give field by field, and responses to validate.
type featureCase struct {
	name     string
	wb       sheets
	opts     forms.XLSFormOptions
	answers  []forms.Field                                // the answers group's fields, when set
	check    func(t *testing.T, res *forms.XLSFormImport) // more checks on the result
	warnings []string                                     // exactly these warnings, in order, when set
	records  []recordCase                                 // responses to validate
	env      forms.Env                                    // the environment of records
}

var (
	T        = func(zh, en string) forms.Text { return forms.Text{ZH: zh, EN: en} }
	ZH       = func(zh string) forms.Text { return forms.Text{ZH: zh} }
	EN       = func(en string) forms.Text { return forms.Text{EN: en} }
	ynChoice = [][]any{{"list_name", "name", "label"}, {"yn", "yes", "是"}, {"yn", "no", "否"}}
	settings = func(id string, v any) [][]any { return [][]any{{"form_id", "version"}, {id, v}} }
	env      = forms.Env{Today: "2024-10-15", Now: "2024-10-15T09:30:00+08:00"}
)

// importCase imports a case's workbook and fails the test on problems.
func importCase(t *testing.T, tc featureCase) *forms.XLSFormImport {
	t.Helper()
	res, err := forms.ImportXLSFormFile(bytes.NewReader(mustWorkbook(t, tc.wb)), tc.opts)
	if err != nil {
		var xe *forms.XLSFormError
		if errors.As(err, &xe) {
			var ps []string
			for _, p := range xe.Problems {
				ps = append(ps, p.String())
			}
			t.Fatalf("import:\n  %s", strings.Join(ps, "\n  "))
		}
		t.Fatal(err)
	}
	return res
}

func warningStrings(ws []forms.XLSFormProblem) []string {
	out := []string{}
	for _, w := range ws {
		out = append(out, w.String())
	}
	return out
}

func answersOf(d *forms.Definition) []forms.Field {
	for _, f := range d.Fields {
		if f.Key == "answers" {
			return f.Fields
		}
	}
	return nil
}

func runFeature(t *testing.T, tc featureCase) {
	res := importCase(t, tc)
	d := res.Definition
	if tc.answers != nil {
		got := answersOf(d)
		for i := range max(len(got), len(tc.answers)) {
			switch {
			case i >= len(got):
				t.Errorf("field %d missing: want %s", i, jsonOf(tc.answers[i]))
			case i >= len(tc.answers):
				t.Errorf("extra field %d: %s", i, jsonOf(got[i]))
			case !reflect.DeepEqual(got[i], tc.answers[i]):
				t.Errorf("field %d:\n got %s\nwant %s", i, jsonOf(got[i]), jsonOf(tc.answers[i]))
			}
		}
	}
	if tc.warnings != nil {
		if got := warningStrings(res.Warnings); !reflect.DeepEqual(got, tc.warnings) {
			t.Errorf("warnings:\n got %s\nwant %s", strings.Join(got, "\n     "), strings.Join(tc.warnings, "\n     "))
		}
	}
	if tc.check != nil {
		tc.check(t, res)
	}
	roundTrip(t, d, tc.opts)
	if d.Version == 0 {
		d.Version = 1 // given when published
	}
	if err := d.Check(); err != nil {
		t.Fatalf("Check: %v", err)
	}
	e := tc.env
	if e.Today == "" {
		e = env
	}
	for _, rc := range tc.records {
		t.Run(rc.name, func(t *testing.T) {
			ev := d.Evaluate(response(rc.answers...), e)
			want := rc.want
			if want == nil {
				want = forms.Errors{}
			}
			if !reflect.DeepEqual(ev.Errors, want) {
				t.Errorf("errors:\n got %v\nwant %v", ev.Errors, want)
			}
			got := map[string]any{}
			for _, x := range ev.Values["answers"].([]any) {
				got[x.(map[string]any)["qid"].(string)] = x.(map[string]any)["value"]
			}
			for qid, want := range rc.computed {
				if !sameValue(got[qid], want) {
					t.Errorf("computed %s = %s, want %s", qid, jsonOf(got[qid]), jsonOf(want))
				}
			}
		})
	}
}

// roundTrip exports d as a workbook and imports it again: the definition
// must be the same.
func roundTrip(t *testing.T, d *forms.Definition, opts forms.XLSFormOptions) {
	t.Helper()
	ex, err := forms.ExportXLSForm(d)
	if err != nil {
		t.Fatalf("ExportXLSForm: %v", err)
	}
	files := map[string][]byte{}
	for k, v := range opts.Files {
		files[k] = v
	}
	for k, v := range ex.Files {
		files[k] = v
	}
	back, err := forms.ImportXLSFormFile(bytes.NewReader(ex.Workbook), forms.XLSFormOptions{Files: files})
	if err != nil {
		t.Fatalf("the exported workbook does not import: %v", err)
	}
	if got, want := jsonOf(back.Definition), jsonOf(d); got != want {
		t.Errorf("round trip:\n got %s\nwant %s", got, want)
	}
}

func jsonOf(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func sameValue(a, b any) bool { return jsonOf(a) == jsonOf(b) }

const (
	uuid1 = "0192b000-0000-7000-8000-000000000901"
	uuid2 = "0192b000-0000-7000-8000-000000000902"
)

var notApplicable = forms.Text{ZH: "此项不适用，应为空", EN: "not applicable here: must be empty"}

func TestImportXLSFormFeatures(t *testing.T) {
	tests := []featureCase{
		{
			name: "SettingsOptional",
			wb:   sheets{"survey": {{"type", "name", "label"}, {"text", "q1", "食堂名称"}}},
			opts: forms.XLSFormOptions{FileName: "uploads/Canteen Check (2024).xlsx"},
			check: func(t *testing.T, res *forms.XLSFormImport) {
				d := res.Definition
				if got, want := [3]any{d.ID, d.Version, res.VersionDerived}, [3]any{"canteen_check_2024", 0, true}; got != want {
					t.Errorf("id, version, derived = %v, want %v", got, want)
				}
				if got, want := d.Title, ZH("canteen_check_2024"); got != want {
					t.Errorf("title %v, want %v", got, want)
				}
			},
			warnings: []string{
				`settings, column form_id: no form_id: the form id "canteen_check_2024" comes from the file name`,
				"settings, column version: no version: publishing gives the next version number",
			},
			answers: []forms.Field{{Key: "q1", Type: forms.TypeText, Label: ZH("食堂名称")}},
		},
		{
			name: "SettingsEveryColumn",
			wb: sheets{
				"survey": {
					{"type", "name", "label", "choice_filter"},
					{"text", "school_name", "学校名称"},
					{"date", "visit_date", "检查日期"},
					{"select_one town", "town", "乡镇"},
					{"select_one village", "village", "村", "town = ${town}"},
				},
				"choices": {
					{"list_name", "name", "label", "town"},
					{"town", "t1", "城关镇"}, {"town", "t2", "河口乡"},
					{"village", "v1", "东村", "t1"}, {"village", "v1", "东村（河口）", "t2"}, {"village", "v2", "西村", "t2"},
				},
				"settings": {
					{"form_id", "version", "form_title::中文 (zh)", "form_title::English (en)", "default_language", "instance_name", "allow_choice_duplicates", "style", "submission_url", "sms_keyword"},
					{"Canteen-Check", "2024101501", "食堂检查", "Canteen check", "中文 (zh)", "concat(${school_name}, ' ', ${visit_date})", "yes", "pages", "https://example.org/submit", "cc"},
				},
			},
			check: func(t *testing.T, res *forms.XLSFormImport) {
				d := res.Definition
				if got, want := [5]any{d.ID, d.Version, d.Style, d.AllowChoiceDuplicates, d.TitleField}, [5]any{"canteen_check", 2024101501, "pages", true, "instance_name"}; got != want {
					t.Errorf("settings = %v, want %v", got, want)
				}
				if got, want := d.Title, T("食堂检查", "Canteen check"); got != want {
					t.Errorf("title %v, want %v", got, want)
				}
				last := d.Fields[len(d.Fields)-1]
				if want := (forms.Field{Key: "instance_name", Type: forms.TypeText, Hidden: true, Label: T("记录标题", "Record title"),
					Calculation: "concat(answers.school_name, ' ', answers.visit_date)"}); !reflect.DeepEqual(last, want) {
					t.Errorf("instance_name field %s", jsonOf(last))
				}
			},
			warnings: []string{
				`settings row 1, column sms_keyword: unknown column "sms_keyword": ignored`,
				`settings row 2, column form_id: the form id "Canteen-Check" is written "canteen_check", as fieldsync ids are`,
				"settings row 2, column submission_url: the setting submission_url has no meaning in fieldsync: ignored",
			},
			records: []recordCase{
				{"TitleAndDuplicateChoice", []any{a("school_name", "东河县第二初级中学"), a("visit_date", "2024-10-15"), a("town", "t2"), a("village", "v1")}, nil, nil},
				{"FilteredOut", []any{a("town", "t1"), a("village", "v2")}, forms.Errors{"answers.village": {ZH: "“v2”不是可选项", EN: `"v2" is not one of the choices`}}, nil},
			},
		},
		{
			name: "NumbersRangeRankAcknowledgeBarcodeHidden",
			wb: sheets{
				"survey": {
					{"type", "name", "label", "parameters", "default", "appearance"},
					{"integer", "pupils", "学生人数"},
					{"decimal", "area", "面积"},
					{"range", "score", "满意度", "start=1 end=5 step=1", "", "rating"},
					{"range", "temp", "温度", "start=0 end=1 step=0.25"},
					{"rank priorities", "priorities", "排序", "randomize=true"},
					{"acknowledge", "ack", "我已阅读"},
					{"barcode", "code", "扫码"},
					{"hidden", "source", "", "", "county"},
				},
				"choices":  {{"list_name", "name", "label"}, {"priorities", "safety", "安全"}, {"priorities", "food", "饮食"}, {"priorities", "study", "学业"}},
				"settings": settings("numbers", 1),
			},
			answers: []forms.Field{
				{Key: "pupils", Type: forms.TypeInteger, Label: ZH("学生人数")},
				{Key: "area", Type: forms.TypeDecimal, Label: ZH("面积")},
				{Key: "score", Type: forms.TypeRange, Label: ZH("满意度"), Appearance: "rating", Parameters: map[string]string{"start": "1", "end": "5", "step": "1"}},
				{Key: "temp", Type: forms.TypeRange, Label: ZH("温度"), Parameters: map[string]string{"start": "0", "end": "1", "step": "0.25"}},
				{Key: "priorities", Type: forms.TypeRank, Label: ZH("排序"), ChoiceList: "priorities", Parameters: map[string]string{"randomize": "true"}},
				{Key: "ack", Type: forms.TypeAcknowledge, Label: ZH("我已阅读")},
				{Key: "code", Type: forms.TypeBarcode, Label: ZH("扫码")},
				{Key: "source", Type: forms.TypeText, Hidden: true, Default: "county"},
			},
			records: []recordCase{
				{"Valid", []any{a("pupils", 320.0), a("area", "12.5"), a("score", 4.0), a("temp", "0.75"), a("priorities", []any{"food", "safety", "study"}), a("ack", "OK"), a("code", "6901234567892"), a("source", "county")}, nil, nil},
				{"Broken", []any{a("pupils", 3.5), a("score", 6.0), a("temp", 0.3), a("priorities", []any{"food", "safety"}), a("ack", "yes")}, forms.Errors{
					"answers.pupils":     {ZH: "应为整数", EN: "must be a whole number"},
					"answers.score":      {ZH: "应在 1 到 5 之间，步长 1", EN: "must be between 1 and 5 in steps of 1"},
					"answers.temp":       {ZH: "应在 0 到 1 之间，步长 0.25", EN: "must be between 0 and 1 in steps of 0.25"},
					"answers.priorities": {ZH: "排序应包含每个选项各一次", EN: "must order every choice exactly once"},
					"answers.ack":        {ZH: "确认项的值只能是 \"OK\"", EN: `must be "OK"`},
				}, nil},
			},
		},
		{
			name: "SelectSpellingsAndOrOther",
			wb: sheets{
				"survey": {
					{"type", "name", "label"},
					{"select one from yn", "q1", "Q1"},
					{"select all that apply from fruit", "q2", "Q2"},
					{"select_one yn or_other", "q3", "Q3"},
					{"select_multiple fruit or_other", "q4", "Q4"},
					{"select1 yn", "q5", "Q5"},
				},
				"choices":  {{"list name", "name", "label"}, {"yn", "yes", "Yes"}, {"yn", "no", "No"}, {"fruit", "apple", "Apple"}, {"fruit", "pear", "Pear"}, {"fruit", "other", "Something else"}},
				"settings": settings("selects", 1),
			},
			answers: []forms.Field{
				{Key: "q1", Type: forms.TypeSelectOne, ChoiceList: "yn", Label: EN("Q1")},
				{Key: "q2", Type: forms.TypeSelectMultiple, ChoiceList: "fruit", Label: EN("Q2")},
				{Key: "q3", Type: forms.TypeSelectOne, ChoiceList: "yn_or_other", OrOther: true, Label: EN("Q3")},
				{Key: "q4", Type: forms.TypeSelectMultiple, ChoiceList: "fruit", OrOther: true, Label: EN("Q4")},
				{Key: "q5", Type: forms.TypeSelectOne, ChoiceList: "yn", Label: EN("Q5")},
			},
			check: func(t *testing.T, res *forms.XLSFormImport) {
				if got := res.Definition.Choices["yn_or_other"]; len(got) != 3 || !reflect.DeepEqual(got[2], forms.Choice{Value: "other", Label: T("其他", "Other")}) {
					t.Errorf("yn_or_other = %v", got)
				}
			},
			records: []recordCase{
				{"Other", []any{a("q3", "other"), map[string]any{"qid": "q4", "value": []any{"other"}, "other_text": "桃"}}, nil, nil},
			},
		},
		{
			name: "GeoAndAttachments",
			wb: sheets{
				"survey": {
					{"type", "name", "label", "parameters"},
					{"geopoint", "where", "位置", "capture-accuracy=10"},
					{"geotrace", "route", "路线"},
					{"geoshape", "yard", "操场"},
					{"image", "photo", "照片", "max-pixels=1024"},
					{"photo", "photo2", "照片2"},
					{"audio", "voice", "录音"},
					{"video", "clip", "视频"},
					{"file", "report", "报告"},
				},
				"settings": settings("geo", 1),
			},
			answers: []forms.Field{
				{Key: "where", Type: forms.TypeGeopoint, Label: ZH("位置"), Parameters: map[string]string{"capture-accuracy": "10"}},
				{Key: "route", Type: forms.TypeGeotrace, Label: ZH("路线")},
				{Key: "yard", Type: forms.TypeGeoshape, Label: ZH("操场")},
				{Key: "photo", Type: forms.TypePhoto, Label: ZH("照片"), MaxCount: intp(1), Parameters: map[string]string{"max-pixels": "1024"}},
				{Key: "photo2", Type: forms.TypePhoto, Label: ZH("照片2"), MaxCount: intp(1)},
				{Key: "voice", Type: forms.TypeAudio, Label: ZH("录音"), MaxCount: intp(1)},
				{Key: "clip", Type: forms.TypeVideo, Label: ZH("视频"), MaxCount: intp(1)},
				{Key: "report", Type: forms.TypeFile, Label: ZH("报告"), MaxCount: intp(1)},
			},
			records: []recordCase{
				{"Valid", []any{
					a("where", map[string]any{"lat": 30.1, "lng": 114.2, "accuracy_m": 5.0}),
					a("route", []any{map[string]any{"lat": 30.1, "lng": 114.2}, map[string]any{"lat": 30.2, "lng": 114.3}}),
					a("yard", []any{map[string]any{"lat": 30.1, "lng": 114.2}, map[string]any{"lat": 30.2, "lng": 114.3}, map[string]any{"lat": 30.1, "lng": 114.3}}),
					a("photo", []any{uuid1}), a("voice", []any{uuid2}), a("report", []any{uuid1}),
				}, nil, nil},
				{"Broken", []any{
					a("route", []any{map[string]any{"lat": 30.1, "lng": 114.2}}),
					a("yard", []any{map[string]any{"lat": 91.0, "lng": 114.2}, map[string]any{"lat": 30.2, "lng": 114.3}, map[string]any{"lat": 30.1, "lng": 114.3}}),
					a("voice", []any{uuid1, uuid2}), a("clip", []any{"clip.mp4"}),
				}, forms.Errors{
					"answers.route": {ZH: "轨迹应为至少 2 个位置 {lat, lng, accuracy_m} 的列表", EN: "must be a list of at least 2 locations {lat, lng, accuracy_m}"},
					"answers.yard":  {ZH: "区域应为至少 3 个位置 {lat, lng, accuracy_m} 的列表", EN: "must be a list of at least 3 locations {lat, lng, accuracy_m}"},
					"answers.voice": {ZH: "最多 1 个文件", EN: "at most 1 file(s)"},
					"answers.clip":  {ZH: "应为 UUID", EN: "must be a UUID"},
				}, nil},
			},
		},
		{
			name: "Metadata",
			wb: sheets{
				"survey": {
					{"type", "name", "label"},
					{"start", "start"}, {"end", "end"}, {"today", "today"}, {"deviceid", "deviceid"},
					{"username", "username"}, {"phonenumber", "phonenumber"}, {"email", "email"},
					{"simserial", "simserial"}, {"audit", "audit"}, {"text", "q", "问题"},
				},
				"settings": settings("meta", 1),
			},
			answers: []forms.Field{
				{Key: "start", Type: forms.TypeDateTime, Meta: forms.MetaStart, Hidden: true},
				{Key: "end", Type: forms.TypeDateTime, Meta: forms.MetaEnd, Hidden: true},
				{Key: "today", Type: forms.TypeDate, Meta: forms.MetaToday, Hidden: true},
				{Key: "deviceid", Type: forms.TypeText, Meta: forms.MetaDeviceID, Hidden: true},
				{Key: "username", Type: forms.TypeText, Meta: forms.MetaUsername, Hidden: true},
				{Key: "phonenumber", Type: forms.TypeText, Meta: forms.MetaPhoneNumber, Hidden: true},
				{Key: "email", Type: forms.TypeText, Meta: forms.MetaEmail, Hidden: true},
				{Key: "simserial", Type: forms.TypeText, Meta: forms.MetaSimSerial, Hidden: true},
				{Key: "audit", Type: forms.TypeTextList, Meta: forms.MetaAudit, Hidden: true},
				{Key: "q", Type: forms.TypeText, Label: ZH("问题")},
			},
			warnings: []string{"survey row 9, column type: phones no longer reveal the simserial: the value stays empty"},
			records: []recordCase{
				{"FilledByThePhone", []any{a("start", "2024-10-15T09:00:00+08:00"), a("end", "2024-10-15T09:30:00+08:00"), a("today", "2024-10-15"),
					a("deviceid", uuid1), a("username", "chen"), a("audit", []any{"2024-10-15T09:00:00+08:00 form_start"})}, nil, nil},
				{"Broken", []any{a("start", "9点")}, forms.Errors{"answers.start": {ZH: "应为带时区的时间，如 2024-10-15T08:00:00+08:00", EN: "must be a time with offset such as 2024-10-15T08:00:00+08:00"}}, nil},
			},
		},
		{
			name: "SelectFromFile",
			wb: sheets{
				"survey": {
					{"type", "name", "label", "choice_filter", "parameters"},
					{"select_one_from_file towns.csv", "town", "乡镇"},
					{"select_one_from_file schools.csv", "school", "学校", "town = ${town}"},
					{"select_multiple_from_file subjects.xml", "subjects", "科目"},
					{"select_one_from_file schools.csv", "school_code", "学校代码", "", "value=code label=label"},
				},
				"settings": settings("from_file", 1),
			},
			opts: forms.XLSFormOptions{Files: map[string][]byte{
				"towns.csv":    []byte("\xEF\xBB\xBFname,label\nt1,城关镇\nt2,河口乡\n"),
				"schools.csv":  []byte("name,label,town,code\ns1,城关小学,t1,A01\ns2,河口中学,t2,B02\n"),
				"subjects.xml": []byte("<root><item><name>math</name><label>数学</label></item><item><name>pe</name><label>体育</label></item></root>"),
			}},
			check: func(t *testing.T, res *forms.XLSFormImport) {
				want := map[string][]forms.Choice{
					"file_towns_csv":              {{Value: "t1", Label: ZH("城关镇")}, {Value: "t2", Label: ZH("河口乡")}},
					"file_schools_csv":            {{Value: "s1", Label: ZH("城关小学"), Props: map[string]string{"town": "t1", "code": "A01"}}, {Value: "s2", Label: ZH("河口中学"), Props: map[string]string{"town": "t2", "code": "B02"}}},
					"file_subjects_xml":           {{Value: "math", Label: ZH("数学")}, {Value: "pe", Label: ZH("体育")}},
					"file_schools_csv_code_label": {{Value: "A01", Label: ZH("城关小学"), Props: map[string]string{"town": "t1"}}, {Value: "B02", Label: ZH("河口中学"), Props: map[string]string{"town": "t2"}}},
				}
				for name, list := range want {
					if got := res.Definition.Choices[name]; !reflect.DeepEqual(got, list) {
						t.Errorf("%s = %s, want %s", name, jsonOf(got), jsonOf(list))
					}
				}
			},
			records: []recordCase{
				{"Valid", []any{a("town", "t2"), a("school", "s2"), a("subjects", []any{"pe"}), a("school_code", "A01")}, nil, nil},
				{"OtherTown", []any{a("town", "t1"), a("school", "s2")}, forms.Errors{"answers.school": {ZH: "“s2”不是可选项", EN: `"s2" is not one of the choices`}}, nil},
			},
		},
		{
			name: "CalculationsTriggersAndOnce",
			wb: sheets{
				"survey": {
					{"type", "name", "label", "calculation", "trigger", "default"},
					{"integer", "boys", "男生"},
					{"integer", "girls", "女生"},
					{"calculate", "total", "", "${boys} + ${girls}"},
					{"calculate", "share", "", "round(${girls} div ${total} * 100, 1)"},
					{"calculate", "stamp", "", "now()", "${boys}"},
					{"calculate", "first_seen", "", "once(format-date(today(), '%Y年%n月%e日'))"},
					{"date", "visit", "日期", "", "", "today()"},
					{"note", "summary", "共 ${total} 人，女生占 ${share}%"},
				},
				"settings": settings("calcs", 1),
			},
			answers: []forms.Field{
				{Key: "boys", Type: forms.TypeInteger, Label: ZH("男生")},
				{Key: "girls", Type: forms.TypeInteger, Label: ZH("女生")},
				{Key: "total", Type: forms.TypeDecimal, Calculation: "answers.boys + answers.girls"},
				{Key: "share", Type: forms.TypeDecimal, Calculation: "round(answers.girls / answers.total * 100, 1)"},
				{Key: "stamp", Type: forms.TypeText, Calculation: "now", Trigger: []string{"answers.boys"}, Once: true},
				{Key: "first_seen", Type: forms.TypeText, Calculation: "(format_date(today, '%Y年%n月%e日'))", Once: true},
				{Key: "visit", Type: forms.TypeDate, Label: ZH("日期"), Calculation: "today", Once: true},
				{Key: "summary", Type: forms.TypeNote, Label: ZH("共 ${answers.total} 人，女生占 ${answers.share}%")},
			},
			records: []recordCase{
				{"Computed", []any{a("boys", 12.0), a("girls", 13.0)}, nil, map[string]any{"total": "25", "share": "52", "stamp": "2024-10-15T09:30:00+08:00", "first_seen": "2024年10月15日", "visit": "2024-10-15"}},
				{"OnceKeepsThePhonesValue", []any{a("boys", 12.0), a("girls", 13.0), a("stamp", "2024-10-14T08:00:00+08:00"), a("visit", "2024-10-14")}, nil, map[string]any{"stamp": "2024-10-14T08:00:00+08:00", "visit": "2024-10-14"}},
				{"WrongTotal", []any{a("boys", 12.0), a("girls", 13.0), a("total", 24.0)}, forms.Errors{"answers.total": {ZH: "此项由系统计算，应为 25", EN: "must equal the computed value 25"}}, nil},
			},
		},
		{
			name: "GroupsAndNestedRepeats",
			wb: sheets{
				"survey": {
					{"type", "name", "label", "appearance", "repeat_count", "relevant", "calculation", "constraint"},
					{"begin group", "basic", "基本信息", "field-list"},
					{"integer", "classes", "班级数"},
					{"begin group", "head", "校长"},
					{"text", "name", "校长姓名"},
					{"end group"},
					{"end group"},
					{"begin group", "deputy", "副校长"},
					{"text", "name", "副校长姓名"},
					{"end group"},
					{"begin repeat", "class", "班级", "", "${classes}"},
					{"text", "class_name", "班级名称"},
					{"calculate", "no", "", "", "", "", "position(..)"},
					{"begin repeat", "pupil", "学生"},
					{"integer", "age", "年龄", "", "", "", "", ". >= 5 and . <= 20"},
					{"end repeat"},
					{"calculate", "ages", "", "", "", "", "sum(${age})"},
					{"end repeat"},
					{"calculate", "pupils", "", "", "", "", "count(${class})"},
				},
				"settings": settings("structure", 1),
			},
			warnings: []string{`survey row 9, column name: the name "name" is stored as "deputy_name"`},
			answers: []forms.Field{
				{Key: "basic", Type: forms.TypeGroup, Layout: forms.LayoutInline, Label: ZH("基本信息"), Appearance: "field-list", Fields: []forms.Field{
					{Key: "classes", Type: forms.TypeInteger, Label: ZH("班级数")},
					{Key: "head", Type: forms.TypeGroup, Layout: forms.LayoutInline, Label: ZH("校长"), Fields: []forms.Field{{Key: "name", Type: forms.TypeText, Label: ZH("校长姓名")}}},
				}},
				{Key: "deputy", Type: forms.TypeGroup, Layout: forms.LayoutInline, Label: ZH("副校长"), Fields: []forms.Field{{Key: "deputy_name", Type: forms.TypeText, Label: ZH("副校长姓名")}}},
				{Key: "class", Type: forms.TypeRepeat, Label: ZH("班级"), RepeatCount: "answers.classes", Fields: []forms.Field{
					{Key: "class_name", Type: forms.TypeText, Label: ZH("班级名称")},
					{Key: "no", Type: forms.TypeDecimal, Calculation: "position"},
					{Key: "pupil", Type: forms.TypeRepeat, Label: ZH("学生"), Fields: []forms.Field{
						{Key: "age", Type: forms.TypeInteger, Label: ZH("年龄"), Constraints: []forms.Constraint{{Expr: "self >= 5 && self <= 20"}}},
					}},
					{Key: "ages", Type: forms.TypeDecimal, Calculation: "sum(pupil, 'age')"},
				}},
				{Key: "pupils", Type: forms.TypeDecimal, Calculation: "count(answers.class)"},
			},
			records: []recordCase{
				{"Valid", []any{a("classes", 2.0), a("name", "王校长"), a("deputy_name", "李副校长"), a("class", []any{
					map[string]any{"class_name": "一班", "pupil": []any{map[string]any{"age": 7.0}, map[string]any{"age": 8.0}}},
					map[string]any{"class_name": "二班", "pupil": []any{map[string]any{"age": 9.0}}},
				})}, nil, map[string]any{"pupils": "2", "class": []any{
					map[string]any{"class_name": "一班", "no": "1", "ages": "15", "pupil": []any{map[string]any{"age": 7.0}, map[string]any{"age": 8.0}}},
					map[string]any{"class_name": "二班", "no": "2", "ages": "9", "pupil": []any{map[string]any{"age": 9.0}}},
				}}},
				{"WrongRowsAndAge", []any{a("classes", 3.0), a("class", []any{
					map[string]any{"class_name": "一班", "pupil": []any{map[string]any{"age": 70.0}}},
				})}, forms.Errors{
					"answers.class":                 {ZH: "应有 3 行", EN: "must have 3 row(s)"},
					"answers.class[0].pupil[0].age": {ZH: "不符合填写规则", EN: "does not satisfy the rule"},
				}, nil},
			},
		},
		{
			name: "RulesMessagesDefaultsAndTexts",
			wb: sheets{
				"survey": {
					{"type", "name", "label", "hint", "required", "required_message", "relevant", "constraint", "constraint_message", "read_only", "default"},
					{"select_one yn", "has_canteen", "有食堂吗？", "", "yes", "请回答是否有食堂"},
					{"integer", "seats", "座位数", "${has_canteen} 时必填", "${has_canteen} = 'yes'", "", "${has_canteen} = 'yes'", ". > 0 and . < 5000", "座位数应在 1–4999 之间"},
					{"date", "licence", "许可证有效期", "", "", "", "", ". >= today()", "许可证已过期（${licence}）"},
					{"text", "inspector", "检查人", "", "", "", "", "", "", "yes", "陈立群"},
					{"date", "opened", "开办日期", "", "", "", "", "", "", "${seats} > 100", xlDate{t: time.Date(2019, 9, 1, 0, 0, 0, 0, time.UTC), id: 14}},
					{"datetime", "checked_at", "检查时间", "", "", "", "", "", "", "", xlDate{t: time.Date(2024, 10, 15, 9, 30, 0, 0, time.UTC), custom: "yyyy/m/d h:mm"}},
					{"time", "lunch", "午餐时间", "", "", "", "", "", "", "", xlDate{t: time.Date(1899, 12, 30, 11, 45, 0, 0, time.UTC), id: 20}},
					{"note", "thanks", "${inspector}，谢谢！"},
				},
				"choices":  ynChoice,
				"settings": settings("rules", 1),
			},
			answers: []forms.Field{
				{Key: "has_canteen", Type: forms.TypeSelectOne, ChoiceList: "yn", Label: ZH("有食堂吗？"), Required: true, RequiredMessage: ZH("请回答是否有食堂")},
				{Key: "seats", Type: forms.TypeInteger, Label: ZH("座位数"), Hint: ZH("${answers.has_canteen} 时必填"), RequiredIf: "answers.has_canteen == 'yes'",
					Relevant: "answers.has_canteen == 'yes'", Constraints: []forms.Constraint{{Expr: "self > 0 && self < 5000", Message: ZH("座位数应在 1–4999 之间")}}},
				{Key: "licence", Type: forms.TypeDate, Label: ZH("许可证有效期"), Constraints: []forms.Constraint{{Expr: "self >= today", Message: ZH("许可证已过期（${answers.licence}）")}}},
				{Key: "inspector", Type: forms.TypeText, Label: ZH("检查人"), ReadOnly: true, Default: "陈立群"},
				{Key: "opened", Type: forms.TypeDate, Label: ZH("开办日期"), ReadOnlyIf: "answers.seats > 100", Default: "2019-09-01"},
				{Key: "checked_at", Type: forms.TypeDateTime, Label: ZH("检查时间"), Default: "2024-10-15T09:30:00+08:00"},
				{Key: "lunch", Type: forms.TypeTime, Label: ZH("午餐时间"), Default: "11:45"},
				{Key: "thanks", Type: forms.TypeNote, Label: ZH("${answers.inspector}，谢谢！")},
			},
			records: []recordCase{
				{"Valid", []any{a("has_canteen", "yes"), a("seats", 300.0), a("licence", "2025-06-30"), a("inspector", "陈立群")}, nil, nil},
				{"Broken", []any{a("has_canteen", "no"), a("seats", 300.0), a("licence", "2024-01-31")}, forms.Errors{
					"answers.seats":   notApplicable,
					"answers.licence": ZH("许可证已过期（2024-01-31）"),
				}, nil},
				{"RequiredMessages", []any{a("seats", 0.0)}, forms.Errors{
					"answers.has_canteen": ZH("请回答是否有食堂"),
					"answers.seats":       notApplicable,
				}, nil},
			},
			check: func(t *testing.T, res *forms.XLSFormImport) {
				ev := res.Definition.Evaluate(response(a("has_canteen", "yes"), a("seats", 300.0), a("inspector", "王芳")), env)
				if got, want := ev.Texts["answers.thanks"].Label, ZH("王芳，谢谢！"); got != want {
					t.Errorf("label = %v, want %v", got, want)
				}
				if got, want := ev.Texts["answers.seats"].Hint, ZH("yes 时必填"); got != want {
					t.Errorf("hint = %v, want %v", got, want)
				}
				if !ev.ReadOnly["answers.inspector"] || !ev.ReadOnly["answers.opened"] {
					t.Errorf("read only = %v", ev.ReadOnly)
				}
			},
		},
		{
			name: "Languages",
			wb: sheets{
				"survey": {
					{"type", "name", "label", "label::中文 (zh)", "label:English", "label::Tibetan (bo)", "hint::English (en)", "media::image", "media::audio::English (en)"},
					{"select_one yn", "q1", "学校有食堂吗", "学校有食堂吗？", "Does the school have a canteen?", "སློབ་གྲྭར་", "Count the kitchen too", "canteen.jpg", "q1_en.mp3"},
					{"text", "q2", "", "", "Name"},
				},
				"choices": {
					{"list_name", "name", "label::中文 (zh)", "label::English (en)", "label::Tibetan (bo)", "image"},
					{"yn", "yes", "是", "Yes", "ཡིན།", "yes.png"},
					{"yn", "no", "否", "No", "མིན།"},
				},
				"settings": {{"form_id", "version", "form_title", "form_title::English (en)"}, {"langs", 1, "语言", "Languages"}},
			},
			opts: forms.XLSFormOptions{Files: map[string][]byte{"canteen.jpg": []byte("jpeg"), "yes.png": []byte("png")}},
			answers: []forms.Field{
				{Key: "q1", Type: forms.TypeSelectOne, ChoiceList: "yn", Label: T("学校有食堂吗？", "Does the school have a canteen?"), Hint: EN("Count the kitchen too"),
					Media: map[string]string{"image": "canteen.jpg", "audio::en": "q1_en.mp3"}},
				{Key: "q2", Type: forms.TypeText, Label: EN("Name")},
			},
			check: func(t *testing.T, res *forms.XLSFormImport) {
				d := res.Definition
				want := map[string]map[string]string{
					"Tibetan (bo)": {"fields[10].fields[0].label": "སློབ་གྲྭར་", "choices.yn[0].label": "ཡིན།", "choices.yn[1].label": "མིན།"},
					"default":      {"fields[10].fields[0].label": "学校有食堂吗"},
				}
				if !reflect.DeepEqual(d.Translations, want) {
					t.Errorf("translations = %v", d.Translations)
				}
				if got := d.Choices["yn"][0]; got.Label != T("是", "Yes") || got.Media["image"] != "yes.png" {
					t.Errorf("choice = %+v", got)
				}
				if want := map[string]bool{"canteen.jpg": true, "q1_en.mp3": false, "yes.png": true}; !reflect.DeepEqual(res.Media, want) {
					t.Errorf("media = %v", res.Media)
				}
			},
			warnings: []string{
				`survey row 2: the media file "q1_en.mp3" was not uploaded with the form`,
				`survey row 2, column label: the plain label differs from its language column: kept as the language "default"`,
			},
		},
		{
			name: "OtherLanguagesOnly",
			wb: sheets{
				"survey":   {{"type", "name", "label::Français (fr)", "label::Español (es)"}, {"text", "q", "Nom", "Nombre"}},
				"settings": {{"form_id", "version", "default_language"}, {"fr_es", 1, "Español (es)"}},
			},
			answers: []forms.Field{{Key: "q", Type: forms.TypeText, Label: EN("Nombre")}},
			check: func(t *testing.T, res *forms.XLSFormImport) {
				want := map[string]map[string]string{"Français (fr)": {"fields[10].fields[0].label": "Nom"}, "Español (es)": {"fields[10].fields[0].label": "Nombre"}}
				if !reflect.DeepEqual(res.Definition.Translations, want) {
					t.Errorf("translations = %v", res.Definition.Translations)
				}
			},
		},
		{
			name: "Functions",
			wb: sheets{
				"survey": {
					{"type", "name", "label", "calculation", "constraint"},
					{"text", "name", "姓名", "", "regex(., '^[\\u4e00-\\u9fa5]{2,4}$') or string-length(.) < 20"},
					{"date", "dob", "出生日期"},
					{"select_multiple hobby", "hobby", "爱好"},
					{"decimal", "h", "身高"},
					{"calculate", "age", "", "int((decimal-date-time(today()) - decimal-date-time(${dob})) div 365.25)"},
					{"calculate", "initial", "", "substr(${name}, 0, 1)"},
					{"calculate", "upper", "", "translate(${name}, 'abc', 'ABC')"},
					{"calculate", "hobbies", "", "join(', ', ${hobby})"},
					{"calculate", "first_hobby", "", "selected-at(${hobby}, 0)"},
					{"calculate", "hobby_label", "", "jr:choice-name(${first_hobby}, '${hobby}')"},
					{"calculate", "n", "", "count-selected(${hobby})"},
					{"calculate", "bmi", "", "round(60 div pow(${h}, 2), 1)"},
					{"calculate", "big", "", "max(${h}, 1.5) + min(1, 2) + abs(-1) + floor(1.7) + ceiling(1.2) + sqrt(16)"},
					{"calculate", "words", "", "concat(normalize-space('  a   b '), '|', substring-before('a-b', '-'), '|', substring-after('a-b', '-'))"},
					{"calculate", "tests", "", "if(contains(${name}, '张') and starts-with(${name}, '张') and not(ends-with(${name}, 'x')), 'yes', 'no')"},
					{"calculate", "when", "", "format-date(date(${dob}), '%Y/%m/%d')"},
					{"calculate", "weekday", "", "format-date(today(), '%a')"},
					{"calculate", "flag", "", "boolean-from-string('true') and boolean(${n})"},
					{"calculate", "check", "", "checklist(1, 2, selected(${hobby}, 'read'), selected(${hobby}, 'run'), ${n} > 5)"},
				},
				"choices":  {{"list_name", "name", "label"}, {"hobby", "read", "阅读"}, {"hobby", "run", "跑步"}},
				"settings": settings("funcs", 1),
			},
			records: []recordCase{
				{"Values", []any{a("name", "张三"), a("dob", "2011-05-01"), a("hobby", []any{"run", "read"}), a("h", "1.55")}, nil, map[string]any{
					"age": "13", "initial": "张", "upper": "张三", "hobbies": "run, read", "first_hobby": "run", "hobby_label": "跑步", "n": "2",
					"bmi": "25", "big": "10.55", "words": "a b|a|b", "tests": "yes", "when": "2011/05/01", "weekday": "Tue", "flag": true, "check": true,
				}},
				{"BadName", []any{a("name", "Zhang San the person with a very long name")}, forms.Errors{"answers.name": {ZH: "不符合填写规则", EN: "does not satisfy the rule"}}, nil},
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { runFeature(t, tc) })
	}
}

// TestImportXLSFormRefusals: what fieldsync cannot do is refused at once,
// every problem listed with its sheet, row and column, warnings apart.
func TestImportXLSFormRefusals(t *testing.T) {
	tests := []struct {
		name     string
		wb       sheets
		opts     forms.XLSFormOptions
		want     []string
		warnings []string
	}{
		{"EverythingAtOnce", sheets{
			"survey": {
				{"type", "name", "label", "relevant", "calculation", "bind::esri:fieldLength", "$kuid"},
				{"text", "q1", "Q1", "", "", "50", "abc"},
				{"osm", "building", "Building"},
				{"background-audio", "bg"},
				{"begin_kobomatrix", "m", "Matrix"},
				{"select_one colours", "q2", "Colour"},
				{"select_one_from_file schools.csv", "q3", "School"},
				{"text", "q4", "Q4", "instance('x')/root/item[name = ${q1}]"},
				{"calculate", "c1", "", "", "digest(${q1}, 'SHA-256')"},
				{"text", "", "No name"},
				{"end group"},
			},
			"choices":  {{"list_name", "name", "label"}, {"yn", "yes", "Yes"}, {"yn", "yes", "Again"}},
			"settings": {{"form_id", "version", "public_key"}, {"refused", 1, "MIIBIjANBgkq"}},
			"entities": {{"list_name", "label"}, {"trees", "${q1}"}},
		}, forms.XLSFormOptions{}, []string{
			"settings row 2, column public_key: fieldsync does not encrypt records (public_key): the office reviews them",
			"survey row 3, column type: fieldsync does not have OpenStreetMap questions (osm)",
			"survey row 4, column type: fieldsync does not record audio in the background (background-audio)",
			"survey row 5, column type: KoboToolbox matrices (kobomatrix) are not XLSForm: write them as a group of select questions",
			`survey row 6, column type: choice list "colours" is not on the choices sheet`,
			`survey row 7, column type: the choice file "schools.csv" was not uploaded with the form`,
			"survey row 8, column relevant: cannot translate the expression: instance() reads secondary instances, which fieldsync does not have: use select_one_from_file or pulldata()",
			"survey row 9, column calculation: cannot translate the expression: digest() is not supported",
			"survey row 10, column name: name is missing",
			`survey row 11, column type: "end group" without a matching begin`,
			`choices row 3, column name: duplicate choice "yes" (also row 2; set allow_choice_duplicates to yes in settings to allow it)`,
		}, []string{
			`survey row 1, column $kuid: column "$kuid" is KoboToolbox bookkeeping: ignored`,
			`survey row 1, column bind::esri:fieldLength: column "bind::esri:fieldLength" is an XForm extension attribute fieldsync does not use: ignored`,
			`entities: the sheet "entities" is not used by the XLSForm import: ignored`,
		}},
		{"ExpressionsOnTheirRows", sheets{
			"survey": {
				{"type", "name", "label", "relevant", "constraint", "calculation", "required"},
				{"integer", "age", "Age"},
				{"text", "q1", "Q1", "${nope} > 1"},
				{"text", "q4", "Q4", "instance('x')/root/item[name = ${age}]"},
				{"text", "q5", "Q5", "/data/age > 1"},
				{"text", "q6", "Q6", "${age} > 'ten'"},
				{"calculate", "c1", "", "", "", "${c2} + 1"},
				{"calculate", "c2", "", "", "", "${c1} + 1"},
				{"text", "q7", "Q7", "", "", "", "maybe"},
				{"calculate", "c3"},
				{"integer", "q8", "Q8", "${age} > 1 > 0"},
				{"text", "q9", "Q9", "", "regex(., '(?i)x')"},
			},
			"settings": settings("exprs", 1),
		}, forms.XLSFormOptions{}, []string{
			"survey row 3, column relevant: cannot translate the expression: ${nope} is not a field of this form",
			"survey row 4, column relevant: cannot translate the expression: instance() reads secondary instances, which fieldsync does not have: use select_one_from_file or pulldata()",
			`survey row 5, column relevant: cannot translate the expression: XPath "/" is not supported: refer to fields as ${name}`,
			`survey row 9, column required: cannot translate the expression: unsupported name "maybe": refer to fields as ${name}`,
			"survey row 10, column calculation: a calculate row needs a calculation",
		}, nil},
		{"CheckProblemsOnTheirRows", sheets{
			"survey": {
				{"type", "name", "label", "relevant", "calculation", "default", "constraint", "parameters"},
				{"integer", "age", "Age", "", "", "many"},
				{"text", "q5", "Q5", "${age} > 'ten'"},
				{"calculate", "c1", "", "", "${c2} + 1"},
				{"calculate", "c2", "", "", "${c1} + 1"},
				{"integer", "q7", "Q7", "${age} > 1 > 0"},
				{"text", "q8", "Q8", "", "", "", "regex(., '(?i)x')"},
				{"range", "r", "R", "", "", "", "", "start=0 end=10 step=0"},
			},
			"settings": settings("checks", 1),
		}, forms.XLSFormOptions{}, []string{
			"survey row 2, column default: invalid default: must be a whole number",
			"survey row 3, column relevant: invalid expression: invalid operation: > (mismatched types float64 and string) (1:13)",
			"survey row 4, column calculation: circular reference: answers.c1 → answers.c2 → answers.c1",
			`survey row 6, column relevant: invalid expression: comparisons cannot be chained: join them with && or add parentheses before ">"`,
			"survey row 7, column constraint: invalid expression: pattern: only (?:…) groups are portable; flags and named groups are not",
			"survey row 8, column parameters: step must be above 0",
		}, nil},
		{"SearchAppearanceAndKoboBlocks", sheets{
			"survey":   {{"type", "name", "label", "appearance"}, {"select_one fruits", "fruit", "Fruit", "quick search('fruits')"}, {"begin_score", "s", "Score"}},
			"choices":  {{"list_name", "name", "label"}, {"fruits", "name_key", "name"}},
			"settings": settings("x", 1),
		}, forms.XLSFormOptions{}, []string{
			"survey row 2, column appearance: the search() appearance loads choices from a CSV on the phone, which fieldsync does not do: use select_one_from_file",
			"survey row 3, column type: KoboToolbox score blocks are not XLSForm: write them as select questions",
		}, nil},
		{"NoSurveySheet", sheets{"choices": ynChoice, "settings": settings("x", 1)}, forms.XLSFormOptions{}, []string{
			"survey: the survey sheet is missing",
		}, nil},
		{"PulldataWithoutItsFile", sheets{
			"survey":   {{"type", "name", "label", "calculation"}, {"text", "code", "Code"}, {"calculate", "n", "", "pulldata('schools', 'name', 'code', ${code})"}},
			"settings": settings("x", 1),
		}, forms.XLSFormOptions{}, []string{
			"survey row 3, column calculation: schools.csv, which pulldata reads, was not uploaded with the form",
			"survey row 3, column calculation: cannot translate the expression: pulldata() reads schools.csv, which was not uploaded with the form",
		}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := forms.ImportXLSFormFile(bytes.NewReader(mustWorkbook(t, tt.wb)), tt.opts)
			if res != nil {
				t.Errorf("ImportXLSFormFile returned a result with problems")
			}
			var xe *forms.XLSFormError
			if !errors.As(err, &xe) {
				t.Fatalf("err = %v, want *forms.XLSFormError", err)
			}
			if got := warningStrings(xe.Problems); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("problems:\n got %s\nwant %s", strings.Join(got, "\n     "), strings.Join(tt.want, "\n     "))
			}
			if tt.warnings != nil {
				if got := warningStrings(xe.Warnings); !reflect.DeepEqual(got, tt.warnings) {
					t.Errorf("warnings:\n got %s\nwant %s", strings.Join(got, "\n     "), strings.Join(tt.warnings, "\n     "))
				}
			}
			for _, p := range xe.Problems {
				if p.Message.ZH == "" || p.Message.EN == "" {
					t.Errorf("problem without both languages: %+v", p)
				}
			}
		})
	}
}

// TestImportXLSFormSpreadsheetQuirks: what spreadsheet programs write
// around the content is not content.
func TestImportXLSFormSpreadsheetQuirks(t *testing.T) {
	f := excelize.NewFile()
	defer f.Close()
	f.SetSheetName("Sheet1", "survey")
	rows := [][]any{{"type", "name", "label"}, {"text", "q1", "问题一"}, {"integer", "q2", "问题二"}}
	for i, r := range rows {
		cell, _ := excelize.CoordinatesToCellName(1, i+1)
		f.SetSheetRow("survey", cell, &r)
	}
	// LibreOffice: styled empty cells far to the right and rows below.
	style, _ := f.NewStyle(&excelize.Style{Fill: excelize.Fill{Type: "pattern", Color: []string{"FFFF00"}, Pattern: 1}})
	f.SetCellStyle("survey", "A5", "AMJ5", style)
	f.SetCellValue("survey", "A6", "  ")
	f.SetCellStyle("survey", "A4000", "C4000", style)
	f.NewSheet("settings")
	f.SetSheetRow("settings", "A1", &[]any{"form_id", "version"})
	f.SetSheetRow("settings", "A2", &[]any{"quirks", 3})
	f.SetCellValue("settings", "A4", "")
	f.NewSheet("notes")
	f.SetCellValue("notes", "A1", "written by the county office")
	var buf bytes.Buffer
	if _, err := f.WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	res, err := forms.ImportXLSFormFile(&buf, forms.XLSFormOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got := answersOf(res.Definition); len(got) != 2 || got[1].Key != "q2" {
		t.Errorf("answers = %s", jsonOf(got))
	}
	if got, want := warningStrings(res.Warnings), []string{`notes: the sheet "notes" is not used by the XLSForm import: ignored`}; !slices.Equal(got, want) {
		t.Errorf("warnings = %v, want %v", got, want)
	}
	_, err = forms.ImportXLSFormFile(bytes.NewReader([]byte{0xD0, 0xCF, 0x11, 0xE0, 0xA1, 0xB1, 0x1A, 0xE1, 0, 0}), forms.XLSFormOptions{})
	if err == nil || !strings.Contains(err.Error(), "old .xls workbook") {
		t.Errorf(".xls: err = %v", err)
	}
}
