package bench_test

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/sluicemq/sluice/bench"
)

// synthetic is a results file with known figures.
func synthetic(produceRate, p99 float64, points int) *bench.Result {
	cfg := bench.DefaultConfig()
	cfg.Workload, cfg.Topic = bench.EndToEnd, "syn"
	r := &bench.Result{
		Schema: bench.Schema, StartedAt: time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC), Seconds: float64(points),
		Config: cfg, Topic: bench.Topic{Name: "syn", Partitions: 1, ReplicationFactor: 1, Created: true},
		Produce: &bench.ProduceResult{Produced: 1000, Acknowledged: 1000, Bytes: 1024000, Seconds: 1000 / produceRate,
			MsgsPerSec: produceRate, MBPerSec: produceRate * 1024 / 1e6,
			Latency: bench.Latency{Count: 1000, Mean: 2, P50: 1, P99: p99, P999: 2 * p99, Max: 3 * p99}},
		Consume:  &bench.ConsumeResult{Consumed: 1000, Bytes: 1024000, Seconds: 1, MsgsPerSec: 1000, MBPerSec: 1.024},
		EndToEnd: &bench.Latency{Count: 1000, Mean: 3, P50: 2, P99: p99 + 1, P999: 2 * p99, Max: 4 * p99},
	}
	for i := range points {
		r.Series = append(r.Series, bench.Sample{Elapsed: float64(i + 1), Seconds: 1, ProduceMsgsPerSec: produceRate + float64(i),
			ConsumeMsgsPerSec: 1000, Publish: bench.Latency{Count: 10, P50: 1, P99: p99, P999: p99, Max: p99},
			EndToEnd: bench.Latency{Count: 10, P50: 2, P99: p99, P999: p99, Max: p99}})
	}
	return r
}

func TestCompareRatios(t *testing.T) {
	a, b := synthetic(1000, 10, 3), synthetic(1500, 5, 3)
	b.Consume = nil
	rows := bench.Compare(a, b)
	got := map[string]bench.Comparison{}
	for _, c := range rows {
		got[c.Metric+" "+c.Unit] = c
	}
	for key, want := range map[string]struct {
		ratio   float64
		verdict string
	}{
		"produce msg/s":             {1.5, "better"},
		"produce MB/s":              {1.5, "better"},
		"publish latency p50 ms":    {1, "same"},
		"publish latency p99 ms":    {0.5, "better"},
		"end-to-end latency p99 ms": {6.0 / 11, "better"},
		"end-to-end latency max ms": {0.5, "better"},
	} {
		c, ok := got[key]
		if !ok || c.Ratio == nil {
			t.Errorf("%s: missing or no ratio (%+v)", key, c)
			continue
		}
		if d := *c.Ratio - want.ratio; d > 1e-12 || d < -1e-12 || c.Verdict(0.02) != want.verdict {
			t.Errorf("%s: ratio %v %s, want %v %s", key, *c.Ratio, c.Verdict(0.02), want.ratio, want.verdict)
		}
	}
	if _, ok := got["consume msg/s"]; ok {
		t.Error("consume compared though b has no consume results")
	}
	if c := got["failed sends msgs"]; c.Ratio != nil {
		t.Errorf("ratio against 0 failed sends: %v, want none", *c.Ratio)
	}
	b.Produce.MsgsPerSec = 700
	for _, c := range bench.Compare(a, b) {
		if c.Metric == "produce" && c.Unit == "msg/s" && c.Verdict(0.02) != "worse" {
			t.Errorf("0.7x produce: %s, want worse", c.Verdict(0.02))
		}
	}

	var out strings.Builder
	if err := bench.WriteComparison(&out, "a.json", "b.json", rows); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"1.500", "0.500", "n/a", "a = a.json", "b = b.json"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("comparison lacks %q:\n%s", want, out.String())
		}
	}
}

func TestReadResultRefusesOtherSchemas(t *testing.T) {
	if _, err := bench.ReadResult(strings.NewReader(`{"schema":"sluice-bench/v0"}`)); !errors.Is(err, bench.ErrSchema) {
		t.Errorf("v0: %v, want ErrSchema", err)
	}
	if _, err := bench.ReadResult(strings.NewReader(`{`)); err == nil {
		t.Error("truncated JSON accepted")
	}
}

func TestPlotWritesSelfContainedHTML(t *testing.T) {
	r := synthetic(1000, 10, 7)
	r.Series[3].Publish = bench.Latency{} // an interval with no acknowledgement: a gap, not a zero
	// A last sliver of an interval is kept in the JSON but not drawn.
	r.Series = append(r.Series, bench.Sample{Elapsed: 7.01, Seconds: 0.01, ProduceMsgsPerSec: 1e6})
	var buf bytes.Buffer
	if err := bench.WritePlot(&buf, r); err != nil {
		t.Fatal(err)
	}
	page := buf.String()
	if !strings.HasPrefix(page, "<!DOCTYPE html>") || strings.Contains(page, "src=") || strings.Contains(page, "href=") {
		t.Errorf("not a self-contained HTML page:\n%.300s", page)
	}

	// Well-formed (as XML, the stricter check), and each series drawn with
	// one point per interval.
	dec := xml.NewDecoder(strings.NewReader(page))
	dec.Strict = true
	points := map[string]int{}
	var svgs int
	var data string
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("malformed page: %v", err)
		}
		se, ok := tok.(xml.StartElement)
		if !ok {
			continue
		}
		attr := func(name string) string {
			for _, a := range se.Attr {
				if a.Name.Local == name {
					return a.Value
				}
			}
			return ""
		}
		switch se.Name.Local {
		case "svg":
			svgs++
		case "polyline":
			points[attr("data-name")] = len(strings.Fields(attr("points")))
		case "script":
			if attr("id") == "sluice-bench-result" {
				var cd xml.CharData
				if tok, err := dec.Token(); err == nil {
					cd, _ = tok.(xml.CharData)
				}
				data = string(cd)
			}
		}
	}
	if svgs != 2 {
		t.Errorf("%d charts, want throughput and latency", svgs)
	}
	for name, want := range map[string]int{"produce msg/s": 7, "consume msg/s": 7, "publish p99": 6, "e2e p50": 7} {
		if points[name] != want {
			t.Errorf("series %q has %d points, want %d (all: %v)", name, points[name], want, points)
		}
	}
	var back bench.Result
	if err := json.Unmarshal([]byte(data), &back); err != nil || len(back.Series) != 8 || back.Produce.MsgsPerSec != 1000 {
		t.Errorf("embedded results: %v, %d points", err, len(back.Series))
	}
}
