package log

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math"
	"os"
	"path/filepath"
	"time"

	"github.com/sluicemq/sluice/log/batch"
	"github.com/sluicemq/sluice/log/vfs"
)

// This file is the log cleaner (Kafka's cleanup.policy=compact): it
// rewrites sealed segments keeping, per key, only the latest record, and
// swaps each rewritten segment in crash-safely. FORMAT.md "Compaction"
// gives the rules and the swap's steps.

// DefaultCompactMaxKeys bounds the key map of a pass when
// CompactOptions.MaxKeys is 0: about 40-60 MiB of map.
const DefaultCompactMaxKeys = 1 << 20

// CompactOptions configure one cleaner pass.
type CompactOptions struct {
	// Below bounds the pass: only batches wholly below this offset are
	// cleaned. The caller passes its high watermark, so that only
	// committed records are ever cleaned.
	Below int64
	// DeleteRetention keeps a tombstone (a record with a null value) until
	// this long after its timestamp (Kafka delete.retention.ms).
	DeleteRetention time.Duration
	// MinCompactionLag leaves alone every segment, and all after it, whose
	// newest batch timestamp is younger than this (min.compaction.lag.ms).
	MinCompactionLag time.Duration
	// MinDirtyRatio: a pass runs only when the bytes not yet cleaned are
	// at least this fraction of the cleanable bytes
	// (min.cleanable.dirty.ratio); 0 runs every pass.
	MinDirtyRatio float64
	// Now is the cleaner's clock (tombstone and lag ages); default
	// Options.Now.
	Now func() time.Time
	// MaxKeys bounds the distinct keys a pass maps; when the cleanable
	// range holds more, the pass cleans only the prefix whose keys fit.
	// Default DefaultCompactMaxKeys.
	MaxKeys int
}

// CompactStats report a cleaner pass.
type CompactStats struct {
	SegmentsRewritten int
	RecordsRemoved    int64
	BytesBefore       int64 // size of the rewritten segments before
	BytesAfter        int64 // and after
	// DirtyRatio is the share of the cleanable bytes not yet cleaned when
	// the pass began; Ran reports whether it cleaned (the ratio reached
	// MinDirtyRatio and there was anything to clean).
	DirtyRatio float64
	Ran        bool
	// CleanedThrough is the end of the range the pass cleaned: batches
	// below it hold at most one record per key (past the lag and limits).
	CleanedThrough int64
}

// errCompactRaced means a segment changed under the pass (truncated,
// removed or replaced); the pass stops and the next one starts afresh.
var errCompactRaced = errors.New("log: segment changed during compaction")

// keyHash is a record key's SHA-256, truncated: 16 bytes as Kafka's offset
// map, and a hash no producer can steer into collisions.
type keyHash [16]byte

func hashKey(k []byte) keyHash {
	s := sha256.Sum256(k)
	return keyHash(s[:16])
}

