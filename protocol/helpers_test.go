package protocol

import (
	"encoding/binary"
	"errors"
	"io"
	"math/rand/v2"
	"reflect"
	"runtime"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// sentinels is every error this package's decoders may wrap.
var sentinels = []error{
	ErrMalformedFrame, ErrFrameTooLarge, ErrMalformedRequest,
	ErrUnknownAPI, ErrUnsupportedVersion, io.EOF, io.ErrUnexpectedEOF,
}

// wrapsOneSentinel reports whether err wraps exactly one sentinel
// (io.ErrUnexpectedEOF and io.EOF are distinct values, so a short read
// counts once).
func wrapsOneSentinel(err error) bool {
	n := 0
	for _, s := range sentinels {
		if errors.Is(err, s) {
			n++
		}
	}
	return n == 1
}

var (
	tagsType  = reflect.TypeFor[kmsg.Tags]()
	bytesType = reflect.TypeFor[[]byte]()
)

// fill sets every exported field of the struct v points to with random
// values: integers, strings, nullable strings, uuids, bytes, slices of 0-3
// elements (or nil), and at most one unknown tagged field per struct (so
// that kmsg's encoding, which ranges over a map, is deterministic). The
// top-level Version field is left alone.
func fill(r *rand.Rand, v reflect.Value) {
	fillStruct(r, v.Elem(), 0)
}

func fillStruct(r *rand.Rand, s reflect.Value, depth int) {
	t := s.Type()
	for i := 0; i < t.NumField(); i++ {
		sf := t.Field(i)
		if !sf.IsExported() || (depth == 0 && sf.Name == "Version") {
			continue
		}
		fillValue(r, s.Field(i), depth)
	}
}

func fillValue(r *rand.Rand, v reflect.Value, depth int) {
	switch {
	case v.Type() == tagsType:
		if r.IntN(3) == 0 {
			tags := v.Addr().Interface().(*kmsg.Tags)
			// Keys well above the tags kmsg knows (0 and 1).
			tags.Set(uint32(10+r.IntN(1000)), randBytes(r, r.IntN(6)))
		}
		return
	case v.Type() == bytesType:
		if r.IntN(4) == 0 {
			v.SetBytes(nil)
		} else {
			v.SetBytes(randBytes(r, r.IntN(40)))
		}
		return
	}
	switch v.Kind() {
	case reflect.Bool:
		v.SetBool(r.IntN(2) == 0)
	case reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		v.SetInt(int64(r.Uint64()))
	case reflect.String:
		v.SetString(randString(r))
	case reflect.Array:
		for i := 0; i < v.Len(); i++ {
			v.Index(i).SetUint(uint64(r.IntN(256)))
		}
	case reflect.Pointer:
		if r.IntN(3) == 0 {
			v.SetZero()
			return
		}
		p := reflect.New(v.Type().Elem())
		fillValue(r, p.Elem(), depth+1)
		v.Set(p)
	case reflect.Slice:
		if r.IntN(4) == 0 || depth > 4 {
			v.SetZero()
			return
		}
		n := r.IntN(4)
		s := reflect.MakeSlice(v.Type(), n, n)
		for i := 0; i < n; i++ {
			fillValue(r, s.Index(i), depth+1)
		}
		v.Set(s)
	case reflect.Struct:
		fillStruct(r, v, depth+1)
	}
}

func randBytes(r *rand.Rand, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.IntN(256))
	}
	return b
}

func randString(r *rand.Rand) string {
	const letters = "abcdefghijklmnopqrstuvwxyz0123456789._-"
	b := make([]byte, r.IntN(12))
	for i := range b {
		b[i] = letters[r.IntN(len(letters))]
	}
	return string(b)
}

// randomRequest returns a randomly filled request of key at version v.
func randomRequest(r *rand.Rand, key, v int16) kmsg.Request {
	req := NewRequest(key)
	fill(r, reflect.ValueOf(req))
	req.SetVersion(v)
	return req
}

// clientFrame encodes req as a client does: size, header (v1, or v2 when
// flexible), body, using kmsg's own request formatter.
func clientFrame(req kmsg.Request, corr int32, clientID *string) []byte {
	var f *kmsg.RequestFormatter
	if clientID != nil {
		f = kmsg.NewRequestFormatter(kmsg.FormatterClientID(*clientID))
	} else {
		f = kmsg.NewRequestFormatter()
	}
	return f.AppendRequest(nil, req, corr)
}

// header builds a request header by hand (no size prefix). clientIDLen is
// written as given; clientID bytes follow when it is >= 0.
func header(key, version int16, corr int32, clientIDLen int16, clientID string, tags ...byte) []byte {
	b := binary.BigEndian.AppendUint16(nil, uint16(key))
	b = binary.BigEndian.AppendUint16(b, uint16(version))
	b = binary.BigEndian.AppendUint32(b, uint32(corr))
	b = binary.BigEndian.AppendUint16(b, uint16(clientIDLen))
	b = append(b, clientID...)
	return append(b, tags...)
}

// sized prefixes frame with its 4-byte size.
func sized(frame []byte) []byte {
	return append(binary.BigEndian.AppendUint32(nil, uint32(len(frame))), frame...)
}

func appendUvarint(b []byte, x uint32) []byte {
	for x >= 0x80 {
		b = append(b, byte(x)|0x80)
		x >>= 7
	}
	return append(b, byte(x))
}

// allocated returns the heap bytes allocated while fn ran (process-wide, so
// callers leave some slack for the runtime's own allocations).
func allocated(fn func()) uint64 {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	fn()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// allocatedAtMost reports whether fn allocates at most limit bytes, and the
// fewest bytes seen. Other goroutines (the fuzzing engine's, the runtime's)
// may allocate during a measurement, so a measurement over the limit is
// repeated, and only a run that exceeds it every time counts: noise is
// additive, a real excess is deterministic. fn must be repeatable.
func allocatedAtMost(limit int64, fn func()) (bool, uint64) {
	best := ^uint64(0)
	for range 5 {
		best = min(best, allocated(fn))
		if int64(best) <= limit {
			return true, best
		}
	}
	return false, best
}

// kmsgMax returns the highest version kmsg knows for key.
func kmsgMax(key int16) int16 { return NewRequest(key).MaxVersion() }
