package forms

import (
	"errors"
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/conf"
	"github.com/expr-lang/expr/file"
	"github.com/expr-lang/expr/parser"
	"github.com/expr-lang/expr/parser/lexer"
	"github.com/expr-lang/expr/vm"
)

// The expression language is a small subset of expr-lang/expr, documented
// in EXPRESSIONS.md. This file enforces the subset in two passes before expr
// compiles anything: a token pass (which literals, operators and brackets
// may appear) and a syntax-tree pass (which constructs may appear). expr's
// own type checker then runs against a typed environment built from the
// definition, so a comparison of a number with a text fails when the form
// is checked, not when a record arrives.

// Names with a fixed meaning in expressions; no field may use them as key.
const (
	nameSelf  = "self"   // the value of the field a constraint is on
	nameToday = "today"  // Env.Today
	nameChoic = "choice" // the choice a choice filter is testing
)

// exprFuncs are the functions of the subset, with their expr signatures.
// Every number in an expression is a float64, as in JavaScript.
var exprFuncs = append([]exprFunc{
	{"len", fnLen, []any{new(func(any) float64)}},
	{"count", fnCount, []any{new(func(any) float64)}},
	{"sum", fnSum, []any{new(func(any) float64), new(func(any, string) float64)}},
	{"selected", fnSelected, []any{new(func(any, string) bool)}},
	{"empty", fnEmpty, []any{new(func(any) bool)}},
	{"coalesce", fnCoalesce, []any{new(func(any, any) any)}},
	{"number", fnNumber, []any{new(func(any) float64)}},
	{"regex", fnRegex, []any{new(func(any, string) bool)}},
	{"days", fnDays, []any{new(func(string) float64)}},
	{"seconds", fnSeconds, []any{new(func(string) float64)}},
}, odkFuncs...)

// exprFunc is a function of the subset with its expr signatures.
type exprFunc struct {
	name  string
	fn    func(args ...any) (any, error)
	types []any
}

// funcMod implements the % operator: the remainder of a truncated division,
// with the sign of the dividend (math.Mod, JavaScript's %).
const funcMod = "mod"

// keywordNames may never be field keys: the expression parser reads them
// as operators or literals even after a dot.
var keywordNames = map[string]bool{
	"true": true, "false": true, "nil": true, "null": true,
	"in": true, "not": true, "and": true, "or": true, "matches": true,
	"contains": true, "startsWith": true, "endsWith": true, "let": true,
	"if": true, "else": true,
}

// reservedNames may not be the keys of fields that expressions name
// bare (top-level fields and the fields of repeat rows): they would shadow
// the variables of expressions. Fields named with a path, such as
// answers.today, may use them. A field named like a function (max, date)
// hides the function from the expressions of its scope, which Check then
// reports as "not callable" where it is called.
var reservedNames = map[string]bool{
	nameSelf: true, nameToday: true, nameChoic: true, funcMod: true,
	nameNow: true, namePosition: true, nameRandom: true, nameUUID: true,
}

func init() {
	for k := range keywordNames {
		reservedNames[k] = true
	}
}

// exprKind says where an expression is used; it decides the result type
// and which special names it may read.
type exprKind int

const (
	exprBool       exprKind = iota // relevant, required_if
	exprConstraint                 // a constraint: bool, may read self
	exprCalc                       // a calculation: any value
	exprFilter                     // a choice filter: bool, may read choice.*
)

// parsedExpr is an expression that passed the subset checks.
type parsedExpr struct {
	src  string
	refs []string // names read, with member chains flattened ("feedback.to_name")
}

// parseExpr checks that src stays within the subset and returns the names
// it reads. It does not resolve the names: compileExpr does.
func parseExpr(src string) (*parsedExpr, error) {
	if strings.TrimSpace(src) == "" {
		return nil, errors.New("empty expression")
	}
	if err := checkTokens(src); err != nil {
		return nil, err
	}
	cfg := newExprConfig()
	tree, err := parser.ParseWithConfig(src, cfg)
	if err != nil {
		return nil, errors.New(firstLine(err.Error()))
	}
	p := &parsedExpr{src: src}
	if err := p.walk(tree.Node, false); err != nil {
		return nil, err
	}
	return p, nil
}

