package api

import (
	"archive/zip"
	"bytes"
	"encoding/json"
	"io"
	"maps"
	"mime/multipart"
	"slices"
	"strings"
	"testing"

	"github.com/xuri/excelize/v2"

	"github.com/fieldsync/fieldsync/forms"
	"github.com/fieldsync/fieldsync/server"
	"github.com/fieldsync/fieldsync/syncproto"
)

const xlsxType = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"

// workbook writes an .xlsx workbook in memory: sheet name → rows, the
// first being the header, as forms/xlsform_test.go builds them.
func workbook(t *testing.T, sheets map[string][][]any) []byte {
	t.Helper()
	f := excelize.NewFile()
	defer f.Close()
	first := true
	for _, name := range []string{"survey", "choices", "settings"} {
		rows, ok := sheets[name]
		if !ok {
			continue
		}
		if first {
			if err := f.SetSheetName("Sheet1", name); err != nil {
				t.Fatal(err)
			}
			first = false
		} else if _, err := f.NewSheet(name); err != nil {
			t.Fatal(err)
		}
		for i, row := range rows {
			cell, _ := excelize.CoordinatesToCellName(1, i+1)
			r := row
			if err := f.SetSheetRow(name, cell, &r); err != nil {
				t.Fatal(err)
			}
		}
	}
	var buf bytes.Buffer
	if _, err := f.WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// parentsSurvey is a short questionnaire an office writes in a
// spreadsheet: parents' view of the school canteen.
func parentsSurvey(survey ...[]any) map[string][][]any {
	if survey == nil {
		survey = [][]any{
			{"select_one yes_no", "eats_at_school", "孩子在学校吃午饭吗？", "Does your child eat lunch at school?", "yes"},
			{"integer", "satisfaction", "满意度（1-5）", "Satisfaction (1-5)", "yes", "${eats_at_school} = 'yes'", ". >= 1 and . <= 5"},
			{"text", "suggestion", "建议", "Suggestions", "no"},
		}
	}
	return map[string][][]any{
		"survey": append([][]any{{"type", "name", "label::Chinese (zh)", "label::English (en)", "required", "relevant", "constraint"}}, survey...),
		"choices": {
			{"list_name", "name", "label::Chinese (zh)", "label::English (en)"},
			{"yes_no", "yes", "是", "Yes"},
			{"yes_no", "no", "否", "No"},
		},
		"settings": {
			{"form_id", "version", "form_title", "form_title::English (en)"},
			{"survey.canteen_parents", 1, "家长食堂满意度调查", "Parents' canteen survey"},
		},
	}
}

func TestPublishXLSForm(t *testing.T) {
	forEachStack(t, Config{}, testPublishXLSForm)
}

func testPublishXLSForm(t *testing.T, st *stack) {
	wb := workbook(t, parentsSurvey())

	var fv server.FormVersion
	st.mustDo(t, 201, request{method: "POST", path: "/v1/admin/forms/xlsform", token: stackAdminToken, body: wb, contentType: xlsxType}).decode(t, &fv)
	want := server.FormVersion{ID: "survey.canteen_parents", Version: 1, Title: forms.Text{ZH: "家长食堂满意度调查", EN: "Parents' canteen survey"},
		Kind: forms.KindQuestionnaireResponse, Status: forms.StatusPublished}
	if fv != want {
		t.Errorf("publish = %+v, want %+v", fv, want)
	}

	var list struct{ Forms []server.FormVersion }
	st.mustDo(t, 200, request{method: "GET", path: "/v1/forms", token: stackAdminToken}).decode(t, &list)
	if !slices.Contains(list.Forms, want) {
		t.Errorf("GET /v1/forms does not list %+v: %+v", want, list.Forms)
	}

	var got struct {
		Definition forms.Definition
		Retired    bool
	}
	st.mustDo(t, 200, request{method: "GET", path: "/v1/forms/survey.canteen_parents/1", token: stackAdminToken}).decode(t, &got)
	answers := slices.IndexFunc(got.Definition.Fields, func(f forms.Field) bool { return f.Key == "answers" })
	if got.Retired || got.Definition.Status != forms.StatusPublished || answers < 0 {
		t.Fatalf("GET the form: retired %v, status %q, answers at %d", got.Retired, got.Definition.Status, answers)
	}
	var questions []string
	for _, f := range got.Definition.Fields[answers].Fields {
		questions = append(questions, f.Key)
	}
	if want := []string{"eats_at_school", "satisfaction", "suggestion"}; !slices.Equal(questions, want) {
		t.Errorf("questions %v, want %v", questions, want)
	}

	// The same workbook again changes nothing; an edited one under the
	// same version is refused.
	st.mustDo(t, 201, request{method: "POST", path: "/v1/admin/forms/xlsform", token: stackAdminToken, body: wb, contentType: xlsxType})
	edited := parentsSurvey()
	edited["survey"][3][2] = "意见和建议"
	r := st.mustDo(t, 409, request{method: "POST", path: "/v1/admin/forms/xlsform", token: stackAdminToken, body: workbook(t, edited), contentType: xlsxType})
	if e := r.errorOf(t); e.Code != syncproto.ECONFLICT || !strings.Contains(e.Message, "Publish version 2") {
		t.Errorf("edited workbook: %v", e)
	}
}

func TestPublishXLSFormProblems(t *testing.T) {
	forEachStack(t, Config{}, testPublishXLSFormProblems)
}

func testPublishXLSFormProblems(t *testing.T, st *stack) {
	tests := []struct {
		name   string
		body   []byte
		token  string
		status int
		code   string
		fields map[string]string // key → a part of its message; "" for any
	}{
		{
			name: "RowNumberedProblems",
			body: workbook(t, parentsSurvey(
				[]any{"select_one yes_no", "eats_at_school", "孩子在学校吃午饭吗？", "Lunch at school?", "yes"},
				[]any{"osm", "satisfaction", "满意度", "Satisfaction", "yes"},
				[]any{"text", "suggestion", "建议", "Suggestions", "no"},
				[]any{"select_one colours", "colour", "颜色", "Colour"},
			)),
			token: stackAdminToken, status: 400, code: syncproto.EINVALID,
			fields: map[string]string{"survey[3].type": "OpenStreetMap", "survey[5].type": "colours"},
		},
		{
			// The definition's own check runs once the rows import; its
			// problems are still reported by row and column.
			name: "UnknownQuestionInExpression",
			body: workbook(t, parentsSurvey(
				[]any{"select_one yes_no", "eats_at_school", "孩子在学校吃午饭吗？", "Lunch at school?", "yes"},
				[]any{"text", "suggestion", "建议", "Suggestions", "no", "${no_such_question} = 'yes'"},
			)),
			token: stackAdminToken, status: 400, code: syncproto.EINVALID,
			fields: map[string]string{"survey[3].relevant": "no_such_question"},
		},
		{
			name:  "NotAWorkbook",
			body:  []byte("form_id,version\nsurvey.canteen_parents,1\n"),
			token: stackAdminToken, status: 400, code: syncproto.EINVALID,
			fields: map[string]string{"workbook": ""},
		},
		{
			name:  "BuiltinID",
			body:  workbook(t, map[string][][]any{"survey": parentsSurvey()["survey"], "choices": parentsSurvey()["choices"], "settings": {{"form_id", "version"}, {"monthly_feedback", 7}}}),
			token: stackAdminToken, status: 400, code: syncproto.EINVALID,
			fields: map[string]string{"id": "built-in"},
		},
		{
			name:  "NoToken",
			body:  workbook(t, parentsSurvey()),
			token: "", status: 401, code: syncproto.EUNAUTHORIZED,
		},
		{
			name:  "WrongToken",
			body:  workbook(t, parentsSurvey()),
			token: "not-the-admin-token", status: 401, code: syncproto.EUNAUTHORIZED,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := st.do(t, request{method: "POST", path: "/v1/admin/forms/xlsform", token: tt.token, body: tt.body, contentType: xlsxType})
			if r.status != tt.status {
				t.Fatalf("status %d %s, want %d", r.status, r.body, tt.status)
			}
			e := r.errorOf(t)
			if e.Code != tt.code {
				t.Errorf("code %q, want %q", e.Code, tt.code)
			}
			if got, want := slices.Sorted(maps.Keys(e.Fields)), slices.Sorted(maps.Keys(tt.fields)); !slices.Equal(got, want) {
				t.Errorf("fields %v, want %v\n%s", got, want, r.body)
			}
			for k, part := range tt.fields {
				if !strings.Contains(e.Fields[k], part) {
					t.Errorf("fields[%s] = %q, want it to mention %q", k, e.Fields[k], part)
				}
			}
		})
	}
	// Nothing was published.
	var list struct{ Forms []server.FormVersion }
	st.mustDo(t, 200, request{method: "GET", path: "/v1/forms", token: stackAdminToken}).decode(t, &list)
	for _, f := range list.Forms {
		if !f.Builtin {
			t.Errorf("refused workbooks published %+v", f)
		}
	}
}

