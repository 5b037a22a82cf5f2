package replication

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"maps"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/hashicorp/raft"
	"github.com/rs/zerolog"

	"github.com/sluicemq/sluice/log/batch"
	"github.com/sluicemq/sluice/partition"
)

var (
	_ raft.BatchingFSM = (*FSM)(nil)
	_ raft.FSMSnapshot = (*manifestSnapshot)(nil)
)

// InstallableSnapshot is implemented by the reader a SnapshotStore's Open
// returns when the snapshot carries more than its manifest (the segment
// files through its index). Restore calls Install, which must leave the log
// ending exactly at the snapshot's index and term (or empty, to continue at
// the next index and offset; doc.go), and then adopts Manifest, the
// snapshot's manifest bytes. A reader without these methods holds just the
// manifest, which Restore adopts only when the local log already holds the
// snapshot's last entry.
type InstallableSnapshot interface {
	Install() error
	Manifest() []byte
}

// ManifestStore is a raft.SnapshotStore whose snapshots carry more than the
// FSM's manifest (SnapshotStore: Open streams the segment files too).
// FSM.Init reads just the manifest through it.
type ManifestStore interface {
	Manifest(id string) (*raft.SnapshotMeta, []byte, error)
}

var _ ManifestStore = (*SnapshotStore)(nil)

// FSM is the state machine of a partition group. The entry's data is
// already in the log when raft commits it, so applying a command stores and
// copies nothing:
//
//   - a produce command advances the applied index and the high watermark,
//     computed from the batch header (the base offset the log stamped and
//     the batch's lastOffsetDelta, exactly as the log counted offsets), and,
//     with a partition, enters an idempotent producer's batch into the
//     partition's committed producer table;
//   - a CmdDeleteRecords or CmdRetention command moves the replicated log
//     start (never past the high watermark); the segment files below it are
//     removed once the local snapshots no longer need them (trim);
//   - a CmdShareState command applies a share group's delta to the
//     partition's committed share state, and a CmdShareReset command
//     replaces or deletes that state (partition.ResetShare).
//
// Apply is deterministic, so every replica reaches the same high
// watermark, log start and producer table for the same index. An entry at
// or below the applied index changes nothing. At open, Init sets the state
// from the latest snapshot's manifest: with NoSnapshotRestoreOnStart raft
// replays only the entries after the snapshot's index.
//
// The response to a produce command (ApplyFuture.Response) is the batch's
// base offset, an int64; other commands answer nil, or an error when an
// entry could not be applied.
type FSM struct {
	store *LogStore
	part  *partition.Partition // nil: the minimal FSM (index and high watermark only)
	lg    zerolog.Logger

	mu sync.Mutex
	st manifest // producers is left nil: the table lives in part

	snapIndex atomic.Uint64 // index of the latest snapshot persisted or restored locally
	trimMu    sync.Mutex    // one trim at a time

	start    atomic.Uint64 // index of the snapshot Init took the state from
	applied  atomic.Uint64 // entries applied (above the applied index) since open
	lowest   atomic.Uint64 // lowest index handed to Apply since open; 0: none
	restores atomic.Uint64 // snapshots installed by Restore
	stales   atomic.Uint64 // of which left raft's cached last entry stale

	// stale gets a token when Restore cut the log below what raft caches
	// as its last entry (hashicorp/raft#697): the group's raft must be
	// restarted, from outside raft's goroutines (Replica does).
	stale chan struct{}
}

// NewFSM returns a minimal FSM (applied index and high watermark) whose
// snapshots are checked against store.
func NewFSM(store *LogStore, opts ...Option) *FSM {
	o := buildOptions(opts)
	return &FSM{store: store, lg: o.logger.With().Str("component", "fsm").Logger(), stale: make(chan struct{}, 1)}
}

// NewPartitionFSM returns the FSM of a replica of partition p, whose log
// store must be over p.Log(). p must be opened with
// partition.OpenReplicated.
func NewPartitionFSM(store *LogStore, p *partition.Partition, opts ...Option) *FSM {
	f := NewFSM(store, opts...)
	f.part = p
	return f
}

// Applied returns the index of the last entry raft handed to the FSM
// (commands, and configuration changes in batches) and the high watermark:
// the offset after the last committed record.
func (f *FSM) Applied() (index uint64, hw int64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.st.index, f.st.hw
}

