// Package partition is one Kafka partition over a segment log, as the
// state of one replica of its Raft group (package replication): produce
// validation, the idempotent-producer table, the high watermark and the
// waiters woken when it moves, Fetch, ListOffsets, and the cleanup policy
// (retention cut, compaction).
//
// A Partition never appends to its log and never moves its log start by
// itself: the log is the group's Raft log, written by replication's
// LogStore, and the group's state machine (replication.FSM) sets the high
// watermark, the log start and the committed producer table as entries
// commit (replicated.go). Writes (produce, DeleteRecords, retention) are
// proposed by replication.Replica, which validates with Prepare and checks
// producer sequences with Sequence first.
//
// Earlier builds also had a standalone mode that appended by itself and
// kept its producer table in a producers.snapshot file in the partition's
// directory. That file is no longer read, written or removed: the log
// ignores files it does not know, and the producer table comes from the
// group's snapshot manifests and the entries raft replays after them.
//
// Errors returned to the broker are *kerr.Error values, so they map onto the
// wire's error codes unchanged.
package partition

import (
	"errors"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/sluicemq/sluice/log"
	"github.com/sluicemq/sluice/log/batch"
	"github.com/sluicemq/sluice/log/vfs"
	"github.com/sluicemq/sluice/partition/share"
)

// TimestampType is a topic's message.timestamp.type.
type TimestampType int8

const (
	CreateTime    TimestampType = 0
	LogAppendTime TimestampType = 1
)

// CleanupPolicy is a topic's cleanup.policy.
type CleanupPolicy int8

const (
	// CleanupDelete (the zero value, Kafka's default) deletes whole old
	// segments by retention.ms and retention.bytes.
	CleanupDelete CleanupPolicy = iota
	// CleanupCompact keeps the latest record of every key (log compaction)
	// and deletes nothing by age or size.
	CleanupCompact
	// CleanupCompactDelete does both.
	CleanupCompactDelete
)

// Compacts reports whether the policy includes compact.
func (c CleanupPolicy) Compacts() bool { return c == CleanupCompact || c == CleanupCompactDelete }

// Deletes reports whether the policy includes delete.
func (c CleanupPolicy) Deletes() bool { return c != CleanupCompact }

// Config is the part of a topic's configuration a partition enforces.
type Config struct {
	MaxMessageBytes int32         // max.message.bytes: largest batch accepted
	TimestampType   TimestampType // message.timestamp.type
	Retention       log.Retention // retention.bytes, retention.ms
	SegmentBytes    int64         // segment.bytes
	SegmentAge      time.Duration // segment.ms
	CleanupPolicy   CleanupPolicy // cleanup.policy

	// Compaction (used when CleanupPolicy compacts); zero values mean zero.
	DeleteRetention        time.Duration // delete.retention.ms: tombstones kept this long
	MinCompactionLag       time.Duration // min.compaction.lag.ms: younger records not cleaned
	MinCleanableDirtyRatio float64       // min.cleanable.dirty.ratio: clean when this share is dirty
}

// Options are a partition's process-level settings.
type Options struct {
	FS           vfs.FS // default vfs.OS{}
	Logger       *zerolog.Logger
	Now          func() time.Time // default time.Now
	MaxProducers int              // idempotent producers remembered; default 10000
	CacheWindow  int64            // log.Options.CacheWindow: synced bytes kept in the page cache; 0 all
}

// Partition is one partition of one topic. It is safe for concurrent use.
type Partition struct {
	topic string
	index int32
	log   *log.Log
	cfg   atomic.Pointer[Config]
	now   func() time.Time
	lg    zerolog.Logger

	// mu guards the producer table and the leader's in-flight proposals
	// per producer id. The proposer (replication.Replica) orders proposals
	// with its own lock; mu is held only briefly.
	mu        sync.Mutex
	producers *producers
	inflight  map[int64][]inflightBatch

	// The committed high watermark and log start, set by the state
	// machine (replicated.go).
	hw    atomic.Int64
	start atomic.Int64

	hwMu sync.Mutex
	hwCh chan struct{} // closed and replaced when the high watermark moves

	sharesMu sync.Mutex
	shares   map[string]*share.Partition // committed share-group states (shares.go)
}

