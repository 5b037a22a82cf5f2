package vfs

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"syscall"
)

// Fault is the real filesystem with power-loss semantics and injectable
// disk faults, for debugging and chaos testing only: it is slower than OS
// and holds unsynced data in process memory.
//
// Power loss. Data written to a file but not yet synced is kept in process
// memory as an overlay (the extents written and the truncations made since
// the file's last Sync), not in the OS file. File.Sync writes the overlay
// to the OS file (pwrite, ftruncate) and then fdatasyncs it. Reads, Size,
// Stat and O_APPEND writes see the overlay (read-your-writes), also through
// other handles of the same file. So when the process dies (SIGKILL) it
// loses exactly the file data it had not synced, as a machine losing power
// does, although the page cache of the OS, which a SIGKILL keeps, would
// have kept it. The model is pessimistic: a real kernel writes dirty pages
// back within about 30 s, after which they survive a power loss even
// unsynced; Fault keeps unsynced data until it is synced or the process
// ends. Memory use is bounded by the data unsynced at any moment (the log
// syncs every group commit).
//
// Only file contents are modelled. Directory operations (create, rename,
// remove, mkdir) go straight to the OS, so an unsynced directory entry is
// NOT lost when the process dies; Mem's tests cover that (SyncDir).
//
// Faults. Stall makes every File.Sync and SyncDir block until Resume, like
// a disk that stopped answering; StallWrites stalls writes and truncations
// too. FailSyncs makes every File.Sync and SyncDir fail with EIO until
// Heal, dropping the overlay of the file being synced, as a kernel may drop
// the dirty pages whose writeback failed (fsyncgate): its data is gone,
// and reads show what is on disk. FailWrites makes writes and truncations
// fail with EIO. Reads, Size and Stat are never faulted.
//
// Files are identified by device and inode (by path on systems without
// inodes), so handles of one file share its overlay across renames.
// Fault is safe for concurrent use.
type Fault struct {
	mu      sync.Mutex
	nodes   map[fileID]*faultNode
	stall   chan struct{} // non-nil while stalled; closed by Resume
	stallW  bool          // writes stall too
	failS   bool          // Sync and SyncDir fail
	failW   bool          // writes and truncations fail
	crashed chan struct{} // closed by Crash, releasing stalled calls
	stalled int           // calls waiting in wait

	gen         atomic.Uint64 // incremented by Crash; handles remember theirs
	syncs       atomic.Int64
	failedSyncs atomic.Int64
}

var _ FS = (*Fault)(nil)

// NewFault returns a Fault over the real filesystem, with no fault armed.
func NewFault() *Fault {
	return &Fault{nodes: map[fileID]*faultNode{}, crashed: make(chan struct{})}
}

// errIO is what injected faults return.
var errIO = syscall.EIO

// Stall makes every File.Sync and SyncDir that starts from now on block
// until Resume (or Crash), like a stalled disk. Reads and writes go on.
func (f *Fault) Stall() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.stall == nil {
		f.stall = make(chan struct{})
	}
}

// StallWrites is Stall, and makes writes and truncations block as well.
func (f *Fault) StallWrites() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.stall == nil {
		f.stall = make(chan struct{})
	}
	f.stallW = true
}

// Resume releases every stalled call and stops stalling.
func (f *Fault) Resume() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.stall != nil {
		close(f.stall)
		f.stall = nil
	}
	f.stallW = false
}

// FailSyncs makes every File.Sync and SyncDir fail with EIO until Heal. A
// failed File.Sync drops the file's unsynced data (see Fault).
func (f *Fault) FailSyncs() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.failS = true
}

// FailWrites makes every write and truncation fail with EIO, having
// changed nothing, until Heal.
func (f *Fault) FailWrites() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.failW = true
}

// Heal stops FailSyncs and FailWrites. Data a failed sync dropped stays
// lost.
func (f *Fault) Heal() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.failS, f.failW = false, false
}

