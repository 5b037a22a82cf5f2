package replication

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
)

// AppendProduce appends a produce command for batch to dst and returns the
// extended slice. It copies batch; a caller that can read the batch into a
// buffer with one byte of headroom avoids the copy by setting that byte to
// CmdProduce itself.
func AppendProduce(dst, batch []byte) []byte {
	dst = append(dst, CmdProduce)
	return append(dst, batch...)
}

// isProduce reports whether data, the Data of a raft.LogCommand entry, is a
// produce command.
func isProduce(data []byte) bool {
	return len(data) > 0 && data[0] == CmdProduce
}
