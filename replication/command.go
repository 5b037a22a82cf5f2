package replication

import "encoding/binary"

// Command tags: the first byte of the Data of every raft.LogCommand entry
// Sluice proposes. Tag 0 is reserved so that a zeroed buffer is never
// mistaken for a command.
const (
	// CmdProduce: the rest of the command is one Kafka RecordBatch v2. The
	// LogStore stores it as a batch frame (the batch bytes only, without
	// the tag), so the log assigns its offsets and Kafka reads see it as
	// produced. The caller validates the batch (batch.Validate) before
	// proposing it: a structurally invalid batch fails the leader's whole
	// StoreLogs group and raft steps the leader down (raft.go dispatchLogs).
	CmdProduce byte = 1
	// CmdDeleteRecords: DeleteRecords. The rest is the new log start
	// offset, 8 bytes big-endian. A non-batch frame: it takes no offsets.
	CmdDeleteRecords byte = 2
	// CmdRetention: retention (retention.ms, retention.bytes) as computed
	// by the leader. The rest is the new log start offset, 8 bytes
	// big-endian. Applied exactly like CmdDeleteRecords; the tag only says
	// who asked.
	CmdRetention byte = 3
	// CmdShareState: a share group's state change on this partition
	// (package share's delta). The rest is the group's length (uvarint),
	// the group, then the delta. A non-batch frame.
	CmdShareState byte = 4
	// CmdShareReset: an operator replaced a share group's state on this
	// partition (AlterShareGroupOffsets, DeleteShareGroupOffsets). Laid
	// out as CmdShareState; the delta is the first delta of a new state
	// (share.New at the new start, then TakeDelta), or empty to delete the
	// state. Unlike a CmdShareState delta it may move the window back, so
	// it is a command of its own that only an operator's request proposes.
	CmdShareReset byte = 5
)

// appendShareState appends a CmdShareState command.
func appendShareState(dst []byte, group string, delta []byte) []byte {
	return appendShareCmd(dst, CmdShareState, group, delta)
}

// parseShareState splits a CmdShareState command; ok is false for
// anything else or a malformed one.
func parseShareState(data []byte) (group string, delta []byte, ok bool) {
	return parseShareCmd(data, CmdShareState)
}

// appendShareReset appends a CmdShareReset command; a nil delta deletes
// the group's state.
func appendShareReset(dst []byte, group string, delta []byte) []byte {
	return appendShareCmd(dst, CmdShareReset, group, delta)
}

// parseShareReset splits a CmdShareReset command; ok is false for
// anything else or a malformed one.
func parseShareReset(data []byte) (group string, delta []byte, ok bool) {
	return parseShareCmd(data, CmdShareReset)
}

// appendShareCmd appends tag, the group's length (uvarint), the group and
// the delta.
func appendShareCmd(dst []byte, tag byte, group string, delta []byte) []byte {
	dst = append(dst, tag)
	dst = binary.AppendUvarint(dst, uint64(len(group)))
	dst = append(dst, group...)
	return append(dst, delta...)
}

// parseShareCmd splits a command appendShareCmd wrote with tag.
func parseShareCmd(data []byte, tag byte) (group string, delta []byte, ok bool) {
	if len(data) < 2 || data[0] != tag {
		return "", nil, false
	}
	n, w := binary.Uvarint(data[1:])
	// An overlong length (0x80 0x00 for 0) is refused: appendShareCmd
	// never writes one, and one command must have one encoding.
	if w <= 0 || w != uvarintLen(n) || n > uint64(len(data)-1-w) {
		return "", nil, false
	}
	rest := data[1+w:]
	return string(rest[:n]), rest[n:], true
}

func uvarintLen(n uint64) int {
	var b [binary.MaxVarintLen64]byte
	return binary.PutUvarint(b[:], n)
}

// AppendProduce appends a produce command for batch to dst and returns the
// extended slice. It copies batch; a caller that can read the batch into a
// buffer with one byte of headroom avoids the copy by setting that byte to
// CmdProduce itself (Replica.ProduceCommand).
func AppendProduce(dst, batch []byte) []byte {
	dst = append(dst, CmdProduce)
	return append(dst, batch...)
}

// isProduce reports whether data, the Data of a raft.LogCommand entry, is a
// produce command.
func isProduce(data []byte) bool {
	return len(data) > 0 && data[0] == CmdProduce
}

// appendDeleteBefore appends a CmdDeleteRecords or CmdRetention command.
func appendDeleteBefore(dst []byte, tag byte, offset int64) []byte {
	dst = append(dst, tag)
	return binary.BigEndian.AppendUint64(dst, uint64(offset))
}

// parseDeleteBefore returns the offset of a CmdDeleteRecords or
// CmdRetention command; ok is false for anything else.
func parseDeleteBefore(data []byte) (offset int64, ok bool) {
	if len(data) != 9 || (data[0] != CmdDeleteRecords && data[0] != CmdRetention) {
		return 0, false
	}
	return int64(binary.BigEndian.Uint64(data[1:])), true
}
