package forms

import (
	"regexp"
	"strings"
)

// Labels, hints and messages may show the values of other fields: a
// ${name} in their text, where name is what an expression of the field
// would call the other field (answers.age, or sib_age in the same repeat
// row), is replaced by its value as text; so are ${today}, ${now} and,
// in a repeat row, ${position}. Check refuses names that do not resolve.

var placeholderRE = regexp.MustCompile(`\$\{([A-Za-z][A-Za-z0-9_]*(?:\.[A-Za-z][A-Za-z0-9_]*)*)\}`)

// placeholders returns the names t shows.
func placeholders(t Text) []string {
	var out []string
	for _, s := range []string{t.ZH, t.EN} {
		for _, m := range placeholderRE.FindAllStringSubmatch(s, -1) {
			out = append(out, m[1])
		}
	}
	return out
}

// checkTexts reports names in n's texts that are not readable fields.
func (c *compiler) checkTexts(n *node) {
	f := n.f
	texts := []struct {
		attr string
		t    Text
	}{{"label", f.Label}, {"hint", f.Hint}, {"required_message", f.RequiredMessage}}
	for i, cs := range f.Constraints {
		texts = append(texts, struct {
			attr string
			t    Text
		}{"constraints[" + itoa(i) + "].message", cs.Message})
	}
	for _, x := range texts {
		for _, name := range placeholders(x.t) {
			if name == nameToday || name == nameNow || (name == namePosition && n.scope != nil) {
				continue
			}
			if m := c.lookup(n.scope, name); m == nil || !m.hasValue() {
				c.errs.add(n.key+"."+x.attr, textf("文本中的 ${%s} 不是可读取的字段", "${%s} in the text is not a field that can be shown", name))
				break
			}
		}
		if x.attr == "label" || x.attr == "hint" {
			if len(placeholders(x.t)) > 0 {
				n.texts = true
			}
		}
	}
}

// render fills in the ${name} of t with the values of in.
func (s *state) render(t Text, in *inst) Text {
	if !strings.Contains(t.ZH, "${") && !strings.Contains(t.EN, "${") {
		return t
	}
	env := s.envOf(in)
	fill := func(str string) string {
		return placeholderRE.ReplaceAllStringFunc(str, func(m string) string {
			return valueText(env[m[2:len(m)-1]])
		})
	}
	return Text{ZH: fill(t.ZH), EN: fill(t.EN)}
}

// fieldTexts records the filled-in label and hint of n in in.
func (s *state) fieldTexts(n *node, in *inst, path string) {
	if !n.texts {
		return
	}
	s.texts[path] = FieldText{Label: s.render(n.f.Label, in), Hint: s.render(n.f.Hint, in)}
}

// valueText renders a value for a text: strings as they are, numbers in
// the shortest decimal form, lists joined by spaces, a location as
// "lat lng", nothing for an empty value.
func valueText(v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case string:
		return x
	case float64, bool, int:
		return formatValue(x)
	case []string:
		return strings.Join(x, " ")
	case map[string]any:
		if lat, ok := asNumber(x["lat"]); ok {
			lng, _ := asNumber(x["lng"])
			return formatNumber(lat) + " " + formatNumber(lng)
		}
	}
	return ""
}

func itoa(i int) string {
	return formatNumber(float64(i))
}
