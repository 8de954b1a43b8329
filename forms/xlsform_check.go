//go:build !js

package forms

import (
	"fmt"
	"reflect"
	"sort"
	"strings"
)

// inferCalculateTypes gives each calculate row the type of its
// calculation's result: decimal for numbers, boolean, or text. Calculations
// that read other calculations are inferred after them.
func (imp *importer) inferCalculateTypes(d *Definition) {
	calc := map[*Field]bool{}
	for _, p := range imp.calcs {
		if f := fieldAt(d, p); f != nil {
			calc[f] = true
		}
	}
	for range len(calc) + 1 {
		c := &compiler{d: d, f: &form{}, errs: Errors{}, names: map[*node]map[string]*node{}, envs: map[*node]map[string]any{}}
		c.f.top = c.build(d.Fields, "fields", nil, nil, "", map[string]string{})
		c.buildEnvs()
		changed := false
		for _, n := range c.f.all {
			if !calc[n.f] || n.f.Calculation == "" {
				continue
			}
			p, err := parseExpr(n.f.Calculation)
			if err != nil {
				continue
			}
			prog, err := compileExpr(p, c.envFor(n, exprCalc), exprCalc, definitionFuncs(d)...)
			if err != nil {
				continue
			}
			t := TypeText
			if rt := prog.Node().Type(); rt != nil {
				switch rt.Kind() {
				case reflect.Float64, reflect.Int:
					t = TypeDecimal
				case reflect.Bool:
					t = TypeBoolean
				}
			}
			if t != n.f.Type {
				n.f.Type, changed = t, true
			}
		}
		if !changed {
			return
		}
	}
}

// fieldAt returns the field at a definition path such as
// "fields[10].fields[2]".
func fieldAt(d *Definition, path string) *Field {
	fields := d.Fields
	var f *Field
	for _, part := range strings.Split(path, ".") {
		var i int
		if _, err := fmt.Sscanf(part, "fields[%d]", &i); err != nil || i < 0 || i >= len(fields) {
			return nil
		}
		f = &fields[i]
		fields = f.Fields
	}
	return f
}

// checkColumns maps an attribute of a Check key to the survey column that
// holds it.
var checkColumns = []struct{ attr, column string }{
	{".relevant", "relevant"}, {".required_if", "required"}, {".required", "required"},
	{".calculation", "calculation"}, {".constraints", "constraint"}, {".choice_filter", "choice_filter"},
	{".default", "default"}, {".label", "label"}, {".key", "name"}, {".type", "type"},
	{".choice_list", "type"}, {".fields", "type"}, {".layout", "type"}, {".unique", "type"},
	{".min_count", "type"}, {".format", "type"}, {".origin", "type"}, {".repeat_count", "repeat_count"},
	{".read_only_if", "read_only"}, {".parameters", "parameters"}, {".trigger", "trigger"}, {".hint", "hint"},
	{".required_message", "required_message"}, {".meta", "type"}, {".once", "calculation"}, {".or_other", "type"},
}

