package chart_test

import (
	"bytes"
	"encoding/xml"
	"errors"
	"io"
	"strconv"
	"strings"
	"testing"

	"github.com/fieldsync/fieldsync/server/reports/chart"
)

// node is a parsed SVG element.
type node struct {
	Name     string
	Attr     map[string]string
	Children []*node
	Text     string
}

func parse(t *testing.T, b []byte) *node {
	t.Helper()
	d := xml.NewDecoder(bytes.NewReader(b))
	var stack []*node
	var root *node
	for {
		tok, err := d.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("not well-formed XML: %v\n%s", err, b)
		}
		switch x := tok.(type) {
		case xml.StartElement:
			n := &node{Name: x.Name.Local, Attr: map[string]string{}}
			for _, a := range x.Attr {
				n.Attr[a.Name.Local] = a.Value
			}
			if len(stack) > 0 {
				p := stack[len(stack)-1]
				p.Children = append(p.Children, n)
			} else {
				root = n
			}
			stack = append(stack, n)
		case xml.EndElement:
			stack = stack[:len(stack)-1]
		case xml.CharData:
			if len(stack) > 0 {
				stack[len(stack)-1].Text += string(x)
			}
		}
	}
	if root == nil || root.Name != "svg" {
		t.Fatalf("root is not svg: %s", b)
	}
	return root
}

func (n *node) all(pred func(*node) bool) []*node {
	var out []*node
	if pred(n) {
		out = append(out, n)
	}
	for _, c := range n.Children {
		out = append(out, c.all(pred)...)
	}
	return out
}

func points(root *node) []*node {
	return root.all(func(n *node) bool { return n.Attr["class"] == "point" })
}

func num(t *testing.T, s string) float64 {
	t.Helper()
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		t.Fatalf("%q is not a number", s)
	}
	return f
}

