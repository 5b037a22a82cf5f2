// Package log is Sluice's segment log: an append-only sequence of frames on
// disk that is at once a partition's Kafka log (RecordBatch v2 bytes stored as
// produced, addressed by offset) and its Raft log (entries addressed by index
// and term). FORMAT.md specifies the files and the recovery steps.
//
// Concurrency: every mutation (appends, rolls, truncation, deletion) happens
// under wmu, held by the writer goroutine or by a lone appender that found it
// idle, and what has been fsynced is published under mu; readers take
// mu.RLock and never see an unsynced byte. Appenders that arrive while an
// fsync is under way are written together and share the next fsync (group
// commit).
package log

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/sluicemq/sluice/log/vfs"
)

// Entry is one frame of the log. For a batch entry (Batch true) Data is a
// Kafka RecordBatch v2 whose baseOffset field the log overwrites on append.
type Entry struct {
	Index uint64
	Term  uint64
	Type  uint8 // opaque to the log: the Raft LogType
	Batch bool
	Data  []byte
	// BaseOffset is set by the log: the batch's first offset, or for a
	// non-batch entry the offset the next batch takes.
	BaseOffset int64
}

// ReadResult holds whole record batches, ready to be written to a socket
// unchanged (net.Buffers). Their bytes are freshly read and owned by the caller.
type ReadResult struct {
	Batches [][]byte
	Bytes   int   // sum of len(Batches[i])
	Next    int64 // offset after the last returned batch; the requested offset when none
	bufs    [][]byte
}

// Release hands the result's buffers back for reuse by later reads; the
// batches must not be used afterwards. Callers that copy the batches out
// (a fetch building its response) should release; others need not, and
// the buffers are then collected as usual.
func (r *ReadResult) Release() {
	for _, b := range r.bufs {
		if cap(b) <= maxPooledRead {
			b := b[:0]
			readBufs.Put(&b)
		}
	}
	r.Batches, r.bufs = nil, nil
}

// Recovery reports what Open repaired.
type Recovery struct {
	TruncatedFile  string // the active segment, when a torn tail was cut
	TruncatedAt    int64  // byte position the tail was cut at
	TruncatedBytes int64
	RebuiltIndexes []string
	RemovedFiles   []string
}

// Log is a segment log. It is safe for concurrent use.
type Log struct {
	dir  string
	opts Options
	fs   vfs.FS
	log  zerolog.Logger

	mu    sync.RWMutex
	segs  []*segment // oldest first; the last one is active
	start int64      // log start offset
	err   error      // set once closed or failed; wraps ErrClosed

	recovery Recovery

	// reqs queues requests to the writer in order. qmu makes queueing and
	// closing exclusive, so nothing is queued after the close request.
	reqs      chan *request
	qmu       sync.Mutex
	qclosed   bool
	queued    atomic.Int64 // requests queued and not yet finished by run
	closeOnce sync.Once

	// wmu is held by whoever writes: the run goroutine, or an appender
	// that found the writer idle and nothing queued (appendInline).
	wmu  sync.Mutex
	done chan struct{} // closed when the writer has exited

	// roll limits, changeable while open (topic configs)
	segmentBytes atomic.Int64
	segmentAge   atomic.Int64 // nanoseconds; 0 never

	w writerState // owned by the writer goroutine

	gen atomic.Uint64 // Generation

	// cmu serialises cleaner passes (Compact); cleaned is the clean.ckpt
	// hint, -1 until read.
	cmu     sync.Mutex
	cleaned int64

	// damaged is closed the first time a read finds stored data corrupt;
	// failedCh when an I/O error fails the log closed.
	damaged     chan struct{}
	damagedOnce sync.Once
	failedCh    chan struct{}
}

// Failed is closed when a write or fsync error has failed the log closed
// for good (fsyncgate: the file's state is unknown). Unlike Close, this
// comes from the log itself, and its owner should stop using it: after a
// failed fsync the page cache may still show data the disk lost, so even
// reopening it in the same process is unsafe.
func (l *Log) Failed() <-chan struct{} { return l.failedCh }

// Damaged is closed the first time Read or Entry finds stored data
// corrupt (ErrCorrupt) while the log is open. Data the log stored and
// fsynced has changed under it, so its owner should stop trusting it: a
// replica leaves its raft group until repaired (docs/DESIGN.md).
func (l *Log) Damaged() <-chan struct{} { return l.damaged }

// Stopped is closed when the log's writer has exited: the log was closed
// or failed. Watchers of Damaged stop with it.
func (l *Log) Stopped() <-chan struct{} { return l.done }

// noteDamage closes Damaged when err reports corruption; it returns err.
func (l *Log) noteDamage(err error) error {
	if errors.Is(err, ErrCorrupt) {
		l.damagedOnce.Do(func() {
			l.log.Error().Err(err).Msg("stored data found corrupt while open")
			close(l.damaged)
		})
	}
	return err
}

// Generation counts the operations that remove or replace entries
// (TruncateFrom that cuts, Reset, InstallSnapshot). It moves before the
// entries change, so a cache of entries taken while it held a value is
// valid while it still holds it.
func (l *Log) Generation() uint64 { return l.gen.Load() }

