package main

import (
	"fmt"
	"image/color"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
)

// ratioBar is one bar of the chart: fieldsync against a reference, and
// the goal for it.
type ratioBar struct {
	label string
	value float64
	goal  float64
}

func ratios(rep *Report) []ratioBar {
	div := func(a, b float64) float64 {
		if b == 0 {
			return 0
		}
		return a / b
	}
	f, r, p, s := rep.Fieldsync, rep.Raw, rep.Pouch, rep.Sizes
	bars := []ratioBar{
		{"push 1 ÷ raw", div(f["push1"].Rate, r["push1"].Rate), 0.7},
		{"push 4 ÷ raw", div(f["push4"].Rate, r["push4"].Rate), 0.7},
		{"pull ÷ raw read", div(f["pull"].Rate, r["pull"].Rate), 0.5},
	}
	if p != nil {
		bars = append(bars,
			ratioBar{"push 1 ÷ pouch", div(f["push1"].Rate, p["push1"].Rate), 1},
			ratioBar{"update ÷ pouch", div(f["update"].Rate, p["update"].Rate), 0.5})
	}
	bars = append(bars, ratioBar{"raw size ÷ fs size", div(float64(s["raw"]), float64(s["fieldsync"])), 1 / 1.5})
	if h, o := rep.Hazard["hazard"], rep.Hazard["other"]; h.Rate > 0 {
		bars = append(bars, ratioBar{"hazard ÷ other", div(h.Rate, o.Rate), 1 / 1.5})
	}
	if n := len(rep.Modes); n > 1 {
		bars = append(bars,
			ratioBar{fmt.Sprintf("push %d÷%d sch.", rep.Modes[n-1].Schools, rep.Modes[0].Schools), div(rep.Modes[n-1].Push.Rate, rep.Modes[0].Push.Rate), 1 / 1.3},
			ratioBar{fmt.Sprintf("pull %d÷%d sch.", rep.Modes[n-1].Schools, rep.Modes[0].Schools), div(rep.Modes[n-1].Pull.Rate, rep.Modes[0].Pull.Rate), 1 / 1.3})
	}
	return bars
}

// chart draws every ratio (higher is better) as a bar, next to its goal.
func chart(rep *Report, path string) error {
	bars := ratios(rep)
	p := plot.New()
	p.Title.Text = fmt.Sprintf("fieldsync ratios (higher is better), %d records, load %s", rep.Records, rep.LoadAvg)
	p.Y.Label.Text = "ratio"
	got, goal := make(plotter.Values, len(bars)), make(plotter.Values, len(bars))
	names := make([]string, len(bars))
	for i, b := range bars {
		got[i], goal[i], names[i] = b.value, b.goal, b.label
	}
	w := vg.Points(16)
	measured, err := plotter.NewBarChart(got, w)
	if err != nil {
		return err
	}
	measured.Color = color.RGBA{R: 40, G: 110, B: 200, A: 255}
	measured.Offset = -w / 2
	goals, err := plotter.NewBarChart(goal, w)
	if err != nil {
		return err
	}
	goals.Color = color.RGBA{R: 200, G: 200, B: 200, A: 255}
	goals.Offset = w / 2
	p.Add(measured, goals)
	p.Legend.Add("measured", measured)
	p.Legend.Add("goal", goals)
	p.Legend.Top, p.Legend.Left = true, true
	p.NominalX(names...)
	p.X.Tick.Label.Rotation = 0.6
	p.X.Tick.Label.XAlign = -1
	return p.Save(vg.Length(len(bars))*1.1*vg.Inch+2*vg.Inch, 5*vg.Inch, path)
}
