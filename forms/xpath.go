package forms

import (
	"fmt"
	"strings"
	"unicode"
)

// This file translates XLSForm expressions (a small part of XPath 1.0 with
// ${name} references) into the expression subset of EXPRESSIONS.md.
// Whatever it cannot translate exactly is an error, never a guess.

// maxXPathLen bounds an expression cell; translated rules are limited to
// 2000 characters anyway.
const maxXPathLen = 2000

type xkind int

const (
	xRef    xkind = iota // ${name}
	xNum                 // 12, 3.5
	xStr                 // 'text' or "text"
	xName                // a bare name: a function, and/or/div/mod, or a choice column
	xOp                  // = != < <= > >= + - * |
	xLParen              // (
	xRParen              // )
	xComma               // ,
	xDot                 // . (the current value)
	xOther               // .. / [ ] @ and anything else XPath has but we do not
)

type xtoken struct {
	kind xkind
	text string
}

// xlex splits an XLSForm expression into tokens.
func xlex(src string) ([]xtoken, error) {
	var out []xtoken
	rs := []rune(src)
	for i := 0; i < len(rs); {
		r := rs[i]
		switch {
		case unicode.IsSpace(r):
			i++
		case r == '$' && i+1 < len(rs) && rs[i+1] == '{':
			j := i + 2
			for j < len(rs) && rs[j] != '}' {
				j++
			}
			if j >= len(rs) {
				return nil, fmt.Errorf("${ without }")
			}
			out = append(out, xtoken{xRef, strings.TrimSpace(string(rs[i+2 : j]))})
			i = j + 1
		case r >= '0' && r <= '9' || (r == '.' && i+1 < len(rs) && rs[i+1] >= '0' && rs[i+1] <= '9'):
			j := i
			for j < len(rs) && (rs[j] >= '0' && rs[j] <= '9' || rs[j] == '.') {
				j++
			}
			num := string(rs[i:j])
			if strings.HasPrefix(num, ".") {
				num = "0" + num
			}
			if !numberLiteral.MatchString(num) {
				return nil, fmt.Errorf("bad number %q", num)
			}
			out = append(out, xtoken{xNum, num})
			i = j
		case r == '\'' || r == '"':
			j := i + 1
			for j < len(rs) && rs[j] != r {
				j++
			}
			if j >= len(rs) {
				return nil, fmt.Errorf("unterminated string")
			}
			out = append(out, xtoken{xStr, string(rs[i+1 : j])})
			i = j + 1
		case r == '!' && i+1 < len(rs) && rs[i+1] == '=',
			r == '<' && i+1 < len(rs) && rs[i+1] == '=',
			r == '>' && i+1 < len(rs) && rs[i+1] == '=':
			out = append(out, xtoken{xOp, string(rs[i : i+2])})
			i += 2
		case strings.ContainsRune("=<>+-*|", r):
			out = append(out, xtoken{xOp, string(r)})
			i++
		case r == '(':
			out = append(out, xtoken{xLParen, "("})
			i++
		case r == ')':
			out = append(out, xtoken{xRParen, ")"})
			i++
		case r == ',':
			out = append(out, xtoken{xComma, ","})
			i++
		case r == '.':
			if i+1 < len(rs) && rs[i+1] == '.' {
				out = append(out, xtoken{xOther, ".."})
				i += 2
			} else {
				out = append(out, xtoken{xDot, "."})
				i++
			}
		case unicode.IsLetter(r) || r == '_':
			j := i
			for j < len(rs) && (unicode.IsLetter(rs[j]) || unicode.IsDigit(rs[j]) || strings.ContainsRune("_-:", rs[j])) {
				j++
			}
			out = append(out, xtoken{xName, string(rs[i:j])})
			i = j
		default:
			out = append(out, xtoken{xOther, string(r)})
			i++
		}
	}
	return out, nil
}

// xcontext says where a translated expression will be used.
type xcontext struct {
	column string    // "relevant", "constraint", "calculation", "required", "choice_filter"
	item   *xlsItem  // the survey row the expression is on
	syms   *xsymbols // every named survey row
}

// translateXPath translates one XLSForm expression.
func translateXPath(src string, ctx xcontext) (string, error) {
	if len(src) > maxXPathLen {
		return "", fmt.Errorf("longer than %d characters", maxXPathLen)
	}
	toks, err := xlex(src)
	if err != nil {
		return "", err
	}
	if len(toks) == 0 {
		return "", fmt.Errorf("empty expression")
	}
	return ctx.seq(toks)
}