// Open opens or creates the log in dir, recovering it as FORMAT.md describes.
func Open(dir string, opts Options) (*Log, error) {
	o, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	l := &Log{
		dir:      dir,
		opts:     o,
		fs:       o.FS,
		log:      o.Logger.With().Str("component", "log").Str("dir", dir).Logger(),
		reqs:     make(chan *request, queueDepth),
		done:     make(chan struct{}),
		cleaned:  -1,
		damaged:  make(chan struct{}),
		failedCh: make(chan struct{}),
	}
	l.segmentBytes.Store(o.SegmentBytes)
	l.segmentAge.Store(int64(o.SegmentAge))
	if err := l.fs.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("log: create %s: %w", dir, err)
	}
	if err := l.recover(); err != nil {
		l.closeFiles()
		return nil, err
	}
	l.w.reset(l.active())
	if l.active() == nil {
		l.w.next = l.start // an emptied log continues at its checkpoint
	}
	go l.run()
	return l, nil
}

// Close stops the writer and closes the files. Appends in flight complete
// first; later calls return ErrClosed.
func (l *Log) Close() error {
	l.closeOnce.Do(func() {
		r := &request{kind: reqClose, done: make(chan struct{})}
		l.qmu.Lock()
		l.qclosed = true
		l.reqs <- r
		l.qmu.Unlock()
		<-r.done
	})
	<-l.done
	return nil
}

// queueDepth bounds requests waiting for the writer; a full queue blocks
// appenders, which is the backpressure a slow disk should exert.
const queueDepth = 1024

// SetSegmentLimits changes when the active segment rolls (Kafka's
// segment.bytes and segment.ms, altered on a live topic). It applies to the
// next append; bytes must be within the range Options accepts.
func (l *Log) SetSegmentLimits(bytes int64, age time.Duration) error {
	o := l.opts
	o.SegmentBytes, o.SegmentAge = bytes, age
	if _, err := o.withDefaults(); err != nil || bytes == 0 {
		return fmt.Errorf("log: segment limits %d bytes, %v: %w", bytes, age, err)
	}
	l.segmentBytes.Store(bytes)
	l.segmentAge.Store(int64(age))
	return nil
}

// Recovery reports what Open repaired.
func (l *Log) Recovery() Recovery { return l.recovery }

// Dir is the log's directory.
func (l *Log) Dir() string { return l.dir }

func (l *Log) active() *segment {
	if len(l.segs) == 0 {
		return nil
	}
	return l.segs[len(l.segs)-1]
}

// FirstIndex is the Raft index of the first entry, 0 when the log is empty.
func (l *Log) FirstIndex() uint64 {
	l.mu.RLock()
	defer l.mu.RUnlock()
	if len(l.segs) == 0 || l.segs[0].empty() {
		return 0
	}
	return l.segs[0].hdr.baseIndex
}

// LastIndex is the Raft index of the last entry, 0 when the log is empty.
func (l *Log) LastIndex() uint64 {
	l.mu.RLock()
	defer l.mu.RUnlock()
	if len(l.segs) == 0 || l.segs[0].empty() {
		return 0
	}
	return l.active().last
}

// StartOffset is the first offset that can be read.
func (l *Log) StartOffset() int64 {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.start
}

// EndOffset is the offset the next appended batch will take (Kafka's log end offset).
func (l *Log) EndOffset() int64 {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.endLocked()
}

func (l *Log) endLocked() int64 {
	if a := l.active(); a != nil {
		return a.next
	}
	return l.start
}

// Size is the total bytes of all segments.
func (l *Log) Size() int64 {
	l.mu.RLock()
	defer l.mu.RUnlock()
	var n int64
	for _, s := range l.segs {
		n += s.size
	}
	return n
}

// SegmentInfo describes one segment.
type SegmentInfo struct {
	Path         string
	BaseIndex    uint64
	LastIndex    uint64 // BaseIndex-1 when empty
	BaseOffset   int64
	NextOffset   int64
	Size         int64
	MaxTimestamp int64
	CreatedMs    int64
	Sealed       bool
}

// Segments describes the segments, oldest first.
func (l *Log) Segments() []SegmentInfo {
	l.mu.RLock()
	defer l.mu.RUnlock()
	out := make([]SegmentInfo, len(l.segs))
	for i, s := range l.segs {
		out[i] = SegmentInfo{
			Path: s.path, BaseIndex: s.hdr.baseIndex, LastIndex: s.last, BaseOffset: s.hdr.baseOffset,
			NextOffset: s.next, Size: s.size, MaxTimestamp: s.maxTs, CreatedMs: s.hdr.createdMs, Sealed: s.sealed,
		}
	}
	return out
}

// Append appends one RecordBatch v2 with the next Raft index (term 0) and
// returns its base offset once it is fsynced. The log stamps baseOffset into
// batch, so the caller must not reuse it concurrently.
func (l *Log) Append(batch []byte) (int64, error) {
	e := []Entry{{Batch: true, Data: batch}}
	if err := l.submit(&request{kind: reqAppend, entries: e, assign: true}); err != nil {
		return 0, err
	}
	return e[0].BaseOffset, nil
}

