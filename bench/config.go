package bench

import (
	"fmt"
	"strings"
	"time"
)

// Workload is what a run does.
type Workload string

// Workloads.
const (
	// Produce sends messages and measures acknowledgements.
	Produce Workload = "produce"
	// Consume reads a topic's backlog from its start; it first fills the
	// topic up to Config.Messages when the topic holds fewer.
	Consume Workload = "consume"
	// EndToEnd produces and consumes at once and measures each message from
	// its send time to its arrival at a consumer.
	EndToEnd Workload = "e2e"
)

// Acks is the producer's acknowledgement level.
type Acks string

// Acknowledgement levels, as Kafka's acks=-1, 1 and 0.
const (
	AcksAll    Acks = "all"
	AcksLeader Acks = "leader"
	AcksNone   Acks = "none"
)

// KeyDist is how message keys are drawn from the Config.Keys keys.
type KeyDist string

// Key distributions.
const (
	Uniform KeyDist = "uniform"
	Zipf    KeyDist = "zipf"
)

// Compression codecs a producer can use.
var Compressions = []string{"none", "gzip", "snappy", "lz4", "zstd"}

// HeaderSize is the bytes each message starts with: its intended send time
// (unix nanoseconds) and the run's tag, both big-endian uint64. Messages
// shorter than this carry no timestamp, so EndToEnd needs at least this.
const HeaderSize = 16

// Config describes one run. Zero values are not defaults: start from
// DefaultConfig and change what differs.
type Config struct {
	Workload Workload `json:"workload"`
	// Brokers are the seed addresses (host:port).
	Brokers []string `json:"brokers"`
	Topic   string   `json:"topic"`
	// Reuse requires Topic to exist and never creates it; otherwise a
	// missing topic is created with Partitions and ReplicationFactor and an
	// existing one is used as it is (Result.Notes says so).
	Reuse             bool `json:"reuse"`
	Partitions        int  `json:"partitions"`
	ReplicationFactor int  `json:"replication_factor"`

	// MessageSize is each value's length in bytes; past the header, half
	// is random and half repeated letters, so it compresses about 2:1.
	MessageSize int `json:"message_size"`
	// Keys is the number of distinct keys; 0 sends no keys (the client's
	// sticky partitioner spreads them).
	Keys    int     `json:"keys"`
	KeyDist KeyDist `json:"key_distribution"`
	// ZipfS is the zipf exponent (> 1); larger is more skewed.
	ZipfS float64 `json:"zipf_s,omitempty"`

	Acks        Acks          `json:"acks"`
	Compression string        `json:"compression"`
	Linger      time.Duration `json:"linger_ns"`
	// BatchMaxBytes caps one producer batch (franz-go ProducerBatchMaxBytes).
	BatchMaxBytes int `json:"batch_max_bytes"`

	Producers int `json:"producers"`
	Consumers int `json:"consumers"`
	// ShareGroup, if set, makes the consumers (Consume, EndToEnd) members
	// of this KIP-932 share group instead of readers of assigned
	// partitions: records are acquired, delivered and acknowledged
	// (ACCEPT) one by one, and there may be more consumers than
	// partitions. The group is set to start at the topic's start.
	ShareGroup string `json:"share_group,omitempty"`

	// Messages is how many messages to send (Produce, EndToEnd) or read
	// (Consume); 0 means until Duration.
	Messages int64 `json:"messages"`
	// Duration bounds the sending (or reading) time; 0 means until
	// Messages. With both, whichever comes first.
	Duration time.Duration `json:"duration_ns"`

	// Rate is the open-loop target in messages per second over all
	// producers; 0 means maximum throughput with at most MaxInFlight
	// unacknowledged messages per producer.
	Rate        float64 `json:"rate"`
	MaxInFlight int     `json:"max_in_flight"`

	// DrainTimeout bounds how long consumers may take, after the producers
	// finish, to read what was acknowledged (EndToEnd) or to make progress
	// (Consume).
	DrainTimeout time.Duration `json:"drain_timeout_ns"`
	// ConnectTimeout bounds the first request to the brokers.
	ConnectTimeout time.Duration `json:"connect_timeout_ns"`
	// Interval is the period of Progress calls and Result.Series points.
	Interval time.Duration `json:"interval_ns"`

	// Progress, if set, is called once per Interval from one goroutine.
	Progress func(Sample) `json:"-"`
}

