// Package chart draws the office dashboard's charts as SVG on the server:
// horizontal bars (quota completion per zone or inspector), stacked
// columns (hazards by status or severity per month) and lines (visits by
// month). Every data point is an element of class "point" with its
// series, label and value in data- attributes and a <title> tooltip, so
// a page can show it as an <img>, inline it, or test it; labels are
// Simplified Chinese as given.
//
// It is pure: it writes bytes from values, reads no clock and does no
// I/O. It must not import any package of this module.
package chart

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// Kinds of chart.
const (
	KindBars    = "bars"    // one horizontal bar per label, of the first series
	KindStacked = "stacked" // columns per label, the series stacked
	KindLines   = "lines"   // a line per series over the labels
)

// Series is a named list of values, one per label.
type Series struct {
	Name   string    `json:"name"`
	Values []float64 `json:"values"`
	// Color is a CSS color; empty picks one of Palette.
	Color string `json:"color,omitempty"`
}

// Chart is what to draw.
type Chart struct {
	Kind   string   `json:"kind"`
	Title  string   `json:"title"`
	Labels []string `json:"labels"`
	Series []Series `json:"series"`
	// Percent shows values as percentages (0.5 → 50%), with the axis
	// from 0 to 100% and a target line at 100%.
	Percent bool `json:"percent,omitempty"`
	// Unit follows values in tooltips ("次", "项").
	Unit string `json:"unit,omitempty"`
	// Width and Height in pixels; 0 gives 640 × 360 (bars: 28 px a
	// label).
	Width  int `json:"-"`
	Height int `json:"-"`
}

// Palette is the default series colors, distinguishable in print.
var Palette = []string{"#2f6fb0", "#e07b39", "#3a9a5b", "#c0392b", "#8e6bbf", "#7f8c8d", "#d4a017", "#16a2b8"}

const font = `font-family="Noto Sans CJK SC, Source Han Sans SC, PingFang SC, Microsoft YaHei, sans-serif"`

// Errors of Render.
var (
	ErrKind   = errors.New("chart: unknown kind")
	ErrValues = errors.New("chart: a series has not one value per label")
)

