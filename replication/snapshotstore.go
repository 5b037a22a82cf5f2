package replication

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/raft"
	"github.com/rs/zerolog"

	"github.com/sluicemq/sluice/log"
	"github.com/sluicemq/sluice/log/vfs"
)

var (
	_ raft.SnapshotStore = (*SnapshotStore)(nil)
	_ raft.SnapshotSink  = (*snapshotSink)(nil)
	_ io.ReadCloser      = (*ReceivedSnapshot)(nil)
)

// ErrSnapshotStream is returned for a snapshot stream that is damaged,
// truncated, or claims sizes beyond the store's limits.
var ErrSnapshotStream = errors.New("replication: bad snapshot stream")

// SnapshotStore is the raft.SnapshotStore of a partition group. A snapshot
// is small: the raft.SnapshotMeta and the FSM's opaque manifest (producer
// state), kept in dir as one file per snapshot, the latest retainSnapshots
// of them. The records stay in the segment log, which Open streams from:
//
//   - Local snapshot (raft's takeSnapshot): the FSM's Persist writes its
//     manifest to the sink, and Close saves it. Cheap.
//   - Open on a local snapshot (raft sending InstallSnapshot): the reader
//     yields the stream header, the manifest, then the log's segment files
//     through the snapshot index (log.SnapshotReader, pinned while open),
//     and meta.Size is exactly its byte count.
//   - Create on a follower receiving InstallSnapshot: raft copies the
//     stream into the sink; the sink parses it as it arrives, keeps the
//     manifest and writes the segment files into a staging area beside
//     the log (log.Staging), never holding them in memory. Open on that
//     snapshot returns a *ReceivedSnapshot, whose Install adopts the staged
//     files into the log; FSM.Restore calls it.
//
// The sink tells the two uses apart by the first bytes: a stream starts
// with streamPrefix ("SLSS", 1, 0, 0, 0), so an FSM manifest must differ
// from it within its first len(streamPrefix) bytes (the partition FSM's
// starts "SLSN"). FSM.Init reads a local snapshot's manifest through
// Manifest, never through Open.
//
// Stream format (little-endian; header CRC-32C protected):
//
//	magic "SLSS", version 1, 3 reserved zero bytes
//	index u64, term u64, start offset i64, next offset i64
//	manifest length u32, file count u32, manifest CRC-32C u32, reserved u32
//	per file: size u64, name length u16, name
//	header CRC-32C u32 over everything above
//	manifest bytes
//	the files' bytes, one after another
//
// Snapshot file format (dir/<id>.snap, written tmp + fsync + rename + dir
// fsync): magic "SLSM", version 1, state u8 (1 local, 2 received and not
// yet installed), 2 reserved, start offset i64, next offset i64, meta
// length u32, manifest length u32, the raft.SnapshotMeta as JSON, the
// manifest, CRC-32C u32 over everything before it.
//
// A received snapshot whose Install did not run (a crash, a refusal) is
// never listed: raft answered the leader only after Restore, so the leader
// sends it again. At NewSnapshotStore, and when a ReceivedSnapshot is
// closed uninstalled, it is kept as a local snapshot if the log holds its
// last entry with its term (a crash between the log's install and the
// store's note of it), and discarded with its staging area otherwise.
type SnapshotStore struct {
	dir string
	log *log.Log
	lg  zerolog.Logger

	mu     sync.Mutex
	staged map[string]*log.Staging // received, not yet installed
}

const (
	retainSnapshots = 2
	snapExt         = ".snap"
	streamVersion   = 1
	// Limits checked before anything is allocated from a claimed length.
	maxManifestBytes = 64 << 20
	maxMetaBytes     = 64 << 20
	maxStreamFiles   = 1 << 16
	maxFileName      = 255
	streamFixedSize  = 56
	snapFixedSize    = 32
)

const (
	stateLocal    = 1
	stateReceived = 2
)

var (
	streamPrefix = []byte{'S', 'L', 'S', 'S', streamVersion, 0, 0, 0}
	snapMagic    = []byte("SLSM")
	streamCRC    = crc32.MakeTable(crc32.Castagnoli)
)