// DefaultConfig returns the defaults sluice-bench's flags use: the
// settings of docs/BENCHMARKS.md's headline runs.
func DefaultConfig() Config {
	return Config{
		Workload:          Produce,
		Brokers:           []string{"127.0.0.1:9092"},
		Topic:             fmt.Sprintf("sluice-bench-%d", time.Now().Unix()),
		Partitions:        1,
		ReplicationFactor: 1,
		MessageSize:       1024,
		Keys:              1000,
		KeyDist:           Uniform,
		ZipfS:             1.2,
		Acks:              AcksAll,
		Compression:       "none",
		Linger:            2 * time.Millisecond,
		BatchMaxBytes:     1_000_012, // franz-go's and Kafka's default
		Producers:         1,
		Consumers:         1,
		Messages:          0,
		Duration:          10 * time.Second,
		MaxInFlight:       2000,
		DrainTimeout:      30 * time.Second,
		ConnectTimeout:    15 * time.Second,
		Interval:          time.Second,
	}
}

// Validate reports the first problem with c, wrapping ErrConfig.
func (c *Config) Validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrConfig, fmt.Sprintf(format, args...))
	}
	switch c.Workload {
	case Produce, Consume, EndToEnd:
	default:
		return bad("workload %q: want produce, consume or e2e", c.Workload)
	}
	if len(c.Brokers) == 0 {
		return bad("no brokers")
	}
	for _, b := range c.Brokers {
		if strings.TrimSpace(b) == "" {
			return bad("empty broker address")
		}
	}
	if c.Topic == "" {
		return bad("empty topic")
	}
	if c.Partitions < 1 {
		return bad("partitions %d: want at least 1", c.Partitions)
	}
	if c.ReplicationFactor < 1 {
		return bad("replication factor %d: want at least 1", c.ReplicationFactor)
	}
	if c.MessageSize < 0 {
		return bad("message size %d: want 0 or more", c.MessageSize)
	}
	if c.Workload == EndToEnd && c.MessageSize < HeaderSize {
		return bad("message size %d: e2e needs at least %d bytes to carry the send time", c.MessageSize, HeaderSize)
	}
	if c.Keys < 0 {
		return bad("keys %d: want 0 or more", c.Keys)
	}
	switch c.KeyDist {
	case Uniform:
	case Zipf:
		if c.ZipfS <= 1 {
			return bad("zipf exponent %g: want more than 1", c.ZipfS)
		}
	default:
		return bad("key distribution %q: want uniform or zipf", c.KeyDist)
	}
	switch c.Acks {
	case AcksAll, AcksLeader, AcksNone:
	default:
		return bad("acks %q: want all, leader or none", c.Acks)
	}
	if !validCompression(c.Compression) {
		return bad("compression %q: want one of %s", c.Compression, strings.Join(Compressions, ", "))
	}
	if c.Linger < 0 {
		return bad("linger %v: want 0 or more", c.Linger)
	}
	if c.BatchMaxBytes < 1024 {
		return bad("batch max bytes %d: want at least 1024", c.BatchMaxBytes)
	}
	if c.Producers < 1 && c.Workload != Consume {
		return bad("producers %d: want at least 1", c.Producers)
	}
	if c.Consumers < 1 && c.Workload != Produce {
		return bad("consumers %d: want at least 1", c.Consumers)
	}
	if c.Messages < 0 || c.Duration < 0 {
		return bad("messages and duration must not be negative")
	}
	if c.Messages == 0 && c.Duration == 0 {
		return bad("neither a message count nor a duration: the run would not end")
	}
	if c.Rate < 0 {
		return bad("rate %g: want 0 (maximum throughput) or more", c.Rate)
	}
	if c.Rate == 0 && c.MaxInFlight < 1 {
		return bad("max in flight %d: want at least 1", c.MaxInFlight)
	}
	if c.DrainTimeout <= 0 {
		return bad("drain timeout %v: want more than 0", c.DrainTimeout)
	}
	if c.ConnectTimeout <= 0 {
		return bad("connect timeout %v: want more than 0", c.ConnectTimeout)
	}
	if c.Interval <= 0 {
		return bad("interval %v: want more than 0", c.Interval)
	}
	return nil
}

func validCompression(s string) bool {
	for _, c := range Compressions {
		if s == c {
			return true
		}
	}
	return false
}
