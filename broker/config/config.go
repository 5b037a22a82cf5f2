// Package config is the broker's configuration: one plain struct with
// built-in defaults, validation, and binding from, in increasing precedence,
// the defaults, an optional YAML file, SLUICE_* environment variables and
// command-line flags.
//
// Every option has one name in three spellings, derived mechanically from
// its YAML key: node_id is the YAML key node_id, the environment variable
// SLUICE_NODE_ID and the flag --node-id. The config file itself is named by
// --config or SLUICE_CONFIG and has no YAML key. Durations are Go duration
// strings ("5m", "30s", "1h30m") in all three.
package config

import (
	"encoding/base64"
	"errors"
	"fmt"
	"math"
	"net"
	"strconv"
	"strings"
	"time"
)

// Config is everything the broker reads at start-up. Topic defaults use
// Kafka's broker-level names in their documentation; they apply to topics
// created without an explicit value.
type Config struct {
	// NodeID is this broker's id in the cluster (Kafka node.id).
	NodeID int32 `yaml:"node_id"`
	// DataDir holds partition logs, Raft state and the cluster id.
	DataDir string `yaml:"data_dir"`
	// KafkaAddr is the host:port the Kafka listener binds.
	KafkaAddr string `yaml:"kafka_addr"`
	// AdvertisedKafkaAddr is the host:port given to clients in metadata;
	// empty means KafkaAddr (see AdvertisedAddr).
	AdvertisedKafkaAddr string `yaml:"advertised_kafka_addr"`
	// HTTPAddr is the host:port of the HTTP server: health, readiness,
	// Prometheus metrics and the admin API.
	HTTPAddr string `yaml:"http_addr"`
	// ClusterID is the Kafka cluster id; empty means the broker generates one
	// on first start and persists it in DataDir.
	ClusterID string `yaml:"cluster_id"`

	// RaftAddr is the host:port of the internal listener: the raft traffic
	// of every partition and of the controller, and broker-to-broker
	// requests, all over this one port.
	RaftAddr string `yaml:"raft_addr"`
	// AdvertisedRaftAddr is the host:port other brokers dial; empty means
	// RaftAddr.
	AdvertisedRaftAddr string `yaml:"advertised_raft_addr"`
	// ControllerVoters lists the controller group's voters as
	// id@host:port (their raft addresses), comma-separated, e.g.
	// "1@10.0.0.1:9093,2@10.0.0.2:9093,3@10.0.0.3:9093". Use 1, 3 or 5
	// voters; brokers not listed join as non-voters. Empty means this
	// broker alone (a single-node cluster).
	ControllerVoters string `yaml:"controller_voters"`
	// RaftHeartbeatTimeout is raft's heartbeat and election timeout for
	// every group on this broker: a leader unheard of this long is
	// replaced. Lower fails over faster; higher costs less idle CPU per
	// partition replica.
	RaftHeartbeatTimeout time.Duration `yaml:"raft_heartbeat_timeout"`
	// AutoLeaderRebalance makes each partition leader hand leadership to
	// the partition's preferred replica (the first of its replicas) once
	// that replica is caught up, every LeaderRebalanceInterval and shortly
	// after it becomes leader, so leaders spread as placement intended
	// (Kafka auto.leader.rebalance.enable).
	AutoLeaderRebalance bool `yaml:"auto_leader_rebalance"`
	// LeaderRebalanceInterval is how often a broker checks the partitions
	// it leads for a preferred replica to hand leadership to (Kafka
	// leader.imbalance.check.interval.seconds).
	LeaderRebalanceInterval time.Duration `yaml:"leader_rebalance_interval"`

	// OffsetsTopicPartitions is the partition count of __consumer_offsets,
	// fixed when the topic is first created (Kafka
	// offsets.topic.num.partitions). Each partition is a raft group whose
	// leader coordinates the groups that hash to it.
	OffsetsTopicPartitions int32 `yaml:"offsets_topic_partitions"`
	// OffsetsTopicReplicationFactor is the replication factor of
	// __consumer_offsets, lowered to the cluster size when fewer brokers
	// are registered (Kafka offsets.topic.replication.factor).
	OffsetsTopicReplicationFactor int16 `yaml:"offsets_topic_replication_factor"`
	// OffsetsRetention is how long an empty group's committed offsets are
	// kept after its last commit (Kafka offsets.retention.minutes).
	OffsetsRetention time.Duration `yaml:"offsets_retention"`
	// GroupMinSessionTimeout and GroupMaxSessionTimeout bound the session
	// timeouts members may ask for (Kafka group.min/max.session.timeout.ms).
	GroupMinSessionTimeout time.Duration `yaml:"group_min_session_timeout"`
	GroupMaxSessionTimeout time.Duration `yaml:"group_max_session_timeout"`
	// GroupInitialRebalanceDelay is how long a new group waits for more
	// members before its first rebalance completes (Kafka
	// group.initial.rebalance.delay.ms).
	GroupInitialRebalanceDelay time.Duration `yaml:"group_initial_rebalance_delay"`
	// GroupMaxSize caps the members of one group (Kafka group.max.size).
	GroupMaxSize int `yaml:"group_max_size"`
	// LagInterval is how often a broker recomputes the consumer lag of the
	// groups it coordinates for /metrics. Each refresh reads one record per
	// lagging partition, so shorter intervals cost more reads.
	LagInterval time.Duration `yaml:"lag_interval"`

	// MaxRequestBytes caps the size of any request frame, checked before the
	// frame is read (Kafka socket.request.max.bytes).
	MaxRequestBytes int32 `yaml:"max_request_bytes"`
	// MaxControlRequestBytes caps every request but Produce. The decoder
	// allocates per array element, so a small frame can claim large arrays;
	// the tighter cap bounds that for requests that carry no record data.
	MaxControlRequestBytes int32 `yaml:"max_control_request_bytes"`

	// AutoCreateTopics creates a topic on first Metadata or Produce naming
	// it (Kafka auto.create.topics.enable).
	AutoCreateTopics bool `yaml:"auto_create_topics"`
	// DefaultPartitions is the partition count of auto-created topics and of
	// CreateTopics requests that leave it to the broker (Kafka num.partitions).
	DefaultPartitions int32 `yaml:"default_partitions"`
	// DefaultReplicationFactor is the replication factor of auto-created
	// topics (Kafka default.replication.factor).
	DefaultReplicationFactor int16 `yaml:"default_replication_factor"`

	// RetentionMs: delete segments whose newest record is older (Kafka
	// log.retention.ms / retention.ms); -1 means unlimited.
	RetentionMs int64 `yaml:"retention_ms"`
	// RetentionBytes: delete the oldest segments while a partition is larger
	// (Kafka log.retention.bytes / retention.bytes); -1 means unlimited.
	RetentionBytes int64 `yaml:"retention_bytes"`
	// SegmentBytes rolls a segment before it grows past this size (Kafka
	// log.segment.bytes / segment.bytes).
	SegmentBytes int64 `yaml:"segment_bytes"`
	// SegmentMs rolls a non-empty segment this old (Kafka log.roll.ms /
	// segment.ms).
	SegmentMs int64 `yaml:"segment_ms"`
	// MaxMessageBytes is the largest record batch accepted (Kafka
	// message.max.bytes / max.message.bytes).
	MaxMessageBytes int32 `yaml:"max_message_bytes"`
	// MessageTimestampType is CreateTime or LogAppendTime (Kafka
	// log.message.timestamp.type / message.timestamp.type).
	MessageTimestampType string `yaml:"message_timestamp_type"`
	// CleanupPolicy is delete, compact, or both (Kafka log.cleanup.policy /
	// cleanup.policy).
	CleanupPolicy string `yaml:"cleanup_policy"`
	// RetentionCheckInterval is how often retention runs (Kafka
	// log.retention.check.interval.ms).
	RetentionCheckInterval time.Duration `yaml:"retention_check_interval"`

	// LogLevel is trace, debug, info, warn or error.
	LogLevel string `yaml:"log_level"`
	// LogFormat is auto, json or console; auto is console when the log
	// writer is a terminal and JSON otherwise.
	LogFormat string `yaml:"log_format"`

	// ShutdownTimeout bounds a graceful shutdown before connections are cut.
	ShutdownTimeout time.Duration `yaml:"shutdown_timeout"`
	// FetchMaxWaitMax caps the max wait a client asks for in a Fetch, so a
	// long-poll cannot hold a request (and its connection) indefinitely.
	FetchMaxWaitMax time.Duration `yaml:"fetch_max_wait_max"`
	// ConnectionsMaxIdle closes a connection that sends nothing, or sends
	// a request only partly, for this long (Kafka connections.max.idle.ms),
	// so half-sent frames cannot hold connections and buffers forever.
	ConnectionsMaxIdle time.Duration `yaml:"connections_max_idle"`

	// PageCacheWindow is how many bytes behind each partition log's end
	// stay in the page cache once fsynced; older ones are dropped, so the
	// cache recycles its pages instead of growing (see log.Options.CacheWindow).
	// 0 leaves the page cache to the kernel, as Kafka does.
	PageCacheWindow int64 `yaml:"page_cache_window"`

	// DebugFaultFS opens every partition log on vfs.Fault, which keeps
	// unsynced data in process memory (a SIGKILL then loses it, as a power
	// loss would) and whose disk faults the HTTP endpoints under /debug/fs
	// inject. For fault injection only: slower, and never in production.
	// Set only by the hidden --debug-fault-fs flag, not by the file or
	// the environment.
	DebugFaultFS bool `yaml:"-"`

	// File is the YAML file Load read, empty if none. It is set by Load,
	// never read from the file itself.
	File string `yaml:"-"`
}

