package log

import (
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/sluicemq/sluice/log/vfs"
)

// This file carries a log's segments from one replica to another for a
// Raft InstallSnapshot: SnapshotReader streams the segments through an
// index (pinned against retention while the stream is open), a Staging
// directory beside the receiving log collects them, and InstallSnapshot
// swaps them in with a crash-safe roll-forward (FORMAT.md, "Snapshot
// install").

// SnapshotPoint says where a snapshot's log ends and where it starts.
type SnapshotPoint struct {
	LastIndex   uint64 // Raft index of the last entry included
	LastTerm    uint64 // its term; 0 from a SnapshotStream that carries no segments
	NextOffset  int64  // the offset the entry after LastIndex takes
	StartOffset int64  // the log start offset, <= NextOffset
}

// SnapshotFile is one file of a snapshot stream: a segment, whole or cut
// after the stream's last entry.
type SnapshotFile struct {
	Name string // "<baseOffset:020d>-<baseIndex:020d>.seg"
	Size int64
}

// SnapshotStream reads a log's segment files through one index, one file
// after another, each exactly Files()[i].Size bytes. It verifies every
// frame's CRC as it reads, so damage on the sender is an error naming the
// file and byte, never shipped. Its segments are pinned: DeleteBefore does
// not remove them until Close. TruncateFrom, Reset, InstallSnapshot or
// Close of the log still may (none of them removes committed entries in a
// healthy Raft group); a stream whose segment was removed fails with an
// error, never with other bytes. It is not safe for concurrent use.
type SnapshotStream struct {
	l     *Log
	point SnapshotPoint
	files []SnapshotFile
	segs  []*segment
	size  int64

	cur     int          // file being read
	r       *frameReader // frames of segs[cur]; nil before its header
	pending []byte       // bytes of the current header or frame not yet read
	closed  bool
}

// SnapshotReader opens a stream of the log's segments through index
// through: every segment before the one holding it whole, that one cut
// right after its frame. A log whose next entry is through+1 and that
// holds nothing before it (after Reset) gives a stream of no files. An
// index the log no longer (or not yet) holds is ErrSnapshot.
func (l *Log) SnapshotReader(through uint64) (*SnapshotStream, error) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	if l.err != nil {
		return nil, l.err
	}
	if through == 0 || len(l.segs) == 0 {
		return nil, fmt.Errorf("%w: no entry %d in an empty log", ErrSnapshot, through)
	}
	st := &SnapshotStream{l: l}
	first := l.segs[0]
	switch last := l.active().last; {
	case through+1 == first.hdr.baseIndex:
		next := first.hdr.baseOffset
		st.point = SnapshotPoint{LastIndex: through, NextOffset: next, StartOffset: next}
		return st, nil
	case through < first.hdr.baseIndex:
		return nil, fmt.Errorf("%w: entries through %d were deleted, the log starts at index %d", ErrSnapshot, through, first.hdr.baseIndex)
	case through > last:
		return nil, fmt.Errorf("%w: entry %d is past the last index %d", ErrSnapshot, through, last)
	}
	k := sort.Search(len(l.segs), func(i int) bool { return l.segs[i].last >= through })
	s := l.segs[k]
	// Find the end of the frame at through: the cut.
	r := &frameReader{f: s.file, name: s.path, pos: s.posForIndex(through), end: s.size, chunk: l.opts.IndexIntervalBytes + 2*frameHeaderSize}
	for {
		fr, err := r.next()
		if err == io.EOF {
			return nil, corrupt(s.path, r.pos, "index %d missing from its segment", through)
		}
		if err == nil {
			err = r.verify(&fr)
		}
		if err != nil {
			return nil, err
		}
		if fr.hdr.index == through {
			next := fr.hdr.nextOffset()
			st.point = SnapshotPoint{LastIndex: through, LastTerm: fr.hdr.term, NextOffset: next, StartOffset: min(l.start, next)}
			st.files = make([]SnapshotFile, k+1)
			st.segs = append([]*segment(nil), l.segs[:k+1]...)
			for i, seg := range st.segs {
				size := seg.size
				if i == k {
					size = r.pos
				}
				st.files[i] = SnapshotFile{Name: filepath.Base(seg.path), Size: size}
				st.size += size
			}
			break
		}
	}
	for _, seg := range st.segs {
		seg.pins.Add(1)
	}
	return st, nil
}

