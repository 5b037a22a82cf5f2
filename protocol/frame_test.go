package protocol

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"math"
	"runtime"
	"testing"
	"testing/iotest"
)

// sizeHeader returns a 4-byte size followed by a 2-byte api key.
func sizeHeader(size int32, key int16) []byte {
	b := binary.BigEndian.AppendUint32(nil, uint32(size))
	return binary.BigEndian.AppendUint16(b, uint16(key))
}

func TestReadFrameBadInput(t *testing.T) {
	small := Limits{MaxRequestBytes: 1 << 16, MaxControlRequestBytes: 1 << 10}
	errReader := errors.New("boom")
	tests := []struct {
		name string
		in   []byte
		r    io.Reader // overrides in
		lim  Limits
		want error
	}{
		{name: "empty stream", in: nil, want: io.EOF},
		{name: "partial size", in: []byte{0, 0}, want: io.ErrUnexpectedEOF},
		{name: "size 0", in: sizeHeader(0, 3), want: ErrMalformedFrame},
		{name: "size -1", in: sizeHeader(-1, 3), want: ErrMalformedFrame},
		{name: "size min int32", in: sizeHeader(math.MinInt32, 3), want: ErrMalformedFrame},
		{name: "size 1", in: sizeHeader(1, 3), want: ErrMalformedFrame},
		{name: "size 7", in: sizeHeader(7, 3), want: ErrMalformedFrame},
		{name: "size above default max", in: sizeHeader(DefaultMaxRequestBytes+1, 0), want: ErrFrameTooLarge},
		{name: "size max int32", in: sizeHeader(math.MaxInt32, 0), want: ErrFrameTooLarge},
		{name: "size above custom max", in: sizeHeader(1<<16+1, 0), lim: small, want: ErrFrameTooLarge},
		{name: "metadata over control cap", in: sizeHeader(DefaultMaxControlRequestBytes+1, 3), want: ErrFrameTooLarge},
		{name: "fetch over control cap", in: sizeHeader(DefaultMaxControlRequestBytes+1, 1), want: ErrFrameTooLarge},
		{name: "unknown key over control cap", in: sizeHeader(2<<20, 9999), want: ErrFrameTooLarge},
		{name: "negative key over control cap", in: sizeHeader(2<<20, -1), want: ErrFrameTooLarge},
		{name: "custom control cap", in: sizeHeader(1<<10+1, 18), lim: small, want: ErrFrameTooLarge},
		{name: "eof before key", in: sizeHeader(20, 3)[:4], want: io.ErrUnexpectedEOF},
		{name: "eof inside key", in: sizeHeader(20, 3)[:5], want: io.ErrUnexpectedEOF},
		{name: "eof before body", in: sizeHeader(20, 3), want: io.ErrUnexpectedEOF},
		{name: "eof inside body", in: append(sizeHeader(20, 3), 1, 2, 3), want: io.ErrUnexpectedEOF},
		{name: "produce claims 1 MiB+1, sends 10", in: append(sizeHeader(DefaultMaxControlRequestBytes+1, 0), make([]byte, 8)...), want: io.ErrUnexpectedEOF},
		{name: "reader error", r: iotest.ErrReader(errReader), want: errReader},
		{name: "reader error after size", r: io.MultiReader(bytes.NewReader(sizeHeader(20, 3)[:4]), iotest.ErrReader(errReader)), want: errReader},
	}
	for _, tc := range tests {
		for _, mode := range []string{"bytereader", "reader"} {
			t.Run(tc.name+"/"+mode, func(t *testing.T) {
				r := tc.r
				if r == nil {
					r = bytes.NewReader(tc.in)
					if mode == "reader" {
						r = iotest.OneByteReader(r) // not an io.ByteReader
					}
				}
				frame, err := ReadFrame(r, tc.lim)
				if !errors.Is(err, tc.want) {
					t.Fatalf("err = %v, want %v", err, tc.want)
				}
				if tc.want != errReader && !wrapsOneSentinel(err) {
					t.Fatalf("err %v wraps more or less than one sentinel", err)
				}
				if frame != nil {
					t.Fatalf("frame returned with error")
				}
			})
		}
	}
}