// Default returns the built-in defaults. They validate as they are.
func Default() Config {
	return Config{
		NodeID:              1,
		DataDir:             "./data",
		KafkaAddr:           "127.0.0.1:9092",
		AdvertisedKafkaAddr: "",
		HTTPAddr:            "127.0.0.1:9644",
		ClusterID:           "",

		RaftAddr:             "127.0.0.1:9192",
		RaftHeartbeatTimeout: time.Second,

		AutoLeaderRebalance:     true,
		LeaderRebalanceInterval: 30 * time.Second,

		OffsetsTopicPartitions:        16,
		OffsetsTopicReplicationFactor: 3,
		OffsetsRetention:              7 * 24 * time.Hour,
		GroupMinSessionTimeout:        6 * time.Second,
		GroupMaxSessionTimeout:        30 * time.Minute,
		GroupInitialRebalanceDelay:    3 * time.Second,
		GroupMaxSize:                  1000,
		LagInterval:                   15 * time.Second,

		MaxRequestBytes:        100 << 20, // 104857600, Kafka's default
		MaxControlRequestBytes: 1 << 20,

		// Kafka's default is true, and kcat, the console producer and many
		// client examples rely on it in development. Production operators
		// should turn it off so a typo in a topic name is an error, not a
		// new topic.
		AutoCreateTopics:         true,
		DefaultPartitions:        1,
		DefaultReplicationFactor: 1,

		RetentionMs:            7 * 24 * 3600 * 1000, // 604800000, 7 days
		RetentionBytes:         -1,
		SegmentBytes:           1 << 30,
		SegmentMs:              7 * 24 * 3600 * 1000,
		MaxMessageBytes:        1048588, // Kafka's default: 1 MiB + batch overhead
		MessageTimestampType:   TimestampCreateTime,
		CleanupPolicy:          "delete",
		RetentionCheckInterval: 5 * time.Minute,

		LogLevel:  "info",
		LogFormat: LogFormatAuto,

		ShutdownTimeout:    30 * time.Second,
		FetchMaxWaitMax:    30 * time.Second,
		ConnectionsMaxIdle: 10 * time.Minute,
		PageCacheWindow:    8 << 20,
	}
}