// AppendBatches appends several batches with consecutive new indexes in one
// fsync, and fills each entry's Index and BaseOffset. Validation is all or
// none; a crash before it returns may leave a prefix of the batches stored,
// none of them acknowledged (as Raft allows of unacknowledged entries).
func (l *Log) AppendBatches(entries []Entry) error {
	return l.submit(&request{kind: reqAppend, entries: entries, assign: true})
}

// StoreEntries appends entries whose Index and Term the caller chose (Raft's
// StoreLogs): the first must follow LastIndex (any index on an empty log) and
// the rest must be consecutive. Validation is all or none (a crash before it
// returns may keep a prefix); it returns once they are fsynced, with each
// BaseOffset filled in.
func (l *Log) StoreEntries(entries []Entry) error {
	return l.submit(&request{kind: reqAppend, entries: entries})
}

// TruncateFrom removes every entry with Index >= index (Raft's conflict
// resolution). Offsets roll back with them.
func (l *Log) TruncateFrom(index uint64) error {
	return l.submit(&request{kind: reqTruncate, index: index})
}

// DeleteBefore makes offset the log start offset and removes whole sealed
// segments below it (retention, DeleteRecords). The start offset is durable
// when it returns. An offset past EndOffset is ErrOffsetOutOfRange.
// Segments pinned by an open SnapshotStream stay (with every later one)
// until a DeleteBefore after the stream is closed; SnapshotStream.Close
// makes that call itself when it unpinned such a segment.
func (l *Log) DeleteBefore(offset int64) error {
	return l.submit(&request{kind: reqDeleteBefore, offset: offset})
}

// Reset removes every entry and starts an empty log whose next entry has
// index and whose next batch takes offset (after a Raft snapshot install).
func (l *Log) Reset(index uint64, offset int64) error {
	if index == 0 || offset < 0 {
		return fmt.Errorf("log: reset to index %d offset %d: index must be >= 1 and offset >= 0", index, offset)
	}
	return l.submit(&request{kind: reqReset, index: index, offset: offset})
}

// Pending is an append queued to the writer.
type Pending struct {
	r *request
}

// Done reports, without blocking, whether Wait would return at once.
func (p *Pending) Done() bool {
	select {
	case <-p.r.done:
		return true
	default:
		return false
	}
}

// Wait blocks until the append is fsynced or has failed, and returns the
// batch's base offset.
func (p *Pending) Wait() (int64, error) {
	<-p.r.done
	if p.r.err != nil {
		return 0, p.r.err
	}
	return p.r.entries[0].BaseOffset, nil
}

// AppendAsync queues one batch behind every earlier append and returns
// without waiting for the fsync (it blocks only while the queue is full).
// Batches are stored in the order they were queued, so a caller can check
// ordering rules (producer sequences) and queue under one lock, then wait
// outside it, letting appends of many callers share one fsync.
func (l *Log) AppendAsync(batch []byte) (*Pending, error) {
	r := &request{kind: reqAppend, entries: []Entry{{Batch: true, Data: batch}}, assign: true}
	if err := l.enqueue(r); err != nil {
		return nil, err
	}
	return &Pending{r}, nil
}

func (l *Log) enqueue(r *request) error {
	r.done = make(chan struct{})
	l.qmu.Lock()
	defer l.qmu.Unlock()
	if l.qclosed {
		return l.closedErr()
	}
	l.queued.Add(1)
	l.reqs <- r
	return nil
}

func (l *Log) submit(r *request) error {
	if r.kind == reqAppend && l.appendInline(r) {
		return r.err
	}
	if err := l.enqueue(r); err != nil {
		return err
	}
	<-r.done
	return r.err
}

func (l *Log) closedErr() error {
	l.mu.RLock()
	defer l.mu.RUnlock()
	if l.err != nil {
		return l.err
	}
	return ErrClosed
}

// Read returns whole batches starting with the one that holds offset, up to
// maxBytes (at least one batch, so a consumer always progresses, as Kafka's
// KIP-74), stopping before any batch at or past limit (a high watermark;
// limit < 0 means the log end). Reading at the end returns no batches.
// Every returned frame's CRC is verified.
func (l *Log) Read(offset int64, maxBytes int, limit int64) (ReadResult, error) {
	res, err := l.read(offset, maxBytes, limit)
	return res, l.noteDamage(err)
}