// checkTokens is the token pass.
func checkTokens(src string) error {
	tokens, err := lexer.Lex(file.NewSource(src))
	if err != nil {
		return errors.New(firstLine(err.Error()))
	}
	runes := []rune(src)
	covered := make([]bool, len(runes))
	type level struct{ compared bool }
	levels := []level{{}}
	var prev lexer.Token
	for _, t := range tokens {
		for i := t.From; i < t.To && i < len(runes); i++ {
			covered[i] = true
		}
		cur := &levels[len(levels)-1]
		switch t.Kind {
		case lexer.EOF:
		case lexer.Identifier:
		case lexer.Number:
			if !numberLiteral.MatchString(t.Value) {
				return fmt.Errorf("number %q: write numbers as digits with an optional decimal part, such as 12 or 87.5", t.Value)
			}
		case lexer.String:
			if err := checkStringLiteral(string(runes[t.From:min(t.To, len(runes))])); err != nil {
				return err
			}
		case lexer.Operator:
			switch t.Value {
			case "==", "!=", "<", "<=", ">", ">=", "in":
				if cur.compared {
					return fmt.Errorf("comparisons cannot be chained: join them with && or add parentheses before %q", t.Value)
				}
				cur.compared = true
			case "&&", "||", "?", ":", ",":
				cur.compared = false
			case "!", "+", "-", "*", "/", "%", ".":
			default:
				return fmt.Errorf("operator %q is not allowed: use ! && || == != < <= > >= + - * / %% ?: in", t.Value)
			}
		case lexer.Bracket:
			switch t.Value {
			case "(":
				levels = append(levels, level{})
			case "[":
				if !prev.Is(lexer.Operator, "in") {
					return errors.New("[ ] may only hold the list after in, as in x in ['a', 'b']")
				}
				levels = append(levels, level{})
			case ")", "]":
				if len(levels) > 1 {
					levels = levels[:len(levels)-1]
				}
			default:
				return fmt.Errorf("%q is not allowed", t.Value)
			}
		default:
			return fmt.Errorf("%s is not allowed", t.Kind)
		}
		prev = t
	}
	for i, ok := range covered {
		if !ok && !strings.ContainsRune(" \t\r\n", runes[i]) {
			return fmt.Errorf("unexpected %q: comments and other symbols are not allowed", runes[i])
		}
	}
	return nil
}

var numberLiteral = regexp.MustCompile(`^[0-9]+(\.[0-9]+)?$`)

// checkStringLiteral allows 'single' or "double" quoted strings with the
// escapes \\ \' \" \n and \t only.
func checkStringLiteral(raw string) error {
	if len(raw) < 2 || (raw[0] != '\'' && raw[0] != '"') {
		return errors.New("strings must be in 'single' or \"double\" quotes")
	}
	for i := 1; i < len(raw)-1; i++ {
		if raw[i] != '\\' {
			continue
		}
		i++
		if i >= len(raw)-1 || !strings.ContainsRune(`\'"nt`, rune(raw[i])) {
			return errors.New(`a string may only use the escapes \\ \' \" \n \t`)
		}
	}
	return nil
}