// Values of MessageTimestampType.
const (
	TimestampCreateTime    = "CreateTime"
	TimestampLogAppendTime = "LogAppendTime"
)

// Values of LogFormat.
const (
	LogFormatAuto    = "auto"
	LogFormatJSON    = "json"
	LogFormatConsole = "console"
)

// Limits enforced by Validate.
const (
	// MinRequestBytes is the smallest accepted MaxRequestBytes and
	// MaxControlRequestBytes.
	MinRequestBytes = 1024
	// MinSegmentBytes is the smallest accepted SegmentBytes: room for the
	// segment and frame headers (88 bytes) plus a useful amount of data.
	MinSegmentBytes = 1024
	// MaxSegmentBytes is Kafka's limit (segment.bytes is an int).
	MaxSegmentBytes = math.MaxInt32
	// MinMessageBytes is the size of a RecordBatch v2 header: no batch is
	// smaller, so a lower MaxMessageBytes would refuse every produce.
	MinMessageBytes = 61
	// MaxMessageBytesLimit is the largest entry the log stores (1 GiB).
	MaxMessageBytesLimit = 1 << 30
	// MaxDefaultPartitions bounds DefaultPartitions. It applies to topics
	// created implicitly, where a typo would otherwise create that many
	// partition directories; explicit CreateTopics requests may ask for more.
	MaxDefaultPartitions = 10000
)

