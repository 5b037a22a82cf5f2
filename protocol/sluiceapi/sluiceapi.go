// Package sluiceapi defines Sluice's own protocol APIs: requests that no
// Kafka broker knows, spoken over the Kafka wire protocol (same framing,
// same headers, KIP-482 flexible encoding) and advertised in ApiVersions
// like Kafka's, so a client sends them only to a broker that lists them.
// Kafka clients ignore API keys they do not know (Java's NodeApiVersions
// and librdkafka skip them; franz-go keeps them in a map), so the
// extensions are invisible to them.
//
// The types implement kmsg.Request and kmsg.Response, so franz-go sends
// them with kgo.Client.Broker(id).Request. franz-go refuses a key missing
// from its MaxVersions, which defaults to kversion.Stable(): a client
// using these APIs adds them, e.g. with AddVersions.
//
// # Key numbers
//
// Kafka numbers its API keys from 0 in the order it adds them (92 by
// Kafka 4.2, a handful more each year). Sluice's keys start at MinKey,
// 32000: far enough above that Kafka will not reach them, positive
// (franz-go's kversion drops negative keys, and Kafka's own tables treat
// them as invalid), and leaving 32000-32767 for further extensions.
//
// # Decoding
//
// ReadFrom never trusts a count: every array count is checked against the
// bytes remaining with the element's smallest encoding before anything is
// allocated, tagged-field counts likewise, and trailing bytes are an
// error. The broker also walks requests with protocol's schema first.
package sluiceapi

import (
	"errors"
	"fmt"

	"github.com/twmb/franz-go/pkg/kbin"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/kversion"
)

// API keys.
const (
	// MinKey is the lowest key of a Sluice extension; every key from it
	// up is Sluice's.
	MinKey int16 = 32000
	// ShareNoteKey is SluiceShareNote: a share-group member reports the
	// error it had handling an acquired record (see ShareNoteRequest).
	ShareNoteKey int16 = 32000
)

// ErrMalformed is wrapped by every ReadFrom error.
var ErrMalformed = errors.New("sluiceapi: malformed message")

// NewRequest returns an empty request of a Sluice key, or nil.
func NewRequest(key int16) kmsg.Request {
	switch key {
	case ShareNoteKey:
		return new(ShareNoteRequest)
	}
	return nil
}

// NewResponse returns an empty response of a Sluice key, or nil.
func NewResponse(key int16) kmsg.Response {
	switch key {
	case ShareNoteKey:
		return new(ShareNoteResponse)
	}
	return nil
}

// AddVersions adds the Sluice APIs at their highest versions to vs (for
// kgo.MaxVersions; nil starts from kversion.Stable()) and returns it.
func AddVersions(vs *kversion.Versions) *kversion.Versions {
	if vs == nil {
		vs = kversion.Stable()
	}
	vs.SetMaxKeyVersion(ShareNoteKey, (*ShareNoteRequest)(nil).MaxVersion())
	return vs
}

// reader is a kbin.Reader that also fails on counts the input cannot hold.
type reader struct {
	kbin.Reader
	err error // the first error other than running out of input
}

func (r *reader) failf(format string, args ...any) {
	if r.err == nil {
		r.err = fmt.Errorf("%w: "+format, append([]any{ErrMalformed}, args...)...)
	}
	r.Src = nil
	r.Span(1) // marks the reader bad: every later read returns zero values
}

// count reads a compact array count and checks that count elements of at
// least minSize bytes fit in what remains. Null (-1) is refused: no array
// here is nullable.
func (r *reader) count(name string, minSize int) int {
	n := int64(r.Uvarint()) - 1
	switch {
	case !r.Ok():
		return 0
	case n < 0:
		r.failf("%s: null array", name)
		return 0
	case n*int64(minSize) > int64(len(r.Src)):
		r.failf("%s: %d elements of at least %d bytes need more than the %d bytes remaining", name, n, minSize, len(r.Src))
		return 0
	}
	return int(n)
}

// readArray reads a compact array whose elements take at least minSize
// bytes each (checked by count), reading each element with readElem. An
// empty or refused array is nil.
func readArray[T any](r *reader, name string, minSize int, readElem func(*T, *reader)) []T {
	n := r.count(name, minSize)
	if n == 0 {
		return nil
	}
	xs := make([]T, n)
	for i := range xs {
		readElem(&xs[i], r)
	}
	return xs
}

// tags reads a tagged-field section; every tag is kept as unknown.
func (r *reader) tags() kmsg.Tags {
	var t kmsg.Tags
	n := r.Uvarint()
	if !r.Ok() {
		return t
	}
	if int64(n)*2 > int64(len(r.Src)) { // a tag is at least two bytes
		r.failf("%d tagged fields need more than the %d bytes remaining", n, len(r.Src))
		return t
	}
	for ; n > 0 && r.Ok(); n-- {
		key := r.Uvarint()
		size := r.Uvarint()
		if int64(size) > int64(len(r.Src)) {
			r.failf("tag %d size %d exceeds the %d bytes remaining", key, size, len(r.Src))
			return t
		}
		if v := r.Span(int(size)); r.Ok() {
			t.Set(key, v)
		}
	}
	return t
}

// str reads a compact non-nullable string.
func (r *reader) str(name string) string {
	n := int64(r.Uvarint()) - 1
	switch {
	case !r.Ok():
		return ""
	case n < 0:
		r.failf("%s: null string", name)
		return ""
	}
	return string(r.Span(int(min(n, int64(len(r.Src))+1))))
}

// nullableStr reads a compact nullable string.
func (r *reader) nullableStr() *string {
	n := int64(r.Uvarint()) - 1
	if !r.Ok() || n < 0 {
		return nil
	}
	s := string(r.Span(int(min(n, int64(len(r.Src))+1))))
	if !r.Ok() {
		return nil
	}
	return &s
}

// done returns the reader's error: a refused count, input that ran out,
// or bytes left over.
func (r *reader) done(what string) error {
	switch {
	case r.err != nil:
		return fmt.Errorf("%s: %w", what, r.err)
	case !r.Ok():
		return fmt.Errorf("%w: %s: truncated", ErrMalformed, what)
	case len(r.Src) > 0:
		return fmt.Errorf("%w: %s: %d trailing bytes", ErrMalformed, what, len(r.Src))
	}
	return nil
}

func appendTags(dst []byte, t *kmsg.Tags) []byte {
	dst = kbin.AppendUvarint(dst, uint32(t.Len()))
	return t.AppendEach(dst)
}

// appendArray appends xs as a compact array, each element with appendElem.
func appendArray[T any](dst []byte, xs []T, appendElem func(*T, []byte) []byte) []byte {
	dst = kbin.AppendCompactArrayLen(dst, len(xs))
	for i := range xs {
		dst = appendElem(&xs[i], dst)
	}
	return dst
}