// OpenReplicated opens (or creates) the partition stored in dir as a
// replica: its log is the Raft log of the replica's group, it never
// appends by itself, and its high watermark, log start and producer table
// start empty (high watermark 0) until the state machine sets them.
func OpenReplicated(dir, topic string, index int32, cfg Config, opts Options) (*Partition, error) {
	if opts.FS == nil {
		opts.FS = vfs.OS{}
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.MaxProducers <= 0 {
		opts.MaxProducers = 10000
	}
	lg := zerolog.Nop()
	if opts.Logger != nil {
		lg = opts.Logger.With().Str("topic", topic).Int32("partition", index).Logger()
	}
	// VerifyOnOpen: a replica whose committed (sealed) data was damaged
	// must refuse to open, so that it neither votes nor leads until it is
	// repaired from its peers; a trusted index alone would let a bit flip
	// open and surface only at read. It costs one CRC read of the log.
	l, err := log.Open(dir, log.Options{
		FS: opts.FS, Logger: &lg, SegmentBytes: cfg.SegmentBytes, SegmentAge: cfg.SegmentAge, Now: opts.Now,
		VerifyOnOpen: true, CacheWindow: opts.CacheWindow,
	})
	if err != nil {
		return nil, err
	}
	p := &Partition{
		topic: topic, index: index, log: l, now: opts.Now, lg: lg,
		producers: newProducers(opts.MaxProducers), inflight: map[int64][]inflightBatch{},
		hwCh: make(chan struct{}),
	}
	p.cfg.Store(&cfg)
	return p, nil
}

// Topic is the partition's topic name.
func (p *Partition) Topic() string { return p.topic }

// Index is the partition number.
func (p *Partition) Index() int32 { return p.index }

// Log exposes the underlying log (for admin and metrics).
func (p *Partition) Log() *log.Log { return p.log }

// Config returns the partition's current configuration.
func (p *Partition) Config() Config { return *p.cfg.Load() }

// SetConfig applies a changed topic configuration.
func (p *Partition) SetConfig(cfg Config) error {
	if err := p.log.SetSegmentLimits(cfg.SegmentBytes, cfg.SegmentAge); err != nil {
		return err
	}
	p.cfg.Store(&cfg)
	return nil
}

// HighWatermark is the offset below which records are committed and
// readable: the end of the last committed and applied batch. The log may
// hold entries past it (stored, not yet committed or applied).
func (p *Partition) HighWatermark() int64 { return p.hw.Load() }

// LogStartOffset is the first readable offset: the replicated log start,
// which the segment files may lag behind (see SetLogStart).
func (p *Partition) LogStartOffset() int64 {
	return max(p.start.Load(), p.log.StartOffset())
}

// Changed returns a channel closed the next time the high watermark moves
// (fetch long-polls wait on it).
func (p *Partition) Changed() <-chan struct{} {
	p.hwMu.Lock()
	defer p.hwMu.Unlock()
	return p.hwCh
}

func (p *Partition) notify() {
	p.hwMu.Lock()
	close(p.hwCh)
	p.hwCh = make(chan struct{})
	p.hwMu.Unlock()
}

// ProduceResult is a successful produce's answer (replication.Replica's
// Produce).
type ProduceResult struct {
	BaseOffset     int64
	LogAppendTime  int64 // -1 unless the topic uses LogAppendTime
	LogStartOffset int64
}

// Prepared is a produced batch that passed validation.
type Prepared struct {
	Batch         []byte       // the batch, LogAppendTime stamped when the topic uses it
	Header        batch.Header // its parsed header
	LogAppendTime int64        // -1 unless the topic uses LogAppendTime
}

// Prepare validates records (exactly one RecordBatch v2, as Kafka requires
// of a produce request's partition data) against the topic's configuration
// and stamps LogAppendTime into it (in place) when the topic uses it.
// Errors are *kerr.Error. The leader calls it before proposing
// (replication.Replica): an invalid batch must never reach the Raft log.
func (p *Partition) Prepare(records []byte) (Prepared, error) {
	cfg := p.cfg.Load()
	if len(records) > int(cfg.MaxMessageBytes) {
		return Prepared{}, kerr.MessageTooLarge
	}
	batches, err := batch.SplitBatches(records)
	if err != nil {
		if len(batches) == 0 && errors.Is(err, batch.ErrBadMagic) && len(records) > 16 && (records[16] == 0 || records[16] == 1) {
			// A v0/v1 message set: a well-formed request in a format
			// Produce v3+ does not carry. Kafka answers INVALID_RECORD,
			// which clients do not retry; CORRUPT_MESSAGE they would.
			return Prepared{}, kerr.InvalidRecord
		}
		return Prepared{}, kerr.CorruptMessage
	}
	if len(batches) != 1 {
		return Prepared{}, kerr.InvalidRecord
	}
	b := batches[0]
	// Deep: a compressed batch is decompressed (within batch.DefaultLimits)
	// and its records walked, as Kafka's broker does, so a lying record
	// count or a compression bomb is refused here instead of being served
	// to every consumer. Uncompressed batches are walked without copying.
	h, err := validate(b)
	switch {
	case errors.Is(err, batch.ErrUnsupportedCodec):
		return Prepared{}, kerr.UnsupportedCompressionType
	case errors.Is(err, batch.ErrDecompressedTooLarge):
		return Prepared{}, kerr.InvalidRecord
	case err != nil:
		return Prepared{}, kerr.CorruptMessage
	case h.RecordCount == 0, h.IsControl():
		return Prepared{}, kerr.InvalidRecord
	case h.IsTransactional():
		// Transactions are not implemented; refusing beats storing a batch
		// no transaction marker will ever complete.
		return Prepared{}, kerr.TransactionalIDAuthorizationFailed
	case cfg.CleanupPolicy.Compacts() && hasKeyless(b, h):
		// As Kafka: "Compacted topic cannot accept message without key".
		return Prepared{}, kerr.InvalidRecord
	}
	appendTime := int64(-1)
	if cfg.TimestampType == LogAppendTime {
		appendTime = p.now().UnixMilli()
		if err := batch.SetLogAppendTime(b, appendTime); err != nil {
			return Prepared{}, kerr.CorruptMessage
		}
	}
	return Prepared{Batch: b, Header: h, LogAppendTime: appendTime}, nil
}

// decompressing bounds concurrent validations of compressed batches to the
// CPUs: decompression is CPU-bound, so more in parallel gains nothing, and
// each may briefly hold a few times batch.DefaultLimits.MaxSize, so the
// bound keeps many clients sending bombs at once from adding up.
var decompressing = make(chan struct{}, runtime.GOMAXPROCS(0))

// errKeyless stops the record walk of hasKeyless.
var errKeyless = errors.New("partition: record without a key")

// hasKeyless reports whether a validated batch holds a record without a
// key (a compressed one is decompressed again: compacted topics pay that).
func hasKeyless(b []byte, h batch.Header) bool {
	if h.Codec() != batch.CodecNone {
		decompressing <- struct{}{}
		defer func() { <-decompressing }()
	}
	err := batch.Records(b, batch.DefaultLimits, func(r batch.Record) error {
		if r.Key == nil {
			return errKeyless
		}
		return nil
	})
	return err != nil // validated already: any error is the keyless stop
}

func validate(b []byte) (batch.Header, error) {
	if h, err := batch.ParseHeader(b); err == nil && h.Codec() != batch.CodecNone {
		decompressing <- struct{}{}
		defer func() { <-decompressing }()
	}
	return batch.Validate(b, batch.ValidateOptions{Deep: true})
}

func (p *Partition) storageError(err error) error {
	p.lg.Error().Err(err).Msg("partition storage error")
	return kerr.KafkaStorageError
}

// FetchResult is what a fetch of one partition returns.
type FetchResult struct {
	Batches        [][]byte // whole batches, unchanged
	Bytes          int
	HighWatermark  int64
	LogStartOffset int64
	read           log.ReadResult
}

// Release hands the batches' buffers back to the log for reuse; the
// batches must not be used afterwards.
func (r *FetchResult) Release() {
	r.read.Release()
	r.Batches = nil
}

// Fetch reads whole batches from offset, up to maxBytes (at least one batch),
// never past the high watermark. An offset between the high watermark and
// the log end reads nothing; past the log end it is OFFSET_OUT_OF_RANGE.
func (p *Partition) Fetch(offset int64, maxBytes int) (FetchResult, error) {
	hw := p.HighWatermark()
	res := FetchResult{HighWatermark: hw, LogStartOffset: p.LogStartOffset()}
	switch {
	case offset < res.LogStartOffset, offset > p.log.EndOffset():
		return res, kerr.OffsetOutOfRange
	case offset > hw:
		// Stored here but not known committed yet (a new leader before its
		// barrier, a follower behind the leader's commit): nothing to read
		// now, and not out of range. Kafka answers the same.
		return res, nil
	}
	r, err := p.log.Read(offset, maxBytes, hw)
	switch {
	case errors.Is(err, log.ErrOffsetOutOfRange):
		return res, kerr.OffsetOutOfRange
	case err != nil:
		return res, p.storageError(err)
	}
	res.Batches, res.Bytes, res.read = r.Batches, r.Bytes, r
	return res, nil
}

// Special ListOffsets timestamps.
const (
	ListLatest       = -1
	ListEarliest     = -2
	ListMaxTimestamp = -3
	// ListEarliestLocal (ListOffsets v8+, KIP-405) is the first offset
	// stored locally; without tiered storage that is the log start.
	ListEarliestLocal = -4
)

// ListOffset answers ListOffsets for one timestamp: the first offset whose
// record timestamp is >= ts, or the earliest/latest/max-timestamp offsets.
// (-1, -1) means no record is that recent.
func (p *Partition) ListOffset(ts int64) (offset, timestamp int64, err error) {
	hw := p.HighWatermark()
	switch {
	case ts == ListEarliest, ts == ListEarliestLocal:
		return p.LogStartOffset(), -1, nil
	case ts == ListLatest:
		return hw, -1, nil
	case ts == ListMaxTimestamp:
		maxTs := int64(-1)
		for _, s := range p.log.Segments() {
			maxTs = max(maxTs, s.MaxTimestamp)
		}
		if maxTs < 0 {
			return -1, -1, nil
		}
		ts = maxTs
	case ts < 0:
		return 0, 0, kerr.InvalidRequest
	}
	off, found, ok, err := p.log.OffsetForTimestamp(ts)
	if err != nil {
		return 0, 0, p.storageError(err)
	}
	if !ok || off >= hw {
		return -1, -1, nil
	}
	return off, found, nil
}

// RetentionCut is the offset retention.ms and retention.bytes would move
// the log start to (whole sealed segments), never past the high watermark.
// A policy without delete (compact alone) never moves it. It only
// computes: the leader proposes the cut as a replicated command
// (replication.Replica.ApplyRetention), and the state machine applies it
// with SetLogStart.
func (p *Partition) RetentionCut() int64 {
	cfg := p.cfg.Load()
	if !cfg.CleanupPolicy.Deletes() {
		return p.LogStartOffset()
	}
	return min(p.log.RetentionOffset(cfg.Retention, p.now()), p.HighWatermark())
}

// Compact runs a cleaner pass (log.Compact) over the committed records,
// those below the high watermark, with the topic's compaction settings at
// time now; a policy without compact does nothing. Each replica compacts
// its own log, independently: see docs/DESIGN.md "Compaction".
func (p *Partition) Compact(now time.Time) (log.CompactStats, error) {
	cfg := p.cfg.Load()
	if !cfg.CleanupPolicy.Compacts() {
		return log.CompactStats{}, nil
	}
	return p.log.Compact(log.CompactOptions{
		Below:            p.HighWatermark(),
		DeleteRetention:  cfg.DeleteRetention,
		MinCompactionLag: cfg.MinCompactionLag,
		MinDirtyRatio:    cfg.MinCleanableDirtyRatio,
		Now:              func() time.Time { return now },
	})
}

// Close closes the log. The producer table needs no saving: it is in the
// group's snapshot manifests (ProducerState).
func (p *Partition) Close() error { return p.log.Close() }
