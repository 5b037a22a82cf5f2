// Package partition is one Kafka partition over a segment log: produce
// validation, idempotent-producer de-duplication, the high watermark and
// the waiters woken when it moves, ListOffsets, DeleteRecords and retention.
//
// A partition runs in one of two modes. Opened with Open it is standalone:
// it appends to its log itself and its high watermark is the fsynced log
// end. Opened with OpenReplicated it is the state of one replica of a Raft
// group (package replication): it never appends, and its high watermark,
// log start and committed producer table are set by the group's state
// machine as entries commit (replicated.go); Fetch, ListOffset and the
// rest of the read side work the same in both modes.
//
// Errors returned to the broker are *kerr.Error values, so they map onto the
// wire's error codes unchanged.
package partition

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/sluicemq/sluice/log"
	"github.com/sluicemq/sluice/log/batch"
	"github.com/sluicemq/sluice/log/vfs"
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
}

// Partition is one partition of one topic. It is safe for concurrent use.
type Partition struct {
	topic string
	index int32
	dir   string
	fs    vfs.FS
	log   *log.Log
	cfg   atomic.Pointer[Config]
	now   func() time.Time
	lg    zerolog.Logger

	// mu guards the producer table. Standalone, it also orders produce:
	// validation, the sequence check and queueing to the log happen under
	// it, so queue order is sequence order; the fsync is waited for outside
	// it, so appends share fsyncs. Replicated, the proposer orders
	// proposals with its own lock and mu is held only briefly.
	mu        sync.Mutex
	producers *producers
	snapMu    sync.Mutex // one producer snapshot write at a time

	// Replicated mode (replicated.go): the committed high watermark and
	// log start, set by the state machine, and the leader's in-flight
	// proposals per producer id (under mu).
	replicated bool
	hw         atomic.Int64
	start      atomic.Int64
	inflight   map[int64][]inflightBatch

	hwMu sync.Mutex
	hwCh chan struct{} // closed and replaced when the high watermark moves
}

// Open opens (or creates) the standalone partition stored in dir.
func Open(dir, topic string, index int32, cfg Config, opts Options) (*Partition, error) {
	p, err := open(dir, topic, index, cfg, opts)
	if err != nil {
		return nil, err
	}
	if err := p.loadProducers(); err != nil {
		p.log.Close()
		return nil, err
	}
	return p, nil
}

