// Package replication runs a partition as a hashicorp/raft group whose Raft
// log is the partition's segment log (package log): LogStore implements
// raft.LogStore over *log.Log, so every produced byte is written to disk
// once, and every replica's log assigns the same Kafka offsets to the same
// entries with no offset translator. Replica is one replica of a
// partition: the partition (package partition, opened replicated), its
// LogStore, the partition FSM (high watermark, log start, idempotent
// producer table, snapshot manifests) and its *raft.Raft; RaftConfig holds
// the raft settings this arrangement needs.
//
// # Replica
//
// The leader validates a produced batch (partition.Prepare) before
// raft.Apply, because an invalid batch in StoreLogs would fail the
// leader's whole group. Under one lock per replica it checks the producer
// sequence against the committed table plus its own in-flight proposals
// (partition.Sequence) and calls raft.Apply, so entry order is sequence
// order. One raft entry carries the whole batch. The log stamps the base
// offset when storing; the FSM's Apply answers it. acks=-1 is answered
// after commit and apply; acks=1 from the LogStore's hook after the
// leader's StoreLogs, which finds the proposal by its command buffer;
// acks=0 at once. A new leader takes no writes until a raft.Barrier of its
// term has applied its whole log; losing leadership clears the in-flight
// view. DeleteRecords and retention are replicated commands (CmdDeleteRecords,
// CmdRetention) moving the replicated log start; segment files below it are
// removed only where every entry is at or below the latest local snapshot
// (FSM.trim), so a restart never needs an entry that is gone. A follower
// whose next entries retention deleted on the leader catches up through
// InstallSnapshot, which streams the leader's segment files (SnapshotStore;
// see the last section).
//
// # Commands
//
// A raft.LogCommand's Data starts with a tag byte. CmdProduce is followed
// by one Kafka RecordBatch v2, stored as a batch frame holding the batch
// alone; everything else (other commands, noop, barrier, configuration) is
// a non-batch frame whose type byte is the raft.LogType and which takes no
// offsets. GetLog puts the tag back in front of a batch frame.
//
// # Who may delete entries
//
// raft.LogStore.DeleteRange is called from four places in hashicorp/raft
// v1.8.0, and the log is customer data, so each was checked:
//
//  1. Conflict truncation on a follower, raft.go:1543 in appendEntries:
//     DeleteRange(entry.Index, lastLogIdx), lastLogIdx being raft's idea of
//     the last index. Always a suffix of uncommitted entries: LogStore calls
//     log.TruncateFrom, and the offsets roll back, so the leader's entries
//     that replace them take the offsets they have on the leader.
//  2. Compaction after a snapshot, snapshot.go:206 -> compactLogsWithTrailing:
//     DeleteRange(FirstIndex, min(snapIdx, lastLogIdx-TrailingLogs)), a
//     head. With TrailingLogs = math.MaxUint64 (RaftConfig) the early
//     return at snapshot.go:227 (lastLogIdx <= trailingLogs) always fires
//     and raft never asks; LogStore ignores head ranges regardless.
//     Retention, itself a replicated command, is the only deleter.
//  3. After InstallSnapshot, raft.go:1963-1970: removeOldLogs for a
//     MonotonicLogStore (DeleteRange(FirstIndex, LastIndex): everything),
//     otherwise compactLogs(req.LastLogIndex), which (2) makes a no-op.
//  4. raft.RecoverCluster, api.go:443: DeleteRange(FirstIndex, LastIndex)
//     after writing a snapshot. That would delete every record, so
//     RecoverCluster must never be run over a LogStore.
//
// # Why LogStore is not a MonotonicLogStore
//
// The log does refuse gaps (StoreEntries wants LastIndex+1), which is what
// MonotonicLogStore describes, but declaring it changes only (3) and user
// snapshot restore, and makes both worse here:
//
//   - A non-monotonic store is expected to accept the gap that follows an
//     installed snapshot: the next AppendEntries stores index S+1 over a
//     log that may end far below S. Ours cannot, and raft's DeleteRange
//     cannot help, since it carries no Kafka offset: only the FSM's
//     Restore knows at which offset the log continues. So Restore must
//     leave the log ending at S (segments installed through S) or empty at
//     S+1 (log.Reset(S+1, offset)). After that, compactLogs is a no-op.
//   - With MonotonicLogStore, removeOldLogs then deletes whatever Restore
//     left: an empty log is untouched, but a log installed through S would
//     be cut to nothing by the suffix rule (it covers LastIndex), leaving
//     the next index at the old FirstIndex instead of S+1, and every later
//     StoreLogs would fail out of order.
//   - raft.Restore (restoreUserSnapshot, raft.go:1105) burns an index
//     (raft.go:1144) and sets raft's last log to it (raft.go:1186) without
//     storing an entry; our log cannot store after that gap with or without
//     MonotonicLogStore. Sluice does not use user snapshot restore.
//
// # What InstallSnapshot leaves behind, and what the snapshot step does
//
// installSnapshot (raft.go:1837) restores the FSM, then sets lastApplied
// and lastSnapshot (raft.go:1954, 1957) but never raft's cached last log
// entry. getLastEntry (state.go:167) answers the larger of the two, so:
//
//   - A lagging follower (its last index L < S) works once Restore has made
//     the log end at S or start empty at S+1: getLastEntry gives (S, term),
//     the leader's AppendEntries with PrevLogEntry S matches (raft.go:1498)
//     and entries from S+1 on are stored.
//   - A follower with entries at or past S (L >= S) only needs a snapshot
//     when its entry at S conflicts: after each rejection the leader probes
//     an earlier index (replication.go:256), passing S, and sends a snapshot
//     only once it lacks the probed entry. Restore must therefore drop
//     everything from S on, but raft keeps answering from its stale (L, old
//     term): the next AppendEntries finds PrevLogEntry S but fails on
//     GetLog(S+1) ("failed to get log entry", raft.go:1536), the leader
//     probes down below its first index and sends the snapshot again,
//     forever. Stock stores suffer the same livelock (hashicorp/raft#697; a
//     fix is proposed in #704).
//
// What Sluice does about it:
//
//  1. SnapshotStore (the Replica's default, under <Dir>/snapshots) is the
//     group's raft.SnapshotStore. A snapshot is a manifest (index, term,
//     configuration, log start offset, next offset, producer state); Open
//     streams a header, the manifest and the segment frames through index
//     S, the segments pinned against retention while streaming and the
//     active segment cut at S's frame, and SnapshotMeta.Size is exactly the
//     bytes streamed (the follower compares, raft.go installSnapshot). Its
//     sink, on the follower, writes the segment files into a staging
//     directory beside the log (log.Staging), because raft copies the whole
//     stream into the sink before calling Restore: a FileSnapshotStore
//     would write every record twice. Manifest(id) reads a snapshot's
//     manifest alone, for FSM.Init.
//  2. FSM.Restore unwraps raft's reader (UnwrapSnapshot) to the
//     *ReceivedSnapshot, checks its manifest against the snapshot's raft
//     metadata (a manifest index below raft's, which counts noops and
//     barriers the FSM never sees, is adopted at raft's index and term),
//     and calls Install: log.InstallSnapshot swaps the staged segments in
//     crash-safely so that the log ends exactly at S with the snapshot's
//     term, or is empty at S+1 and the manifest's next offset when no
//     segments came. Then it adopts the manifest: high watermark, log start
//     and the producer table, so idempotent retries from before the
//     snapshot are still recognised.
//  3. Before installing, Restore notes whether the log held an entry past
//     S, or S with another term; if so raft's cached last entry is stale
//     after the install, and Restore signals the Replica (FSMStats
//     StaleRestores). The Replica's watcher goroutine, never raft's own,
//     then restarts the group's raft: Shutdown, then NewRaft over the same
//     log, stable store, snapshots and transport, which reads the last
//     entry back from the log and, with NoSnapshotRestoreOnStart, takes
//     lastApplied from the installed snapshot without restoring it again
//     (Replica.RaftRestarts). raft closes a transport with WithClose in
//     Shutdown, so the Replica hands raft the transport without it and
//     closes it itself in Close. Its methods read the current raft through
//     an atomic pointer; writes to the old one fail with
//     NOT_LEADER_FOR_PARTITION; a Close during a restart waits for it and
//     shuts the new raft down.
//  4. At open, FSM.Init sets the FSM's applied index, high watermark, log
//     start and producer table from the newest snapshot's manifest (raft's
//     index and term when the manifest's is lower, as in Restore): with
//     NoSnapshotRestoreOnStart raft sets lastApplied to the snapshot index
//     (api.go:659) without calling Restore and replays only the entries
//     after it.
//  5. TrailingLogs stays at its maximum, and retention never deletes a
//     segment holding an entry past the latest local snapshot's index
//     (FSM.trim), so the leader can always send either the entries or a
//     snapshot: the newest snapshot's stream needs only segments from the
//     first kept one through S (none when the log starts at S+1), and a
//     streaming snapshot pins its segments until it is closed.
//
// The transport step must carry InstallSnapshot's stream without buffering
// it in memory and multiplex the groups of a broker pair over one
// connection; the StableStore (term and vote) is raft-boltdb, never the
// partition data.
package replication
