package replication

import (
	"fmt"
	"math"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
)

// RaftConfig returns the raft configuration for a group whose LogStore is a
// LogStore. Timing fields keep raft's defaults (1 s heartbeat and election
// timeouts, 500 ms leader lease, 50 ms commit timeout); tuning them for
// many groups per process belongs with the transport. Set Logger to
// HCLogger(zerolog) to see raft's own log lines.
func RaftConfig(id raft.ServerID) *raft.Config {
	c := raft.DefaultConfig()
	c.LocalID = id

	// The log is the data: raft's compaction (snapshot.go
	// compactLogsWithTrailing) would delete everything older than
	// TrailingLogs entries behind a snapshot, customer records included.
	// At the maximum, lastLogIdx <= TrailingLogs always holds and raft never
	// calls DeleteRange for compaction; retention, a replicated command, is
	// the only deleter. LogStore ignores head deletes anyway.
	c.TrailingLogs = math.MaxUint64

	// Automatic snapshots never fire: the FSM cannot yet send segment files
	// with a snapshot, and with TrailingLogs at its maximum no follower ever
	// needs one (the leader keeps every entry). The snapshot step lowers
	// these again (snapshots are cheap manifests) so that retention, which
	// must not pass the latest snapshot index, can advance.
	c.SnapshotThreshold = math.MaxUint64
	c.SnapshotInterval = 24 * time.Hour

	// Applies queue in a channel of MaxAppendEntries, so the leader loop
	// takes every waiting apply at once: one StoreLogs, one fsync, one
	// replication round per group of producers (group commit across
	// partitions' producers and connections).
	c.BatchApplyCh = true

	// Entries per StoreLogs group, per AppendEntries RPC and per FSM
	// batch. The default 64 caps a group commit at 64 producer batches;
	// 256 lets a busy partition share one fsync among more of them. Memory
	// per in-flight RPC is bounded by MaxAppendEntries x the largest batch
	// (max.message.bytes): 16 MiB at 64 KiB batches, 256 MiB at 1 MiB, so
	// topics with large batches may want less.
	c.MaxAppendEntries = 256

	// FSM state is the log itself plus a manifest; Apply is idempotent and
	// only advances the high watermark, so raft replays entries after the
	// last snapshot at start (hashicorp/raft#523) instead of restoring the
	// snapshot into the FSM, which would mean re-reading segment files.
	c.NoSnapshotRestoreOnStart = true

	// Skip the legacy per-peer duplicates of the replication metrics
	// (names suffixed with the peer instead of labelled).
	c.NoLegacyTelemetry = true

	// Pre-vote (the default, when the transport supports it) keeps an
	// isolated replica from inflating the term and unseating the leader
	// when it returns.
	c.PreVoteDisabled = false

	// raft writes to stderr when Logger is nil; a library never prints.
	c.Logger = hclog.NewNullLogger()
	return c
}

// CheckConfig returns ErrConfig when c would let raft delete records from
// a LogStore: TrailingLogs below its maximum (raft would then issue head
// DeleteRange calls, and on a follower a racing conflict truncation could
// make one look like a suffix) or snapshot restore on start (the partition
// FSM's Restore replaces the log's segments, which at start already are the
// state and which a local manifest-only snapshot cannot replace).
// ReloadConfig can change
// TrailingLogs on a live raft; the same rule applies to what is passed there.
func CheckConfig(c *raft.Config) error {
	if c.TrailingLogs != math.MaxUint64 {
		return fmt.Errorf("%w: TrailingLogs %d, want math.MaxUint64", ErrConfig, c.TrailingLogs)
	}
	if !c.NoSnapshotRestoreOnStart {
		return fmt.Errorf("%w: NoSnapshotRestoreOnStart must be set", ErrConfig)
	}
	return nil
}
