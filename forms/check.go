package forms

import (
	"errors"
	"reflect"
	"regexp"
	"strings"
	"sync"

	"github.com/go-playground/validator/v10"
)

// Check validates the definition itself, as the server does before
// publishing it: the structure (types, keys, layouts, counts), duplicate
// keys, choice lists that do not exist, references to missing fields,
// expressions that leave the subset or do not compile, circular
// calculations, patterns and defaults.
//
// Structural problems (unknown types, malformed keys, missing required
// attributes) are reported first and alone; the semantic checks run once
// the structure is sound.
//
// It returns nil or a *syncproto.Error with code syncproto.EINVALID whose
// Fields are keyed by the definition path of each problem, such as
// "fields[3].type", "fields[2].fields[0].relevant" or
// "choices.yes_no[1].value", with the Chinese message as value.
func (d *Definition) Check() error {
	return d.compile().errs.err(Text{ZH: "表单定义无效", EN: "the form definition is invalid"})
}

// compile checks d and prepares it for Validate and Compute, once.
func (d *Definition) compile() *compileResult {
	if r := d.compiled.Load(); r != nil {
		return r
	}
	r := compileDefinition(d)
	d.compiled.CompareAndSwap(nil, r)
	return d.compiled.Load()
}

var (
	formIDRE   = regexp.MustCompile(`^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*$`)
	fieldKeyRE = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_]*$`)
	listNameRE = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_-]*$`)
	monthRE    = regexp.MustCompile(`^[0-9]{4}-(0[1-9]|1[0-2])$`)
)

// formatTags maps a Field.Format to the validator tag that checks it. Only
// these fixed tags ever reach validator: tags built from definitions would
// make it panic on an unknown name and grow its tag cache without bound.
var formatTags = map[string]string{
	"uuid":  "uuid",
	"email": "email",
	"url":   "url",
}

// validate is the one validator; it is safe for concurrent use.
var validate = sync.OnceValue(func() *validator.Validate {
	v := validator.New(validator.WithRequiredStructEnabled())
	v.RegisterTagNameFunc(func(f reflect.StructField) string {
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "-" {
			return ""
		}
		return name
	})
	for tag, re := range map[string]*regexp.Regexp{"formid": formIDRE, "fieldkey": fieldKeyRE, "listname": listNameRE} {
		if err := v.RegisterValidation(tag, func(fl validator.FieldLevel) bool {
			return re.MatchString(fl.Field().String())
		}); err != nil {
			panic(err)
		}
	}
	return v
})

// checkStructure runs the validator tags of Definition and its parts.
func checkStructure(d *Definition) Errors {
	errs := Errors{}
	err := validate().Struct(d)
	if err == nil {
		return errs
	}
	var verrs validator.ValidationErrors
	if !errors.As(err, &verrs) {
		errs.add(KeyForm, Text{ZH: "无法检查表单定义", EN: "cannot check the definition: " + err.Error()})
		return errs
	}
	for _, fe := range verrs {
		errs.add(structKey(fe.Namespace()), tagMessage(fe))
	}
	return errs
}

// structKey turns validator's "Definition.choices[yes_no][0].value" into
// "choices.yes_no[0].value".
func structKey(ns string) string {
	_, ns, _ = strings.Cut(ns, ".")
	for _, m := range []string{"choices[", "props["} {
		for {
			i := strings.Index(ns, m)
			if i < 0 {
				break
			}
			j := strings.IndexByte(ns[i+len(m):], ']')
			if j < 0 {
				break
			}
			name := ns[i+len(m) : i+len(m)+j]
			ns = ns[:i] + m[:len(m)-1] + "." + name + ns[i+len(m)+j+1:]
		}
	}
	return ns
}

// tagMessage explains a failed validator tag.
func tagMessage(fe validator.FieldError) Text {
	p := fe.Param()
	countable := fe.Kind() == reflect.Slice || fe.Kind() == reflect.Map
	switch fe.Tag() {
	case "required":
		return msgRequired
	case "oneof":
		return textf("应为以下之一：%s", "must be one of: %s", p)
	case "min":
		switch {
		case countable:
			return textf("至少需要 %s 项", "needs at least %s item(s)", p)
		case fe.Kind() == reflect.String:
			return textf("至少 %s 个字符", "must be at least %s characters long", p)
		}
		return textf("应不小于 %s", "must be at least %s", p)
	case "max":
		switch {
		case countable:
			return textf("最多 %s 项", "at most %s item(s)", p)
		case fe.Kind() == reflect.String:
			return textf("最多 %s 个字符", "must be at most %s characters long", p)
		}
		return textf("应不大于 %s", "must be at most %s", p)
	case "formid":
		return Text{ZH: "表单编号只能用小写字母、数字、下划线和点，如 visit.routine", EN: "a form id uses lower-case letters, digits, _ and dots, such as visit.routine"}
	case "fieldkey":
		return Text{ZH: "名称只能用字母、数字和下划线，并以字母开头", EN: "a name uses letters, digits and _, starting with a letter"}
	case "listname":
		return Text{ZH: "选项列表名只能用字母、数字、下划线和连字符，并以字母开头", EN: "a list name uses letters, digits, _ and -, starting with a letter"}
	}
	return textf("不符合规则 %s", "fails rule %s", fe.Tag())
}