func TestReadFrameValid(t *testing.T) {
	var stream []byte
	var want [][]byte
	for _, body := range [][]byte{
		header(3, 1, 7, -1, ""),
		header(18, 3, 8, 3, "abc", 0, 0, 0, 0),
		append(header(0, 9, 9, 1, "p"), make([]byte, DefaultMaxControlRequestBytes)...),     // produce over the control cap
		append(header(3, 12, 10, 0, ""), make([]byte, DefaultMaxControlRequestBytes-10)...), // exactly the control cap
	} {
		stream = append(stream, sized(body)...)
		want = append(want, body)
	}
	for _, mode := range []string{"bufio", "reader"} {
		t.Run(mode, func(t *testing.T) {
			var r io.Reader = bufio.NewReader(bytes.NewReader(stream))
			if mode == "reader" {
				r = iotest.HalfReader(bytes.NewReader(stream))
			}
			for i, w := range want {
				got, err := ReadFrame(r, DefaultLimits())
				if err != nil {
					t.Fatalf("frame %d: %v", i, err)
				}
				if !bytes.Equal(got, w) || cap(got) != len(w) {
					t.Fatalf("frame %d: got %d bytes (cap %d), want %d", i, len(got), cap(got), len(w))
				}
			}
			if _, err := ReadFrame(r, DefaultLimits()); err != io.EOF {
				t.Fatalf("after last frame: %v, want io.EOF", err)
			}
		})
	}
}

// TestReadFrameAllocations checks that ReadFrame allocates exactly the frame
// (one allocation when the reader is an io.ByteReader) and nothing for a
// frame it rejects by size, even a 2 GiB claim.
func TestReadFrameAllocations(t *testing.T) {
	body := append(header(0, 9, 1, -1, ""), make([]byte, 10000)...)
	in := sized(body)
	rd := bytes.NewReader(in)
	allocs := testing.AllocsPerRun(50, func() {
		rd.Reset(in)
		if _, err := ReadFrame(rd, DefaultLimits()); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 1 {
		t.Errorf("ReadFrame made %v allocations, want 1", allocs)
	}
	n := allocated(func() {
		rd.Reset(in)
		if _, err := ReadFrame(rd, DefaultLimits()); err != nil {
			t.Fatal(err)
		}
	})
	if n < uint64(len(body)) || n > uint64(len(body))+8<<10 {
		t.Errorf("ReadFrame allocated %d bytes for a %d-byte frame", n, len(body))
	}
	for _, h := range [][]byte{sizeHeader(math.MaxInt32, 0), sizeHeader(50<<20, 3)} {
		n := allocated(func() {
			if _, err := ReadFrame(bytes.NewReader(h), DefaultLimits()); !errors.Is(err, ErrFrameTooLarge) {
				t.Fatal(err)
			}
		})
		if n > 4<<10 {
			t.Errorf("rejected frame header %x: allocated %d bytes", h, n)
		}
	}
}

func TestLimitsValidate(t *testing.T) {
	for _, tc := range []struct {
		lim Limits
		ok  bool
	}{
		{Limits{}, true},
		{DefaultLimits(), true},
		{Limits{MaxRequestBytes: 1 << 20, MaxControlRequestBytes: 1 << 20}, true},
		{Limits{MaxRequestBytes: -1}, false},
		{Limits{MaxControlRequestBytes: -1}, false},
		{Limits{MaxRequestBytes: 1 << 10}, false}, // default control cap above it
		{Limits{MaxRequestBytes: 1 << 10, MaxControlRequestBytes: 1 << 11}, false},
	} {
		if err := tc.lim.Validate(); (err == nil) != tc.ok {
			t.Errorf("%+v.Validate() = %v", tc.lim, err)
		}
	}
}

// A client that claims a 100 MiB produce frame but sends almost nothing must
// not make the broker allocate 100 MiB.
func TestReadFrameAllocatesWhatArrives(t *testing.T) {
	var hdr [6]byte
	binary.BigEndian.PutUint32(hdr[:4], 100<<20)
	// key 0 (Produce) and then only a few bytes before the stream ends
	stream := append(hdr[:], make([]byte, 10)...)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	_, err := ReadFrame(bufio.NewReader(bytes.NewReader(stream)), DefaultLimits())
	runtime.ReadMemStats(&after)
	if !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("err %v, want unexpected EOF", err)
	}
	if got := after.TotalAlloc - before.TotalAlloc; got > 4<<20 {
		t.Fatalf("allocated %d bytes for a claimed 100 MiB frame with 16 bytes sent", got)
	}
	// A real large frame still reads whole and exact.
	big := make([]byte, 3<<20+5)
	big[0], big[1] = 0, 0 // Produce
	for i := 2; i < len(big); i++ {
		big[i] = byte(i)
	}
	var sz [4]byte
	binary.BigEndian.PutUint32(sz[:], uint32(len(big)))
	got, err := ReadFrame(bufio.NewReader(bytes.NewReader(append(sz[:], big...))), DefaultLimits())
	if err != nil || !bytes.Equal(got, big) {
		t.Fatalf("large frame: %v, equal=%v", err, bytes.Equal(got, big))
	}
}
