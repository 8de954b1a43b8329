package forms_test

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"testing"

	"github.com/fieldsync/fieldsync/forms"
	"github.com/fieldsync/fieldsync/syncproto"
)

// sharedSamples is where the domain brief keeps the sample records;
// testdata/samples holds a copy so that the package tests stand alone.
const sharedSamples = "../../shared/domain/samples"

// today is the date the sample records are validated on: after the last
// event of the hazard sample and the month of the feedback sample.
var today = forms.Env{Today: "2024-11-20"}

// mustSample decodes a sample record. Each call returns a fresh copy that
// the caller may modify.
func mustSample(tb testing.TB, name string) map[string]any {
	tb.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "samples", name+".json"))
	if err != nil {
		tb.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		tb.Fatal(err)
	}
	return m
}

func mustBuiltin(tb testing.TB, id string, version int) *forms.Definition {
	tb.Helper()
	d, ok := forms.BuiltinByID(id, version)
	if !ok {
		tb.Fatalf("no built-in %s v%d", id, version)
	}
	return d
}

// obj and list walk decoded JSON in test mutations.
func obj(v any) map[string]any { return v.(map[string]any) }
func list(v any) []any         { return v.([]any) }

// answer returns the answer to qid in a questionnaire response.
func answer(m map[string]any, qid string) map[string]any {
	for _, a := range list(m["answers"]) {
		if obj(a)["qid"] == qid {
			return obj(a)
		}
	}
	panic("no answer " + qid)
}

// hazardEvents returns the events embedded in the hazard sample as
// separate hazard.event records, the way they sync.
func hazardEvents(tb testing.TB) []map[string]any {
	h := mustSample(tb, "09_hazard_with_history")
	var out []map[string]any
	for _, e := range list(h["events"]) {
		ev := forms.StripEnvelope(obj(e))
		ev["hazard_id"] = h["id"]
		out = append(out, ev)
	}
	return out
}

// parentResponse is a parent questionnaire response shaped like sample 08.
func parentResponse(tb testing.TB) map[string]any {
	m := forms.StripEnvelope(mustSample(tb, "08_questionnaire_response"))
	delete(m, "status")
	m["template_version"] = 1.0
	m["respondent_type"] = "parent"
	delete(m, "respondent_grade")
	m["collection_mode"] = "paper_transcribed"
	m["answers"] = []any{
		map[string]any{"qid": "P1", "value": "junior"},
		map[string]any{"qid": "P2", "value": 4.0},
		map[string]any{"qid": "P3", "value": 5.0},
		map[string]any{"qid": "P4", "value": "too_much"},
		map[string]any{"qid": "P5", "value": 3.0},
		map[string]any{"qid": "P6", "value": "yes"},
		map[string]any{"qid": "P7", "value": 2.0},
		map[string]any{"qid": "P8", "value": []any{"bought_materials"}},
		map[string]any{"qid": "P9", "value": "希望减少周末作业。"},
	}
	return m
}

func TestBuiltinDefinitionsCheck(t *testing.T) {
	var got []string
	for _, d := range forms.Builtin() {
		got = append(got, d.ID)
		if err := d.Check(); err != nil {
			t.Errorf("%s v%d: %v", d.ID, d.Version, err)
		}
		if d.Status != forms.StatusPublished {
			t.Errorf("%s: status %q, want published", d.ID, d.Status)
		}
	}
	sort.Strings(got)
	want := []string{"hazard.event", "hazard.report", "lesson_observation", "monthly_feedback",
		"questionnaire.parent_satisfaction", "questionnaire.student_burden", "visit.routine"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("built-in ids = %v, want %v", got, want)
	}
	if _, ok := forms.BuiltinByID("visit.routine", 2); ok {
		t.Error("BuiltinByID found visit.routine v2, which does not exist")
	}
}

// TestBuiltinJSONIsCanonical keeps the embedded files in the form that
// json.MarshalIndent produces from the decoded definition, so that no field
// in them is silently ignored by the decoder or lost in a round trip.
func TestBuiltinJSONIsCanonical(t *testing.T) {
	files, err := filepath.Glob("builtin/*.json")
	if err != nil || len(files) == 0 {
		t.Fatalf("glob: %v %v", files, err)
	}
	for _, file := range files {
		b, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		var d forms.Definition
		if err := json.Unmarshal(b, &d); err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		var raw, again any
		if err := json.Unmarshal(b, &raw); err != nil {
			t.Fatal(err)
		}
		out, err := json.Marshal(&d)
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(out, &again); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(raw, again) {
			t.Errorf("%s does not round-trip through Definition", file)
		}
		if got, want := filepath.Base(file), d.ID+".v"+itoa(d.Version)+".json"; got != want {
			t.Errorf("file %s holds %s", got, want)
		}
	}
}

