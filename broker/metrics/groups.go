package metrics

import (
	"strconv"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

// GroupStat is one consumer group as its coordinator last measured it.
type GroupStat struct {
	Group   string
	State   string // Empty, PreparingRebalance, CompletingRebalance, Stable, Dead
	Members int
	// Partitions are the partitions with a committed offset whose lag
	// could be measured.
	Partitions []GroupPartitionStat
}

// GroupPartitionStat is a group's lag on one partition.
type GroupPartitionStat struct {
	Topic      string
	Partition  int32
	LagRecords int64   // high watermark minus the committed offset
	LagSeconds float64 // age of the first record not consumed; 0 when caught up
}

// groupCollector serves the last snapshot the broker published, so a
// group or partition missing from it is gone from /metrics: no series
// outlives its group. Lag is measured by a background loop, not at
// scrape time, because it may need requests to other brokers.
type groupCollector struct {
	stats atomic.Pointer[[]GroupStat]

	lagRecords, lagSeconds, members, state *prometheus.Desc
}

var _ prometheus.Collector = (*groupCollector)(nil)

func newGroupCollector() *groupCollector {
	desc := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc(prometheus.BuildFQName(namespace, "", name), help, labels, nil)
	}
	return &groupCollector{
		lagRecords: desc("group_lag_records", "Records between a consumer group's committed offset and the partition's high watermark. Exported by the group's coordinator only.", "group", "topic", "partition"),
		lagSeconds: desc("group_lag_seconds", "Age of the first record a consumer group has not consumed (the record at its committed offset); 0 when caught up. Exported by the group's coordinator only.", "group", "topic", "partition"),
		members:    desc("group_members", "Members of a consumer group. Exported by the group's coordinator only.", "group"),
		state:      desc("group_state", "1 for a consumer group's current state. Exported by the group's coordinator only.", "group", "state"),
	}
}

// Describe implements prometheus.Collector.
func (c *groupCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.lagRecords
	ch <- c.lagSeconds
	ch <- c.members
	ch <- c.state
}

// Collect implements prometheus.Collector.
func (c *groupCollector) Collect(ch chan<- prometheus.Metric) {
	stats := c.stats.Load()
	if stats == nil {
		return
	}
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		m, err := prometheus.NewConstMetric(d, prometheus.GaugeValue, v, labels...)
		if err != nil { // a name that is not UTF-8: reported, not a panic
			m = prometheus.NewInvalidMetric(d, err)
		}
		ch <- m
	}
	for _, g := range *stats {
		gauge(c.members, float64(g.Members), g.Group)
		gauge(c.state, 1, g.Group, g.State)
		for _, p := range g.Partitions {
			part := strconv.FormatInt(int64(p.Partition), 10)
			gauge(c.lagRecords, float64(p.LagRecords), g.Group, p.Topic, part)
			gauge(c.lagSeconds, p.LagSeconds, g.Group, p.Topic, part)
		}
	}
}

// SetGroupStats replaces the group gauges with stats, the groups this
// broker coordinates; nil removes them all. Each group and each of its
// (Topic, Partition) must appear once. stats must not be modified after.
func (m *Metrics) SetGroupStats(stats []GroupStat) {
	if m == nil {
		return
	}
	if stats == nil {
		m.groups.stats.Store(nil)
		return
	}
	m.groups.stats.Store(&stats)
}
