package batch

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
)

// ValidateOptions tunes Validate.
type ValidateOptions struct {
	// Deep makes Validate decompress compressed batches (within Limits)
	// and check their records as thoroughly as uncompressed ones. Without
	// it a compressed batch gets header and CRC checks only, which is what
	// the produce hot path wants.
	Deep bool
	// AllowCompacted relaxes the offset rules for batches rewritten by log
	// compaction: lastOffsetDelta may exceed recordCount-1 and record
	// offset deltas need only increase within [0, lastOffsetDelta] instead
	// of being exactly 0..n-1.
	AllowCompacted bool
	// Limits caps decompression when Deep is set; the zero value means
	// DefaultLimits.
	Limits Limits
}

// Validate checks that b is exactly one well-formed v2 record batch and
// returns its header. It checks, in order: size, magic, batchLength against
// len(b), the CRC-32C, the header fields (see ParseHeader), lastOffsetDelta
// == recordCount-1 (unless opts.AllowCompacted), and then for uncompressed
// batches (or compressed ones with opts.Deep) every record: exact count,
// structure, lengths, offset deltas, and no trailing bytes.
//
// On error the returned Header is whatever had been parsed and must not be
// trusted. Validate never allocates in proportion to lengths read from b and, for a
// valid uncompressed batch, does not allocate at all. Errors wrap the
// package's sentinel errors.
func Validate(b []byte, opts ValidateOptions) (Header, error) {
	if len(b) < HeaderSize {
		return Header{}, fmt.Errorf("%w: %d bytes, need %d for a header", ErrTooShort, len(b), HeaderSize)
	}
	if m := int8(b[offMagic]); m != MagicV2 {
		return Header{}, fmt.Errorf("%w: magic %d, want %d", ErrBadMagic, m, MagicV2)
	}
	if n := int64(int32(binary.BigEndian.Uint32(b[offBatchLength:]))) + LengthFieldEnd; n != int64(len(b)) {
		return Header{}, fmt.Errorf("%w: batchLength says %d bytes, have %d", ErrLengthMismatch, n, len(b))
	}
	want := binary.BigEndian.Uint32(b[offCRC:])
	if got := crc32.Checksum(b[CRCStart:], castagnoli); got != want {
		return Header{}, fmt.Errorf("%w: computed %#08x, stored %#08x", ErrBadCRC, got, want)
	}
	h, err := ParseHeader(b)
	if err != nil {
		return h, err
	}
	if !opts.AllowCompacted && h.RecordCount > 0 && h.LastOffsetDelta != h.RecordCount-1 {
		return h, fmt.Errorf("%w: lastOffsetDelta %d with %d records", ErrBadOffsetDelta, h.LastOffsetDelta, h.RecordCount)
	}
	data := b[HeaderSize:]
	if c := h.Codec(); c != CodecNone {
		if h.RecordCount > 0 && len(data) == 0 {
			return h, fmt.Errorf("%w: %d records declared but the %s payload is empty", ErrRecordCount, h.RecordCount, c)
		}
		if !opts.Deep {
			return h, nil
		}
		if data, err = Decompress(c, data, opts.Limits); err != nil {
			return h, err
		}
	}
	return h, walkRecords(data, &h, !opts.AllowCompacted, nil)
}