func itoa(n int) string { return string(rune('0' + n)) }

// TestSampleCopies fails when the domain samples change, so that the copy in
// testdata/samples is refreshed with them.
func TestSampleCopies(t *testing.T) {
	files, _ := filepath.Glob(filepath.Join("testdata", "samples", "*.json"))
	if _, err := os.Stat(sharedSamples); err != nil {
		t.Skipf("domain samples not found at %s", sharedSamples)
	}
	for _, file := range files {
		mine, _ := os.ReadFile(file)
		theirs, err := os.ReadFile(filepath.Join(sharedSamples, filepath.Base(file)))
		if err != nil {
			t.Errorf("%s: %v", file, err)
			continue
		}
		if !bytes.Equal(mine, theirs) {
			t.Errorf("%s differs from %s: copy the new sample", file, sharedSamples)
		}
	}
}

func TestBuiltinsAcceptSamples(t *testing.T) {
	tests := []struct {
		name    string
		id      string
		version int
		record  func(testing.TB) map[string]any
	}{
		{"Visit", "visit.routine", 1, func(tb testing.TB) map[string]any { return mustSample(tb, "06_visit_routine") }},
		{"LessonObservation", "lesson_observation", 1, func(tb testing.TB) map[string]any { return mustSample(tb, "07_lesson_observation") }},
		{"StudentQuestionnaire", "questionnaire.student_burden", 3, func(tb testing.TB) map[string]any { return mustSample(tb, "08_questionnaire_response") }},
		{"ParentQuestionnaire", "questionnaire.parent_satisfaction", 1, parentResponse},
		{"Hazard", "hazard.report", 1, func(tb testing.TB) map[string]any { return mustSample(tb, "09_hazard_with_history") }},
		{"MonthlyFeedback", "monthly_feedback", 1, func(tb testing.TB) map[string]any { return mustSample(tb, "10_monthly_feedback") }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := mustBuiltin(t, tt.id, tt.version)
			rec := forms.StripEnvelope(tt.record(t))
			if errs := d.Validate(rec, today); len(errs) > 0 {
				t.Fatalf("Validate: %v", errs)
			}
			// What a phone would send: no server fields.
			if errs := d.Validate(d.StripServerFields(rec), today); len(errs) > 0 {
				t.Fatalf("Validate without server fields: %v", errs)
			}
			// Computing a valid record changes nothing it holds.
			got, err := d.Compute(rec, today)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, rec) {
				t.Errorf("Compute changed a valid record:\n got %v\nwant %v", got, rec)
			}
		})
	}
}

func TestBuiltinAcceptsHazardEvents(t *testing.T) {
	d := mustBuiltin(t, "hazard.event", 1)
	for _, ev := range hazardEvents(t) {
		if errs := d.Validate(ev, today); len(errs) > 0 {
			t.Errorf("event %v: %v", ev["type"], errs)
		}
	}
}

// TestLessonObservationComputesTotalAndBand drops the derived values of the
// sample and checks that Compute gives back what the sample says.
func TestLessonObservationComputesTotalAndBand(t *testing.T) {
	d := mustBuiltin(t, "lesson_observation", 1)
	rec := forms.StripEnvelope(mustSample(t, "07_lesson_observation"))
	want := rec["total_score"]
	wantBand := rec["grade_band"]
	delete(rec, "total_score")
	delete(rec, "grade_band")
	for _, s := range list(rec["scores"]) {
		delete(obj(s), "name")
		delete(obj(s), "max")
	}
	got, err := d.Compute(rec, today)
	if err != nil {
		t.Fatal(err)
	}
	if got["total_score"] != want || want != "81" {
		t.Errorf("total_score = %#v, want %#v (\"81\")", got["total_score"], want)
	}
	if got["grade_band"] != wantBand || wantBand != "良好" {
		t.Errorf("grade_band = %#v, want %#v (良好)", got["grade_band"], wantBand)
	}
	if got, want := obj(list(got["scores"])[3])["name"], "课堂组织与管理（尊重学生）"; got != want {
		t.Errorf("scores[3].name = %v, want %v", got, want)
	}
	if got, want := obj(list(got["scores"])[3])["max"], 15.0; got != want {
		t.Errorf("scores[3].max = %v, want %v", got, want)
	}
	if errs := d.Validate(got, today); len(errs) > 0 {
		t.Errorf("Validate(Compute(record)): %v", errs)
	}
}

