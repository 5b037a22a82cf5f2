package protocol

import (
	"encoding/binary"
	"fmt"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// errUnsupportedVersionCode is Kafka's UNSUPPORTED_VERSION error code.
const errUnsupportedVersionCode = 35

// AppendResponse appends a complete response frame to dst and returns the
// extended slice: the 4-byte size, the response header (the correlation id,
// then an empty tagged-field section when the response is flexible, except
// for ApiVersions, whose response header is always v0), then the body.
//
// resp must be the response to h.Key at h.Version: req.Msg.ResponseKind()
// returns one with the version already set; a response built otherwise
// needs resp.SetVersion(h.Version).
// Both are programming errors, not conditions of client input, so
// AppendResponse panics if they do not hold rather than send a response
// the client would misread. The frame must stay below 2 GiB, which the
// broker ensures by honouring the request's byte limits.
func AppendResponse(dst []byte, h Header, resp kmsg.Response) []byte {
	if resp.Key() != h.Key || resp.GetVersion() != h.Version {
		panic(fmt.Sprintf("protocol: AppendResponse: response key %d v%d for request key %d v%d",
			resp.Key(), resp.GetVersion(), h.Key, h.Version))
	}
	start := len(dst)
	dst = append(dst, 0, 0, 0, 0) // size, patched below
	dst = binary.BigEndian.AppendUint32(dst, uint32(h.CorrelationID))
	if resp.IsFlexible() && resp.Key() != apiVersionsKey {
		dst = append(dst, 0) // response header v1: no tagged fields
	}
	dst = resp.AppendTo(dst)
	binary.BigEndian.PutUint32(dst[start:], uint32(len(dst)-start-4))
	return dst
}

// AppendApiVersionsFallback appends the answer to an ApiVersions request
// whose version is above the supported maximum: an ApiVersions v0 response
// with error code 35 (UNSUPPORTED_VERSION) and the supported versions, so
// the client can retry with a version both sides know (KIP-511). The
// connection stays open.
func AppendApiVersionsFallback(dst []byte, correlationID int32) []byte {
	resp := kmsg.NewPtrApiVersionsResponse()
	resp.SetVersion(0)
	resp.ErrorCode = errUnsupportedVersionCode
	FillApiVersions(resp)
	return AppendResponse(dst, Header{Key: apiVersionsKey, Version: 0, CorrelationID: correlationID}, resp)
}
