package replication

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"sync"

	"github.com/hashicorp/raft"
	"github.com/rs/zerolog"

	"github.com/sluicemq/sluice/log/batch"
)

var (
	_ raft.BatchingFSM = (*FSM)(nil)
	_ raft.FSMSnapshot = (*manifestSnapshot)(nil)
)

// FSM is the minimal state machine of a partition group, and the starting
// point of the partition FSM. The entry's data is already in the log when
// raft commits it, so applying a command stores and copies nothing: Apply
// only advances the applied index and the high watermark, computed from two
// fields of the batch header: the base offset the log stamped and the
// batch's lastOffsetDelta, exactly as the log counted offsets.
//
// Apply is idempotent: raft replays committed entries at every start
// (NoSnapshotRestoreOnStart, hashicorp/raft#523) and an entry at or below
// the applied index changes nothing. It is deterministic, so every replica
// reaches the same high watermark for the same index.
//
// The response to a produce command (ApplyFuture.Response) is the batch's
// base offset, an int64; other commands answer nil.
type FSM struct {
	store *LogStore
	lg    zerolog.Logger

	mu sync.Mutex
	st manifest
}

// NewFSM returns an FSM whose snapshots are checked against store.
func NewFSM(store *LogStore, opts ...Option) *FSM {
	o := buildOptions(opts)
	return &FSM{store: store, lg: o.logger.With().Str("component", "fsm").Logger()}
}

// Applied returns the index of the last entry raft handed to the FSM
// (commands, and configuration changes in batches) and the high watermark:
// the offset after the last committed record.
func (f *FSM) Applied() (index uint64, hw int64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.st.index, f.st.hw
}

// Apply applies one committed entry.
func (f *FSM) Apply(l *raft.Log) any {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.apply(l)
}

// ApplyBatch applies committed entries in order (raft.BatchingFSM).
func (f *FSM) ApplyBatch(logs []*raft.Log) []any {
	out := make([]any, len(logs))
	f.mu.Lock()
	defer f.mu.Unlock()
	for i, l := range logs {
		out[i] = f.apply(l)
	}
	return out
}

func (f *FSM) apply(l *raft.Log) any {
	var resp any
	next := int64(-1)
	if l.Type == raft.LogCommand && isProduce(l.Data) {
		b := l.Data[1:]
		if len(b) < batch.HeaderSize {
			// The log stored it as a batch, so this cannot happen unless
			// memory was changed under raft.
			f.lg.Error().Uint64("index", l.Index).Int("bytes", len(b)).Msg("committed produce entry is shorter than a batch header")
			return fmt.Errorf("replication: apply %d: %d bytes is no batch", l.Index, len(b))
		}
		// The same fields the log assigned offsets from: baseOffset (stamped
		// by the log) and lastOffsetDelta (see the batch package's layout).
		base := int64(binary.BigEndian.Uint64(b[0:8]))
		resp, next = base, base+int64(int32(binary.BigEndian.Uint32(b[23:27])))+1
	}
	if l.Index <= f.st.index {
		return resp // replayed: already applied
	}
	f.st.index, f.st.term = l.Index, l.Term
	f.st.hw = max(f.st.hw, next)
	return resp
}

// Snapshot captures the applied state as a manifest. Persisting it writes
// a few dozen bytes: the records stay in the segment files.
func (f *FSM) Snapshot() (raft.FSMSnapshot, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return &manifestSnapshot{m: f.st}, nil
}

// Restore adopts a snapshot manifest. It succeeds only when the local log
// already holds the manifest's last entry with the same term, so the
// records the manifest describes are present; otherwise it returns
// ErrSnapshotNeedsSegments and changes nothing (installing the segment
// files with the snapshot is the next step's work, see doc.go).
func (f *FSM) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, manifestSize+1))
	if err != nil {
		return fmt.Errorf("replication: read snapshot: %w", err)
	}
	m, err := decodeManifest(b)
	if err != nil {
		return err
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
	f.mu.Lock()
	f.st = m
	f.mu.Unlock()
	f.lg.Info().Uint64("index", m.index).Int64("high_watermark", m.hw).Msg("restored snapshot manifest")
	return nil
}

// manifest is the FSM state a snapshot records.
//
// Encoding (little-endian, manifestSize bytes): magic "SLSN", version 1,
// 3 reserved zero bytes, index u64, term u64, high watermark i64, then a
// CRC-32C of the bytes before it.
type manifest struct {
	index, term uint64
	hw          int64
}

const (
	manifestSize    = 36
	manifestVersion = 1
)

var (
	manifestMagic = [4]byte{'S', 'L', 'S', 'N'}
	castagnoli    = crc32.MakeTable(crc32.Castagnoli)
)

func (m manifest) encode() []byte {
	b := make([]byte, manifestSize)
	copy(b, manifestMagic[:])
	b[4] = manifestVersion
	binary.LittleEndian.PutUint64(b[8:], m.index)
	binary.LittleEndian.PutUint64(b[16:], m.term)
	binary.LittleEndian.PutUint64(b[24:], uint64(m.hw))
	binary.LittleEndian.PutUint32(b[32:], crc32.Checksum(b[:32], castagnoli))
	return b
}

func decodeManifest(b []byte) (manifest, error) {
	switch {
	case len(b) != manifestSize:
		return manifest{}, fmt.Errorf("%w: %d bytes, want %d", ErrSnapshot, len(b), manifestSize)
	case [4]byte(b[:4]) != manifestMagic:
		return manifest{}, fmt.Errorf("%w: bad magic % x", ErrSnapshot, b[:4])
	case b[4] != manifestVersion:
		return manifest{}, fmt.Errorf("%w: version %d, want %d", ErrSnapshot, b[4], manifestVersion)
	case binary.LittleEndian.Uint32(b[32:]) != crc32.Checksum(b[:32], castagnoli):
		return manifest{}, fmt.Errorf("%w: checksum mismatch", ErrSnapshot)
	}
	return manifest{
		index: binary.LittleEndian.Uint64(b[8:]),
		term:  binary.LittleEndian.Uint64(b[16:]),
		hw:    int64(binary.LittleEndian.Uint64(b[24:])),
	}, nil
}

type manifestSnapshot struct{ m manifest }

func (s *manifestSnapshot) Persist(sink raft.SnapshotSink) error {
	if _, err := sink.Write(s.m.encode()); err != nil {
		_ = sink.Cancel()
		return fmt.Errorf("replication: write snapshot: %w", err)
	}
	return sink.Close()
}

func (s *manifestSnapshot) Release() {}
