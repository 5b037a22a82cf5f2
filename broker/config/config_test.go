package config

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestDefaultValidates(t *testing.T) {
	c := Default()
	if err := c.Validate(); err != nil {
		t.Fatalf("Default().Validate() = %v", err)
	}
	if got := c.AdvertisedAddr(); got != c.KafkaAddr {
		t.Errorf("AdvertisedAddr() = %q, want kafka_addr %q", got, c.KafkaAddr)
	}
	c.AdvertisedKafkaAddr = "broker-1.example:9092"
	if got := c.AdvertisedAddr(); got != "broker-1.example:9092" {
		t.Errorf("AdvertisedAddr() = %q with advertised_kafka_addr set", got)
	}
}

func TestDefaultValues(t *testing.T) {
	c := Default()
	want := Config{
		NodeID: 1, DataDir: "./data", KafkaAddr: "127.0.0.1:9092", HTTPAddr: "127.0.0.1:9644",
		RaftAddr: "127.0.0.1:9192", RaftHeartbeatTimeout: time.Second,
		AutoLeaderRebalance: true, LeaderRebalanceInterval: 30 * time.Second,
		OffsetsTopicPartitions: 16, OffsetsTopicReplicationFactor: 3, OffsetsRetention: 168 * time.Hour,
		GroupMinSessionTimeout: 6 * time.Second, GroupMaxSessionTimeout: 30 * time.Minute,
		GroupInitialRebalanceDelay: 3 * time.Second, GroupMaxSize: 1000, LagInterval: 15 * time.Second,
		MaxRequestBytes: 104857600, MaxControlRequestBytes: 1048576,
		AutoCreateTopics: true, DefaultPartitions: 1, DefaultReplicationFactor: 1,
		RetentionMs: 604800000, RetentionBytes: -1, SegmentBytes: 1073741824, SegmentMs: 604800000,
		MaxMessageBytes: 1048588, MessageTimestampType: "CreateTime", CleanupPolicy: "delete",
		RetentionCheckInterval: 5 * time.Minute, LogLevel: "info", LogFormat: "auto",
		ShutdownTimeout: 30 * time.Second, FetchMaxWaitMax: 30 * time.Second,
		ConnectionsMaxIdle: 10 * time.Minute, PageCacheWindow: 8 << 20,
	}
	if c != want {
		t.Errorf("Default() =\n%+v\nwant\n%+v", c, want)
	}
}

