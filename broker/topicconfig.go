package broker

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/sluicemq/sluice/log"
	"github.com/sluicemq/sluice/partition"
	"github.com/sluicemq/sluice/replication"
)

// A topic config Sluice understands, with Kafka's name and meaning.
type topicConfigDef struct {
	name string
	doc  string
	// check validates a value and returns it normalised.
	check func(v string) (string, error)
	// def is Kafka's default, used when the broker sets none ("": the
	// broker's topic defaults always carry the config).
	def string
}

func longRange(lo, hi int64) func(string) (string, error) {
	return func(v string) (string, error) {
		n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		if err != nil {
			return "", fmt.Errorf("%q is not an integer", v)
		}
		if n < lo || n > hi {
			return "", fmt.Errorf("%d is outside [%d, %d]", n, lo, hi)
		}
		return strconv.FormatInt(n, 10), nil
	}
}

func doubleRange(lo, hi float64) func(string) (string, error) {
	return func(v string) (string, error) {
		f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
		if err != nil {
			return "", fmt.Errorf("%q is not a number", v)
		}
		if !(f >= lo && f <= hi) {
			return "", fmt.Errorf("%v is outside [%v, %v]", f, lo, hi)
		}
		return strconv.FormatFloat(f, 'g', -1, 64), nil
	}
}

func oneOf(allowed ...string) func(string) (string, error) {
	return func(v string) (string, error) {
		for _, a := range allowed {
			if v == a {
				return v, nil
			}
		}
		return "", fmt.Errorf("%q is not one of %s", v, strings.Join(allowed, ", "))
	}
}

// cleanupPolicy accepts Kafka's list values: delete, compact, or both in
// either order (spaces around items are dropped).
func cleanupPolicy(v string) (string, error) {
	var items []string
	for _, it := range strings.Split(v, ",") {
		it = strings.TrimSpace(it)
		if (it != "delete" && it != "compact") || slices.Contains(items, it) {
			return "", fmt.Errorf("%q is not delete, compact, compact,delete or delete,compact", v)
		}
		items = append(items, it)
	}
	return strings.Join(items, ","), nil
}

// topicConfigDefs lists the supported topic configs, sorted by name.
var topicConfigDefs = []topicConfigDef{
	{"cleanup.policy", "delete removes old segments by retention.ms and retention.bytes; compact keeps the latest record of every key (records must have keys); compact,delete does both.", cleanupPolicy, ""},
	{"delete.retention.ms", "How long a compacted topic keeps a tombstone (a record with a null value) after its timestamp, in milliseconds.", longRange(0, math.MaxInt64), "86400000"},
	{"max.message.bytes", "Largest record batch the topic accepts, in bytes.", longRange(0, 1<<30), ""},
	{"message.timestamp.type", "CreateTime keeps the producer's timestamps; LogAppendTime stamps the broker's clock on append.", oneOf("CreateTime", "LogAppendTime"), ""},
	{"min.cleanable.dirty.ratio", "Compact a partition when at least this share of its cleanable bytes has not been compacted yet.", doubleRange(0, 1), "0.5"},
	{"min.compaction.lag.ms", "Records younger than this stay uncompacted, in milliseconds.", longRange(0, math.MaxInt64), "0"},
	{"retention.bytes", "Delete the oldest segments while the partition exceeds this many bytes; -1 for no limit.", longRange(-1, 1<<62), ""},
	{"retention.ms", "Delete segments whose newest record is older than this; -1 for no limit.", longRange(-1, 1<<62), ""},
	{"segment.bytes", "Roll to a new segment file at this size, in bytes.", longRange(1024, 1<<31-1), ""},
	{"segment.ms", "Roll to a new segment file when the active one is this old, in milliseconds.", longRange(1, 1<<62), ""},
}

func findTopicConfig(name string) (topicConfigDef, bool) {
	i := sort.Search(len(topicConfigDefs), func(i int) bool { return topicConfigDefs[i].name >= name })
	if i < len(topicConfigDefs) && topicConfigDefs[i].name == name {
		return topicConfigDefs[i], true
	}
	return topicConfigDef{}, false
}

// validateTopicConfigs checks overrides and returns them normalised.
func validateTopicConfigs(in map[string]string) (map[string]string, error) {
	out := make(map[string]string, len(in))
	for k, v := range in {
		def, ok := findTopicConfig(k)
		if !ok {
			return nil, fmt.Errorf("unknown topic config %q", k)
		}
		nv, err := def.check(v)
		if err != nil {
			return nil, fmt.Errorf("topic config %s: %v", k, err)
		}
		out[k] = nv
	}
	return out, nil
}

// effectiveConfigs merges Kafka's defaults, the broker's and a topic's
// overrides.
func effectiveConfigs(defaults, overrides map[string]string) map[string]string {
	m := make(map[string]string, len(topicConfigDefs))
	for _, d := range topicConfigDefs {
		if d.def != "" {
			m[d.name] = d.def
		}
	}
	for k, v := range defaults {
		m[k] = v
	}
	for k, v := range overrides {
		m[k] = v
	}
	return m
}

// partitionConfig turns effective (validated) configs into what a
// partition enforces.
func partitionConfig(m map[string]string) partition.Config {
	num := func(k string) int64 { n, _ := strconv.ParseInt(m[k], 10, 64); return n }
	c := partition.Config{
		MaxMessageBytes: int32(num("max.message.bytes")),
		SegmentBytes:    num("segment.bytes"),
		SegmentAge:      time.Duration(num("segment.ms")) * time.Millisecond,
		Retention:       log.Retention{MaxBytes: num("retention.bytes")},
	}
	if ms := num("retention.ms"); ms > 0 {
		c.Retention.MaxAge = time.Duration(ms) * time.Millisecond
	}
	if m["message.timestamp.type"] == "LogAppendTime" {
		c.TimestampType = partition.LogAppendTime
	}
	switch p := m["cleanup.policy"]; {
	case strings.Contains(p, "compact") && strings.Contains(p, "delete"):
		c.CleanupPolicy = partition.CleanupCompactDelete
	case strings.Contains(p, "compact"):
		c.CleanupPolicy = partition.CleanupCompact
	}
	c.DeleteRetention = millis(num("delete.retention.ms"))
	c.MinCompactionLag = millis(num("min.compaction.lag.ms"))
	c.MinCleanableDirtyRatio, _ = strconv.ParseFloat(m["min.cleanable.dirty.ratio"], 64)
	return c
}

// millis converts milliseconds to a Duration, saturating where a Duration
// ends (about 292 years).
func millis(ms int64) time.Duration {
	if ms > math.MaxInt64/int64(time.Millisecond) {
		return math.MaxInt64
	}
	return time.Duration(ms) * time.Millisecond
}

// compacter is a replica that runs cleaner passes (replication.Replica).
type compacter interface {
	Compact() (log.CompactStats, error)
}

var _ compacter = (*replication.Replica)(nil)

// logClosed reports a pass cut short by its replica closing (the topic
// deleted or moved away), which is no failure.
func logClosed(err error) bool { return errors.Is(err, log.ErrClosed) }

// validTopicName applies Kafka's rule: 1 to 249 characters of [a-zA-Z0-9._-],
// and not "." or "..".
func validTopicName(name string) error {
	if name == "" || name == "." || name == ".." {
		return fmt.Errorf("topic name %q is not allowed", name)
	}
	if len(name) > 249 {
		return fmt.Errorf("topic name is %d characters, the limit is 249", len(name))
	}
	for _, c := range name {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return fmt.Errorf("topic name %q has %q; allowed are ASCII letters, digits, '.', '_' and '-'", name, c)
		}
	}
	return nil
}
