package broker

import (
	"testing"
	"time"

	"github.com/sluicemq/sluice/partition"
)

// TestCompactionTopicConfigs: cleanup.policy takes Kafka's values, the
// compaction configs have Kafka's defaults, and all map onto the
// partition's Config.
func TestCompactionTopicConfigs(t *testing.T) {
	for _, tc := range []struct {
		v    string
		ok   bool
		want partition.CleanupPolicy
	}{
		{"delete", true, partition.CleanupDelete},
		{"compact", true, partition.CleanupCompact},
		{"compact,delete", true, partition.CleanupCompactDelete},
		{"delete, compact", true, partition.CleanupCompactDelete},
		{"compact,compact", false, 0},
		{"", false, 0},
		{"bogus", false, 0},
	} {
		got, err := validateTopicConfigs(map[string]string{"cleanup.policy": tc.v})
		if (err == nil) != tc.ok {
			t.Fatalf("cleanup.policy=%q: %v", tc.v, err)
		}
		if tc.ok {
			if c := partitionConfig(effectiveConfigs(nil, got)); c.CleanupPolicy != tc.want {
				t.Fatalf("cleanup.policy=%q: policy %d, want %d", tc.v, c.CleanupPolicy, tc.want)
			}
		}
	}
	c := partitionConfig(effectiveConfigs(map[string]string{"cleanup.policy": "compact"}, nil))
	if c.DeleteRetention != 24*time.Hour || c.MinCompactionLag != 0 || c.MinCleanableDirtyRatio != 0.5 {
		t.Fatalf("defaults: %+v", c)
	}
	over, err := validateTopicConfigs(map[string]string{"delete.retention.ms": "1000", "min.compaction.lag.ms": "9223372036854775807", "min.cleanable.dirty.ratio": "0.25"})
	if err != nil {
		t.Fatal(err)
	}
	c = partitionConfig(effectiveConfigs(nil, over))
	if c.DeleteRetention != time.Second || c.MinCompactionLag <= 0 || c.MinCleanableDirtyRatio != 0.25 {
		t.Fatalf("overrides: %+v", c)
	}
	for _, bad := range []map[string]string{{"min.cleanable.dirty.ratio": "1.5"}, {"min.cleanable.dirty.ratio": "NaN"}, {"delete.retention.ms": "-1"}} {
		if _, err := validateTopicConfigs(bad); err == nil {
			t.Fatalf("%v accepted", bad)
		}
	}
}