// AdvertisedAddr is the address given to clients: AdvertisedKafkaAddr, or
// KafkaAddr when that is empty.
func (c Config) AdvertisedAddr() string {
	if c.AdvertisedKafkaAddr != "" {
		return c.AdvertisedKafkaAddr
	}
	return c.KafkaAddr
}

// AdvertisedRaft is the raft address other brokers dial.
func (c Config) AdvertisedRaft() string {
	if c.AdvertisedRaftAddr != "" {
		return c.AdvertisedRaftAddr
	}
	return c.RaftAddr
}

// Voter is one controller voter.
type Voter struct {
	ID       int32
	RaftAddr string
}

// Voters parses ControllerVoters; empty means this broker alone.
func (c Config) Voters() ([]Voter, error) {
	if strings.TrimSpace(c.ControllerVoters) == "" {
		return []Voter{{ID: c.NodeID, RaftAddr: c.AdvertisedRaft()}}, nil
	}
	var out []Voter
	seen := map[int32]bool{}
	for _, item := range strings.Split(c.ControllerVoters, ",") {
		id, addr, ok := strings.Cut(strings.TrimSpace(item), "@")
		n, err := strconv.ParseInt(id, 10, 32)
		if !ok || err != nil || n < 0 {
			return nil, fmt.Errorf("%q is not id@host:port", item)
		}
		if _, _, err := net.SplitHostPort(addr); err != nil {
			return nil, fmt.Errorf("%q: %v", item, err)
		}
		if seen[int32(n)] {
			return nil, fmt.Errorf("voter %d is listed twice", n)
		}
		seen[int32(n)] = true
		out = append(out, Voter{ID: int32(n), RaftAddr: addr})
	}
	return out, nil
}

// FieldError is one invalid field. Validate returns them joined.
type FieldError struct {
	Field  string // the YAML key
	Value  any
	Reason string
}

func (e *FieldError) Error() string {
	return fmt.Sprintf("config: %s = %s: %s", e.Field, formatValue(e.Value), e.Reason)
}

// Unwrap makes errors.Is(err, ErrInvalid) true.
func (e *FieldError) Unwrap() error { return ErrInvalid }