func TestRender(t *testing.T) {
	months := []string{"2026-09", "2026-10", "2026-11", "2026-12"}
	tests := []struct {
		name   string
		chart  chart.Chart
		points int
		check  func(t *testing.T, root *node, pts []*node)
	}{
		{"CompletionBars", chart.Chart{Kind: chart.KindBars, Title: "各责任区进校完成率", Percent: true,
			Labels: []string{"第一责任区", "第二责任区", "第三责任区"}, Series: []chart.Series{{Name: "完成率", Values: []float64{1, 0.5, 0}}}}, 3,
			func(t *testing.T, root *node, pts []*node) {
				full := num(t, pts[0].Children[0].Attr["width"])
				half := num(t, pts[1].Children[0].Attr["width"])
				if full <= 0 || half*2 < full-0.2 || half*2 > full+0.2 || num(t, pts[2].Children[0].Attr["width"]) != 0 {
					t.Errorf("bar widths %v, %v: not proportional", full, half)
				}
				if pts[0].Children[0].Attr["fill"] == pts[1].Children[0].Attr["fill"] {
					t.Error("a bar short of the quota has the color of a full one")
				}
				if len(root.all(func(n *node) bool { return n.Attr["class"] == "target" })) != 1 {
					t.Error("no target line at 100%")
				}
				if tip := pts[1].Children[1].Text; tip != "第二责任区 · 完成率：50%" {
					t.Errorf("tooltip %q", tip)
				}
			}},
		{"HazardsStacked", chart.Chart{Kind: chart.KindStacked, Title: "隐患（按严重程度）", Unit: "项", Labels: months, Series: []chart.Series{
			{Name: "一般", Values: []float64{2, 0, 1, 3}}, {Name: "较大", Values: []float64{1, 1, 0, 2}}, {Name: "重大", Values: []float64{0, 2, 1, 1}}}}, 12,
			func(t *testing.T, root *node, pts []*node) {
				// Heights are proportional to values: in December (6 in
				// all), the 一般 segment is 3/6 of the column.
				var dec []float64
				for _, p := range pts {
					if p.Attr["data-label"] == "2026-12" {
						dec = append(dec, num(t, p.Children[0].Attr["height"]))
					}
				}
				if len(dec) != 3 || dec[0] < dec[1] || dec[0] < 2*dec[2]-0.2 || dec[0] > 3*dec[2]+0.2 {
					t.Errorf("December's segments %v", dec)
				}
			}},
		{"VisitsLines", chart.Chart{Kind: chart.KindLines, Title: "每月进校次数", Unit: "次", Labels: months, Series: []chart.Series{
			{Name: "实际", Values: []float64{10, 14, 9, 3}}, {Name: "应到", Values: []float64{12, 12, 12, 12}}}}, 8,
			func(t *testing.T, root *node, pts []*node) {
				if len(root.all(func(n *node) bool { return n.Name == "path" })) != 2 {
					t.Error("want one path per series")
				}
				// A higher value is drawn higher (smaller y).
				if num(t, pts[1].Children[0].Attr["cy"]) >= num(t, pts[0].Children[0].Attr["cy"]) {
					t.Error("14 is not above 10")
				}
			}},
		{"Escaping", chart.Chart{Kind: chart.KindBars, Title: `<script>"&'`, Labels: []string{`a<b>&"c"`}, Series: []chart.Series{{Name: `x"y`, Values: []float64{3}}}}, 1,
			func(t *testing.T, root *node, pts []*node) {
				if pts[0].Attr["data-label"] != `a<b>&"c"` || pts[0].Attr["data-series"] != `x"y` {
					t.Errorf("attributes %v", pts[0].Attr)
				}
				if len(root.all(func(n *node) bool { return n.Name == "script" })) != 0 {
					t.Error("a label became an element")
				}
			}},
		{"Empty", chart.Chart{Kind: chart.KindLines, Title: "无数据"}, 0,
			func(t *testing.T, root *node, pts []*node) {
				if len(root.all(func(n *node) bool { return strings.Contains(n.Text, "暂无数据") })) != 1 {
					t.Error("an empty chart does not say so")
				}
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := chart.Render(tt.chart)
			if err != nil {
				t.Fatal(err)
			}
			again, _ := chart.Render(tt.chart)
			if !bytes.Equal(b, again) {
				t.Error("two renders of one chart differ")
			}
			root := parse(t, b)
			pts := points(root)
			if len(pts) != tt.points {
				t.Fatalf("%d points, want %d", len(pts), tt.points)
			}
			for _, p := range pts {
				var found bool
				for _, s := range tt.chart.Series {
					for i, l := range tt.chart.Labels {
						if s.Name == p.Attr["data-series"] && l == p.Attr["data-label"] && strconv.FormatFloat(s.Values[i], 'f', -1, 64) == p.Attr["data-value"] {
							found = true
						}
					}
				}
				if !found {
					t.Errorf("point %v is not a value of the chart", p.Attr)
				}
			}
			tt.check(t, root, pts)
		})
	}
}

func TestRenderRefuses(t *testing.T) {
	for _, tt := range []struct {
		name  string
		chart chart.Chart
		want  error
	}{
		{"UnknownKind", chart.Chart{Kind: "pie"}, chart.ErrKind},
		{"MissingValue", chart.Chart{Kind: chart.KindLines, Labels: []string{"a", "b"}, Series: []chart.Series{{Name: "s", Values: []float64{1}}}}, chart.ErrValues},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := chart.Render(tt.chart); !errors.Is(err, tt.want) {
				t.Errorf("Render = %v, want %v", err, tt.want)
			}
		})
	}
}

// Counts get whole ticks: a chart of one hazard has no 0.2 on its axis.
func TestWholeTicks(t *testing.T) {
	for _, kind := range []string{chart.KindStacked, chart.KindLines} {
		b, err := chart.Render(chart.Chart{Kind: kind, Labels: []string{"2026-11"}, Series: []chart.Series{{Name: "新发现", Values: []float64{1}}}})
		if err != nil {
			t.Fatal(err)
		}
		root := parse(t, b)
		for _, n := range root.all(func(n *node) bool { return n.Name == "text" && n.Attr["text-anchor"] == "end" }) {
			if strings.Contains(n.Text, ".") {
				t.Errorf("%s: tick %q on an axis of counts", kind, n.Text)
			}
		}
	}
}