// Crash simulates, within the process, what a power loss leaves: every
// file's unsynced data is dropped, stalled calls return an error wrapping
// ErrCrashed, and every handle opened before fails every further call with
// ErrCrashed (Close still releases its descriptor). The OS files keep what
// was synced; reopen them through OS or a new Fault. Armed faults stay.
func (f *Fault) Crash() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.gen.Add(1)
	close(f.crashed)
	f.crashed = make(chan struct{})
	for id, n := range f.nodes {
		n.mu.Lock()
		n.dead = true
		n.drop()
		n.mu.Unlock()
		n.closeOwn()
		delete(f.nodes, id)
	}
}

// FaultStats is a snapshot of a Fault's state.
type FaultStats struct {
	Stalled      bool   `json:"stalled"`       // Stall or StallWrites in force
	StallWrites  bool   `json:"stall_writes"`  // writes stall too
	FailSyncs    bool   `json:"fail_syncs"`    // FailSyncs in force
	FailWrites   bool   `json:"fail_writes"`   // FailWrites in force
	Waiting      int    `json:"waiting"`       // calls blocked by a stall now
	Syncs        int64  `json:"syncs"`         // File.Sync calls that returned nil
	FailedSyncs  int64  `json:"failed_syncs"`  // File.Sync and SyncDir calls failed by FailSyncs
	Files        int    `json:"files"`         // files open or holding unsynced data
	PendingBytes int64  `json:"pending_bytes"` // unsynced data held in memory
	DirtyFiles   int    `json:"dirty_files"`   // files with unsynced changes
	Generation   uint64 `json:"generation"`    // Crash calls
}

// Stats reports the faults in force and what is held unsynced.
func (f *Fault) Stats() FaultStats {
	f.mu.Lock()
	defer f.mu.Unlock()
	st := FaultStats{
		Stalled: f.stall != nil, StallWrites: f.stallW, FailSyncs: f.failS, FailWrites: f.failW,
		Waiting: f.stalled, Syncs: f.syncs.Load(), FailedSyncs: f.failedSyncs.Load(),
		Files: len(f.nodes), Generation: f.gen.Load(),
	}
	for _, n := range f.nodes {
		n.mu.RLock()
		if n.dirty() {
			st.DirtyFiles++
		}
		for _, e := range n.exts {
			st.PendingBytes += int64(len(e.data))
		}
		n.mu.RUnlock()
	}
	return st
}

// wait blocks while a stall is in force (for writes too when write is
// set) and reports ErrCrashed if a Crash releases it.
func (f *Fault) wait(write bool) error {
	f.mu.Lock()
	stall, crashed := f.stall, f.crashed
	if stall == nil || (write && !f.stallW) {
		f.mu.Unlock()
		return nil
	}
	f.stalled++
	f.mu.Unlock()
	defer func() {
		f.mu.Lock()
		f.stalled--
		f.mu.Unlock()
	}()
	select {
	case <-stall:
		return nil
	case <-crashed:
		return ErrCrashed
	}
}

func (f *Fault) failing(syncs bool) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if syncs {
		return f.failS
	}
	return f.failW
}

// OpenFile opens a real file. With os.O_TRUNC the truncation is pending
// until Sync, like any other change to the file's data.
func (f *Fault) OpenFile(name string, flag int, perm os.FileMode) (File, error) {
	acc := flag & (os.O_RDONLY | os.O_WRONLY | os.O_RDWR)
	write := acc == os.O_WRONLY || acc == os.O_RDWR
	osFlag := flag &^ os.O_APPEND
	if write {
		osFlag &^= os.O_TRUNC
	}
	of, err := os.OpenFile(name, osFlag, perm)
	if err != nil {
		return nil, err
	}
	fi, err := of.Stat()
	if err != nil {
		of.Close()
		return nil, err
	}
	id, err := idOf(name, fi)
	if err != nil {
		of.Close()
		return nil, err
	}
	h := &faultFile{fs: f, f: of, name: name, read: acc == os.O_RDONLY || acc == os.O_RDWR, write: write,
		append: flag&os.O_APPEND != 0, gen: f.gen.Load()}
	f.mu.Lock()
	defer f.mu.Unlock()
	n := f.nodes[id]
	if n == nil {
		n = &faultNode{id: id, disk: fi.Size(), floor: fi.Size(), size: fi.Size()}
		f.nodes[id] = n
	}
	n.refs++
	h.n = n
	if write {
		n.mu.Lock()
		n.w = append(n.w, h)
		if flag&os.O_TRUNC != 0 {
			n.truncate(0)
		}
		n.mu.Unlock()
	}
	return h, nil
}