func (l *Log) read(offset int64, maxBytes int, limit int64) (ReadResult, error) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	res := ReadResult{Next: offset}
	if l.err != nil {
		return res, l.err
	}
	end := l.endLocked()
	if limit < 0 || limit > end {
		limit = end
	}
	if offset < l.start || offset > end {
		return res, fmt.Errorf("%w: %d not in [%d, %d]", ErrOffsetOutOfRange, offset, l.start, end)
	}
	chunk := min(max(maxBytes+maxBytes/8+4096, 64<<10), 8<<20)
	i := sort.Search(len(l.segs), func(i int) bool { return l.segs[i].next > offset })
	for ; i < len(l.segs) && res.Next < limit; i++ {
		s := l.segs[i]
		pos := int64(segmentHeaderSize)
		if s.hdr.baseOffset <= offset {
			pos = s.posForOffset(offset)
		}
		r := &frameReader{f: s.file, name: s.path, pos: pos, end: s.size, chunk: chunk, keep: &res.bufs}
		for first := true; ; first = false {
			fr, err := r.next()
			if err == io.EOF {
				break
			}
			if err != nil {
				return res, err
			}
			// Verify every frame walked, not only those returned: a
			// damaged header must not make a batch be skipped silently.
			if err := r.verify(&fr); err != nil {
				return res, err
			}
			h := &fr.hdr
			if first && s.hdr.baseOffset <= offset && h.baseOffset > offset {
				// Nor may an index that lies: it would skip the batches before.
				return res, corrupt(s.indexPath(), 0, "index points to offset %d at byte %d, looking for %d", h.baseOffset, fr.pos, offset)
			}
			if !h.isBatch() || h.nextOffset() <= offset {
				continue
			}
			if h.baseOffset >= limit || (res.Bytes > 0 && res.Bytes+len(fr.payload) > maxBytes) {
				return res, nil
			}
			res.Batches = append(res.Batches, fr.payload)
			res.Bytes += len(fr.payload)
			res.Next = h.nextOffset()
			if res.Bytes >= maxBytes {
				return res, nil
			}
		}
	}
	return res, nil
}

// Entry returns the entry at index, or ErrNotFound. Its Data is freshly read.
func (l *Log) Entry(index uint64) (Entry, error) {
	e, err := l.entry(index)
	return e, l.noteDamage(err)
}

func (l *Log) entry(index uint64) (Entry, error) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	if l.err != nil {
		return Entry{}, l.err
	}
	i := sort.Search(len(l.segs), func(i int) bool { return l.segs[i].last >= index })
	if i == len(l.segs) || index < l.segs[i].hdr.baseIndex || l.segs[i].empty() {
		return Entry{}, ErrNotFound
	}
	s := l.segs[i]
	// The frame is at most one index interval past its index entry: read
	// that much (a larger frame is read whole by fill), not a big chunk
	// per small entry, since Raft reads entries one at a time.
	r := &frameReader{f: s.file, name: s.path, pos: s.posForIndex(index), end: s.size, chunk: l.opts.IndexIntervalBytes + 2*frameHeaderSize}
	for {
		fr, err := r.next()
		if err == io.EOF {
			return Entry{}, corrupt(s.path, r.pos, "index %d missing from its segment", index)
		}
		if err != nil {
			return Entry{}, err
		}
		// Verify every frame walked, so the error names the damaged frame.
		if err := r.verify(&fr); err != nil {
			return Entry{}, err
		}
		if fr.hdr.index < index {
			continue
		}
		if fr.hdr.index != index {
			return Entry{}, corrupt(s.path, fr.pos, "found index %d looking for %d", fr.hdr.index, index)
		}
		return Entry{
			Index: index, Term: fr.hdr.term, Type: fr.hdr.entryType, Batch: fr.hdr.isBatch(),
			Data: fr.payload, BaseOffset: fr.hdr.baseOffset,
		}, nil
	}
}

// Verify CRC-walks every segment and returns the first damage found (a
// *CorruptError) or nil. It is a scrub: reads already verify what they return.
func (l *Log) Verify() error {
	l.mu.RLock()
	defer l.mu.RUnlock()
	for _, s := range l.segs {
		w, err := walk(s.file, s.path, s.hdr, walkStart(s.hdr), s.size, l.opts.IndexIntervalBytes)
		if err != nil {
			return err
		}
		if w.bad != nil {
			return w.bad
		}
	}
	return nil
}

// --- writer ---

type reqKind int

const (
	reqAppend reqKind = iota
	reqTruncate
	reqDeleteBefore
	reqReset
	reqInstall
	reqRun
	reqClose
)

type request struct {
	kind    reqKind
	entries []Entry
	assign  bool // assign indexes after the last one
	index   uint64
	offset  int64
	fn      func() error // reqInstall, reqRun: runs on the writer (snapshot.go, compact.go)
	err     error
	done    chan struct{}
}

// writerState is the writer's view of the active segment, ahead of what is
// published to readers until the next fsync.
type writerState struct {
	seg     *segment
	pos     int64 // logical end, including frames not yet handed to the file
	flushed int64 // bytes handed to the file
	dropped int64 // bytes of the segment whose page cache was dropped
	last    uint64
	next    int64
	maxTs   int64
	index   []indexEntry

	// Frames not yet handed to the file: their headers side by side in
	// hdrs, their payloads (the callers' own memory, unchanged until the
	// request is answered) in payloads. flush writes them all with one
	// vectored write, so a frame costs neither a copy nor a syscall.
	hdrs     []byte
	payloads [][]byte
	iov      [][]byte
}

