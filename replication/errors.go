package replication

import "errors"

var (
	// ErrExtensions is returned by StoreLogs for a raft.Log with non-empty
	// Extensions: a frame has no room for them and Sluice never sets them,
	// so storing the entry would silently lose them.
	ErrExtensions = errors.New("replication: raft log extensions are not supported")
	// ErrDeleteRange is returned by DeleteRange for a range that is neither
	// a head (compaction) nor a suffix (conflict truncation): raft never
	// asks for one, and the log cannot punch holes.
	ErrDeleteRange = errors.New("replication: delete range inside the log")
	// ErrConfig is returned by CheckConfig for a raft.Config under which
	// raft would delete or hide customer records.
	ErrConfig = errors.New("replication: raft config unsafe for a log store")
	// ErrSnapshot is returned by FSM.Restore for a manifest that is
	// damaged or of an unknown version.
	ErrSnapshot = errors.New("replication: bad snapshot manifest")
	// ErrSnapshotNeedsSegments is returned by FSM.Restore for a snapshot
	// that carries a manifest only (a store other than SnapshotStore) when
	// the local log does not hold the snapshot's last entry: the records it
	// describes would be missing.
	ErrSnapshotNeedsSegments = errors.New("replication: snapshot not covered by the local log")
)