// unlinked forgets the node of a file that no longer has a name, once no
// handle uses it: its unsynced data can never be read again. f.mu must be
// held.
func (f *Fault) unlinked(id fileID) {
	n := f.nodes[id]
	if n == nil {
		return
	}
	n.unlinked = true
	if n.refs == 0 {
		delete(f.nodes, id)
		n.closeOwn()
	}
}

// Remove removes a file or an empty directory (at once: not lost by a
// crash).
func (f *Fault) Remove(name string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	fi, statErr := os.Lstat(name)
	if err := os.Remove(name); err != nil {
		return err
	}
	if statErr == nil && fi.Mode().IsRegular() {
		if id, err := idOf(name, fi); err == nil {
			f.unlinked(id)
		}
	}
	return nil
}

// Rename renames a file atomically within one filesystem (at once: not
// lost by a crash). A file it replaces loses its unsynced data.
func (f *Fault) Rename(oldpath, newpath string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	oldFi, oldErr := os.Lstat(oldpath)
	newFi, newErr := os.Lstat(newpath)
	if err := os.Rename(oldpath, newpath); err != nil {
		return err
	}
	if newErr == nil && newFi.Mode().IsRegular() && (oldErr != nil || !os.SameFile(oldFi, newFi)) {
		if id, err := idOf(newpath, newFi); err == nil {
			f.unlinked(id)
		}
	}
	if oldErr == nil && oldFi.Mode().IsRegular() {
		f.renamed(oldpath, newpath, oldFi)
	}
	return nil
}

// renamed moves the node of a file renamed from oldpath to newpath when
// files are identified by path. f.mu must be held.
func (f *Fault) renamed(oldpath, newpath string, fi os.FileInfo) {
	oldID, err1 := idOf(oldpath, fi)
	newID, err2 := idOf(newpath, fi)
	if err1 != nil || err2 != nil || oldID == newID {
		return // identified by inode: nothing moves
	}
	if n := f.nodes[oldID]; n != nil {
		delete(f.nodes, oldID)
		n.id = newID
		f.nodes[newID] = n
	}
}

// ReadDir lists the entry names of dir, sorted.
func (f *Fault) ReadDir(dir string) ([]string, error) { return OS{}.ReadDir(dir) }

// MkdirAll creates dir and its parents.
func (f *Fault) MkdirAll(dir string, perm os.FileMode) error { return os.MkdirAll(dir, perm) }

// SyncDir fsyncs a directory, subject to Stall and FailSyncs.
func (f *Fault) SyncDir(dir string) error {
	if err := f.wait(false); err != nil {
		return &fs.PathError{Op: "sync", Path: dir, Err: err}
	}
	if f.failing(true) {
		f.failedSyncs.Add(1)
		return &fs.PathError{Op: "sync", Path: dir, Err: errIO}
	}
	return OS{}.SyncDir(dir)
}

// Stat stats name; a file's size includes its unsynced changes.
func (f *Fault) Stat(name string) (os.FileInfo, error) {
	fi, err := os.Stat(name)
	if err != nil || !fi.Mode().IsRegular() {
		return fi, err
	}
	id, err := idOf(name, fi)
	if err != nil {
		return fi, nil
	}
	f.mu.Lock()
	n := f.nodes[id]
	f.mu.Unlock()
	if n == nil {
		return fi, nil
	}
	n.mu.RLock()
	size := n.size
	n.mu.RUnlock()
	if size == fi.Size() {
		return fi, nil
	}
	return sizedInfo{fi, size}, nil
}

// sizedInfo is a FileInfo whose size counts unsynced changes.
type sizedInfo struct {
	os.FileInfo
	size int64
}

func (i sizedInfo) Size() int64 { return i.size }

