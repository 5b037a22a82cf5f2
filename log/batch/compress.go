package batch

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/s2"
	"github.com/klauspost/compress/snappy"
	"github.com/klauspost/compress/zstd"
	"github.com/pierrec/lz4/v4"
)

// Decompression limits. A compressed batch is untrusted input whose
// decompressed size is chosen by the sender, so every decompression is
// capped; see Limits.
const (
	// DefaultMaxSize is the default cap on the decompressed size of one
	// batch (64 MiB).
	DefaultMaxSize = 64 << 20
	// DefaultMaxRatio is the default cap on decompressed/compressed size.
	// Real producer data rarely compresses beyond ~20x; 256x leaves room
	// for very repetitive payloads while bounding amplification.
	DefaultMaxRatio = 256
	// MinAllowance is the output a batch may always decompress to (subject
	// to MaxSize) however small it is, so tiny batches of repetitive data
	// are not rejected by the ratio rule.
	MinAllowance = 1 << 20
	// minZstdWindow is the zstd window always accepted whatever the size
	// cap. Streaming encoders (the Java client's zstd-jni) do not know the
	// input size and declare the window of their level: 2 MiB at the
	// default level, 8 MiB at level 19.
	minZstdWindow = 8 << 20
)

// Limits bounds decompression. The output may be at most
//
//	min(MaxSize, max(MinAllowance, MaxRatio*len(compressed)))
//
// bytes; decoders stop reading as soon as that is exceeded and report
// ErrDecompressedTooLarge, so memory use stays proportional to the cap and
// not to what the data claims.
type Limits struct {
	// MaxSize caps the decompressed size of one batch. Zero or negative
	// means DefaultMaxSize.
	MaxSize int
	// MaxRatio caps the decompressed size relative to the compressed size.
	// Zero means DefaultMaxRatio; negative disables the ratio rule.
	MaxRatio int
}

// DefaultLimits are the limits used when none are configured.
var DefaultLimits = Limits{MaxSize: DefaultMaxSize, MaxRatio: DefaultMaxRatio}

// Allowed returns the largest decompressed size permitted for a compressed
// input of compressedLen bytes.
func (l Limits) Allowed(compressedLen int) int {
	maxSize := l.MaxSize
	if maxSize <= 0 {
		maxSize = DefaultMaxSize
	}
	ratio := l.MaxRatio
	if ratio == 0 {
		ratio = DefaultMaxRatio
	}
	if ratio < 0 {
		return maxSize
	}
	byRatio := maxSize // ratio*len overflowing or exceeding maxSize
	if compressedLen <= maxSize/ratio {
		byRatio = compressedLen * ratio
	}
	return min(maxSize, max(MinAllowance, byRatio))
}

// Decompress decodes src, the records blob of a batch compressed with codec,
// refusing to produce more than limits.Allowed(len(src)) bytes. CodecNone
// returns src itself (it expands nothing, so no limit applies). Errors wrap
// ErrUnsupportedCodec, ErrCorruptCompressed or ErrDecompressedTooLarge.
// Decompress is safe for concurrent use.
func Decompress(codec Codec, src []byte, limits Limits) ([]byte, error) {
	allowed := limits.Allowed(len(src))
	switch codec {
	case CodecNone:
		return src, nil
	case CodecGzip:
		return gunzip(src, allowed)
	case CodecSnappy:
		return unsnappy(src, allowed)
	case CodecLZ4:
		return unlz4(src, allowed)
	case CodecZstd:
		return unzstd(src, allowed)
	}
	return nil, fmt.Errorf("%w: codec %d", ErrUnsupportedCodec, codec)
}