// FSMStats counts what the FSM applied since it was created.
type FSMStats struct {
	Applied       uint64 // entries applied (above the index the FSM started from)
	LowestApplied uint64 // lowest index raft handed to Apply, 0 when none
	SnapshotIndex uint64 // index of the latest local snapshot, 0 when none
	StartIndex    uint64 // index of the snapshot Init took the state from, 0 when none
	Restores      uint64 // snapshots from a leader that Restore adopted
	// StaleRestores counts the restores after which raft's cached last
	// entry was stale (the log held entries at or past the snapshot's
	// index, or another term at it): each asked for a raft restart.
	StaleRestores uint64
}

// Stats reports what the FSM applied since it was created.
func (f *FSM) Stats() FSMStats {
	return FSMStats{Applied: f.applied.Load(), LowestApplied: f.lowest.Load(), SnapshotIndex: f.snapIndex.Load(),
		StartIndex: f.start.Load(), Restores: f.restores.Load(), StaleRestores: f.stales.Load()}
}

// Init sets the FSM's state from the newest snapshot in snaps, the one raft
// takes its applied index from at start with NoSnapshotRestoreOnStart (api.go
// restoreSnapshot uses the first listed). Call it before raft.NewRaft. A
// snapshot whose manifest cannot be read is an error: raft would skip the
// entries it covers.
func (f *FSM) Init(snaps raft.SnapshotStore) error {
	list, err := snaps.List()
	if err != nil {
		return fmt.Errorf("replication: list snapshots: %w", err)
	}
	if len(list) == 0 {
		return nil
	}
	meta := list[0]
	b, err := localManifest(snaps, meta.ID)
	if err != nil {
		return err
	}
	m, err := decodeManifest(b)
	if err != nil {
		return fmt.Errorf("snapshot %s: %w", meta.ID, err)
	}
	if m, err = atRaftIndex(m, meta); err != nil {
		return err
	}
	if err := f.adopt(m); err != nil {
		return err
	}
	f.start.Store(m.index)
	f.lg.Info().Uint64("index", m.index).Int64("high_watermark", m.hw).Int64("log_start_offset", m.logStart).
		Msg("state from snapshot manifest")
	return nil
}

// localManifest reads the FSM manifest of snapshot id in snaps without
// streaming anything else the snapshot carries: its segments are the local
// log already.
func localManifest(snaps raft.SnapshotStore, id string) ([]byte, error) {
	if ms, ok := snaps.(ManifestStore); ok {
		_, b, err := ms.Manifest(id)
		if err != nil {
			return nil, fmt.Errorf("replication: read snapshot %s: %w", id, err)
		}
		return b, nil
	}
	_, rc, err := snaps.Open(id)
	if err != nil {
		return nil, fmt.Errorf("replication: open snapshot %s: %w", id, err)
	}
	defer rc.Close()
	if inst, ok := unwrapInstallable(rc); ok {
		return inst.Manifest(), nil
	}
	return readManifest(rc)
}

// atRaftIndex checks manifest m against the raft metadata of its snapshot
// and moves it to raft's index. raft takes a snapshot at its last applied
// index, which counts entries the FSM never sees (noops, barriers), so the
// manifest may name an earlier index: nothing between the two changed the
// state. Raft's index is the one it resumes after (and the one whose entry
// an installed snapshot's log ends with), so the FSM adopts it.
func atRaftIndex(m manifest, meta *raft.SnapshotMeta) (manifest, error) {
	if m.index > meta.Index || (m.index == meta.Index && m.term != meta.Term) {
		return m, fmt.Errorf("%w: snapshot %s is index %d term %d, its manifest says %d, %d", ErrSnapshot, meta.ID, meta.Index, meta.Term, m.index, m.term)
	}
	m.index, m.term = meta.Index, meta.Term
	return m, nil
}

// Apply applies one committed entry.
func (f *FSM) Apply(l *raft.Log) any {
	return f.ApplyBatch([]*raft.Log{l})[0]
}

// ApplyBatch applies committed entries in order (raft.BatchingFSM).
func (f *FSM) ApplyBatch(logs []*raft.Log) []any {
	out := make([]any, len(logs))
	f.mu.Lock()
	moved := false
	for i, l := range logs {
		var m bool
		out[i], m = f.apply(l)
		moved = moved || m
	}
	hw := f.st.hw
	f.mu.Unlock()
	if f.part != nil {
		f.part.SetHighWatermark(hw)
		if moved {
			if _, err := f.trim(); err != nil {
				f.lg.Error().Err(err).Msg("removing segments below the log start")
			}
		}
	}
	return out
}

