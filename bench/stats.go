package bench

import (
	"sync"
	"sync/atomic"
	"time"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"
)

// Histograms hold microseconds from 1 µs to an hour at 3 significant
// digits (0.1% error); longer values are clamped to an hour.
const (
	histLowest  = 1
	histHighest = int64(time.Hour / time.Microsecond)
	histSigFigs = 3
)

func newHist() *hdrhistogram.Histogram {
	return hdrhistogram.New(histLowest, histHighest, histSigFigs)
}

// recorder is one latency series: the run's total and the current
// interval's. Each producer or consumer owns one, so the lock is shared
// only with the sampler.
type recorder struct {
	mu       sync.Mutex
	total    *hdrhistogram.Histogram
	interval *hdrhistogram.Histogram
}

func newRecorder() *recorder {
	return &recorder{total: newHist(), interval: newHist()}
}

func (r *recorder) record(d time.Duration) {
	us := min(max(d.Microseconds(), histLowest), histHighest)
	r.mu.Lock()
	// Values are clamped into range, so RecordValue cannot fail.
	_ = r.total.RecordValue(us)
	_ = r.interval.RecordValue(us)
	r.mu.Unlock()
}

// takeInterval adds the interval's values to dst and starts a new interval.
func (r *recorder) takeInterval(dst *hdrhistogram.Histogram) {
	r.mu.Lock()
	dst.Merge(r.interval)
	r.interval.Reset()
	r.mu.Unlock()
}

func (r *recorder) addTotal(dst *hdrhistogram.Histogram) {
	r.mu.Lock()
	dst.Merge(r.total)
	r.mu.Unlock()
}

func mergeTotals(rs []*recorder) *hdrhistogram.Histogram {
	h := newHist()
	for _, r := range rs {
		r.addTotal(h)
	}
	return h
}

// Latency summarises a histogram in milliseconds.
type Latency struct {
	Count int64   `json:"count"`
	Mean  float64 `json:"mean"`
	P50   float64 `json:"p50"`
	P99   float64 `json:"p99"`
	P999  float64 `json:"p999"`
	Max   float64 `json:"max"`
}

func summarize(h *hdrhistogram.Histogram) Latency {
	if h.TotalCount() == 0 {
		return Latency{}
	}
	ms := func(us int64) float64 { return float64(us) / 1000 }
	return Latency{
		Count: h.TotalCount(),
		Mean:  h.Mean() / 1000,
		P50:   ms(h.ValueAtQuantile(50)),
		P99:   ms(h.ValueAtQuantile(99)),
		P999:  ms(h.ValueAtQuantile(99.9)),
		Max:   ms(h.Max()),
	}
}

// counters are the run's running totals, updated by producers' callbacks
// and consumers and read by the sampler.
type counters struct {
	produced, acked, failed, ackedBytes atomic.Int64
	consumed, consumedBytes, tagged     atomic.Int64
}

// Sample is one interval of a run: rates over the interval, latencies of
// the messages acknowledged or consumed in it, and totals so far.
type Sample struct {
	// Elapsed is seconds from the run's start to the interval's end.
	Elapsed float64 `json:"t"`
	// Seconds is the interval's length (the last one may be short).
	Seconds float64 `json:"interval"`

	ProduceMsgsPerSec float64 `json:"produce_msgs_per_sec"`
	ProduceMBPerSec   float64 `json:"produce_mb_per_sec"`
	Failed            int64   `json:"failed"`
	ConsumeMsgsPerSec float64 `json:"consume_msgs_per_sec"`
	ConsumeMBPerSec   float64 `json:"consume_mb_per_sec"`

	Publish  Latency `json:"publish_latency_ms"`
	EndToEnd Latency `json:"e2e_latency_ms"`

	Acknowledged int64 `json:"acknowledged"`
	Consumed     int64 `json:"consumed"`
}

// sampler turns counters and recorders into one Sample per interval.
type sampler struct {
	start time.Time
	c     *counters

	mu        sync.Mutex // guards the recorder lists, which grow as phases start
	pub, e2e  []*recorder
	last      time.Time
	lastAcked int64
	lastBytes int64
	lastFail  int64
	lastCons  int64
	lastCByte int64
	series    []Sample
}

func (s *sampler) addPublish(r *recorder) { s.mu.Lock(); s.pub = append(s.pub, r); s.mu.Unlock() }
func (s *sampler) addE2E(r *recorder)     { s.mu.Lock(); s.e2e = append(s.e2e, r); s.mu.Unlock() }

// run samples every interval until stop is closed, then takes a last,
// possibly short, sample; done is closed after it.
func (s *sampler) run(interval time.Duration, progress func(Sample), stop <-chan struct{}, done chan<- struct{}) {
	defer close(done)
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			smp := s.sample(time.Now())
			if progress != nil {
				progress(smp)
			}
		case <-stop:
			// The last point closes the series so that its totals are the
			// run's; an empty sliver is left out.
			if s.changed() {
				smp := s.sample(time.Now())
				if progress != nil {
					progress(smp)
				}
			}
			return
		}
	}
}

// changed reports whether any count moved since the last sample.
func (s *sampler) changed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.c.acked.Load() != s.lastAcked || s.c.failed.Load() != s.lastFail || s.c.consumed.Load() != s.lastCons
}

func (s *sampler) sample(now time.Time) Sample {
	s.mu.Lock()
	defer s.mu.Unlock()
	secs := now.Sub(s.last).Seconds()
	acked, bytes, failed := s.c.acked.Load(), s.c.ackedBytes.Load(), s.c.failed.Load()
	cons, cbytes := s.c.consumed.Load(), s.c.consumedBytes.Load()
	pub, e2e := newHist(), newHist()
	for _, r := range s.pub {
		r.takeInterval(pub)
	}
	for _, r := range s.e2e {
		r.takeInterval(e2e)
	}
	smp := Sample{
		Elapsed:           now.Sub(s.start).Seconds(),
		Seconds:           secs,
		ProduceMsgsPerSec: float64(acked-s.lastAcked) / secs,
		ProduceMBPerSec:   float64(bytes-s.lastBytes) / secs / 1e6,
		Failed:            failed - s.lastFail,
		ConsumeMsgsPerSec: float64(cons-s.lastCons) / secs,
		ConsumeMBPerSec:   float64(cbytes-s.lastCByte) / secs / 1e6,
		Publish:           summarize(pub),
		EndToEnd:          summarize(e2e),
		Acknowledged:      acked,
		Consumed:          cons,
	}
	s.last, s.lastAcked, s.lastBytes, s.lastFail, s.lastCons, s.lastCByte = now, acked, bytes, failed, cons, cbytes
	s.series = append(s.series, smp)
	return smp
}