// seq translates a sequence of tokens.
func (ctx xcontext) seq(toks []xtoken) (string, error) {
	var parts []string
	for i := 0; i < len(toks); i++ {
		t := toks[i]
		// ${x} = '' and ${x} != '' (either way round) become empty(x).
		if i+2 < len(toks) && toks[i+1].kind == xOp && (toks[i+1].text == "=" || toks[i+1].text == "!=") {
			if operand, ok := emptyOperand(t, toks[i+2]); ok {
				p, err := ctx.operand(operand)
				if err != nil {
					return "", err
				}
				neg := ""
				if toks[i+1].text == "!=" {
					neg = "!"
				}
				parts = append(parts, neg+"empty("+p+")")
				i += 2
				continue
			}
		}
		switch t.kind {
		case xRef:
			p, err := ctx.ref(t.text)
			if err != nil {
				return "", err
			}
			parts = append(parts, p)
		case xDot:
			if ctx.column != "constraint" {
				return "", fmt.Errorf("'.' may only be used in constraint")
			}
			parts = append(parts, nameSelf)
		case xNum:
			if ctx.comparedWithText(toks, i) {
				parts = append(parts, quote(t.text))
			} else {
				parts = append(parts, t.text)
			}
		case xStr:
			parts = append(parts, quote(t.text))
		case xOp:
			switch t.text {
			case "=":
				parts = append(parts, "==")
			case "|":
				return "", fmt.Errorf("the union operator | is not supported")
			default:
				parts = append(parts, t.text)
			}
		case xLParen:
			j, err := closing(toks, i)
			if err != nil {
				return "", err
			}
			inner, err := ctx.seq(toks[i+1 : j])
			if err != nil {
				return "", err
			}
			parts = append(parts, "("+inner+")")
			i = j
		case xName:
			if i+1 < len(toks) && toks[i+1].kind == xLParen {
				j, err := closing(toks, i+1)
				if err != nil {
					return "", err
				}
				call, err := ctx.call(t.text, splitArgs(toks[i+2:j]))
				if err != nil {
					return "", err
				}
				parts = append(parts, call)
				i = j
				continue
			}
			switch t.text {
			case "and":
				parts = append(parts, "&&")
			case "or":
				parts = append(parts, "||")
			case "div":
				parts = append(parts, "/")
			case "mod":
				parts = append(parts, "%")
			default:
				if ctx.column == "choice_filter" && fieldKeyRE.MatchString(t.text) {
					parts = append(parts, nameChoic+"."+t.text)
					continue
				}
				return "", fmt.Errorf("unsupported name %q: refer to fields as ${name}", t.text)
			}
		case xRParen:
			return "", fmt.Errorf("unbalanced )")
		case xComma:
			return "", fmt.Errorf("unexpected ,")
		default:
			return "", fmt.Errorf("XPath %q is not supported: refer to fields as ${name}", t.text)
		}
	}
	if len(parts) == 0 {
		return "", fmt.Errorf("empty expression")
	}
	return strings.Join(parts, " "), nil
}

// emptyOperand recognizes a comparison of ${x} (or ".", the current
// value) with the empty string, either way round, and returns the operand.
func emptyOperand(a, b xtoken) (xtoken, bool) {
	isOperand := func(t xtoken) bool { return t.kind == xRef || t.kind == xDot }
	isEmpty := func(t xtoken) bool { return t.kind == xStr && t.text == "" }
	switch {
	case isOperand(a) && isEmpty(b):
		return a, true
	case isEmpty(a) && isOperand(b):
		return b, true
	}
	return xtoken{}, false
}

// operand translates ${x} or ".".
func (ctx xcontext) operand(t xtoken) (string, error) {
	if t.kind == xDot {
		if ctx.column != "constraint" {
			return "", fmt.Errorf("'.' may only be used in constraint")
		}
		return nameSelf, nil
	}
	return ctx.ref(t.text)
}

// comparedWithText reports whether the number at toks[i] is compared with
// a field holding text (a choice, a text): XLSForm writes ${q} = 1 for the
// choice named "1".
func (ctx xcontext) comparedWithText(toks []xtoken, i int) bool {
	textRef := func(t xtoken) bool {
		if t.kind == xDot {
			return ctx.item != nil && ctx.item.textual()
		}
		if t.kind != xRef {
			return false
		}
		s := ctx.syms.byName[t.text]
		return s != nil && s.textual()
	}
	cmp := func(t xtoken) bool { return t.kind == xOp && (t.text == "=" || t.text == "!=") }
	return (i >= 2 && cmp(toks[i-1]) && textRef(toks[i-2])) || (i+2 < len(toks) && cmp(toks[i+1]) && textRef(toks[i+2]))
}

// ref resolves ${name} to the name expressions use in this context.
func (ctx xcontext) ref(name string) (string, error) {
	s := ctx.syms.byName[name]
	if s == nil {
		return "", fmt.Errorf("${%s} is not a field of this form", name)
	}
	if s.kind == "begin group" {
		return "", fmt.Errorf("${%s} is a group: refer to its fields", name)
	}
	if s.kind == "note" {
		return "", fmt.Errorf("${%s} is a note and has no value", name)
	}
	rep := s.repeat()
	if rep != nil && rep != ctx.scope() {
		return "", fmt.Errorf("${%s} is inside the repeat %s: use sum(${%s}) or count(${%s})", name, rep.name, name, rep.name)
	}
	return ctx.syms.path(s, ctx.scope()), nil
}

