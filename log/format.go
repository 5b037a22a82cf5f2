package log

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"path/filepath"
	"strconv"
	"strings"
)

// The on-disk format is specified in FORMAT.md; keep the two in step.
const (
	formatVersion = 1

	segmentHeaderSize = 40
	frameHeaderSize   = 48
	indexHeaderSize   = 64
	indexEntrySize    = 24
	checkpointSize    = 24

	segmentMagic    = "SLSG"
	frameMagic      = "SLFR"
	indexMagic      = "SLIX"
	checkpointMagic = "SLCK"

	segmentExt     = ".seg"
	indexExt       = ".idx"
	tmpExt         = ".tmp"
	checkpointName = "start.ckpt"
	cleanedExt     = ".cleaned" // a segment rewritten by the cleaner, before its rename
	cleanName      = "clean.ckpt"
	cleanMagic     = "SLCL"

	// flagBatch marks a frame whose payload is a Kafka RecordBatch v2.
	flagBatch = 1 << 0

	// kafkaBatchHeader is the fixed part of a RecordBatch v2 the log reads.
	kafkaBatchHeader = 61
)

var crcTable = crc32.MakeTable(crc32.Castagnoli)

var le = binary.LittleEndian

// segmentHeader is the first 40 bytes of a segment file.
type segmentHeader struct {
	baseIndex  uint64
	baseOffset int64
	createdMs  int64
}

func (h segmentHeader) encode() []byte {
	b := make([]byte, segmentHeaderSize)
	copy(b, segmentMagic)
	b[4] = formatVersion
	le.PutUint64(b[8:], h.baseIndex)
	le.PutUint64(b[16:], uint64(h.baseOffset))
	le.PutUint64(b[24:], uint64(h.createdMs))
	le.PutUint32(b[36:], crc32.Checksum(b[:36], crcTable))
	return b
}

func decodeSegmentHeader(b []byte) (segmentHeader, error) {
	if len(b) < segmentHeaderSize {
		return segmentHeader{}, fmt.Errorf("segment header: %d bytes, want %d", len(b), segmentHeaderSize)
	}
	if string(b[:4]) != segmentMagic {
		return segmentHeader{}, fmt.Errorf("segment header: bad magic %x", b[:4])
	}
	if b[4] != formatVersion {
		return segmentHeader{}, fmt.Errorf("segment header: unsupported version %d", b[4])
	}
	if crc32.Checksum(b[:36], crcTable) != le.Uint32(b[36:]) {
		return segmentHeader{}, fmt.Errorf("segment header: checksum mismatch")
	}
	h := segmentHeader{
		baseIndex:  le.Uint64(b[8:]),
		baseOffset: int64(le.Uint64(b[16:])),
		createdMs:  int64(le.Uint64(b[24:])),
	}
	// The log never writes these: Raft indexes start at 1, offsets at 0.
	if h.baseIndex == 0 || h.baseOffset < 0 {
		return segmentHeader{}, fmt.Errorf("segment header: base index %d, offset %d out of range", h.baseIndex, h.baseOffset)
	}
	return h, nil
}

// frameHeader is the 48-byte header in front of every entry.
type frameHeader struct {
	crc           uint32
	length        uint32
	entryType     uint8
	flags         uint8
	index         uint64
	term          uint64
	baseOffset    int64
	offsetCount   uint32
	syncedThrough uint32
}

func (h *frameHeader) isBatch() bool { return h.flags&flagBatch != 0 }

// nextOffset is the offset the frame after this one starts at.
func (h *frameHeader) nextOffset() int64 { return h.baseOffset + int64(h.offsetCount) }

// size is the frame's length on disk.
func (h *frameHeader) size() int64 { return frameHeaderSize + int64(h.length) }