func TestLessonObservationBands(t *testing.T) {
	d := mustBuiltin(t, "lesson_observation", 1)
	tests := []struct {
		scores []string
		total  any
		band   any
	}{
		{[]string{"10", "20", "20", "15", "20", "5"}, "90", "优秀"},
		{[]string{"10", "20", "20", "15", "20", "4.5"}, "89.5", "良好"},
		{[]string{"10", "15", "15", "10", "15", "10"}, "75", "良好"},
		{[]string{"10", "15", "15", "10", "15", "9"}, "74", "合格"},
		{[]string{"6", "12", "12", "10", "10", "10"}, "60", "合格"},
		{[]string{"6", "12", "12", "10", "10", "9.5"}, "59.5", "待改进"},
		{nil, nil, nil},
	}
	for _, tt := range tests {
		rec := forms.StripEnvelope(mustSample(t, "07_lesson_observation"))
		delete(rec, "total_score")
		delete(rec, "grade_band")
		var rows []any
		for i, s := range tt.scores {
			rows = append(rows, map[string]any{"criterion_code": "C" + itoa(i+1), "score": s})
		}
		rec["scores"] = rows
		rec["status"] = "draft"
		got, err := d.Compute(rec, today)
		if err != nil {
			t.Fatal(err)
		}
		if got["total_score"] != tt.total || got["grade_band"] != tt.band {
			t.Errorf("scores %v: total %#v band %#v, want %#v %#v", tt.scores, got["total_score"], got["grade_band"], tt.total, tt.band)
		}
		if errs := d.Validate(got, today); len(errs) > 0 {
			t.Errorf("scores %v: %v", tt.scores, errs)
		}
	}
}

// Messages the broken copies must produce.
var (
	required    = forms.Text{ZH: "此项必填", EN: "required"}
	unknown     = forms.Text{ZH: "表单中没有此项", EN: "unknown field"}
	notRelevant = forms.Text{ZH: "此项不适用，应为空", EN: "not applicable here: must be empty"}
)

func notChoice(v string) forms.Text {
	return forms.Text{ZH: "“" + v + "”不是可选项", EN: `"` + v + `" is not one of the choices`}
}

func computed(v string) forms.Text {
	return forms.Text{ZH: "此项由系统计算，应为 " + v, EN: "must equal the computed value " + v}
}

