package replication

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
	"github.com/rs/zerolog"

	"github.com/sluicemq/sluice/log"
)

var _ raft.LogStore = (*LogStore)(nil)

// LogStore is a raft.LogStore over a partition's segment log: the segment
// files are the Raft log, so a produced batch is written to disk once.
//
// Mapping (one raft.Log is one frame):
//
//   - A raft.LogCommand whose Data starts with CmdProduce is stored as a
//     batch frame holding Data[1:] (no copy). The log stamps the batch's
//     baseOffset into that memory, so Data is modified in place: the
//     proposer must not reuse the command buffer until its ApplyFuture is
//     done.
//   - Every other entry (other commands, noop, barrier, configuration) is
//     a non-batch frame with Type = uint8(raft.LogType) and Data as is; it
//     takes no Kafka offsets.
//   - Extensions are refused (ErrExtensions): frames have no field for them
//     and Sluice never sets them.
//   - AppendedAt is dropped, and GetLog returns it zero. raft uses it only
//     for the leader's "oldestLogAge" gauge (log.go emitLogStoreMetrics,
//     which reports 0 for a zero time); it plays no part in replication.
//
// A StoreLogs error on the leader fails every apply of its group and makes
// raft step down (raft.go dispatchLogs), so proposals must be valid before
// raft.Apply: no Extensions, produce batches checked with batch.Validate.
//
// LogStore does not implement raft.MonotonicLogStore; doc.go explains why.
// It is safe for concurrent use.
type LogStore struct {
	log *log.Log
	lg  zerolog.Logger

	// stored, when set, is called after every successful StoreLogs with
	// the entries just made durable (Replica answers acks=1 from it). It
	// must be cheap: raft's leader loop or follower RPC handler waits.
	stored func(logs []*raft.Log)

	tail   tailCache
	closed atomic.Bool

	// storing is when the StoreLogs under way began (unix nanoseconds),
	// 0 when none is; stallAfter is how long one may take before Stalled
	// says so (0: never).
	storing    atomic.Int64
	stallAfter time.Duration
}

// Stalled reports whether a StoreLogs has been waiting on the log (its
// write or fsync) for longer than the stall timeout: the disk is stalled.
func (s *LogStore) Stalled() bool {
	start := s.storing.Load()
	return start != 0 && s.stallAfter > 0 && time.Since(time.Unix(0, start)) > s.stallAfter
}

// tailCacheBytes bounds the payload bytes of the entries a LogStore keeps
// in memory after storing them (tailCache). A broker hosts hundreds of
// replicas, most of them idle, and a cache keeps what it holds until the
// next writes push it out: so all open LogStores of the process share
// processTailBytes, each keeping at most an equal share of it (never less
// than minTailBytes, never more than tailCacheBytes). With 600 replicas a
// store keeps about 430 KiB; a few busy ones keep 8 MiB.
const (
	tailCacheBytes   = 8 << 20
	processTailBytes = 256 << 20
	minTailBytes     = 64 << 10
)

// openStores counts the LogStores not yet closed, for their cache share.
var openStores atomic.Int64

// tailLimit is each LogStore's cache bound now.
func tailLimit() int {
	return int(min(max(processTailBytes/max(openStores.Load(), 1), minTailBytes), tailCacheBytes))
}

// tailCache holds the most recently stored entries, contiguous and ending
// at the log's last index, so that the leader's replication (which asks
// GetLog for every entry it sends to every follower) and a follower's
// previous-entry check read them from memory instead of reading, verifying
// and copying them from the segment files. It is bounded by payload bytes
// (tailCacheBytes), not by entry count: a byte bound is what memory needs
// with batches of any size. Entries are values whose Data is the memory
// raft handed to StoreLogs: the proposer's command buffer (whose base
// offset the log has stamped, so it equals what the log would return) or
// the transport's receive buffer, neither of which is reused (Replica's
// ProduceCommand, transport doc.go); with an in-memory transport the
// followers store the leader's very Data, which the log then only reads
// (it stamps a base offset only where it differs). It is dropped whenever the log is cut
// or replaced: by DeleteRange, and (checked on every hit) whenever the
// log's Generation has moved, as a snapshot install does.
type tailCache struct {
	mu    sync.Mutex
	gen   uint64     // the log's Generation when the entries were stored
	logs  []raft.Log // ring: logs[head], logs[head+1], ... are indexes first..
	head  int
	n     int
	first uint64
	bytes int
}

