package protocol

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Frame size defaults.
const (
	// DefaultMaxRequestBytes is Kafka's socket.request.max.bytes default.
	DefaultMaxRequestBytes = 100 << 20
	// DefaultMaxControlRequestBytes caps every request other than Produce.
	DefaultMaxControlRequestBytes = 1 << 20

	// minFrameSize is the fixed part of every request header: api key,
	// api version and correlation id.
	minFrameSize = 8
)

// Limits bounds the frames ReadFrame accepts. A zero or negative field means
// its default, so the zero Limits is DefaultLimits.
type Limits struct {
	// MaxRequestBytes is the largest frame accepted at all (default
	// 100 MiB, Kafka's socket.request.max.bytes).
	MaxRequestBytes int32

	// MaxControlRequestBytes is the largest frame accepted for any API
	// other than Produce (default 1 MiB).
	//
	// Why a second, smaller cap: kmsg's generated decoders bound an
	// array's element count only by the bytes remaining (one byte per
	// element) and then allocate count x sizeof(element) up front, so a
	// frame full of one-byte "elements" costs up to ~64 times its size in
	// memory before a single element is parsed. Only Produce, whose bulk
	// is opaque record bytes that kmsg aliases rather than copies, has a
	// reason to be large, and Produce is pre-checked by CheckProduceArrays
	// so that its decoded form stays within a small multiple of its size.
	MaxControlRequestBytes int32
}

// DefaultLimits returns the default frame limits.
func DefaultLimits() Limits {
	return Limits{
		MaxRequestBytes:        DefaultMaxRequestBytes,
		MaxControlRequestBytes: DefaultMaxControlRequestBytes,
	}
}

// Validate reports limits that are set but unusable: negative values, or a
// control cap above the overall cap. Zero fields are valid (defaults).
func (l Limits) Validate() error {
	if l.MaxRequestBytes < 0 || l.MaxControlRequestBytes < 0 {
		return fmt.Errorf("protocol: negative frame limit %+v", l)
	}
	eff := l.withDefaults()
	if eff.MaxControlRequestBytes > eff.MaxRequestBytes {
		return fmt.Errorf("protocol: MaxControlRequestBytes %d exceeds MaxRequestBytes %d",
			eff.MaxControlRequestBytes, eff.MaxRequestBytes)
	}
	return nil
}

func (l Limits) withDefaults() Limits {
	if l.MaxRequestBytes <= 0 {
		l.MaxRequestBytes = DefaultMaxRequestBytes
	}
	if l.MaxControlRequestBytes <= 0 {
		l.MaxControlRequestBytes = DefaultMaxControlRequestBytes
	}
	return l
}

// ReadFrame reads one request frame from r: a 4-byte big-endian size, then
// that many bytes, which it returns (the size prefix is not included; the
// frame starts with the request header and is what Decode takes).
//
// The size is checked before anything is allocated for the frame: a size
// below 8 (the fixed request header) is ErrMalformedFrame; above
// lim.MaxRequestBytes, ErrFrameTooLarge. Then the 2-byte API key is read
// from the stream, still without allocating the frame, and a frame that is
// not a Produce request (key 0) and exceeds lim.MaxControlRequestBytes is
// ErrFrameTooLarge too. Only then is the frame read: up to 1 MiB is
// allocated at once (len == cap == size; with an io.ByteReader such as a
// *bufio.Reader that is the only allocation); a larger frame's buffer grows
// as its bytes arrive, so memory follows the bytes received.
//
// A clean end of stream before the first byte of a frame returns io.EOF; an
// end of stream inside a frame returns an error wrapping
// io.ErrUnexpectedEOF; other read errors are wrapped. After any error the
// stream position is unknown and the connection must be closed.
func ReadFrame(r io.Reader, lim Limits) ([]byte, error) {
	lim = lim.withDefaults()

	var hdr [6]byte // size, api key
	if err := readPrefix(r, hdr[:4]); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, io.EOF
		}
		return nil, fmt.Errorf("protocol: reading frame size: %w", err)
	}
	size := int32(binary.BigEndian.Uint32(hdr[:4]))
	switch {
	case size < minFrameSize:
		return nil, fmt.Errorf("%w: size %d (a request needs at least %d bytes)", ErrMalformedFrame, size, minFrameSize)
	case size > lim.MaxRequestBytes:
		return nil, fmt.Errorf("%w: size %d exceeds the %d-byte request limit", ErrFrameTooLarge, size, lim.MaxRequestBytes)
	}

	if err := readPrefix(r, hdr[4:6]); err != nil {
		return nil, fmt.Errorf("protocol: reading api key of %d-byte frame: %w", size, eofIsUnexpected(err))
	}
	key := int16(binary.BigEndian.Uint16(hdr[4:6]))
	if key != produceKey && size > lim.MaxControlRequestBytes {
		return nil, fmt.Errorf("%w: size %d of api key %d exceeds the %d-byte limit for non-produce requests",
			ErrFrameTooLarge, size, key, lim.MaxControlRequestBytes)
	}

	return readBody(r, size, hdr[4:6])
}

// eagerFrameBytes is the largest frame allocated whole on its size alone.
// A larger frame's buffer grows (doubling) only as its bytes arrive, so a
// client that claims 100 MiB and sends 6 bytes costs 1 MiB, not 100 MiB:
// memory follows what was received, not what was claimed.
const eagerFrameBytes = 1 << 20

func readBody(r io.Reader, size int32, key []byte) ([]byte, error) {
	frame := make([]byte, min(size, eagerFrameBytes))
	copy(frame, key)
	have := len(key)
	for {
		n, err := io.ReadFull(r, frame[have:])
		have += n
		if err != nil {
			return nil, fmt.Errorf("protocol: reading %d-byte frame: %w", size, eofIsUnexpected(err))
		}
		if have == int(size) {
			return frame, nil
		}
		grown := make([]byte, min(int(size), 2*len(frame)))
		copy(grown, frame)
		frame = grown
	}
}

// readPrefix fills p (at most a few bytes) from r. It reads byte by byte
// when r is an io.ByteReader, so that p, which lives in ReadFrame's frame,
// does not escape to the heap; otherwise it reads into a small temporary.
// Like io.ReadFull it returns io.EOF only when nothing was read.
func readPrefix(r io.Reader, p []byte) error {
	if br, ok := r.(io.ByteReader); ok {
		for i := range p {
			c, err := br.ReadByte()
			if err != nil {
				if i > 0 && errors.Is(err, io.EOF) {
					return io.ErrUnexpectedEOF
				}
				return err
			}
			p[i] = c
		}
		return nil
	}
	tmp := make([]byte, len(p))
	if _, err := io.ReadFull(r, tmp); err != nil {
		return err
	}
	copy(p, tmp)
	return nil
}

func eofIsUnexpected(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}
