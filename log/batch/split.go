package batch

import (
	"encoding/binary"
	"fmt"
	"iter"
)

// SplitBatches splits b, several concatenated batches such as the records
// field of a produce request, into one slice per batch using each batch's
// batchLength. Each returned slice aliases b and has its capacity limited
// to its length. Only the framing is checked (magic and length); validate
// each batch with Validate. On error it returns the whole batches found
// before the problem together with an error wrapping ErrTruncated (b ends
// inside a batch), ErrBadMagic or ErrLengthMismatch.
func SplitBatches(b []byte) ([][]byte, error) {
	var out [][]byte
	for len(b) > 0 {
		n, err := nextBatchSize(b)
		if err != nil {
			return out, fmt.Errorf("%w (after %d batches)", err, len(out))
		}
		out = append(out, b[:n:n])
		b = b[n:]
	}
	return out, nil
}

// Batches returns an iterator over the concatenated batches in b with the
// same rules as SplitBatches, without allocating. On a framing error it
// yields (nil, err) once and stops.
func Batches(b []byte) iter.Seq2[[]byte, error] {
	return func(yield func([]byte, error) bool) {
		for len(b) > 0 {
			n, err := nextBatchSize(b)
			if err != nil {
				yield(nil, err)
				return
			}
			if !yield(b[:n:n], nil) {
				return
			}
			b = b[n:]
		}
	}
}

// nextBatchSize returns the size of the batch starting b (len(b) > 0).
func nextBatchSize(b []byte) (int, error) {
	if len(b) < LengthFieldEnd {
		return 0, fmt.Errorf("%w: %d trailing bytes cannot hold a batch length", ErrTruncated, len(b))
	}
	if len(b) > offMagic && int8(b[offMagic]) != MagicV2 {
		return 0, fmt.Errorf("%w: magic %d, want %d", ErrBadMagic, int8(b[offMagic]), MagicV2)
	}
	bl := int32(binary.BigEndian.Uint32(b[offBatchLength:]))
	if bl < minBatchLength {
		return 0, fmt.Errorf("%w: batchLength %d is below the header size %d", ErrLengthMismatch, bl, minBatchLength)
	}
	if n := int64(bl) + LengthFieldEnd; n > int64(len(b)) {
		return 0, fmt.Errorf("%w: batch of %d bytes but only %d remain", ErrTruncated, n, len(b))
	}
	return int(bl) + LengthFieldEnd, nil
}