func formatValue(v any) string {
	switch v := v.(type) {
	case string:
		return strconv.Quote(v)
	case time.Duration:
		return v.String()
	default:
		return fmt.Sprint(v)
	}
}

// Validate checks every field and returns all problems at once, joined with
// errors.Join; each is a *FieldError naming the YAML key and the bad value.
func (c *Config) Validate() error {
	var errs []error
	bad := func(field string, value any, format string, args ...any) {
		errs = append(errs, &FieldError{Field: field, Value: value, Reason: fmt.Sprintf(format, args...)})
	}

	if c.NodeID < 0 {
		bad("node_id", c.NodeID, "must be >= 0")
	}
	if c.DataDir == "" {
		bad("data_dir", c.DataDir, "must not be empty")
	}

	kafkaOK := checkListenAddr(c.KafkaAddr, "kafka_addr", bad)
	if c.AdvertisedKafkaAddr != "" {
		checkAdvertisedAddr(c.AdvertisedKafkaAddr, bad)
	} else if kafkaOK {
		if host, _, _ := net.SplitHostPort(c.KafkaAddr); isUnspecifiedHost(host) {
			bad("advertised_kafka_addr", c.AdvertisedKafkaAddr,
				"must be set when kafka_addr %q listens on all interfaces: clients need an address they can reach", c.KafkaAddr)
		}
	}
	httpOK := checkListenAddr(c.HTTPAddr, "http_addr", bad)
	if kafkaOK && httpOK && sameFixedAddr(c.KafkaAddr, c.HTTPAddr) {
		bad("http_addr", c.HTTPAddr, "must differ from kafka_addr")
	}
	raftOK := checkListenAddr(c.RaftAddr, "raft_addr", bad)
	if c.AdvertisedRaftAddr != "" {
		if _, _, err := net.SplitHostPort(c.AdvertisedRaftAddr); err != nil {
			bad("advertised_raft_addr", c.AdvertisedRaftAddr, "must be host:port")
		}
	} else if raftOK {
		if host, _, _ := net.SplitHostPort(c.RaftAddr); isUnspecifiedHost(host) {
			bad("advertised_raft_addr", c.AdvertisedRaftAddr,
				"must be set when raft_addr %q listens on all interfaces: other brokers need an address they can reach", c.RaftAddr)
		}
	}
	if raftOK && kafkaOK && sameFixedAddr(c.KafkaAddr, c.RaftAddr) {
		bad("raft_addr", c.RaftAddr, "must differ from kafka_addr")
	}
	if raftOK && httpOK && sameFixedAddr(c.HTTPAddr, c.RaftAddr) {
		bad("raft_addr", c.RaftAddr, "must differ from http_addr")
	}
	if voters, err := c.Voters(); err != nil {
		bad("controller_voters", c.ControllerVoters, "%v", err)
	} else if n := len(voters); n != 1 && n != 3 && n != 5 {
		bad("controller_voters", c.ControllerVoters, "%d voters; use 1, 3 or 5 (an even count tolerates no more failures than one fewer)", n)
	}
	if c.RaftHeartbeatTimeout < 50*time.Millisecond || c.RaftHeartbeatTimeout > time.Minute {
		bad("raft_heartbeat_timeout", c.RaftHeartbeatTimeout, "must be in [50ms, 1m]")
	}
	if c.OffsetsTopicPartitions < 1 || c.OffsetsTopicPartitions > 1000 {
		bad("offsets_topic_partitions", c.OffsetsTopicPartitions, "must be in [1, 1000]")
	}
	if c.OffsetsTopicReplicationFactor < 1 || c.OffsetsTopicReplicationFactor > 5 {
		bad("offsets_topic_replication_factor", c.OffsetsTopicReplicationFactor, "must be in [1, 5]")
	}
	if c.OffsetsRetention < time.Minute {
		bad("offsets_retention", c.OffsetsRetention, "must be >= 1m")
	}
	if c.GroupMinSessionTimeout < 100*time.Millisecond {
		bad("group_min_session_timeout", c.GroupMinSessionTimeout, "must be >= 100ms")
	}
	if c.GroupMaxSessionTimeout < c.GroupMinSessionTimeout {
		bad("group_max_session_timeout", c.GroupMaxSessionTimeout, "must be >= group_min_session_timeout")
	}
	if c.GroupInitialRebalanceDelay < 0 {
		bad("group_initial_rebalance_delay", c.GroupInitialRebalanceDelay, "must be >= 0")
	}
	if c.GroupMaxSize < 1 || c.GroupMaxSize > 100000 {
		bad("group_max_size", c.GroupMaxSize, "must be in [1, 100000]")
	}
	if c.LagInterval < 100*time.Millisecond {
		bad("lag_interval", c.LagInterval, "must be >= 100ms")
	}
	if c.LeaderRebalanceInterval < 100*time.Millisecond {
		bad("leader_rebalance_interval", c.LeaderRebalanceInterval, "must be >= 100ms")
	}
	if c.ClusterID != "" {
		if b, err := base64.RawURLEncoding.DecodeString(c.ClusterID); err != nil || len(b) != 16 {
			bad("cluster_id", c.ClusterID, "must be a Kafka cluster id: 16 bytes in unpadded URL-safe base64 (22 characters), or empty to generate one")
		}
	}

	if c.MaxRequestBytes < MinRequestBytes {
		bad("max_request_bytes", c.MaxRequestBytes, "must be >= %d", MinRequestBytes)
	}
	switch {
	case c.MaxControlRequestBytes < MinRequestBytes:
		bad("max_control_request_bytes", c.MaxControlRequestBytes, "must be >= %d", MinRequestBytes)
	case c.MaxControlRequestBytes > c.MaxRequestBytes && c.MaxRequestBytes >= MinRequestBytes:
		bad("max_control_request_bytes", c.MaxControlRequestBytes, "must be <= max_request_bytes (%d)", c.MaxRequestBytes)
	}

	if c.DefaultPartitions < 1 || c.DefaultPartitions > MaxDefaultPartitions {
		bad("default_partitions", c.DefaultPartitions, "must be in [1, %d]", MaxDefaultPartitions)
	}
	if c.DefaultReplicationFactor < 1 {
		bad("default_replication_factor", c.DefaultReplicationFactor, "must be >= 1")
	}

	if c.RetentionMs < -1 {
		bad("retention_ms", c.RetentionMs, "must be >= 0, or -1 for unlimited")
	}
	if c.RetentionBytes < -1 {
		bad("retention_bytes", c.RetentionBytes, "must be >= 0, or -1 for unlimited")
	}
	segmentOK := c.SegmentBytes >= MinSegmentBytes && c.SegmentBytes <= MaxSegmentBytes
	if !segmentOK {
		bad("segment_bytes", c.SegmentBytes, "must be in [%d, %d]", MinSegmentBytes, MaxSegmentBytes)
	}
	if c.SegmentMs < 1 {
		bad("segment_ms", c.SegmentMs, "must be >= 1")
	}
	switch {
	case c.MaxMessageBytes < MinMessageBytes || c.MaxMessageBytes > MaxMessageBytesLimit:
		bad("max_message_bytes", c.MaxMessageBytes, "must be in [%d, %d]", MinMessageBytes, MaxMessageBytesLimit)
	case c.MaxRequestBytes >= MinRequestBytes && c.MaxMessageBytes > c.MaxRequestBytes:
		bad("max_message_bytes", c.MaxMessageBytes, "must be <= max_request_bytes (%d): a batch this large could never arrive", c.MaxRequestBytes)
	case segmentOK && int64(c.MaxMessageBytes) > c.SegmentBytes:
		bad("max_message_bytes", c.MaxMessageBytes, "must be <= segment_bytes (%d): a batch must fit in one segment", c.SegmentBytes)
	}
	switch c.MessageTimestampType {
	case TimestampCreateTime, TimestampLogAppendTime:
	default:
		bad("message_timestamp_type", c.MessageTimestampType, "must be %s or %s", TimestampCreateTime, TimestampLogAppendTime)
	}
	switch c.CleanupPolicy {
	case "delete", "compact", "compact,delete", "delete,compact":
	default:
		bad("cleanup_policy", c.CleanupPolicy, `must be "delete", "compact", "compact,delete" or "delete,compact"`)
	}
	if c.RetentionCheckInterval < time.Millisecond {
		bad("retention_check_interval", c.RetentionCheckInterval, "must be >= 1ms")
	}

	switch c.LogLevel {
	case "trace", "debug", "info", "warn", "error":
	default:
		bad("log_level", c.LogLevel, "must be trace, debug, info, warn or error")
	}
	switch c.LogFormat {
	case LogFormatAuto, LogFormatJSON, LogFormatConsole:
	default:
		bad("log_format", c.LogFormat, "must be auto, json or console")
	}

	if c.ShutdownTimeout <= 0 {
		bad("shutdown_timeout", c.ShutdownTimeout, "must be > 0")
	}
	if c.ConnectionsMaxIdle < time.Second {
		bad("connections_max_idle", c.ConnectionsMaxIdle, "must be >= 1s")
	}
	if c.PageCacheWindow < 0 {
		bad("page_cache_window", c.PageCacheWindow, "must be >= 0 (0 keeps everything cached)")
	}
	if c.FetchMaxWaitMax < time.Millisecond {
		bad("fetch_max_wait_max", c.FetchMaxWaitMax, "must be >= 1ms")
	}
	return errors.Join(errs...)
}

