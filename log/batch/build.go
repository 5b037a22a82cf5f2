package batch

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"math"
)

// BuildOptions sets the header fields of a batch made by Build. The zero
// value builds an uncompressed, non-idempotent, create-time batch at base
// offset 0 with timestamp 0.
type BuildOptions struct {
	// BaseOffset is written to the baseOffset field.
	BaseOffset int64
	// PartitionLeaderEpoch is written to the partitionLeaderEpoch field.
	PartitionLeaderEpoch int32
	// Codec compresses the records (see Compress for the formats).
	Codec Codec
	// BaseTimestamp is the first record's timestamp, or NoTimestamp. The
	// maxTimestamp field is computed from it and the largest non-negative
	// record timestamp delta (NoTimestamp stays NoTimestamp).
	BaseTimestamp int64
	// Transactional sets the transactional attribute bit.
	Transactional bool
	// Control sets the control-batch attribute bit.
	Control bool
	// Producer gives the idempotence fields; nil writes
	// NoProducerID/NoProducerEpoch/NoSequence.
	Producer *ProducerInfo
	// KeepOffsetDeltas makes Build use each Record.OffsetDelta as given
	// (they must increase from 0 or more), as when compaction rewrites a
	// batch. Otherwise record i gets offset delta i.
	KeepOffsetDeltas bool
	// LastOffsetDelta, with KeepOffsetDeltas, overrides lastOffsetDelta
	// (it must be at least the last record's delta); zero means the last
	// record's delta. Compaction uses it to keep the offset range of a
	// batch whose last records were removed.
	LastOffsetDelta int32
}

// ProducerInfo holds the idempotent/transactional producer fields.
type ProducerInfo struct {
	// ID is the producer id.
	ID int64
	// Epoch is the producer epoch.
	Epoch int16
	// BaseSequence is the sequence number of the first record.
	BaseSequence int32
}

// Build encodes records as one v2 batch with a correct length and CRC.
// Record slices are copied; nil Key/Value encode as null. It returns an
// error wrapping ErrInvalidInput or ErrUnsupportedCodec if the inputs
// cannot form a valid batch.
func Build(records []Record, opts BuildOptions) ([]byte, error) {
	if !opts.Codec.valid() {
		return nil, fmt.Errorf("%w: codec %d", ErrUnsupportedCodec, opts.Codec)
	}
	if len(records) > math.MaxInt32 {
		return nil, fmt.Errorf("%w: %d records", ErrInvalidInput, len(records))
	}
	if opts.BaseTimestamp < NoTimestamp {
		return nil, fmt.Errorf("%w: baseTimestamp %d", ErrInvalidInput, opts.BaseTimestamp)
	}
	if opts.BaseOffset < 0 {
		return nil, fmt.Errorf("%w: baseOffset %d", ErrInvalidInput, opts.BaseOffset)
	}

	lastOffsetDelta := int32(max(len(records)-1, 0))
	if opts.KeepOffsetDeltas {
		prev := int64(-1)
		for i := range records {
			d := records[i].OffsetDelta
			if int64(d) <= prev {
				return nil, fmt.Errorf("%w: record %d offsetDelta %d does not increase from %d", ErrInvalidInput, i, d, prev)
			}
			prev = int64(d)
		}
		lastOffsetDelta = int32(max(prev, 0))
		if opts.LastOffsetDelta != 0 {
			if opts.LastOffsetDelta < lastOffsetDelta {
				return nil, fmt.Errorf("%w: lastOffsetDelta %d below the last record's %d", ErrInvalidInput, opts.LastOffsetDelta, lastOffsetDelta)
			}
			lastOffsetDelta = opts.LastOffsetDelta
		}
	}

	size := 0
	var maxDelta int64
	for i := range records {
		n, err := recordBodySize(&records[i], offsetDeltaFor(records, i, opts.KeepOffsetDeltas))
		if err != nil {
			return nil, fmt.Errorf("%w (record %d)", err, i)
		}
		size += varintLen(int32(n)) + n
		maxDelta = max(maxDelta, records[i].TimestampDelta)
	}

	if size > math.MaxInt32-minBatchLength {
		return nil, fmt.Errorf("%w: %d bytes of records", ErrInvalidInput, size)
	}
	var out []byte
	if opts.Codec == CodecNone {
		out = appendRecords(make([]byte, HeaderSize, HeaderSize+size), records, opts.KeepOffsetDeltas)
	} else {
		payload, err := Compress(opts.Codec, appendRecords(make([]byte, 0, size), records, opts.KeepOffsetDeltas))
		if err != nil {
			return nil, err
		}
		if len(payload) > math.MaxInt32-minBatchLength {
			return nil, fmt.Errorf("%w: %d bytes of compressed records", ErrInvalidInput, len(payload))
		}
		out = append(make([]byte, HeaderSize, HeaderSize+len(payload)), payload...)
	}

	attrs := int16(opts.Codec)
	if opts.Transactional {
		attrs |= AttrTransactional
	}
	if opts.Control {
		attrs |= AttrControl
	}
	maxTimestamp := NoTimestamp
	if opts.BaseTimestamp != NoTimestamp {
		maxTimestamp = opts.BaseTimestamp + maxDelta
	}
	prod := ProducerInfo{ID: NoProducerID, Epoch: NoProducerEpoch, BaseSequence: NoSequence}
	if opts.Producer != nil {
		prod = *opts.Producer
	}

	binary.BigEndian.PutUint64(out[offBaseOffset:], uint64(opts.BaseOffset))
	binary.BigEndian.PutUint32(out[offBatchLength:], uint32(len(out)-LengthFieldEnd))
	binary.BigEndian.PutUint32(out[offLeaderEpoch:], uint32(opts.PartitionLeaderEpoch))
	out[offMagic] = MagicV2
	binary.BigEndian.PutUint16(out[offAttributes:], uint16(attrs))
	binary.BigEndian.PutUint32(out[offLastOffsetDelta:], uint32(lastOffsetDelta))
	binary.BigEndian.PutUint64(out[offBaseTimestamp:], uint64(opts.BaseTimestamp))
	binary.BigEndian.PutUint64(out[offMaxTimestamp:], uint64(maxTimestamp))
	binary.BigEndian.PutUint64(out[offProducerID:], uint64(prod.ID))
	binary.BigEndian.PutUint16(out[offProducerEpoch:], uint16(prod.Epoch))
	binary.BigEndian.PutUint32(out[offBaseSequence:], uint32(prod.BaseSequence))
	binary.BigEndian.PutUint32(out[offRecordCount:], uint32(len(records)))
	binary.BigEndian.PutUint32(out[offCRC:], crc32.Checksum(out[CRCStart:], castagnoli))
	// Never hand out a batch whose header Validate would reject (e.g. a
	// producer id below -1 or a timestamp that overflowed).
	if _, err := ParseHeader(out); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidInput, err)
	}
	return out, nil
}