// apply applies l under f.mu; moved reports a log start change.
func (f *FSM) apply(l *raft.Log) (resp any, moved bool) {
	if lo := f.lowest.Load(); lo == 0 || l.Index < lo {
		f.lowest.Store(l.Index)
	}
	var h batch.Header
	produce := l.Type == raft.LogCommand && isProduce(l.Data)
	if produce {
		var err error
		if h, err = parseHeader(l.Data[1:], f.part != nil); err != nil {
			// The log stored it as a batch, so this cannot happen unless
			// memory was changed under raft.
			f.lg.Error().Err(err).Uint64("index", l.Index).Int("bytes", len(l.Data)-1).Msg("committed produce entry is no batch")
			return fmt.Errorf("replication: apply %d: %w", l.Index, err), false
		}
		resp = h.BaseOffset
	}
	if l.Index <= f.st.index {
		return resp, false // replayed: already applied
	}
	f.applied.Add(1)
	f.st.index, f.st.term = l.Index, l.Term
	switch {
	case produce:
		f.st.hw = max(f.st.hw, h.BaseOffset+int64(h.LastOffsetDelta)+1)
		if f.part != nil {
			f.part.ApplyProduce(h)
		}
	case l.Type == raft.LogCommand && len(l.Data) > 0 && l.Data[0] == CmdShareState:
		group, delta, ok := parseShareState(l.Data)
		if !ok || f.part == nil {
			break
		}
		if err := f.part.ApplyShare(group, delta); err != nil {
			// Deterministic on every replica; the leader's working copy
			// is rebuilt from this committed state when it leads again.
			f.lg.Error().Err(err).Uint64("index", l.Index).Str("group", group).Msg("share state not applied")
			return err, false
		}
	case l.Type == raft.LogCommand && len(l.Data) > 0 && l.Data[0] == CmdShareReset:
		group, delta, ok := parseShareReset(l.Data)
		if !ok || f.part == nil {
			break
		}
		if err := f.part.ResetShare(group, delta); err != nil {
			f.lg.Error().Err(err).Uint64("index", l.Index).Str("group", group).Msg("share state reset not applied")
			return err, false
		}
	case l.Type == raft.LogCommand:
		off, ok := parseDeleteBefore(l.Data)
		if !ok {
			break
		}
		// The leader proposed at most its high watermark, which every
		// replica has reached by this entry; the min only makes sure.
		if off = min(off, f.st.hw); off > f.st.logStart {
			f.st.logStart = off
			if f.part != nil {
				f.part.SetLogStart(off)
			}
			moved = true
		}
	}
	return resp, moved
}

// parseHeader reads the header of a stored batch: all of it for a
// partition's producer table, else just the offset fields.
func parseHeader(b []byte, full bool) (batch.Header, error) {
	if full {
		return batch.ParseHeader(b)
	}
	if len(b) < batch.HeaderSize {
		return batch.Header{}, fmt.Errorf("%d bytes is shorter than a batch header", len(b))
	}
	// The same fields the log assigned offsets from: baseOffset (stamped
	// by the log) and lastOffsetDelta (see the batch package's layout).
	return batch.Header{
		BaseOffset:      int64(binary.BigEndian.Uint64(b[0:8])),
		LastOffsetDelta: int32(binary.BigEndian.Uint32(b[23:27])),
	}, nil
}

// trim removes the whole segments below the replicated log start that no
// local snapshot needs any more: a segment goes only when every entry in it
// is at or below the latest local snapshot's index, because at the next
// start raft replays the entries after that index from the log (and a
// leader sends a lagging follower entries or that snapshot). The active
// segment always stays. It reports whether a newer snapshot would let it
// remove more.
func (f *FSM) trim() (blocked bool, err error) {
	if f.part == nil {
		return false, nil
	}
	f.trimMu.Lock()
	defer f.trimMu.Unlock()
	f.mu.Lock()
	logical := f.st.logStart
	f.mu.Unlock()
	snap := f.snapIndex.Load()
	l := f.store.Log()
	segs := l.Segments()
	cut := l.StartOffset()
	for _, s := range segs[:max(len(segs)-1, 0)] {
		if s.NextOffset > logical {
			break
		}
		if s.LastIndex > snap {
			blocked = true
			break
		}
		cut = max(cut, s.NextOffset)
	}
	if cut <= l.StartOffset() {
		return blocked, nil
	}
	if err := l.DeleteBefore(cut); err != nil {
		return blocked, fmt.Errorf("replication: delete segments before %d: %w", cut, err)
	}
	f.lg.Info().Int64("offset", cut).Int64("log_start_offset", logical).Uint64("snapshot_index", snap).
		Msg("removed segments below the log start")
	return blocked, nil
}

