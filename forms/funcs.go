package forms

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/expr-lang/expr"
)

// The functions of ODK's XPath function set that the subset has, under
// names an expression can hold (XPath's "-" becomes "_"). The importer
// translates XLSForm expressions to them; EXPRESSIONS.md describes each,
// and testdata/conformance/odk_functions.json pins their results.

var odkFuncs = []exprFunc{
	{"concat", fnConcat, []any{new(func(...any) string)}},
	{"join", fnJoin, []any{new(func(string, any) string)}},
	{"substr", fnSubstr, []any{new(func(any, float64) string), new(func(any, float64, float64) string)}},
	{"contains_text", fnContains, []any{new(func(any, any) bool)}},
	{"starts_with", fnStartsWith, []any{new(func(any, any) bool)}},
	{"ends_with", fnEndsWith, []any{new(func(any, any) bool)}},
	{"substring_before", fnSubstringBefore, []any{new(func(any, any) string)}},
	{"substring_after", fnSubstringAfter, []any{new(func(any, any) string)}},
	{"translate", fnTranslate, []any{new(func(any, string, string) string)}},
	{"normalize_space", fnNormalizeSpace, []any{new(func(any) string)}},
	{"string", fnString, []any{new(func(any) string)}},
	{"boolean", fnBoolean, []any{new(func(any) bool)}},
	{"boolean_from_string", fnBooleanFromString, []any{new(func(any) bool)}},
	{"int", fnInt, []any{new(func(any) float64)}},
	{"round", fnRound, []any{new(func(any) float64), new(func(any, float64) float64)}},
	{"floor", fnMath(math.Floor, false), []any{new(func(any) float64)}},
	{"ceiling", fnMath(math.Ceil, false), []any{new(func(any) float64)}},
	{"abs", fnMath(math.Abs, false), []any{new(func(any) float64)}},
	{"sqrt", fnMath(math.Sqrt, false), []any{new(func(any) float64)}},
	{"exp", fnMath(math.Exp, true), []any{new(func(any) float64)}},
	{"exp10", fnMath(func(x float64) float64 { return math.Pow(10, x) }, true), []any{new(func(any) float64)}},
	{"log", fnMath(math.Log, true), []any{new(func(any) float64)}},
	{"log10", fnMath(math.Log10, true), []any{new(func(any) float64)}},
	{"sin", fnMath(math.Sin, true), []any{new(func(any) float64)}},
	{"cos", fnMath(math.Cos, true), []any{new(func(any) float64)}},
	{"tan", fnMath(math.Tan, true), []any{new(func(any) float64)}},
	{"asin", fnMath(math.Asin, true), []any{new(func(any) float64)}},
	{"acos", fnMath(math.Acos, true), []any{new(func(any) float64)}},
	{"atan", fnMath(math.Atan, true), []any{new(func(any) float64)}},
	{"atan2", fnAtan2, []any{new(func(any, any) float64)}},
	{"pow", fnPow, []any{new(func(any, any) float64)}},
	{"pi", fnPi, []any{new(func() float64)}},
	{"max", fnMax, []any{new(func(any, string) float64), new(func(float64, ...float64) float64)}},
	{"min", fnMin, []any{new(func(any, string) float64), new(func(float64, ...float64) float64)}},
	{"selected_at", fnSelectedAt, []any{new(func(any, float64) string)}},
	{"count_non_empty", fnCountNonEmpty, []any{new(func(any, string) float64), new(func(any) float64)}},
	{"indexed", fnIndexed, []any{new(func(any, string, float64) any)}},
	{"checklist", fnChecklist, []any{new(func(float64, float64, ...bool) bool)}},
	{"weighted_checklist", fnWeightedChecklist, []any{new(func(float64, float64, ...any) bool)}},
	{"date", fnDate, []any{new(func(any) string)}},
	{"date_time", fnDateTime, []any{new(func(any) string)}},
	{"decimal_date_time", fnDecimalDateTime, []any{new(func(any) float64)}},
	{"decimal_time", fnDecimalTime, []any{new(func(any) float64)}},
	{"format_date", fnFormatDate, []any{new(func(any, string) string)}},
	{"format_date_time", fnFormatDate, []any{new(func(any, string) string)}},
	{"area", fnArea, []any{new(func(any) float64)}},
	{"distance", fnDistance, []any{new(func(any) float64), new(func(any, any) float64)}},
	// choice_label and pulldata read the definition: compileExpr gets
	// their real implementations from definitionFuncs.
	{"choice_label", fnUnbound, []any{new(func(any, string) string)}},
	{"pulldata", fnUnbound, []any{new(func(string, string, string, any) string)}},
}