func (c *tailCache) reset() {
	clear(c.logs)
	c.head, c.n, c.first, c.bytes = 0, 0, 0, 0
}

func (c *tailCache) at(i int) *raft.Log { return &c.logs[(c.head+i)%len(c.logs)] }

// add appends logs (stored, and so contiguous with the log) and evicts
// the oldest past the byte bound.
func (c *tailCache) add(gen uint64, logs []*raft.Log) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.gen != gen || c.n == 0 || logs[0].Index != c.first+uint64(c.n) {
		c.reset()
		c.gen, c.first = gen, logs[0].Index
	}
	if len(c.logs) == 0 {
		c.logs = make([]raft.Log, 1024)
	}
	for _, l := range logs {
		if c.n == len(c.logs) {
			c.evict()
		}
		e := c.at(c.n)
		*e = *l
		e.AppendedAt = time.Time{} // as the log returns it
		c.n++
		c.bytes += len(l.Data)
	}
	for limit := tailLimit(); c.n > 1 && c.bytes > limit; {
		c.evict()
	}
}

func (c *tailCache) evict() {
	l := c.at(0)
	c.bytes -= len(l.Data)
	*l = raft.Log{}
	c.head = (c.head + 1) % len(c.logs)
	c.n--
	c.first++
}

func (c *tailCache) get(gen, index uint64, out *raft.Log) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.gen != gen {
		c.reset()
		return false
	}
	if c.n == 0 || index < c.first || index >= c.first+uint64(c.n) {
		return false
	}
	*out = *c.at(int(index - c.first))
	return true
}

func (c *tailCache) drop() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.reset()
}

// NewLogStore returns a LogStore over l. The caller keeps ownership of l
// (closes it after raft has shut down).
func NewLogStore(l *log.Log, opts ...Option) *LogStore {
	o := buildOptions(opts)
	openStores.Add(1)
	return &LogStore{log: l, lg: o.logger.With().Str("component", "logstore").Str("dir", l.Dir()).Logger()}
}

// Close drops the tail cache and gives the store's share of the process's
// cache budget back. The log is the caller's to close; the store must not
// be used by raft after Close.
func (s *LogStore) Close() {
	if s.closed.CompareAndSwap(false, true) {
		openStores.Add(-1)
		s.tail.drop()
	}
}

// Log is the underlying segment log.
func (s *LogStore) Log() *log.Log { return s.log }

// FirstIndex returns the first stored index, 0 when the log is empty.
func (s *LogStore) FirstIndex() (uint64, error) { return s.log.FirstIndex(), nil }

// LastIndex returns the last stored index, 0 when the log is empty.
func (s *LogStore) LastIndex() (uint64, error) { return s.log.LastIndex(), nil }

// GetLog reads the entry at index into out. A missing index is
// raft.ErrLogNotFound itself, unwrapped: raft compares with == and only
// then falls back to sending a snapshot (replication.go replicateTo).
// out.Data never aliases memory the log reuses: an entry in the tail cache
// shares the Data that was stored (as raft's own LogCache does; raft never
// writes to it), and one read from the log is fresh: a batch frame is
// copied behind a new CmdProduce tag, and a non-batch payload is a slice
// of the buffer the log read it into, which belongs to this call alone.
func (s *LogStore) GetLog(index uint64, out *raft.Log) error {
	// Below the first index the log has let the entry go (retention):
	// raft must then send a snapshot, as without the cache.
	if index >= s.log.FirstIndex() && s.tail.get(s.log.Generation(), index, out) {
		return nil
	}
	e, err := s.log.Entry(index)
	if errors.Is(err, log.ErrNotFound) {
		return raft.ErrLogNotFound
	}
	if err != nil {
		return fmt.Errorf("replication: get log %d: %w", index, err)
	}
	data := e.Data
	if e.Batch {
		data = make([]byte, 1+len(e.Data))
		data[0] = CmdProduce
		copy(data[1:], e.Data)
	}
	*out = raft.Log{Index: e.Index, Term: e.Term, Type: raft.LogType(e.Type), Data: data}
	return nil
}

