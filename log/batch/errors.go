package batch

import "errors"

// Sentinel errors. Every error returned by this package wraps exactly one of
// these (with %w and some context), so the broker can map a failure to a
// Kafka error code with errors.Is. The suggested mapping is given with each.
var (
	// ErrTooShort means a buffer that should hold one batch is shorter than
	// the 61-byte v2 header (CORRUPT_MESSAGE).
	ErrTooShort = errors.New("batch: too short")

	// ErrLengthMismatch means the batchLength field disagrees with the bytes
	// actually present, or is too small to cover the header (CORRUPT_MESSAGE).
	ErrLengthMismatch = errors.New("batch: length mismatch")

	// ErrTruncated means a run of concatenated batches ends in a partial
	// batch (CORRUPT_MESSAGE on produce; a fetch reader may treat it as the
	// end of the data instead).
	ErrTruncated = errors.New("batch: truncated")

	// ErrBadMagic means the magic byte is not 2; Sluice only accepts the v2
	// RecordBatch format (UNSUPPORTED_VERSION or CORRUPT_MESSAGE).
	ErrBadMagic = errors.New("batch: unsupported magic")

	// ErrBadCRC means the CRC-32C over attributes..end does not match the
	// crc field (CORRUPT_MESSAGE).
	ErrBadCRC = errors.New("batch: crc mismatch")

	// ErrBadHeader means a header field other than those covered by a more
	// specific error is out of range, e.g. producerId < -1 (CORRUPT_MESSAGE).
	ErrBadHeader = errors.New("batch: bad header field")

	// ErrRecordCount means recordCount disagrees with the records actually
	// present: too few, too many or negative (CORRUPT_MESSAGE).
	ErrRecordCount = errors.New("batch: record count mismatch")

	// ErrBadOffsetDelta means lastOffsetDelta or a record's offsetDelta is
	// inconsistent with the record count or order (CORRUPT_MESSAGE).
	ErrBadOffsetDelta = errors.New("batch: bad offset delta")

	// ErrBadRecord means a record inside the batch is malformed: bad varint,
	// negative or out-of-bounds length, trailing bytes (CORRUPT_MESSAGE).
	ErrBadRecord = errors.New("batch: bad record")

	// ErrBadTimestamp means baseTimestamp or maxTimestamp is out of range
	// (CORRUPT_MESSAGE; INVALID_TIMESTAMP is for broker time policies).
	ErrBadTimestamp = errors.New("batch: bad timestamp")

	// ErrUnsupportedCodec means the attributes name a compression codec
	// other than none, gzip, snappy, lz4 or zstd (UNSUPPORTED_COMPRESSION_TYPE).
	ErrUnsupportedCodec = errors.New("batch: unsupported compression codec")

	// ErrCorruptCompressed means the compressed payload could not be
	// decoded by its codec (CORRUPT_MESSAGE).
	ErrCorruptCompressed = errors.New("batch: corrupt compressed data")

	// ErrDecompressedTooLarge means decompression was stopped because the
	// output would exceed the Limits in force (CORRUPT_MESSAGE or
	// MESSAGE_TOO_LARGE, at the broker's choice).
	ErrDecompressedTooLarge = errors.New("batch: decompressed data too large")

	// ErrInvalidInput means Build or a setter was given arguments it cannot
	// encode; it indicates a caller bug rather than bad client data.
	ErrInvalidInput = errors.New("batch: invalid input")
)
