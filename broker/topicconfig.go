package broker

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/sluicemq/sluice/log"
	"github.com/sluicemq/sluice/partition"
)

// A topic config Sluice understands, with Kafka's name and meaning.
type topicConfigDef struct {
	name string
	doc  string
	// check validates a value and returns it normalised.
	check func(v string) (string, error)
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

// topicConfigDefs lists the supported topic configs, sorted by name.
var topicConfigDefs = []topicConfigDef{
	// compact arrives with consumer groups (issue 6); refusing it now is
	// better than accepting a policy nothing enforces.
	{"cleanup.policy", "Retention policy: delete old segments (compact is not yet supported).", oneOf("delete")},
	{"max.message.bytes", "Largest record batch the topic accepts, in bytes.", longRange(0, 1<<30)},
	{"message.timestamp.type", "CreateTime keeps the producer's timestamps; LogAppendTime stamps the broker's clock on append.", oneOf("CreateTime", "LogAppendTime")},
	{"retention.bytes", "Delete the oldest segments while the partition exceeds this many bytes; -1 for no limit.", longRange(-1, 1<<62)},
	{"retention.ms", "Delete segments whose newest record is older than this; -1 for no limit.", longRange(-1, 1<<62)},
	{"segment.bytes", "Roll to a new segment file at this size, in bytes.", longRange(1024, 1<<31-1)},
	{"segment.ms", "Roll to a new segment file when the active one is this old, in milliseconds.", longRange(1, 1<<62)},
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

// effectiveConfigs merges broker defaults with a topic's overrides.
func effectiveConfigs(defaults, overrides map[string]string) map[string]string {
	m := make(map[string]string, len(defaults))
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
	return c
}

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