type badFunc func(field string, value any, format string, args ...any)

// checkListenAddr checks a host:port to bind; an empty host or port 0 are
// allowed (all interfaces; a port picked by the kernel).
func checkListenAddr(addr, field string, bad badFunc) bool {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		bad(field, addr, "must be host:port: %s", addrReason(err))
		return false
	}
	if _, err := parsePort(port); err != nil {
		bad(field, addr, "%v", err)
		return false
	}
	return true
}

// checkAdvertisedAddr checks a host:port clients connect to: a concrete
// host and a non-zero port.
func checkAdvertisedAddr(addr string, bad badFunc) {
	const field = "advertised_kafka_addr"
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		bad(field, addr, "must be host:port: %s", addrReason(err))
		return
	}
	p, err := parsePort(port)
	switch {
	case err != nil:
		bad(field, addr, "%v", err)
	case p == 0:
		bad(field, addr, "port must not be 0")
	case isUnspecifiedHost(host):
		bad(field, addr, "host must be one clients can reach, not empty or an all-interfaces address")
	}
}

// addrReason is the reason in a net.SplitHostPort error, without the
// address it repeats.
func addrReason(err error) string {
	var ae *net.AddrError
	if errors.As(err, &ae) {
		return ae.Err
	}
	return err.Error()
}

func parsePort(port string) (uint16, error) {
	p, err := strconv.ParseUint(port, 10, 16)
	if err != nil {
		return 0, fmt.Errorf("port %q must be a number in [0, 65535]", port)
	}
	return uint16(p), nil
}

func isUnspecifiedHost(host string) bool {
	if host == "" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsUnspecified()
}

// sameFixedAddr reports whether two valid listen addresses would collide: the
// same non-zero port on the same host (or either on all interfaces).
func sameFixedAddr(a, b string) bool {
	ha, pa, _ := net.SplitHostPort(a)
	hb, pb, _ := net.SplitHostPort(b)
	na, _ := parsePort(pa)
	nb, _ := parsePort(pb)
	if na == 0 || na != nb {
		return false
	}
	return ha == hb || isUnspecifiedHost(ha) || isUnspecifiedHost(hb)
}