// faultNode is the in-memory state of one file: its unsynced changes
// over the OS file's contents. Bytes below floor read from the OS file;
// bytes in [floor, size) read as zero except where an extent covers them.
type faultNode struct {
	id fileID
	// Guarded by Fault.mu.
	refs     int
	unlinked bool

	mu    sync.RWMutex
	w     []*faultFile // open writable handles: Sync writes through the first
	own   *os.File     // kept when the last writable handle closed with unsynced changes
	dead  bool         // dropped by Crash
	disk  int64        // size of the OS file
	floor int64        // lowest size truncated to since the last sync, at most disk
	size  int64        // size as reads see it
	exts  []extent     // unsynced data: sorted, disjoint, not touching
}

// extent is unsynced data at off.
type extent struct {
	off  int64
	data []byte
}

func (e *extent) end() int64 { return e.off + int64(len(e.data)) }

func (n *faultNode) dirty() bool {
	return len(n.exts) > 0 || n.floor != n.disk || n.size != n.disk
}

// drop forgets every unsynced change. n.mu must be held.
func (n *faultNode) drop() {
	n.exts = nil
	n.floor, n.size = n.disk, n.disk
}

// writer is the descriptor unsynced changes are written through: a
// writable handle's, or the one kept after they all closed. n.mu must be
// held.
func (n *faultNode) writer() *os.File {
	if len(n.w) > 0 {
		return n.w[0].f
	}
	return n.own
}

func (n *faultNode) closeOwn() {
	n.mu.Lock()
	own := n.own
	n.own = nil
	n.mu.Unlock()
	if own != nil {
		own.Close()
	}
}

// writeAt records p at off. n.mu must be held.
func (n *faultNode) writeAt(p []byte, off int64) {
	if len(p) == 0 {
		return
	}
	end := off + int64(len(p))
	n.size = max(n.size, end)
	exts := n.exts
	// [i, j) are the extents that overlap or touch [off, end).
	i := sort.Search(len(exts), func(k int) bool { return exts[k].end() >= off })
	j := sort.Search(len(exts), func(k int) bool { return exts[k].off > end })
	switch {
	case i == j:
		n.exts = append(exts, extent{})
		copy(n.exts[i+1:], n.exts[i:])
		n.exts[i] = extent{off: off, data: append([]byte(nil), p...)}
	case j == i+1 && exts[i].off <= off:
		// The common case: an append to, or an overwrite within, one extent.
		e := &exts[i]
		rel := off - e.off
		if end <= e.end() {
			copy(e.data[rel:], p)
		} else {
			e.data = append(e.data[:rel], p...)
		}
	default:
		start, stop := min(exts[i].off, off), max(exts[j-1].end(), end)
		buf := make([]byte, stop-start)
		for _, e := range exts[i:j] {
			copy(buf[e.off-start:], e.data)
		}
		copy(buf[off-start:], p)
		n.exts = append(exts[:i], append([]extent{{off: start, data: buf}}, exts[j:]...)...)
	}
}

// truncate records a change of size. n.mu must be held.
func (n *faultNode) truncate(size int64) {
	if size < n.size {
		// Extents before k end at or before size and stay whole.
		k := sort.Search(len(n.exts), func(k int) bool { return n.exts[k].end() > size })
		if k < len(n.exts) && n.exts[k].off < size {
			n.exts[k].data = n.exts[k].data[:size-n.exts[k].off]
			k++
		}
		n.exts = n.exts[:k]
		n.floor = min(n.floor, size)
	}
	n.size = size
}

// readAt reads into p at off from osf (for bytes below floor) and the
// overlay. n.mu must be held (for reading).
func (n *faultNode) readAt(osf *os.File, p []byte, off int64) (int, error) {
	if off >= n.size {
		return 0, io.EOF
	}
	want := int(min(int64(len(p)), n.size-off))
	q := p[:want]
	if !n.dirty() {
		return osf.ReadAt(p, off) // nothing pending: the OS file is the truth
	}
	base := 0
	if off < n.floor {
		base = int(min(int64(want), n.floor-off))
		k, err := osf.ReadAt(q[:base], off)
		if err != nil && !errors.Is(err, io.EOF) {
			return 0, err
		}
		clear(q[k:base]) // the OS file was shorter than it should be
	}
	clear(q[base:])
	i := sort.Search(len(n.exts), func(k int) bool { return n.exts[k].end() > off })
	for ; i < len(n.exts) && n.exts[i].off < off+int64(want); i++ {
		e := &n.exts[i]
		if e.off >= off {
			copy(q[e.off-off:], e.data)
		} else {
			copy(q, e.data[off-e.off:])
		}
	}
	if want < len(p) {
		return want, io.EOF
	}
	return want, nil
}