var errUnbound = errors.New("function needs its definition")

func fnUnbound(...any) (any, error) { return nil, errUnbound }

// definitionFuncs are the functions that read d: choice_label and
// pulldata.
func definitionFuncs(d *Definition) []expr.Option {
	return []expr.Option{
		expr.Function("choice_label", func(args ...any) (any, error) {
			v, list := toText(args[0]), args[1].(string)
			for _, ch := range d.Choices[list] {
				if ch.Value == v {
					return ch.Label.String(), nil
				}
			}
			return "", nil
		}, new(func(any, string) string)),
		expr.Function("pulldata", func(args ...any) (any, error) {
			t := d.Tables[args[0].(string)]
			if t == nil {
				return nil, errArg
			}
			col, keyCol, key := args[1].(string), args[2].(string), toText(args[3])
			ci, ki := -1, -1
			for i, c := range t.Columns {
				if c == col {
					ci = i
				}
				if c == keyCol {
					ki = i
				}
			}
			if ci < 0 || ki < 0 {
				return nil, errArg
			}
			for _, row := range t.Rows {
				if ki < len(row) && row[ki] == key {
					if ci < len(row) {
						return row[ci], nil
					}
					return "", nil
				}
			}
			return "", nil
		}, new(func(string, string, string, any) string)),
	}
}

// toText converts a value to text as XPath's string() does: numbers in
// the shortest decimal form, lists joined by spaces, nothing for nil.
func toText(v any) string { return valueText(v) }

// toNumber converts a value to a number as XPath's number() does for
// the values the subset has: numbers, and decimal strings.
func toNumber(v any) (float64, bool) {
	if x, ok := asNumber(v); ok {
		return x, true
	}
	if s, ok := v.(string); ok {
		return parseDecimal(strings.TrimSpace(s))
	}
	return 0, false
}

// round12 rounds to 12 significant digits: Go and JavaScript may differ in
// the last binary digit of transcendental functions, never in the first 12
// decimal ones (see EXPRESSIONS.md).
func round12(x float64) float64 {
	if math.IsNaN(x) || math.IsInf(x, 0) || x == 0 {
		return x
	}
	y, _ := strconv.ParseFloat(strconv.FormatFloat(x, 'g', 12, 64), 64)
	return y
}

func fnConcat(args ...any) (any, error) {
	var b strings.Builder
	for _, a := range args {
		b.WriteString(toText(a))
	}
	return b.String(), nil
}

func fnJoin(args ...any) (any, error) {
	sep := args[0].(string)
	l, ok := asList(args[1])
	if !ok {
		return toText(args[1]), nil
	}
	parts := make([]string, len(l))
	for i, e := range l {
		parts[i] = toText(e)
	}
	return strings.Join(parts, sep), nil
}

// fnSubstr is XPath's substr(s, start, end): code points from start
// (0-based) to end (excluded), clamped to the string.
func fnSubstr(args ...any) (any, error) {
	r := []rune(toText(args[0]))
	start, ok1 := asNumber(args[1])
	end := float64(len(r))
	ok2 := true
	if len(args) == 3 {
		end, ok2 = asNumber(args[2])
	}
	if !ok1 || !ok2 || math.IsNaN(start) || math.IsNaN(end) {
		return nil, errArg
	}
	a := int(math.Max(0, math.Min(math.Trunc(start), float64(len(r)))))
	b := int(math.Max(float64(a), math.Min(math.Trunc(end), float64(len(r)))))
	return string(r[a:b]), nil
}

