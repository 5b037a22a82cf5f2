package protocol

import (
	"encoding/binary"
	"fmt"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// Header is a decoded request header (v1, or v2 in flexible versions; the
// v2 tagged fields carry nothing Sluice uses and are skipped).
type Header struct {
	Key           int16
	Version       int16
	CorrelationID int32
	ClientID      *string // nil when the client sent a null client id
}

// Request is a decoded request.
type Request struct {
	Header Header
	// Msg is the decoded body, a kmsg request of Header.Key with its
	// version set to Header.Version (a sluiceapi type for Sluice's own
	// keys, see NewRequest). It is nil when Decode returned an error.
	//
	// Strings in Msg are copies, but byte fields (Produce records,
	// JoinGroup protocol metadata, SyncGroup assignments) alias the frame:
	// the frame buffer must not be reused while Msg is in use, and bytes
	// kept longer than the request (a group's member metadata) should be
	// copied so that they do not pin the whole frame.
	Msg kmsg.Request
}

// Decode decodes one frame as returned by ReadFrame (no size prefix).
//
// It parses the request header, checks the key and version against
// Supported, walks the body against the request's schema (for Produce this
// is CheckProduceArrays) so that every count, length and tagged field is
// bounded by the bytes present and kmsg's allocation by a multiple of the
// body (2x for Produce, 32x for the others, plus 64 KiB), and only then
// decodes the body with kmsg.
//
// Errors wrap ErrMalformedRequest, ErrUnknownAPI or ErrUnsupportedVersion.
// Whenever the fixed part of the header (key, version, correlation id) was
// present, Decode returns a *Request with the parsed Header and a nil Msg
// together with the error, so the broker can log it and, for an ApiVersions
// request with ErrUnsupportedVersion, answer with AppendApiVersionsFallback.
// For ErrUnknownAPI and ErrUnsupportedVersion the client id is filled in
// when it parses, and left nil otherwise.
//
// Trailing bytes after the body are an error (ErrMalformedRequest), unlike
// kmsg and kfake, which ignore them: every Kafka encoder writes exactly the
// body, so extra bytes mean a version mismatch or a request built to be read
// differently by different parsers.
func Decode(frame []byte) (*Request, error) {
	if len(frame) < minFrameSize {
		return nil, fmt.Errorf("%w: header needs %d bytes, frame has %d", ErrMalformedRequest, minFrameSize, len(frame))
	}
	req := &Request{Header: Header{
		Key:           int16(binary.BigEndian.Uint16(frame[0:])),
		Version:       int16(binary.BigEndian.Uint16(frame[2:])),
		CorrelationID: int32(binary.BigEndian.Uint32(frame[4:])),
	}}
	h := &req.Header

	e := lookup(h.Key)
	if e == nil {
		h.ClientID, _, _ = clientID(frame)
		return req, fmt.Errorf("%w: key %d version %d", ErrUnknownAPI, h.Key, h.Version)
	}
	if !e.api.Versions.Contains(h.Version) {
		h.ClientID, _, _ = clientID(frame)
		return req, fmt.Errorf("%w: %s (key %d) version %d, supported %d-%d",
			ErrUnsupportedVersion, e.api.Name, h.Key, h.Version, e.api.Versions.Min, e.api.Versions.Max)
	}

	cid, pos, err := clientID(frame)
	if err != nil {
		return req, err
	}
	h.ClientID = cid

	msg := NewRequest(h.Key)
	msg.SetVersion(h.Version)
	// The request header is v2 (with tagged fields) exactly when the
	// request is flexible; kmsg's IsFlexible already reports ApiVersions
	// as flexible from v3, which is when its header becomes v2.
	if msg.IsFlexible() {
		if pos, err = skipHeaderTags(frame, pos); err != nil {
			return req, err
		}
	}
	body := frame[pos:]

	if h.Key == produceKey {
		err = CheckProduceArrays(h.Version, body)
	} else {
		var est int64
		if est, err = walkBody(e.schema, h.Version, body); err == nil {
			err = checkBudget(est, len(body), controlAllocFactor)
		}
	}
	if err != nil {
		return req, fmt.Errorf("%w (%s v%d body)", err, e.api.Name, h.Version)
	}
	if err := msg.ReadFrom(body); err != nil {
		// Unreachable if the schema matches kmsg; kept as a backstop.
		return req, fmt.Errorf("%w: %s v%d: kmsg: %v", ErrMalformedRequest, e.api.Name, h.Version, err)
	}
	req.Msg = msg
	return req, nil
}

// clientID parses the nullable client id that follows the fixed header
// (header v1 and v2 both use a classic int16 length here, never a compact
// one). It returns the client id and the offset after it.
func clientID(frame []byte) (*string, int, error) {
	pos := minFrameSize
	if len(frame) < pos+2 {
		return nil, 0, fmt.Errorf("%w: header: client id length needs 2 bytes, %d remain", ErrMalformedRequest, len(frame)-pos)
	}
	n := int(int16(binary.BigEndian.Uint16(frame[pos:])))
	pos += 2
	switch {
	case n == -1:
		return nil, pos, nil
	case n < 0:
		return nil, 0, fmt.Errorf("%w: header: client id length %d", ErrMalformedRequest, n)
	case n > len(frame)-pos:
		return nil, 0, fmt.Errorf("%w: header: client id length %d exceeds the %d bytes remaining", ErrMalformedRequest, n, len(frame)-pos)
	}
	s := string(frame[pos : pos+n])
	return &s, pos + n, nil
}

// skipHeaderTags skips the tagged fields of a v2 request header, none of
// which Sluice uses, checking every size against the frame.
func skipHeaderTags(frame []byte, pos int) (int, error) {
	w := walker{src: frame, pos: pos, flexible: true}
	if err := w.walkTags(&structType{}); err != nil {
		return 0, fmt.Errorf("%w (request header)", err)
	}
	return w.pos, nil
}