// Point is where the streamed log ends and starts.
func (st *SnapshotStream) Point() SnapshotPoint { return st.point }

// Files lists the streamed files in order.
func (st *SnapshotStream) Files() []SnapshotFile { return st.files }

// Size is the exact number of bytes Read yields in all.
func (st *SnapshotStream) Size() int64 { return st.size }

// Read reads the files' bytes, one file after the other, ending with io.EOF.
func (st *SnapshotStream) Read(p []byte) (int, error) {
	for {
		if st.closed {
			return 0, ErrClosed
		}
		if len(st.pending) > 0 {
			n := copy(p, st.pending)
			st.pending = st.pending[n:]
			return n, nil
		}
		if st.cur == len(st.segs) {
			return 0, io.EOF
		}
		s, f := st.segs[st.cur], st.files[st.cur]
		if st.r == nil {
			raw := make([]byte, segmentHeaderSize)
			if _, err := s.file.ReadAt(raw, 0); err != nil {
				return 0, fmt.Errorf("log: snapshot read %s: %w", s.path, err)
			}
			if h, err := decodeSegmentHeader(raw); err != nil || h != s.hdr {
				return 0, corrupt(s.path, 0, "segment header changed or damaged: %v", err)
			}
			st.pending = raw
			st.r = &frameReader{f: s.file, name: s.path, pos: segmentHeaderSize, end: f.Size, chunk: 1 << 20}
			continue
		}
		fr, err := st.r.next()
		if err == io.EOF {
			st.cur++
			st.r = nil
			continue
		}
		if err == nil {
			err = st.r.verify(&fr)
		}
		if err != nil {
			return 0, err
		}
		off := fr.pos - st.r.bufStart
		st.pending = st.r.buf[off : off+fr.hdr.size()]
	}
}

// Close unpins the segments; retention may remove them again. When one of
// them lies wholly below the start offset (a DeleteBefore kept it), Close
// removes it now.
func (st *SnapshotStream) Close() error {
	if st.closed {
		return nil
	}
	st.closed = true
	return st.l.unpin(st.segs)
}

// unpin releases pins taken under mu.RLock (SnapshotReader, Compact). The
// last unpin of a retired segment closes its file. When an unpinned segment
// lies wholly below the start offset (a DeleteBefore kept it), it is
// removed now.
func (l *Log) unpin(segs []*segment) error {
	for _, s := range segs {
		if s.pins.Add(-1) == 0 && s.retired.Load() {
			s.closeRetired()
		}
	}
	l.mu.RLock()
	sweep := false
	if l.err == nil && len(l.segs) > 1 {
		for _, s := range l.segs[:len(l.segs)-1] {
			if s.next <= l.start && s.pins.Load() == 0 {
				sweep = true
			}
		}
	}
	start := l.start
	l.mu.RUnlock()
	if !sweep {
		return nil
	}
	if err := l.DeleteBefore(start); err != nil && !errors.Is(err, ErrClosed) {
		return err
	}
	return nil
}

// NextIndex is the index the next stored entry must have: LastIndex+1, or
// after Reset(index, ...) that index; 0 when the log has no segment at all
// (then any index may come first).
func (l *Log) NextIndex() uint64 {
	l.mu.RLock()
	defer l.mu.RUnlock()
	if a := l.active(); a != nil {
		return a.last + 1
	}
	return 0
}

// --- staging ---

const (
	stagingExt   = ".staging"
	installName  = "install.ckpt"
	installMagic = "SLIN"
	// maxStagedFile bounds a staged segment: index positions are uint32.
	maxStagedFile = 1 << 32
)

// stagingRoot is the directory beside the log that holds staging areas.
func (l *Log) stagingRoot() string { return filepath.Clean(l.dir) + stagingExt }