// maxPendingFrames bounds the frames gathered into one write.
const maxPendingFrames = 512

func (w *writerState) reset(s *segment) {
	w.seg = s
	w.dropped = 0
	w.hdrs, w.payloads = w.hdrs[:0], w.payloads[:0]
	if s == nil {
		w.pos, w.flushed, w.last, w.next, w.maxTs, w.index = 0, 0, 0, 0, -1, nil
		return
	}
	w.pos, w.flushed, w.last, w.next, w.maxTs, w.index = s.size, s.size, s.last, s.next, s.maxTs, s.index
}

// appendInline writes and fsyncs r on the caller's goroutine when no one
// is writing and nothing is queued, saving a lone appender the two
// goroutine handoffs of the queue. Appenders arriving meanwhile queue as
// usual and the run goroutine writes them as one group afterwards, so group
// commit is kept; and since nothing queued earlier is waiting, no caller's
// order is overtaken.
func (l *Log) appendInline(r *request) bool {
	if !l.wmu.TryLock() {
		return false
	}
	defer l.wmu.Unlock()
	l.qmu.Lock()
	idle := !l.qclosed && l.queued.Load() == 0
	l.qmu.Unlock()
	if !idle {
		return false
	}
	r.done = make(chan struct{})
	l.appendGroup([]*request{r})
	close(r.done)
	return true
}

func (l *Log) run() {
	defer close(l.done)
	var group []*request
	for r := range l.reqs {
		l.wmu.Lock()
		group = append(group[:0], r)
		var other *request
		if r.kind == reqAppend {
			bytes := r.size()
		drain:
			for bytes < l.opts.MaxGroupBytes {
				select {
				case r2 := <-l.reqs:
					if r2.kind != reqAppend {
						other = r2
						break drain
					}
					group = append(group, r2)
					bytes += r2.size()
				default:
					break drain
				}
			}
			l.appendGroup(group)
		} else {
			other = r
		}
		for _, g := range group {
			if g.kind == reqAppend {
				close(g.done)
			}
		}
		taken := int64(len(group))
		if other != nil {
			if other.kind == reqClose {
				l.shutdown()
				close(other.done)
				l.wmu.Unlock()
				return
			}
			l.handle(other)
			close(other.done)
			if other != r {
				taken++
			}
		}
		l.queued.Add(-taken)
		l.wmu.Unlock()
	}
}

func (r *request) size() int {
	n := 0
	for _, e := range r.entries {
		n += frameHeaderSize + len(e.Data)
	}
	return n
}

// failed returns the error that closed the log, if any. Only the writer
// sets l.err (and Close), so it may read it without the lock.
func (l *Log) failed() error { return l.err }

// fail closes the log for good after an I/O error: the state of the file
// is unknown, and fsync must never be retried.
func (l *Log) fail(err error) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.err == nil {
		l.err = fmt.Errorf("%w: %w", ErrClosed, err)
		l.log.Error().Err(err).Msg("log failed closed")
		close(l.failedCh)
	}
	return l.err
}

func (l *Log) shutdown() {
	l.mu.Lock()
	if l.err == nil {
		l.err = ErrClosed
	}
	l.mu.Unlock()
	l.closeFiles()
}

func (l *Log) closeFiles() {
	for _, s := range l.segs {
		if s.file != nil {
			s.file.Close()
		}
	}
}

func (l *Log) handle(r *request) {
	if err := l.failed(); err != nil {
		r.err = err
		return
	}
	var err error
	switch r.kind {
	case reqTruncate:
		err = l.truncateFrom(r.index)
	case reqDeleteBefore:
		err = l.deleteBefore(r.offset)
	case reqReset:
		err = l.reset(r.index, r.offset)
	case reqInstall, reqRun:
		err = r.fn()
	}
	var ioErr *ioError
	if errors.As(err, &ioErr) {
		err = l.fail(ioErr.err)
	}
	r.err = err
}

// ioError marks an error from the filesystem that must fail the log closed.
type ioError struct{ err error }

func (e *ioError) Error() string { return e.err.Error() }
func (e *ioError) Unwrap() error { return e.err }

func ioErr(err error) error {
	if err == nil {
		return nil
	}
	return &ioError{err}
}

// appendGroup validates, writes and fsyncs a group of append requests.
func (l *Log) appendGroup(group []*request) {
	if err := l.failed(); err != nil {
		for _, r := range group {
			r.err = err
		}
		return
	}
	wrote := false
	for _, r := range group {
		if r.err = l.check(r); r.err != nil {
			continue
		}
		for i := range r.entries {
			if err := l.writeEntry(&r.entries[i]); err != nil {
				err = l.fail(err)
				for _, g := range group {
					g.err = err
				}
				return
			}
		}
		wrote = true
	}
	if !wrote {
		return
	}
	if err := l.syncActive(); err != nil {
		err = l.fail(err)
		for _, g := range group {
			g.err = err
		}
	}
}