// putFrameHeader writes h into b[:frameHeaderSize] and the CRC over the
// header tail and payload.
func putFrameHeader(b []byte, h *frameHeader, payload []byte) {
	copy(b, frameMagic)
	le.PutUint32(b[8:], h.length)
	b[12] = h.entryType
	b[13] = h.flags
	b[14], b[15] = 0, 0
	le.PutUint64(b[16:], h.index)
	le.PutUint64(b[24:], h.term)
	le.PutUint64(b[32:], uint64(h.baseOffset))
	le.PutUint32(b[40:], h.offsetCount)
	le.PutUint32(b[44:], h.syncedThrough)
	crc := crc32.Update(0, crcTable, b[8:frameHeaderSize])
	h.crc = crc32.Update(crc, crcTable, payload)
	le.PutUint32(b[4:], h.crc)
}

// parseFrameHeader decodes a header without checking the CRC (the payload is
// needed for that: see frameHeader.verify).
func parseFrameHeader(b []byte) (frameHeader, bool) {
	if len(b) < frameHeaderSize || string(b[:4]) != frameMagic {
		return frameHeader{}, false
	}
	h := frameHeader{
		crc:           le.Uint32(b[4:]),
		length:        le.Uint32(b[8:]),
		entryType:     b[12],
		flags:         b[13],
		index:         le.Uint64(b[16:]),
		term:          le.Uint64(b[24:]),
		baseOffset:    int64(le.Uint64(b[32:])),
		offsetCount:   le.Uint32(b[40:]),
		syncedThrough: le.Uint32(b[44:]),
	}
	if b[14] != 0 || b[15] != 0 || h.flags&^flagBatch != 0 {
		return frameHeader{}, false
	}
	if h.isBatch() != (h.offsetCount > 0) {
		return frameHeader{}, false
	}
	return h, true
}

// verify checks the frame CRC given its raw header bytes and payload.
func (h *frameHeader) verify(raw, payload []byte) bool {
	crc := crc32.Update(0, crcTable, raw[8:frameHeaderSize])
	return crc32.Update(crc, crcTable, payload) == h.crc
}

// indexEntry locates one frame in a segment; see FORMAT.md "Index file".
type indexEntry struct {
	pos          uint32
	relIndex     uint32
	relOffset    uint32
	maxTimestamp int64
}

// segmentName is the fixed-width, sortable file stem of a segment.
func segmentName(baseOffset int64, baseIndex uint64) string {
	return fmt.Sprintf("%020d-%020d", baseOffset, baseIndex)
}

// parseSegmentName parses "<baseOffset>-<baseIndex>.seg".
func parseSegmentName(name string) (baseOffset int64, baseIndex uint64, ok bool) {
	stem, found := strings.CutSuffix(filepath.Base(name), segmentExt)
	if !found || len(stem) != 41 || stem[20] != '-' {
		return 0, 0, false
	}
	o, err1 := strconv.ParseInt(stem[:20], 10, 64)
	i, err2 := strconv.ParseUint(stem[21:], 10, 64)
	if err1 != nil || err2 != nil || o < 0 {
		return 0, 0, false
	}
	return o, i, true
}

func encodeCheckpoint(startOffset int64) []byte {
	b := make([]byte, checkpointSize)
	copy(b, checkpointMagic)
	b[4] = formatVersion
	le.PutUint64(b[8:], uint64(startOffset))
	le.PutUint32(b[20:], crc32.Checksum(b[:20], crcTable))
	return b
}

func decodeCheckpoint(b []byte) (int64, error) {
	if len(b) != checkpointSize || string(b[:4]) != checkpointMagic || b[4] != formatVersion {
		return 0, fmt.Errorf("checkpoint: bad size, magic or version")
	}
	if crc32.Checksum(b[:20], crcTable) != le.Uint32(b[20:]) {
		return 0, fmt.Errorf("checkpoint: checksum mismatch")
	}
	o := int64(le.Uint64(b[8:]))
	if o < 0 {
		return 0, fmt.Errorf("checkpoint: negative start offset %d", o)
	}
	return o, nil
}
