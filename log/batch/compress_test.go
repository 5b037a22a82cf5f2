package batch

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"math"
	"math/rand/v2"
	"runtime"
	"testing"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/s2"
	"github.com/klauspost/compress/zstd"
	"github.com/pierrec/lz4/v4"
)

func TestLimitsAllowed(t *testing.T) {
	for _, tc := range []struct {
		l    Limits
		n    int
		want int
	}{
		{Limits{}, 0, MinAllowance},
		{Limits{}, 100, MinAllowance},
		{Limits{}, 10 << 10, 10 << 10 * DefaultMaxRatio},
		{Limits{}, 1 << 20, DefaultMaxSize},
		{DefaultLimits, 64 << 10, 16 << 20},
		{Limits{MaxSize: 512 << 10}, 10, 512 << 10}, // MaxSize wins over MinAllowance
		{Limits{MaxSize: 8 << 20, MaxRatio: 2}, 1 << 20, 2 << 20},
		{Limits{MaxSize: 8 << 20, MaxRatio: -1}, 1, 8 << 20},
		{Limits{MaxSize: math.MaxInt, MaxRatio: math.MaxInt}, math.MaxInt / 2, math.MaxInt}, // no overflow
		{Limits{MaxSize: -5}, 1 << 30, DefaultMaxSize},
	} {
		if got := tc.l.Allowed(tc.n); got != tc.want {
			t.Errorf("%+v.Allowed(%d) = %d, want %d", tc.l, tc.n, got, tc.want)
		}
	}
}

// testPayload returns n bytes of moderately compressible data.
func testPayload(n int) []byte {
	rng := rand.New(rand.NewPCG(1, uint64(n)))
	b := make([]byte, n)
	words := []string{"sluice", "kafka", "offset", "partition", "{\"id\":", "}", " ", "\n", "value"}
	for i := 0; i < n; {
		i += copy(b[i:], words[rng.IntN(len(words))])
	}
	return b
}

func TestDecompressRoundTrip(t *testing.T) {
	for _, c := range allCodecs {
		for _, n := range []int{0, 1, 100, 32 << 10, 32<<10 + 1, 1 << 20} {
			src := testPayload(n)
			z, err := Compress(c, src)
			if err != nil {
				t.Fatal(err)
			}
			got, err := Decompress(c, z, Limits{})
			if err != nil {
				t.Fatalf("%s %d: %v", c, n, err)
			}
			if !bytes.Equal(got, src) {
				t.Fatalf("%s %d: round trip mismatch", c, n)
			}
		}
	}
}

// The cap is exact: output of exactly Allowed bytes passes, one more fails.
// (CodecNone expands nothing and is not limited.)
func TestDecompressCapBoundary(t *testing.T) {
	const n = 100_000
	src := testPayload(n)
	for _, c := range allCodecs[1:] {
		z, err := Compress(c, src)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := Decompress(c, z, Limits{MaxSize: n, MaxRatio: -1}); err != nil {
			t.Fatalf("%s at cap: %v", c, err)
		}
		_, err = Decompress(c, z, Limits{MaxSize: n - 1, MaxRatio: -1})
		if !errors.Is(err, ErrDecompressedTooLarge) {
			t.Fatalf("%s one over cap: %v", c, err)
		}
	}
}

func TestDecompressUnsupported(t *testing.T) {
	for _, c := range []Codec{5, 6, 7, -1} {
		if _, err := Decompress(c, []byte{1, 2, 3}, Limits{}); !errors.Is(err, ErrUnsupportedCodec) {
			t.Fatalf("codec %d: %v", c, err)
		}
		if _, err := Compress(c, []byte{1}); !errors.Is(err, ErrUnsupportedCodec) {
			t.Fatalf("Compress codec %d: %v", c, err)
		}
	}
	if _, err := Build(nil, BuildOptions{Codec: 6}); !errors.Is(err, ErrUnsupportedCodec) {
		t.Fatalf("Build codec 6: %v", err)
	}
}

func TestDecompressCorrupt(t *testing.T) {
	src := testPayload(50_000)
	for _, c := range allCodecs[1:] {
		z, _ := Compress(c, src)
		for _, bad := range [][]byte{
			{}, {0}, z[:len(z)/2], z[:len(z)-1], append(bytes.Clone(z), 0xde, 0xad, 0xbe, 0xef, 0, 1, 2, 3),
			func() []byte { b := bytes.Clone(z); b[len(b)/2] ^= 0xff; return b }(),
		} {
			got, err := Decompress(c, bad, Limits{})
			if err == nil {
				// Some truncations/flips are undetectable (e.g. an empty
				// LZ4 input is an empty stream); they must not yield the
				// original data with garbage accepted.
				if len(bad) > 0 && bytes.Equal(got, src) && !bytes.Equal(bad, z) {
					t.Errorf("%s: corrupted input of %d bytes decoded to the original", c, len(bad))
				}
				continue
			}
			if !errors.Is(err, ErrCorruptCompressed) && !errors.Is(err, ErrDecompressedTooLarge) {
				t.Errorf("%s: %d bytes: unexpected error %v", c, len(bad), err)
			}
		}
	}
}