// readAllLimited reads r to EOF into a buffer that starts at hint bytes and
// doubles, never growing past allowed bytes. When the buffer is full a
// one-byte probe read tells whether more output follows (too large) or the
// stream ended, so an output that exactly fills the buffer costs no
// reallocation. Total allocation stays below about 2*allowed plus the hint.
func readAllLimited(codec Codec, r io.Reader, allowed, hint int) ([]byte, error) {
	buf := make([]byte, 0, min(max(hint, 512), allowed))
	var probe [1]byte
	stalls := 0
	for {
		var n int
		var err error
		if len(buf) < cap(buf) {
			n, err = r.Read(buf[len(buf):cap(buf)])
			buf = buf[:len(buf)+n]
		} else {
			n, err = r.Read(probe[:])
			if n > 0 {
				if len(buf) >= allowed {
					return nil, tooLarge(codec, allowed)
				}
				grown := make([]byte, len(buf), cap(buf)+min(cap(buf), allowed-cap(buf)))
				copy(grown, buf)
				buf = append(grown, probe[0])
			}
		}
		switch {
		case err == io.EOF:
			return buf, nil
		case err != nil:
			// Both are wrapped so callers here can inspect codec errors.
			return nil, fmt.Errorf("%w: %s: %w", ErrCorruptCompressed, codec, err)
		case n == 0:
			if stalls++; stalls > 100 {
				return nil, fmt.Errorf("%w: %s: %w", ErrCorruptCompressed, codec, io.ErrNoProgress)
			}
		default:
			stalls = 0
		}
	}
}

// tooLarge builds the ErrDecompressedTooLarge error for codec and cap.
func tooLarge(codec Codec, allowed int) error {
	return fmt.Errorf("%w: %s output exceeds the cap of %d bytes", ErrDecompressedTooLarge, codec, allowed)
}

// defaultHint guesses the output size of a compressed input of n bytes when
// the format carries no size.
func defaultHint(n int) int { return 4 * n }

// gzipState is a pooled gzip reader with the bytes.Reader it reads from, so
// a pooled reader never keeps a caller's buffer alive.
type gzipState struct {
	br bytes.Reader
	zr *gzip.Reader
}

var gzipPool = sync.Pool{New: func() any { return new(gzipState) }}

// gunzip decodes one or more concatenated gzip members.
func gunzip(src []byte, allowed int) ([]byte, error) {
	st := gzipPool.Get().(*gzipState)
	defer func() {
		st.br.Reset(nil)
		gzipPool.Put(st)
	}()
	st.br.Reset(src)
	var err error
	if st.zr == nil {
		st.zr, err = gzip.NewReader(&st.br)
	} else {
		err = st.zr.Reset(&st.br)
	}
	if err != nil {
		st.zr = nil // keep no reader in an unknown state
		return nil, fmt.Errorf("%w: gzip: %v", ErrCorruptCompressed, err)
	}
	hint := defaultHint(len(src))
	if len(src) >= 18 {
		// ISIZE trailer: the size of the last member mod 2^32. Only a hint:
		// the read below enforces allowed whatever it says.
		if isize := int(binary.LittleEndian.Uint32(src[len(src)-4:])); isize > 0 && isize <= allowed {
			hint = isize
		}
	}
	return readAllLimited(CodecGzip, st.zr, allowed, hint)
}

// xerialMagic starts the snappy framing of the xerial snappy-java library
// that the Java client writes: magic, int32 version, int32 compatible
// version, then [int32 big-endian length][raw snappy block] chunks.
var xerialMagic = []byte{0x82, 'S', 'N', 'A', 'P', 'P', 'Y', 0}

// xerialHeaderSize is the magic plus the two int32 version fields.
const xerialHeaderSize = 16

// unsnappy decodes either a raw snappy block or xerial-framed chunks. Every
// block's decoded length is read from its header and checked against
// allowed before any output is allocated.
func unsnappy(src []byte, allowed int) ([]byte, error) {
	if bytes.HasPrefix(src, xerialMagic) {
		return unxerial(src, allowed)
	}
	n, err := snappy.DecodedLen(src)
	if err != nil {
		return nil, fmt.Errorf("%w: snappy: %v", ErrCorruptCompressed, err)
	}
	if n > allowed {
		return nil, tooLarge(CodecSnappy, allowed)
	}
	dst := make([]byte, n)
	out, err := snappy.Decode(dst, src)
	if err != nil {
		return nil, fmt.Errorf("%w: snappy: %v", ErrCorruptCompressed, err)
	}
	return out, nil
}

