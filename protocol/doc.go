// Package protocol frames and decodes Kafka requests for Sluice and frames
// its responses. It does no API semantics: the broker routes the decoded
// kmsg requests by key and builds kmsg responses.
//
// # Wire format
//
// Every request and response is a frame: a 4-byte big-endian size followed
// by that many bytes. A request frame starts with the request header:
//
//	api_key        int16
//	api_version    int16
//	correlation_id int32
//	client_id      nullable string (int16 length, -1 = null; never compact)
//	tagged fields  (header v2 only: when the request version is flexible)
//
// then the request body in kmsg's encoding. A response frame starts with
// the correlation id, then (response header v1, flexible versions except
// ApiVersions) an empty tagged-field section, then the body.
//
// # Reading a request
//
//	frame, err := protocol.ReadFrame(br, limits) // br: a *bufio.Reader
//	if err != nil { close the connection }
//	req, err := protocol.Decode(frame)
//	switch {
//	case err == nil:
//		route req.Msg by req.Header.Key
//	case req != nil && req.Header.Key == 18 && errors.Is(err, protocol.ErrUnsupportedVersion):
//		write protocol.AppendApiVersionsFallback(buf, req.Header.CorrelationID)
//	default:
//		log err (req.Header when req != nil), close the connection
//	}
//
// and the answer, built from req.Msg.ResponseKind() (which carries the
// request's version), is written with AppendResponse(buf, req.Header, resp).
//
// # Hostile input
//
// Every function here takes client bytes and never panics on them. Memory
// is bounded before it is spent:
//
//  1. ReadFrame checks the size prefix against Limits before allocating,
//     reads the API key without allocating, and caps every non-Produce
//     frame at MaxControlRequestBytes (1 MiB) because kmsg's decoders may
//     allocate tens of times a frame's size for arrays of tiny elements.
//  2. Decode walks the body against a schema of the request (one file per
//     API key, 00_produce.go ... 92_delete_share_group_offsets.go, then Sluice's own
//     32000_sluice_share_note.go) before kmsg (or sluiceapi) sees it: every
//     array count is checked against the bytes remaining with the
//     element's real minimum size, every length and tagged-field section is
//     bounded, and trailing bytes are rejected. This also stops a kmsg
//     tagged-field loop that otherwise spins for minutes on an 8-byte body.
//  3. The walk also estimates what kmsg will allocate, and Decode rejects
//     a body that would need more than 2 x its size + 64 KiB for Produce
//     (whose frames may be 100 MiB: real produce requests need less than
//     their size, because kmsg aliases the record bytes into the frame), or
//     32 x its size + 64 KiB for the other, 1 MiB-capped, requests.
//
// Decoded strings are copied out of the frame; byte fields (Produce
// records, JoinGroup protocol metadata, SyncGroup assignments) are not, so
// a frame buffer must not be reused while its request is in use.
//
// Errors wrap the sentinels in errors.go. The package never logs or prints.
package protocol