// check validates a request against the writer's position before anything
// of it is written, so a request is stored whole or not at all.
func (l *Log) check(r *request) error {
	if len(r.entries) == 0 {
		return nil
	}
	// With no segment at all, nothing pins the first index yet.
	next := l.w.last + 1
	if r.assign {
		for i := range r.entries {
			r.entries[i].Index = next + uint64(i)
		}
	} else if first := r.entries[0].Index; first == 0 || (first != next && l.w.seg != nil) {
		return fmt.Errorf("%w: got %d, want %d", ErrOutOfOrder, first, next)
	}
	for i := range r.entries {
		e := &r.entries[i]
		if i > 0 && e.Index != r.entries[i-1].Index+1 {
			return fmt.Errorf("%w: %d after %d", ErrOutOfOrder, e.Index, r.entries[i-1].Index)
		}
		if len(e.Data) > l.opts.MaxEntryBytes {
			return fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, len(e.Data), l.opts.MaxEntryBytes)
		}
		if e.Batch {
			if err := checkBatch(e.Data); err != nil {
				return err
			}
		}
	}
	return nil
}

// checkBatch is the structural check the log needs to assign offsets; full
// validation (CRC, records) belongs to the caller (package batch).
func checkBatch(b []byte) error {
	if len(b) < kafkaBatchHeader {
		return fmt.Errorf("%w: %d bytes is shorter than a batch header", ErrInvalidBatch, len(b))
	}
	if n := int64(int32(binary.BigEndian.Uint32(b[8:12]))) + 12; n != int64(len(b)) {
		return fmt.Errorf("%w: batchLength says %d bytes, have %d", ErrInvalidBatch, n, len(b))
	}
	if b[16] != 2 {
		return fmt.Errorf("%w: magic %d, want 2", ErrInvalidBatch, b[16])
	}
	if d := int32(binary.BigEndian.Uint32(b[23:27])); d < 0 {
		return fmt.Errorf("%w: negative lastOffsetDelta %d", ErrInvalidBatch, d)
	}
	return nil
}

// writeEntry frames e and writes it at the end of the active segment,
// rolling first when needed. The bytes are durable only after syncActive.
func (l *Log) writeEntry(e *Entry) error {
	var count uint32
	if e.Batch {
		count = uint32(int32(binary.BigEndian.Uint32(e.Data[23:27]))) + 1
	}
	size := int64(frameHeaderSize + len(e.Data))
	if l.needRoll(e.Index, size, count) {
		if err := l.roll(e.Index); err != nil {
			return err
		}
	}
	w := &l.w
	e.BaseOffset = w.next
	h := frameHeader{
		length:        uint32(len(e.Data)),
		entryType:     e.Type,
		index:         e.Index,
		term:          e.Term,
		baseOffset:    w.next,
		offsetCount:   count,
		syncedThrough: uint32(w.seg.size),
	}
	if e.Batch {
		h.flags = flagBatch
		// Only when it differs: the same raft entry always takes the same
		// offset, and a batch stored again (a follower of an in-memory
		// transport shares the leader's Data) is then only read.
		if binary.BigEndian.Uint64(e.Data[0:8]) != uint64(w.next) {
			binary.BigEndian.PutUint64(e.Data[0:8], uint64(w.next))
		}
		w.maxTs = max(w.maxTs, batchMaxTimestamp(e.Data))
	}
	n := len(w.hdrs)
	w.hdrs = append(w.hdrs, make([]byte, frameHeaderSize)...)
	putFrameHeader(w.hdrs[n:], &h, e.Data)
	w.payloads = append(w.payloads, e.Data)
	w.index = addIndexEntry(w.index, w.seg.hdr, w.pos, &h, w.maxTs, l.opts.IndexIntervalBytes)
	w.pos += size
	w.last, w.next = e.Index, h.nextOffset()
	if len(w.payloads) >= maxPendingFrames || w.pos-w.flushed >= int64(l.opts.MaxGroupBytes) {
		return l.flush()
	}
	return nil
}

func (l *Log) needRoll(index uint64, size int64, count uint32) bool {
	w := &l.w
	if w.seg == nil {
		return true
	}
	if w.pos == segmentHeaderSize {
		return false // never leave an empty segment behind
	}
	age := time.Duration(l.segmentAge.Load())
	return w.pos+size > l.segmentBytes.Load() ||
		(age > 0 && l.opts.Now().UnixMilli()-w.seg.hdr.createdMs >= age.Milliseconds()) ||
		uint64(w.next-w.seg.hdr.baseOffset)+uint64(count) > math.MaxUint32 ||
		index-w.seg.hdr.baseIndex > math.MaxUint32
}

func (l *Log) flush() error {
	w := &l.w
	if len(w.payloads) == 0 {
		return nil
	}
	w.iov = w.iov[:0]
	for i, p := range w.payloads {
		w.iov = append(w.iov, w.hdrs[i*frameHeaderSize:(i+1)*frameHeaderSize])
		if len(p) > 0 {
			w.iov = append(w.iov, p)
		}
	}
	want := w.pos - w.flushed
	n, err := vfs.WritevAt(w.seg.file, w.iov, w.flushed)
	if err == nil && int64(n) != want {
		err = io.ErrShortWrite
	}
	clear(w.payloads) // do not pin callers' batches
	clear(w.iov)
	w.hdrs, w.payloads = w.hdrs[:0], w.payloads[:0]
	if err != nil {
		return fmt.Errorf("log: write %s: %w", w.seg.path, err)
	}
	w.flushed += want
	return nil
}

