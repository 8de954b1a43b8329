//go:build !js

package forms

import (
	"errors"
	"fmt"
	"regexp"
	"strconv"
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
	column string    // "relevant", "constraint", "calculation", "required", "choice_filter", …
	item   *xlsItem  // the survey row the expression is on
	syms   *xsymbols // every named survey row
	imp    *importer // for the files pulldata() reads
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
	out, err := ctx.seq(toks)
	if err == nil && len(out) > maxXPathLen {
		return "", fmt.Errorf("longer than %d characters once translated", maxXPathLen)
	}
	return out, err
}

// piece is one translated unit of an expression: an operand or an
// operator. typ is what the operand holds: "text", "number", "date",
// "datetime", "list", "bool", "prop" (a choice property), "str" and
// "num" (literals), or "".
type piece struct {
	text string
	typ  string
	op   bool
	lit  string // the literal's value, for "str" and "num"
}

// seq translates a sequence of tokens.
func (ctx xcontext) seq(toks []xtoken) (string, error) {
	ps, err := ctx.pieces(toks)
	if err != nil {
		return "", err
	}
	return joinPieces(ps), nil
}

func joinPieces(ps []piece) string {
	parts := make([]string, len(ps))
	for i, p := range ps {
		parts[i] = p.text
	}
	return strings.Join(parts, " ")
}