// flush writes the overlay to the OS file and forgets it. n.mu must be
// held. On error the overlay is dropped and the OS file's state is
// unknown.
func (n *faultNode) flush(name string) error {
	if !n.dirty() {
		return nil
	}
	w := n.writer()
	if w == nil { // cannot happen: only writable handles make changes
		n.drop()
		return &fs.PathError{Op: "sync", Path: name, Err: syscall.EBADF}
	}
	err := func() error {
		osSize := n.disk
		if n.floor < n.disk {
			if err := w.Truncate(n.floor); err != nil {
				return err
			}
			osSize = n.floor
		}
		for _, e := range n.exts {
			if _, err := w.WriteAt(e.data, e.off); err != nil {
				return err
			}
			osSize = max(osSize, e.end())
		}
		if osSize != n.size {
			if err := w.Truncate(n.size); err != nil {
				return err
			}
		}
		return nil
	}()
	if err != nil {
		if fi, serr := w.Stat(); serr == nil {
			n.disk = fi.Size()
		}
		n.drop()
		return err
	}
	n.disk = n.size
	n.drop()
	return nil
}

// faultFile is an open file of a Fault.
type faultFile struct {
	fs     *Fault
	n      *faultNode
	f      *os.File // this handle's own descriptor, for reads of synced data
	name   string
	read   bool
	write  bool
	append bool
	gen    uint64
	closed atomic.Bool
	pos    int64 // guarded by n.mu
}

var (
	_ File         = (*faultFile)(nil)
	_ VectorWriter = (*faultFile)(nil)
)

// check reports why h cannot be used, if it cannot.
func (h *faultFile) check(op string) error {
	switch {
	case h.closed.Load():
		return &fs.PathError{Op: op, Path: h.name, Err: fs.ErrClosed}
	case h.gen != h.fs.gen.Load():
		return &fs.PathError{Op: op, Path: h.name, Err: ErrCrashed}
	}
	return nil
}

func (h *faultFile) Name() string { return h.name }

func (h *faultFile) Close() error {
	if h.closed.Swap(true) {
		return &fs.PathError{Op: "close", Path: h.name, Err: fs.ErrClosed}
	}
	f := h.fs
	f.mu.Lock()
	n := h.n
	n.refs--
	n.mu.Lock()
	if i := slices.Index(n.w, h); i >= 0 {
		n.w = slices.Delete(n.w, i, i+1)
		if len(n.w) == 0 && n.own == nil && n.dirty() && !n.unlinked && !n.dead {
			// Keep a descriptor to sync the changes through later.
			own, err := dupFile(h.f)
			if err != nil {
				n.drop() // lost, as a crash would lose them
			}
			n.own = own
		}
	}
	var own *os.File
	if n.refs == 0 && f.nodes[n.id] == n && (!n.dirty() || n.unlinked || n.dead) {
		delete(f.nodes, n.id)
		own, n.own = n.own, nil
	}
	n.mu.Unlock()
	f.mu.Unlock()
	if own != nil {
		own.Close()
	}
	err := h.f.Close()
	if h.gen != f.gen.Load() {
		return &fs.PathError{Op: "close", Path: h.name, Err: ErrCrashed}
	}
	return err
}

func (h *faultFile) ReadAt(p []byte, off int64) (int, error) {
	if err := h.check("read"); err != nil {
		return 0, err
	}
	if off < 0 {
		return 0, &fs.PathError{Op: "readat", Path: h.name, Err: errNegativeOffset}
	}
	if !h.read {
		return 0, &fs.PathError{Op: "read", Path: h.name, Err: syscall.EBADF}
	}
	if len(p) == 0 {
		return 0, nil
	}
	h.n.mu.RLock()
	defer h.n.mu.RUnlock()
	return h.n.readAt(h.f, p, off)
}