func fnContains(args ...any) (any, error) {
	return strings.Contains(toText(args[0]), toText(args[1])), nil
}

func fnStartsWith(args ...any) (any, error) {
	return strings.HasPrefix(toText(args[0]), toText(args[1])), nil
}

func fnEndsWith(args ...any) (any, error) {
	return strings.HasSuffix(toText(args[0]), toText(args[1])), nil
}

func fnSubstringBefore(args ...any) (any, error) {
	s, t := toText(args[0]), toText(args[1])
	before, _, found := strings.Cut(s, t)
	if !found {
		return "", nil
	}
	return before, nil
}

func fnSubstringAfter(args ...any) (any, error) {
	s, t := toText(args[0]), toText(args[1])
	_, after, found := strings.Cut(s, t)
	if !found {
		return "", nil
	}
	return after, nil
}

// fnTranslate replaces each character of from by the character at the
// same place in to, or removes it when to is shorter.
func fnTranslate(args ...any) (any, error) {
	s := toText(args[0])
	from, to := []rune(args[1].(string)), []rune(args[2].(string))
	var b strings.Builder
	for _, c := range s {
		i := -1
		for j, f := range from {
			if f == c {
				i = j
				break
			}
		}
		switch {
		case i < 0:
			b.WriteRune(c)
		case i < len(to):
			b.WriteRune(to[i])
		}
	}
	return b.String(), nil
}

// fnNormalizeSpace trims space, tab, CR and LF and collapses runs of them
// into one space.
func fnNormalizeSpace(args ...any) (any, error) {
	return strings.Join(strings.FieldsFunc(toText(args[0]), func(r rune) bool {
		return r == ' ' || r == '\t' || r == '\r' || r == '\n'
	}), " "), nil
}

func fnString(args ...any) (any, error) { return toText(args[0]), nil }

// fnBoolean is XPath's boolean(): a number other than 0 (and NaN), a
// non-empty string or list, true.
func fnBoolean(args ...any) (any, error) {
	switch x := args[0].(type) {
	case bool:
		return x, nil
	case float64:
		return x != 0 && !math.IsNaN(x), nil
	case int:
		return x != 0, nil
	}
	return !isEmpty(args[0]), nil
}

func fnBooleanFromString(args ...any) (any, error) {
	s := toText(args[0])
	return s == "true" || s == "1", nil
}

func fnInt(args ...any) (any, error) {
	x, ok := toNumber(args[0])
	if !ok {
		return nil, errArg
	}
	return math.Trunc(x), nil
}

// fnRound rounds half up (towards +∞) as XPath does: round(-2.5) is -2;
// with places, to that many decimal places.
func fnRound(args ...any) (any, error) {
	x, ok := toNumber(args[0])
	if !ok {
		return nil, errArg
	}
	if len(args) == 1 {
		return math.Floor(x + 0.5), nil
	}
	places, ok := asNumber(args[1])
	if !ok || places != math.Trunc(places) || math.Abs(places) > 15 {
		return nil, errArg
	}
	p := math.Pow(10, places)
	return math.Floor(x*p+0.5) / p, nil
}

// fnMath wraps a one-argument math function; rounded results go through
// round12.
func fnMath(f func(float64) float64, rounded bool) func(args ...any) (any, error) {
	return func(args ...any) (any, error) {
		x, ok := toNumber(args[0])
		if !ok {
			return nil, errArg
		}
		y := f(x)
		if rounded {
			y = round12(y)
		}
		return y, nil
	}
}

func fnAtan2(args ...any) (any, error) {
	y, ok1 := toNumber(args[0])
	x, ok2 := toNumber(args[1])
	if !ok1 || !ok2 {
		return nil, errArg
	}
	return round12(math.Atan2(y, x)), nil
}