// syncActive flushes, fsyncs and publishes the active segment's new end.
func (l *Log) syncActive() error {
	w := &l.w
	if w.seg == nil || w.pos == w.seg.size {
		return nil
	}
	if err := l.flush(); err != nil {
		return err
	}
	if err := w.seg.file.Sync(); err != nil {
		return fmt.Errorf("log: fsync %s: %w", w.seg.path, err)
	}
	l.mu.Lock()
	s := w.seg
	s.size, s.last, s.next, s.maxTs, s.index = w.pos, w.last, w.next, w.maxTs, w.index
	l.mu.Unlock()
	l.dropSynced() // after publishing: readers need not wait for the advice
	return nil
}

// dropSynced tells the kernel it may drop the page cache of the active
// segment's synced bytes older than Options.CacheWindow (in steps of at
// least 1 MiB, page aligned). They are clean, so the pages are freed at
// once and reused by the next writes. Why: a log that keeps every written
// page cached grows the page cache into memory never touched before, and
// on a VM each such page costs a host fault; measured, that page-cache copy
// was a third of the machine's CPU at 6 partitions (docs/BENCHMARKS.md).
// Readers of older bytes read the disk. Advice, so its error is ignored:
// the data is safe either way.
func (l *Log) dropSynced() {
	w := &l.w
	if l.opts.CacheWindow <= 0 {
		return
	}
	d, ok := w.seg.file.(vfs.CacheDropper)
	if !ok {
		return
	}
	if end := (w.pos - l.opts.CacheWindow) &^ (4096 - 1); end-w.dropped >= 1<<20 {
		_ = d.DropCache(w.dropped, end-w.dropped)
		w.dropped = end
	}
}

// roll seals the active segment (when there is one) and starts a new one
// whose first frame will have index.
func (l *Log) roll(index uint64) error {
	if s := l.w.seg; s != nil {
		if err := l.syncActive(); err != nil {
			return err
		}
		if err := vfs.WriteFileAtomic(l.fs, s.indexPath(), encodeIndex(s)); err != nil {
			return fmt.Errorf("log: write index of %s: %w", s.path, err)
		}
		l.mu.Lock()
		s.sealed = true
		l.mu.Unlock()
	}
	s, err := l.createSegment(index, l.w.next)
	if err != nil {
		return err
	}
	l.mu.Lock()
	l.segs = append(l.segs, s)
	l.mu.Unlock()
	l.w.reset(s)
	return nil
}

// createSegment creates, syncs and links a new empty segment file.
func (l *Log) createSegment(baseIndex uint64, baseOffset int64) (*segment, error) {
	hdr := segmentHeader{baseIndex: baseIndex, baseOffset: baseOffset, createdMs: l.opts.Now().UnixMilli()}
	path := filepath.Join(l.dir, segmentName(baseOffset, baseIndex)+segmentExt)
	f, err := l.fs.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("log: create segment: %w", err)
	}
	if _, err := f.WriteAt(hdr.encode(), 0); err != nil {
		f.Close()
		return nil, fmt.Errorf("log: write %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return nil, fmt.Errorf("log: fsync %s: %w", path, err)
	}
	if err := l.fs.SyncDir(l.dir); err != nil {
		f.Close()
		return nil, fmt.Errorf("log: fsync dir %s: %w", l.dir, err)
	}
	return &segment{path: path, file: f, hdr: hdr, size: segmentHeaderSize, last: baseIndex - 1, next: baseOffset, maxTs: -1}, nil
}

// removeSegment closes and unlinks a segment and its index; the caller
// syncs the directory.
func (l *Log) removeSegment(s *segment) error {
	s.file.Close()
	if err := l.fs.Remove(s.path); err != nil {
		return fmt.Errorf("log: remove %s: %w", s.path, err)
	}
	if err := l.fs.Remove(s.indexPath()); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("log: remove %s: %w", s.indexPath(), err)
	}
	return nil
}