// multipartBody builds a multipart form: the workbook and other files.
func multipartBody(t *testing.T, wbName string, wb []byte, files map[string][]byte) ([]byte, string) {
	t.Helper()
	var buf bytes.Buffer
	w := multipart.NewWriter(&buf)
	part, err := w.CreateFormFile("workbook", wbName)
	if err != nil {
		t.Fatal(err)
	}
	part.Write(wb)
	for _, name := range slices.Sorted(maps.Keys(files)) {
		part, err := w.CreateFormFile("files", name)
		if err != nil {
			t.Fatal(err)
		}
		part.Write(files[name])
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes(), w.FormDataContentType()
}

// xlsformAnswerOf is the answer of the XLSForm routes as a client reads it.
type xlsformAnswerOf struct {
	server.FormVersion
	Outcome        string
	VersionDerived bool `json:"version_derived"`
	Warnings       []forms.XLSFormProblem
	Definition     *forms.Definition
}

// TestXLSFormVersionsPreviewAndExport: a workbook without settings gets
// its id from the file name and the next version; the preview writes
// nothing; files come in a multipart form; a published version exports to
// a workbook that imports to the same definition.
func TestXLSFormVersionsPreviewAndExport(t *testing.T) {
	forEachStack(t, Config{}, testXLSFormVersionsPreviewAndExport)
}

func testXLSFormVersionsPreviewAndExport(t *testing.T, st *stack) {
	sheets := parentsSurvey(
		[]any{"select_one_from_file towns.csv", "town", "乡镇", "Town", "yes"},
		[]any{"calculate", "town_code", "", "", "", "", "", "pulldata('codes', 'code', 'town', ${town})"},
		[]any{"text", "suggestion", "建议", "Suggestions", "no"},
	)
	sheets["survey"][0] = append(sheets["survey"][0], "calculation")
	delete(sheets, "settings")
	files := map[string][]byte{"towns.csv": []byte("name,label\nt1,城关镇\nt2,河口乡\n"), "codes.csv": []byte("town,code\nt1,A\nt2,B\n")}
	body, ctype := multipartBody(t, "家长问卷 Parents.xlsx", workbook(t, sheets), files)

	var prev xlsformAnswerOf
	st.mustDo(t, 200, request{method: "POST", path: "/v1/admin/forms/xlsform/preview", token: stackAdminToken, body: body, contentType: ctype}).decode(t, &prev)
	if prev.ID != "parents" || prev.Version != 1 || prev.Outcome != server.OutcomePreview || !prev.VersionDerived || prev.Definition == nil {
		t.Fatalf("preview = %+v", prev)
	}
	var warned []string
	for _, w := range prev.Warnings {
		warned = append(warned, w.String())
	}
	if want := `settings, column form_id: no form_id: the form id "parents" comes from the file name`; !slices.Contains(warned, want) {
		t.Errorf("warnings %v, want %q among them", warned, want)
	}
	st.mustDo(t, 404, request{method: "GET", path: "/v1/forms/parents/1", token: stackAdminToken})

	steps := []struct {
		name    string
		label   string
		version int
		outcome string
	}{
		{"First", "建议", 1, server.OutcomePublished},
		{"Again", "建议", 1, server.OutcomeUnchanged},
		{"Edited", "意见和建议", 2, server.OutcomePublished},
	}
	for _, step := range steps {
		sheets["survey"][3][2] = step.label
		body, ctype := multipartBody(t, "家长问卷 Parents.xlsx", workbook(t, sheets), files)
		var got xlsformAnswerOf
		st.mustDo(t, 201, request{method: "POST", path: "/v1/admin/forms/xlsform", token: stackAdminToken, body: body, contentType: ctype}).decode(t, &got)
		if got.Version != step.version || got.Outcome != step.outcome || !got.VersionDerived {
			t.Errorf("%s: version %d, outcome %q, derived %v; want %d, %q", step.name, got.Version, got.Outcome, got.VersionDerived, step.version, step.outcome)
		}
	}

	r := st.mustDo(t, 200, request{method: "GET", path: "/v1/admin/forms/parents/2/xlsform", token: stackAdminToken})
	zr, err := zip.NewReader(bytes.NewReader(r.body), int64(len(r.body)))
	if err != nil {
		t.Fatalf("export is not a zip: %v", err)
	}
	got := map[string][]byte{}
	for _, f := range zr.File {
		rc, _ := f.Open()
		b, _ := io.ReadAll(rc)
		rc.Close()
		got[f.Name] = b
	}
	if names := slices.Sorted(maps.Keys(got)); !slices.Equal(names, []string{"codes.csv", "parents-v2.xlsx"}) {
		t.Fatalf("zip holds %v", names)
	}
	back, err := forms.ImportXLSFormFile(bytes.NewReader(got["parents-v2.xlsx"]), forms.XLSFormOptions{Files: got})
	if err != nil {
		t.Fatal(err)
	}
	var pub struct{ Definition forms.Definition }
	st.mustDo(t, 200, request{method: "GET", path: "/v1/forms/parents/2", token: stackAdminToken}).decode(t, &pub)
	back.Definition.Status = forms.StatusPublished
	a, _ := json.Marshal(back.Definition)
	b, _ := json.Marshal(&pub.Definition)
	if !bytes.Equal(a, b) {
		t.Errorf("exported workbook imports to\n%s\nwant\n%s", a, b)
	}
	st.mustDo(t, 400, request{method: "GET", path: "/v1/admin/forms/hazard.report/1/xlsform", token: stackAdminToken})

	// A refusal lists every problem and the warnings, in both languages.
	bad := parentsSurvey([]any{"osm", "building", "建筑", "Building"}, []any{"select_one colours", "c", "颜色", "Colour"})
	bad["survey"][0] = append(bad["survey"][0], "$kuid")
	var refusal struct {
		Error    syncproto.Error
		Problems []forms.XLSFormProblem
		Warnings []forms.XLSFormProblem
	}
	st.mustDo(t, 400, request{method: "POST", path: "/v1/admin/forms/xlsform", token: stackAdminToken, body: workbook(t, bad), contentType: xlsxType}).decode(t, &refusal)
	if len(refusal.Problems) != 2 || refusal.Problems[0].Row != 2 || refusal.Problems[0].Column != "type" || refusal.Problems[0].Message.ZH == "" || refusal.Problems[0].Message.EN == "" ||
		len(refusal.Warnings) != 1 || refusal.Error.Code != syncproto.EINVALID || len(refusal.Error.Fields) != 2 {
		t.Errorf("refusal = %+v", refusal)
	}
}

// TestFormsAPIForDevices publishes, reads and retires a form as JSON, and
// checks what an inspector's phone may do with the forms routes.
func TestFormsAPIForDevices(t *testing.T) {
	forEachStack(t, Config{}, testFormsAPIForDevices)
}

func testFormsAPIForDevices(t *testing.T, st *stack) {
	in := st.newInspector(t, "李督学", "0192b000-0000-7000-8000-000000000103")
	def := `{"id":"survey.canteen","version":1,"kind":"visit","title":{"zh":"食堂检查"},
		"fields":[{"key":"visit_date","type":"date","label":{"zh":"日期"},"required":true},
		{"key":"hygiene","type":"integer","label":{"zh":"卫生评分"},"constraints":[{"min":1,"max":5}]}]}`

	tests := []struct {
		name   string
		rq     request
		status int
		code   string
	}{
		{"DeviceCannotPublish", request{method: "POST", path: "/v1/admin/forms", token: in.token, body: []byte(def)}, 403, syncproto.EFORBIDDEN},
		{"UnknownMember", request{method: "POST", path: "/v1/admin/forms", token: stackAdminToken,
			body: []byte(strings.Replace(def, `"required":true`, `"required":true,"required_iff":"hygiene < 3"`, 1))}, 400, syncproto.EINVALID},
		{"TrailingData", request{method: "POST", path: "/v1/admin/forms", token: stackAdminToken, body: []byte(def + `{}`)}, 400, syncproto.EINVALID},
		{"Publish", request{method: "POST", path: "/v1/admin/forms", token: stackAdminToken, body: []byte(def)}, 201, ""},
		{"DeviceReadsList", request{method: "GET", path: "/v1/forms", token: in.token}, 200, ""},
		{"DeviceReadsForm", request{method: "GET", path: "/v1/forms/survey.canteen/1", token: in.token}, 200, ""},
		{"DeviceReadsBuiltin", request{method: "GET", path: "/v1/forms/lesson_observation/1", token: in.token}, 200, ""},
		{"UnknownVersion", request{method: "GET", path: "/v1/forms/survey.canteen/2", token: in.token}, 404, syncproto.ENOTFOUND},
		{"BadVersion", request{method: "GET", path: "/v1/forms/survey.canteen/v1", token: in.token}, 400, syncproto.EINVALID},
		{"DeviceCannotRetire", request{method: "POST", path: "/v1/admin/forms/survey.canteen/1/retire", token: in.token}, 403, syncproto.EFORBIDDEN},
		{"RetireUnpublished", request{method: "POST", path: "/v1/admin/forms/survey.canteen/2/retire", token: stackAdminToken}, 404, syncproto.ENOTFOUND},
		{"Retire", request{method: "POST", path: "/v1/admin/forms/survey.canteen/1/retire", token: stackAdminToken}, 200, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := st.do(t, tt.rq)
			if r.status != tt.status {
				t.Fatalf("%s %s = %d %s, want %d", tt.rq.method, tt.rq.path, r.status, r.body, tt.status)
			}
			if tt.code != "" {
				if e := r.errorOf(t); e.Code != tt.code {
					t.Errorf("code %q, want %q", e.Code, tt.code)
				}
			}
		})
	}

	var got struct {
		Definition forms.Definition
		Retired    bool
	}
	st.mustDo(t, 200, request{method: "GET", path: "/v1/forms/survey.canteen/1", token: in.token}).decode(t, &got)
	if !got.Retired || len(got.Definition.Fields) != 2 {
		t.Errorf("after retiring: retired %v, %d fields", got.Retired, len(got.Definition.Fields))
	}
	// The phone still gets its record of the retired version accepted,
	// flagged for the reviewers.
	w := in.writer()
	r := note(t, w, in.schools[0], "")
	r.Kind, r.FormID, r.FormVersion, r.Fields = "visit", "survey.canteen", 1, nil
	r, _ = syncproto.Set(r, "visit_date", []byte(`"2024-11-15"`), w)
	var resp syncproto.PushResponse
	st.mustDo(t, 200, request{method: "POST", path: "/v1/sync/push", token: in.token, body: pushBody(t, in.deviceID, r)}).decode(t, &resp)
	if res := resp.Results[0]; res.Status != syncproto.StatusApplied {
		t.Fatalf("push of a retired version's record: %+v", res)
	}
	var view struct{ Record syncproto.Record }
	st.mustDo(t, 200, request{method: "GET", path: "/v1/records/" + r.ID.String() + "?scope=" + in.schools[0], token: in.token}).decode(t, &view)
	if !slices.Contains(view.Record.Flags, server.FlagRetiredForm) {
		t.Errorf("flags %v, want %s", view.Record.Flags, server.FlagRetiredForm)
	}
}