// fnPow is exact for whole exponents up to 64 (repeated multiplication,
// as both languages compute it the same way), rounded otherwise.
func fnPow(args ...any) (any, error) {
	x, ok1 := toNumber(args[0])
	y, ok2 := toNumber(args[1])
	if !ok1 || !ok2 {
		return nil, errArg
	}
	if y == math.Trunc(y) && math.Abs(y) <= 64 {
		r := 1.0
		for range int(math.Abs(y)) {
			r *= x
		}
		if y < 0 {
			r = 1 / r
		}
		return r, nil
	}
	return round12(math.Pow(x, y)), nil
}

func fnPi(...any) (any, error) { return math.Pi, nil }

// extreme is max or min: over repeat rows and a key, or over numbers.
func extreme(args []any, better func(a, b float64) bool) (any, error) {
	var nums []float64
	if key, ok := args[len(args)-1].(string); ok && len(args) == 2 {
		l, ok := asList(args[0])
		if !ok {
			return nil, errArg
		}
		for _, e := range l {
			row, ok := e.(map[string]any)
			if !ok {
				return nil, errArg
			}
			if row[key] == nil {
				continue
			}
			x, ok := asNumber(row[key])
			if !ok {
				return nil, errArg
			}
			nums = append(nums, x)
		}
	} else {
		for _, a := range args {
			x, ok := asNumber(a)
			if !ok {
				return nil, errArg
			}
			nums = append(nums, x)
		}
	}
	if len(nums) == 0 {
		return nil, errArg
	}
	best := nums[0]
	for _, x := range nums[1:] {
		if better(x, best) {
			best = x
		}
	}
	return best, nil
}

func fnMax(args ...any) (any, error) { return extreme(args, func(a, b float64) bool { return a > b }) }
func fnMin(args ...any) (any, error) { return extreme(args, func(a, b float64) bool { return a < b }) }

// fnSelectedAt returns the i-th (from 0) selected value, or "".
func fnSelectedAt(args ...any) (any, error) {
	l, ok := asList(args[0])
	if s, isStr := args[0].(string); isStr {
		l, ok = asList(strings.Fields(s))
	}
	i, ok2 := asNumber(args[1])
	if !ok || !ok2 {
		return nil, errArg
	}
	if i < 0 || i != math.Trunc(i) || int(i) >= len(l) {
		return "", nil
	}
	return toText(l[int(i)]), nil
}

// fnCountNonEmpty counts the rows whose key holds a value, or the
// non-empty items of a list.
func fnCountNonEmpty(args ...any) (any, error) {
	l, ok := asList(args[0])
	if !ok {
		return nil, errArg
	}
	n := 0
	for _, e := range l {
		if len(args) == 2 {
			row, ok := e.(map[string]any)
			if !ok {
				return nil, errArg
			}
			e = row[args[1].(string)]
		}
		if !isEmpty(e) {
			n++
		}
	}
	return float64(n), nil
}

// fnIndexed returns row[key] of the i-th row (from 1), or nil.
func fnIndexed(args ...any) (any, error) {
	l, ok := asList(args[0])
	i, ok2 := asNumber(args[2])
	if !ok || !ok2 {
		return nil, errArg
	}
	if i < 1 || i != math.Trunc(i) || int(i) > len(l) {
		return nil, nil
	}
	row, ok := l[int(i)-1].(map[string]any)
	if !ok {
		return nil, errArg
	}
	return row[args[1].(string)], nil
}

// fnChecklist: the number of true arguments is at least lo and at most hi
// (-1 means no bound).
func fnChecklist(args ...any) (any, error) {
	lo, _ := asNumber(args[0])
	hi, _ := asNumber(args[1])
	n := 0.0
	for _, a := range args[2:] {
		if b, _ := fnBoolean(a); b == true {
			n++
		}
	}
	return (lo < 0 || n >= lo) && (hi < 0 || n <= hi), nil
}