// Compact runs one cleaner pass over the sealed segments: in every batch
// below the cleanable end (opts.Below, the active segment, the compaction
// lag and the key map's bound), a keyed record is removed when a later
// record of its key exists in that range, and a tombstone also when it is
// the latest of its key and older than opts.DeleteRetention. Keyless
// records, control and transactional batches, and batches that do not
// parse are kept. Offsets, Raft indexes and terms, entry types and every
// frame stay; a batch keeps its header but for its length, record count
// and CRC (batch.Filter). Each rewritten segment replaces its original
// atomically (FORMAT.md "Compaction"); readers of the original, including
// open SnapshotStreams, keep reading it until they finish.
//
// Passes are serialised; appends and reads go on meanwhile. A pass that
// finds its segments changed under it (truncation, snapshot install) stops
// without error. An I/O error during a swap fails the log closed.
func (l *Log) Compact(opts CompactOptions) (st CompactStats, err error) {
	switch {
	case opts.DeleteRetention < 0 || opts.MinCompactionLag < 0:
		return st, fmt.Errorf("log: compact: negative retention %v or lag %v", opts.DeleteRetention, opts.MinCompactionLag)
	case !(opts.MinDirtyRatio >= 0 && opts.MinDirtyRatio <= 1):
		return st, fmt.Errorf("log: compact: dirty ratio %v outside [0, 1]", opts.MinDirtyRatio)
	}
	if opts.Now == nil {
		opts.Now = l.opts.Now
	}
	if opts.MaxKeys <= 0 {
		opts.MaxKeys = DefaultCompactMaxKeys
	}
	l.cmu.Lock()
	defer l.cmu.Unlock()
	now := opts.Now()
	gen := l.Generation()
	segs, end, clean, dirty, err := l.cleanable(opts, now)
	if err != nil {
		return st, err
	}
	defer func() {
		if uerr := l.unpin(segs); err == nil && uerr != nil {
			err = uerr
		}
	}()
	st.CleanedThrough = l.cleaned
	if clean+dirty > 0 {
		st.DirtyRatio = float64(dirty) / float64(clean+dirty)
	}
	if len(segs) == 0 || (opts.MinDirtyRatio > 0 && (dirty == 0 || st.DirtyRatio < opts.MinDirtyRatio)) {
		return st, nil
	}
	st.Ran = true
	c := &cleaner{nowMs: now.UnixMilli(), retentionMs: opts.DeleteRetention.Milliseconds()}
	if c.keys, c.end, c.unparsedAt, err = l.keyMap(segs, end, opts.MaxKeys); err != nil {
		return st, l.compactErr(gen, err)
	}
	for _, s := range segs {
		if s.hdr.baseOffset >= c.end {
			break
		}
		if err := l.cleanSegment(s, c, &st); err != nil {
			return st, l.compactErr(gen, err)
		}
	}
	if c.end != l.cleaned {
		if err := l.submit(&request{kind: reqRun, fn: func() error { return l.writeCleaned(c.end, gen) }}); err != nil {
			return st, l.compactErr(gen, err)
		}
	}
	st.CleanedThrough = c.end
	return st, nil
}

// compactErr turns a failure caused by the log changing under the pass
// into a quiet stop, and one caused by the log closing into its error.
func (l *Log) compactErr(gen uint64, err error) error {
	if errors.Is(err, errCompactRaced) || l.Generation() != gen {
		return nil
	}
	l.mu.RLock()
	defer l.mu.RUnlock()
	if l.err != nil {
		return l.err
	}
	return err
}

// cleanable pins and returns the sealed segments a pass may clean, the end
// of the cleanable range, and their clean and dirty bytes (before and after
// the clean.ckpt hint).
func (l *Log) cleanable(o CompactOptions, now time.Time) (segs []*segment, end, clean, dirty int64, err error) {
	if l.cleaned < 0 {
		l.cleaned = l.readCleaned()
	}
	l.mu.RLock()
	defer l.mu.RUnlock()
	if l.err != nil {
		return nil, 0, 0, 0, l.err
	}
	if len(l.segs) < 2 {
		return nil, 0, 0, 0, nil
	}
	end = min(o.Below, l.active().hdr.baseOffset)
	for _, s := range l.segs[:len(l.segs)-1] {
		if s.hdr.baseOffset >= end {
			break
		}
		// As Kafka, the lag holds back the first segment with a record
		// that young and everything after it.
		if o.MinCompactionLag > 0 && s.maxTs >= 0 && now.UnixMilli()-s.maxTs < o.MinCompactionLag.Milliseconds() {
			end = s.hdr.baseOffset
			break
		}
		if s.next <= l.start {
			continue // unreadable; retention removes it
		}
		s.pins.Add(1)
		segs = append(segs, s)
		if s.next <= l.cleaned {
			clean += s.size
		} else {
			dirty += s.size
		}
	}
	return segs, end, clean, dirty, nil
}

