package log

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"sort"
	"sync"
	"sync/atomic"

	"github.com/sluicemq/sluice/log/vfs"
)

// maxFrameBytes bounds any frame length read from disk, whatever the options
// say, so a damaged length never sizes an allocation beyond it.
const maxFrameBytes = 1 << 30

// segment is one file of the log. Fields other than file and hdr are
// published by the writer under Log.mu and read by readers under Log.mu.RLock.
type segment struct {
	path   string // path of the .seg file
	file   vfs.File
	hdr    segmentHeader
	size   int64  // synced length, header included: readers never look past it
	last   uint64 // index of the last frame; hdr.baseIndex-1 when empty
	next   int64  // offset the next batch takes
	maxTs  int64  // largest batch maxTimestamp, -1 when none
	index  []indexEntry
	sealed bool
	// pins counts open SnapshotStreams reading the segment: DeleteBefore
	// keeps it (and every segment after it) while pins > 0. Incremented
	// under Log.mu.RLock, read by deleteBefore under Log.mu.
	pins atomic.Int32
	// retired is set when a cleaner pass swapped in a rewritten copy of the
	// segment (compact.go): the streams that pinned this one keep reading
	// its file, which the last unpin closes (closed makes that once).
	retired atomic.Bool
	closed  atomic.Bool
}

// retire closes a replaced segment's file now, or leaves that to the last
// unpin. The caller has removed s from Log.segs under Log.mu.
func (s *segment) retire() {
	s.retired.Store(true)
	if s.pins.Load() == 0 {
		s.closeRetired()
	}
}

func (s *segment) closeRetired() {
	if s.closed.CompareAndSwap(false, true) {
		s.file.Close()
	}
}

func (s *segment) empty() bool { return s.last < s.hdr.baseIndex }

func (s *segment) indexPath() string { return s.path[:len(s.path)-len(segmentExt)] + indexExt }

// posForOffset returns the position of the last indexed frame whose base
// offset is <= off.
func (s *segment) posForOffset(off int64) int64 {
	rel := off - s.hdr.baseOffset
	i := sort.Search(len(s.index), func(i int) bool { return int64(s.index[i].relOffset) > rel })
	if i == 0 {
		return segmentHeaderSize
	}
	return int64(s.index[i-1].pos)
}

// posForIndex returns the position of the last indexed frame whose index is <= idx.
func (s *segment) posForIndex(idx uint64) int64 {
	rel := idx - s.hdr.baseIndex
	i := sort.Search(len(s.index), func(i int) bool { return uint64(s.index[i].relIndex) > rel })
	if i == 0 {
		return segmentHeaderSize
	}
	return int64(s.index[i-1].pos)
}

// posForTimestamp returns where to start scanning for the first batch whose
// maxTimestamp is >= ts: just before the first index entry whose running
// maximum reaches ts.
func (s *segment) posForTimestamp(ts int64) int64 {
	i := sort.Search(len(s.index), func(i int) bool { return s.index[i].maxTimestamp >= ts })
	if i == 0 {
		return segmentHeaderSize
	}
	return int64(s.index[i-1].pos)
}

// frameReader walks frames of one segment between pos and end, reading the
// file in chunks. Payload slices it returns stay valid: a chunk is never
// reused once handed out.
type frameReader struct {
	f        vfs.File
	name     string
	pos, end int64
	chunk    int
	buf      []byte
	bufStart int64
	// keep, when set, makes fill take buffers from readBufs and record them
	// here, so the caller can hand them back (ReadResult.Release).
	keep *[][]byte
}

// readBufs recycles Read's chunk buffers: allocating a fresh megabyte per
// fetch made the garbage collector, not the read, the cost of a fetch.
var readBufs sync.Pool

// maxPooledRead keeps unusually large buffers out of the pool.
const maxPooledRead = 16 << 20

func getReadBuf(size int) []byte {
	if p, _ := readBufs.Get().(*[]byte); p != nil && cap(*p) >= size {
		return (*p)[:size]
	}
	return make([]byte, size)
}

type frame struct {
	pos     int64
	hdr     frameHeader
	raw     []byte // the 48 header bytes
	payload []byte
}

// next returns the frame at r.pos, io.EOF at r.end, or a *CorruptError.
// It does not verify the CRC; call verify on frames that are used.
func (r *frameReader) next() (frame, error) {
	if r.pos >= r.end {
		return frame{}, io.EOF
	}
	if r.end-r.pos < frameHeaderSize {
		return frame{}, corrupt(r.name, r.pos, "short frame header")
	}
	if err := r.fill(frameHeaderSize); err != nil {
		return frame{}, err
	}
	raw := r.buf[r.pos-r.bufStart:][:frameHeaderSize]
	h, ok := parseFrameHeader(raw)
	if !ok {
		return frame{}, corrupt(r.name, r.pos, "bad frame header")
	}
	if int64(h.length) > r.end-r.pos-frameHeaderSize || h.length > maxFrameBytes {
		return frame{}, corrupt(r.name, r.pos, "frame length %d runs past the end", h.length)
	}
	if err := r.fill(int(h.size())); err != nil {
		return frame{}, err
	}
	off := r.pos - r.bufStart
	fr := frame{pos: r.pos, hdr: h, raw: r.buf[off : off+frameHeaderSize], payload: r.buf[off+frameHeaderSize : off+h.size()]}
	r.pos += h.size()
	return fr, nil
}

