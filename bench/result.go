package bench

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"
)

// Schema names the results format; it changes only when a field changes
// meaning or goes away (new fields may be added within a version).
const Schema = "sluice-bench/v1"

// Result is one run's figures, the JSON a results file holds. Latencies are
// milliseconds, sizes bytes, MB 10^6 bytes.
type Result struct {
	Schema    string    `json:"schema"`
	StartedAt time.Time `json:"started_at"`
	// Seconds is the whole run, topic set-up excluded.
	Seconds float64 `json:"seconds"`
	Config  Config  `json:"config"`
	Topic   Topic   `json:"topic"`
	// Produce is absent for a Consume run that found its backlog in place.
	Produce *ProduceResult `json:"produce,omitempty"`
	Consume *ConsumeResult `json:"consume,omitempty"`
	// EndToEnd is from each message's intended send time to its arrival
	// at a consumer (EndToEnd runs only).
	EndToEnd *Latency `json:"e2e_latency_ms,omitempty"`
	// Series has one point per Config.Interval over the run.
	Series      []Sample `json:"series"`
	Interrupted bool     `json:"interrupted,omitempty"`
	// Notes says what the figures cannot: a reused topic, a short read.
	Notes []string `json:"notes,omitempty"`
}

// Topic is the topic the run used, as the broker described it.
type Topic struct {
	Name              string `json:"name"`
	Partitions        int    `json:"partitions"`
	ReplicationFactor int    `json:"replication_factor"`
	Created           bool   `json:"created"`
}

// ProduceResult is the producers' side. Produced = Acknowledged + Failed.
type ProduceResult struct {
	Produced     int64 `json:"produced"`
	Acknowledged int64 `json:"acknowledged"`
	Failed       int64 `json:"failed"`
	// Bytes is the acknowledged values' bytes.
	Bytes int64 `json:"bytes"`
	// Seconds runs from the first send to the last acknowledgement;
	// MsgsPerSec and MBPerSec are Acknowledged and Bytes over it.
	Seconds    float64 `json:"seconds"`
	MsgsPerSec float64 `json:"msgs_per_sec"`
	MBPerSec   float64 `json:"mb_per_sec"`
	// Latency is from the intended send time (open loop) or the hand-off
	// to the client (maximum throughput) to the acknowledgement.
	Latency Latency `json:"latency_ms"`
	// SendDelay is how late each send was against its schedule (open
	// loop only): a growing delay means the target rate was not kept.
	SendDelay  *Latency `json:"send_delay_ms,omitempty"`
	FirstError string   `json:"first_error,omitempty"`
}

// ConsumeResult is the consumers' side.
type ConsumeResult struct {
	Consumed int64 `json:"consumed"`
	Bytes    int64 `json:"bytes"`
	// Seconds runs from the consumers' start to the last record read.
	Seconds    float64 `json:"seconds"`
	MsgsPerSec float64 `json:"msgs_per_sec"`
	MBPerSec   float64 `json:"mb_per_sec"`
	// CatchUpMsgsPerSec is the rate of reading a backlog: the whole read
	// for Consume; for EndToEnd, what was left when the producers finished
	// over the time to read it (0 when nothing was left).
	CatchUpMsgsPerSec float64 `json:"catch_up_msgs_per_sec"`
	// DrainSeconds (EndToEnd) is from the producers' finish to the last
	// record read.
	DrainSeconds float64 `json:"drain_seconds,omitempty"`
}

// WriteJSON writes r as indented JSON.
func (r *Result) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// ReadResult decodes a results file, refusing another schema.
func ReadResult(rd io.Reader) (*Result, error) {
	var r Result
	if err := json.NewDecoder(rd).Decode(&r); err != nil {
		return nil, fmt.Errorf("bench: decode results: %w", err)
	}
	if r.Schema != Schema {
		return nil, fmt.Errorf("%w: %q, want %q", ErrSchema, r.Schema, Schema)
	}
	return &r, nil
}