// snapshotted records that a snapshot at index is stored locally.
func (f *FSM) snapshotted(index uint64) {
	for {
		cur := f.snapIndex.Load()
		if index <= cur || f.snapIndex.CompareAndSwap(cur, index) {
			return
		}
	}
}

// Snapshot captures the applied state as a manifest: the indexes, offsets
// and the committed producer table. Persisting it writes that alone; the
// records stay in the segment files.
func (f *FSM) Snapshot() (raft.FSMSnapshot, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	m := f.st
	m.next = m.hw
	if f.part != nil {
		m.producers = f.part.ProducerState()
		m.shares = f.part.ShareStates()
	}
	return &manifestSnapshot{m: m, f: f}, nil
}

// Restore adopts a snapshot. A reader that is an InstallableSnapshot
// (possibly wrapped by raft: UnwrapSnapshot), such as a *ReceivedSnapshot,
// has its manifest checked, then installs its segment files, leaving the
// log ending at the snapshot's index and term (or empty right after it);
// a manifest that names an index below the snapshot's (raft's lastApplied:
// noops and barriers in between) is adopted at the snapshot's index and
// term. A plain manifest is adopted only when the local log already holds
// the manifest's last entry with the same term, so the records it describes
// are present; otherwise Restore returns ErrSnapshotNeedsSegments and
// changes nothing.
//
// When the log held entries past the snapshot's index, or another term at
// it, raft's cached last log entry is stale after the install
// (hashicorp/raft#697, doc.go): Restore counts it (FSMStats.StaleRestores)
// and signals the replica to restart the group's raft.
func (f *FSM) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	var b []byte
	inst, installable := unwrapInstallable(rc)
	if installable {
		b = inst.Manifest()
	} else {
		var err error
		if b, err = readManifest(rc); err != nil {
			return err
		}
	}
	m, err := decodeManifest(b)
	if err != nil {
		return err
	}
	if installable {
		index, term := m.index, m.term
		if mi, ok := inst.(interface{ Meta() raft.SnapshotMeta }); ok {
			meta := mi.Meta()
			if m, err = atRaftIndex(m, &meta); err != nil {
				return err
			}
			index, term = meta.Index, meta.Term
		}
		stale := f.cachedLastStale(index, term)
		f.restores.Add(1)
		if err := inst.Install(); err != nil {
			return fmt.Errorf("replication: install snapshot: %w", err)
		}
		if err := f.adopt(m); err != nil {
			return err
		}
		f.lg.Info().Uint64("index", m.index).Uint64("term", m.term).Int64("high_watermark", m.hw).
			Int64("log_start_offset", m.logStart).Bool("raft_restart", stale).Msg("installed snapshot from the leader")
		if _, err := f.trim(); err != nil {
			f.lg.Error().Err(err).Msg("removing segments below the log start")
		}
		if stale {
			f.stales.Add(1)
			select {
			case f.stale <- struct{}{}:
			default: // one restart covers every restore before it
			}
		}
		return nil
	}
	if m.index > 0 {
		var e raft.Log
		err := f.store.GetLog(m.index, &e)
		if errors.Is(err, raft.ErrLogNotFound) || (err == nil && e.Term != m.term) {
			return fmt.Errorf("%w: index %d term %d", ErrSnapshotNeedsSegments, m.index, m.term)
		}
		if err != nil {
			return err
		}
	}
	if err := f.adopt(m); err != nil {
		return err
	}
	f.lg.Info().Uint64("index", m.index).Int64("high_watermark", m.hw).Msg("restored snapshot")
	if _, err := f.trim(); err != nil {
		f.lg.Error().Err(err).Msg("removing segments below the log start")
	}
	return nil
}

// cachedLastStale reports whether installing a snapshot through index (of
// term) leaves raft's cached last log entry stale: raft keeps (L, term of
// L) from before the install, and after it answers max(L, index), so it is
// wrong when the log held L > index, or index itself with another term.
// Called before the install, on raft's FSM goroutine (nothing stores
// entries meanwhile: the main goroutine waits for the restore).
func (f *FSM) cachedLastStale(index, term uint64) bool {
	l := f.store.Log()
	switch last := l.LastIndex(); {
	case last > index:
		return true
	case last == index && last > 0:
		e, err := l.Entry(index)
		return err != nil || e.Term != term
	}
	return false
}