// fill makes sure n bytes from r.pos are in r.buf.
func (r *frameReader) fill(n int) error {
	if r.buf != nil && r.pos >= r.bufStart && r.pos+int64(n) <= r.bufStart+int64(len(r.buf)) {
		return nil
	}
	size := int64(max(n, r.chunk))
	size = min(size, r.end-r.pos)
	var buf []byte
	if r.keep != nil {
		buf = getReadBuf(int(size))
		*r.keep = append(*r.keep, buf)
	} else {
		buf = make([]byte, size)
	}
	if _, err := r.f.ReadAt(buf, r.pos); err != nil && !(errors.Is(err, io.EOF)) {
		return fmt.Errorf("log: read %s at %d: %w", r.name, r.pos, err)
	} else if err != nil {
		return corrupt(r.name, r.pos, "file shorter than expected")
	}
	r.buf, r.bufStart = buf, r.pos
	return nil
}

func (r *frameReader) verify(fr *frame) error {
	if !fr.hdr.verify(fr.raw, fr.payload) {
		return corrupt(r.name, fr.pos, "frame checksum mismatch (index %d)", fr.hdr.index)
	}
	return nil
}

// batchMaxTimestamp reads maxTimestamp from a RecordBatch v2 payload.
func batchMaxTimestamp(p []byte) int64 {
	if len(p) < kafkaBatchHeader {
		return -1
	}
	return int64(binary.BigEndian.Uint64(p[35:43]))
}

// walkResult is what a CRC walk of a segment learned.
type walkResult struct {
	end   int64 // position after the last good frame
	last  uint64
	term  uint64 // term of the frame at last; 0 when the walk found none
	next  int64
	maxTs int64
	index []indexEntry
	bad   error // the *CorruptError that stopped the walk early, nil if clean to EOF
}

// walkStart is the state before the first frame of a segment.
func walkStart(hdr segmentHeader) walkResult {
	return walkResult{end: segmentHeaderSize, last: hdr.baseIndex - 1, next: hdr.baseOffset, maxTs: -1}
}

// walk verifies every frame of a segment from the position and state in from
// up to size, extending from's index. It stops at the first bad frame and
// reports it in bad; err is for I/O errors only.
func walk(f vfs.File, name string, hdr segmentHeader, from walkResult, size int64, indexInterval int) (walkResult, error) {
	w := from
	r := &frameReader{f: f, name: name, pos: w.end, end: size, chunk: 1 << 20}
	for {
		fr, err := r.next()
		if err == io.EOF {
			return w, nil
		}
		var ce *CorruptError
		if errors.As(err, &ce) {
			w.bad = err
			return w, nil
		}
		if err != nil {
			return w, err
		}
		if err := r.verify(&fr); err != nil {
			w.bad = err
			return w, nil
		}
		if reason := continuityError(&fr, w.last, w.next); reason != "" {
			w.bad = corrupt(name, fr.pos, "%s", reason)
			return w, nil
		}
		if fr.hdr.isBatch() {
			w.maxTs = max(w.maxTs, batchMaxTimestamp(fr.payload))
		}
		w.index = addIndexEntry(w.index, hdr, fr.pos, &fr.hdr, w.maxTs, indexInterval)
		w.last, w.term, w.next, w.end = fr.hdr.index, fr.hdr.term, fr.hdr.nextOffset(), r.pos
	}
}

// addIndexEntry appends an entry for the frame at pos when it is the
// segment's first frame or at least interval bytes past the previous entry.
// maxTs is the running maximum timestamp including this frame; frames between
// entries need no entry of their own, because a time lookup scans from the
// entry before the first one whose running maximum reaches the target.
func addIndexEntry(index []indexEntry, hdr segmentHeader, pos int64, h *frameHeader, maxTs int64, interval int) []indexEntry {
	if n := len(index); n > 0 && pos-int64(index[n-1].pos) < int64(interval) {
		return index
	}
	return append(index, indexEntry{
		pos:          uint32(pos),
		relIndex:     uint32(h.index - hdr.baseIndex),
		relOffset:    uint32(h.baseOffset - hdr.baseOffset),
		maxTimestamp: maxTs,
	})
}