// unxerial decodes the xerial framing in two passes: the first walks the
// chunk headers, summing decoded lengths against allowed; the second decodes
// every chunk into one exactly sized buffer.
func unxerial(src []byte, allowed int) ([]byte, error) {
	if len(src) < xerialHeaderSize {
		return nil, fmt.Errorf("%w: snappy: truncated xerial header", ErrCorruptCompressed)
	}
	body := src[xerialHeaderSize:]
	total := 0
	for p := body; len(p) > 0; {
		chunk, rest, err := nextXerialChunk(p)
		if err != nil {
			return nil, err
		}
		n, err := snappy.DecodedLen(chunk)
		if err != nil {
			return nil, fmt.Errorf("%w: snappy: %v", ErrCorruptCompressed, err)
		}
		if n > allowed-total {
			return nil, tooLarge(CodecSnappy, allowed)
		}
		total += n
		p = rest
	}
	dst := make([]byte, total)
	off := 0
	for p := body; len(p) > 0; {
		chunk, rest, _ := nextXerialChunk(p) // checked by the first pass
		n, _ := snappy.DecodedLen(chunk)
		out, err := snappy.Decode(dst[off:off+n:off+n], chunk)
		if err != nil {
			return nil, fmt.Errorf("%w: snappy: %v", ErrCorruptCompressed, err)
		}
		if len(out) != n {
			return nil, fmt.Errorf("%w: snappy: chunk decoded to %d bytes, header says %d", ErrCorruptCompressed, len(out), n)
		}
		off += n
		p = rest
	}
	return dst, nil
}

// nextXerialChunk splits the first length-prefixed chunk off p.
func nextXerialChunk(p []byte) (chunk, rest []byte, err error) {
	if len(p) < 4 {
		return nil, nil, fmt.Errorf("%w: snappy: truncated xerial chunk length", ErrCorruptCompressed)
	}
	n := int32(binary.BigEndian.Uint32(p))
	p = p[4:]
	if n < 0 || int(n) > len(p) {
		return nil, nil, fmt.Errorf("%w: snappy: xerial chunk length %d with %d bytes left", ErrCorruptCompressed, n, len(p))
	}
	return p[:n], p[n:], nil
}

// lz4State is a pooled LZ4 frame reader with its source.
type lz4State struct {
	br bytes.Reader
	zr *lz4.Reader
}

var lz4Pool = sync.Pool{New: func() any {
	// The default concurrency of 1 decodes synchronously: no goroutines,
	// so a pooled reader can simply be dropped by the GC.
	return &lz4State{zr: lz4.NewReader(nil)}
}}

// unlz4 decodes one or more LZ4 frames. Block buffers are bounded by the
// format (at most 4 MiB per block).
func unlz4(src []byte, allowed int) ([]byte, error) {
	st := lz4Pool.Get().(*lz4State)
	defer func() {
		st.zr.Reset(nil)
		st.br.Reset(nil)
		lz4Pool.Put(st)
	}()
	st.br.Reset(src)
	st.zr.Reset(&st.br)
	return readAllLimited(CodecLZ4, st.zr, allowed, defaultHint(len(src)))
}

// zstdState is a pooled zstd streaming decoder with its source.
type zstdState struct {
	br  bytes.Reader
	dec *zstd.Decoder
}

// zstdPool holds streaming decoders shared by all callers. Each is used by
// one caller at a time; with concurrency 1 they decode synchronously and
// start no goroutines, so dropping one from the pool leaks nothing. The
// stateless DecodeAll is not used because its size cap is fixed per decoder
// and it overshoots the cap by up to a block before noticing.
var zstdPool = sync.Pool{New: func() any {
	dec, err := zstd.NewReader(nil,
		zstd.WithDecoderConcurrency(1),
		zstd.WithDecodeBuffersBelow(0),
		zstd.WithDecoderMaxWindow(zstd.MaxWindowSize),
	)
	if err != nil {
		return nil // static options: cannot happen
	}
	return &zstdState{dec: dec}
}}

