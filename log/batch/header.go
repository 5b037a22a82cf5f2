package batch

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"math"
)

// Wire layout of the v2 batch header. All integers are big-endian.
const (
	// HeaderSize is the fixed size of a v2 batch header: everything before
	// the first record (or before the compressed records blob).
	HeaderSize = 61

	// MagicV2 is the only batch format version this package handles.
	MagicV2 = 2

	// LengthFieldEnd is the number of bytes (baseOffset + batchLength)
	// that batchLength does not count: a batch occupies batchLength +
	// LengthFieldEnd bytes.
	LengthFieldEnd = 12

	// CRCStart is where the CRC-covered region begins (the attributes
	// field); it runs to the end of the batch. baseOffset, batchLength,
	// partitionLeaderEpoch and magic are outside it, so the broker can
	// rewrite offsets and epochs without recomputing the CRC.
	CRCStart = 21

	offBaseOffset      = 0
	offBatchLength     = 8
	offLeaderEpoch     = 12
	offMagic           = 16
	offCRC             = 17
	offAttributes      = 21
	offLastOffsetDelta = 23
	offBaseTimestamp   = 27
	offMaxTimestamp    = 35
	offProducerID      = 43
	offProducerEpoch   = 51
	offBaseSequence    = 53
	offRecordCount     = 57

	// minBatchLength is the smallest legal batchLength: a header with no
	// records.
	minBatchLength = HeaderSize - LengthFieldEnd
)

// Attribute bits of the int16 attributes field.
const (
	// AttrCodecMask selects the compression codec bits (0-2).
	AttrCodecMask int16 = 0x07
	// AttrLogAppendTime marks the batch timestamps as broker append time
	// rather than producer create time (bit 3).
	AttrLogAppendTime int16 = 0x08
	// AttrTransactional marks a batch written inside a transaction (bit 4).
	AttrTransactional int16 = 0x10
	// AttrControl marks a control batch holding transaction markers (bit 5).
	AttrControl int16 = 0x20
	// AttrDeleteHorizon means baseTimestamp holds the compaction delete
	// horizon (bit 6).
	AttrDeleteHorizon int16 = 0x40
)

// Sentinel values used by Kafka in header fields.
const (
	// NoTimestamp is the timestamp value meaning "unknown".
	NoTimestamp int64 = -1
	// NoProducerID is the producerId of a non-idempotent producer.
	NoProducerID int64 = -1
	// NoProducerEpoch is the producerEpoch of a non-idempotent producer.
	NoProducerEpoch int16 = -1
	// NoSequence is the baseSequence of a non-idempotent producer.
	NoSequence int32 = -1
)

// castagnoli is the CRC-32C table; hash/crc32 uses the SSE4.2/ARM64 CRC
// instructions for it when available.
var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Header is the decoded 61-byte header of a v2 record batch.
type Header struct {
	// BaseOffset is the offset of the first record (assigned by the broker;
	// producers send 0).
	BaseOffset int64
	// BatchLength is the byte length of the batch after this field, i.e.
	// the whole batch minus LengthFieldEnd.
	BatchLength int32
	// PartitionLeaderEpoch is the leader epoch at append time (set by the
	// broker; producers send -1 or 0).
	PartitionLeaderEpoch int32
	// Magic is the format version; always MagicV2 for a parsed header.
	Magic int8
	// CRC is the stored CRC-32C of bytes [CRCStart:end].
	CRC uint32
	// Attributes holds the codec, timestamp type and flag bits (Attr*).
	Attributes int16
	// LastOffsetDelta is the offset delta of the last record ever in the
	// batch; compaction may remove records but keeps this value.
	LastOffsetDelta int32
	// BaseTimestamp is the first record's timestamp (or the delete horizon
	// when AttrDeleteHorizon is set), NoTimestamp if unknown.
	BaseTimestamp int64
	// MaxTimestamp is the largest record timestamp for create time, or the
	// broker append time for LogAppendTime batches.
	MaxTimestamp int64
	// ProducerID identifies an idempotent/transactional producer, or
	// NoProducerID.
	ProducerID int64
	// ProducerEpoch is the producer's epoch, or NoProducerEpoch.
	ProducerEpoch int16
	// BaseSequence is the sequence number of the first record, or NoSequence.
	BaseSequence int32
	// RecordCount is the number of records present in the batch.
	RecordCount int32
}