func TestValidateEachField(t *testing.T) {
	tests := []struct {
		field string
		value string // as the error prints it
		set   func(*Config)
	}{
		{"node_id", "-1", func(c *Config) { c.NodeID = -1 }},
		{"data_dir", `""`, func(c *Config) { c.DataDir = "" }},
		{"kafka_addr", `"localhost"`, func(c *Config) { c.KafkaAddr = "localhost" }},
		{"kafka_addr", `"127.0.0.1:99999"`, func(c *Config) { c.KafkaAddr = "127.0.0.1:99999" }},
		{"kafka_addr", `"127.0.0.1:kafka"`, func(c *Config) { c.KafkaAddr = "127.0.0.1:kafka" }},
		{"advertised_kafka_addr", `"broker-1"`, func(c *Config) { c.AdvertisedKafkaAddr = "broker-1" }},
		{"advertised_kafka_addr", `"broker-1:0"`, func(c *Config) { c.AdvertisedKafkaAddr = "broker-1:0" }},
		{"advertised_kafka_addr", `"0.0.0.0:9092"`, func(c *Config) { c.AdvertisedKafkaAddr = "0.0.0.0:9092" }},
		{"advertised_kafka_addr", `":9092"`, func(c *Config) { c.AdvertisedKafkaAddr = ":9092" }},
		{"advertised_kafka_addr", `""`, func(c *Config) { c.KafkaAddr = "0.0.0.0:9092" }},
		{"advertised_kafka_addr", `""`, func(c *Config) { c.KafkaAddr = "[::]:9092" }},
		{"http_addr", `"127.0.0.1"`, func(c *Config) { c.HTTPAddr = "127.0.0.1" }},
		{"http_addr", `"127.0.0.1:-1"`, func(c *Config) { c.HTTPAddr = "127.0.0.1:-1" }},
		{"http_addr", `"127.0.0.1:9092"`, func(c *Config) { c.HTTPAddr = "127.0.0.1:9092" }},
		{"http_addr", `":9092"`, func(c *Config) { c.HTTPAddr = ":9092" }},
		{"raft_addr", `"127.0.0.1"`, func(c *Config) { c.RaftAddr = "127.0.0.1" }},
		{"raft_addr", `"127.0.0.1:9092"`, func(c *Config) { c.RaftAddr = "127.0.0.1:9092" }},
		{"raft_addr", `"127.0.0.1:9644"`, func(c *Config) { c.RaftAddr = "127.0.0.1:9644" }},
		{"advertised_raft_addr", `""`, func(c *Config) { c.RaftAddr = ":9093" }},
		{"advertised_raft_addr", `"nohost"`, func(c *Config) { c.AdvertisedRaftAddr = "nohost" }},
		{"controller_voters", `"1@a:1,2@b:2"`, func(c *Config) { c.ControllerVoters = "1@a:1,2@b:2" }},
		{"controller_voters", `"1@a:1,1@b:2,3@c:3"`, func(c *Config) { c.ControllerVoters = "1@a:1,1@b:2,3@c:3" }},
		{"controller_voters", `"a:1"`, func(c *Config) { c.ControllerVoters = "a:1" }},
		{"controller_voters", `"x@a:1"`, func(c *Config) { c.ControllerVoters = "x@a:1" }},
		{"controller_voters", `"1@a"`, func(c *Config) { c.ControllerVoters = "1@a" }},
		{"raft_heartbeat_timeout", "10ms", func(c *Config) { c.RaftHeartbeatTimeout = 10 * time.Millisecond }},
		{"raft_heartbeat_timeout", "2m0s", func(c *Config) { c.RaftHeartbeatTimeout = 2 * time.Minute }},
		{"leader_rebalance_interval", "99ms", func(c *Config) { c.LeaderRebalanceInterval = 99 * time.Millisecond }},
		{"leader_rebalance_interval", "0s", func(c *Config) { c.LeaderRebalanceInterval = 0 }},
		{"offsets_topic_partitions", "0", func(c *Config) { c.OffsetsTopicPartitions = 0 }},
		{"offsets_topic_replication_factor", "6", func(c *Config) { c.OffsetsTopicReplicationFactor = 6 }},
		{"offsets_retention", "1s", func(c *Config) { c.OffsetsRetention = time.Second }},
		{"group_min_session_timeout", "10ms", func(c *Config) { c.GroupMinSessionTimeout = 10 * time.Millisecond }},
		{"group_max_session_timeout", "1s", func(c *Config) { c.GroupMaxSessionTimeout = time.Second }},
		{"group_initial_rebalance_delay", "-1s", func(c *Config) { c.GroupInitialRebalanceDelay = -time.Second }},
		{"group_max_size", "0", func(c *Config) { c.GroupMaxSize = 0 }},
		{"lag_interval", "99ms", func(c *Config) { c.LagInterval = 99 * time.Millisecond }},
		{"cluster_id", `"my-cluster"`, func(c *Config) { c.ClusterID = "my-cluster" }},
		{"cluster_id", `"MkU3OEVBNTcwNTJENDM2Qk=="`, func(c *Config) { c.ClusterID = "MkU3OEVBNTcwNTJENDM2Qk==" }},
		{"max_request_bytes", "1023", func(c *Config) { c.MaxRequestBytes = 1023 }},
		{"max_control_request_bytes", "0", func(c *Config) { c.MaxControlRequestBytes = 0 }},
		{"max_control_request_bytes", "104857601", func(c *Config) { c.MaxControlRequestBytes = 104857601 }},
		{"default_partitions", "0", func(c *Config) { c.DefaultPartitions = 0 }},
		{"default_partitions", "10001", func(c *Config) { c.DefaultPartitions = 10001 }},
		{"default_replication_factor", "0", func(c *Config) { c.DefaultReplicationFactor = 0 }},
		{"retention_ms", "-2", func(c *Config) { c.RetentionMs = -2 }},
		{"retention_bytes", "-2", func(c *Config) { c.RetentionBytes = -2 }},
		{"segment_bytes", "1023", func(c *Config) { c.SegmentBytes = 1023 }},
		{"segment_bytes", "2147483648", func(c *Config) { c.SegmentBytes = 1 << 31 }},
		{"segment_ms", "0", func(c *Config) { c.SegmentMs = 0 }},
		{"max_message_bytes", "60", func(c *Config) { c.MaxMessageBytes = 60 }},
		{"max_message_bytes", "1073741825", func(c *Config) { c.MaxMessageBytes = 1<<30 + 1 }},
		{"max_message_bytes", "2097152", func(c *Config) { c.MaxRequestBytes = 2 << 20; c.MaxMessageBytes = 2 << 20; c.SegmentBytes = 1 << 20 }},
		{"max_message_bytes", "4194304", func(c *Config) { c.MaxRequestBytes = 2 << 20; c.MaxMessageBytes = 4 << 20 }},
		{"message_timestamp_type", `"createtime"`, func(c *Config) { c.MessageTimestampType = "createtime" }},
		{"cleanup_policy", `"compact,compact"`, func(c *Config) { c.CleanupPolicy = "compact,compact" }},
		{"cleanup_policy", `""`, func(c *Config) { c.CleanupPolicy = "" }},
		{"retention_check_interval", "0s", func(c *Config) { c.RetentionCheckInterval = 0 }},
		{"log_level", `"verbose"`, func(c *Config) { c.LogLevel = "verbose" }},
		{"log_level", `"fatal"`, func(c *Config) { c.LogLevel = "fatal" }},
		{"log_format", `"text"`, func(c *Config) { c.LogFormat = "text" }},
		{"shutdown_timeout", "0s", func(c *Config) { c.ShutdownTimeout = 0 }},
		{"shutdown_timeout", "-1s", func(c *Config) { c.ShutdownTimeout = -time.Second }},
		{"fetch_max_wait_max", "0s", func(c *Config) { c.FetchMaxWaitMax = 0 }},
		{"connections_max_idle", "500ms", func(c *Config) { c.ConnectionsMaxIdle = 500 * time.Millisecond }},
		{"page_cache_window", "-1", func(c *Config) { c.PageCacheWindow = -1 }},
	}
	tested := map[string]bool{}
	for _, tt := range tests {
		tested[tt.field] = true
		t.Run(tt.field+"="+tt.value, func(t *testing.T) {
			c := Default()
			tt.set(&c)
			err := c.Validate()
			if err == nil {
				t.Fatal("Validate() = nil")
			}
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("errors.Is(err, ErrInvalid) = false for %v", err)
			}
			errs := err.(interface{ Unwrap() []error }).Unwrap()
			if len(errs) != 1 {
				t.Errorf("got %d errors, want 1: %v", len(errs), err)
			}
			var fe *FieldError
			if !errors.As(err, &fe) || fe.Field != tt.field {
				t.Fatalf("error %v is not a *FieldError for %s", err, tt.field)
			}
			if prefix := "config: " + tt.field + " = " + tt.value + ": "; !strings.HasPrefix(err.Error(), prefix) {
				t.Errorf("error %q does not start with %q", err, prefix)
			}
		})
	}
	for _, o := range options {
		// A bool has no invalid value.
		if !tested[o.key] && o.key != "auto_create_topics" && o.key != "auto_leader_rebalance" {
			t.Errorf("no validation case for %s", o.key)
		}
	}
}