// ReadResultFile reads a results file from disk.
func ReadResultFile(path string) (*Result, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	r, err := ReadResult(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return r, nil
}

// WriteSummary writes r as a human-readable table.
func (r *Result) WriteSummary(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	c := r.Config
	mode := "max throughput"
	if c.Rate > 0 {
		mode = fmt.Sprintf("open loop %s msg/s", num(c.Rate))
	}
	fmt.Fprintf(w, "%s on %s (%d partitions, rf %d)", c.Workload, r.Topic.Name, r.Topic.Partitions, r.Topic.ReplicationFactor)
	if r.Produce != nil {
		fmt.Fprintf(w, ", %d B messages, acks=%s, compression=%s, %s", c.MessageSize, c.Acks, c.Compression, mode)
	}
	fmt.Fprintf(w, ", %.1f s\n", r.Seconds)
	if r.Interrupted {
		fmt.Fprintln(w, "INTERRUPTED: figures cover the run until the interrupt")
	}
	fmt.Fprintln(tw, "\tmsgs\tmsg/s\tMB/s\tp50 ms\tp99 ms\tp99.9 ms\tmax ms\t")
	lat := func(l Latency) string {
		return fmt.Sprintf("%s\t%s\t%s\t%s", ms(l.P50), ms(l.P99), ms(l.P999), ms(l.Max))
	}
	if p := r.Produce; p != nil {
		fmt.Fprintf(tw, "produce\t%d\t%s\t%.1f\t%s\t\n", p.Acknowledged, num(p.MsgsPerSec), p.MBPerSec, lat(p.Latency))
		if p.SendDelay != nil {
			fmt.Fprintf(tw, "send delay\t\t\t\t%s\t\n", lat(*p.SendDelay))
		}
	}
	if cr := r.Consume; cr != nil {
		fmt.Fprintf(tw, "consume\t%d\t%s\t%.1f\t\t\t\t\t\n", cr.Consumed, num(cr.MsgsPerSec), cr.MBPerSec)
	}
	if r.EndToEnd != nil {
		fmt.Fprintf(tw, "end to end\t%d\t\t\t%s\t\n", r.EndToEnd.Count, lat(*r.EndToEnd))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if p := r.Produce; p != nil {
		fmt.Fprintf(w, "produced %d = acknowledged %d + failed %d", p.Produced, p.Acknowledged, p.Failed)
		if p.FirstError != "" {
			fmt.Fprintf(w, " (first error: %s)", p.FirstError)
		}
		fmt.Fprintln(w)
	}
	if cr := r.Consume; cr != nil && cr.CatchUpMsgsPerSec > 0 {
		fmt.Fprintf(w, "consumer catch-up %s msg/s", num(cr.CatchUpMsgsPerSec))
		if cr.DrainSeconds > 0 {
			fmt.Fprintf(w, " (drained in %.2f s after the producers finished)", cr.DrainSeconds)
		}
		fmt.Fprintln(w)
	}
	for _, n := range r.Notes {
		fmt.Fprintln(w, "note:", n)
	}
	return nil
}

// FormatSample is the one-line progress form of s.
func FormatSample(s Sample) string {
	parts := []string{fmt.Sprintf("[%5.1fs]", s.Elapsed)}
	if s.Acknowledged > 0 || s.Failed > 0 {
		p := fmt.Sprintf("produce %s msg/s %.1f MB/s p50 %s p99 %s ms", num(s.ProduceMsgsPerSec), s.ProduceMBPerSec,
			ms(s.Publish.P50), ms(s.Publish.P99))
		if s.Failed > 0 {
			p += fmt.Sprintf(" failed %d", s.Failed)
		}
		parts = append(parts, p)
	}
	if s.Consumed > 0 {
		parts = append(parts, fmt.Sprintf("consume %s msg/s %.1f MB/s", num(s.ConsumeMsgsPerSec), s.ConsumeMBPerSec))
	}
	if s.EndToEnd.Count > 0 {
		parts = append(parts, fmt.Sprintf("e2e p50 %s p99 %s ms", ms(s.EndToEnd.P50), ms(s.EndToEnd.P99)))
	}
	parts = append(parts, fmt.Sprintf("acked %d consumed %d", s.Acknowledged, s.Consumed))
	return parts[0] + " " + strings.Join(parts[1:], " | ")
}

// num formats a rate with thousands separators and no decimals.
func num(f float64) string {
	s := fmt.Sprintf("%.0f", f)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

func ms(v float64) string {
	switch {
	case v >= 100:
		return fmt.Sprintf("%.0f", v)
	case v >= 10:
		return fmt.Sprintf("%.1f", v)
	default:
		return fmt.Sprintf("%.2f", v)
	}
}