func TestBuiltinsRejectBrokenSamples(t *testing.T) {
	tests := []struct {
		name    string
		id      string
		version int
		sample  string
		break_  func(m map[string]any)
		want    forms.Errors
	}{
		{
			"VisitWithoutFeedback", "visit.routine", 1, "06_visit_routine",
			func(m map[string]any) { delete(m, "feedback") },
			forms.Errors{"feedback": {ZH: "常规督导和一日督导完成时须记录当面反馈", EN: "a completed routine or one-day visit needs the feedback to the principal"}},
		},
		{
			"VisitFeedbackWithoutName", "visit.routine", 1, "06_visit_routine",
			func(m map[string]any) { obj(m["feedback"])["to_name"] = "" },
			forms.Errors{"feedback.to_name": required},
		},
		{
			"VisitStepTimeMalformed", "visit.routine", 1, "06_visit_routine",
			func(m map[string]any) { obj(list(m["steps"])[3])["at"] = "9:20" },
			forms.Errors{"steps[3].at": {ZH: "应为带时区的时间，如 2024-10-15T08:00:00+08:00", EN: "must be a time with offset such as 2024-10-15T08:00:00+08:00"}},
		},
		{
			"VisitStepNotDoneHasTime", "visit.routine", 1, "06_visit_routine",
			func(m map[string]any) { obj(list(m["steps"])[2])["done"] = false },
			forms.Errors{"steps[2].at": notRelevant},
		},
		{
			"VisitInTheFuture", "visit.routine", 1, "06_visit_routine",
			func(m map[string]any) {
				m["visit_date"] = "2024-11-22"
				m["check_in_at"] = "2024-11-22T07:58:00+08:00"
				m["check_out_at"] = "2024-11-22T16:10:00+08:00"
			},
			forms.Errors{"visit_date": {ZH: "督导日期不能晚于明天", EN: "the visit date cannot be after tomorrow"}},
		},
		{
			"VisitCheckInOnOtherDay", "visit.routine", 1, "06_visit_routine",
			func(m map[string]any) { m["check_in_at"] = "2024-10-14T07:58:00+08:00" },
			forms.Errors{"check_in_at": {ZH: "进校时间应在督导当日", EN: "check-in must be on the visit date"}},
		},
		{
			"VisitCheckOutBeforeCheckIn", "visit.routine", 1, "06_visit_routine",
			func(m map[string]any) { m["check_out_at"] = "2024-10-15T07:30:00+08:00" },
			forms.Errors{"check_out_at": {ZH: "离校时间应晚于进校时间", EN: "check-out must be after check-in"}},
		},
		{
			"VisitUnknownKind", "visit.routine", 1, "06_visit_routine",
			func(m map[string]any) { m["kind"] = "routine_visit" },
			forms.Errors{"kind": notChoice("routine_visit")},
		},
		{
			"VisitWithoutSummary", "visit.routine", 1, "06_visit_routine",
			func(m map[string]any) { m["highlights"], m["problems"], m["suggestions"] = "", nil, "" },
			forms.Errors{"highlights": {ZH: "完成督导时，亮点、问题、建议至少填写一项", EN: "a completed visit needs highlights, problems or suggestions"}},
		},
		{
			"VisitProblemWithoutExplanation", "visit.routine", 1, "06_visit_routine",
			func(m map[string]any) { obj(list(m["matter_findings"])[3])["summary_problems_suggestions"] = "" },
			forms.Errors{"matter_findings[3].summary_problems_suggestions": {ZH: "评为“有问题”时须写明问题与建议", EN: "a 'problem' rating needs problems and suggestions"}},
		},
		{
			"VisitUnknownFieldAndBadTypes", "visit.routine", 1, "06_visit_routine",
			func(m map[string]any) {
				m["weather"] = "晴"
				m["announced"] = "no"
				m["school_id"] = "school-103"
				m["check_in_geo"] = map[string]any{"lat": 130.0, "lng": 115.397}
			},
			forms.Errors{
				"weather":      unknown,
				"announced":    {ZH: "应为是或否（true/false）", EN: "must be true or false"},
				"school_id":    {ZH: "应为 UUID", EN: "must be a UUID"},
				"check_in_geo": {ZH: "位置应为 {lat, lng, accuracy_m}，纬度 -90～90，经度 -180～180", EN: "must be a location {lat, lng, accuracy_m} with lat -90..90 and lng -180..180"},
			},
		},
		{
			"LessonScoreAboveMax", "lesson_observation", 1, "07_lesson_observation",
			func(m map[string]any) {
				obj(list(m["scores"])[1])["score"] = "21"
				m["total_score"] = "85"
			},
			forms.Errors{"scores[1].score": {ZH: "不能超过该项满分", EN: "cannot exceed the criterion's maximum"}},
		},
		{
			"LessonTotalTyped", "lesson_observation", 1, "07_lesson_observation",
			func(m map[string]any) { m["total_score"] = "80"; m["grade_band"] = "优秀" },
			forms.Errors{"total_score": computed("81"), "grade_band": computed("良好")},
		},
		{
			"LessonScoreNotANumber", "lesson_observation", 1, "07_lesson_observation",
			func(m map[string]any) { obj(list(m["scores"])[0])["score"] = "八" },
			forms.Errors{
				"scores[0].score": {ZH: "应为数字，如 \"87.5\"", EN: "must be a number such as \"87.5\""},
				"total_score":     computed("73"),
				"grade_band":      computed("合格"),
			},
		},
		{
			"LessonCriterionTwice", "lesson_observation", 1, "07_lesson_observation",
			func(m map[string]any) { obj(list(m["scores"])[5])["criterion_code"] = "C1" },
			forms.Errors{
				"scores[5].criterion_code": {ZH: "与第 1 行重复", EN: "duplicates row 1"},
				"scores[5].name":           computed("教学准备（教案、备课）"),
				"scores[5].max":            computed("10"),
				"scores[5].score":          {ZH: "不能超过该项满分", EN: "cannot exceed the criterion's maximum"},
			},
		},
		{
			"LessonSubmittedWithoutScores", "lesson_observation", 1, "07_lesson_observation",
			func(m map[string]any) { delete(m, "scores") },
			forms.Errors{
				"scores":      {ZH: "提交时须按评价表打分", EN: "a submitted observation with a rubric needs its scores"},
				"total_score": {ZH: "此项由系统计算，结果为空，不应填写", EN: "computed value is empty: leave it empty"},
				"grade_band":  {ZH: "此项由系统计算，结果为空，不应填写", EN: "computed value is empty: leave it empty"},
			},
		},
		{
			"LessonSubmittedWithFiveScores", "lesson_observation", 1, "07_lesson_observation",
			func(m map[string]any) {
				m["scores"] = list(m["scores"])[:5]
				m["total_score"], m["grade_band"] = "69", "合格"
			},
			forms.Errors{"scores": {ZH: "提交时须对 C1–C6 六项全部打分", EN: "a submitted observation scores all six criteria C1–C6"}},
		},
		{
			"LessonMorePresentThanEnrolled", "lesson_observation", 1, "07_lesson_observation",
			func(m map[string]any) {
				obj(m["attendance"])["present"] = 47.0
				m["duration_min"] = 45.5
			},
			forms.Errors{
				"attendance.present": {ZH: "实到人数不能多于应到人数", EN: "present cannot exceed enrolled"},
				"duration_min":       {ZH: "应为整数", EN: "must be a whole number"},
			},
		},
		{
			"QuestionnaireAnswerNotAChoice", "questionnaire.student_burden", 3, "08_questionnaire_response",
			func(m map[string]any) { answer(m, "Q1")["value"] = "3_hours" },
			forms.Errors{"answers.Q1": notChoice("3_hours")},
		},
		{
			"QuestionnaireRequiredAnswerMissing", "questionnaire.student_burden", 3, "08_questionnaire_response",
			func(m map[string]any) {
				var kept []any
				for _, a := range list(m["answers"]) {
					if obj(a)["qid"] != "Q3" {
						kept = append(kept, a)
					}
				}
				m["answers"] = kept
				answer(m, "Q6")["value"] = nil
			},
			forms.Errors{"answers.Q3": required, "answers.Q6": required},
		},
		{
			"QuestionnaireNoneWithOthers", "questionnaire.student_burden", 3, "08_questionnaire_response",
			func(m map[string]any) { answer(m, "Q5")["value"] = []any{"none", "weekend_tests"} },
			forms.Errors{"answers.Q5": {ZH: "选了“都没有”就不能再选其他项", EN: "'none' cannot be combined with other answers"}},
		},
		{
			"QuestionnaireLikertOutOfRange", "questionnaire.student_burden", 3, "08_questionnaire_response",
			func(m map[string]any) { answer(m, "Q4")["value"] = 6.0; answer(m, "Q2")["value"] = "eight" },
			forms.Errors{
				"answers.Q4": {ZH: "请在 1 到 5 之间选择", EN: "choose 1 to 5"},
				"answers.Q2": {ZH: "应为数字，如 \"87.5\"", EN: "must be a number such as \"87.5\""},
			},
		},
		{
			"QuestionnaireBadAnswerList", "questionnaire.student_burden", 3, "08_questionnaire_response",
			func(m map[string]any) {
				m["answers"] = append(list(m["answers"]),
					map[string]any{"qid": "Q2", "value": 7.0},
					map[string]any{"value": 1.0},
					map[string]any{"qid": "Q9", "value": "?"},
					map[string]any{"qid": "Q8", "value": "x", "score": 3.0},
				)
			},
			forms.Errors{
				"answers[8].qid":    {ZH: "同一题有多个答案", EN: "more than one answer to this question"},
				"answers[9].qid":    {ZH: "答案应有题号 qid", EN: "an answer needs a qid"},
				"answers.Q9":        unknown,
				"answers[11].qid":   {ZH: "同一题有多个答案", EN: "more than one answer to this question"},
				"answers[11].score": unknown,
			},
		},
		{
			"QuestionnaireWrongRespondent", "questionnaire.student_burden", 3, "08_questionnaire_response",
			func(m map[string]any) { m["respondent_type"] = "parent" },
			forms.Errors{
				"respondent_type":  {ZH: "本问卷由学生填写", EN: "this questionnaire is for students"},
				"respondent_grade": notRelevant,
			},
		},
		{
			"HazardWithoutPhoto", "hazard.report", 1, "09_hazard_with_history",
			func(m map[string]any) { m["photo_ids"] = []any{} },
			forms.Errors{"photo_ids": {ZH: "至少拍一张隐患照片", EN: "take at least one photo of the hazard"}},
		},
		{
			"HazardUnknownSeverity", "hazard.report", 1, "09_hazard_with_history",
			func(m map[string]any) { m["severity"] = "critical"; m["title"] = "" },
			forms.Errors{"severity": notChoice("critical"), "title": required},
		},
		{
			"HazardFixedOnSiteWithoutEvidence", "hazard.report", 1, "09_hazard_with_history",
			func(m map[string]any) { m["fixed_on_site"] = true },
			forms.Errors{
				"fix_description": required,
				"after_photo_ids": {ZH: "现场整改须拍整改后照片", EN: "a fix on site needs a photo after the fix"},
			},
		},
		{
			"HazardFixDescriptionWhenNotFixed", "hazard.report", 1, "09_hazard_with_history",
			func(m map[string]any) { m["fixed_on_site"] = false; m["fix_description"] = "已更换" },
			forms.Errors{"fix_description": notRelevant},
		},
		{
			"HazardDuplicatePhoto", "hazard.report", 1, "09_hazard_with_history",
			func(m map[string]any) {
				m["photo_ids"] = []any{"0192b000-0000-7000-8000-000000000801", "0192b000-0000-7000-8000-000000000801"}
			},
			forms.Errors{"photo_ids": {ZH: "有重复的项", EN: "has duplicate items"}},
		},
		{
			"MonthlyFeedbackBadMonth", "monthly_feedback", 1, "10_monthly_feedback",
			func(m map[string]any) { m["month"] = "2024-13" },
			forms.Errors{"month": {ZH: "月份格式应为 YYYY-MM", EN: "must be a month YYYY-MM"}},
		},
		{
			"MonthlyFeedbackFutureMonth", "monthly_feedback", 1, "10_monthly_feedback",
			func(m map[string]any) { m["month"] = "2024-12" },
			forms.Errors{"month": {ZH: "不能填写未来的月份", EN: "the month cannot be in the future"}},
		},
		{
			"MonthlyFeedbackMatterTwice", "monthly_feedback", 1, "10_monthly_feedback",
			func(m map[string]any) { obj(list(m["matter_summary"])[2])["matter_code"] = "M2" },
			forms.Errors{"matter_summary[2].matter_code": {ZH: "与第 2 行重复", EN: "duplicates row 2"}},
		},
		{
			"MonthlyFeedbackNoVisitNoReason", "monthly_feedback", 1, "10_monthly_feedback",
			func(m map[string]any) { m["visit_ids"] = []any{}; m["highlights"] = "" },
			forms.Errors{
				"visit_ids":  {ZH: "须关联至少一次进校督导，或说明未进校原因", EN: "link at least one visit, or say why there was none"},
				"highlights": required,
			},
		},
		{
			"MonthlyFeedbackReasonDespiteVisit", "monthly_feedback", 1, "10_monthly_feedback",
			func(m map[string]any) { m["no_visit_reason"] = "生病" },
			forms.Errors{"no_visit_reason": notRelevant},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := mustBuiltin(t, tt.id, tt.version)
			rec := forms.StripEnvelope(mustSample(t, tt.sample))
			tt.break_(rec)
			got := d.Validate(rec, today)
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Validate:\n got %v\nwant %v", got, tt.want)
			}
			err := got.Err()
			if code := syncproto.ErrorCode(err); code != syncproto.EINVALID {
				t.Fatalf("Err() code = %q, want %q", code, syncproto.EINVALID)
			}
			var pe *syncproto.Error
			if !asSyncErr(err, &pe) || len(pe.Fields) != len(tt.want) {
				t.Fatalf("Err() = %v, want %d fields", err, len(tt.want))
			}
			for k, msg := range tt.want {
				if pe.Fields[k] != msg.ZH {
					t.Errorf("Err().Fields[%q] = %q, want %q", k, pe.Fields[k], msg.ZH)
				}
			}
		})
	}
}

