package forms

import (
	"fmt"
	"sort"
	"strings"

	"github.com/fieldsync/fieldsync/syncproto"
)

// Errors maps a field key to a message about it, in Chinese and English.
// Keys are paths into the record: "visit_date", "feedback.to_name",
// "steps[3].at" (rows count from 0), "answers.Q1" (the answer to question
// Q1), "answers[2].qid" (the third element of the answer list). Keys of a
// definition's own problems (Check) read like "fields[3].type".
type Errors map[string]Text

// KeyForm is the Errors key of a problem that is not about one field, such
// as a record that is not a JSON object or a definition that does not
// compile.
const KeyForm = "(form)"

// Err returns nil when e is empty, and otherwise a *syncproto.Error with
// code syncproto.EINVALID whose Fields map each key to its Chinese message
// (the English one when there is no Chinese text). The phone shows the
// Text messages of Errors itself; the wire carries what the UI shows.
func (e Errors) Err() error {
	return e.err(Text{ZH: "记录未通过校验", EN: "the record failed validation"})
}

func (e Errors) err(msg Text) error {
	if len(e) == 0 {
		return nil
	}
	fields := make(map[string]string, len(e))
	for k, t := range e {
		fields[k] = t.String()
	}
	return syncproto.FieldError(fmt.Sprintf("%s（%d）/ %s (%d)", msg.ZH, len(e), msg.EN, len(e)), fields)
}