// adopt makes m the FSM's state; raft stores a snapshot before restoring
// it, so m is also the latest local snapshot.
func (f *FSM) adopt(m manifest) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.part != nil {
		if err := f.part.RestoreProducerState(m.producers); err != nil {
			return fmt.Errorf("%w: producer table: %w", ErrSnapshot, err)
		}
		if err := f.part.RestoreShareStates(m.shares); err != nil {
			return fmt.Errorf("%w: %w", ErrSnapshot, err)
		}
		f.part.ClearInflight()
		f.part.SetLogStart(m.logStart)
		f.part.SetHighWatermark(m.hw)
	}
	m.producers, m.shares = nil, nil
	f.st = m
	f.snapshotted(m.index)
	return nil
}

// unwrapInstallable finds an InstallableSnapshot under raft's wrappers.
func unwrapInstallable(rc io.ReadCloser) (InstallableSnapshot, bool) {
	for {
		if inst, ok := rc.(InstallableSnapshot); ok {
			return inst, true
		}
		w, ok := rc.(raft.ReadCloserWrapper)
		if !ok {
			return nil, false
		}
		rc = w.WrappedReadCloser()
	}
}

func readManifest(r io.Reader) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, maxManifestSize+1))
	if err != nil {
		return nil, fmt.Errorf("replication: read snapshot: %w", err)
	}
	return b, nil
}

// manifest is the FSM state a snapshot records.
//
// Encoding (little-endian): magic "SLSN", version 3, 3 reserved zero bytes,
// index u64, term u64, high watermark i64, log start offset i64, next
// offset i64 (the offset the batch after index takes; equal to the high
// watermark, since a snapshot covers applied entries only), producer table
// length u32, producer table (package partition's producer snapshot
// encoding, "SLPS"; empty for the minimal FSM), then the share-group
// states: count u32, and for each (sorted by group, each group once),
// group length u16, group, state length u32, state (package share's
// snapshot encoding), then a CRC-32C of every byte before it. Version 2 is version 3 without the share states (it is
// still read). Version 1 (36 bytes: index, term, high watermark) is
// refused: no released replica wrote it.
type manifest struct {
	index, term uint64
	hw          int64
	logStart    int64
	next        int64
	producers   []byte
	shares      map[string][]byte
}

const (
	manifestFixed   = 52 // through the producer table length
	manifestVersion = 3
	// maxManifestSize bounds what Restore reads: a producer table of
	// partition.Options.MaxProducers (default 10000) producers with full
	// dedup windows is under 1 MiB.
	maxManifestSize = 64 << 20
)

var (
	manifestMagic = [4]byte{'S', 'L', 'S', 'N'}
	castagnoli    = crc32.MakeTable(crc32.Castagnoli)
)

func (m manifest) encode() []byte {
	b := make([]byte, manifestFixed, manifestFixed+len(m.producers)+4)
	copy(b, manifestMagic[:])
	b[4] = manifestVersion
	binary.LittleEndian.PutUint64(b[8:], m.index)
	binary.LittleEndian.PutUint64(b[16:], m.term)
	binary.LittleEndian.PutUint64(b[24:], uint64(m.hw))
	binary.LittleEndian.PutUint64(b[32:], uint64(m.logStart))
	binary.LittleEndian.PutUint64(b[40:], uint64(m.next))
	binary.LittleEndian.PutUint32(b[48:], uint32(len(m.producers)))
	b = append(b, m.producers...)
	groups := slices.Sorted(maps.Keys(m.shares))
	b = binary.LittleEndian.AppendUint32(b, uint32(len(groups)))
	for _, g := range groups {
		b = binary.LittleEndian.AppendUint16(b, uint16(len(g)))
		b = append(b, g...)
		b = binary.LittleEndian.AppendUint32(b, uint32(len(m.shares[g])))
		b = append(b, m.shares[g]...)
	}
	return binary.LittleEndian.AppendUint32(b, crc32.Checksum(b, castagnoli))
}