func validStagingName(name string) bool {
	return name != "" && name != "." && name != ".." && len(name) <= 200 &&
		!strings.ContainsAny(name, `/\`) && !strings.HasSuffix(name, tmpExt)
}

// Staging is a directory beside a log (<dir>.staging/<name>) that receives a
// snapshot's segment files before InstallSnapshot swaps them in. Files are
// created in log order, each written sequentially to exactly its declared
// size and fsynced on Close; nothing is buffered. It is not safe for
// concurrent use.
type Staging struct {
	l        *Log
	name     string
	dir      string
	files    []SnapshotFile
	open     *StagedFile
	finished bool
}

// NewStaging creates the staging area name beside the log, emptying any
// leftover of the same name.
func (l *Log) NewStaging(name string) (*Staging, error) {
	if !validStagingName(name) {
		return nil, fmt.Errorf("log: invalid staging name %q", name)
	}
	st := &Staging{l: l, name: name, dir: filepath.Join(l.stagingRoot(), name)}
	if err := removeFlatDir(l.fs, st.dir); err != nil {
		return nil, err
	}
	if err := l.fs.MkdirAll(st.dir, 0o755); err != nil {
		return nil, fmt.Errorf("log: create %s: %w", st.dir, err)
	}
	return st, nil
}

// StagingNames lists the staging areas beside the log.
func (l *Log) StagingNames() ([]string, error) {
	names, err := l.fs.ReadDir(l.stagingRoot())
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	return names, err
}

// RemoveStaging removes the staging area name and everything in it.
func (l *Log) RemoveStaging(name string) error {
	if !validStagingName(name) {
		return fmt.Errorf("log: invalid staging name %q", name)
	}
	return removeFlatDir(l.fs, filepath.Join(l.stagingRoot(), name))
}

// removeFlatDir removes dir, its files and then dir itself, and syncs the
// parent; a missing dir is fine.
func removeFlatDir(fsys vfs.FS, dir string) error {
	names, err := fsys.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("log: list %s: %w", dir, err)
	}
	for _, n := range names {
		if err := fsys.Remove(filepath.Join(dir, n)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("log: remove %s: %w", n, err)
		}
	}
	if err := fsys.Remove(dir); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("log: remove %s: %w", dir, err)
	}
	if err := fsys.SyncDir(filepath.Dir(dir)); err != nil {
		return fmt.Errorf("log: fsync dir %s: %w", filepath.Dir(dir), err)
	}
	return nil
}

// Name is the staging area's name.
func (st *Staging) Name() string { return st.name }

// Dir is the staging directory.
func (st *Staging) Dir() string { return st.dir }

// Files lists the files created so far.
func (st *Staging) Files() []SnapshotFile { return st.files }

// Create starts the next file, a segment named as SnapshotStream names
// them and sorting after the previous one, of exactly size bytes.
func (st *Staging) Create(name string, size int64) (*StagedFile, error) {
	switch {
	case st.finished:
		return nil, fmt.Errorf("log: staging %s is finished", st.name)
	case st.open != nil:
		return nil, fmt.Errorf("log: staging %s: %s is still open", st.name, st.open.name)
	}
	if _, _, ok := parseSegmentName(name); !ok || filepath.Base(name) != name {
		return nil, fmt.Errorf("%w: staged file name %q is not a segment name", ErrSnapshot, name)
	}
	if n := len(st.files); n > 0 && name <= st.files[n-1].Name {
		return nil, fmt.Errorf("%w: staged file %s does not sort after %s", ErrSnapshot, name, st.files[n-1].Name)
	}
	if size < segmentHeaderSize+frameHeaderSize || size >= maxStagedFile {
		return nil, fmt.Errorf("%w: staged file %s of %d bytes", ErrSnapshot, name, size)
	}
	path := filepath.Join(st.dir, name)
	f, err := st.l.fs.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
	if err != nil {
		return nil, fmt.Errorf("log: create %s: %w", path, err)
	}
	st.files = append(st.files, SnapshotFile{Name: name, Size: size})
	st.open = &StagedFile{st: st, f: f, name: name, path: path, size: size}
	return st.open, nil
}

// StagedFile is a file being staged.
type StagedFile struct {
	st      *Staging
	f       vfs.File
	name    string
	path    string
	size    int64
	written int64
	hdr     []byte // the segment header while it arrives
	err     error
}

// Write appends p. Writing past the declared size, or a segment header
// that does not parse or disagrees with the file name, is an error.
func (sf *StagedFile) Write(p []byte) (int, error) {
	if sf.err != nil {
		return 0, sf.err
	}
	if int64(len(p)) > sf.size-sf.written {
		sf.err = fmt.Errorf("%w: staged file %s: more than its %d bytes", ErrSnapshot, sf.name, sf.size)
		return 0, sf.err
	}
	if sf.written < segmentHeaderSize {
		sf.hdr = append(sf.hdr, p[:min(int64(len(p)), segmentHeaderSize-sf.written)]...)
		if len(sf.hdr) == segmentHeaderSize {
			h, err := decodeSegmentHeader(sf.hdr)
			o, i, _ := parseSegmentName(sf.name)
			if err == nil && (h.baseOffset != o || h.baseIndex != i) {
				err = fmt.Errorf("header says offset %d index %d", h.baseOffset, h.baseIndex)
			}
			if err != nil {
				sf.err = fmt.Errorf("%w: staged file %s: %v", ErrSnapshot, sf.name, err)
				return 0, sf.err
			}
		}
	}
	n, err := sf.f.Write(p)
	sf.written += int64(n)
	if err != nil {
		sf.err = fmt.Errorf("log: write %s: %w", sf.path, err)
		return n, sf.err
	}
	return n, nil
}

// Close fsyncs and closes the file, which must have received exactly its
// declared size.
func (sf *StagedFile) Close() error {
	if sf.st.open != sf {
		return sf.err
	}
	sf.st.open = nil
	err := sf.err
	if err == nil && sf.written != sf.size {
		err = fmt.Errorf("%w: staged file %s: %d of %d bytes", ErrSnapshot, sf.name, sf.written, sf.size)
	}
	if err == nil {
		if serr := sf.f.Sync(); serr != nil {
			err = fmt.Errorf("log: fsync %s: %w", sf.path, serr)
		}
	}
	if cerr := sf.f.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("log: close %s: %w", sf.path, cerr)
	}
	sf.err = err
	if err != nil {
		sf.st.files = sf.st.files[:len(sf.st.files)-1]
		_ = sf.st.l.fs.Remove(sf.path)
	}
	return err
}

// Finish makes the staged files' directory entries durable (the staging
// directory, its parent and the log's parent are fsynced). InstallSnapshot
// takes only a finished staging area.
func (st *Staging) Finish() error {
	if st.open != nil {
		return fmt.Errorf("log: staging %s: %s is still open", st.name, st.open.name)
	}
	root := st.l.stagingRoot()
	for _, d := range []string{st.dir, root, filepath.Dir(root)} {
		if err := st.l.fs.SyncDir(d); err != nil {
			return fmt.Errorf("log: fsync dir %s: %w", d, err)
		}
	}
	st.finished = true
	return nil
}

// Remove closes any open file and removes the staging area.
func (st *Staging) Remove() error {
	if st.open != nil {
		st.open.f.Close()
		st.open = nil
	}
	st.finished = true
	return removeFlatDir(st.l.fs, st.dir)
}

// --- install ---

// stagedSegment is what verifying a staged file learned.
type stagedSegment struct {
	file SnapshotFile
	hdr  segmentHeader
	w    walkResult
}

// InstallSnapshot replaces every segment of the log with the files of st,
// a finished staging area of this log, so that the log afterwards ends
// exactly at p.LastIndex with p.LastTerm and offset p.NextOffset and starts
// at p.StartOffset; with no staged files it is empty and continues at
// p.LastIndex+1 and p.NextOffset, as after Reset. Every staged frame is
// CRC-walked first: files that are not a contiguous log ending at p are
// refused with ErrSnapshot and the log is untouched.
//
// The swap is crash-safe: a power loss at any point leaves the old log or
// the new one, never a mix (FORMAT.md "Snapshot install"). Its commit point
// is the durable rename of install.ckpt; an I/O error after it fails the
// log closed, and reopening finishes the install. Afterwards the staging
// area is gone.
func (l *Log) InstallSnapshot(st *Staging, p SnapshotPoint) error {
	switch {
	case st.l != l:
		return fmt.Errorf("log: install snapshot: staging %s belongs to another log", st.name)
	case !st.finished || st.open != nil:
		return fmt.Errorf("log: install snapshot: staging %s is not finished", st.name)
	case p.LastIndex == 0 || p.StartOffset < 0 || p.StartOffset > p.NextOffset:
		return fmt.Errorf("%w: last index %d, start offset %d, next offset %d", ErrSnapshot, p.LastIndex, p.StartOffset, p.NextOffset)
	}
	staged, err := l.verifyStaged(st, p)
	if err != nil {
		return err
	}
	if len(staged) == 0 {
		p.StartOffset = p.NextOffset
	}
	return l.submit(&request{kind: reqInstall, fn: func() error { return l.install(st, p, staged) }})
}

// verifyStaged CRC-walks every staged file and checks that together they
// are one contiguous log ending at p.
func (l *Log) verifyStaged(st *Staging, p SnapshotPoint) ([]stagedSegment, error) {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: staging %s: %s", ErrSnapshot, st.name, fmt.Sprintf(format, args...))
	}
	var out []stagedSegment
	for _, sf := range st.files {
		path := filepath.Join(st.dir, sf.Name)
		s, err := l.verifyStagedFile(path, sf)
		if err != nil {
			return nil, bad("%v", err)
		}
		if n := len(out); n > 0 {
			prev := out[n-1].w
			if s.hdr.baseIndex != prev.last+1 || s.hdr.baseOffset != prev.next {
				return nil, bad("%s starts at index %d offset %d, previous ends at index %d offset %d",
					sf.Name, s.hdr.baseIndex, s.hdr.baseOffset, prev.last, prev.next)
			}
		}
		out = append(out, s)
	}
	if len(out) == 0 {
		return nil, nil
	}
	first, last := out[0], out[len(out)-1].w
	switch {
	case last.last != p.LastIndex || last.term != p.LastTerm || last.next != p.NextOffset:
		return nil, bad("files end at index %d term %d offset %d, the snapshot at index %d term %d offset %d",
			last.last, last.term, last.next, p.LastIndex, p.LastTerm, p.NextOffset)
	case p.StartOffset < first.hdr.baseOffset:
		return nil, bad("start offset %d is before the first file's offset %d", p.StartOffset, first.hdr.baseOffset)
	}
	return out, nil
}

func (l *Log) verifyStagedFile(path string, sf SnapshotFile) (stagedSegment, error) {
	f, err := l.fs.OpenFile(path, os.O_RDONLY, 0)
	if err != nil {
		return stagedSegment{}, err
	}
	defer f.Close()
	size, err := f.Size()
	if err != nil {
		return stagedSegment{}, err
	}
	if size != sf.Size {
		return stagedSegment{}, fmt.Errorf("%s has %d bytes, %d were staged", sf.Name, size, sf.Size)
	}
	raw := make([]byte, segmentHeaderSize)
	if _, err := f.ReadAt(raw, 0); err != nil {
		return stagedSegment{}, fmt.Errorf("read %s: %w", sf.Name, err)
	}
	hdr, err := decodeSegmentHeader(raw)
	if err != nil {
		return stagedSegment{}, fmt.Errorf("%s: %w", sf.Name, err)
	}
	if o, i, _ := parseSegmentName(sf.Name); o != hdr.baseOffset || i != hdr.baseIndex {
		return stagedSegment{}, fmt.Errorf("%s: header says offset %d index %d", sf.Name, hdr.baseOffset, hdr.baseIndex)
	}
	w, err := walk(f, path, hdr, walkStart(hdr), size, l.opts.IndexIntervalBytes)
	if err != nil {
		return stagedSegment{}, err
	}
	if w.bad != nil {
		return stagedSegment{}, w.bad
	}
	if w.last < hdr.baseIndex {
		return stagedSegment{}, fmt.Errorf("%s holds no entries", sf.Name)
	}
	return stagedSegment{file: sf, hdr: hdr, w: w}, nil
}

// install is the swap, on the writer with wmu held; FORMAT.md "Snapshot
// install" numbers its steps.
func (l *Log) install(st *Staging, p SnapshotPoint, staged []stagedSegment) error {
	l.gen.Add(1)
	files := make([]SnapshotFile, len(staged))
	for i, s := range staged {
		files[i] = s.file
	}
	// 1. The commit point: install.ckpt, durable.
	marker := filepath.Join(l.dir, installName)
	if err := vfs.WriteFileAtomic(l.fs, marker, encodeInstall(st.name, p, files)); err != nil {
		return ioErr(fmt.Errorf("log: write %s: %w", installName, err))
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	// 2. Remove every old segment and index, durably, before any new file
	// takes a name an old one may have had.
	if err := l.removeAllSegments(); err != nil {
		return ioErr(err)
	}
	// 3-5: move the staged files in, write start.ckpt, remove the marker.
	if err := l.adoptStaged(st.dir, p, files); err != nil {
		return ioErr(err)
	}
	// In memory: the new segments, the last one active.
	segs := make([]*segment, 0, len(staged)+1)
	for i, s := range staged {
		path := filepath.Join(l.dir, s.file.Name)
		f, err := l.fs.OpenFile(path, os.O_RDWR, 0)
		if err != nil {
			for _, o := range segs {
				o.file.Close()
			}
			return ioErr(fmt.Errorf("log: open %s: %w", path, err))
		}
		segs = append(segs, &segment{path: path, file: f, hdr: s.hdr, size: s.w.end, last: s.w.last,
			next: s.w.next, maxTs: s.w.maxTs, index: s.w.index, sealed: i < len(staged)-1})
	}
	if len(staged) == 0 {
		path := filepath.Join(l.dir, segmentName(p.NextOffset, p.LastIndex+1)+segmentExt)
		f, err := l.fs.OpenFile(path, os.O_RDWR, 0)
		if err != nil {
			return ioErr(fmt.Errorf("log: open %s: %w", path, err))
		}
		raw := make([]byte, segmentHeaderSize)
		_, err = f.ReadAt(raw, 0)
		hdr, herr := decodeSegmentHeader(raw)
		if err != nil || herr != nil {
			f.Close()
			return ioErr(fmt.Errorf("log: read back %s: %w", path, errors.Join(err, herr)))
		}
		segs = append(segs, &segment{path: path, file: f, hdr: hdr, size: segmentHeaderSize,
			last: p.LastIndex, next: p.NextOffset, maxTs: -1})
	}
	l.segs = segs
	l.start = p.StartOffset
	l.w.reset(l.active())
	// 6. Indexes of the sealed segments (caches: recovery rebuilds them).
	for _, s := range segs[:len(segs)-1] {
		if err := vfs.WriteFileAtomic(l.fs, s.indexPath(), encodeIndex(s)); err != nil {
			return ioErr(fmt.Errorf("log: write index of %s: %w", s.path, err))
		}
	}
	if err := removeFlatDir(l.fs, st.dir); err != nil {
		l.log.Warn().Err(err).Str("staging", st.dir).Msg("staging area left behind after install")
	}
	l.log.Info().Uint64("last_index", p.LastIndex).Uint64("last_term", p.LastTerm).
		Int64("start_offset", p.StartOffset).Int64("next_offset", p.NextOffset).
		Int("segments", len(staged)).Msg("installed snapshot")
	return nil
}

// adoptStaged moves the staged files into the log directory once the old
// segments are durably gone, writes start.ckpt (and, with no files, the
// empty segment the log continues in), and removes the marker. Rerunning it
// after a crash is safe: a file that already moved is skipped.
func (l *Log) adoptStaged(stagingDir string, p SnapshotPoint, files []SnapshotFile) error {
	for _, f := range files {
		from, to := filepath.Join(stagingDir, f.Name), filepath.Join(l.dir, f.Name)
		if _, err := l.fs.Stat(from); errors.Is(err, os.ErrNotExist) {
			if _, err := l.fs.Stat(to); err != nil {
				return corrupt(to, 0, "snapshot install lost staged file %s: %v", f.Name, err)
			}
			continue // moved before a crash
		}
		if err := l.fs.Rename(from, to); err != nil {
			return fmt.Errorf("log: move %s: %w", from, err)
		}
	}
	// The log directory first: a rename made durable only there leaves the
	// file in both directories, which a rerun handles; only in the staging
	// directory, in neither.
	if err := l.fs.SyncDir(l.dir); err != nil {
		return err
	}
	if err := l.fs.SyncDir(stagingDir); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	start := p.StartOffset
	if len(files) == 0 {
		start = p.NextOffset
		s, err := l.createSegment(p.LastIndex+1, p.NextOffset)
		if err != nil {
			return err
		}
		s.file.Close()
	}
	if err := vfs.WriteFileAtomic(l.fs, filepath.Join(l.dir, checkpointName), encodeCheckpoint(start)); err != nil {
		return fmt.Errorf("log: write start checkpoint: %w", err)
	}
	if err := l.fs.Remove(filepath.Join(l.dir, installName)); err != nil {
		return fmt.Errorf("log: remove %s: %w", installName, err)
	}
	return l.fs.SyncDir(l.dir)
}

// finishInstall is recovery step 0: when install.ckpt is present, the
// install it describes was committed; finish it.
func (l *Log) finishInstall() error {
	marker := filepath.Join(l.dir, installName)
	b, err := vfs.ReadFile(l.fs, marker, maxFrameBytes)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("log: read %s: %w", marker, err)
	}
	name, p, files, err := decodeInstall(b)
	if err != nil {
		return corrupt(marker, 0, "%v", err)
	}
	stagingDir := filepath.Join(l.stagingRoot(), name)
	inStaging := map[string]bool{}
	if names, err := l.fs.ReadDir(stagingDir); err == nil {
		for _, n := range names {
			inStaging[n] = true
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("log: list %s: %w", stagingDir, err)
	}
	listed := map[string]bool{}
	for _, f := range files {
		listed[f.Name] = true
	}
	names, err := l.fs.ReadDir(l.dir)
	if err != nil {
		return fmt.Errorf("log: list %s: %w", l.dir, err)
	}
	// Step 2 again: every segment and index goes, except staged files that
	// already moved (a listed name gone from staging can only be one: old
	// files were durably removed before the first move).
	for _, n := range names {
		if !strings.HasSuffix(n, segmentExt) && !strings.HasSuffix(n, indexExt) {
			continue
		}
		if listed[n] && !inStaging[n] {
			continue
		}
		if err := l.fs.Remove(filepath.Join(l.dir, n)); err != nil {
			return fmt.Errorf("log: remove %s: %w", n, err)
		}
		l.recovery.RemovedFiles = append(l.recovery.RemovedFiles, filepath.Join(l.dir, n))
	}
	if err := l.fs.SyncDir(l.dir); err != nil {
		return fmt.Errorf("log: fsync dir: %w", err)
	}
	if err := l.adoptStaged(stagingDir, p, files); err != nil {
		return err
	}
	if err := removeFlatDir(l.fs, stagingDir); err != nil {
		l.log.Warn().Err(err).Str("staging", stagingDir).Msg("staging area left behind after install")
	}
	l.log.Warn().Uint64("last_index", p.LastIndex).Int("segments", len(files)).Msg("finished an interrupted snapshot install")
	return nil
}

// encodeInstall lays out install.ckpt (FORMAT.md).
func encodeInstall(staging string, p SnapshotPoint, files []SnapshotFile) []byte {
	b := make([]byte, 0, 48+len(staging)+len(files)*24+4)
	b = append(b, installMagic...)
	b = append(b, formatVersion, 0, 0, 0)
	b = le.AppendUint64(b, p.LastIndex)
	b = le.AppendUint64(b, p.LastTerm)
	b = le.AppendUint64(b, uint64(p.StartOffset))
	b = le.AppendUint64(b, uint64(p.NextOffset))
	b = le.AppendUint32(b, uint32(len(files)))
	b = le.AppendUint16(b, uint16(len(staging)))
	b = append(b, staging...)
	for _, f := range files {
		o, i, _ := parseSegmentName(f.Name)
		b = le.AppendUint64(b, uint64(o))
		b = le.AppendUint64(b, i)
		b = le.AppendUint64(b, uint64(f.Size))
	}
	return le.AppendUint32(b, crc32.Checksum(b, crcTable))
}

func decodeInstall(b []byte) (staging string, p SnapshotPoint, files []SnapshotFile, err error) {
	const fixed = 46
	if len(b) < fixed+4 || string(b[:4]) != installMagic || b[4] != formatVersion {
		return "", p, nil, errors.New("install marker: bad size, magic or version")
	}
	if crc32.Checksum(b[:len(b)-4], crcTable) != le.Uint32(b[len(b)-4:]) {
		return "", p, nil, errors.New("install marker: checksum mismatch")
	}
	p = SnapshotPoint{LastIndex: le.Uint64(b[8:]), LastTerm: le.Uint64(b[16:]),
		StartOffset: int64(le.Uint64(b[24:])), NextOffset: int64(le.Uint64(b[32:]))}
	n, sl := int(le.Uint32(b[40:])), int(le.Uint16(b[44:]))
	if len(b) != fixed+sl+24*n+4 {
		return "", p, nil, errors.New("install marker: length disagrees with its counts")
	}
	staging = string(b[fixed : fixed+sl])
	if !validStagingName(staging) {
		return "", p, nil, fmt.Errorf("install marker: bad staging name %q", staging)
	}
	for r := b[fixed+sl:]; len(files) < n; r = r[24:] {
		files = append(files, SnapshotFile{Name: segmentName(int64(le.Uint64(r)), le.Uint64(r[8:])) + segmentExt, Size: int64(le.Uint64(r[16:]))})
	}
	return staging, p, files, nil
}
