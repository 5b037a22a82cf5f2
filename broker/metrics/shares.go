package metrics

import (
	"strconv"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

// ShareStat is one share-partition (a share group on a partition) as its
// partition's leader last saw it.
type ShareStat struct {
	Group     string
	Topic     string
	Partition int32
	Available int // in the window, deliverable or waiting for a delay or backoff
	Acquired  int // delivered, not yet acknowledged
	Delayed   int // waiting for their not-before time or retry backoff
	// DeadLetters are archived records not yet written to the
	// dead-letter topic.
	DeadLetters int
	// Full is whether the in-flight window is full and nothing can be
	// delivered until records are acknowledged.
	Full bool
	// LagSeconds is the age of the oldest record not yet acknowledged
	// (time lag of a queue); 0 when everything is done.
	LagSeconds float64
}

// shareCollector serves the last snapshot, like groupCollector.
type shareCollector struct {
	stats atomic.Pointer[[]ShareStat]

	records, full, lag, deadLetters *prometheus.Desc
}

var _ prometheus.Collector = (*shareCollector)(nil)

func newShareCollector() *shareCollector {
	desc := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc(prometheus.BuildFQName(namespace, "", name), help, labels, nil)
	}
	return &shareCollector{
		records:     desc("share_records", "Records of a share-partition's in-flight window by state (available, acquired, delayed). Exported by the partition's leader.", "group", "topic", "partition", "state"),
		full:        desc("share_window_full", "1 while a share-partition's in-flight window is full (share.partition.max.record.locks): fetches return nothing until records are acknowledged; nothing is dropped.", "group", "topic", "partition"),
		lag:         desc("share_lag_seconds", "Age of the oldest record a share group has not acknowledged on a partition; 0 when done.", "group", "topic", "partition"),
		deadLetters: desc("share_dead_letters_pending", "Records archived by REJECT or the delivery limit and not yet written to the dead-letter topic.", "group", "topic", "partition"),
	}
}

// Describe implements prometheus.Collector.
func (c *shareCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.records
	ch <- c.full
	ch <- c.lag
	ch <- c.deadLetters
}

// Collect implements prometheus.Collector.
func (c *shareCollector) Collect(ch chan<- prometheus.Metric) {
	stats := c.stats.Load()
	if stats == nil {
		return
	}
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		m, err := prometheus.NewConstMetric(d, prometheus.GaugeValue, v, labels...)
		if err != nil {
			m = prometheus.NewInvalidMetric(d, err)
		}
		ch <- m
	}
	for _, s := range *stats {
		p := strconv.FormatInt(int64(s.Partition), 10)
		gauge(c.records, float64(s.Available), s.Group, s.Topic, p, "available")
		gauge(c.records, float64(s.Acquired), s.Group, s.Topic, p, "acquired")
		gauge(c.records, float64(s.Delayed), s.Group, s.Topic, p, "delayed")
		full := 0.0
		if s.Full {
			full = 1
		}
		gauge(c.full, full, s.Group, s.Topic, p)
		gauge(c.lag, s.LagSeconds, s.Group, s.Topic, p)
		gauge(c.deadLetters, float64(s.DeadLetters), s.Group, s.Topic, p)
	}
}

// SetShareStats replaces the share-partition gauges with stats; each
// (Group, Topic, Partition) must appear once, and stats must not be
// modified after.
func (m *Metrics) SetShareStats(stats []ShareStat) {
	if m == nil {
		return
	}
	m.shares.stats.Store(&stats)
}