// ParseHeader decodes the first HeaderSize bytes of b and checks the header
// fields for sanity on their own: magic, minimum batchLength, codec, record
// count versus lastOffsetDelta, timestamps and producer fields. It does not
// look at the records, the CRC or whether len(b) matches batchLength; use
// Validate for a whole batch. b may be longer than one batch.
func ParseHeader(b []byte) (Header, error) {
	if len(b) < HeaderSize {
		return Header{}, fmt.Errorf("%w: %d bytes, need %d for a header", ErrTooShort, len(b), HeaderSize)
	}
	h := Header{
		BaseOffset:           int64(binary.BigEndian.Uint64(b[offBaseOffset:])),
		BatchLength:          int32(binary.BigEndian.Uint32(b[offBatchLength:])),
		PartitionLeaderEpoch: int32(binary.BigEndian.Uint32(b[offLeaderEpoch:])),
		Magic:                int8(b[offMagic]),
		CRC:                  binary.BigEndian.Uint32(b[offCRC:]),
		Attributes:           int16(binary.BigEndian.Uint16(b[offAttributes:])),
		LastOffsetDelta:      int32(binary.BigEndian.Uint32(b[offLastOffsetDelta:])),
		BaseTimestamp:        int64(binary.BigEndian.Uint64(b[offBaseTimestamp:])),
		MaxTimestamp:         int64(binary.BigEndian.Uint64(b[offMaxTimestamp:])),
		ProducerID:           int64(binary.BigEndian.Uint64(b[offProducerID:])),
		ProducerEpoch:        int16(binary.BigEndian.Uint16(b[offProducerEpoch:])),
		BaseSequence:         int32(binary.BigEndian.Uint32(b[offBaseSequence:])),
		RecordCount:          int32(binary.BigEndian.Uint32(b[offRecordCount:])),
	}
	return h, h.check()
}

// check validates the header fields that can be judged without the records.
func (h *Header) check() error {
	if h.Magic != MagicV2 {
		return fmt.Errorf("%w: magic %d, want %d", ErrBadMagic, h.Magic, MagicV2)
	}
	if h.BatchLength < minBatchLength {
		return fmt.Errorf("%w: batchLength %d is below the header size %d", ErrLengthMismatch, h.BatchLength, minBatchLength)
	}
	if c := h.Codec(); !c.valid() {
		return fmt.Errorf("%w: codec %d", ErrUnsupportedCodec, c)
	}
	if h.RecordCount < 0 {
		return fmt.Errorf("%w: negative recordCount %d", ErrRecordCount, h.RecordCount)
	}
	if h.LastOffsetDelta < 0 {
		return fmt.Errorf("%w: negative lastOffsetDelta %d", ErrBadOffsetDelta, h.LastOffsetDelta)
	}
	// Offset deltas are distinct and within [0, lastOffsetDelta], so there
	// can never be more records than lastOffsetDelta+1.
	if int64(h.RecordCount) > int64(h.LastOffsetDelta)+1 {
		return fmt.Errorf("%w: recordCount %d exceeds lastOffsetDelta %d + 1", ErrBadOffsetDelta, h.RecordCount, h.LastOffsetDelta)
	}
	if h.BaseOffset < 0 || h.BaseOffset > math.MaxInt64-int64(h.LastOffsetDelta)-1 {
		return fmt.Errorf("%w: baseOffset %d out of range", ErrBadHeader, h.BaseOffset)
	}
	if h.BaseTimestamp < NoTimestamp {
		return fmt.Errorf("%w: baseTimestamp %d", ErrBadTimestamp, h.BaseTimestamp)
	}
	if h.MaxTimestamp < NoTimestamp {
		return fmt.Errorf("%w: maxTimestamp %d", ErrBadTimestamp, h.MaxTimestamp)
	}
	// For create time, maxTimestamp is the maximum over records whose first
	// one has baseTimestamp, so it cannot be smaller. Append time and the
	// delete horizon replace one of the two fields with a broker value, so
	// no order holds between them then.
	if h.Attributes&(AttrLogAppendTime|AttrDeleteHorizon) == 0 &&
		h.MaxTimestamp != NoTimestamp && h.MaxTimestamp < h.BaseTimestamp {
		return fmt.Errorf("%w: maxTimestamp %d < baseTimestamp %d", ErrBadTimestamp, h.MaxTimestamp, h.BaseTimestamp)
	}
	if h.ProducerID < NoProducerID {
		return fmt.Errorf("%w: producerId %d", ErrBadHeader, h.ProducerID)
	}
	if h.ProducerEpoch < NoProducerEpoch {
		return fmt.Errorf("%w: producerEpoch %d", ErrBadHeader, h.ProducerEpoch)
	}
	if h.BaseSequence < NoSequence {
		return fmt.Errorf("%w: baseSequence %d", ErrBadHeader, h.BaseSequence)
	}
	return nil
}