// walk is the syntax-tree pass. inList is true inside the list after in.
func (p *parsedExpr) walk(n ast.Node, inList bool) error {
	switch n := n.(type) {
	case *ast.NilNode, *ast.BoolNode, *ast.IntegerNode, *ast.FloatNode, *ast.StringNode:
		return nil
	case *ast.IdentifierNode:
		if inList {
			return errors.New("the list after in may only hold literal values")
		}
		p.refs = append(p.refs, n.Value)
		return nil
	case *ast.MemberNode:
		if inList {
			return errors.New("the list after in may only hold literal values")
		}
		name, ok := memberName(n)
		if !ok {
			return errors.New("only field paths such as feedback.to_name may use '.'")
		}
		p.refs = append(p.refs, name)
		return nil
	case *ast.UnaryNode:
		switch n.Operator {
		case "!", "-", "+":
		default:
			return fmt.Errorf("operator %q is not allowed", n.Operator)
		}
		if inList {
			if _, ok := n.Node.(*ast.IntegerNode); !ok {
				if _, ok := n.Node.(*ast.FloatNode); !ok {
					return errors.New("the list after in may only hold literal values")
				}
			}
		}
		return p.walk(n.Node, inList)
	case *ast.BinaryNode:
		if inList {
			return errors.New("the list after in may only hold literal values")
		}
		switch n.Operator {
		case "==", "!=", "<", "<=", ">", ">=", "&&", "||", "+", "-", "*", "/", "%":
			if err := p.walk(n.Left, false); err != nil {
				return err
			}
			return p.walk(n.Right, false)
		case "in":
			list, ok := n.Right.(*ast.ArrayNode)
			if !ok {
				return errors.New("in must be followed by a list such as ['a', 'b']")
			}
			if err := p.walk(n.Left, false); err != nil {
				return err
			}
			for _, e := range list.Nodes {
				if err := p.walk(e, true); err != nil {
					return err
				}
			}
			return nil
		}
		return fmt.Errorf("operator %q is not allowed", n.Operator)
	case *ast.ConditionalNode:
		if inList {
			return errors.New("the list after in may only hold literal values")
		}
		for _, c := range []ast.Node{n.Cond, n.Exp1, n.Exp2} {
			if err := p.walk(c, false); err != nil {
				return err
			}
		}
		return nil
	case *ast.CallNode:
		id, ok := n.Callee.(*ast.IdentifierNode)
		if ok && !inList && (id.Value == nameRandom || id.Value == nameUUID) {
			if len(n.Arguments) != 0 {
				return fmt.Errorf("%s() takes no arguments", id.Value)
			}
			p.refs = append(p.refs, id.Value)
			return nil
		}
		if !ok || inList || !isExprFunc(id.Value) {
			return fmt.Errorf("unknown function: allowed are %s", exprFuncNames())
		}
		if id.Value == "regex" && len(n.Arguments) == 2 {
			s, ok := n.Arguments[1].(*ast.StringNode)
			if !ok {
				return errors.New("the pattern of regex() must be a string literal")
			}
			if err := checkPattern(s.Value); err != nil {
				return err
			}
		}
		for _, a := range n.Arguments {
			if err := p.walk(a, false); err != nil {
				return err
			}
		}
		return nil
	}
	return fmt.Errorf("%s is not allowed in expressions", describeNode(n))
}

func describeNode(n ast.Node) string {
	switch n.(type) {
	case *ast.BuiltinNode:
		return "this built-in function"
	case *ast.ArrayNode:
		return "a list (other than after in)"
	case *ast.MapNode:
		return "a map literal"
	case *ast.PredicateNode, *ast.PointerNode:
		return "a closure"
	case *ast.SliceNode:
		return "slicing"
	case *ast.VariableDeclaratorNode:
		return "let"
	}
	return fmt.Sprintf("%T", n)
}

// memberName flattens a.b.c into "a.b.c"; only plain dots over names are
// allowed.
func memberName(n ast.Node) (string, bool) {
	switch n := n.(type) {
	case *ast.IdentifierNode:
		return n.Value, true
	case *ast.MemberNode:
		if n.Optional || n.Method {
			return "", false
		}
		prop, ok := n.Property.(*ast.StringNode)
		if !ok || !fieldKeyRE.MatchString(prop.Value) {
			return "", false
		}
		base, ok := memberName(n.Node)
		if !ok {
			return "", false
		}
		return base + "." + prop.Value, true
	}
	return "", false
}

// flattener rewrites member chains into single identifiers so that the
// type checker looks "feedback.to_name" up in the environment, where it is
// declared with its own type.
type flattener struct{}

func (flattener) Visit(node *ast.Node) {
	if m, ok := (*node).(*ast.MemberNode); ok {
		if name, ok := memberName(m); ok {
			ast.Patch(node, &ast.IdentifierNode{Value: name})
		}
	}
}

func isExprFunc(name string) bool {
	for _, f := range exprFuncs {
		if f.name == name {
			return true
		}
	}
	return false
}

func exprFuncNames() string {
	names := make([]string, len(exprFuncs))
	for i, f := range exprFuncs {
		names[i] = f.name + "()"
	}
	return strings.Join(names, " ")
}

// exprOptions are the expr options shared by parsing and compiling.
func exprOptions() []expr.Option {
	opts := []expr.Option{
		expr.DisableAllBuiltins(),
		expr.MaxNodes(1000),
		expr.Patch(flattener{}),
		expr.Function(funcMod, fnMod,
			new(func(float64, float64) float64), new(func(float64, int) float64),
			new(func(int, float64) float64), new(func(int, int) float64)),
		expr.Operator("%", funcMod),
	}
	for _, f := range exprFuncs {
		opts = append(opts, expr.Function(f.name, f.fn, f.types...))
	}
	return opts
}