// NewSnapshotStore opens (creating) the store in dir over the partition's
// log l. Received snapshots left uninstalled by a crash are settled (see
// SnapshotStore) and leftover staging areas removed.
func NewSnapshotStore(dir string, l *log.Log, lg zerolog.Logger) (*SnapshotStore, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("replication: snapshot dir: %w", err)
	}
	s := &SnapshotStore{dir: dir, log: l, lg: lg.With().Str("component", "snapshots").Str("dir", dir).Logger(), staged: map[string]*log.Staging{}}
	names, err := vfs.OS{}.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("replication: list %s: %w", dir, err)
	}
	for _, n := range names {
		if strings.HasSuffix(n, ".tmp") {
			if err := os.Remove(filepath.Join(dir, n)); err != nil {
				return nil, fmt.Errorf("replication: remove %s: %w", n, err)
			}
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	snaps, err := s.readAll()
	if err != nil {
		return nil, err
	}
	for _, sn := range snaps {
		if sn.state == stateReceived {
			if err := s.settle(sn); err != nil {
				return nil, err
			}
		}
	}
	stagings, err := l.StagingNames()
	if err != nil {
		return nil, fmt.Errorf("replication: list staging areas: %w", err)
	}
	for _, n := range stagings {
		s.lg.Info().Str("staging", n).Msg("removing leftover staging area")
		if err := l.RemoveStaging(n); err != nil {
			return nil, err
		}
	}
	return s, s.reap()
}

// storedSnapshot is one decoded snapshot file.
type storedSnapshot struct {
	meta     raft.SnapshotMeta
	state    uint8
	start    int64
	next     int64
	manifest []byte
}

func (s *SnapshotStore) path(id string) string { return filepath.Join(s.dir, id+snapExt) }

func encodeSnapFile(sn *storedSnapshot) ([]byte, error) {
	meta, err := json.Marshal(&sn.meta)
	if err != nil {
		return nil, err
	}
	b := make([]byte, 0, snapFixedSize+len(meta)+len(sn.manifest)+4)
	b = append(b, snapMagic...)
	b = append(b, streamVersion, sn.state, 0, 0)
	b = binary.LittleEndian.AppendUint64(b, uint64(sn.start))
	b = binary.LittleEndian.AppendUint64(b, uint64(sn.next))
	b = binary.LittleEndian.AppendUint32(b, uint32(len(meta)))
	b = binary.LittleEndian.AppendUint32(b, uint32(len(sn.manifest)))
	b = append(b, meta...)
	b = append(b, sn.manifest...)
	return binary.LittleEndian.AppendUint32(b, crc32.Checksum(b, streamCRC)), nil
}

func decodeSnapFile(b []byte) (*storedSnapshot, error) {
	if len(b) < snapFixedSize+4 || !bytes.Equal(b[:4], snapMagic) || b[4] != streamVersion {
		return nil, errors.New("bad size, magic or version")
	}
	if crc32.Checksum(b[:len(b)-4], streamCRC) != binary.LittleEndian.Uint32(b[len(b)-4:]) {
		return nil, errors.New("checksum mismatch")
	}
	sn := &storedSnapshot{state: b[5], start: int64(binary.LittleEndian.Uint64(b[8:])), next: int64(binary.LittleEndian.Uint64(b[16:]))}
	ml, nl := int64(binary.LittleEndian.Uint32(b[24:])), int64(binary.LittleEndian.Uint32(b[28:]))
	if snapFixedSize+ml+nl+4 != int64(len(b)) || (sn.state != stateLocal && sn.state != stateReceived) {
		return nil, errors.New("lengths or state disagree with the file")
	}
	if err := json.Unmarshal(b[snapFixedSize:snapFixedSize+ml], &sn.meta); err != nil {
		return nil, fmt.Errorf("meta: %w", err)
	}
	sn.manifest = b[snapFixedSize+ml : snapFixedSize+ml+nl]
	return sn, nil
}

func (s *SnapshotStore) write(sn *storedSnapshot) error {
	b, err := encodeSnapFile(sn)
	if err != nil {
		return err
	}
	if err := vfs.WriteFileAtomic(vfs.OS{}, s.path(sn.meta.ID), b); err != nil {
		return fmt.Errorf("replication: write snapshot %s: %w", sn.meta.ID, err)
	}
	return nil
}

func (s *SnapshotStore) read(id string) (*storedSnapshot, error) {
	if strings.ContainsAny(id, `/\`) || id == "" {
		return nil, fmt.Errorf("replication: bad snapshot id %q", id)
	}
	b, err := vfs.ReadFile(vfs.OS{}, s.path(id), snapFixedSize+maxMetaBytes+maxManifestBytes+4)
	if err != nil {
		return nil, fmt.Errorf("replication: read snapshot %s: %w", id, err)
	}
	sn, err := decodeSnapFile(b)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrSnapshotStream, s.path(id), err)
	}
	if sn.meta.ID != id {
		return nil, fmt.Errorf("%w: %s holds snapshot %q", ErrSnapshotStream, s.path(id), sn.meta.ID)
	}
	return sn, nil
}

// readAll reads every snapshot file, newest first: by index, then term,
// then ID (a later term with a lower index is not newer: hashicorp/raft#395).
// A file that does not decode is skipped with a warning.
func (s *SnapshotStore) readAll() ([]*storedSnapshot, error) {
	names, err := vfs.OS{}.ReadDir(s.dir)
	if err != nil {
		return nil, fmt.Errorf("replication: list %s: %w", s.dir, err)
	}
	var out []*storedSnapshot
	for _, n := range names {
		id, ok := strings.CutSuffix(n, snapExt)
		if !ok {
			continue
		}
		sn, err := s.read(id)
		if err != nil {
			s.lg.Warn().Err(err).Str("snapshot", id).Msg("skipping unreadable snapshot")
			continue
		}
		out = append(out, sn)
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := &out[i].meta, &out[j].meta
		if a.Index != b.Index {
			return a.Index > b.Index
		}
		if a.Term != b.Term {
			return a.Term > b.Term
		}
		return a.ID > b.ID
	})
	return out, nil
}

// reap keeps the newest retainSnapshots listed snapshots.
func (s *SnapshotStore) reap() error {
	snaps, err := s.readAll()
	if err != nil {
		return err
	}
	kept := 0
	removed := false
	for _, sn := range snaps {
		if sn.state != stateLocal {
			continue
		}
		if kept < retainSnapshots {
			kept++
			continue
		}
		if err := os.Remove(s.path(sn.meta.ID)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("replication: reap snapshot: %w", err)
		}
		removed = true
	}
	if removed {
		return vfs.OS{}.SyncDir(s.dir)
	}
	return nil
}

// logHolds reports whether the log ends consistently with the snapshot's
// last entry: it holds that entry with that term, or it is empty and
// continues right after it.
func (s *SnapshotStore) logHolds(index, term uint64) bool {
	if e, err := s.log.Entry(index); err == nil {
		return e.Term == term
	}
	return s.log.LastIndex() == 0 && s.log.NextIndex() == index+1
}

// settle turns an uninstalled received snapshot into a local one when the
// log holds its last entry, and discards it otherwise. s.mu is held.
func (s *SnapshotStore) settle(sn *storedSnapshot) error {
	id := sn.meta.ID
	if st := s.staged[id]; st != nil {
		delete(s.staged, id)
		if err := st.Remove(); err != nil {
			return err
		}
	} else if err := s.log.RemoveStaging(id); err != nil {
		return err
	}
	if s.logHolds(sn.meta.Index, sn.meta.Term) {
		sn.state = stateLocal
		s.lg.Info().Str("snapshot", id).Uint64("index", sn.meta.Index).Msg("log holds the received snapshot: kept")
		return s.write(sn)
	}
	s.lg.Info().Str("snapshot", id).Uint64("index", sn.meta.Index).Msg("discarding a received snapshot that was not installed")
	if err := os.Remove(s.path(id)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return vfs.OS{}.SyncDir(s.dir)
}

// Create starts a snapshot: raft's Persist of a local snapshot, or the
// stream of an InstallSnapshot; the sink finds out which from the bytes.
func (s *SnapshotStore) Create(version raft.SnapshotVersion, index, term uint64, configuration raft.Configuration,
	configurationIndex uint64, _ raft.Transport) (raft.SnapshotSink, error) {
	if version != 1 {
		return nil, fmt.Errorf("replication: unsupported snapshot version %d", version)
	}
	id := fmt.Sprintf("%d-%d-%d", term, index, time.Now().UnixMilli())
	return &snapshotSink{s: s, meta: raft.SnapshotMeta{
		Version: version, ID: id, Index: index, Term: term,
		Configuration: configuration, ConfigurationIndex: configurationIndex,
	}}, nil
}

// List returns the local and installed snapshots, newest first.
func (s *SnapshotStore) List() ([]*raft.SnapshotMeta, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	snaps, err := s.readAll()
	if err != nil {
		return nil, err
	}
	var out []*raft.SnapshotMeta
	for _, sn := range snaps {
		if sn.state == stateLocal {
			m := sn.meta
			m.Size = int64(len(sn.manifest)) // Open reports the exact stream size
			out = append(out, &m)
		}
	}
	return out, nil
}

// Manifest returns snapshot id's raft metadata (Size: the manifest's
// length) and the FSM manifest it holds, without opening the log: what
// FSM.Init needs at open, where Open would stream every segment through
// the snapshot's index. The returned bytes must not be modified.
func (s *SnapshotStore) Manifest(id string) (*raft.SnapshotMeta, []byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sn, err := s.read(id)
	if err != nil {
		return nil, nil, err
	}
	meta := sn.meta
	meta.Size = int64(len(sn.manifest))
	return &meta, sn.manifest, nil
}

// Open opens snapshot id. For a local (or installed) snapshot the reader is
// the stream a follower installs, meta.Size its exact length; for a
// received one not yet installed it is a *ReceivedSnapshot.
func (s *SnapshotStore) Open(id string) (*raft.SnapshotMeta, io.ReadCloser, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sn, err := s.read(id)
	if err != nil {
		return nil, nil, err
	}
	meta := sn.meta
	if sn.state == stateReceived {
		st := s.staged[id]
		if st == nil {
			return nil, nil, fmt.Errorf("replication: received snapshot %s has no staging area", id)
		}
		meta.Size = int64(len(sn.manifest))
		return &meta, &ReceivedSnapshot{s: s, sn: sn, staging: st, r: bytes.NewReader(sn.manifest)}, nil
	}
	st, err := s.log.SnapshotReader(meta.Index)
	if err != nil {
		return nil, nil, fmt.Errorf("replication: open snapshot %s: %w", id, err)
	}
	p := st.Point()
	if p.LastTerm != 0 && p.LastTerm != meta.Term {
		st.Close()
		return nil, nil, fmt.Errorf("replication: open snapshot %s: the log has term %d at index %d, the snapshot %d", id, p.LastTerm, meta.Index, meta.Term)
	}
	hdr := encodeStreamHeader(meta.Index, meta.Term, p, sn.manifest, st.Files())
	meta.Size = int64(len(hdr)) + int64(len(sn.manifest)) + st.Size()
	return &meta, &snapshotReader{Reader: io.MultiReader(bytes.NewReader(hdr), bytes.NewReader(sn.manifest), st), st: st}, nil
}

type snapshotReader struct {
	io.Reader
	st *log.SnapshotStream
}

func (r *snapshotReader) Close() error { return r.st.Close() }

// --- stream header ---

type streamFile struct {
	name string
	size int64
}

type streamHeader struct {
	index, term   uint64
	start, next   int64
	manifestLen   uint32
	fileCount     uint32
	manifestCRC   uint32
	files         []streamFile
	totalFileSize int64
}

func encodeStreamHeader(index, term uint64, p log.SnapshotPoint, manifest []byte, files []log.SnapshotFile) []byte {
	le := binary.LittleEndian
	b := append([]byte(nil), streamPrefix...)
	b = le.AppendUint64(b, index)
	b = le.AppendUint64(b, term)
	b = le.AppendUint64(b, uint64(p.StartOffset))
	b = le.AppendUint64(b, uint64(p.NextOffset))
	b = le.AppendUint32(b, uint32(len(manifest)))
	b = le.AppendUint32(b, uint32(len(files)))
	b = le.AppendUint32(b, crc32.Checksum(manifest, streamCRC))
	b = le.AppendUint32(b, 0)
	for _, f := range files {
		b = le.AppendUint64(b, uint64(f.Size))
		b = le.AppendUint16(b, uint16(len(f.Name)))
		b = append(b, f.Name...)
	}
	return le.AppendUint32(b, crc32.Checksum(b, streamCRC))
}

// --- sink ---

// sink modes
const (
	sinkUndecided = iota
	sinkLocal
	sinkHeader   // receiving: the header
	sinkManifest // receiving: the manifest
	sinkFiles    // receiving: file bytes
	sinkDone     // receiving: every byte the header announced has come
)

type snapshotSink struct {
	s    *SnapshotStore
	meta raft.SnapshotMeta
	mode int
	err  error
	done bool // Close or Cancel was called

	buf []byte // undecided: the first bytes; local: the manifest; header: its bytes
	pos int    // header: bytes of buf parsed
	hdr streamHeader

	manifest []byte
	staging  *log.Staging
	file     *log.StagedFile
	fileIdx  int
	left     int64 // bytes of the current file still to come
}

func (k *snapshotSink) ID() string { return k.meta.ID }

func (k *snapshotSink) fail(err error) error {
	if k.err == nil {
		k.err = err
	}
	return k.err
}

func (k *snapshotSink) Write(p []byte) (int, error) {
	if k.err != nil {
		return 0, k.err
	}
	if k.done {
		return 0, k.fail(errors.New("replication: write to a closed snapshot sink"))
	}
	n := len(p)
	if k.mode == sinkUndecided {
		take := min(len(p), len(streamPrefix)-len(k.buf))
		k.buf = append(k.buf, p[:take]...)
		p = p[take:]
		switch {
		case !bytes.HasPrefix(streamPrefix, k.buf):
			k.mode = sinkLocal
		case len(k.buf) == len(streamPrefix):
			k.mode = sinkHeader
		default:
			return n, nil
		}
	}
	if k.mode == sinkLocal {
		if len(k.buf)+len(p) > maxManifestBytes {
			return 0, k.fail(fmt.Errorf("%w: manifest over %d bytes", ErrSnapshotStream, maxManifestBytes))
		}
		k.buf = append(k.buf, p...)
		return n, nil
	}
	if err := k.receive(p); err != nil {
		return 0, k.fail(err)
	}
	return n, nil
}

// need moves bytes from *p into k.buf until n bytes past k.pos are there.
func (k *snapshotSink) need(p *[]byte, n int) bool {
	if have := len(k.buf) - k.pos; have < n {
		take := min(n-have, len(*p))
		k.buf = append(k.buf, (*p)[:take]...)
		*p = (*p)[take:]
	}
	return len(k.buf)-k.pos >= n
}

// receive parses the stream incrementally.
func (k *snapshotSink) receive(p []byte) error {
	le := binary.LittleEndian
	h := &k.hdr
	for len(p) > 0 || k.mode == sinkHeader && len(k.buf) > k.pos {
		switch k.mode {
		case sinkHeader:
			if k.pos == 0 {
				if !k.need(&p, streamFixedSize) {
					return nil
				}
				b := k.buf
				h.index, h.term = le.Uint64(b[8:]), le.Uint64(b[16:])
				h.start, h.next = int64(le.Uint64(b[24:])), int64(le.Uint64(b[32:]))
				h.manifestLen, h.fileCount, h.manifestCRC = le.Uint32(b[40:]), le.Uint32(b[44:]), le.Uint32(b[48:])
				switch {
				case h.index != k.meta.Index || h.term != k.meta.Term:
					return fmt.Errorf("%w: stream is of index %d term %d, raft sent %d term %d", ErrSnapshotStream, h.index, h.term, k.meta.Index, k.meta.Term)
				case h.start < 0 || h.start > h.next:
					return fmt.Errorf("%w: start offset %d, next offset %d", ErrSnapshotStream, h.start, h.next)
				case h.manifestLen > maxManifestBytes:
					return fmt.Errorf("%w: manifest of %d bytes claimed, limit %d", ErrSnapshotStream, h.manifestLen, maxManifestBytes)
				case h.fileCount > maxStreamFiles:
					return fmt.Errorf("%w: %d files claimed, limit %d", ErrSnapshotStream, h.fileCount, maxStreamFiles)
				}
				k.pos = streamFixedSize
			}
			for uint32(len(h.files)) < h.fileCount {
				if !k.need(&p, 10) {
					return nil
				}
				size, nl := le.Uint64(k.buf[k.pos:]), int(le.Uint16(k.buf[k.pos+8:]))
				if nl == 0 || nl > maxFileName || size > 1<<40 {
					return fmt.Errorf("%w: file %d: name of %d bytes, size %d", ErrSnapshotStream, len(h.files), nl, size)
				}
				if !k.need(&p, 10+nl) {
					return nil
				}
				h.files = append(h.files, streamFile{name: string(k.buf[k.pos+10 : k.pos+10+nl]), size: int64(size)})
				h.totalFileSize += int64(size)
				k.pos += 10 + nl
			}
			if !k.need(&p, 4) {
				return nil
			}
			if crc32.Checksum(k.buf[:k.pos], streamCRC) != le.Uint32(k.buf[k.pos:]) {
				return fmt.Errorf("%w: header checksum mismatch", ErrSnapshotStream)
			}
			k.buf, k.pos = nil, 0
			st, err := k.s.log.NewStaging(k.meta.ID)
			if err != nil {
				return err
			}
			k.staging = st
			k.manifest = make([]byte, 0, min(h.manifestLen, 64<<10))
			k.mode = sinkManifest
			if err := k.manifestDone(); err != nil {
				return err
			}
		case sinkManifest:
			take := min(len(p), int(h.manifestLen)-len(k.manifest))
			k.manifest = append(k.manifest, p[:take]...)
			p = p[take:]
			if err := k.manifestDone(); err != nil {
				return err
			}
		case sinkFiles:
			if k.file == nil {
				f := h.files[k.fileIdx]
				sf, err := k.staging.Create(f.name, f.size)
				if err != nil {
					return err
				}
				k.file, k.left = sf, f.size
			}
			take := min(int64(len(p)), k.left)
			if _, err := k.file.Write(p[:take]); err != nil {
				return err
			}
			p, k.left = p[take:], k.left-take
			if k.left == 0 {
				err := k.file.Close()
				k.file = nil
				k.fileIdx++
				if err != nil {
					return err
				}
				if k.fileIdx == len(h.files) {
					k.mode = sinkDone
				}
			}
		case sinkDone:
			return fmt.Errorf("%w: bytes past the end of the snapshot", ErrSnapshotStream)
		}
	}
	return nil
}

// manifestDone moves on to the files once the whole manifest is in.
func (k *snapshotSink) manifestDone() error {
	h := &k.hdr
	if len(k.manifest) < int(h.manifestLen) {
		return nil
	}
	if crc32.Checksum(k.manifest, streamCRC) != h.manifestCRC {
		return fmt.Errorf("%w: manifest checksum mismatch", ErrSnapshotStream)
	}
	k.mode = sinkFiles
	if len(h.files) == 0 {
		k.mode = sinkDone
	}
	return nil
}

// Close saves the snapshot: a local manifest, or a received stream that
// must be complete.
func (k *snapshotSink) Close() error {
	if k.done {
		return k.err
	}
	k.done = true
	s := k.s
	if k.err != nil {
		k.discard()
		return k.err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if k.mode == sinkUndecided && len(k.buf) > 0 {
		// A stream cut inside its magic, or a manifest that looks like one.
		k.discard()
		return k.fail(fmt.Errorf("%w: truncated (%d bytes)", ErrSnapshotStream, len(k.buf)))
	}
	switch k.mode {
	case sinkUndecided, sinkLocal:
		sn := &storedSnapshot{meta: k.meta, state: stateLocal, manifest: k.buf}
		if err := s.write(sn); err != nil {
			return k.fail(err)
		}
		s.lg.Info().Str("snapshot", k.meta.ID).Uint64("index", k.meta.Index).Int("manifest_bytes", len(k.buf)).Msg("snapshot taken")
		return s.reap()
	case sinkDone:
	default:
		k.discard()
		return k.fail(fmt.Errorf("%w: truncated (stopped while reading the %s)", ErrSnapshotStream, k.modeName()))
	}
	if err := k.staging.Finish(); err != nil {
		k.discard()
		return k.fail(err)
	}
	sn := &storedSnapshot{meta: k.meta, state: stateReceived, start: k.hdr.start, next: k.hdr.next, manifest: k.manifest}
	if err := s.write(sn); err != nil {
		k.discard()
		return k.fail(err)
	}
	s.staged[k.meta.ID] = k.staging
	s.lg.Info().Str("snapshot", k.meta.ID).Uint64("index", k.meta.Index).Int("files", len(k.hdr.files)).
		Int64("file_bytes", k.hdr.totalFileSize).Msg("snapshot received")
	return nil
}

func (k *snapshotSink) modeName() string {
	switch k.mode {
	case sinkHeader:
		return "header"
	case sinkManifest:
		return "manifest"
	default:
		return fmt.Sprintf("file %d of %d", k.fileIdx+1, len(k.hdr.files))
	}
}

// Cancel abandons the snapshot and removes what was staged.
func (k *snapshotSink) Cancel() error {
	if k.done {
		return nil
	}
	k.done = true
	k.discard()
	return nil
}

func (k *snapshotSink) discard() {
	if k.file != nil {
		k.file.Close()
		k.file = nil
	}
	if k.staging != nil {
		if err := k.staging.Remove(); err != nil {
			k.s.lg.Warn().Err(err).Str("snapshot", k.meta.ID).Msg("removing staging area")
		}
		k.staging = nil
	}
	k.buf, k.manifest = nil, nil
}

// UnwrapSnapshot returns the reader the SnapshotStore's Open returned from
// the one raft hands FSM.Restore: raft wraps it (fsmRestoreAndMeasure puts
// a counting reader around it, a raft.ReadCloserWrapper), so a Restore that
// type-asserts to its InstallableSnapshot must unwrap first.
func UnwrapSnapshot(rc io.ReadCloser) io.ReadCloser {
	for {
		w, ok := rc.(raft.ReadCloserWrapper)
		if !ok {
			return rc
		}
		rc = w.WrappedReadCloser()
	}
}

// --- received snapshot ---

// ReceivedSnapshot is what Open returns for a snapshot received from a
// leader and not yet installed. Reading it yields the FSM's manifest;
// Install adopts the staged segment files into the log (log.InstallSnapshot)
// so that it ends exactly at the snapshot's last entry, or is empty and
// continues right after it. The FSM's Restore calls Install and then reads
// the manifest (raft wraps the reader: see UnwrapSnapshot). Close without
// a successful Install discards the snapshot
// (unless the log holds its last entry anyway), so raft's leader sends it
// again.
type ReceivedSnapshot struct {
	s         *SnapshotStore
	sn        *storedSnapshot
	staging   *log.Staging
	r         *bytes.Reader
	installed bool
	closed    bool
}

// Read reads the manifest.
func (r *ReceivedSnapshot) Read(p []byte) (int, error) { return r.r.Read(p) }

// Manifest returns the FSM's manifest bytes.
func (r *ReceivedSnapshot) Manifest() []byte { return r.sn.manifest }

// Meta is the snapshot's raft metadata.
func (r *ReceivedSnapshot) Meta() raft.SnapshotMeta { return r.sn.meta }

// Install replaces the log's segments with the staged ones. A refusal
// (ErrSnapshot from package log: damaged or inconsistent files) leaves the
// log as it was.
func (r *ReceivedSnapshot) Install() error {
	s := r.s
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case r.closed:
		return errors.New("replication: install of a closed snapshot")
	case r.installed:
		return nil
	}
	m := r.sn.meta
	p := log.SnapshotPoint{LastIndex: m.Index, LastTerm: m.Term, NextOffset: r.sn.next, StartOffset: r.sn.start}
	if err := s.log.InstallSnapshot(r.staging, p); err != nil {
		return fmt.Errorf("replication: install snapshot %s: %w", m.ID, err)
	}
	delete(s.staged, m.ID)
	r.installed = true
	local := *r.sn
	local.state = stateLocal
	if err := s.write(&local); err != nil {
		return err
	}
	s.lg.Info().Str("snapshot", m.ID).Uint64("index", m.Index).Uint64("term", m.Term).
		Int64("start_offset", p.StartOffset).Int64("next_offset", p.NextOffset).Msg("snapshot installed")
	return s.reap()
}

// Close ends the restore; an uninstalled snapshot is settled (see
// SnapshotStore).
func (r *ReceivedSnapshot) Close() error {
	s := r.s
	s.mu.Lock()
	defer s.mu.Unlock()
	if r.closed {
		return nil
	}
	r.closed = true
	if r.installed {
		return nil
	}
	return s.settle(r.sn)
}
