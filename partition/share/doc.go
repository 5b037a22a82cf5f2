// Package share is the state machine of one KIP-932 share-partition (a
// share group on one topic partition) and its replication codec. It is
// pure: no I/O, no goroutines, no raft, no clock (every call that needs the
// time takes it). A Partition is not safe for concurrent use.
//
// # The window
//
// SPSO (Start) is the first offset not done; NextRead (SPEO+1) is the first
// offset not yet admitted. The caller reads the log from NextRead, at most
// Room records, and hands them to Admit. Every record in [SPSO, NextRead)
// has a state:
//
//	Available --Acquire--> Acquired --ACCEPT-------------> Acknowledged
//	    ^                     |      --REJECT, GAP--------> Archived
//	    |                     |      --RELEASE, lock expiry, member gone:
//	    +---(after backoff)---+          count < DeliveryLimit -> Available
//	                                     otherwise            -> Archived
//
// Acknowledged and Archived are terminal. A record is done when it is
// terminal and has no pending dead letter; SPSO moves over leading done
// records. Offsets with no record (compaction gaps) are never tracked:
// they are done by definition, acquired ranges never span them, and acks
// naming them are ignored. MaxInFlight bounds the records tracked (done
// records after a record that is not done count too), so memory is about
// 64 bytes times MaxInFlight, plus pending dead letters (below).
//
// Sluice extensions, all replicated: NotBefore (a record is not delivered
// before a time), backoff (a released or expired record is available again
// only after a delay growing per delivery), key ordering (a record is
// acquired only when every earlier record of its key is done, so each key
// has at most one record in flight and finishes in offset order), and dead
// letters (a record archived by REJECT or by the delivery limit stays
// pending until the caller confirms it wrote it to the dead-letter topic;
// SPSO does not pass a pending dead letter, so a stuck dead-letter writer
// fills the window, Full reports it, and nothing is lost).
//
// # Replication
//
// Every mutating call marks the records it changed. The leader drains them
// with TakeDelta after each call (or batch of calls) and replicates the
// bytes through raft; every replica applies committed deltas with Apply.
// A delta carries the final state of each changed record still in the
// window plus SPSO and NextRead, and a sequence number: Apply ignores a
// delta it already has (so the leader may apply its own deltas, and a
// restart may replay deltas older than its snapshot) and refuses one that
// skips a number (ErrDeltaGap).
//
// Replicated: states, delivery counts, NotBefore/backoff times, key hashes,
// pending dead letters, SPSO, NextRead. Not replicated: which member holds
// an acquired record and its lock deadline. A replica decodes an acquired
// record with no owner and an expired lock, so after a failover those
// records are released by the new leader's first Expire (or ReleaseAll),
// with their delivery counts kept: KIP-932 does the same. A delivery count
// is exact after a failover as long as the leader replicates an
// acquisition's delta (and waits for its commit) before handing the
// records out; otherwise it is never higher than the deliveries made and
// may be lower by the deliveries of uncommitted acquisitions.
//
// The leader's Partition runs ahead of the committed state by the deltas
// in flight. When a replica becomes leader it should build its working
// Partition from its committed copy, Restore(cfg, committed.Snapshot())
// after raft's barrier, then ReleaseAll; when it stops being leader it
// must drop the working copy (its uncommitted deltas may never commit) and
// keep only the committed one.
//
// The encoding is in codec.go.
package share
