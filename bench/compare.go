package bench

import (
	"fmt"
	"io"
	"math"
	"text/tabwriter"
)

// Comparison is one metric of two runs. Ratio is B/A, nil when A is 0.
type Comparison struct {
	Metric         string   `json:"metric"`
	Unit           string   `json:"unit"`
	A              float64  `json:"a"`
	B              float64  `json:"b"`
	Ratio          *float64 `json:"ratio"`
	HigherIsBetter bool     `json:"higher_is_better"`
}

// Verdict says whether B is better or worse than A, allowing tol (0.02 is
// 2%) either way for "same"; "" when there is no ratio.
func (c Comparison) Verdict(tol float64) string {
	if c.Ratio == nil {
		return ""
	}
	r := *c.Ratio
	switch {
	case math.Abs(r-1) <= tol:
		return "same"
	case (r > 1) == c.HigherIsBetter:
		return "better"
	default:
		return "worse"
	}
}

// Compare lists the metrics both runs have, b against a.
func Compare(a, b *Result) []Comparison {
	var out []Comparison
	add := func(metric, unit string, x, y float64, higher bool) {
		c := Comparison{Metric: metric, Unit: unit, A: x, B: y, HigherIsBetter: higher}
		if x != 0 {
			r := y / x
			c.Ratio = &r
		}
		out = append(out, c)
	}
	lat := func(prefix string, x, y Latency) {
		if x.Count == 0 || y.Count == 0 {
			return
		}
		add(prefix+" p50", "ms", x.P50, y.P50, false)
		add(prefix+" p99", "ms", x.P99, y.P99, false)
		add(prefix+" p99.9", "ms", x.P999, y.P999, false)
		add(prefix+" max", "ms", x.Max, y.Max, false)
	}
	if a.Produce != nil && b.Produce != nil {
		pa, pb := a.Produce, b.Produce
		add("produce", "msg/s", pa.MsgsPerSec, pb.MsgsPerSec, true)
		add("produce", "MB/s", pa.MBPerSec, pb.MBPerSec, true)
		lat("publish latency", pa.Latency, pb.Latency)
		if pa.SendDelay != nil && pb.SendDelay != nil {
			add("send delay p99", "ms", pa.SendDelay.P99, pb.SendDelay.P99, false)
		}
		add("failed sends", "msgs", float64(pa.Failed), float64(pb.Failed), false)
	}
	if a.Consume != nil && b.Consume != nil {
		ca, cb := a.Consume, b.Consume
		add("consume", "msg/s", ca.MsgsPerSec, cb.MsgsPerSec, true)
		add("consume", "MB/s", ca.MBPerSec, cb.MBPerSec, true)
		if ca.CatchUpMsgsPerSec > 0 && cb.CatchUpMsgsPerSec > 0 {
			add("consumer catch-up", "msg/s", ca.CatchUpMsgsPerSec, cb.CatchUpMsgsPerSec, true)
		}
	}
	if a.EndToEnd != nil && b.EndToEnd != nil {
		lat("end-to-end latency", *a.EndToEnd, *b.EndToEnd)
	}
	return out
}

// WriteComparison writes rows as a table headed by the two runs' names.
func WriteComparison(w io.Writer, aName, bName string, rows []Comparison) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "metric\tunit\ta\tb\tb/a\t\n")
	for _, c := range rows {
		ratio := "n/a"
		if c.Ratio != nil {
			ratio = fmt.Sprintf("%.3f", *c.Ratio)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", c.Metric, c.Unit, value(c.A, c.Unit), value(c.B, c.Unit), ratio, c.Verdict(0.02))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err := fmt.Fprintf(w, "a = %s\nb = %s\n", aName, bName)
	return err
}

func value(v float64, unit string) string {
	if v >= 1000 || unit == "msgs" {
		return num(v)
	}
	return ms(v)
}