func TestValidateAcceptsEdges(t *testing.T) {
	tests := map[string]func(*Config){
		"port 0":              func(c *Config) { c.KafkaAddr = "127.0.0.1:0"; c.HTTPAddr = "127.0.0.1:0" },
		"all interfaces":      func(c *Config) { c.KafkaAddr = ":9092"; c.AdvertisedKafkaAddr = "broker-1.example:9092" },
		"ipv6":                func(c *Config) { c.KafkaAddr = "[::1]:9092"; c.HTTPAddr = "[::1]:9644" },
		"cluster id":          func(c *Config) { c.ClusterID = "MkU3OEVBNTcwNTJENDM2Qg" },
		"unlimited retention": func(c *Config) { c.RetentionMs = -1; c.RetentionBytes = -1 },
		"zero retention":      func(c *Config) { c.RetentionMs = 0; c.RetentionBytes = 0 },
		"smallest sizes": func(c *Config) {
			c.SegmentBytes = 1024
			c.MaxMessageBytes = 61
			c.MaxRequestBytes = 1024
			c.MaxControlRequestBytes = 1024
		},
		"largest segment": func(c *Config) { c.SegmentBytes = 1<<31 - 1 },
		"log append time": func(c *Config) { c.MessageTimestampType = "LogAppendTime" },
		"compact":         func(c *Config) { c.CleanupPolicy = "compact" },
		"compact,delete":  func(c *Config) { c.CleanupPolicy = "compact,delete" },
		"delete,compact":  func(c *Config) { c.CleanupPolicy = "delete,compact" },
		"trace json":      func(c *Config) { c.LogLevel = "trace"; c.LogFormat = "json" },
		"error console":   func(c *Config) { c.LogLevel = "error"; c.LogFormat = "console" },
		"no auto create":  func(c *Config) { c.AutoCreateTopics = false },
		"node 0":          func(c *Config) { c.NodeID = 0 },
		"distinct ports same host": func(c *Config) {
			c.KafkaAddr = "0.0.0.0:9092"
			c.AdvertisedKafkaAddr = "h:9092"
			c.HTTPAddr = "0.0.0.0:9644"
		},
	}
	for name, set := range tests {
		t.Run(name, func(t *testing.T) {
			c := Default()
			set(&c)
			if err := c.Validate(); err != nil {
				t.Errorf("Validate() = %v", err)
			}
		})
	}
}

func TestValidateReportsEveryProblem(t *testing.T) {
	c := Default()
	c.NodeID = -1
	c.LogLevel = "loud"
	c.SegmentMs = 0
	err := c.Validate()
	for _, field := range []string{"node_id", "log_level", "segment_ms"} {
		if !strings.Contains(err.Error(), "config: "+field+" = ") {
			t.Errorf("error does not name %s:\n%v", field, err)
		}
	}
}

// TestOptionsCoverConfig keeps the binding table and the struct in step:
// every field but File has exactly one option named by its yaml tag.
func TestOptionsCoverConfig(t *testing.T) {
	keys := map[string]int{}
	for _, o := range options {
		keys[o.key]++
	}
	typ := reflect.TypeFor[Config]()
	for i := range typ.NumField() {
		f := typ.Field(i)
		tag := f.Tag.Get("yaml")
		if tag == "-" {
			continue
		}
		if keys[tag] != 1 {
			t.Errorf("field %s (yaml %q) has %d options, want 1", f.Name, tag, keys[tag])
		}
		delete(keys, tag)
	}
	for k := range keys {
		t.Errorf("option %q has no Config field", k)
	}
}
