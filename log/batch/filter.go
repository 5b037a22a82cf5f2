package batch

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"math"
)

// Filter returns b without the records keep refuses, for log compaction.
// keep sees each record in order; its Key and Value alias the batch (or its
// decompressed records) and are valid only during the call.
//
// Every header field stays as it was except batchLength, recordCount and
// the CRC: baseOffset, lastOffsetDelta, timestamps, producer id, epoch and
// base sequence, and attributes (the codec) are kept, so the batch still
// occupies the same offsets and its producer state is unchanged. Kept
// records are copied byte for byte, keeping their offsetDelta and
// timestampDelta; a compressed batch is decompressed (within limits) and
// its kept records recompressed with the same codec. A batch whose records
// are all refused stays as a valid batch of zero records (compressed: an
// empty stream of its codec), which Kafka clients skip.
//
// When keep refuses nothing, Filter returns b itself and removed 0. A batch
// that fails its CRC or does not parse is an error, with b unchanged.
func Filter(b []byte, limits Limits, keep func(h *Header, r *Record) bool) (out []byte, removed int, err error) {
	h, err := Validate(b, ValidateOptions{AllowCompacted: true})
	if err != nil {
		return nil, 0, err
	}
	data := b[HeaderSize:]
	codec := h.Codec()
	if codec != CodecNone {
		if data, err = Decompress(codec, data, limits); err != nil {
			return nil, 0, err
		}
	}
	var (
		rec     Record
		kept    []byte // the kept records, once one was refused
		copying bool
		count   int32
		prev    = int64(-1)
		p       int
	)
	for i := int32(0); i < h.RecordCount; i++ {
		if p >= len(data) {
			return nil, 0, fmt.Errorf("%w: recordCount is %d but the records end after %d", ErrRecordCount, h.RecordCount, i)
		}
		n, err := parseRecord(data[p:], &rec, false)
		if err != nil {
			return nil, 0, fmt.Errorf("%w (record %d)", err, i)
		}
		if int64(rec.OffsetDelta) <= prev || rec.OffsetDelta > h.LastOffsetDelta {
			return nil, 0, fmt.Errorf("%w: record %d has offsetDelta %d after %d (lastOffsetDelta %d)",
				ErrBadOffsetDelta, i, rec.OffsetDelta, prev, h.LastOffsetDelta)
		}
		prev = int64(rec.OffsetDelta)
		if keep(&h, &rec) {
			count++
			if copying {
				kept = append(kept, data[p:p+n]...)
			}
		} else {
			if !copying {
				copying = true
				kept = append(make([]byte, 0, len(data)), data[:p]...)
			}
			removed++
		}
		p += n
	}
	if p != len(data) {
		return nil, 0, fmt.Errorf("%w: %d bytes follow the last of %d records", ErrRecordCount, len(data)-p, h.RecordCount)
	}
	if removed == 0 {
		return b, 0, nil
	}
	payload := kept
	if codec != CodecNone {
		if payload, err = Compress(codec, kept); err != nil {
			return nil, 0, err
		}
	}
	if len(payload) > math.MaxInt32-minBatchLength {
		return nil, 0, fmt.Errorf("%w: %d bytes of records", ErrInvalidInput, len(payload))
	}
	out = make([]byte, HeaderSize+len(payload))
	copy(out, b[:HeaderSize])
	copy(out[HeaderSize:], payload)
	binary.BigEndian.PutUint32(out[offBatchLength:], uint32(len(out)-LengthFieldEnd))
	binary.BigEndian.PutUint32(out[offRecordCount:], uint32(count))
	binary.BigEndian.PutUint32(out[offCRC:], crc32.Checksum(out[CRCStart:], castagnoli))
	return out, removed, nil
}