// keyMap maps every key in the batches below end to the offset of its
// latest record. It returns a lower end when the map would exceed maxKeys,
// and the offset of the first batch it could not parse (math.MaxInt64 if
// none): no tombstone after it is removed, as it may hide older records.
func (l *Log) keyMap(segs []*segment, end int64, maxKeys int) (keys map[keyHash]int64, newEnd, unparsedAt int64, err error) {
	keys = make(map[keyHash]int64)
	unparsedAt = math.MaxInt64
	for _, s := range segs {
		r := &frameReader{f: s.file, name: s.path, pos: segmentHeaderSize, end: s.size, chunk: 1 << 20}
		for {
			fr, err := r.next()
			if err == io.EOF {
				break
			}
			if err == nil {
				err = r.verify(&fr)
			}
			if err != nil {
				return nil, 0, 0, err
			}
			if !fr.hdr.isBatch() {
				continue
			}
			if fr.hdr.nextOffset() > end {
				return keys, end, unparsedAt, nil
			}
			h, err := batch.ParseHeader(fr.payload)
			if err == nil && (h.IsControl() || h.IsTransactional()) {
				continue // kept whole; Sluice refuses them on produce anyway
			}
			if err == nil && len(keys)+int(h.RecordCount) > maxKeys {
				l.log.Warn().Int("max_keys", maxKeys).Int64("offset", fr.hdr.baseOffset).
					Msg("compaction key map full: cleaning stops before this offset")
				return keys, fr.hdr.baseOffset, unparsedAt, nil
			}
			if err == nil {
				err = batch.Records(fr.payload, batch.DefaultLimits, func(rec batch.Record) error {
					if rec.Key != nil {
						keys[hashKey(rec.Key)] = h.RecordOffset(rec)
					}
					return nil
				})
			}
			if err != nil {
				unparsedAt = min(unparsedAt, fr.hdr.baseOffset)
				l.log.Warn().Err(err).Str("file", s.path).Int64("offset", fr.hdr.baseOffset).
					Msg("compaction keeps a batch it cannot parse")
			}
		}
	}
	return keys, end, unparsedAt, nil
}

// cleaner decides which records a pass keeps.
type cleaner struct {
	keys        map[keyHash]int64
	end         int64
	unparsedAt  int64
	nowMs       int64
	retentionMs int64
}

func (c *cleaner) keep(h *batch.Header, r *batch.Record) bool {
	if r.Key == nil {
		return true
	}
	off := h.RecordOffset(*r)
	latest, ok := c.keys[hashKey(r.Key)]
	switch {
	case !ok:
		return true
	case latest > off:
		return false // superseded
	case latest == off && r.Value == nil && off < c.unparsedAt:
		// The latest record of its key is a tombstone: it goes once
		// delete.retention has passed, with every older record of the key.
		return h.RecordTimestamp(*r) > c.nowMs-c.retentionMs
	}
	return true
}

// cleanSegment rewrites s when the pass removes anything from it and swaps
// the copy in on the writer.
func (l *Log) cleanSegment(s *segment, c *cleaner, st *CompactStats) (err error) {
	r := &frameReader{f: s.file, name: s.path, pos: segmentHeaderSize, end: s.size, chunk: 1 << 20}
	var w *cleanedWriter
	defer func() {
		if w != nil {
			w.discard(l.fs)
		}
	}()
	var removed int64
	for {
		fr, err := r.next()
		if err == io.EOF {
			break
		}
		if err == nil {
			err = r.verify(&fr)
		}
		if err != nil {
			return err
		}
		payload, n := fr.payload, 0
		if fr.hdr.isBatch() && fr.hdr.nextOffset() <= c.end {
			out, k, ferr := batch.Filter(fr.payload, batch.DefaultLimits, c.keep)
			if ferr == nil {
				payload, n = out, k
			} // else kept whole; keyMap logged it
		}
		if n > 0 && w == nil {
			// The frames before the first change keep their bytes and
			// positions, so they are copied as they are.
			if w, err = newCleanedWriter(l.fs, s, fr.pos); err != nil {
				return err
			}
		}
		removed += int64(n)
		if w != nil {
			if err := w.frame(fr.hdr, payload); err != nil {
				return err
			}
		}
	}
	if w == nil {
		return nil
	}
	ns, err := w.finish(s, l.opts.IndexIntervalBytes)
	if err != nil {
		return err
	}
	ran := false
	tmp := w.path
	w = nil // the swap owns the copy now
	err = l.submit(&request{kind: reqRun, fn: func() error { ran = true; return l.swapCleaned(s, ns, tmp) }})
	if !ran {
		ns.file.Close()
		_ = l.fs.Remove(tmp) // or recovery removes it
	}
	if err != nil {
		return err
	}
	st.SegmentsRewritten++
	st.RecordsRemoved += removed
	st.BytesBefore += s.size
	st.BytesAfter += ns.size
	return nil
}