func TestSnappyFramings(t *testing.T) {
	src := testPayload(100_000) // four xerial chunks
	raw := s2.EncodeSnappy(nil, src)
	xer := compressXerial(src)
	if !bytes.HasPrefix(xer, []byte("\x82SNAPPY\x00\x00\x00\x00\x01\x00\x00\x00\x01")) {
		t.Fatalf("xerial header %x", xer[:16])
	}
	for name, z := range map[string][]byte{"raw": raw, "xerial": xer} {
		got, err := Decompress(CodecSnappy, z, Limits{})
		if err != nil || !bytes.Equal(got, src) {
			t.Fatalf("%s: err %v, equal %v", name, err, bytes.Equal(got, src))
		}
	}
	// An xerial stream with one chunk per byte range, built by hand, and
	// with an empty body.
	hand := append([]byte(nil), xerialMagic...)
	hand = binary.BigEndian.AppendUint32(hand, 1)
	hand = binary.BigEndian.AppendUint32(hand, 1)
	headerOnly := bytes.Clone(hand)
	for _, part := range [][]byte{src[:10], src[10:5000], src[5000:]} {
		blk := s2.EncodeSnappy(nil, part)
		hand = binary.BigEndian.AppendUint32(hand, uint32(len(blk)))
		hand = append(hand, blk...)
	}
	if got, err := Decompress(CodecSnappy, hand, Limits{}); err != nil || !bytes.Equal(got, src) {
		t.Fatalf("hand-built xerial: %v", err)
	}
	if got, err := Decompress(CodecSnappy, headerOnly, Limits{}); err != nil || len(got) != 0 {
		t.Fatalf("header-only xerial: %v, %d bytes", err, len(got))
	}

	negative := binary.BigEndian.AppendUint32(bytes.Clone(headerOnly), 0xffffffff)
	tooLong := binary.BigEndian.AppendUint32(bytes.Clone(headerOnly), 100)
	for name, bad := range map[string][]byte{
		"short-header":   xer[:12],
		"partial-length": xer[:18],
		"truncated":      xer[:len(xer)-1],
		"negative-chunk": append(negative, 1, 2, 3),
		"chunk-too-long": append(tooLong, 1, 2, 3),
		"raw-truncated":  raw[:len(raw)-1],
		"raw-empty":      {},
	} {
		if _, err := Decompress(CodecSnappy, bad, Limits{}); !errors.Is(err, ErrCorruptCompressed) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func TestMultiFrame(t *testing.T) {
	a, b := testPayload(3000), testPayload(5000)
	cat := func(c Codec) []byte {
		za, _ := Compress(c, a)
		zb, _ := Compress(c, b)
		return append(bytes.Clone(za), zb...)
	}
	for _, c := range []Codec{CodecGzip, CodecLZ4, CodecZstd} {
		got, err := Decompress(c, cat(c), Limits{})
		if err != nil || !bytes.Equal(got, append(bytes.Clone(a), b...)) {
			t.Fatalf("%s concatenated frames: %v", c, err)
		}
	}
}

// zeroReader yields zeros forever.
type zeroReader struct{}

func (zeroReader) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

// bomb compresses n zeros with codec by streaming, never holding the
// uncompressed data in memory.
func bomb(t testing.TB, codec Codec, n int64) []byte {
	var buf bytes.Buffer
	var w io.WriteCloser
	switch codec {
	case CodecGzip:
		w = gzip.NewWriter(&buf)
	case CodecLZ4:
		w = lz4.NewWriter(&buf)
	case CodecZstd:
		enc, err := zstd.NewWriter(&buf)
		if err != nil {
			t.Fatal(err)
		}
		w = enc
	case CodecSnappy:
		// The xerial framing is a sequence of independent chunks: encode
		// one chunk of zeros and repeat it.
		blk := s2.EncodeSnappy(nil, make([]byte, xerialBlockSize))
		buf.Write(xerialMagic)
		buf.Write([]byte{0, 0, 0, 1, 0, 0, 0, 1})
		for range n / xerialBlockSize {
			_ = binary.Write(&buf, binary.BigEndian, uint32(len(blk)))
			buf.Write(blk)
		}
		return buf.Bytes()
	}
	if _, err := io.CopyN(w, zeroReader{}, n); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// allocDuring returns the bytes allocated while running fn.
func allocDuring(fn func()) uint64 {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	fn()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// Compression bombs of 1 GiB of zeros (128 MiB with -short) must be refused after producing no
// more than the cap, allocating at most a small multiple of it.
func TestDecompressBomb(t *testing.T) {
	size := int64(1 << 30)
	if testing.Short() {
		size = 128 << 20 // still twice the default cap
	}
	for _, c := range allCodecs[1:] {
		t.Run(c.String(), func(t *testing.T) {
			z := bomb(t, c, size)
			allowed := DefaultLimits.Allowed(len(z))
			var err error
			alloc := allocDuring(func() { _, err = Decompress(c, z, DefaultLimits) })
			if !errors.Is(err, ErrDecompressedTooLarge) {
				t.Fatalf("Decompress: %v", err)
			}
			t.Logf("%s: %d compressed bytes, cap %d MiB, allocated %.1f MiB", c, len(z), allowed>>20, float64(alloc)/(1<<20))
			bound := 4 * uint64(allowed)
			if c == CodecZstd {
				bound += 9 << 20 // the decoder's history window (8 MiB here)
			}
			if alloc > bound {
				t.Fatalf("allocated %d bytes for a cap of %d", alloc, allowed)
			}

			// A batch carrying the bomb passes shallow validation (that is
			// the point of not decompressing on the hot path) but not deep
			// validation or iteration.
			rh := goodHeader(1)
			rh.Attributes = int16(c)
			b := rh.encode(z)
			if _, err := Validate(b, ValidateOptions{}); err != nil {
				t.Fatalf("shallow Validate: %v", err)
			}
			small := Limits{MaxSize: 4 << 20}
			alloc = allocDuring(func() { _, err = Validate(b, ValidateOptions{Deep: true, Limits: small}) })
			if !errors.Is(err, ErrDecompressedTooLarge) {
				t.Fatalf("deep Validate: %v", err)
			}
			// zstd may also allocate its history window (8 MiB here).
			if bound := uint64(4*small.Allowed(len(z)) + 9<<20); alloc > bound {
				t.Fatalf("deep Validate allocated %d bytes, bound %d", alloc, bound)
			}
			if err := Records(b, small, func(Record) error { return nil }); !errors.Is(err, ErrDecompressedTooLarge) {
				t.Fatalf("Records: %v", err)
			}
		})
	}
}

// Snappy block headers state the decoded size; it must be checked before
// anything is allocated.
func TestSnappyLengthHeaderBomb(t *testing.T) {
	raw := binary.AppendUvarint(nil, 1<<31-1) // claims 2 GiB
	raw = append(raw, 0, 0)                   // one-byte literal
	xer := append(bytes.Clone(xerialMagic), 0, 0, 0, 1, 0, 0, 0, 1)
	for range 64 { // 64 chunks each claiming 1 GiB
		blk := binary.AppendUvarint(nil, 1<<30)
		xer = binary.BigEndian.AppendUint32(xer, uint32(len(blk)+2))
		xer = append(append(xer, blk...), 0, 0)
	}
	for name, z := range map[string][]byte{"raw": raw, "xerial": xer} {
		var err error
		alloc := allocDuring(func() { _, err = Decompress(CodecSnappy, z, DefaultLimits) })
		if !errors.Is(err, ErrDecompressedTooLarge) {
			t.Fatalf("%s: %v", name, err)
		}
		if alloc > 64<<10 {
			t.Fatalf("%s: allocated %d bytes before refusing", name, alloc)
		}
	}
	// A real raw block of 8 MiB of zeros against a 1 MiB cap.
	big := s2.EncodeSnappy(nil, make([]byte, 8<<20))
	if _, err := Decompress(CodecSnappy, big, Limits{MaxSize: 1 << 20}); !errors.Is(err, ErrDecompressedTooLarge) {
		t.Fatalf("raw 8 MiB: %v", err)
	}
}

// A zstd frame declaring a huge window with almost no content must be
// refused without allocating the window.
func TestZstdWindowBomb(t *testing.T) {
	frame := []byte{0x28, 0xb5, 0x2f, 0xfd} // magic
	frame = append(frame, 0x00)             // descriptor: no FCS, not single segment, no checksum
	frame = append(frame, 20<<3)            // window descriptor: 2^(10+20) = 1 GiB
	frame = append(frame, 0x0b, 0x00, 0x00) // last block, RLE, size 1
	frame = append(frame, 'x')
	var err error
	alloc := allocDuring(func() { _, err = Decompress(CodecZstd, frame, DefaultLimits) })
	if !errors.Is(err, ErrDecompressedTooLarge) {
		t.Fatalf("window bomb: %v", err)
	}
	if alloc > 1<<20 {
		t.Fatalf("allocated %d bytes", alloc)
	}
	// The same frame with a 1 MiB window is fine.
	frame[5] = 10 << 3
	got, err := Decompress(CodecZstd, frame, DefaultLimits)
	if err != nil || string(got) != "x" {
		t.Fatalf("1 MiB window: %q, %v", got, err)
	}
}

// Decompressing from many goroutines at once shares the pools safely.
func TestDecompressConcurrent(t *testing.T) {
	src := testPayload(200_000)
	for _, c := range allCodecs {
		z, _ := Compress(c, src)
		t.Run(c.String(), func(t *testing.T) {
			for range 8 {
				t.Run("", func(t *testing.T) {
					t.Parallel()
					for range 20 {
						got, err := Decompress(c, z, Limits{})
						if err != nil || !bytes.Equal(got, src) {
							t.Errorf("concurrent %s: %v", c, err)
							return
						}
					}
				})
			}
		})
	}
}