func (l *Log) truncateFrom(index uint64) error {
	if len(l.segs) == 0 || l.segs[0].empty() || index > l.active().last {
		return nil
	}
	if first := l.segs[0].hdr.baseIndex; index < first {
		return fmt.Errorf("log: truncate from %d: before the first index %d", index, first)
	}
	l.gen.Add(1)
	l.mu.Lock()
	defer l.mu.Unlock()
	i := sort.Search(len(l.segs), func(i int) bool { return l.segs[i].last >= index })
	s := l.segs[i]
	// Find the frame at index: its position and offset are the new end.
	pos, next := int64(segmentHeaderSize), s.hdr.baseOffset
	if index > s.hdr.baseIndex {
		r := &frameReader{f: s.file, name: s.path, pos: s.posForIndex(index), end: s.size, chunk: 64 << 10}
		for {
			fr, err := r.next()
			if err == nil {
				err = r.verify(&fr) // a damaged header must not move the cut
			}
			if err != nil {
				return fmt.Errorf("log: truncate from %d: %w", index, err)
			}
			if fr.hdr.index == index {
				pos, next = fr.pos, fr.hdr.baseOffset
				break
			}
		}
	}
	for j := len(l.segs) - 1; j > i; j-- {
		if err := l.removeSegment(l.segs[j]); err != nil {
			return ioErr(err)
		}
	}
	l.segs = l.segs[:i+1]
	if err := l.fs.Remove(s.indexPath()); err != nil && !errors.Is(err, os.ErrNotExist) {
		return ioErr(err)
	}
	if err := l.fs.SyncDir(l.dir); err != nil {
		return ioErr(err)
	}
	if err := s.file.Truncate(pos); err != nil {
		return ioErr(err)
	}
	if err := s.file.Sync(); err != nil {
		return ioErr(err)
	}
	// Recompute the running state by walking from the last index entry
	// before pos; its running maximum already covers the frame it names.
	from := walkStart(s.hdr)
	if keep := sort.Search(len(s.index), func(k int) bool { return int64(s.index[k].pos) >= pos }); keep > 0 {
		e := s.index[keep-1]
		from.end, from.last, from.next, from.maxTs = int64(e.pos), s.hdr.baseIndex+uint64(e.relIndex)-1, s.hdr.baseOffset+int64(e.relOffset), e.maxTimestamp
		from.index = append([]indexEntry(nil), s.index[:keep-1]...)
	}
	w, err := walk(s.file, s.path, s.hdr, from, pos, l.opts.IndexIntervalBytes)
	if err == nil && w.bad != nil {
		err = w.bad
	}
	if err != nil {
		return err
	}
	if w.next != next {
		return corrupt(s.path, pos, "offset %d after truncation, expected %d", w.next, next)
	}
	s.size, s.last, s.next, s.maxTs, s.index, s.sealed = pos, w.last, w.next, w.maxTs, w.index, false
	if l.start > s.next {
		l.start = s.next
		// Persist the lowered start, or a reopen would hide the offsets
		// appended from here behind the old start.ckpt.
		if err := vfs.WriteFileAtomic(l.fs, filepath.Join(l.dir, checkpointName), encodeCheckpoint(l.start)); err != nil {
			return ioErr(fmt.Errorf("log: write start checkpoint: %w", err))
		}
	}
	l.w.reset(s)
	return nil
}

func (l *Log) deleteBefore(offset int64) error {
	l.mu.RLock()
	start, end := l.start, l.endLocked()
	l.mu.RUnlock()
	if offset > end || offset < 0 {
		return fmt.Errorf("%w: delete before %d, log ends at %d", ErrOffsetOutOfRange, offset, end)
	}
	if offset > start {
		if err := vfs.WriteFileAtomic(l.fs, filepath.Join(l.dir, checkpointName), encodeCheckpoint(offset)); err != nil {
			return ioErr(fmt.Errorf("log: write start checkpoint: %w", err))
		}
	}
	// Even when the start does not move, sweep the sealed segments below
	// it that an open SnapshotStream kept (pinned) the last time.
	l.mu.Lock()
	l.start = max(l.start, offset)
	n := 0
	for n < len(l.segs)-1 && l.segs[n].next <= l.start && l.segs[n].pins.Load() == 0 {
		n++
	}
	gone := append([]*segment(nil), l.segs[:n]...)
	l.segs = l.segs[n:]
	l.mu.Unlock()
	for _, s := range gone {
		if err := l.removeSegment(s); err != nil {
			return ioErr(err)
		}
	}
	if n > 0 {
		if err := l.fs.SyncDir(l.dir); err != nil {
			return ioErr(err)
		}
	}
	return nil
}

// removeAllSegments removes every segment and its index, newest first (a
// crash midway leaves a prefix of the old log), and fsyncs the directory.
// The caller holds mu and wmu.
func (l *Log) removeAllSegments() error {
	for j := len(l.segs) - 1; j >= 0; j-- {
		if err := l.removeSegment(l.segs[j]); err != nil {
			return err
		}
		l.segs = l.segs[:j]
	}
	return l.fs.SyncDir(l.dir)
}

func (l *Log) reset(index uint64, offset int64) error {
	l.gen.Add(1)
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.removeAllSegments(); err != nil {
		return ioErr(err)
	}
	// The checkpoint records where the log now starts, so recovery can
	// tell this deliberate start from lost head segments.
	if err := vfs.WriteFileAtomic(l.fs, filepath.Join(l.dir, checkpointName), encodeCheckpoint(offset)); err != nil {
		return ioErr(fmt.Errorf("log: write start checkpoint: %w", err))
	}
	s, err := l.createSegment(index, offset)
	if err != nil {
		return ioErr(err)
	}
	l.segs = []*segment{s}
	l.start = offset
	l.w.reset(s)
	return nil
}
