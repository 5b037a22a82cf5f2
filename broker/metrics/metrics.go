// Package metrics holds the broker's Prometheus metrics and its HTTP server
// (/healthz, /readyz, /metrics, and admin endpoints the broker adds).
//
// It uses github.com/prometheus/client_golang, the Prometheus project's own
// Go client: the reference implementation of the exposition formats
// (text and OpenMetrics), with the Go runtime and process collectors that
// every Prometheus setup expects. Metrics live on a private registry, never
// the global default, so tests and embedded brokers each get their own and
// nothing another package registers globally leaks into the broker's
// /metrics.
//
// Label cardinality is bounded: api is one of the Kafka API names, code one
// error code name, and topic/partition follow the topics that exist, as long
// as the broker calls ForgetTopic when it deletes a topic; group follows the
// groups the broker coordinates (SetGroupStats replaces them all).
package metrics

import (
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/rs/zerolog"
)

const namespace = "sluice"

// requestDurationBuckets are the upper bounds, in seconds, of
// sluice_request_duration_seconds: 100µs to 10s in 1-2.5-5 steps, covering a
// cached Metadata answer up to a long-polling Fetch.
var requestDurationBuckets = []float64{
	0.0001, 0.00025, 0.0005,
	0.001, 0.0025, 0.005,
	0.01, 0.025, 0.05,
	0.1, 0.25, 0.5,
	1, 2.5, 5,
	10,
}

// Metrics is the broker's metrics on a private registry. All methods are safe
// for concurrent use, and a nil *Metrics is a no-op, so components can be
// built without metrics in tests.
type Metrics struct {
	reg        *prometheus.Registry
	requests   *prometheus.CounterVec
	duration   *prometheus.HistogramVec
	bytesIn    *prometheus.CounterVec
	bytesOut   *prometheus.CounterVec
	conns      prometheus.Gauge
	partitions *partitionCollector
	groups     *groupCollector
	shares     *shareCollector
}

// New creates the metrics and registers them, with the Go runtime and
// process collectors, on a new private registry.
func New() *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace,
			Name:      "requests_total",
			Help:      "Kafka requests handled, by API name and error code name (none for success).",
		}, []string{"api", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: namespace,
			Name:      "request_duration_seconds",
			Help:      "Time from a Kafka request being read to its response being queued, by API name.",
			Buckets:   requestDurationBuckets,
		}, []string{"api"}),
		bytesIn: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace,
			Name:      "bytes_in_total",
			Help:      "Record batch bytes produced, by topic.",
		}, []string{"topic"}),
		bytesOut: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace,
			Name:      "bytes_out_total",
			Help:      "Record batch bytes fetched, by topic.",
		}, []string{"topic"}),
		conns: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: namespace,
			Name:      "connections",
			Help:      "Open Kafka client connections.",
		}),
		partitions: newPartitionCollector(),
		groups:     newGroupCollector(),
		shares:     newShareCollector(),
	}
	m.reg.MustRegister(
		m.requests, m.duration, m.bytesIn, m.bytesOut, m.conns, m.partitions, m.groups, m.shares,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return m
}

// Registry is the private registry, for the broker to register further
// collectors (Raft, the log) on.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Handler serves the registry in the Prometheus text or OpenMetrics format.
// Errors from a collector are logged and the metrics that could be gathered
// are still served.
func (m *Metrics) Handler(log zerolog.Logger) http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{
		ErrorLog:            promLogger{log},
		ErrorHandling:       promhttp.ContinueOnError,
		Registry:            m.reg, // adds promhttp_metric_handler_errors_total
		MaxRequestsInFlight: 4,     // a scrape storm gets 503s, not the broker's CPU
		EnableOpenMetrics:   true,
	})
}

// ObserveRequest counts one Kafka request and records its duration. api is
// the Kafka API name as kmsg.NameForKey spells it ("Produce", "Fetch");
// anything else is recorded as "unknown". code is the Kafka error code name
// as kerr spells it ("NOT_LEADER_FOR_PARTITION"), or "none" on success;
// anything that does not look like one (upper case, digits and underscores,
// at most 64 characters) is recorded as "unknown".
func (m *Metrics) ObserveRequest(api string, code string, d time.Duration) {
	if m == nil {
		return
	}
	api = apiLabel(api)
	m.requests.WithLabelValues(api, codeLabel(code)).Inc()
	m.duration.WithLabelValues(api).Observe(d.Seconds())
}

// AddBytesIn adds n produced bytes to topic. n <= 0 is ignored.
func (m *Metrics) AddBytesIn(topic string, n int) {
	if m == nil || n <= 0 {
		return
	}
	m.bytesIn.WithLabelValues(topic).Add(float64(n))
}

// AddBytesOut adds n fetched bytes to topic. n <= 0 is ignored.
func (m *Metrics) AddBytesOut(topic string, n int) {
	if m == nil || n <= 0 {
		return
	}
	m.bytesOut.WithLabelValues(topic).Add(float64(n))
}

// ConnOpened counts a client connection opened.
func (m *Metrics) ConnOpened() {
	if m != nil {
		m.conns.Inc()
	}
}

// ConnClosed counts a client connection closed.
func (m *Metrics) ConnClosed() {
	if m != nil {
		m.conns.Dec()
	}
}

// ForgetTopic deletes topic's series. Topic names are user data, so the
// broker must call it when it deletes a topic, or every topic ever created
// stays in /metrics. The per-partition gauges need no call: they follow the
// partition source.
func (m *Metrics) ForgetTopic(topic string) {
	if m == nil {
		return
	}
	m.bytesIn.DeleteLabelValues(topic)
	m.bytesOut.DeleteLabelValues(topic)
}

// SetPartitionSource sets the function called at every scrape for the
// per-partition gauges; nil removes it. It runs on the scraping goroutine, so
// it must be safe for concurrent use and quick: a snapshot, no I/O. Each
// (Topic, Partition) must appear once.
func (m *Metrics) SetPartitionSource(f func() []PartitionStat) {
	if m != nil {
		m.partitions.setSource(f)
	}
}

// promLogger routes promhttp's errors to zerolog.
type promLogger struct{ log zerolog.Logger }

func (l promLogger) Println(v ...any) {
	l.log.Error().Str("component", "metrics").Msg(sprintln(v...))
}