// check runs Definition.Check and reports its problems on the rows they
// come from.
func (imp *importer) check(d *Definition) {
	rowKey := func(p XLSFormProblem) string {
		if p.Sheet == "settings" { // one row of settings: any problem there stands for all
			return p.Sheet
		}
		return fmt.Sprintf("%s/%d", p.Sheet, p.Row)
	}
	reported := map[string]bool{}
	for _, p := range imp.problems {
		reported[rowKey(p)] = true
	}
	n := len(imp.problems)
	defer func() {
		// A row that already has a problem keeps only the importer's.
		kept := imp.problems[:n]
		for _, p := range imp.problems[n:] {
			if !reported[rowKey(p)] {
				kept = append(kept, p)
			}
		}
		imp.problems = kept
	}()
	errs := compileDefinition(d).errs
	keys := make([]string, 0, len(errs))
	for k := range errs {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		msg := errs[k]
		switch {
		case k == "id":
			imp.problem("settings", 2, "form_id", msg)
			continue
		case k == "version":
			imp.problem("settings", 2, "version", msg)
			continue
		case k == "title_field" || strings.HasPrefix(k, "fields["+fmt.Sprint(len(d.Fields)-1)+"]") && d.TitleField != "":
			imp.problem("settings", 2, "instance_name", msg)
			continue
		case strings.HasPrefix(k, "title"):
			imp.problem("settings", 2, "form_title", msg)
			continue
		case strings.HasPrefix(k, "choices."):
			prefix := k
			if i := strings.Index(k, "]"); i >= 0 {
				prefix = k[:i+1]
			}
			imp.problem("choices", imp.choiceRow[prefix], "", msg)
			continue
		}
		// The longest field path that is a prefix of k names the row.
		best := ""
		for p := range imp.rowOf {
			if strings.HasPrefix(k, p) && len(p) > len(best) && (len(k) == len(p) || k[len(p)] == '.') {
				best = p
			}
		}
		if best == "" {
			imp.problem("", 0, "", Text{ZH: "表单定义无效：" + msg.ZH, EN: "invalid definition: " + k + ": " + msg.EN})
			continue
		}
		column := ""
		rest := k[len(best):]
		for _, c := range checkColumns {
			if strings.HasPrefix(rest, c.attr) {
				column = c.column
				break
			}
		}
		imp.problem("survey", imp.rowOf[best], column, msg)
	}
}

// questionnaireMeta are the fields every questionnaire response has before
// its answers (docs/domain.md E16). The built-in questionnaires have the same ones,
// with a constraint on the respondent type.
func questionnaireMeta() []Field {
	uuid := func(key, zh, en string, required bool) Field {
		return Field{Key: key, Type: TypeText, Format: "uuid", Required: required, Label: Text{ZH: zh, EN: en}}
	}
	return []Field{
		uuid("template_id", "问卷模板", "Template", true),
		{Key: "template_version", Type: TypeInteger, Required: true, Label: Text{ZH: "模板版本", EN: "Template version"}, Constraints: []Constraint{{Min: new(1.0)}}},
		uuid("school_id", "学校", "School", true),
		uuid("visit_id", "所属督导", "Visit", false),
		uuid("campaign_id", "所属督导任务", "Campaign", false),
		{Key: "respondent_type", Type: TypeSelectOne, ChoiceList: "respondent_type", Required: true, Label: Text{ZH: "答卷人", EN: "Respondent"}},
		{Key: "respondent_grade", Type: TypeText, Relevant: "respondent_type == 'student'", Label: Text{ZH: "年级", EN: "Grade"}, Constraints: []Constraint{{MaxLength: new(20)}}},
		{Key: "collection_mode", Type: TypeSelectOne, ChoiceList: "collection_mode", Required: true, Label: Text{ZH: "填写方式", EN: "Collection mode"}},
		uuid("collector_id", "收集人", "Collector", true),
		{Key: "collected_at", Type: TypeDateTime, Required: true, Label: Text{ZH: "填写时间", EN: "Collected at"}},
	}
}

// questionnaireMetaTail are the server fields after the answers.
func questionnaireMetaTail() []Field {
	return []Field{{Key: "status", Type: TypeText, Origin: OriginServer}, {Key: "void_reason", Type: TypeText, Origin: OriginServer}}
}

func questionnaireMetaChoices() map[string][]Choice {
	c := func(v, zh, en string) Choice { return Choice{Value: v, Label: Text{ZH: zh, EN: en}} }
	return map[string][]Choice{
		"respondent_type": {c("student", "学生", "student"), c("parent", "家长", "parent"), c("teacher", "教师", "teacher"),
			c("staff", "职工", "staff"), c("principal", "校长", "principal"), c("public", "社会公众", "public")},
		"collection_mode": {c("self_on_device", "本人在设备上填写", "self on device"), c("interview", "访谈代填", "interview"),
			c("paper_transcribed", "纸质录入", "paper transcribed"), c("online_link", "在线链接", "online link")},
	}
}