// Codec returns the compression codec named by the attributes.
func (h Header) Codec() Codec { return Codec(h.Attributes & AttrCodecMask) }

// IsLogAppendTime reports whether the batch timestamps are broker append
// time; then every record's timestamp is MaxTimestamp.
func (h Header) IsLogAppendTime() bool { return h.Attributes&AttrLogAppendTime != 0 }

// IsTransactional reports whether the batch was written in a transaction.
func (h Header) IsTransactional() bool { return h.Attributes&AttrTransactional != 0 }

// IsControl reports whether the batch holds control records (transaction
// markers) rather than user data.
func (h Header) IsControl() bool { return h.Attributes&AttrControl != 0 }

// HasDeleteHorizon reports whether BaseTimestamp is a compaction delete
// horizon rather than a record timestamp.
func (h Header) HasDeleteHorizon() bool { return h.Attributes&AttrDeleteHorizon != 0 }

// Size returns the number of bytes the whole batch occupies.
func (h Header) Size() int { return int(h.BatchLength) + LengthFieldEnd }

// LastOffset returns the offset of the last record the batch ever held,
// which is what the log end offset advances past.
func (h Header) LastOffset() int64 { return h.BaseOffset + int64(h.LastOffsetDelta) }

// NextOffset returns the offset the next batch in the log must start at.
func (h Header) NextOffset() int64 { return h.LastOffset() + 1 }

// LastSequence returns the sequence number of the last record, wrapping at
// math.MaxInt32 as Kafka producers do, or NoSequence for a batch without
// sequence numbers.
func (h Header) LastSequence() int32 {
	if h.BaseSequence < 0 {
		return NoSequence
	}
	s := int64(h.BaseSequence) + int64(h.LastOffsetDelta)
	if s > math.MaxInt32 {
		s -= math.MaxInt32 + 1
	}
	return int32(s)
}

// RecordOffset returns the absolute offset of record r of this batch.
func (h Header) RecordOffset(r Record) int64 { return h.BaseOffset + int64(r.OffsetDelta) }

// RecordTimestamp returns the timestamp of record r of this batch as a
// consumer sees it: MaxTimestamp for LogAppendTime batches, otherwise
// BaseTimestamp plus the record's delta.
func (h Header) RecordTimestamp(r Record) int64 {
	if h.IsLogAppendTime() {
		return h.MaxTimestamp
	}
	return h.BaseTimestamp + r.TimestampDelta
}

// SetBaseOffset overwrites the baseOffset field of the batch in b, as the
// broker does when assigning offsets on append. The field is outside the
// CRC, so nothing else changes. It panics if len(b) < HeaderSize.
func SetBaseOffset(b []byte, off int64) {
	_ = b[HeaderSize-1]
	binary.BigEndian.PutUint64(b[offBaseOffset:], uint64(off))
}

// SetPartitionLeaderEpoch overwrites the partitionLeaderEpoch field of the
// batch in b. The field is outside the CRC. It panics if len(b) < HeaderSize.
func SetPartitionLeaderEpoch(b []byte, epoch int32) {
	_ = b[HeaderSize-1]
	binary.BigEndian.PutUint32(b[offLeaderEpoch:], uint32(epoch))
}

// SetLogAppendTime marks the batch in b (exactly one whole batch) as using
// LogAppendTime with append time ts, the way Kafka's broker does for topics
// with message.timestamp.type=LogAppendTime: it sets the timestamp-type
// attribute bit, stores ts in maxTimestamp (consumers then use it for every
// record), leaves baseTimestamp and the records alone and recomputes the CRC.
func SetLogAppendTime(b []byte, ts int64) error {
	if len(b) < HeaderSize {
		return fmt.Errorf("%w: %d bytes, need %d for a header", ErrTooShort, len(b), HeaderSize)
	}
	if n := int64(int32(binary.BigEndian.Uint32(b[offBatchLength:]))) + LengthFieldEnd; n != int64(len(b)) {
		return fmt.Errorf("%w: batchLength says %d bytes, have %d", ErrLengthMismatch, n, len(b))
	}
	if ts < NoTimestamp {
		return fmt.Errorf("%w: append time %d", ErrInvalidInput, ts)
	}
	attrs := binary.BigEndian.Uint16(b[offAttributes:]) | uint16(AttrLogAppendTime)
	binary.BigEndian.PutUint16(b[offAttributes:], attrs)
	binary.BigEndian.PutUint64(b[offMaxTimestamp:], uint64(ts))
	binary.BigEndian.PutUint32(b[offCRC:], crc32.Checksum(b[CRCStart:], castagnoli))
	return nil
}
