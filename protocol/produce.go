package protocol

import (
	"fmt"
	"unsafe"
)

// Decoding budgets: a body is rejected when the heap kmsg would allocate to
// decode it, as estimated by the walker, exceeds factor x len(body) +
// allocSlack (the slack covers fixed costs, so that no small request is ever
// refused).
//
// Real produce requests need far less than their size (record bytes are
// aliased, and every partition carries a batch of 61+ bytes against ~40
// bytes of Go struct), so the Produce factor of 2 only rejects requests
// built to amplify memory: thousands of topics with empty names and no
// partitions, partitions with null records and unknown tagged fields.
//
// Other requests are capped at 1 MiB by ReadFrame and legitimately decode
// to more than their size: a Metadata v1 request listing one-letter topic
// names needs ~21 bytes of Go per wire byte. Their factor of 32 admits
// those and stops the worst amplifier kmsg allows, unknown tagged fields
// (~50x: a 2-byte tag becomes a map entry).
const (
	produceAllocFactor = 2
	controlAllocFactor = 32
	allocSlack         = 64 << 10
)

// CheckProduceArrays checks a Produce request body (the bytes after the
// request header) at the given version before kmsg decodes it, without
// allocating. It walks transactional_id, acks, timeout_ms, the topics array
// (name, or topic_id from v13) and each topic's partitions array (index,
// nullable records), with the tagged fields of flexible versions (v9+), and
// checks:
//
//   - every array count against the bytes remaining, using the element's
//     real minimum encoded size at this version, so that kmsg's up-front
//     count x sizeof(element) allocation is backed by actual bytes;
//   - every string and records length against the bytes remaining, and that
//     negative lengths are -1 (null) where null is allowed;
//   - every tagged-field section (bounded by its bytes; kmsg's own loop is
//     not), and that the body has no trailing bytes;
//   - that the heap kmsg will allocate to decode it, estimated from the
//     above, is at most 2 x len(body) + 64 KiB.
//
// Errors wrap ErrMalformedRequest, or ErrUnsupportedVersion for a version
// outside 0-13. Whatever it accepts, kmsg's ProduceRequest.ReadFrom decodes
// without error within that memory bound (the fuzz tests check both).
func CheckProduceArrays(version int16, body []byte) error {
	if version < 0 || version > produceRequest.maxVersion {
		return fmt.Errorf("%w: produce version %d", ErrUnsupportedVersion, version)
	}
	est, err := walkBody(produceRequest, version, body)
	if err != nil {
		return err
	}
	return checkBudget(est, len(body), produceAllocFactor)
}

func allocLimit(bodyLen int, factor int64) int64 { return factor*int64(bodyLen) + allocSlack }

func checkBudget(est int64, bodyLen int, factor int64) error {
	if limit := allocLimit(bodyLen, factor); est > limit {
		return fmt.Errorf("%w: decoding this %d-byte body would allocate about %d bytes (limit %d)",
			ErrMalformedRequest, bodyLen, est, limit)
	}
	return nil
}

// SpareByteBefore returns the slice of frame that starts one byte before
// records and ends with it, when records lies inside frame with at least
// one byte before it; ok is false otherwise (records empty, elsewhere, or
// at the start of frame). Decode leaves each Produce partition's records
// aliasing the request frame, right after their length prefix, which has
// been decoded and is no longer needed, so a handler that owns the frame
// may overwrite that byte: replication.Replica.ProduceCommand takes the
// batch behind a one-byte tag without copying it. Only addresses are
// compared; no pointer is made from an integer.
func SpareByteBefore(frame, records []byte) (cmd []byte, ok bool) {
	if len(records) == 0 || len(frame) == 0 {
		return nil, false
	}
	f := uintptr(unsafe.Pointer(unsafe.SliceData(frame)))
	r := uintptr(unsafe.Pointer(unsafe.SliceData(records)))
	if r <= f || r-f > uintptr(len(frame)) {
		return nil, false
	}
	off := int(r - f)
	if len(records) > len(frame)-off {
		return nil, false
	}
	return frame[off-1 : off+len(records) : off+len(records)], true
}
