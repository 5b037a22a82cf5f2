package share

import "errors"

var (
	// ErrInvalidRequest: an acknowledgement batch is malformed (first >
	// last, negative, unsorted, overlapping, unknown type) or names an
	// offset at or past NextRead. Kafka's INVALID_REQUEST.
	ErrInvalidRequest = errors.New("share: invalid request")
	// ErrInvalidRecordState: an acknowledged record is not acquired by the
	// acknowledging member (another member's, released, expired, already
	// acknowledged or archived). Kafka's INVALID_RECORD_STATE (121), not
	// retriable.
	ErrInvalidRecordState = errors.New("share: invalid record state")
	// ErrCorrupt: a delta or snapshot does not decode, or does not fit the
	// state it is applied to.
	ErrCorrupt = errors.New("share: corrupt state encoding")
	// ErrDeltaGap: a delta's sequence number is not the next one; a delta
	// was lost or the deltas come from diverged leaders.
	ErrDeltaGap = errors.New("share: delta out of sequence")
	// ErrInvalidConfig: Config.Validate found a bad value.
	ErrInvalidConfig = errors.New("share: invalid config")
)
