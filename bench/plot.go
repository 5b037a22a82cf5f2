package bench

import (
	"bytes"
	"encoding/json"
	"fmt"
	"html"
	"io"
	"math"
	"strings"
)

// Chart geometry, in SVG user units.
const (
	chartW, chartH = 900, 300
	padL, padR     = 70, 150
	padT, padB     = 30, 40
)

// line is one series of a chart; NaN points are left out.
type line struct {
	name  string
	color string
	x, y  []float64
}

// WritePlot writes r as one self-contained HTML page: the summary, then
// throughput and latency over time as inline SVG, then the results JSON
// (so the page alone is enough to rebuild the figures). It loads nothing
// from the network. The output is well-formed XML as well as HTML.
func WritePlot(w io.Writer, r *Result) error {
	var summary bytes.Buffer
	if err := r.WriteSummary(&summary); err != nil {
		return err
	}
	data, err := json.Marshal(r) // escapes <, > and &, so it is safe in a script element
	if err != nil {
		return err
	}
	// A run's last interval can be a sliver of a second whose rate is
	// noise; it is in the JSON, not drawn.
	series := r.Series
	if n := len(series); n > 1 && series[n-1].Seconds < r.Config.Interval.Seconds()/4 {
		series = series[:n-1]
	}
	ts := make([]float64, len(series))
	for i, s := range series {
		ts[i] = s.Elapsed
	}
	pick := func(f func(Sample) float64) []float64 {
		v := make([]float64, len(series))
		for i, s := range series {
			v[i] = f(s)
		}
		return v
	}
	var tput []line
	if r.Produce != nil {
		tput = append(tput, line{"produce msg/s", "#1f77b4", ts, pick(func(s Sample) float64 { return s.ProduceMsgsPerSec })})
	}
	if r.Consume != nil {
		tput = append(tput, line{"consume msg/s", "#2ca02c", ts, pick(func(s Sample) float64 { return s.ConsumeMsgsPerSec })})
	}
	// Intervals with nothing acknowledged have no latency: NaN skips them.
	lat := func(f func(Sample) Latency, q func(Latency) float64) []float64 {
		return pick(func(s Sample) float64 {
			if l := f(s); l.Count > 0 {
				return q(l)
			}
			return math.NaN()
		})
	}
	pubL := func(s Sample) Latency { return s.Publish }
	e2eL := func(s Sample) Latency { return s.EndToEnd }
	var lats []line
	if r.Produce != nil {
		lats = append(lats,
			line{"publish p50", "#1f77b4", ts, lat(pubL, func(l Latency) float64 { return l.P50 })},
			line{"publish p99", "#ff7f0e", ts, lat(pubL, func(l Latency) float64 { return l.P99 })},
			line{"publish max", "#d62728", ts, lat(pubL, func(l Latency) float64 { return l.Max })})
	}
	if r.EndToEnd != nil {
		lats = append(lats,
			line{"e2e p50", "#9467bd", ts, lat(e2eL, func(l Latency) float64 { return l.P50 })},
			line{"e2e p99", "#8c564b", ts, lat(e2eL, func(l Latency) float64 { return l.P99 })})
	}

	var b strings.Builder
	title := fmt.Sprintf("sluice-bench %s: %s", r.Config.Workload, r.Topic.Name)
	fmt.Fprintf(&b, `<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"/><title>%s</title>
<style>body{font-family:sans-serif;margin:2em;color:#222}pre{background:#f6f6f6;padding:1em}svg{display:block;margin:1em 0}text{font-size:12px}</style>
</head><body>
<h1>%s</h1>
<p>Started %s; per-interval series of %d points.</p>
<pre>%s</pre>
`, html.EscapeString(title), html.EscapeString(title), r.StartedAt.Format("2006-01-02 15:04:05 MST"), len(r.Series),
		html.EscapeString(summary.String()))
	if len(tput) > 0 {
		b.WriteString(svgChart("Throughput", "msg/s", tput, false))
	}
	if len(lats) > 0 {
		b.WriteString(svgChart("Latency (log scale)", "ms", lats, true))
	}
	fmt.Fprintf(&b, "<script type=\"application/json\" id=\"sluice-bench-result\">%s</script>\n</body></html>\n", data)
	_, err = io.WriteString(w, b.String())
	return err
}

