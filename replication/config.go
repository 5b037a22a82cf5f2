package replication

import (
	"fmt"
	"math"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
)

// RaftConfig returns the raft configuration for a group whose LogStore is a
// LogStore, tuned for hundreds of groups per broker (see below). Set Logger
// to HCLogger(zerolog) to see raft's own log lines.
//
// Timing. hashicorp/raft has no multi-raft heartbeat coalescing or
// quiescence, so every group pays its own idle traffic: a leader sends each
// follower a heartbeat every HeartbeatTimeout/10 to 2x that, and in
// pipeline mode an AppendEntries every CommitTimeout to 2x that even when
// there is nothing to send. Raft's defaults (1 s, 50 ms) cost ~25 RPCs/s
// per follower per group; with 300 groups and two followers each, ~15,000
// RPCs/s for an idle broker. The values here cut that to ~7 per follower
// per group:
//
//   - HeartbeatTimeout 2 s (heartbeats every 200-400 ms): a follower calls
//     an election 2-4 s after its leader dies. Failover within seconds is
//     in line with Kafka clients' retry budgets (delivery.timeout.ms is 2
//     minutes by default); faster detection costs idle CPU in every group.
//   - ElectionTimeout 2 s: a split vote is retried within 2-4 s.
//   - LeaderLeaseTimeout 1 s (at most HeartbeatTimeout): a leader cut off
//     from its quorum steps down within about a second, failing its
//     pending proposals, so producers retry elsewhere quickly.
//   - CommitTimeout 250 ms: only the idle pipeline RPC above uses it (new
//     entries are sent at once, so it adds nothing to commit latency). It
//     bounds how stale a follower's high watermark is after the last write:
//     followers learn the commit index from the next AppendEntries, at most
//     500 ms later. Consumers read from leaders (from followers only with
//     KIP-392), so this lag is rarely visible.
//
// Snapshots are manifests (index, offsets, producer table; fsm.go), so
// taking one costs one small file: SnapshotThreshold 4096 entries checked
// every SnapshotInterval 30 s bounds what a crash restart replays
// (entries after the latest snapshot) without touching idle groups, and
// a clean Replica.Close takes one so that a clean restart replays nothing.
func RaftConfig(id raft.ServerID) *raft.Config {
	c := raft.DefaultConfig()
	c.LocalID = id

	c.HeartbeatTimeout = 2 * time.Second
	c.ElectionTimeout = 2 * time.Second
	c.LeaderLeaseTimeout = time.Second
	c.CommitTimeout = 250 * time.Millisecond

	// The log is the data: raft's compaction (snapshot.go
	// compactLogsWithTrailing) would delete everything older than
	// TrailingLogs entries behind a snapshot, customer records included.
	// At the maximum, lastLogIdx <= TrailingLogs always holds and raft never
	// calls DeleteRange for compaction; retention, a replicated command, is
	// the only deleter. LogStore ignores head deletes anyway.
	c.TrailingLogs = math.MaxUint64

	// Snapshots are cheap manifests; retention never removes segments a
	// local snapshot does not cover (FSM.trim), so the leader can always
	// send a follower either entries or a snapshot.
	c.SnapshotThreshold = 4096
	c.SnapshotInterval = 30 * time.Second

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

	// FSM state is the log itself plus a manifest. At start the FSM takes
	// its state from the latest snapshot's manifest (FSM.Init) and raft
	// replays only the entries after it (hashicorp/raft#523), instead of
	// restoring the snapshot into the FSM, which for a snapshot with
	// segments would mean replacing the log with itself.
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
// make one look like a suffix) or snapshot restore on start (at start the
// log's segments already are the state; Restore would reinstall them from
// the local snapshot for nothing, or refuse). ReloadConfig can change
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
