package metrics

import (
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestObserveRequest(t *testing.T) {
	m := New()
	m.ObserveRequest("Produce", "none", 2*time.Millisecond)
	m.ObserveRequest("Produce", "none", 3*time.Millisecond)
	m.ObserveRequest("Fetch", "NOT_LEADER_FOR_PARTITION", time.Second)

	if got := testutil.ToFloat64(m.requests.WithLabelValues("Produce", "none")); got != 2 {
		t.Errorf("Produce/none = %v, want 2", got)
	}
	if got := testutil.ToFloat64(m.requests.WithLabelValues("Fetch", "NOT_LEADER_FOR_PARTITION")); got != 1 {
		t.Errorf("Fetch/NOT_LEADER_FOR_PARTITION = %v, want 1", got)
	}
	want := `
# HELP sluice_request_duration_seconds Time from a Kafka request being read to its response being queued, by API name.
# TYPE sluice_request_duration_seconds histogram
sluice_request_duration_seconds_bucket{api="Fetch",le="0.0001"} 0
sluice_request_duration_seconds_bucket{api="Fetch",le="0.00025"} 0
sluice_request_duration_seconds_bucket{api="Fetch",le="0.0005"} 0
sluice_request_duration_seconds_bucket{api="Fetch",le="0.001"} 0
sluice_request_duration_seconds_bucket{api="Fetch",le="0.0025"} 0
sluice_request_duration_seconds_bucket{api="Fetch",le="0.005"} 0
sluice_request_duration_seconds_bucket{api="Fetch",le="0.01"} 0
sluice_request_duration_seconds_bucket{api="Fetch",le="0.025"} 0
sluice_request_duration_seconds_bucket{api="Fetch",le="0.05"} 0
sluice_request_duration_seconds_bucket{api="Fetch",le="0.1"} 0
sluice_request_duration_seconds_bucket{api="Fetch",le="0.25"} 0
sluice_request_duration_seconds_bucket{api="Fetch",le="0.5"} 0
sluice_request_duration_seconds_bucket{api="Fetch",le="1"} 1
sluice_request_duration_seconds_bucket{api="Fetch",le="2.5"} 1
sluice_request_duration_seconds_bucket{api="Fetch",le="5"} 1
sluice_request_duration_seconds_bucket{api="Fetch",le="10"} 1
sluice_request_duration_seconds_bucket{api="Fetch",le="+Inf"} 1
sluice_request_duration_seconds_sum{api="Fetch"} 1
sluice_request_duration_seconds_count{api="Fetch"} 1
sluice_request_duration_seconds_bucket{api="Produce",le="0.0001"} 0
sluice_request_duration_seconds_bucket{api="Produce",le="0.00025"} 0
sluice_request_duration_seconds_bucket{api="Produce",le="0.0005"} 0
sluice_request_duration_seconds_bucket{api="Produce",le="0.001"} 0
sluice_request_duration_seconds_bucket{api="Produce",le="0.0025"} 1
sluice_request_duration_seconds_bucket{api="Produce",le="0.005"} 2
sluice_request_duration_seconds_bucket{api="Produce",le="0.01"} 2
sluice_request_duration_seconds_bucket{api="Produce",le="0.025"} 2
sluice_request_duration_seconds_bucket{api="Produce",le="0.05"} 2
sluice_request_duration_seconds_bucket{api="Produce",le="0.1"} 2
sluice_request_duration_seconds_bucket{api="Produce",le="0.25"} 2
sluice_request_duration_seconds_bucket{api="Produce",le="0.5"} 2
sluice_request_duration_seconds_bucket{api="Produce",le="1"} 2
sluice_request_duration_seconds_bucket{api="Produce",le="2.5"} 2
sluice_request_duration_seconds_bucket{api="Produce",le="5"} 2
sluice_request_duration_seconds_bucket{api="Produce",le="10"} 2
sluice_request_duration_seconds_bucket{api="Produce",le="+Inf"} 2
sluice_request_duration_seconds_sum{api="Produce"} 0.005
sluice_request_duration_seconds_count{api="Produce"} 2
`
	if err := testutil.CollectAndCompare(m.duration, strings.NewReader(want)); err != nil {
		t.Error(err)
	}
}

func TestLabelsBounded(t *testing.T) {
	tests := []struct{ api, code, wantAPI, wantCode string }{
		{"Produce", "none", "Produce", "none"},
		{"ApiVersions", "UNSUPPORTED_VERSION", "ApiVersions", "UNSUPPORTED_VERSION"},
		{"SASLAuthenticate", "SASL_AUTHENTICATION_FAILED", "SASLAuthenticate", "SASL_AUTHENTICATION_FAILED"},
		{"produce", "none", "unknown", "none"},
		{"Unknown", "none", "unknown", "none"},
		{"", "", "unknown", "unknown"},
		{"Fetch", "read tcp 10.0.0.1:9092: connection reset", "Fetch", "unknown"},
		{"Fetch", "None", "Fetch", "unknown"},
		{"Fetch", "1_ERROR", "Fetch", "unknown"},
		{"Fetch", strings.Repeat("A", 65), "Fetch", "unknown"},
	}
	for _, tt := range tests {
		if got := apiLabel(tt.api); got != tt.wantAPI {
			t.Errorf("apiLabel(%q) = %q, want %q", tt.api, got, tt.wantAPI)
		}
		if got := codeLabel(tt.code); got != tt.wantCode {
			t.Errorf("codeLabel(%q) = %q, want %q", tt.code, got, tt.wantCode)
		}
	}
	if len(apiNames) < 50 || !apiNames["Produce"] || !apiNames["Fetch"] || !apiNames["Metadata"] {
		t.Errorf("apiNames has %d names; Produce, Fetch, Metadata present: %v %v %v",
			len(apiNames), apiNames["Produce"], apiNames["Fetch"], apiNames["Metadata"])
	}

	m := New()
	m.ObserveRequest("NotAnAPI", "whatever went wrong", time.Millisecond)
	if got := testutil.ToFloat64(m.requests.WithLabelValues("unknown", "unknown")); got != 1 {
		t.Errorf("unknown/unknown = %v, want 1", got)
	}
}

func TestBytesAndForgetTopic(t *testing.T) {
	m := New()
	m.AddBytesIn("orders", 100)
	m.AddBytesIn("orders", 50)
	m.AddBytesIn("clicks", 7)
	m.AddBytesIn("clicks", 0)  // ignored
	m.AddBytesIn("clicks", -3) // ignored, not a panic
	m.AddBytesOut("orders", 300)
	m.AddBytesOut("clicks", 9)

	if got := testutil.ToFloat64(m.bytesIn.WithLabelValues("orders")); got != 150 {
		t.Errorf("bytes in orders = %v, want 150", got)
	}
	if got := testutil.ToFloat64(m.bytesIn.WithLabelValues("clicks")); got != 7 {
		t.Errorf("bytes in clicks = %v, want 7", got)
	}
	if got := testutil.ToFloat64(m.bytesOut.WithLabelValues("orders")); got != 300 {
		t.Errorf("bytes out orders = %v, want 300", got)
	}

	m.ForgetTopic("orders")
	m.ForgetTopic("never-seen") // harmless
	want := `
# HELP sluice_bytes_in_total Record batch bytes produced, by topic.
# TYPE sluice_bytes_in_total counter
sluice_bytes_in_total{topic="clicks"} 7
# HELP sluice_bytes_out_total Record batch bytes fetched, by topic.
# TYPE sluice_bytes_out_total counter
sluice_bytes_out_total{topic="clicks"} 9
`
	if err := testutil.GatherAndCompare(m.Registry(), strings.NewReader(want), "sluice_bytes_in_total", "sluice_bytes_out_total"); err != nil {
		t.Error(err)
	}
}

func TestConnections(t *testing.T) {
	m := New()
	m.ConnOpened()
	m.ConnOpened()
	m.ConnOpened()
	m.ConnClosed()
	if got := testutil.ToFloat64(m.conns); got != 2 {
		t.Errorf("connections = %v, want 2", got)
	}
}

func TestPartitionCollector(t *testing.T) {
	m := New()
	const names = "sluice_log_start_offset sluice_high_watermark sluice_log_end_offset sluice_log_size_bytes"
	families := strings.Fields(names)

	// No source: no series, no error.
	if n, err := testutil.GatherAndCount(m.Registry(), families...); err != nil || n != 0 {
		t.Fatalf("without a source: %d series, err %v", n, err)
	}

	var mu sync.Mutex
	stats := []PartitionStat{
		{Topic: "orders", Partition: 0, LogStart: 10, HighWatermark: 90, LogEnd: 100, SizeBytes: 4096},
		{Topic: "orders", Partition: 1, LogStart: 0, HighWatermark: 5, LogEnd: 5, SizeBytes: 1024},
		{Topic: "clicks", Partition: 0, LogStart: 0, HighWatermark: 0, LogEnd: 0, SizeBytes: 40},
	}
	m.SetPartitionSource(func() []PartitionStat {
		mu.Lock()
		defer mu.Unlock()
		return append([]PartitionStat(nil), stats...)
	})

	want := `
# HELP sluice_high_watermark Partition high watermark: offsets below it are committed and readable.
# TYPE sluice_high_watermark gauge
sluice_high_watermark{partition="0",topic="clicks"} 0
sluice_high_watermark{partition="0",topic="orders"} 90
sluice_high_watermark{partition="1",topic="orders"} 5
# HELP sluice_log_end_offset Next offset the partition's log will assign.
# TYPE sluice_log_end_offset gauge
sluice_log_end_offset{partition="0",topic="clicks"} 0
sluice_log_end_offset{partition="0",topic="orders"} 100
sluice_log_end_offset{partition="1",topic="orders"} 5
# HELP sluice_log_size_bytes Bytes on disk of the partition's log segments.
# TYPE sluice_log_size_bytes gauge
sluice_log_size_bytes{partition="0",topic="clicks"} 40
sluice_log_size_bytes{partition="0",topic="orders"} 4096
sluice_log_size_bytes{partition="1",topic="orders"} 1024
# HELP sluice_log_start_offset First offset still in the partition's log.
# TYPE sluice_log_start_offset gauge
sluice_log_start_offset{partition="0",topic="clicks"} 0
sluice_log_start_offset{partition="0",topic="orders"} 10
sluice_log_start_offset{partition="1",topic="orders"} 0
`
	if err := testutil.GatherAndCompare(m.Registry(), strings.NewReader(want), families...); err != nil {
		t.Error(err)
	}

	// The topic clicks is deleted and orders/0 advances: the next scrape
	// shows exactly what the source returns.
	mu.Lock()
	stats = []PartitionStat{
		{Topic: "orders", Partition: 0, LogStart: 20, HighWatermark: 120, LogEnd: 130, SizeBytes: 8192},
		{Topic: "orders", Partition: 1, LogStart: 0, HighWatermark: 5, LogEnd: 5, SizeBytes: 1024},
	}
	mu.Unlock()
	want = `
# HELP sluice_high_watermark Partition high watermark: offsets below it are committed and readable.
# TYPE sluice_high_watermark gauge
sluice_high_watermark{partition="0",topic="orders"} 120
sluice_high_watermark{partition="1",topic="orders"} 5
# HELP sluice_log_end_offset Next offset the partition's log will assign.
# TYPE sluice_log_end_offset gauge
sluice_log_end_offset{partition="0",topic="orders"} 130
sluice_log_end_offset{partition="1",topic="orders"} 5
# HELP sluice_log_size_bytes Bytes on disk of the partition's log segments.
# TYPE sluice_log_size_bytes gauge
sluice_log_size_bytes{partition="0",topic="orders"} 8192
sluice_log_size_bytes{partition="1",topic="orders"} 1024
# HELP sluice_log_start_offset First offset still in the partition's log.
# TYPE sluice_log_start_offset gauge
sluice_log_start_offset{partition="0",topic="orders"} 20
sluice_log_start_offset{partition="1",topic="orders"} 0
`
	if err := testutil.GatherAndCompare(m.Registry(), strings.NewReader(want), families...); err != nil {
		t.Error(err)
	}

	// Removing the source removes every series.
	m.SetPartitionSource(nil)
	if n, err := testutil.GatherAndCount(m.Registry(), families...); err != nil || n != 0 {
		t.Errorf("after SetPartitionSource(nil): %d series, err %v", n, err)
	}
}

func TestPartitionCollectorBadTopic(t *testing.T) {
	m := New()
	m.SetPartitionSource(func() []PartitionStat {
		return []PartitionStat{{Topic: "\xff\xfe", Partition: 0}}
	})
	// A label that is not UTF-8 is a gather error, not a panic.
	if _, err := m.Registry().Gather(); err == nil {
		t.Error("Gather accepted a non-UTF-8 topic label")
	}
}

func TestNilMetrics(t *testing.T) {
	var m *Metrics
	m.ObserveRequest("Produce", "none", time.Millisecond)
	m.AddBytesIn("t", 1)
	m.AddBytesOut("t", 1)
	m.ConnOpened()
	m.ConnClosed()
	m.ForgetTopic("t")
	m.SetPartitionSource(func() []PartitionStat { return nil })
}

// TestConcurrentUse is for the race detector: updates, source changes and
// gathers at once.
func TestConcurrentUse(t *testing.T) {
	m := New()
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range 200 {
				m.ObserveRequest("Produce", "none", time.Duration(j)*time.Microsecond)
				m.AddBytesIn("t", j+1)
				m.ConnOpened()
				m.ConnClosed()
				if j%50 == 0 {
					m.ForgetTopic("t")
					m.SetPartitionSource(func() []PartitionStat {
						return []PartitionStat{{Topic: "t", Partition: int32(i)}}
					})
				}
			}
		}()
	}
	for range 20 {
		if _, err := m.Registry().Gather(); err != nil {
			t.Error(err)
		}
	}
	wg.Wait()
}
