package batch

import "strconv"

// Codec is a compression codec as stored in attribute bits 0-2.
type Codec int8

// The codecs Kafka defines. Values 5-7 are unassigned and rejected with
// ErrUnsupportedCodec.
const (
	// CodecNone means the records are stored uncompressed.
	CodecNone Codec = 0
	// CodecGzip is gzip (RFC 1952), possibly several members.
	CodecGzip Codec = 1
	// CodecSnappy is snappy, either one raw block or the xerial framing
	// written by the Java client.
	CodecSnappy Codec = 2
	// CodecLZ4 is the LZ4 frame format.
	CodecLZ4 Codec = 3
	// CodecZstd is Zstandard, one or more frames.
	CodecZstd Codec = 4
)

// valid reports whether c is one of the five defined codecs.
func (c Codec) valid() bool { return c >= CodecNone && c <= CodecZstd }

// String returns the Kafka name of the codec (as in compression.type).
func (c Codec) String() string {
	switch c {
	case CodecNone:
		return "none"
	case CodecGzip:
		return "gzip"
	case CodecSnappy:
		return "snappy"
	case CodecLZ4:
		return "lz4"
	case CodecZstd:
		return "zstd"
	}
	return "codec(" + strconv.Itoa(int(c)) + ")"
}