// pieces translates tokens into pieces, then adjusts operands to the
// operators between them as XPath would convert them: dates in
// arithmetic become days, numbers compared with text become text or
// numbers, a multiple choice compared with text becomes its
// space-separated text.
func (ctx xcontext) pieces(toks []xtoken) ([]piece, error) {
	var ps []piece
	for i := 0; i < len(toks); i++ {
		t := toks[i]
		// ${x} = '' and ${x} != '' (either way round) become empty(x).
		if i+2 < len(toks) && toks[i+1].kind == xOp && (toks[i+1].text == "=" || toks[i+1].text == "!=") {
			if operand, ok := emptyOperand(t, toks[i+2]); ok {
				p, err := ctx.operand(operand)
				if err != nil {
					return nil, err
				}
				neg := ""
				if toks[i+1].text == "!=" {
					neg = "!"
				}
				ps = append(ps, piece{text: neg + "empty(" + p.text + ")", typ: "bool"})
				i += 2
				continue
			}
		}
		switch t.kind {
		case xRef, xDot:
			p, err := ctx.operand(t)
			if err != nil {
				return nil, err
			}
			ps = append(ps, p)
		case xNum:
			ps = append(ps, piece{text: t.text, typ: "num", lit: t.text})
		case xStr:
			ps = append(ps, piece{text: quote(t.text), typ: "str", lit: t.text})
		case xOp:
			switch t.text {
			case "=":
				ps = append(ps, piece{text: "==", op: true})
			case "|":
				return nil, fmt.Errorf("the union operator | is not supported")
			default:
				ps = append(ps, piece{text: t.text, op: true})
			}
		case xLParen:
			j, err := closing(toks, i)
			if err != nil {
				return nil, err
			}
			inner, err := ctx.pieces(toks[i+1 : j])
			if err != nil {
				return nil, err
			}
			typ := ""
			if len(inner) == 1 {
				typ = inner[0].typ
			}
			ps = append(ps, piece{text: "(" + joinPieces(inner) + ")", typ: typ})
			i = j
		case xName:
			if i+1 < len(toks) && toks[i+1].kind == xLParen {
				j, err := closing(toks, i+1)
				if err != nil {
					return nil, err
				}
				p, err := ctx.call(t.text, splitArgs(toks[i+2:j]))
				if err != nil {
					return nil, err
				}
				ps = append(ps, p)
				i = j
				continue
			}
			switch t.text {
			case "and":
				ps = append(ps, piece{text: "&&", op: true})
			case "or":
				ps = append(ps, piece{text: "||", op: true})
			case "div":
				ps = append(ps, piece{text: "/", op: true})
			case "mod":
				ps = append(ps, piece{text: "%", op: true})
			default:
				if ctx.column == "choice_filter" && (t.text == "name" || t.text == "value") {
					ps = append(ps, piece{text: nameChoic + ".value", typ: "prop"})
					continue
				}
				if ctx.column == "choice_filter" && fieldKeyRE.MatchString(t.text) && !keywordNames[t.text] {
					ps = append(ps, piece{text: nameChoic + "." + t.text, typ: "prop"})
					continue
				}
				return nil, fmt.Errorf("unsupported name %q: refer to fields as ${name}", t.text)
			}
		case xRParen:
			return nil, fmt.Errorf("unbalanced )")
		case xComma:
			return nil, fmt.Errorf("unexpected ,")
		default:
			return nil, fmt.Errorf("XPath %q is not supported: refer to fields as ${name}", t.text)
		}
	}
	if len(ps) == 0 {
		return nil, fmt.Errorf("empty expression")
	}
	for i, p := range ps {
		if !p.op || i == 0 || i+1 >= len(ps) || ps[i-1].op || ps[i+1].op {
			continue
		}
		a, b := &ps[i-1], &ps[i+1]
		switch p.text {
		case "+", "-", "*", "/", "%":
			for _, x := range []*piece{a, b} {
				switch x.typ {
				case "date":
					x.text, x.typ = "days("+x.text+")", "number"
				case "datetime":
					x.text, x.typ = "(seconds("+x.text+") / 86400)", "number"
				case "str":
					if _, ok := parseDecimal(x.lit); ok {
						x.text, x.typ = x.lit, "num"
					}
				case "text", "prop":
					// XPath's arithmetic reads numbers: a choice "5" is 5.
					x.text, x.typ = "number("+x.text+")", "number"
				}
			}
		case "==", "!=", "<", "<=", ">", ">=":
			// An operand next to an arithmetic operator is only part of
			// its side: that side is a number, and only the other side
			// may be converted.
			arith := func(j int) bool {
				return j >= 0 && j < len(ps) && ps[j].op && strings.Contains("+-*/%", ps[j].text)
			}
			type side struct {
				p      *piece
				simple bool
				typ    string
			}
			l := side{a, !arith(i - 2), a.typ}
			r := side{b, !arith(i + 2), b.typ}
			for _, s := range []*side{&l, &r} {
				if !s.simple {
					s.typ = "number"
				}
			}
			for _, pair := range [][2]*side{{&l, &r}, {&r, &l}} {
				x, y := pair[0], pair[1]
				switch {
				case x.typ == "list" && y.typ == "str" && x.simple && (p.text == "==" || p.text == "!="):
					x.p.text, x.p.typ, x.typ = "join(' ', "+x.p.text+")", "text", "text"
				case (x.typ == "text" || x.typ == "prop" || x.typ == "date" || x.typ == "datetime") && y.typ == "num" && y.simple:
					y.p.text, y.p.typ, y.typ = quote(y.p.lit), "str", "str" // XLSForm writes ${choice} = 1 for the choice named "1"
				case x.typ == "number" && y.typ == "str" && y.simple:
					if _, ok := parseDecimal(y.p.lit); ok {
						y.p.text, y.p.typ, y.typ = y.p.lit, "num", "num"
					}
				case x.typ == "prop" && y.typ == "number" && y.simple:
					y.p.text, y.p.typ, y.typ = "string("+y.p.text+")", "text", "text"
				case (x.typ == "text" || x.typ == "prop") && y.typ == "number" && x.simple:
					x.p.text, x.p.typ, x.typ = "number("+x.p.text+")", "number", "number"
				}
			}
		}
	}
	return ps, nil
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
func (ctx xcontext) operand(t xtoken) (piece, error) {
	if t.kind == xDot {
		if ctx.column != "constraint" {
			return piece{}, fmt.Errorf("'.' may only be used in constraint")
		}
		return piece{text: nameSelf, typ: ctx.item.valueType()}, nil
	}
	it, err := ctx.lookup(t.text)
	if err != nil {
		return piece{}, err
	}
	p, err := ctx.ref(t.text)
	return piece{text: p, typ: it.valueType()}, err
}

// errSkipped is the error of a name whose row was refused: the row's
// problem is already reported.
var errSkipped = errors.New("the row of this name was refused")

// lookup finds the row ${name} names.
func (ctx xcontext) lookup(name string) (*xlsItem, error) {
	its := ctx.syms.byName[name]
	switch {
	case len(its) == 0 && ctx.imp != nil && ctx.imp.skipped[name]:
		return nil, errSkipped
	case len(its) == 0:
		return nil, fmt.Errorf("${%s} is not a field of this form", name)
	case len(its) > 1:
		return nil, fmt.Errorf("${%s} names more than one question (rows %d and %d): rename one", name, its[0].row, its[1].row)
	}
	return its[0], nil
}

// ref resolves ${name} to the name expressions use in this context.
func (ctx xcontext) ref(name string) (string, error) {
	s, err := ctx.lookup(name)
	if err != nil {
		return "", err
	}
	switch s.kind {
	case "begin group":
		return "", fmt.Errorf("${%s} is a group: refer to its fields", name)
	case "note":
		return "", fmt.Errorf("${%s} is a note and has no value", name)
	}
	if s == ctx.item && ctx.column != "constraint" && ctx.column != "label" {
		if ctx.column == "calculation" || ctx.column == "default" || ctx.column == "relevant" {
			return "", fmt.Errorf("${%s} refers to the question itself", name)
		}
	}
	if rep := s.repeat(); rep != nil && !within(rep, ctx.scope()) {
		return "", fmt.Errorf("${%s} is inside the repeat %s: use sum(${%s}), count(${%s}) or indexed-repeat()", name, rep.name, name, rep.name)
	}
	return ctx.syms.path(s), nil
}

// scope returns the repeat whose rows the expression is evaluated in: the
// repeat holding the row, or nil. A repeat's own expressions run outside it.
func (ctx xcontext) scope() *xlsItem {
	if ctx.item == nil {
		return nil
	}
	return ctx.item.repeat()
}

// xfunc is an XPath function the subset has under another name (or the
// same), with its number of arguments (max -1: any) and result type.
type xfunc struct {
	name     string
	min, max int
	typ      string
}

var xfuncs = map[string]xfunc{
	"concat": {"concat", 0, -1, "text"}, "join": {"join", 2, 2, "text"}, "substr": {"substr", 2, 3, "text"},
	"contains": {"contains_text", 2, 2, "bool"}, "starts-with": {"starts_with", 2, 2, "bool"}, "ends-with": {"ends_with", 2, 2, "bool"},
	"substring-before": {"substring_before", 2, 2, "text"}, "substring-after": {"substring_after", 2, 2, "text"},
	"translate": {"translate", 3, 3, "text"}, "normalize-space": {"normalize_space", 1, 1, "text"},
	"string": {"string", 1, 1, "text"}, "boolean": {"boolean", 1, 1, "bool"}, "boolean-from-string": {"boolean_from_string", 1, 1, "bool"},
	"int": {"int", 1, 1, "number"}, "number": {"number", 1, 1, "number"}, "round": {"round", 1, 2, "number"},
	"floor": {"floor", 1, 1, "number"}, "ceiling": {"ceiling", 1, 1, "number"}, "abs": {"abs", 1, 1, "number"},
	"sqrt": {"sqrt", 1, 1, "number"}, "exp": {"exp", 1, 1, "number"}, "exp10": {"exp10", 1, 1, "number"},
	"log": {"log", 1, 1, "number"}, "log10": {"log10", 1, 1, "number"}, "sin": {"sin", 1, 1, "number"},
	"cos": {"cos", 1, 1, "number"}, "tan": {"tan", 1, 1, "number"}, "asin": {"asin", 1, 1, "number"},
	"acos": {"acos", 1, 1, "number"}, "atan": {"atan", 1, 1, "number"}, "atan2": {"atan2", 2, 2, "number"},
	"pow": {"pow", 2, 2, "number"}, "pi": {"pi", 0, 0, "number"}, "selected-at": {"selected_at", 2, 2, "text"},
	"checklist": {"checklist", 2, -1, "bool"}, "weighted-checklist": {"weighted_checklist", 2, -1, "bool"},
	"date": {"date", 1, 1, "date"}, "date-time": {"date_time", 1, 1, "datetime"},
	"decimal-date-time": {"decimal_date_time", 1, 1, "number"}, "decimal-time": {"decimal_time", 1, 1, "number"},
	"format-date": {"format_date", 2, 2, "text"}, "format-date-time": {"format_date_time", 2, 2, "text"},
	"area": {"area", 1, 1, "number"}, "distance": {"distance", 1, 2, "number"}, "coalesce": {"coalesce", 2, 2, ""},
	"count-selected": {"count", 1, 1, "number"}, "string-length": {"len", 1, 1, "number"}, "selected": {"selected", 2, 2, "bool"},
	"random": {"random", 0, 0, "number"}, "uuid": {"uuid", 0, 0, "text"},
}

// refusedFuncs are XPath functions fieldsync cannot evaluate, with why.
var refusedFuncs = map[string]string{
	"instance":       "instance() reads secondary instances, which fieldsync does not have: use select_one_from_file or pulldata()",
	"current":        "current() is only meaningful with instance(), which fieldsync does not have",
	"last":           "last() needs XPath node sets, which fieldsync does not have",
	"digest":         "digest() is not supported",
	"base64-decode":  "base64-decode() is not supported",
	"extract-signed": "extract-signed() is not supported",
	"jr:itext":       "jr:itext() is not supported",
	"version":        "version() is not supported",
	"property":       "property() is not supported",
}

// call translates a function call.
func (ctx xcontext) call(name string, args [][]xtoken) (piece, error) {
	want := func(lo, hi int) error {
		if len(args) < lo || (hi >= 0 && len(args) > hi) {
			if lo == hi {
				return fmt.Errorf("%s() takes %d argument(s)", name, lo)
			}
			return fmt.Errorf("%s() takes %d to %d arguments", name, lo, hi)
		}
		return nil
	}
	tr := func(a []xtoken) (string, error) {
		if len(a) == 0 {
			return "", fmt.Errorf("%s() has an empty argument", name)
		}
		return ctx.seq(a)
	}
	all := func() ([]string, error) {
		out := make([]string, len(args))
		for i, a := range args {
			s, err := tr(a)
			if err != nil {
				return nil, err
			}
			out[i] = s
		}
		return out, nil
	}
	literal := func(a []xtoken, what string) (string, error) {
		if len(a) != 1 || a[0].kind != xStr {
			return "", fmt.Errorf("the %s of %s() must be text in quotes", what, name)
		}
		return a[0].text, nil
	}
	name = strings.TrimPrefix(name, "jr:")
	switch name {
	case "true", "false":
		if err := want(0, 0); err != nil {
			return piece{}, err
		}
		return piece{text: name, typ: "bool"}, nil
	case "today", "now":
		if err := want(0, 0); err != nil {
			return piece{}, err
		}
		typ := "date"
		if name == "now" {
			typ = "datetime"
		}
		return piece{text: name, typ: typ}, nil
	case "position":
		if len(args) != 1 || len(args[0]) != 1 || args[0][0].text != ".." {
			return piece{}, fmt.Errorf("only position(..) is supported")
		}
		if ctx.scope() == nil {
			return piece{}, fmt.Errorf("position(..) is only meaningful inside a repeat")
		}
		return piece{text: namePosition, typ: "number"}, nil
	case "once":
		if err := want(1, 1); err != nil {
			return piece{}, err
		}
		if ctx.column != "calculation" && ctx.column != "default" && ctx.column != "instance_name" {
			return piece{}, fmt.Errorf("once() is only meaningful in a calculation")
		}
		ctx.item.once = true
		inner, err := ctx.pieces(args[0])
		if err != nil {
			return piece{}, err
		}
		typ := ""
		if len(inner) == 1 {
			typ = inner[0].typ
		}
		return piece{text: "(" + joinPieces(inner) + ")", typ: typ}, nil
	case "not":
		if err := want(1, 1); err != nil {
			return piece{}, err
		}
		a, err := tr(args[0])
		if err != nil {
			return piece{}, err
		}
		return piece{text: "!(" + a + ")", typ: "bool"}, nil
	case "if":
		if err := want(3, 3); err != nil {
			return piece{}, err
		}
		var p [3]piece
		for i := range p {
			ps, err := ctx.pieces(args[i])
			if err != nil {
				return piece{}, err
			}
			p[i] = piece{text: joinPieces(ps)}
			if len(ps) == 1 {
				p[i].typ = ps[0].typ
			}
		}
		// XPath converts the branches to the type the context needs; the
		// subset needs both of one type: a number literal next to text
		// becomes text.
		for _, pair := range [][2]*piece{{&p[1], &p[2]}, {&p[2], &p[1]}} {
			x, y := pair[0], pair[1]
			if (x.typ == "text" || x.typ == "str") && y.typ == "num" {
				y.text, y.typ = quote(strings.TrimSpace(y.text)), "str"
			}
		}
		typ := cmpOr(p[1].typ, p[2].typ)
		switch typ {
		case "str":
			typ = "text"
		case "num":
			typ = "number"
		}
		return piece{text: "(" + p[0].text + " ? " + p[1].text + " : " + p[2].text + ")", typ: typ}, nil
	case "regex":
		if err := want(2, 2); err != nil {
			return piece{}, err
		}
		a, err := tr(args[0])
		if err != nil {
			return piece{}, err
		}
		pat, err := literal(args[1], "pattern")
		if err != nil {
			return piece{}, err
		}
		return piece{text: "regex(" + a + ", " + quote(portablePattern(pat)) + ")", typ: "bool"}, nil
	case "substring":
		if err := want(2, 3); err != nil {
			return piece{}, err
		}
		a, err := all()
		if err != nil {
			return piece{}, err
		}
		if len(a) == 2 {
			return piece{text: "substr(" + a[0] + ", number(" + a[1] + ") - 1)", typ: "text"}, nil
		}
		return piece{text: "substr(" + a[0] + ", number(" + a[1] + ") - 1, number(" + a[1] + ") - 1 + number(" + a[2] + "))", typ: "text"}, nil
	case "choice-name":
		if err := want(2, 2); err != nil {
			return piece{}, err
		}
		a, err := tr(args[0])
		if err != nil {
			return piece{}, err
		}
		q, err := literal(args[1], "question")
		if err != nil {
			return piece{}, err
		}
		m := placeholderRE.FindStringSubmatch(strings.TrimSpace(q))
		if m == nil {
			return piece{}, fmt.Errorf("the second argument of jr:choice-name() must be '${question}'")
		}
		it, err := ctx.lookup(m[1])
		if err != nil {
			return piece{}, err
		}
		if it.list == "" {
			return piece{}, fmt.Errorf("${%s} is not a select question", m[1])
		}
		return piece{text: "choice_label(" + a + ", " + quote(it.list) + ")", typ: "text"}, nil
	case "pulldata":
		if err := want(4, 4); err != nil {
			return piece{}, err
		}
		var lit [3]string
		for i, what := range []string{"file", "column", "key column"} {
			s, err := literal(args[i], what)
			if err != nil {
				return piece{}, err
			}
			lit[i] = s
		}
		key, err := tr(args[3])
		if err != nil {
			return piece{}, err
		}
		if ctx.imp != nil {
			t := ctx.imp.table(lit[0], ctx.item.row, ctx.column)
			if t == nil {
				return piece{}, fmt.Errorf("pulldata() reads %s.csv, which was not uploaded with the form", lit[0])
			}
			for _, col := range lit[1:] {
				if !slicesContains(t.Columns, col) {
					return piece{}, fmt.Errorf("%s.csv has no column %q", lit[0], col)
				}
			}
		}
		return piece{text: "pulldata(" + quote(lit[0]) + ", " + quote(lit[1]) + ", " + quote(lit[2]) + ", " + key + ")", typ: "text"}, nil
	case "count", "sum", "max", "min", "count-non-empty":
		if err := want(1, -1); err != nil {
			return piece{}, err
		}
		sub := map[string]string{"count": "count", "sum": "sum", "max": "max", "min": "min", "count-non-empty": "count_non_empty"}[name]
		if len(args) > 1 {
			if name != "max" && name != "min" {
				return piece{}, fmt.Errorf("%s() takes one ${field}", name)
			}
			a, err := all()
			if err != nil {
				return piece{}, err
			}
			return piece{text: sub + "(" + strings.Join(a, ", ") + ")", typ: "number"}, nil
		}
		rows, key, err := ctx.repeatField(name, args[0])
		if err != nil {
			return piece{}, err
		}
		switch {
		case name == "count":
			return piece{text: "count(" + rows + ")", typ: "number"}, nil
		case key == "":
			return piece{}, fmt.Errorf("%s() needs a field inside the repeat, not the repeat", name)
		}
		return piece{text: sub + "(" + rows + ", " + quote(key) + ")", typ: "number"}, nil
	case "indexed-repeat":
		if len(args) != 3 {
			return piece{}, fmt.Errorf("only indexed-repeat(${field}, ${repeat}, index) is supported")
		}
		rows, key, err := ctx.repeatField(name, args[0])
		if err != nil {
			return piece{}, err
		}
		rep, _, err := ctx.repeatField(name, args[1])
		if err != nil || key == "" {
			return piece{}, fmt.Errorf("indexed-repeat() needs a field of a repeat and that repeat")
		}
		if rows != rep {
			return piece{}, fmt.Errorf("indexed-repeat(): the field is not in that repeat")
		}
		i, err := tr(args[2])
		if err != nil {
			return piece{}, err
		}
		it, _ := ctx.lookup(args[0][0].text)
		return piece{text: "indexed(" + rows + ", " + quote(key) + ", " + i + ")", typ: it.valueType()}, nil
	}
	if name == "selected" && len(args) == 2 && len(args[1]) == 1 && args[1][0].kind == xNum {
		args[1] = []xtoken{{kind: xStr, text: args[1][0].text}}
	}
	if why, ok := refusedFuncs[name]; ok {
		return piece{}, errors.New(why)
	}
	f, ok := xfuncs[name]
	if !ok {
		return piece{}, fmt.Errorf("unsupported function %s()", name)
	}
	if err := want(f.min, f.max); err != nil {
		return piece{}, err
	}
	a, err := all()
	if err != nil {
		return piece{}, err
	}
	return piece{text: f.name + "(" + strings.Join(a, ", ") + ")", typ: f.typ}, nil
}

// repeatField reads the argument of count(), sum() and the like: ${r}, a
// repeat, or ${f}, a field of a repeat, read from outside the repeat. It
// returns the repeat's rows as expressions name them, and the field's key
// ("" for the repeat itself).
func (ctx xcontext) repeatField(fn string, arg []xtoken) (rows, key string, err error) {
	if len(arg) != 1 || arg[0].kind != xRef {
		return "", "", fmt.Errorf("%s() takes one ${field}", fn)
	}
	s, err := ctx.lookup(arg[0].text)
	if err != nil {
		return "", "", err
	}
	rep := s
	if s.kind != "begin repeat" {
		rep = s.repeat()
		key = s.key
		if rep == nil || s.parent != rep && s.parent.kind != "begin group" {
			return "", "", fmt.Errorf("%s() needs a repeat, or a field inside a repeat", fn)
		}
		for p := s.parent; p != rep; p = p.parent {
			if p.kind != "begin group" {
				return "", "", fmt.Errorf("%s(): ${%s} is in a repeat nested in another", fn, s.name)
			}
		}
	}
	if rep == nil {
		return "", "", fmt.Errorf("%s() needs a repeat, or a field inside a repeat", fn)
	}
	if within(rep, ctx.scope()) {
		return "", "", fmt.Errorf("%s(${%s}) is inside the repeat %s itself: refer to the row's fields directly", fn, arg[0].text, rep.name)
	}
	if outer := rep.repeat(); !within(outer, ctx.scope()) {
		return "", "", fmt.Errorf("%s(): the repeat %s is inside the repeat %s: read it from a row of %s", fn, rep.name, outer.name, outer.name)
	}
	return ctx.syms.path(rep), key, nil
}

// uEscapeRE matches the \uXXXX escapes of Java and JavaScript patterns,
// which Go's RE2 lacks.
var uEscapeRE = regexp.MustCompile(`\\u([0-9A-Fa-f]{4})`)

// portablePattern writes \uXXXX escapes (common in Chinese forms:
// [\u4e00-\u9fa5]) as the characters themselves, which every engine reads
// the same.
func portablePattern(p string) string {
	return uEscapeRE.ReplaceAllStringFunc(p, func(m string) string {
		n, _ := strconv.ParseUint(m[2:], 16, 32)
		r := rune(n)
		if r < 0x20 || (r >= 0xD800 && r <= 0xDFFF) || strings.ContainsRune(`\^$.|?*+()[]{}-`, r) {
			return m
		}
		return string(r)
	})
}

func slicesContains(l []string, s string) bool {
	for _, x := range l {
		if x == s {
			return true
		}
	}
	return false
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
	// A carriage return becomes a line break: the expression lexer reads
	// line ends as \n, and the subset has no escape for \r.
	r := strings.NewReplacer(`\`, `\\`, `'`, `\'`, "\r\n", `\n`, "\r", `\n`, "\n", `\n`, "\t", `\t`)
	return "'" + r.Replace(s) + "'"
}