func decodeManifest(b []byte) (manifest, error) {
	switch {
	case len(b) < manifestFixed+4:
		return manifest{}, fmt.Errorf("%w: %d bytes, want at least %d", ErrSnapshot, len(b), manifestFixed+4)
	case len(b) > maxManifestSize:
		return manifest{}, fmt.Errorf("%w: more than %d bytes", ErrSnapshot, maxManifestSize)
	case [4]byte(b[:4]) != manifestMagic:
		return manifest{}, fmt.Errorf("%w: bad magic % x", ErrSnapshot, b[:4])
	case b[4] != manifestVersion && b[4] != 2:
		return manifest{}, fmt.Errorf("%w: version %d, want 2 or %d", ErrSnapshot, b[4], manifestVersion)
	case binary.LittleEndian.Uint32(b[len(b)-4:]) != crc32.Checksum(b[:len(b)-4], castagnoli):
		return manifest{}, fmt.Errorf("%w: checksum mismatch", ErrSnapshot)
	}
	n := binary.LittleEndian.Uint32(b[48:])
	body := b[:len(b)-4]
	if uint64(n) > uint64(len(body)-manifestFixed) || (b[4] == 2 && uint64(n) != uint64(len(body)-manifestFixed)) {
		return manifest{}, fmt.Errorf("%w: producer table of %d bytes in %d", ErrSnapshot, n, len(b))
	}
	m := manifest{
		index:    binary.LittleEndian.Uint64(b[8:]),
		term:     binary.LittleEndian.Uint64(b[16:]),
		hw:       int64(binary.LittleEndian.Uint64(b[24:])),
		logStart: int64(binary.LittleEndian.Uint64(b[32:])),
		next:     int64(binary.LittleEndian.Uint64(b[40:])),
	}
	if n > 0 {
		m.producers = b[manifestFixed : manifestFixed+int(n)]
	}
	if b[4] >= 3 {
		shares, err := decodeShares(body[manifestFixed+int(n):])
		if err != nil {
			return manifest{}, err
		}
		m.shares = shares
	}
	if m.hw < 0 || m.logStart < 0 || m.logStart > m.hw || m.next < m.hw {
		return manifest{}, fmt.Errorf("%w: offsets: high watermark %d, log start %d, next %d", ErrSnapshot, m.hw, m.logStart, m.next)
	}
	return m, nil
}

// decodeShares reads the share-group states of a version 3 manifest;
// every length is checked against the bytes left before it is used.
func decodeShares(b []byte) (map[string][]byte, error) {
	bad := func(what string) (map[string][]byte, error) {
		return nil, fmt.Errorf("%w: share states: %s", ErrSnapshot, what)
	}
	if len(b) < 4 {
		return bad("no count")
	}
	count := binary.LittleEndian.Uint32(b)
	b = b[4:]
	if uint64(count) > uint64(len(b)/6) { // each takes at least 6 bytes
		return bad(fmt.Sprintf("%d states in %d bytes", count, len(b)))
	}
	out := make(map[string][]byte, count)
	var prev string
	for range count {
		if len(b) < 2 {
			return bad("truncated group")
		}
		gl := int(binary.LittleEndian.Uint16(b))
		if len(b) < 2+gl+4 {
			return bad("truncated group")
		}
		g := string(b[2 : 2+gl])
		// encode writes groups sorted, once each: a duplicate would
		// silently drop a state, and one manifest has one reading.
		if len(out) > 0 && g <= prev {
			return bad(fmt.Sprintf("group %q after %q", g, prev))
		}
		prev = g
		b = b[2+gl:]
		sl := binary.LittleEndian.Uint32(b)
		if uint64(sl) > uint64(len(b)-4) {
			return bad("truncated state")
		}
		out[g] = b[4 : 4+int(sl)]
		b = b[4+int(sl):]
	}
	if len(b) != 0 {
		return bad(fmt.Sprintf("%d trailing bytes", len(b)))
	}
	return out, nil
}

type manifestSnapshot struct {
	m manifest
	f *FSM
}

func (s *manifestSnapshot) Persist(sink raft.SnapshotSink) error {
	if _, err := sink.Write(s.m.encode()); err != nil {
		_ = sink.Cancel()
		return fmt.Errorf("replication: write snapshot: %w", err)
	}
	if err := sink.Close(); err != nil {
		return err
	}
	// The snapshot is stored: segments wholly at or below its index may go
	// once retention has moved the log start past them.
	s.f.snapshotted(s.m.index)
	if _, err := s.f.trim(); err != nil {
		s.f.lg.Error().Err(err).Msg("removing segments below the log start")
	}
	return nil
}

func (s *manifestSnapshot) Release() {}
