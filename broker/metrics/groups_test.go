package metrics

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

// TestGroupStats: a snapshot becomes gauges, and the next snapshot
// replaces it, so a group or partition missing from it is gone.
func TestGroupStats(t *testing.T) {
	m := New()
	m.SetGroupStats([]GroupStat{
		{Group: "billing", State: "Stable", Members: 2, Partitions: []GroupPartitionStat{
			{Topic: "orders", Partition: 0, LagRecords: 6, LagSeconds: 7.5},
			{Topic: "orders", Partition: 1},
		}},
		{Group: "audit", State: "Empty"},
	})
	names := []string{"sluice_group_lag_records", "sluice_group_lag_seconds", "sluice_group_members", "sluice_group_state"}
	want := `
# HELP sluice_group_lag_records Records between a consumer group's committed offset and the partition's high watermark. Exported by the group's coordinator only.
# TYPE sluice_group_lag_records gauge
sluice_group_lag_records{group="billing",partition="0",topic="orders"} 6
sluice_group_lag_records{group="billing",partition="1",topic="orders"} 0
# HELP sluice_group_lag_seconds Age of the first record a consumer group has not consumed (the record at its committed offset); 0 when caught up. Exported by the group's coordinator only.
# TYPE sluice_group_lag_seconds gauge
sluice_group_lag_seconds{group="billing",partition="0",topic="orders"} 7.5
sluice_group_lag_seconds{group="billing",partition="1",topic="orders"} 0
# HELP sluice_group_members Members of a consumer group. Exported by the group's coordinator only.
# TYPE sluice_group_members gauge
sluice_group_members{group="audit"} 0
sluice_group_members{group="billing"} 2
# HELP sluice_group_state 1 for a consumer group's current state. Exported by the group's coordinator only.
# TYPE sluice_group_state gauge
sluice_group_state{group="audit",state="Empty"} 1
sluice_group_state{group="billing",state="Stable"} 1
`
	if err := testutil.GatherAndCompare(m.Registry(), strings.NewReader(want), names...); err != nil {
		t.Error(err)
	}

	m.SetGroupStats([]GroupStat{{Group: "billing", State: "PreparingRebalance", Members: 1}})
	want = `
# HELP sluice_group_members Members of a consumer group. Exported by the group's coordinator only.
# TYPE sluice_group_members gauge
sluice_group_members{group="billing"} 1
# HELP sluice_group_state 1 for a consumer group's current state. Exported by the group's coordinator only.
# TYPE sluice_group_state gauge
sluice_group_state{group="billing",state="PreparingRebalance"} 1
`
	if err := testutil.GatherAndCompare(m.Registry(), strings.NewReader(want), names...); err != nil {
		t.Error(err)
	}

	m.SetGroupStats(nil)
	if n, err := testutil.GatherAndCount(m.Registry(), names...); err != nil || n != 0 {
		t.Errorf("after SetGroupStats(nil): %d series, %v", n, err)
	}
	var nilMetrics *Metrics
	nilMetrics.SetGroupStats([]GroupStat{{Group: "x"}}) // a no-op, not a panic
}