// startWrite checks a write and applies the write faults.
func (h *faultFile) startWrite(op string) error {
	if err := h.check(op); err != nil {
		return err
	}
	if !h.write {
		return &fs.PathError{Op: op, Path: h.name, Err: syscall.EBADF}
	}
	if err := h.fs.wait(true); err != nil {
		return &fs.PathError{Op: op, Path: h.name, Err: err}
	}
	if h.fs.failing(false) {
		return &fs.PathError{Op: op, Path: h.name, Err: errIO}
	}
	return nil
}

func (h *faultFile) Write(p []byte) (int, error) {
	if err := h.startWrite("write"); err != nil {
		return 0, err
	}
	n := h.n
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.dead {
		return 0, &fs.PathError{Op: "write", Path: h.name, Err: ErrCrashed}
	}
	off := h.pos
	if h.append {
		off = n.size
	}
	n.writeAt(p, off)
	h.pos = off + int64(len(p))
	return len(p), nil
}

func (h *faultFile) WriteAt(p []byte, off int64) (int, error) {
	return h.WritevAt([][]byte{p}, off)
}

// WritevAt writes bufs contiguously at off, as one write.
func (h *faultFile) WritevAt(bufs [][]byte, off int64) (int, error) {
	if err := h.check("write"); err != nil {
		return 0, err
	}
	if h.append {
		return 0, errWriteAtAppend
	}
	if off < 0 {
		return 0, &fs.PathError{Op: "writeat", Path: h.name, Err: errNegativeOffset}
	}
	if err := h.startWrite("write"); err != nil {
		return 0, err
	}
	n := h.n
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.dead {
		return 0, &fs.PathError{Op: "write", Path: h.name, Err: ErrCrashed}
	}
	total := 0
	for _, b := range bufs {
		n.writeAt(b, off+int64(total))
		total += len(b)
	}
	return total, nil
}

func (h *faultFile) Truncate(size int64) error {
	if err := h.check("truncate"); err != nil {
		return err
	}
	if size < 0 || !h.write {
		return &fs.PathError{Op: "truncate", Path: h.name, Err: syscall.EINVAL}
	}
	if err := h.startWrite("truncate"); err != nil {
		return err
	}
	n := h.n
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.dead {
		return &fs.PathError{Op: "truncate", Path: h.name, Err: ErrCrashed}
	}
	n.truncate(size)
	return nil
}

func (h *faultFile) Size() (int64, error) {
	if err := h.check("stat"); err != nil {
		return 0, err
	}
	h.n.mu.RLock()
	defer h.n.mu.RUnlock()
	return h.n.size, nil
}

// Sync writes the file's unsynced changes (from every handle) to the OS
// file and fdatasyncs it, subject to Stall and FailSyncs.
func (h *faultFile) Sync() error {
	if err := h.check("sync"); err != nil {
		return err
	}
	f, n := h.fs, h.n
	if err := f.wait(false); err != nil {
		return &fs.PathError{Op: "sync", Path: h.name, Err: err}
	}
	if f.failing(true) {
		f.failedSyncs.Add(1)
		n.mu.Lock()
		n.drop()
		n.mu.Unlock()
		return &fs.PathError{Op: "fdatasync", Path: h.name, Err: errIO}
	}
	n.mu.Lock()
	if n.dead {
		n.mu.Unlock()
		return &fs.PathError{Op: "sync", Path: h.name, Err: ErrCrashed}
	}
	err := n.flush(h.name)
	target := n.writer()
	if target == nil {
		target = h.f
	}
	n.mu.Unlock()
	if err != nil {
		return fmt.Errorf("vfs: sync %s: %w", h.name, err)
	}
	// Outside the lock, so that reads and writes go on during the fsync.
	// A concurrent Close or Crash may close target: fdatasync keeps
	// the descriptor open meanwhile.
	if err := fdatasync(target); err != nil {
		return err
	}
	f.syncs.Add(1)
	return nil
}