// StoreLog stores one entry.
func (s *LogStore) StoreLog(l *raft.Log) error {
	return s.StoreLogs([]*raft.Log{l})
}

// StoreLogs stores entries whose indexes continue the log (the log refuses
// gaps with log.ErrOutOfOrder). It returns once they are fsynced, all or
// none refused by validation (a crash may keep a prefix, which raft allows
// of entries it has not acknowledged).
func (s *LogStore) StoreLogs(logs []*raft.Log) error {
	if len(logs) == 0 {
		return nil
	}
	entries := make([]log.Entry, len(logs))
	for i, l := range logs {
		if len(l.Extensions) > 0 {
			return fmt.Errorf("%w: index %d has %d bytes", ErrExtensions, l.Index, len(l.Extensions))
		}
		e := log.Entry{Index: l.Index, Term: l.Term, Type: uint8(l.Type), Data: l.Data}
		if l.Type == raft.LogCommand && isProduce(l.Data) {
			e.Batch, e.Data = true, l.Data[1:]
		}
		entries[i] = e
	}
	gen := s.log.Generation()
	start := time.Now()
	s.storing.Store(start.UnixNano())
	err := s.log.StoreEntries(entries)
	s.storing.Store(0)
	if took := time.Since(start); s.stallAfter > 0 && took > s.stallAfter {
		s.lg.Warn().Dur("took", took).Msg("log append stalled: replication from this replica was held meanwhile")
	}
	if err != nil {
		s.tail.drop()
		return fmt.Errorf("replication: store logs %d-%d: %w", logs[0].Index, logs[len(logs)-1].Index, err)
	}
	s.tail.add(gen, logs)
	if s.stored != nil {
		s.stored(logs)
	}
	return nil
}

// DeleteRange removes entries lo..hi (inclusive). raft calls it from four
// places (doc.go has the source lines); in a log that is customer data only
// conflict truncation may remove anything:
//
//   - Suffix, hi >= LastIndex: conflict truncation on a follower
//     (raft.go appendEntries). The entries were never committed; they are
//     removed with TruncateFrom(lo) and their offsets roll back, so the
//     replacement entries take the same offsets as on the leader.
//   - Head, lo <= FirstIndex and hi < LastIndex: log compaction after a
//     snapshot (snapshot.go compactLogsWithTrailing). Ignored, with a debug
//     line: retention, itself a replicated command, is the only deleter of
//     records. RaftConfig sets TrailingLogs to its maximum, under which
//     raft never asks for this at all (CheckConfig enforces it).
//   - Anything else (a hole inside the log) is ErrDeleteRange.
//
// A range that covers the whole log is a suffix: a follower whose every
// entry conflicts must lose them all. That is also what
// raft.RecoverCluster asks for after writing its snapshot (api.go), so
// RecoverCluster must never be run over a LogStore: it would delete every
// record. Ranges past LastIndex, or over an empty log, are no-ops.
func (s *LogStore) DeleteRange(lo, hi uint64) error {
	first, last := s.log.FirstIndex(), s.log.LastIndex()
	switch {
	case lo > hi:
		return fmt.Errorf("%w: [%d, %d] is empty", ErrDeleteRange, lo, hi)
	case last == 0 || lo > last:
		return nil
	case hi >= last:
		s.tail.drop()
		from := max(lo, first)
		before := s.log.EndOffset()
		if err := s.log.TruncateFrom(from); err != nil {
			return fmt.Errorf("replication: truncate from %d: %w", from, err)
		}
		s.lg.Info().Uint64("from_index", from).Uint64("to_index", last).
			Int64("end_offset_before", before).Int64("end_offset", s.log.EndOffset()).
			Msg("truncated conflicting suffix")
		return nil
	case lo <= first:
		s.lg.Debug().Uint64("from_index", lo).Uint64("to_index", hi).
			Msg("ignored head delete: retention is the only deleter of records")
		return nil
	default:
		return fmt.Errorf("%w: [%d, %d] inside [%d, %d]", ErrDeleteRange, lo, hi, first, last)
	}
}
