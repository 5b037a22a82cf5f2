package client

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// Option configures a Client. Options are checked by New, which reports
// every invalid one at once.
type Option func(*options)

// Codec is a batch compression codec.
type Codec string

// Compression codecs. Batches are compressed once by the producer and
// stored and served as produced, so the codec is a producer-side trade of
// CPU for bytes on the wire and on disk.
const (
	CompressionNone   Codec = "none"   // no CPU; the most bytes
	CompressionGzip   Codec = "gzip"   // compatible everywhere; the slowest
	CompressionSnappy Codec = "snappy" // fast, modest ratio
	CompressionLZ4    Codec = "lz4"    // fast, modest ratio; a good default for throughput
	CompressionZstd   Codec = "zstd"   // the best ratio for moderate CPU
)

// Acks says when a produce is acknowledged.
type Acks int8

// Acknowledgement levels.
const (
	// AcksAll waits until a Raft majority of the partition's replicas has
	// fsynced the batch: acknowledged records survive the loss of any
	// minority of replicas. The default, and required for idempotence.
	AcksAll Acks = -1
	// AcksLeader waits for the leader's own fsync only: a record is lost
	// if the leader dies before a majority has it.
	AcksLeader Acks = 1
	// AcksNone does not wait at all: records may be lost silently.
	AcksNone Acks = 0
)

func (a Acks) String() string {
	switch a {
	case AcksAll:
		return "all"
	case AcksLeader:
		return "leader"
	case AcksNone:
		return "none"
	}
	return fmt.Sprintf("Acks(%d)", int8(a))
}

// Defaults. Linger is short because an idle producer should not add
// latency; batches still form while a request is in flight.
const (
	DefaultClientID        = "sluice-go"
	DefaultLinger          = 5 * time.Millisecond
	DefaultBatchMaxBytes   = 1 << 20
	DefaultRequestTimeout  = 10 * time.Second
	DefaultDeliveryTimeout = 2 * time.Minute
)

type options struct {
	brokers         []string
	clientID        string
	codec           Codec
	linger          time.Duration
	batchMaxBytes   int32
	acks            Acks
	idempotent      bool
	requestTimeout  time.Duration
	deliveryTimeout time.Duration
	adminAddrs      []string
	logger          *slog.Logger
	kgoOpts         []kgo.Opt

	errs []error
}

func defaultOptions() options {
	return options{
		clientID:        DefaultClientID,
		codec:           CompressionNone,
		linger:          DefaultLinger,
		batchMaxBytes:   DefaultBatchMaxBytes,
		acks:            AcksAll,
		idempotent:      true,
		requestTimeout:  DefaultRequestTimeout,
		deliveryTimeout: DefaultDeliveryTimeout,
	}
}

func (o *options) fail(format string, args ...any) {
	o.errs = append(o.errs, fmt.Errorf("%w: "+format, append([]any{ErrInvalidOption}, args...)...))
}

// Brokers sets the Kafka bootstrap addresses ("host:port"). Required.
func Brokers(addrs ...string) Option {
	return func(o *options) {
		for _, a := range addrs {
			if _, _, err := net.SplitHostPort(a); err != nil {
				o.fail("broker address %q: want host:port", a)
				continue
			}
			o.brokers = append(o.brokers, a)
		}
	}
}

// ClientID names this client in broker logs and group descriptions.
func ClientID(id string) Option {
	return func(o *options) {
		if id == "" {
			o.fail("client id: want a non-empty string")
			return
		}
		o.clientID = id
	}
}

// Compression sets the batch codec (default none).
func Compression(c Codec) Option {
	return func(o *options) {
		switch c {
		case CompressionNone, CompressionGzip, CompressionSnappy, CompressionLZ4, CompressionZstd:
			o.codec = c
		default:
			o.fail("compression %q: want none, gzip, snappy, lz4 or zstd", string(c))
		}
	}
}

// Linger sets how long a partition's batch waits for more records before
// it is sent (default 5 ms). Longer lingers make larger batches (fewer
// requests and fsyncs per record) at the price of that much latency for
// a lone record. 0 sends at once.
func Linger(d time.Duration) Option {
	return func(o *options) {
		if d < 0 || d > time.Minute {
			o.fail("linger %v: want 0 to 1m", d)
			return
		}
		o.linger = d
	}
}

// BatchMaxBytes caps a partition's batch (default 1 MiB, the broker's
// default max.message.bytes). A larger cap only helps if the topic's
// max.message.bytes is raised too.
func BatchMaxBytes(n int) Option {
	return func(o *options) {
		if n < 1<<10 || n > 1<<30 {
			o.fail("batch max bytes %d: want 1 KiB to 1 GiB", n)
			return
		}
		o.batchMaxBytes = int32(n)
	}
}

// RequiredAcks sets when produces are acknowledged (default AcksAll).
// Weaker levels need Idempotence(false).
func RequiredAcks(a Acks) Option {
	return func(o *options) {
		switch a {
		case AcksAll, AcksLeader, AcksNone:
			o.acks = a
		default:
			o.fail("acks %d: want AcksAll (-1), AcksLeader (1) or AcksNone (0)", int8(a))
		}
	}
}