func TestBuiltinRejectsBrokenHazardEvents(t *testing.T) {
	d := mustBuiltin(t, "hazard.event", 1)
	tests := []struct {
		name   string
		index  int // into the sample's events
		break_ func(e map[string]any)
		want   forms.Errors
	}{
		{"DeadlineBeforeNotice", 2, func(e map[string]any) { obj(e["payload"])["deadline"] = "2024-10-16" },
			forms.Errors{"payload.deadline": {ZH: "整改期限应晚于事件日期", EN: "the deadline must be after the event date"}}},
		{"NoticeWithoutResponsible", 2, func(e map[string]any) { delete(obj(e["payload"]), "responsible") },
			forms.Errors{"payload.responsible": required}},
		{"VerifiedWithoutPhotoOrNote", 8, func(e map[string]any) { delete(e, "photo_ids"); delete(e, "note") },
			forms.Errors{"photo_ids": {ZH: "此类事件须附照片（复查通过可改为写明复查说明）", EN: "this event needs photos (a passed verification may give a note instead)"}}},
		{"UnknownType", 9, func(e map[string]any) { e["type"] = "fixed" },
			forms.Errors{"type": notChoice("fixed")}},
		{"DeadlineOnConfirm", 1, func(e map[string]any) { obj(e["payload"])["deadline"] = "2024-11-30" },
			forms.Errors{"payload.deadline": notRelevant}},
		{"NegativeBaseRev", 0, func(e map[string]any) { e["base_rev"] = -1.0 },
			forms.Errors{"base_rev": {ZH: "应不小于 0", EN: "must be at least 0"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev := hazardEvents(t)[tt.index]
			tt.break_(ev)
			if got := d.Validate(ev, today); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Validate:\n got %v\nwant %v", got, tt.want)
			}
		})
	}
}