// unzstd decodes one or more zstd frames. The window (history buffer the
// decoder allocates) is capped at max(allowed, minZstdWindow) per call with
// WithDecoderMaxMemory, and the output at allowed.
func unzstd(src []byte, allowed int) ([]byte, error) {
	st, _ := zstdPool.Get().(*zstdState)
	if st == nil {
		return nil, fmt.Errorf("%w: zstd: decoder unavailable", ErrCorruptCompressed)
	}
	defer func() {
		_ = st.dec.Reset(nil)
		st.br.Reset(nil)
		zstdPool.Put(st)
	}()
	st.br.Reset(src)
	window := uint64(max(allowed, minZstdWindow))
	if err := st.dec.ResetWithOptions(&st.br, zstd.WithDecoderMaxMemory(window)); err != nil {
		return nil, fmt.Errorf("%w: zstd: %v", ErrCorruptCompressed, err)
	}
	hint := defaultHint(len(src))
	var zh zstd.Header
	if zh.Decode(src) == nil && zh.HasFCS && zh.FrameContentSize <= uint64(allowed) {
		hint = int(zh.FrameContentSize) // a hint only, enforced below
	}
	out, err := readAllLimited(CodecZstd, st.dec, allowed, hint)
	if err != nil && (errors.Is(err, zstd.ErrDecoderSizeExceeded) || errors.Is(err, zstd.ErrWindowSizeExceeded)) {
		return nil, fmt.Errorf("%w: zstd window exceeds %d bytes", ErrDecompressedTooLarge, window)
	}
	return out, err
}

// Compress encodes src with codec in the form Kafka clients write: gzip
// (one member), snappy with the Java client's xerial framing, an LZ4 frame
// with 64 KiB blocks, or one zstd frame. CodecNone returns src itself.
// It is safe for concurrent use.
func Compress(codec Codec, src []byte) ([]byte, error) {
	switch codec {
	case CodecNone:
		return src, nil
	case CodecGzip:
		return compressGzip(src)
	case CodecSnappy:
		return compressXerial(src), nil
	case CodecLZ4:
		return compressLZ4(src)
	case CodecZstd:
		enc, err := zstdEncoder()
		if err != nil {
			return nil, fmt.Errorf("batch: zstd encoder: %w", err)
		}
		return enc.EncodeAll(src, nil), nil
	}
	return nil, fmt.Errorf("%w: codec %d", ErrUnsupportedCodec, codec)
}

var gzipWriterPool sync.Pool

// compressGzip writes src as one gzip member at the default level.
func compressGzip(src []byte) ([]byte, error) {
	var out bytes.Buffer
	zw, _ := gzipWriterPool.Get().(*gzip.Writer)
	if zw == nil {
		zw = gzip.NewWriter(&out)
	} else {
		zw.Reset(&out)
	}
	if _, err := zw.Write(src); err != nil {
		return nil, fmt.Errorf("batch: gzip: %w", err)
	}
	if err := zw.Close(); err != nil {
		return nil, fmt.Errorf("batch: gzip: %w", err)
	}
	zw.Reset(io.Discard)
	gzipWriterPool.Put(zw)
	return out.Bytes(), nil
}

// xerialBlockSize is the chunk size snappy-java uses by default.
const xerialBlockSize = 32 << 10

// compressXerial writes src in the xerial snappy framing.
func compressXerial(src []byte) []byte {
	out := make([]byte, 0, xerialHeaderSize+len(src)/2+64)
	out = append(out, xerialMagic...)
	out = binary.BigEndian.AppendUint32(out, 1) // version
	out = binary.BigEndian.AppendUint32(out, 1) // compatible version
	scratch := make([]byte, s2.MaxEncodedLen(min(len(src), xerialBlockSize)))
	for len(src) > 0 {
		n := min(len(src), xerialBlockSize)
		blk := s2.EncodeSnappy(scratch, src[:n])
		out = binary.BigEndian.AppendUint32(out, uint32(len(blk)))
		out = append(out, blk...)
		src = src[n:]
	}
	return out
}

// compressLZ4 writes src as one LZ4 frame with 64 KiB blocks, as Kafka's
// Java client does.
func compressLZ4(src []byte) ([]byte, error) {
	var out bytes.Buffer
	zw := lz4.NewWriter(&out)
	if err := zw.Apply(lz4.BlockSizeOption(lz4.Block64Kb)); err != nil {
		return nil, fmt.Errorf("batch: lz4: %w", err)
	}
	if _, err := zw.Write(src); err != nil {
		return nil, fmt.Errorf("batch: lz4: %w", err)
	}
	if err := zw.Close(); err != nil {
		return nil, fmt.Errorf("batch: lz4: %w", err)
	}
	return out.Bytes(), nil
}

// zstdEncoder returns the shared zstd encoder; EncodeAll is safe for
// concurrent use.
var zstdEncoder = sync.OnceValues(func() (*zstd.Encoder, error) {
	return zstd.NewWriter(nil, zstd.WithZeroFrames(true))
})