// String lists the errors in key order, in English when available; it is
// meant for logs and test failures.
func (e Errors) String() string {
	keys := make([]string, 0, len(e))
	for k := range e {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for i, k := range keys {
		if i > 0 {
			b.WriteString("; ")
		}
		msg := e[k].EN
		if msg == "" {
			msg = e[k].ZH
		}
		fmt.Fprintf(&b, "%s: %s", k, msg)
	}
	return b.String()
}

// add records msg for key unless key already has a message: the first
// problem found about a field is the one reported.
func (e Errors) add(key string, msg Text) {
	if _, ok := e[key]; !ok {
		e[key] = msg
	}
}

// textf builds a Text from two format strings sharing the same arguments.
func textf(zh, en string, args ...any) Text {
	return Text{ZH: fmt.Sprintf(zh, args...), EN: fmt.Sprintf(en, args...)}
}

// Messages of Validate. They are part of the conformance contract
// (testdata/conformance): other implementations must produce the same text.
var (
	msgRequired      = Text{ZH: "此项必填", EN: "required"}
	msgUnknownField  = Text{ZH: "表单中没有此项", EN: "unknown field"}
	msgNotRelevant   = Text{ZH: "此项不适用，应为空", EN: "not applicable here: must be empty"}
	msgNoteHasValue  = Text{ZH: "说明项不能填写内容", EN: "a note holds no value"}
	msgNotObject     = Text{ZH: "应为对象", EN: "must be an object"}
	msgNotList       = Text{ZH: "应为列表", EN: "must be a list"}
	msgNotText       = Text{ZH: "应为文本", EN: "must be text"}
	msgNotInteger    = Text{ZH: "应为整数", EN: "must be a whole number"}
	msgNotDecimal    = Text{ZH: "应为数字，如 \"87.5\"", EN: "must be a number such as \"87.5\""}
	msgNotBoolean    = Text{ZH: "应为是或否（true/false）", EN: "must be true or false"}
	msgNotDate       = Text{ZH: "日期格式应为 YYYY-MM-DD", EN: "must be a date YYYY-MM-DD"}
	msgNotTime       = Text{ZH: "时间格式应为 HH:MM", EN: "must be a time HH:MM"}
	msgNotDateTime   = Text{ZH: "应为带时区的时间，如 2024-10-15T08:00:00+08:00", EN: "must be a time with offset such as 2024-10-15T08:00:00+08:00"}
	msgNotGeopoint   = Text{ZH: "位置应为 {lat, lng, accuracy_m}，纬度 -90～90，经度 -180～180", EN: "must be a location {lat, lng, accuracy_m} with lat -90..90 and lng -180..180"}
	msgNotChoiceText = Text{ZH: "选项应为文本", EN: "a choice must be text"}
	msgDuplicateItem = Text{ZH: "有重复的项", EN: "has duplicate items"}
	msgNotUUID       = Text{ZH: "应为 UUID", EN: "must be a UUID"}
	msgNotEmail      = Text{ZH: "应为电子邮件地址", EN: "must be an e-mail address"}
	msgNotURL        = Text{ZH: "应为网址", EN: "must be a URL"}
	msgNotMonth      = Text{ZH: "月份格式应为 YYYY-MM", EN: "must be a month YYYY-MM"}
	msgBadPattern    = Text{ZH: "格式不正确", EN: "has the wrong format"}
	msgRuleFailed    = Text{ZH: "不符合填写规则", EN: "does not satisfy the rule"}
	msgAnswerQID     = Text{ZH: "答案应有题号 qid", EN: "an answer needs a qid"}
	msgAnswerDupQID  = Text{ZH: "同一题有多个答案", EN: "more than one answer to this question"}
)

var (
	msgNotGeotrace    = Text{ZH: "轨迹应为至少 2 个位置 {lat, lng, accuracy_m} 的列表", EN: "must be a list of at least 2 locations {lat, lng, accuracy_m}"}
	msgNotGeoshape    = Text{ZH: "区域应为至少 3 个位置 {lat, lng, accuracy_m} 的列表", EN: "must be a list of at least 3 locations {lat, lng, accuracy_m}"}
	msgNotAcknowledge = Text{ZH: "确认项的值只能是 \"OK\"", EN: "must be \"OK\""}
	msgRankIncomplete = Text{ZH: "排序应包含每个选项各一次", EN: "must order every choice exactly once"}
)

func msgRangeStep(lo, hi, step float64) Text {
	return textf("应在 %s 到 %s 之间，步长 %s", "must be between %s and %s in steps of %s", formatNumber(lo), formatNumber(hi), formatNumber(step))
}

func msgRepeatCount(n int) Text {
	return textf("应有 %d 行", "must have %d row(s)", n)
}

func msgNotChoice(v string) Text {
	return textf("“%s”不是可选项", "%q is not one of the choices", v)
}

func msgDuplicateRow(first int) Text {
	return textf("与第 %d 行重复", "duplicates row %d", first)
}

func msgCountMinFiles(n int) Text {
	return textf("至少需要 %d 个文件", "needs at least %d file(s)", n)
}

func msgCountMaxFiles(n int) Text {
	return textf("最多 %d 个文件", "at most %d file(s)", n)
}

func msgCountMin(n int, photo bool) Text {
	if photo {
		return textf("至少需要 %d 张照片", "needs at least %d photo(s)", n)
	}
	return textf("至少需要 %d 项", "needs at least %d item(s)", n)
}

func msgCountMax(n int, photo bool) Text {
	if photo {
		return textf("最多 %d 张照片", "at most %d photo(s)", n)
	}
	return textf("最多 %d 项", "at most %d item(s)", n)
}

func msgComputed(want any) Text {
	if want == nil {
		return Text{ZH: "此项由系统计算，结果为空，不应填写", EN: "computed value is empty: leave it empty"}
	}
	s := formatValue(want)
	return textf("此项由系统计算，应为 %s", "must equal the computed value %s", s)
}

func msgRange(min, max *float64) Text {
	switch {
	case min != nil && max != nil:
		return textf("应在 %s 到 %s 之间", "must be between %s and %s", formatNumber(*min), formatNumber(*max))
	case min != nil:
		return textf("应不小于 %s", "must be at least %s", formatNumber(*min))
	default:
		return textf("应不大于 %s", "must be at most %s", formatNumber(*max))
	}
}

func msgLength(min, max *int) Text {
	switch {
	case min != nil && max != nil:
		return textf("长度应为 %d 到 %d 个字", "must be %d to %d characters long", *min, *max)
	case min != nil:
		return textf("至少 %d 个字", "must be at least %d characters long", *min)
	default:
		return textf("最多 %d 个字", "must be at most %d characters long", *max)
	}
}

// formatValue renders a value as it appears in a record: strings as they
// are, numbers in the shortest decimal form, booleans as true/false.
func formatValue(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case float64:
		return formatNumber(x)
	case bool:
		if x {
			return "true"
		}
		return "false"
	}
	return fmt.Sprint(v)
}