func open(dir, topic string, index int32, cfg Config, opts Options) (*Partition, error) {
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
	l, err := log.Open(dir, log.Options{
		FS: opts.FS, Logger: &lg, SegmentBytes: cfg.SegmentBytes, SegmentAge: cfg.SegmentAge, Now: opts.Now,
	})
	if err != nil {
		return nil, err
	}
	p := &Partition{
		topic: topic, index: index, dir: dir, fs: opts.FS, log: l, now: opts.Now, lg: lg,
		producers: newProducers(opts.MaxProducers), hwCh: make(chan struct{}),
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
// readable. Standalone it is the fsynced log end; replicated, the end of
// the last committed and applied batch.
func (p *Partition) HighWatermark() int64 {
	if p.replicated {
		return p.hw.Load()
	}
	return p.log.EndOffset()
}

// LogStartOffset is the first readable offset. Replicated, it is the
// replicated log start, which the segment files may lag behind (see
// SetLogStart).
func (p *Partition) LogStartOffset() int64 {
	if p.replicated {
		return max(p.start.Load(), p.log.StartOffset())
	}
	return p.log.StartOffset()
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

// ProduceResult is a successful produce's answer.
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
// Errors are *kerr.Error. A replicated leader calls it before proposing:
// an invalid batch must never reach the Raft log.
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

// Produce validates records (see Prepare), checks its producer sequence and
// queues it to the log. It returns at once; the returned wait blocks until
// the batch is durable. A duplicate of a recent batch is answered with the
// original's offset and stored again never. A replicated partition never
// appends by itself: it answers NOT_LEADER_FOR_PARTITION, and produce goes
// through the replica (replication.Replica.Produce).
func (p *Partition) Produce(records []byte) (wait func() (ProduceResult, error)) {
	fail := func(err error) func() (ProduceResult, error) {
		return func() (ProduceResult, error) { return ProduceResult{}, err }
	}
	if p.replicated {
		return fail(kerr.NotLeaderForPartition)
	}
	pr, err := p.Prepare(records)
	if err != nil {
		return fail(err)
	}
	b, h, appendTime := pr.Batch, pr.Header, pr.LogAppendTime

	p.mu.Lock()
	if h.ProducerID >= 0 {
		dup, err := p.producers.check(h)
		if err != nil {
			p.mu.Unlock()
			return fail(err)
		}
		if dup != nil {
			p.mu.Unlock()
			return func() (ProduceResult, error) {
				off, err := dup.offset()
				if err != nil {
					return ProduceResult{}, p.storageError(err)
				}
				return ProduceResult{BaseOffset: off, LogAppendTime: appendTime, LogStartOffset: p.LogStartOffset()}, nil
			}
		}
	}
	pend, err := p.log.AppendAsync(b)
	if err != nil {
		p.mu.Unlock()
		return fail(p.storageError(err))
	}
	if h.ProducerID >= 0 {
		p.producers.record(h, pend, 0)
	}
	p.mu.Unlock()

	return func() (ProduceResult, error) {
		off, err := pend.Wait()
		if err != nil {
			return ProduceResult{}, p.storageError(err)
		}
		p.notify()
		if h.ProducerID >= 0 {
			p.mu.Lock()
			p.producers.settle(h.ProducerID, false)
			p.mu.Unlock()
		}
		return ProduceResult{BaseOffset: off, LogAppendTime: appendTime, LogStartOffset: p.LogStartOffset()}, nil
	}
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
// never past the high watermark.
func (p *Partition) Fetch(offset int64, maxBytes int) (FetchResult, error) {
	hw := p.HighWatermark()
	res := FetchResult{HighWatermark: hw, LogStartOffset: p.LogStartOffset()}
	if offset > hw || offset < res.LogStartOffset {
		return res, kerr.OffsetOutOfRange
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

// DeleteRecords moves the log start to offset (-1: the high watermark) and
// returns the new low watermark. A replicated partition refuses it
// (NOT_LEADER_FOR_PARTITION): the replica proposes it instead.
func (p *Partition) DeleteRecords(offset int64) (int64, error) {
	if p.replicated {
		return 0, kerr.NotLeaderForPartition
	}
	hw := p.HighWatermark()
	if offset == -1 {
		offset = hw
	}
	if offset < 0 || offset > hw {
		return 0, kerr.OffsetOutOfRange
	}
	if err := p.log.DeleteBefore(offset); err != nil {
		return 0, p.storageError(err)
	}
	return p.LogStartOffset(), nil
}

// ApplyRetention deletes whole segments that retention.ms or
// retention.bytes no longer keep. It returns the new log start offset. A
// replicated partition only reports its log start: its replica proposes
// RetentionCut as a replicated command instead.
func (p *Partition) ApplyRetention() (int64, error) {
	if p.replicated {
		return p.LogStartOffset(), nil
	}
	cut := p.RetentionCut()
	if cut > p.LogStartOffset() {
		if err := p.log.DeleteBefore(cut); err != nil {
			return 0, p.storageError(err)
		}
		p.lg.Info().Int64("log_start_offset", cut).Msg("retention deleted segments")
	}
	return p.LogStartOffset(), nil
}

// RetentionCut is the offset retention.ms and retention.bytes would move
// the log start to (whole sealed segments), never past the high watermark.
// A policy without delete (compact alone) never moves it.
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

// maxSnapshotBytes bounds the producer snapshot read at open.
const maxSnapshotBytes = 64 << 20

// Close writes the producer snapshot and closes the log. A replicated
// partition writes no producer snapshot (its producer table is in the
// group's snapshot manifests) and only closes the log.
func (p *Partition) Close() error {
	if p.replicated {
		return p.log.Close()
	}
	p.snapMu.Lock()
	defer p.snapMu.Unlock()
	p.mu.Lock()
	defer p.mu.Unlock()
	for pid := range p.producers.m {
		p.producers.settle(pid, true)
	}
	snap := p.producers.encode(p.log.EndOffset())
	err := vfs.WriteFileAtomic(p.fs, filepath.Join(p.dir, snapshotName), snap)
	if cerr := p.log.Close(); err == nil {
		err = cerr
	}
	return err
}

// SnapshotProducers writes the producer table as of the high watermark, so
// that after a crash only the records since are scanned to rebuild it
// (Kafka snapshots producer state for the same reason). The broker calls it
// periodically. A batch can be in the high watermark a moment before its
// append reports done, so it first waits, outside the lock, for the appends
// pending when the high watermark was read.
//
// A replicated partition has nothing to write (replication snapshots its
// producer table) and returns nil.
func (p *Partition) SnapshotProducers() error {
	if p.replicated {
		return nil
	}
	p.snapMu.Lock()
	defer p.snapMu.Unlock()
	p.mu.Lock()
	covered := p.HighWatermark()
	var waits []Pending
	for _, st := range p.producers.m {
		for _, b := range st.batches {
			if b.pending != nil {
				waits = append(waits, b.pending)
			}
		}
	}
	p.mu.Unlock()
	for _, w := range waits {
		w.Wait()
	}
	p.mu.Lock()
	for pid := range p.producers.m {
		p.producers.settle(pid, false)
	}
	snap := p.producers.encode(covered)
	p.mu.Unlock()
	return vfs.WriteFileAtomic(p.fs, filepath.Join(p.dir, snapshotName), snap)
}

// loadProducers restores the producer table: the latest snapshot (written
// at clean close and periodically), then every batch from the offset it
// covers. Without a usable snapshot the whole log is scanned.
func (p *Partition) loadProducers() error {
	from := p.log.StartOffset()
	path := filepath.Join(p.dir, snapshotName)
	if b, err := vfs.ReadFile(p.fs, path, maxSnapshotBytes); err == nil {
		covered, derr := p.producers.decode(b)
		switch {
		case derr != nil || covered > p.log.EndOffset():
			p.lg.Warn().Err(derr).Int64("covered", covered).Msg("ignoring producer snapshot; rebuilding from the log")
			p.producers = newProducers(p.producers.max)
		default:
			from = max(covered, from)
		}
		// A snapshot covers up to the high watermark it was taken at, which
		// recovery never cuts below (it only cuts unsynced tails), so it stays
		// valid for every later open until the next one replaces it.
	} else if !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("partition: read %s: %w", path, err)
	}
	for from < p.log.EndOffset() {
		r, err := p.log.Read(from, 1<<20, -1)
		if err != nil {
			return fmt.Errorf("partition: rebuild producer state at offset %d: %w", from, err)
		}
		for _, b := range r.Batches {
			h, err := batch.ParseHeader(b)
			if err != nil {
				return fmt.Errorf("partition: rebuild producer state: %w", err)
			}
			if h.ProducerID >= 0 && h.NextOffset() > from {
				p.producers.record(h, nil, h.BaseOffset)
			}
		}
		r.Release() // only header fields were kept
		if r.Next <= from {
			break
		}
		from = r.Next
	}
	return nil
}