// fnWeightedChecklist: the sum of the weights of true arguments (given
// as pairs value, weight) is at least lo and at most hi.
func fnWeightedChecklist(args ...any) (any, error) {
	lo, _ := asNumber(args[0])
	hi, _ := asNumber(args[1])
	rest := args[2:]
	if len(rest)%2 != 0 {
		return nil, errArg
	}
	sum := 0.0
	for i := 0; i < len(rest); i += 2 {
		w, ok := toNumber(rest[i+1])
		if !ok {
			return nil, errArg
		}
		if b, _ := fnBoolean(rest[i]); b == true {
			sum += w
		}
	}
	return (lo < 0 || sum >= lo) && (hi < 0 || sum <= hi), nil
}

// chinaOffset is the offset of the times date_time() writes: the zone of
// `today` (Asia/Shanghai, no daylight saving time).
const chinaOffset = 8 * 60 * 60

// fnDate turns days since 1970-01-01 into a date, or keeps the date of a
// date or timestamp.
func fnDate(args ...any) (any, error) {
	if s, ok := args[0].(string); ok {
		switch {
		case isDate(s):
			return s, nil
		case isDateTime(s):
			return s[:10], nil
		}
	}
	x, ok := toNumber(args[0])
	if !ok || math.Abs(x) > 3e6 {
		return nil, errArg
	}
	return time.Unix(int64(math.Floor(x))*86400, 0).UTC().Format(time.DateOnly), nil
}

// fnDateTime turns days since 1970-01-01T00:00:00Z (with a fraction) into
// a timestamp at +08:00, to the millisecond; a timestamp stays as it is.
func fnDateTime(args ...any) (any, error) {
	if s, ok := args[0].(string); ok && isDateTime(s) {
		return s, nil
	}
	x, ok := toNumber(args[0])
	if !ok || math.Abs(x) > 3e6 {
		return nil, errArg
	}
	ms := int64(math.Round(x * 86400000))
	t := time.UnixMilli(ms).In(time.FixedZone("", chinaOffset))
	if ms%1000 != 0 {
		return t.Format("2006-01-02T15:04:05.000Z07:00"), nil
	}
	return t.Format(time.RFC3339), nil
}

// fnDecimalDateTime is the number of days (with a fraction) from
// 1970-01-01T00:00:00Z to a timestamp, or to the start (UTC) of a date.
func fnDecimalDateTime(args ...any) (any, error) {
	s, ok := args[0].(string)
	if !ok {
		return nil, errArg
	}
	if isDate(s) {
		return fnDays(s)
	}
	secs, err := fnSeconds(s)
	if err != nil {
		return nil, err
	}
	return secs.(float64) / 86400, nil
}

// fnDecimalTime is the fraction of the day of a time "HH:MM[:SS]", or of
// the time written in a timestamp.
func fnDecimalTime(args ...any) (any, error) {
	s, ok := args[0].(string)
	if ok && isDateTime(s) {
		s = s[11:19]
	}
	if !ok || !timeRE.MatchString(s) {
		return nil, errArg
	}
	h, _ := strconv.Atoi(s[0:2])
	m, _ := strconv.Atoi(s[3:5])
	sec := 0
	if len(s) == 8 {
		sec, _ = strconv.Atoi(s[6:8])
	}
	return float64(h*3600+m*60+sec) / 86400, nil
}

var (
	monthNames = []string{"Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"}
	dayNames   = []string{"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"}
)