func newExprConfig() *conf.Config {
	cfg := conf.CreateNew()
	for _, op := range exprOptions() {
		op(cfg)
	}
	for name := range cfg.Disabled {
		delete(cfg.Builtins, name)
	}
	return cfg
}

// compileExpr compiles a checked expression against a typed environment.
func compileExpr(p *parsedExpr, env map[string]any, kind exprKind, extra ...expr.Option) (*vm.Program, error) {
	opts := append(append(exprOptions(), extra...), expr.Env(env))
	if kind != exprCalc {
		opts = append(opts, expr.AsBool())
	}
	prog, err := expr.Compile(p.src, opts...)
	if err != nil {
		return nil, errors.New(firstLine(err.Error()))
	}
	return prog, nil
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	return s
}

// run evaluates a program. Any failure, including a panic inside expr,
// yields ok == false: the expression "has no value". Relevance and
// requirement then count as false, a constraint as violated, and a
// calculation as empty.
func run(prog *vm.Program, env map[string]any) (v any, ok bool) {
	defer func() {
		if recover() != nil {
			v, ok = nil, false
		}
	}()
	v, err := expr.Run(prog, env)
	if err != nil {
		return nil, false
	}
	return v, true
}

// runBool evaluates a boolean program; errors and non-booleans are false.
func runBool(prog *vm.Program, env map[string]any) bool {
	v, ok := run(prog, env)
	b, isBool := v.(bool)
	return ok && isBool && b
}

// The functions. Values reaching them are those of the expression
// environment: string, float64 (int for literals), bool, nil, []string for
// multiple selections, photos and text lists, []any of map[string]any for
// repeat rows, and map[string]any for groups and geopoints.

var errArg = errors.New("invalid argument")

func asNumber(v any) (float64, bool) {
	switch x := v.(type) {
	case float64:
		return x, true
	case int:
		return float64(x), true
	}
	return 0, false
}

func asList(v any) ([]any, bool) {
	switch x := v.(type) {
	case nil:
		return nil, true
	case []any:
		return x, true
	case []string:
		l := make([]any, len(x))
		for i, s := range x {
			l[i] = s
		}
		return l, true
	}
	return nil, false
}

func fnLen(args ...any) (any, error) {
	if s, ok := args[0].(string); ok {
		return float64(utf8.RuneCountInString(s)), nil
	}
	if l, ok := asList(args[0]); ok {
		return float64(len(l)), nil
	}
	return nil, errArg
}

func fnCount(args ...any) (any, error) {
	if l, ok := asList(args[0]); ok {
		return float64(len(l)), nil
	}
	return nil, errArg
}

func fnSum(args ...any) (any, error) {
	l, ok := asList(args[0])
	if !ok {
		return nil, errArg
	}
	var key string
	if len(args) == 2 {
		if key, ok = args[1].(string); !ok {
			return nil, errArg
		}
	}
	total := 0.0
	for _, e := range l {
		if len(args) == 2 {
			row, ok := e.(map[string]any)
			if !ok {
				return nil, errArg
			}
			e = row[key]
		}
		if e == nil {
			continue
		}
		n, ok := asNumber(e)
		if !ok {
			return nil, errArg
		}
		total += n
	}
	return total, nil
}

func fnSelected(args ...any) (any, error) {
	v, ok := args[1].(string)
	if !ok {
		return nil, errArg
	}
	if s, ok := args[0].(string); ok {
		return s == v, nil
	}
	l, ok := asList(args[0])
	if !ok {
		return nil, errArg
	}
	for _, e := range l {
		if e == v {
			return true, nil
		}
	}
	return false, nil
}

func isEmpty(v any) bool {
	switch x := v.(type) {
	case nil:
		return true
	case string:
		return x == ""
	case []any:
		return len(x) == 0
	case []string:
		return len(x) == 0
	case map[string]any:
		return len(x) == 0
	}
	return false
}

func fnEmpty(args ...any) (any, error) { return isEmpty(args[0]), nil }

func fnCoalesce(args ...any) (any, error) {
	if !isEmpty(args[0]) {
		return args[0], nil
	}
	return args[1], nil
}

