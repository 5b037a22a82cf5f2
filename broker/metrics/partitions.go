package metrics

import (
	"strconv"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

// PartitionStat is one partition's position, as the broker reports it at
// scrape time.
type PartitionStat struct {
	Topic         string
	Partition     int32
	LogStart      int64 // first offset still in the log
	HighWatermark int64 // offsets below are committed and readable
	LogEnd        int64 // next offset to be assigned
	SizeBytes     int64 // bytes on disk of the partition's segments
}

// partitionCollector turns the source's snapshot into gauges at every scrape,
// so a partition that is gone from the source is gone from /metrics; no
// series outlives its partition.
type partitionCollector struct {
	source atomic.Pointer[func() []PartitionStat]

	logStart, highWatermark, logEnd, size *prometheus.Desc
}

var _ prometheus.Collector = (*partitionCollector)(nil)

func newPartitionCollector() *partitionCollector {
	labels := []string{"topic", "partition"}
	desc := func(name, help string) *prometheus.Desc {
		return prometheus.NewDesc(prometheus.BuildFQName(namespace, "", name), help, labels, nil)
	}
	return &partitionCollector{
		logStart:      desc("log_start_offset", "First offset still in the partition's log."),
		highWatermark: desc("high_watermark", "Partition high watermark: offsets below it are committed and readable."),
		logEnd:        desc("log_end_offset", "Next offset the partition's log will assign."),
		size:          desc("log_size_bytes", "Bytes on disk of the partition's log segments."),
	}
}

func (c *partitionCollector) setSource(f func() []PartitionStat) {
	if f == nil {
		c.source.Store(nil)
		return
	}
	c.source.Store(&f)
}

// Describe implements prometheus.Collector.
func (c *partitionCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.logStart
	ch <- c.highWatermark
	ch <- c.logEnd
	ch <- c.size
}

// Collect implements prometheus.Collector.
func (c *partitionCollector) Collect(ch chan<- prometheus.Metric) {
	src := c.source.Load()
	if src == nil {
		return
	}
	for _, p := range (*src)() {
		part := strconv.FormatInt(int64(p.Partition), 10)
		gauge := func(d *prometheus.Desc, v int64) {
			m, err := prometheus.NewConstMetric(d, prometheus.GaugeValue, float64(v), p.Topic, part)
			if err != nil { // a topic name that is not UTF-8: reported, not a panic
				m = prometheus.NewInvalidMetric(d, err)
			}
			ch <- m
		}
		gauge(c.logStart, p.LogStart)
		gauge(c.highWatermark, p.HighWatermark)
		gauge(c.logEnd, p.LogEnd)
		gauge(c.size, p.SizeBytes)
	}
}