// offsetDeltaFor returns the offset delta record i is written with.
func offsetDeltaFor(records []Record, i int, keep bool) int32 {
	if keep {
		return records[i].OffsetDelta
	}
	return int32(i)
}

// appendRecords appends the wire form of every record.
func appendRecords(dst []byte, records []Record, keep bool) []byte {
	for i := range records {
		r := &records[i]
		od := offsetDeltaFor(records, i, keep)
		n, _ := recordBodySize(r, od) // checked by the caller
		dst = appendVarint(dst, int32(n))
		dst = append(dst, byte(r.Attributes))
		dst = appendVarlong(dst, r.TimestampDelta)
		dst = appendVarint(dst, od)
		dst = appendNullableBytes(dst, r.Key)
		dst = appendNullableBytes(dst, r.Value)
		dst = appendVarint(dst, int32(len(r.Headers)))
		for _, h := range r.Headers {
			dst = appendVarint(dst, int32(len(h.Key)))
			dst = append(dst, h.Key...)
			dst = appendNullableBytes(dst, h.Value)
		}
	}
	return dst
}

// appendNullableBytes appends a varint length (-1 for nil) and b.
func appendNullableBytes(dst, b []byte) []byte {
	if b == nil {
		return appendVarint(dst, -1)
	}
	dst = appendVarint(dst, int32(len(b)))
	return append(dst, b...)
}

// recordBodySize returns the encoded size of r after its length varint,
// failing if it does not fit the int32 length fields.
func recordBodySize(r *Record, offsetDelta int32) (int, error) {
	n := int64(1 + varlongLen(r.TimestampDelta) + varintLen(offsetDelta))
	for _, b := range [][]byte{r.Key, r.Value} {
		if b == nil {
			n++
		} else {
			n += int64(uvarintLen(uint64(len(b))*2)) + int64(len(b))
		}
	}
	n += int64(varintLen(int32(min(len(r.Headers), math.MaxInt32))))
	for _, h := range r.Headers {
		n += int64(uvarintLen(uint64(len(h.Key))*2)) + int64(len(h.Key))
		if h.Value == nil {
			n++
		} else {
			n += int64(uvarintLen(uint64(len(h.Value))*2)) + int64(len(h.Value))
		}
		if n > math.MaxInt32 {
			break
		}
	}
	if n > math.MaxInt32 {
		return 0, fmt.Errorf("%w: record of more than %d bytes", ErrInvalidInput, math.MaxInt32)
	}
	return int(n), nil
}