// Render draws the chart as a standalone SVG document.
func Render(c Chart) ([]byte, error) {
	for _, s := range c.Series {
		if len(s.Values) != len(c.Labels) {
			return nil, fmt.Errorf("%w: %q has %d values for %d labels", ErrValues, s.Name, len(s.Values), len(c.Labels))
		}
		for _, v := range s.Values {
			if math.IsNaN(v) || math.IsInf(v, 0) {
				return nil, fmt.Errorf("chart: %q holds %v", s.Name, v)
			}
		}
	}
	w, h := c.Width, c.Height
	if w <= 0 {
		w = 640
	}
	if h <= 0 {
		h = 360
		if c.Kind == KindBars {
			h = 70 + 28*max(1, len(c.Labels))
		}
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" role="img" aria-label="%s" %s font-size="12">`, w, h, w, h, attr(c.Title), font)
	fmt.Fprintf(&b, `<title>%s</title><rect width="%d" height="%d" fill="#fff"/>`, text(c.Title), w, h)
	fmt.Fprintf(&b, `<text x="12" y="22" font-size="15" font-weight="bold">%s</text>`, text(c.Title))
	var err error
	switch c.Kind {
	case KindBars:
		err = bars(&b, c, w, h)
	case KindStacked:
		err = columns(&b, c, w, h)
	case KindLines:
		err = lines(&b, c, w, h)
	default:
		err = fmt.Errorf("%w %q", ErrKind, c.Kind)
	}
	if err != nil {
		return nil, err
	}
	if len(c.Labels) == 0 {
		fmt.Fprintf(&b, `<text x="%d" y="%d" text-anchor="middle" fill="#777">暂无数据 / no data</text>`, w/2, h/2)
	}
	b.WriteString(`</svg>`)
	return b.Bytes(), nil
}

func color(c Chart, i int) string {
	if i < len(c.Series) && c.Series[i].Color != "" {
		return c.Series[i].Color
	}
	return Palette[i%len(Palette)]
}

// value formats a value for labels and tooltips.
func value(c Chart, v float64) string {
	if c.Percent {
		return strconv.FormatFloat(math.Round(v*1000)/10, 'f', -1, 64) + "%"
	}
	return strconv.FormatFloat(math.Round(v*100)/100, 'f', -1, 64) + c.Unit
}

// point writes a data point's attributes and tooltip around body.
func point(b *bytes.Buffer, c Chart, series, label string, v float64, shape string) {
	tip := label + " · " + series + "：" + value(c, v)
	if series == "" {
		tip = label + "：" + value(c, v)
	}
	fmt.Fprintf(b, `<g class="point" data-series="%s" data-label="%s" data-value="%s">%s<title>%s</title></g>`,
		attr(series), attr(label), strconv.FormatFloat(v, 'f', -1, 64), shape, text(tip))
}

// niceMax returns a round axis maximum ≥ v and its step (5 or so
// ticks); whole steps when the values are counts.
func niceMax(v float64, whole bool) (top, step float64) {
	if whole {
		defer func() {
			if step < 1 {
				step, top = 1, math.Max(1, math.Ceil(top))
			}
		}()
	}
	if v <= 0 {
		return 1, 0.2
	}
	raw := v / 5
	mag := math.Pow(10, math.Floor(math.Log10(raw)))
	for _, m := range []float64{1, 2, 2.5, 5, 10} {
		step = m * mag
		if step >= raw {
			break
		}
	}
	return math.Ceil(v/step) * step, step
}

func legend(b *bytes.Buffer, c Chart, x, y int) {
	for i, s := range c.Series {
		fmt.Fprintf(b, `<rect x="%d" y="%d" width="10" height="10" fill="%s"/><text x="%d" y="%d">%s</text>`, x, y-9, color(c, i), x+14, y, text(s.Name))
		x += 24 + 13*len([]rune(s.Name))
	}
}

// plot is the drawing area of the column and line charts.
type plot struct{ left, top, right, bottom float64 }

func axes(b *bytes.Buffer, c Chart, p plot, top, step float64) {
	for v := 0.0; v <= top+step/2; v += step {
		y := p.bottom - (p.bottom-p.top)*v/top
		fmt.Fprintf(b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#e3e3e3"/>`, p.left, y, p.right, y)
		fmt.Fprintf(b, `<text x="%.1f" y="%.1f" text-anchor="end" fill="#555">%s</text>`, p.left-6, y+4, text(value(Chart{Percent: c.Percent}, v)))
	}
	fmt.Fprintf(b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#888"/>`, p.left, p.bottom, p.right, p.bottom)
}

func xLabels(b *bytes.Buffer, c Chart, p plot) {
	n := float64(len(c.Labels))
	for i, l := range c.Labels {
		x := p.left + (p.right-p.left)*(float64(i)+0.5)/n
		fmt.Fprintf(b, `<text x="%.1f" y="%.1f" text-anchor="middle" fill="#333">%s</text>`, x, p.bottom+16, text(l))
	}
}

func bars(b *bytes.Buffer, c Chart, w, h int) error {
	if len(c.Series) == 0 {
		return nil
	}
	s := c.Series[0]
	labelW := 20.0
	for _, l := range c.Labels {
		labelW = math.Max(labelW, 13*float64(len([]rune(l))))
	}
	labelW = math.Min(labelW+12, float64(w)/3)
	left, right := labelW, float64(w)-60
	top := 1.0
	if !c.Percent {
		for _, v := range s.Values {
			top = math.Max(top, v)
		}
		top, _ = niceMax(top, wholes(c))
	}
	for i, l := range c.Labels {
		y := 40 + 28*float64(i)
		v := s.Values[i]
		bw := (right - left) * math.Max(0, math.Min(v, top)) / top
		fill := color(c, 0)
		if c.Percent && v < 1 {
			fill = Palette[1] // short of the quota
		}
		fmt.Fprintf(b, `<text x="%.1f" y="%.1f" text-anchor="end" fill="#333">%s</text>`, left-8, y+14, text(l))
		fmt.Fprintf(b, `<rect x="%.1f" y="%.1f" width="%.1f" height="18" fill="#f0f0f0"/>`, left, y, right-left)
		point(b, c, s.Name, l, v, fmt.Sprintf(`<rect x="%.1f" y="%.1f" width="%.1f" height="18" fill="%s"/>`, left, y, bw, fill))
		fmt.Fprintf(b, `<text x="%.1f" y="%.1f" fill="#333">%s</text>`, left+bw+6, y+14, text(value(c, v)))
	}
	if c.Percent {
		fmt.Fprintf(b, `<line class="target" x1="%.1f" y1="34" x2="%.1f" y2="%d" stroke="#c0392b" stroke-dasharray="4 3"/>`, right, right, h-20)
	}
	return nil
}

func columns(b *bytes.Buffer, c Chart, w, h int) error {
	p := plot{left: 52, top: 40, right: float64(w) - 16, bottom: float64(h) - 50}
	totals := make([]float64, len(c.Labels))
	for _, s := range c.Series {
		for i, v := range s.Values {
			totals[i] += math.Max(0, v)
		}
	}
	peak := 0.0
	for _, t := range totals {
		peak = math.Max(peak, t)
	}
	top, step := niceMax(peak, wholes(c))
	axes(b, c, p, top, step)
	n := float64(max(1, len(c.Labels)))
	slot := (p.right - p.left) / n
	bw := math.Min(48, slot*0.6)
	for i, l := range c.Labels {
		x := p.left + slot*float64(i) + (slot-bw)/2
		y := p.bottom
		for si, s := range c.Series {
			v := math.Max(0, s.Values[i])
			hgt := (p.bottom - p.top) * v / top
			y -= hgt
			point(b, c, s.Name, l, s.Values[i], fmt.Sprintf(`<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s"/>`, x, y, bw, hgt, color(c, si)))
		}
		if totals[i] > 0 {
			fmt.Fprintf(b, `<text x="%.1f" y="%.1f" text-anchor="middle" fill="#333">%s</text>`, x+bw/2, y-4, text(value(c, totals[i])))
		}
	}
	xLabels(b, c, p)
	legend(b, c, int(p.left), h-14)
	return nil
}

func lines(b *bytes.Buffer, c Chart, w, h int) error {
	p := plot{left: 52, top: 40, right: float64(w) - 16, bottom: float64(h) - 50}
	peak := 0.0
	for _, s := range c.Series {
		for _, v := range s.Values {
			peak = math.Max(peak, v)
		}
	}
	if c.Percent {
		peak = math.Max(peak, 1)
	}
	top, step := niceMax(peak, wholes(c))
	axes(b, c, p, top, step)
	n := float64(max(1, len(c.Labels)))
	xy := func(i int, v float64) (float64, float64) {
		return p.left + (p.right-p.left)*(float64(i)+0.5)/n, p.bottom - (p.bottom-p.top)*math.Max(0, v)/top
	}
	for si, s := range c.Series {
		var path strings.Builder
		for i, v := range s.Values {
			x, y := xy(i, v)
			cmd := "L"
			if i == 0 {
				cmd = "M"
			}
			fmt.Fprintf(&path, "%s%.1f %.1f ", cmd, x, y)
		}
		if len(s.Values) > 0 {
			fmt.Fprintf(b, `<path d="%s" fill="none" stroke="%s" stroke-width="2"/>`, strings.TrimSpace(path.String()), color(c, si))
		}
		for i, v := range s.Values {
			x, y := xy(i, v)
			point(b, c, s.Name, c.Labels[i], v, fmt.Sprintf(`<circle cx="%.1f" cy="%.1f" r="4" fill="%s"/>`, x, y, color(c, si)))
		}
	}
	xLabels(b, c, p)
	legend(b, c, int(p.left), h-14)
	return nil
}

// wholes reports whether every value is a whole number (counts), not
// shown as percentages.
func wholes(c Chart) bool {
	if c.Percent {
		return false
	}
	for _, s := range c.Series {
		for _, v := range s.Values {
			if v != math.Trunc(v) {
				return false
			}
		}
	}
	return true
}

// text escapes character data.
func text(s string) string {
	var b strings.Builder
	_ = xml.EscapeText(&b, []byte(s))
	return b.String()
}

// attr escapes an attribute value (EscapeText escapes quotes too).
func attr(s string) string { return text(s) }