// TestServerFieldsAreIgnored: whatever a client puts in server fields, the
// record stays valid; the server overwrites them.
func TestServerFieldsAreIgnored(t *testing.T) {
	tests := []struct {
		id, sample string
		version    int
		fields     map[string]any
	}{
		{"visit.routine", "06_visit_routine", 1, map[string]any{"flags": "late", "linked": 3.0}},
		{"hazard.report", "09_hazard_with_history", 1, map[string]any{"status": 42.0, "overdue": "yes", "needs_review": []any{}, "events": "none"}},
		{"monthly_feedback", "10_monthly_feedback", 1, map[string]any{"counters": map[string]any{"hazards_opened": "lots"}, "days_on_site": "many"}},
	}
	for _, tt := range tests {
		d := mustBuiltin(t, tt.id, tt.version)
		rec := forms.StripEnvelope(mustSample(t, tt.sample))
		for k, v := range tt.fields {
			rec[k] = v
		}
		if errs := d.Validate(rec, today); len(errs) > 0 {
			t.Errorf("%s: %v", tt.id, errs)
		}
		got, err := d.Compute(rec, today)
		if err != nil {
			t.Fatal(err)
		}
		for k, v := range tt.fields {
			if !reflect.DeepEqual(got[k], v) {
				t.Errorf("%s: Compute changed server field %s to %v", tt.id, k, got[k])
			}
		}
	}
}

func TestStripEnvelope(t *testing.T) {
	rec := mustSample(t, "06_visit_routine")
	got := forms.StripEnvelope(rec)
	for _, k := range forms.EnvelopeKeys {
		if _, ok := got[k]; ok {
			t.Errorf("StripEnvelope kept %q", k)
		}
	}
	if got, want := len(got), len(rec)-11; got != want { // the sample has no deleted_at
		t.Errorf("len = %d, want %d", got, want)
	}
	if _, ok := rec["id"]; !ok {
		t.Error("StripEnvelope modified its argument")
	}
	d := mustBuiltin(t, "visit.routine", 1)
	if got, want := d.Validate(rec, today)["hlc"], unknown; got != want {
		t.Errorf("Validate with envelope: hlc → %v, want %v", got, want)
	}
}

func asSyncErr(err error, target **syncproto.Error) bool {
	e, ok := err.(*syncproto.Error)
	*target = e
	return ok
}