// Idempotence turns the idempotent producer on or off (default on). With
// it, the broker drops batches the client retries after a lost answer or
// a leader change, so retries never duplicate or reorder records within a
// partition. Turning it off only makes sense with weaker acks.
func Idempotence(on bool) Option {
	return func(o *options) { o.idempotent = on }
}

// RequestTimeout bounds how long the broker may take to answer a produce
// and how long the client waits beyond that (default 10 s). A failed or
// timed-out request is retried until the DeliveryTimeout.
func RequestTimeout(d time.Duration) Option {
	return func(o *options) {
		if d < 100*time.Millisecond || d > 10*time.Minute {
			o.fail("request timeout %v: want 100ms to 10m", d)
			return
		}
		o.requestTimeout = d
	}
}

// DeliveryTimeout bounds how long a record may wait, retries included,
// from Produce until its callback gets an error (default 2 m); a deadline
// on Produce's context takes its place. A leader failover takes a few
// seconds; a shorter timeout turns outages into errors sooner. With
// idempotence a record already sent is failed only once its outcome is
// known, so the bound can be exceeded while a broker is unreachable.
func DeliveryTimeout(d time.Duration) Option {
	return func(o *options) {
		if d < time.Second {
			o.fail("delivery timeout %v: want 1s or more", d)
			return
		}
		o.deliveryTimeout = d
	}
}

// AdminAddr sets the brokers' HTTP admin addresses ("host:port" or
// "http://host:port"), tried in order, for the cluster operations of
// Admin (Cluster, MovePartition, Decommission, ...). Kafka-protocol admin
// calls do not need it.
func AdminAddr(addrs ...string) Option {
	return func(o *options) {
		for _, a := range addrs {
			u, err := adminURL(a)
			if err != nil {
				o.fail("admin address %q: %v", a, err)
				continue
			}
			o.adminAddrs = append(o.adminAddrs, u)
		}
	}
}

func adminURL(a string) (string, error) {
	if !strings.Contains(a, "://") {
		a = "http://" + a
	}
	u, err := url.Parse(a)
	switch {
	case err != nil:
		return "", err
	case u.Scheme != "http" && u.Scheme != "https":
		return "", errors.New("want http or https")
	case u.Host == "" || u.Port() == "":
		return "", errors.New("want host:port")
	}
	return strings.TrimSuffix(u.String(), "/"), nil
}

// Logger sends the client's and franz-go's logs to l (default: none; the
// package never prints). For zerolog: slog.New(zerolog.NewSlogHandler(zl)).
func Logger(l *slog.Logger) Option {
	return func(o *options) { o.logger = l }
}

// KgoOptions appends raw franz-go options after Sluice's, for settings
// this package does not wrap (TLS, SASL, hooks). They override ours.
func KgoOptions(opts ...kgo.Opt) Option {
	return func(o *options) { o.kgoOpts = append(o.kgoOpts, opts...) }
}

// validate checks combinations, after every option has been applied.
func (o *options) validate() error {
	if len(o.brokers) == 0 && len(o.errs) == 0 {
		o.fail("no brokers: use client.Brokers(\"host:9092\")")
	}
	if o.idempotent && o.acks != AcksAll {
		o.fail("acks=%v with idempotence: idempotent writes need AcksAll; add client.Idempotence(false) to use weaker acks", o.acks)
	}
	return errors.Join(o.errs...)
}

// kgoBase maps the options to franz-go's, for producing and admin.
func (o *options) kgoBase() []kgo.Opt {
	opts := []kgo.Opt{
		kgo.SeedBrokers(o.brokers...),
		kgo.ClientID(o.clientID),
		kgo.ProduceRequestTimeout(o.requestTimeout),
		kgo.RequestTimeoutOverhead(o.requestTimeout),
		kgo.ProducerLinger(o.linger),
		kgo.ProducerBatchMaxBytes(o.batchMaxBytes),
		kgo.RecordPartitioner(kafkaPartitioner()),
	}
	switch o.codec {
	case CompressionGzip:
		opts = append(opts, kgo.ProducerBatchCompression(kgo.GzipCompression()))
	case CompressionSnappy:
		opts = append(opts, kgo.ProducerBatchCompression(kgo.SnappyCompression()))
	case CompressionLZ4:
		opts = append(opts, kgo.ProducerBatchCompression(kgo.Lz4Compression()))
	case CompressionZstd:
		opts = append(opts, kgo.ProducerBatchCompression(kgo.ZstdCompression()))
	default:
		opts = append(opts, kgo.ProducerBatchCompression(kgo.NoCompression()))
	}
	switch o.acks {
	case AcksLeader:
		opts = append(opts, kgo.RequiredAcks(kgo.LeaderAck()))
	case AcksNone:
		opts = append(opts, kgo.RequiredAcks(kgo.NoAck()))
	default:
		opts = append(opts, kgo.RequiredAcks(kgo.AllISRAcks()))
	}
	if !o.idempotent {
		opts = append(opts, kgo.DisableIdempotentWrite())
	}
	if o.logger != nil {
		opts = append(opts, kgo.WithLogger(slogLogger{o.logger}))
	}
	return opts
}