// swapCleaned replaces old with its cleaned copy ns (at tmp); on the
// writer, with wmu held.
func (l *Log) swapCleaned(old, ns *segment, tmp string) (err error) {
	defer func() {
		if err != nil {
			ns.file.Close()
		}
	}()
	i := -1
	for j, s := range l.segs[:max(len(l.segs)-1, 0)] {
		if s == old {
			i = j
		}
	}
	if i < 0 || !old.sealed {
		_ = l.fs.Remove(tmp) // or recovery removes it
		return errCompactRaced
	}
	// 1. The old index goes first, durably: no index of the old frames
	// may ever sit beside the new segment (recovery rebuilds a missing one).
	if err := l.fs.Remove(old.indexPath()); err != nil && !errors.Is(err, os.ErrNotExist) {
		return ioErr(fmt.Errorf("log: remove %s: %w", old.indexPath(), err))
	}
	if err := l.fs.SyncDir(l.dir); err != nil {
		return ioErr(fmt.Errorf("log: fsync dir %s: %w", l.dir, err))
	}
	// 2. The commit point: the copy takes the segment's name.
	if err := l.fs.Rename(tmp, old.path); err != nil {
		return ioErr(fmt.Errorf("log: rename %s: %w", tmp, err))
	}
	if err := l.fs.SyncDir(l.dir); err != nil {
		return ioErr(fmt.Errorf("log: fsync dir %s: %w", l.dir, err))
	}
	// 3. Its index (a cache).
	if err := vfs.WriteFileAtomic(l.fs, ns.indexPath(), encodeIndex(ns)); err != nil {
		return ioErr(fmt.Errorf("log: write index of %s: %w", ns.path, err))
	}
	l.mu.Lock()
	l.segs[i] = ns
	l.mu.Unlock()
	old.retire()
	return nil
}

// cleanedWriter writes the cleaned copy of one segment to <segment>.cleaned.
type cleanedWriter struct {
	f    vfs.File
	path string
	pos  int64 // bytes written, buffered ones included
	buf  []byte
	hdr  [frameHeaderSize]byte
}

const cleanedBuf = 1 << 20

// newCleanedWriter creates the copy and copies s's first upto bytes (its
// header and unchanged frames) into it.
func newCleanedWriter(fsys vfs.FS, s *segment, upto int64) (*cleanedWriter, error) {
	path := s.path + cleanedExt
	f, err := fsys.OpenFile(path, os.O_CREATE|os.O_TRUNC|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("log: create %s: %w", path, err)
	}
	w := &cleanedWriter{f: f, path: path, buf: make([]byte, 0, cleanedBuf+frameHeaderSize)}
	for w.pos < upto {
		n := min(upto-w.pos, cleanedBuf)
		chunk := make([]byte, n)
		if _, err := s.file.ReadAt(chunk, w.pos); err != nil {
			w.discard(fsys)
			return nil, fmt.Errorf("log: read %s: %w", s.path, err)
		}
		if err := w.write(chunk); err != nil {
			w.discard(fsys)
			return nil, err
		}
	}
	return w, nil
}

// frame appends a frame with h's index, term, type, flags and offsets and
// payload. syncedThrough is the frame's own position: the whole copy is
// fsynced before it takes the segment's name, so everything before every
// frame was durable (recovery then refuses, never truncates, damage).
func (w *cleanedWriter) frame(h frameHeader, payload []byte) error {
	if w.pos+frameHeaderSize+int64(len(payload)) > math.MaxUint32 {
		return fmt.Errorf("log: %s: cleaned segment would pass 4 GiB", w.path)
	}
	h.length = uint32(len(payload))
	h.syncedThrough = uint32(w.pos)
	putFrameHeader(w.hdr[:], &h, payload)
	if err := w.write(w.hdr[:]); err != nil {
		return err
	}
	return w.write(payload)
}