// svgChart draws lines against time; logY plots log10 of y with a
// gridline per decade.
func svgChart(title, unit string, lines []line, logY bool) string {
	tr := func(v float64) float64 {
		if logY {
			return math.Log10(v)
		}
		return v
	}
	usable := func(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) && (!logY || v > 0) }
	xMax, yMin, yMax := 0.0, math.Inf(1), math.Inf(-1)
	for _, l := range lines {
		for i, y := range l.y {
			if !usable(y) {
				continue
			}
			xMax = max(xMax, l.x[i])
			yMin, yMax = min(yMin, tr(y)), max(yMax, tr(y))
		}
	}
	if math.IsInf(yMin, 1) { // no data at all
		yMin, yMax = 0, 1
	}
	var ticks []float64
	if logY {
		yMin, yMax = math.Floor(yMin), math.Ceil(yMax)
		if yMax == yMin {
			yMax++
		}
		for d := yMin; d <= yMax; d++ {
			ticks = append(ticks, d)
		}
	} else {
		yMin = 0
		yMax, ticks = niceTicks(yMax)
	}
	if xMax <= 0 {
		xMax = 1
	}
	px := func(x float64) float64 { return padL + x/xMax*float64(chartW-padL-padR) }
	py := func(y float64) float64 { return float64(chartH-padB) - (y-yMin)/(yMax-yMin)*float64(chartH-padT-padB) }

	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" role="img" aria-label="%s">`+"\n",
		chartW, chartH, chartW, chartH, html.EscapeString(title))
	fmt.Fprintf(&b, `<text x="%d" y="18" font-weight="bold">%s</text>`+"\n", padL, html.EscapeString(title))
	for _, t := range ticks {
		label := axisLabel(t)
		if logY {
			label = axisLabel(math.Pow(10, t))
		}
		fmt.Fprintf(&b, `<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#ddd"/><text x="%d" y="%.1f" text-anchor="end">%s</text>`+"\n",
			padL, py(t), chartW-padR, py(t), padL-6, py(t)+4, label)
	}
	_, xt := niceTicks(xMax)
	for _, t := range xt {
		if t > xMax {
			break
		}
		fmt.Fprintf(&b, `<text x="%.1f" y="%d" text-anchor="middle">%s</text>`+"\n", px(t), chartH-padB+16, axisLabel(t))
	}
	fmt.Fprintf(&b, `<text x="%d" y="%d" text-anchor="middle">seconds</text>`+"\n", (chartW-padR+padL)/2, chartH-6)
	fmt.Fprintf(&b, `<text x="14" y="%d" transform="rotate(-90 14 %d)" text-anchor="middle">%s</text>`+"\n",
		chartH/2, chartH/2, html.EscapeString(unit))
	fmt.Fprintf(&b, `<rect x="%d" y="%d" width="%d" height="%d" fill="none" stroke="#999"/>`+"\n",
		padL, padT, chartW-padL-padR, chartH-padT-padB)
	for i, l := range lines {
		var pts []string
		for j, y := range l.y {
			if usable(y) {
				pts = append(pts, fmt.Sprintf("%.1f,%.1f", px(l.x[j]), py(tr(y))))
			}
		}
		fmt.Fprintf(&b, `<polyline class="series" data-name="%s" fill="none" stroke="%s" stroke-width="1.5" points="%s"><title>%s</title></polyline>`+"\n",
			html.EscapeString(l.name), l.color, strings.Join(pts, " "), html.EscapeString(l.name))
		ly := padT + 14 + 18*i
		fmt.Fprintf(&b, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="%s" stroke-width="3"/><text x="%d" y="%d">%s</text>`+"\n",
			chartW-padR+10, ly-4, chartW-padR+30, ly-4, l.color, chartW-padR+35, ly, html.EscapeString(l.name))
	}
	b.WriteString("</svg>\n")
	return b.String()
}

// niceTicks returns an axis top at or above v and about five round ticks
// from 0 to it.
func niceTicks(v float64) (float64, []float64) {
	if v <= 0 {
		v = 1
	}
	raw := v / 5
	mag := math.Pow(10, math.Floor(math.Log10(raw)))
	step := mag
	for _, m := range []float64{1, 2, 2.5, 5, 10} {
		if m*mag >= raw {
			step = m * mag
			break
		}
	}
	top := math.Ceil(v/step) * step
	var ticks []float64
	for t := 0.0; t <= top+step/2; t += step {
		ticks = append(ticks, t)
	}
	return top, ticks
}

func axisLabel(v float64) string {
	switch a := math.Abs(v); {
	case a >= 1e6:
		return fmt.Sprintf("%gM", math.Round(v/1e4)/100)
	case a >= 1e3:
		return fmt.Sprintf("%gk", math.Round(v/10)/100)
	default:
		return fmt.Sprintf("%g", math.Round(v*1000)/1000)
	}
}