// scope returns the repeat whose rows the expression is evaluated in: the
// repeat holding the row, or nil. A repeat's own expressions run outside it.
func (ctx xcontext) scope() *xlsItem {
	if ctx.item == nil {
		return nil
	}
	return ctx.item.repeat()
}

// call translates a function call.
func (ctx xcontext) call(name string, args [][]xtoken) (string, error) {
	want := func(n int) error {
		if len(args) != n {
			return fmt.Errorf("%s() takes %d argument(s)", name, n)
		}
		return nil
	}
	tr := func(a []xtoken) (string, error) { return ctx.seq(a) }
	switch name {
	case "today", "true", "false":
		if err := want(0); err != nil {
			return "", err
		}
		return name, nil
	case "selected":
		if err := want(2); err != nil {
			return "", err
		}
		a, err := tr(args[0])
		if err != nil {
			return "", err
		}
		if len(args[1]) != 1 || (args[1][0].kind != xStr && args[1][0].kind != xNum) {
			return "", fmt.Errorf("the second argument of selected() must be a choice name in quotes")
		}
		return "selected(" + a + ", " + quote(args[1][0].text) + ")", nil
	case "count-selected", "string-length", "not", "number":
		if err := want(1); err != nil {
			return "", err
		}
		a, err := tr(args[0])
		if err != nil {
			return "", err
		}
		switch name {
		case "count-selected":
			return "count(" + a + ")", nil
		case "string-length":
			return "len(" + a + ")", nil
		case "not":
			return "!(" + a + ")", nil
		}
		return "number(" + a + ")", nil
	case "if":
		if err := want(3); err != nil {
			return "", err
		}
		var p [3]string
		for i := range p {
			s, err := tr(args[i])
			if err != nil {
				return "", err
			}
			p[i] = s
		}
		return "(" + p[0] + " ? " + p[1] + " : " + p[2] + ")", nil
	case "coalesce":
		if err := want(2); err != nil {
			return "", err
		}
		a, err := tr(args[0])
		if err != nil {
			return "", err
		}
		b, err := tr(args[1])
		if err != nil {
			return "", err
		}
		return "coalesce(" + a + ", " + b + ")", nil
	case "regex":
		if err := want(2); err != nil {
			return "", err
		}
		a, err := tr(args[0])
		if err != nil {
			return "", err
		}
		if len(args[1]) != 1 || args[1][0].kind != xStr {
			return "", fmt.Errorf("the pattern of regex() must be in quotes")
		}
		return "regex(" + a + ", " + quote(args[1][0].text) + ")", nil
	case "count", "sum":
		if err := want(1); err != nil {
			return "", err
		}
		if len(args[0]) != 1 || args[0][0].kind != xRef {
			return "", fmt.Errorf("%s() takes one ${field}", name)
		}
		s := ctx.syms.byName[args[0][0].text]
		if s == nil {
			return "", fmt.Errorf("${%s} is not a field of this form", args[0][0].text)
		}
		rep := s
		if s.kind != "begin repeat" {
			rep = s.repeat()
		}
		if rep == nil || rep == ctx.scope() || rep.repeat() != ctx.scope() {
			return "", fmt.Errorf("%s() needs a repeat, or a field inside a repeat, read from outside it", name)
		}
		path := ctx.syms.path(rep, ctx.scope())
		if name == "count" {
			return "count(" + path + ")", nil
		}
		if s == rep {
			return "", fmt.Errorf("sum() needs a field inside the repeat, not the repeat")
		}
		return "sum(" + path + ", " + quote(s.name) + ")", nil
	}
	return "", fmt.Errorf("unsupported function %s()", name)
}

// closing returns the index of the parenthesis closing toks[open].
func closing(toks []xtoken, open int) (int, error) {
	depth := 0
	for j := open; j < len(toks); j++ {
		switch toks[j].kind {
		case xLParen:
			depth++
		case xRParen:
			depth--
			if depth == 0 {
				return j, nil
			}
		}
	}
	return 0, fmt.Errorf("unbalanced (")
}

// splitArgs splits function arguments at top-level commas.
func splitArgs(toks []xtoken) [][]xtoken {
	if len(toks) == 0 {
		return nil
	}
	var args [][]xtoken
	depth, start := 0, 0
	for j, t := range toks {
		switch t.kind {
		case xLParen:
			depth++
		case xRParen:
			depth--
		case xComma:
			if depth == 0 {
				args = append(args, toks[start:j])
				start = j + 1
			}
		}
	}
	return append(args, toks[start:])
}

// quote writes s as a single-quoted string of the expression subset.
func quote(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `'`, `\'`, "\n", `\n`, "\t", `\t`)
	return "'" + r.Replace(s) + "'"
}