func fnNumber(args ...any) (any, error) {
	switch x := args[0].(type) {
	case nil:
		return nil, nil
	case string:
		if x == "" {
			return nil, nil
		}
		if f, ok := parseDecimal(x); ok {
			return f, nil
		}
	default:
		if f, ok := asNumber(x); ok {
			return f, nil
		}
	}
	return nil, errArg
}

// patterns caches compiled regex() patterns and constraint patterns. It
// stops growing at maxPatterns: definitions are few, but Check also sees
// drafts, and fuzzing sees millions.
var (
	patterns      sync.Map // string → *regexp.Regexp
	patternsCount atomic.Int64
)

const maxPatterns = 1000

func compiledPattern(p string) (*regexp.Regexp, error) {
	if re, ok := patterns.Load(p); ok {
		return re.(*regexp.Regexp), nil
	}
	re, err := regexp.Compile(`^(?:` + p + `)$`)
	if err != nil {
		return nil, err
	}
	if patternsCount.Load() < maxPatterns {
		if _, loaded := patterns.LoadOrStore(p, re); !loaded {
			patternsCount.Add(1)
		}
	}
	return re, nil
}

// checkPattern accepts a regular expression that Go compiles and that
// means the same in JavaScript: no flags or named groups ((?…) other than
// (?:…)), no \A \z \Q \C, no [[:class:]], no \p classes.
func checkPattern(p string) error {
	if len(p) > 500 {
		return errors.New("pattern is too long")
	}
	if _, err := regexp.Compile(p); err != nil {
		return fmt.Errorf("pattern does not compile: %v", err)
	}
	for _, bad := range []string{`\A`, `\z`, `\Q`, `\E`, `\C`, `\p`, `\P`, `[[:`} {
		if strings.Contains(p, bad) {
			return fmt.Errorf("pattern: %s is not portable to JavaScript", bad)
		}
	}
	for i := 0; i+1 < len(p); i++ {
		if p[i] == '\\' {
			i++
			continue
		}
		if p[i] == '(' && p[i+1] == '?' && (i+2 >= len(p) || p[i+2] != ':') {
			return errors.New("pattern: only (?:…) groups are portable; flags and named groups are not")
		}
	}
	if _, err := compiledPattern(p); err != nil {
		return err
	}
	return nil
}

func fnRegex(args ...any) (any, error) {
	s, ok1 := args[0].(string)
	p, ok2 := args[1].(string)
	if !ok1 || !ok2 {
		return nil, errArg
	}
	re, err := compiledPattern(p)
	if err != nil {
		return nil, err
	}
	return re.MatchString(s), nil
}

// fnDays returns the number of days from 1970-01-01 to a date, or to the
// date written in a timestamp (its offset is ignored).
func fnDays(args ...any) (any, error) {
	s, ok := args[0].(string)
	if !ok {
		return nil, errArg
	}
	if len(s) != 10 {
		if !isDateTime(s) {
			return nil, errArg
		}
		s = s[:10]
	}
	t, err := time.Parse(time.DateOnly, s)
	if err != nil {
		return nil, errArg
	}
	return math.Floor(float64(t.Unix()) / 86400), nil
}

// fnSeconds returns the Unix time of a timestamp in seconds.
func fnSeconds(args ...any) (any, error) {
	s, ok := args[0].(string)
	if !ok || !isDateTime(s) {
		return nil, errArg
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return nil, errArg
	}
	return float64(t.UnixMilli()) / 1000, nil
}

func fnMod(args ...any) (any, error) {
	a, ok1 := asNumber(args[0])
	b, ok2 := asNumber(args[1])
	if !ok1 || !ok2 {
		return nil, errArg
	}
	return math.Mod(a, b), nil
}

// decimalRE is the syntax of decimals sent as strings (docs/domain.md §6.0).
var decimalRE = regexp.MustCompile(`^-?[0-9]+(\.[0-9]+)?$`)

// parseDecimal parses a decimal string such as "87.5" or "-3".
func parseDecimal(s string) (float64, bool) {
	if len(s) > 40 || !decimalRE.MatchString(s) {
		return 0, false
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsInf(f, 0) {
		return 0, false
	}
	return f, true
}

// formatNumber renders a number in the shortest decimal form that reads
// back to the same float64, without an exponent: 81, 87.5, 0.1.
func formatNumber(f float64) string {
	return strconv.FormatFloat(f, 'f', -1, 64)
}