// fnFormatDate formats a date or timestamp with ODK's codes, on the wall
// clock written in the value (no zone conversion): %Y %y %m %n %b %d %e
// %a %H %h %M %S %3 and %% ; other characters are copied.
func fnFormatDate(args ...any) (any, error) {
	s, _ := args[0].(string)
	var t time.Time
	switch {
	case isDate(s):
		t, _ = time.Parse(time.DateOnly, s)
	case isDateTime(s):
		t, _ = time.Parse(time.RFC3339, s)
	case timeRE.MatchString(s):
		t, _ = time.Parse("15:04:05", (s + ":00")[:8])
	default:
		return nil, errArg
	}
	f := args[1].(string)
	var b strings.Builder
	for i := 0; i < len(f); i++ {
		if f[i] != '%' || i+1 == len(f) {
			b.WriteByte(f[i])
			continue
		}
		i++
		switch f[i] {
		case 'Y':
			fmt.Fprintf(&b, "%04d", t.Year())
		case 'y':
			fmt.Fprintf(&b, "%02d", t.Year()%100)
		case 'm':
			fmt.Fprintf(&b, "%02d", int(t.Month()))
		case 'n':
			fmt.Fprintf(&b, "%d", int(t.Month()))
		case 'b':
			b.WriteString(monthNames[t.Month()-1])
		case 'd':
			fmt.Fprintf(&b, "%02d", t.Day())
		case 'e':
			fmt.Fprintf(&b, "%d", t.Day())
		case 'a':
			b.WriteString(dayNames[t.Weekday()])
		case 'H':
			fmt.Fprintf(&b, "%02d", t.Hour())
		case 'h':
			fmt.Fprintf(&b, "%d", t.Hour())
		case 'M':
			fmt.Fprintf(&b, "%02d", t.Minute())
		case 'S':
			fmt.Fprintf(&b, "%02d", t.Second())
		case '3':
			fmt.Fprintf(&b, "%03d", t.Nanosecond()/1e6)
		case '%':
			b.WriteByte('%')
		default:
			b.WriteByte('%')
			b.WriteByte(f[i])
		}
	}
	return b.String(), nil
}

// earthRadius is the radius, in metres, of the sphere area() and
// distance() compute on (WGS 84's equatorial radius).
const earthRadius = 6378137.0

// points reads a list of locations (a geotrace or geoshape value).
func points(v any) ([][2]float64, bool) {
	l, ok := v.([]any)
	if !ok {
		return nil, false
	}
	out := make([][2]float64, 0, len(l))
	for _, e := range l {
		p, ok := point(e)
		if !ok {
			return nil, false
		}
		out = append(out, p)
	}
	return out, true
}

func point(v any) ([2]float64, bool) {
	m, ok := v.(map[string]any)
	if !ok {
		return [2]float64{}, false
	}
	lat, ok1 := asNumber(m["lat"])
	lng, ok2 := asNumber(m["lng"])
	return [2]float64{lat, lng}, ok1 && ok2
}

func rad(deg float64) float64 { return deg * math.Pi / 180 }

// haversine is the great-circle distance between two locations.
func haversine(a, b [2]float64) float64 {
	dLat, dLng := rad(b[0]-a[0]), rad(b[1]-a[1])
	h := math.Sin(dLat/2)*math.Sin(dLat/2) + math.Cos(rad(a[0]))*math.Cos(rad(b[0]))*math.Sin(dLng/2)*math.Sin(dLng/2)
	return 2 * earthRadius * math.Asin(math.Min(1, math.Sqrt(h)))
}

// fnDistance is the length in metres of a line of locations, or the
// distance between two locations.
func fnDistance(args ...any) (any, error) {
	var pts [][2]float64
	if len(args) == 2 {
		a, ok1 := point(args[0])
		b, ok2 := point(args[1])
		if !ok1 || !ok2 {
			return nil, errArg
		}
		pts = [][2]float64{a, b}
	} else {
		var ok bool
		if pts, ok = points(args[0]); !ok {
			return nil, errArg
		}
	}
	total := 0.0
	for i := 1; i < len(pts); i++ {
		total += haversine(pts[i-1], pts[i])
	}
	return round12(total), nil
}

// fnArea is the area in square metres of the ring of locations, on the
// sphere (Chamberlain and Duquette's formula).
func fnArea(args ...any) (any, error) {
	pts, ok := points(args[0])
	if !ok {
		return nil, errArg
	}
	if len(pts) < 3 {
		return 0.0, nil
	}
	sum := 0.0
	for i := range pts {
		p1, p2 := pts[i], pts[(i+1)%len(pts)]
		sum += rad(p2[1]-p1[1]) * (2 + math.Sin(rad(p1[0])) + math.Sin(rad(p2[0])))
	}
	return round12(math.Abs(sum * earthRadius * earthRadius / 2)), nil
}