func (w *cleanedWriter) write(p []byte) error {
	w.buf = append(w.buf, p...)
	w.pos += int64(len(p))
	if len(w.buf) >= cleanedBuf {
		return w.flush()
	}
	return nil
}

func (w *cleanedWriter) flush() error {
	if len(w.buf) == 0 {
		return nil
	}
	n, err := w.f.WriteAt(w.buf, w.pos-int64(len(w.buf)))
	if err == nil && n != len(w.buf) {
		err = io.ErrShortWrite
	}
	w.buf = w.buf[:0]
	if err != nil {
		return fmt.Errorf("log: write %s: %w", w.path, err)
	}
	return nil
}

// finish fsyncs the copy and CRC-walks it: it must end where s ends, with
// the same last index, next offset and newest timestamp. It returns the
// segment that replaces s, its index built by the walk.
func (w *cleanedWriter) finish(s *segment, interval int) (*segment, error) {
	if err := w.flush(); err != nil {
		return nil, err
	}
	if err := w.f.Sync(); err != nil {
		return nil, fmt.Errorf("log: fsync %s: %w", w.path, err)
	}
	wr, err := walk(w.f, w.path, s.hdr, walkStart(s.hdr), w.pos, interval)
	switch {
	case err != nil:
		return nil, err
	case wr.bad != nil:
		return nil, fmt.Errorf("log: cleaned copy of %s: %w", s.path, wr.bad)
	case wr.end != w.pos || wr.last != s.last || wr.next != s.next || wr.maxTs != s.maxTs:
		return nil, fmt.Errorf("log: cleaned copy of %s ends at index %d offset %d, the segment at %d, %d",
			s.path, wr.last, wr.next, s.last, s.next)
	}
	return &segment{path: s.path, file: w.f, hdr: s.hdr, size: w.pos, last: wr.last, next: wr.next,
		maxTs: wr.maxTs, index: wr.index, sealed: true}, nil
}

// discard closes and removes an unfinished copy; recovery would remove it
// too.
func (w *cleanedWriter) discard(fsys vfs.FS) {
	w.f.Close()
	_ = fsys.Remove(w.path)
}

// readCleaned reads the clean.ckpt hint; a missing or damaged one is 0:
// it only decides when a pass runs, never what it keeps.
func (l *Log) readCleaned() int64 {
	path := filepath.Join(l.dir, cleanName)
	b, err := vfs.ReadFile(l.fs, path, checkpointSize)
	if err != nil {
		if !errors.Is(err, os.ErrNotExist) {
			l.log.Warn().Err(err).Str("file", path).Msg("ignoring the cleaner checkpoint")
		}
		return 0
	}
	if len(b) != checkpointSize || string(b[:4]) != cleanMagic || b[4] != formatVersion ||
		crc32.Checksum(b[:20], crcTable) != le.Uint32(b[20:]) || int64(le.Uint64(b[8:])) < 0 {
		l.log.Warn().Str("file", path).Msg("ignoring a damaged cleaner checkpoint")
		return 0
	}
	return int64(le.Uint64(b[8:]))
}

// writeCleaned persists the hint (on the writer), unless the entries
// changed since the pass began.
func (l *Log) writeCleaned(v int64, gen uint64) error {
	if l.Generation() != gen {
		return nil
	}
	b := make([]byte, checkpointSize)
	copy(b, cleanMagic)
	b[4] = formatVersion
	le.PutUint64(b[8:], uint64(v))
	le.PutUint32(b[20:], crc32.Checksum(b[:20], crcTable))
	if err := vfs.WriteFileAtomic(l.fs, filepath.Join(l.dir, cleanName), b); err != nil {
		return ioErr(fmt.Errorf("log: write %s: %w", cleanName, err))
	}
	l.cleaned = v
	return nil
}