// continuityError checks a frame against the one before it and its own payload.
func continuityError(fr *frame, prevIndex uint64, prevNext int64) string {
	h := &fr.hdr
	if h.index != prevIndex+1 {
		return fmt.Sprintf("index %d does not follow %d", h.index, prevIndex)
	}
	if h.baseOffset != prevNext {
		return fmt.Sprintf("offset %d does not follow %d", h.baseOffset, prevNext)
	}
	if h.isBatch() {
		p := fr.payload
		if len(p) < kafkaBatchHeader {
			return "batch frame shorter than a RecordBatch header"
		}
		if int64(binary.BigEndian.Uint64(p[0:8])) != h.baseOffset {
			return "batch baseOffset disagrees with its frame"
		}
		if int64(int32(binary.BigEndian.Uint32(p[23:27])))+1 != int64(h.offsetCount) {
			return "batch lastOffsetDelta disagrees with its frame"
		}
	}
	return ""
}

// encodeIndex serialises a sealed segment's index file.
func encodeIndex(s *segment) []byte {
	b := make([]byte, indexHeaderSize+indexEntrySize*len(s.index))
	copy(b, indexMagic)
	b[4] = formatVersion
	le.PutUint64(b[8:], s.hdr.baseIndex)
	le.PutUint64(b[16:], uint64(s.hdr.baseOffset))
	le.PutUint64(b[24:], uint64(s.size))
	le.PutUint64(b[32:], s.last)
	le.PutUint64(b[40:], uint64(s.next))
	le.PutUint64(b[48:], uint64(s.maxTs))
	le.PutUint32(b[56:], uint32(len(s.index)))
	p := b[indexHeaderSize:]
	for _, e := range s.index {
		le.PutUint32(p[0:], e.pos)
		le.PutUint32(p[4:], e.relIndex)
		le.PutUint32(p[8:], e.relOffset)
		le.PutUint64(p[16:], uint64(e.maxTimestamp))
		p = p[indexEntrySize:]
	}
	crc := crc32.Update(0, crcTable, b[:60])
	crc = crc32.Update(crc, crcTable, b[indexHeaderSize:])
	le.PutUint32(b[60:], crc)
	return b
}

// decodeIndex parses an index file and checks it matches the segment header
// and size. Any disagreement means the index must be rebuilt.
func decodeIndex(b []byte, hdr segmentHeader, size int64) (last uint64, next, maxTs int64, entries []indexEntry, err error) {
	if len(b) < indexHeaderSize || string(b[:4]) != indexMagic || b[4] != formatVersion {
		return 0, 0, 0, nil, errors.New("bad index header")
	}
	n := le.Uint32(b[56:])
	if int64(len(b)) != indexHeaderSize+int64(indexEntrySize)*int64(n) {
		return 0, 0, 0, nil, errors.New("index length disagrees with its entry count")
	}
	crc := crc32.Update(0, crcTable, b[:60])
	crc = crc32.Update(crc, crcTable, b[indexHeaderSize:])
	if crc != le.Uint32(b[60:]) {
		return 0, 0, 0, nil, errors.New("index checksum mismatch")
	}
	if le.Uint64(b[8:]) != hdr.baseIndex || int64(le.Uint64(b[16:])) != hdr.baseOffset {
		return 0, 0, 0, nil, errors.New("index base disagrees with segment")
	}
	if int64(le.Uint64(b[24:])) != size {
		return 0, 0, 0, nil, fmt.Errorf("index covers %d bytes, segment has %d", le.Uint64(b[24:]), size)
	}
	last, next, maxTs = le.Uint64(b[32:]), int64(le.Uint64(b[40:])), int64(le.Uint64(b[48:]))
	if last < hdr.baseIndex || next < hdr.baseOffset || n == 0 {
		return 0, 0, 0, nil, errors.New("index describes an empty or backwards segment")
	}
	entries = make([]indexEntry, n)
	p := b[indexHeaderSize:]
	prev := indexEntry{}
	for i := range entries {
		e := indexEntry{
			pos:          le.Uint32(p[0:]),
			relIndex:     le.Uint32(p[4:]),
			relOffset:    le.Uint32(p[8:]),
			maxTimestamp: int64(le.Uint64(p[16:])),
		}
		if int64(e.pos) >= size || (i > 0 && (e.pos <= prev.pos || e.relIndex <= prev.relIndex || e.relOffset < prev.relOffset || e.maxTimestamp < prev.maxTimestamp)) {
			return 0, 0, 0, nil, fmt.Errorf("index entry %d out of order", i)
		}
		if i == 0 && (e.pos != segmentHeaderSize || e.relIndex != 0 || e.relOffset != 0) {
			return 0, 0, 0, nil, errors.New("first index entry is not the first frame")
		}
		entries[i], prev = e, e
		p = p[indexEntrySize:]
	}
	return last, next, maxTs, entries, nil
}
