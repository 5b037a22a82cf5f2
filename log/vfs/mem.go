package vfs

import (
	"errors"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"
)

// ErrCrashed is returned by every operation on a File opened before the last
// (*Mem).Crash. It matches fs.ErrClosed under errors.Is, since such a handle
// behaves like a closed one.
var ErrCrashed error = crashedError{}

type crashedError struct{}

func (crashedError) Error() string        { return "vfs: file handle from before crash" }
func (crashedError) Is(target error) bool { return target == fs.ErrClosed }

// Errors that os.File reports in the same situations.
var (
	errNegativeOffset = errors.New("negative offset")
	errWriteAtAppend  = errors.New("vfs: invalid use of WriteAt on file opened with O_APPEND")
)

// tornPage bounds how much of the tail of a torn write Crash replaces with
// garbage.
const tornPage = 4096

// CrashOptions says how (*Mem).Crash treats data written but not synced.
// The zero value drops all of it.
type CrashOptions struct {
	// Rand drives every random choice, so a crash is reproducible from its
	// seed. If nil, a fixed seed is used.
	Rand *rand.Rand
	// TornWrites keeps a random prefix (possibly empty, possibly all) of the
	// unsynced bytes past the synced end of each file, as if some of the
	// appended pages reached the disk before power was lost.
	TornWrites bool
	// Garbage, with TornWrites, sometimes replaces the last up to 4 KiB of a
	// kept prefix with zeros or random bytes, as if the final page was only
	// partly written.
	Garbage bool
}

// Mem is an in-memory FS for tests. It models POSIX with a pessimistic page
// cache: a file's data is durable only after File.Sync returns nil, and the
// creation, rename or removal of a directory entry only after SyncDir on its
// directory returns nil. Crash simulates a power loss by throwing away
// everything that was not durable. Faults (failed, short or stalled I/O) can
// be injected at any time.
//
// Departures from a real filesystem, chosen to keep tests simple:
//   - Relative paths are resolved against "/": Mem has no working directory.
//   - MkdirAll is durable at once; only file entries and the removal or
//     rename of directories need SyncDir.
//   - A directory cannot be opened with OpenFile.
//   - A cross-directory rename made durable by SyncDir on only one of the two
//     directories leaves the file in both after a crash, like a hard link.
//
// Mem is safe for concurrent use; all its state, including that of open
// files, is guarded by a single mutex.
type Mem struct {
	mu      sync.Mutex
	root    *memNode
	gen     uint64        // incremented by Crash; handles remember theirs
	crashed chan struct{} // closed by Crash to release stalled syncs

	syncFault    fault
	syncDirFault fault
	writeFault   fault
	shortFault   fault
	shortN       int
	stall        <-chan struct{}

	syncs    int
	syncDirs int
	stalled  int // syncs waiting in waitStall, for tests
}

var _ FS = (*Mem)(nil)

// NewMem returns an empty filesystem holding only the root directory.
func NewMem() *Mem {
	return &Mem{root: newDir(0o755), crashed: make(chan struct{})}
}

// memNode is an inode: a regular file or a directory.
type memNode struct {
	isDir   bool
	mode    os.FileMode
	modTime time.Time

	// Regular files.
	data   []byte // what reads see
	synced []byte // what a crash leaves (never aliases data)
	lost   []span // dirty when a Sync failed: a later Sync does not persist them

	// Directories.
	cur     map[string]*memNode // what lookups see
	durable map[string]*memNode // what a crash leaves
}

func newDir(perm os.FileMode) *memNode {
	return &memNode{
		isDir:   true,
		mode:    fs.ModeDir | perm.Perm(),
		modTime: time.Now(),
		cur:     map[string]*memNode{},
		durable: map[string]*memNode{},
	}
}

func newFile(perm os.FileMode) *memNode {
	return &memNode{mode: perm.Perm(), modTime: time.Now()}
}

// fault fires once, on the (after+1)th event counted after it was armed.
type fault struct {
	armed bool
	after int
	err   error
}

func (f *fault) arm(err error, afterN int) {
	*f = fault{armed: true, after: max(afterN, 0), err: err}
}

func (f *fault) fire() bool {
	if !f.armed {
		return false
	}
	if f.after > 0 {
		f.after--
		return false
	}
	f.armed = false
	return true
}

// FailSync makes the File.Sync call after the next afterN ones (afterN 0:
// the next one) return err, once. As on Linux (fsyncgate), the failed Sync
// persists nothing, and the bytes that were dirty stay lost: a later
// successful Sync does not persist them unless they are written again, so a
// crash shows their old contents (or zeros past the old end of file). Reads
// keep seeing the written data. A nil err disarms the fault.
func (m *Mem) FailSync(err error, afterN int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err == nil {
		m.syncFault = fault{}
		return
	}
	m.syncFault.arm(err, afterN)
}

// FailSyncDir makes the SyncDir call after the next afterN ones return err,
// once. The failed SyncDir makes nothing durable. A nil err disarms the fault.
func (m *Mem) FailSyncDir(err error, afterN int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err == nil {
		m.syncDirFault = fault{}
		return
	}
	m.syncDirFault.arm(err, afterN)
}

// FailWrite makes the Write or WriteAt call after the next afterN ones return
// err, once, having written nothing. It takes precedence over ShortWrite for
// the same call. A nil err disarms the fault.
func (m *Mem) FailWrite(err error, afterN int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err == nil {
		m.writeFault = fault{}
		return
	}
	m.writeFault.arm(err, afterN)
}

// ShortWrite makes the Write or WriteAt call after the next afterN ones write
// only its first n bytes (all of them if it has fewer) and return
// io.ErrShortWrite, once.
func (m *Mem) ShortWrite(afterN, n int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.shortFault.arm(nil, afterN)
	m.shortN = max(n, 0)
}

// StallSync makes every File.Sync and SyncDir that starts from now on block
// until ch is closed, like a stalled disk; reads, writes and other calls go
// on. Once released, a stalled sync persists the state from when it was
// called, not later writes or entries. A Crash releases stalled syncs, which
// then persist nothing and return an error wrapping ErrCrashed. A nil ch
// stops stalling new syncs; syncs already stalled wait for their channel.
func (m *Mem) StallSync(ch <-chan struct{}) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.stall = ch
}

// ClearFaults disarms FailSync, FailSyncDir, FailWrite, ShortWrite and
// StallSync. Data already lost to a failed Sync stays lost.
func (m *Mem) ClearFaults() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.syncFault = fault{}
	m.syncDirFault = fault{}
	m.writeFault = fault{}
	m.shortFault = fault{}
	m.shortN = 0
	m.stall = nil
}

// SyncCount reports how many File.Sync calls have returned nil.
func (m *Mem) SyncCount() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.syncs
}

// StalledSyncs reports how many syncs are blocked by StallSync now.
func (m *Mem) StalledSyncs() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.stalled
}

// SyncDirCount reports how many SyncDir calls have returned nil.
func (m *Mem) SyncDirCount() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.syncDirs
}

// Crash simulates a power loss followed by a reboot: every directory's
// entries revert to those last made durable by SyncDir, and every file's data
// to what it last synced, except for what opts keeps of unsynced appends.
// Files opened before the crash fail every further call with ErrCrashed.
// Injected faults stay armed. Given opts.Rand's state the outcome is
// deterministic.
func (m *Mem) Crash(opts CrashOptions) {
	m.mu.Lock()
	defer m.mu.Unlock()
	r := opts.Rand
	if r == nil {
		r = rand.New(rand.NewPCG(0, 0))
	}
	m.gen++
	close(m.crashed)
	m.crashed = make(chan struct{})

	seen := map[*memNode]bool{}
	var walk func(n *memNode)
	walk = func(n *memNode) {
		if seen[n] {
			return
		}
		seen[n] = true
		if !n.isDir {
			n.crash(r, opts)
			return
		}
		n.cur = cloneEntries(n.durable)
		for _, name := range sortedNames(n.cur) {
			walk(n.cur[name])
		}
	}
	walk(m.root)
}

func (n *memNode) crash(r *rand.Rand, opts CrashOptions) {
	data := slices.Clone(n.synced)
	if opts.TornWrites && len(n.data) > len(n.synced) {
		ext := n.data[len(n.synced):]
		k := r.IntN(len(ext) + 1)
		kept := slices.Clone(ext[:k])
		if opts.Garbage && k > 0 && r.IntN(2) == 0 {
			g := 1 + r.IntN(min(k, tornPage))
			tail := kept[k-g:]
			if r.IntN(2) == 0 {
				clear(tail)
			} else {
				for i := range tail {
					tail[i] = byte(r.IntN(256))
				}
			}
		}
		data = append(data, kept...)
	}
	n.data = data
	n.synced = slices.Clone(data)
	n.lost = nil
}

// ReadFile returns a copy of name's current contents.
func (m *Mem) ReadFile(name string) ([]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	n, err := m.lookupFile("readfile", name)
	if err != nil {
		return nil, err
	}
	return slices.Clone(n.data), nil
}

// WriteFile sets name's contents to data, creating the file (whose
// directory must exist) if needed. An open file keeps its handles and sees
// the new contents. With synced, the contents and the directory entry are
// durable at once, as if the bytes had always been on disk; otherwise they
// are as after an unsynced write (and, for a new file, an unsynced create).
func (m *Mem) WriteFile(name string, data []byte, synced bool) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	parent, base, err := m.lookupParent("writefile", name)
	if err != nil {
		return err
	}
	n := parent.cur[base]
	switch {
	case n == nil:
		n = newFile(0o644)
		parent.cur[base] = n
	case n.isDir:
		return &fs.PathError{Op: "writefile", Path: name, Err: syscall.EISDIR}
	}
	n.data = slices.Clone(data)
	n.lost = nil
	n.modTime = time.Now()
	if synced {
		n.synced = slices.Clone(data)
		parent.durable[base] = n
	}
	return nil
}

// CorruptAt XORs the byte at off of name with xor, in both its current and
// its synced contents (wherever they reach off), modelling bit rot on disk.
func (m *Mem) CorruptAt(name string, off int64, xor byte) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	n, err := m.lookupFile("corrupt", name)
	if err != nil {
		return err
	}
	if off < 0 || (off >= int64(len(n.data)) && off >= int64(len(n.synced))) {
		return &fs.PathError{Op: "corrupt", Path: name, Err: syscall.EINVAL}
	}
	if off < int64(len(n.data)) {
		n.data[off] ^= xor
	}
	if off < int64(len(n.synced)) {
		n.synced[off] ^= xor
	}
	return nil
}

// TruncateFile sets name's current and synced size to size (zero-filling
// if it grows), modelling a file cut short on disk.
func (m *Mem) TruncateFile(name string, size int64) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	n, err := m.lookupFile("truncate", name)
	if err != nil {
		return err
	}
	if size < 0 {
		return &fs.PathError{Op: "truncate", Path: name, Err: syscall.EINVAL}
	}
	n.truncate(size)
	n.synced = resize(n.synced, size)
	return nil
}

// List returns the paths of all regular files in the current view of the
// tree, absolute and sorted.
func (m *Mem) List() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []string
	var walk func(dir *memNode, prefix string)
	walk = func(dir *memNode, prefix string) {
		for _, name := range sortedNames(dir.cur) {
			n := dir.cur[name]
			p := prefix + "/" + name
			if n.isDir {
				walk(n, p)
			} else {
				out = append(out, p)
			}
		}
	}
	walk(m.root, "")
	sort.Strings(out)
	return out
}

// OpenFile opens name with os.O_* flags. O_CREATE needs the directory to
// exist; the new entry is durable only after SyncDir.
func (m *Mem) OpenFile(name string, flag int, perm os.FileMode) (File, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	parent, base, err := m.lookupParent("open", name)
	if err != nil {
		return nil, err
	}
	if base == "" { // the root
		return nil, &fs.PathError{Op: "open", Path: name, Err: syscall.EISDIR}
	}
	n := parent.cur[base]
	switch {
	case n == nil:
		if flag&os.O_CREATE == 0 {
			return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
		}
		n = newFile(perm)
		parent.cur[base] = n
	case flag&(os.O_CREATE|os.O_EXCL) == os.O_CREATE|os.O_EXCL:
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrExist}
	case n.isDir:
		return nil, &fs.PathError{Op: "open", Path: name, Err: syscall.EISDIR}
	case flag&os.O_TRUNC != 0:
		n.truncate(0)
	}
	acc := flag & (os.O_RDONLY | os.O_WRONLY | os.O_RDWR)
	return &memFile{
		m:      m,
		n:      n,
		name:   name,
		read:   acc == os.O_RDONLY || acc == os.O_RDWR,
		write:  acc == os.O_WRONLY || acc == os.O_RDWR,
		append: flag&os.O_APPEND != 0,
		gen:    m.gen,
	}, nil
}

// Remove removes a file or an empty directory. Open files keep working.
func (m *Mem) Remove(name string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	parent, base, err := m.lookupParent("remove", name)
	if err != nil {
		return err
	}
	if base == "" {
		return &fs.PathError{Op: "remove", Path: name, Err: syscall.EBUSY}
	}
	n := parent.cur[base]
	switch {
	case n == nil:
		return &fs.PathError{Op: "remove", Path: name, Err: fs.ErrNotExist}
	case n.isDir && len(n.cur) > 0:
		return &fs.PathError{Op: "remove", Path: name, Err: syscall.ENOTEMPTY}
	}
	delete(parent.cur, base)
	return nil
}

// Rename moves oldpath to newpath, atomically replacing a file at newpath.
// Like os.Rename it refuses to replace a directory.
func (m *Mem) Rename(oldpath, newpath string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	linkErr := func(err error) error {
		if pe, ok := err.(*fs.PathError); ok {
			err = pe.Err
		}
		return &os.LinkError{Op: "rename", Old: oldpath, New: newpath, Err: err}
	}
	oldParent, oldBase, err := m.lookupParent("rename", oldpath)
	if err != nil {
		return linkErr(err)
	}
	var src *memNode
	if oldBase != "" {
		src = oldParent.cur[oldBase]
	}
	if src == nil {
		return linkErr(fs.ErrNotExist)
	}
	newParts, err := splitPath(newpath)
	if err != nil {
		return linkErr(err)
	}
	if len(newParts) == 0 {
		return linkErr(syscall.EEXIST) // the root exists and is a directory
	}
	newParent := m.root
	for _, p := range newParts[:len(newParts)-1] {
		if newParent == src {
			return linkErr(syscall.EINVAL) // a directory into itself
		}
		next := newParent.cur[p]
		switch {
		case next == nil:
			return linkErr(fs.ErrNotExist)
		case !next.isDir:
			return linkErr(syscall.ENOTDIR)
		}
		newParent = next
	}
	if newParent == src {
		return linkErr(syscall.EINVAL)
	}
	newBase := newParts[len(newParts)-1]
	if dst := newParent.cur[newBase]; dst != nil {
		switch {
		case dst == src:
			return nil
		case dst.isDir:
			return linkErr(syscall.EEXIST)
		case src.isDir:
			return linkErr(syscall.ENOTDIR)
		}
	}
	delete(oldParent.cur, oldBase)
	newParent.cur[newBase] = src
	return nil
}

// ReadDir lists the names of the entries in dir, sorted.
func (m *Mem) ReadDir(dir string) ([]string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	d, err := m.lookupDir("open", dir)
	if err != nil {
		return nil, err
	}
	return sortedNames(d.cur), nil
}

// MkdirAll creates dir and any missing parents. Unlike other changes to
// directories it is durable at once.
func (m *Mem) MkdirAll(dir string, perm os.FileMode) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	parts, err := splitPath(dir)
	if err != nil {
		return &fs.PathError{Op: "mkdir", Path: dir, Err: err}
	}
	d := m.root
	for _, p := range parts {
		next := d.cur[p]
		switch {
		case next == nil:
			next = newDir(perm)
			d.cur[p] = next
			d.durable[p] = next
		case !next.isDir:
			return &fs.PathError{Op: "mkdir", Path: dir, Err: syscall.ENOTDIR}
		}
		d = next
	}
	return nil
}

// SyncDir makes the current entries of dir durable: files created in,
// renamed into or out of, or removed from dir since the last SyncDir stay so
// after a crash.
func (m *Mem) SyncDir(dir string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	d, err := m.lookupDir("open", dir)
	if err != nil {
		return err
	}
	var failErr error
	if m.syncDirFault.fire() {
		failErr = m.syncDirFault.err
	}
	if m.stall != nil {
		snap := cloneEntries(d.cur)
		gen := m.gen
		if err := m.waitStall(); err != nil {
			return &fs.PathError{Op: "sync", Path: dir, Err: err}
		}
		if m.gen != gen {
			return &fs.PathError{Op: "sync", Path: dir, Err: ErrCrashed}
		}
		if failErr != nil {
			return &fs.PathError{Op: "sync", Path: dir, Err: failErr}
		}
		d.durable = snap
		m.syncDirs++
		return nil
	}
	if failErr != nil {
		return &fs.PathError{Op: "sync", Path: dir, Err: failErr}
	}
	d.durable = cloneEntries(d.cur)
	m.syncDirs++
	return nil
}

// waitStall releases m.mu until the stall channel is closed or a crash
// happens, and takes it again. It reports ErrCrashed after a crash.
func (m *Mem) waitStall() error {
	stall, crashed := m.stall, m.crashed
	m.stalled++
	m.mu.Unlock()
	defer func() {
		m.mu.Lock()
		m.stalled--
	}()
	select {
	case <-stall:
		return nil
	case <-crashed:
		return ErrCrashed
	}
}

// Stat reports name's size, mode and whether it is a directory.
func (m *Mem) Stat(name string) (os.FileInfo, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	parent, base, err := m.lookupParent("stat", name)
	if err != nil {
		return nil, err
	}
	n := m.root
	if base != "" {
		n = parent.cur[base]
	}
	if n == nil {
		return nil, &fs.PathError{Op: "stat", Path: name, Err: fs.ErrNotExist}
	}
	if base == "" {
		base = "/"
	}
	return &memInfo{name: base, size: int64(len(n.data)), mode: n.mode, modTime: n.modTime}, nil
}

// splitPath cleans name and splits it into its components below the root.
func splitPath(name string) ([]string, error) {
	if name == "" {
		return nil, fs.ErrNotExist
	}
	p := filepath.Clean(name)
	p = filepath.ToSlash(p[len(filepath.VolumeName(p)):])
	var parts []string
	for _, s := range strings.Split(p, "/") {
		if s != "" && s != "." && s != ".." {
			parts = append(parts, s)
		}
	}
	return parts, nil
}

// lookupParent finds the directory that holds name and name's last
// component, which is "" for the root (whose parent is the root).
func (m *Mem) lookupParent(op, name string) (*memNode, string, error) {
	parts, err := splitPath(name)
	if err != nil {
		return nil, "", &fs.PathError{Op: op, Path: name, Err: err}
	}
	if len(parts) == 0 {
		return m.root, "", nil
	}
	d := m.root
	for _, p := range parts[:len(parts)-1] {
		next := d.cur[p]
		switch {
		case next == nil:
			return nil, "", &fs.PathError{Op: op, Path: name, Err: fs.ErrNotExist}
		case !next.isDir:
			return nil, "", &fs.PathError{Op: op, Path: name, Err: syscall.ENOTDIR}
		}
		d = next
	}
	return d, parts[len(parts)-1], nil
}

func (m *Mem) lookup(op, name string) (*memNode, error) {
	parent, base, err := m.lookupParent(op, name)
	if err != nil {
		return nil, err
	}
	if base == "" {
		return m.root, nil
	}
	n := parent.cur[base]
	if n == nil {
		return nil, &fs.PathError{Op: op, Path: name, Err: fs.ErrNotExist}
	}
	return n, nil
}

func (m *Mem) lookupDir(op, name string) (*memNode, error) {
	n, err := m.lookup(op, name)
	if err != nil {
		return nil, err
	}
	if !n.isDir {
		return nil, &fs.PathError{Op: op, Path: name, Err: syscall.ENOTDIR}
	}
	return n, nil
}

func (m *Mem) lookupFile(op, name string) (*memNode, error) {
	n, err := m.lookup(op, name)
	if err != nil {
		return nil, err
	}
	if n.isDir {
		return nil, &fs.PathError{Op: op, Path: name, Err: syscall.EISDIR}
	}
	return n, nil
}

func cloneEntries(e map[string]*memNode) map[string]*memNode {
	c := make(map[string]*memNode, len(e))
	for k, v := range e {
		c[k] = v
	}
	return c
}

func sortedNames(e map[string]*memNode) []string {
	names := make([]string, 0, len(e))
	for k := range e {
		names = append(names, k)
	}
	sort.Strings(names)
	return names
}

// resize returns b cut or zero-extended to size, reusing b's array only to
// shrink.
func resize(b []byte, size int64) []byte {
	if size <= int64(len(b)) {
		return b[:size]
	}
	return append(b, make([]byte, size-int64(len(b)))...)
}

func (n *memNode) truncate(size int64) {
	n.data = resize(n.data, size)
	n.lost = cutSpan(n.lost, span{size, max(size, spanEnd(n.lost))})
	n.modTime = time.Now()
}

func (n *memNode) writeAt(p []byte, off int64) {
	end := off + int64(len(p))
	if end > int64(len(n.data)) {
		n.data = resize(n.data, end)
	}
	copy(n.data[off:], p)
	n.lost = cutSpan(n.lost, span{off, end})
	n.modTime = time.Now()
}

// failSync records, as Linux does after a failed fsync, that the bytes that
// were dirty are now considered clean though they never reached the disk.
func (n *memNode) failSync() {
	common := min(len(n.data), len(n.synced))
	for i := 0; i < common; {
		if n.data[i] == n.synced[i] {
			i++
			continue
		}
		j := i + 1
		for j < common && n.data[j] != n.synced[j] {
			j++
		}
		n.lost = addSpan(n.lost, span{int64(i), int64(j)})
		i = j
	}
	if len(n.data) > common {
		n.lost = addSpan(n.lost, span{int64(common), int64(len(n.data))})
	}
}

// sync makes data (the current contents, or a snapshot taken when a stalled
// sync started) durable, except for bytes lost to an earlier failed sync,
// which keep their old durable contents, or read as zeros past the old end.
func (n *memNode) sync(data []byte) {
	synced := slices.Clone(data)
	for _, s := range n.lost {
		for i := s.off; i < s.end && i < int64(len(synced)); i++ {
			if i < int64(len(n.synced)) {
				synced[i] = n.synced[i]
			} else {
				synced[i] = 0
			}
		}
	}
	n.synced = synced
	// n.lost stays: bytes a failed fsync dropped are gone from the disk
	// until they are written again (writeAt cuts them), however many
	// later fsyncs succeed (fsyncgate).
}

// span is the byte range [off, end).
type span struct{ off, end int64 }

func spanEnd(ss []span) int64 {
	if len(ss) == 0 {
		return 0
	}
	return ss[len(ss)-1].end
}

// addSpan adds s to the sorted, disjoint ss, merging where they touch.
func addSpan(ss []span, s span) []span {
	if s.off >= s.end {
		return ss
	}
	var out []span
	for _, x := range ss {
		switch {
		case x.end < s.off || x.off > s.end:
			out = append(out, x)
		default:
			s = span{min(s.off, x.off), max(s.end, x.end)}
		}
	}
	out = append(out, s)
	sort.Slice(out, func(i, j int) bool { return out[i].off < out[j].off })
	return out
}

// cutSpan removes s from the sorted, disjoint ss.
func cutSpan(ss []span, s span) []span {
	if s.off >= s.end || len(ss) == 0 {
		return ss
	}
	var out []span
	for _, x := range ss {
		if x.end <= s.off || x.off >= s.end {
			out = append(out, x)
			continue
		}
		if x.off < s.off {
			out = append(out, span{x.off, s.off})
		}
		if x.end > s.end {
			out = append(out, span{s.end, x.end})
		}
	}
	return out
}

// memFile is an open file of a Mem. Its state is guarded by m.mu.
type memFile struct {
	m      *Mem
	n      *memNode
	name   string
	read   bool
	write  bool
	append bool
	gen    uint64
	pos    int64
	closed bool
}

// check reports why f cannot be used, if it cannot. m.mu must be held.
func (f *memFile) check(op string) error {
	switch {
	case f.gen != f.m.gen:
		return &fs.PathError{Op: op, Path: f.name, Err: ErrCrashed}
	case f.closed:
		return &fs.PathError{Op: op, Path: f.name, Err: fs.ErrClosed}
	}
	return nil
}

func (f *memFile) Name() string { return f.name }

func (f *memFile) Close() error {
	f.m.mu.Lock()
	defer f.m.mu.Unlock()
	if err := f.check("close"); err != nil {
		return err
	}
	f.closed = true
	return nil
}

func (f *memFile) ReadAt(p []byte, off int64) (int, error) {
	f.m.mu.Lock()
	defer f.m.mu.Unlock()
	if err := f.check("read"); err != nil {
		return 0, err
	}
	if off < 0 {
		return 0, &fs.PathError{Op: "readat", Path: f.name, Err: errNegativeOffset}
	}
	if !f.read {
		return 0, &fs.PathError{Op: "read", Path: f.name, Err: syscall.EBADF}
	}
	if len(p) == 0 {
		return 0, nil
	}
	if off >= int64(len(f.n.data)) {
		return 0, io.EOF
	}
	n := copy(p, f.n.data[off:])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

func (f *memFile) Write(p []byte) (int, error) {
	f.m.mu.Lock()
	defer f.m.mu.Unlock()
	if err := f.check("write"); err != nil {
		return 0, err
	}
	off := f.pos
	if f.append {
		off = int64(len(f.n.data))
	}
	n, err := f.writeAt("write", p, off)
	f.pos = off + int64(n)
	return n, err
}

func (f *memFile) WriteAt(p []byte, off int64) (int, error) {
	f.m.mu.Lock()
	defer f.m.mu.Unlock()
	if err := f.check("write"); err != nil {
		return 0, err
	}
	if f.append {
		return 0, errWriteAtAppend
	}
	if off < 0 {
		return 0, &fs.PathError{Op: "writeat", Path: f.name, Err: errNegativeOffset}
	}
	return f.writeAt("write", p, off)
}

// WritevAt writes bufs contiguously at off as one write: one fault point,
// like one pwritev.
func (f *memFile) WritevAt(bufs [][]byte, off int64) (int, error) {
	var p []byte
	for _, b := range bufs {
		p = append(p, b...)
	}
	return f.WriteAt(p, off)
}

// writeAt writes p at off, applying injected write faults. m.mu must be held.
func (f *memFile) writeAt(op string, p []byte, off int64) (int, error) {
	if !f.write {
		return 0, &fs.PathError{Op: op, Path: f.name, Err: syscall.EBADF}
	}
	m := f.m
	if m.writeFault.fire() {
		return 0, &fs.PathError{Op: op, Path: f.name, Err: m.writeFault.err}
	}
	if m.shortFault.fire() {
		p = p[:min(m.shortN, len(p))]
		f.n.writeAt(p, off)
		return len(p), io.ErrShortWrite
	}
	f.n.writeAt(p, off)
	return len(p), nil
}

func (f *memFile) Sync() error {
	m := f.m
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := f.check("sync"); err != nil {
		return err
	}
	var failErr error
	if m.syncFault.fire() {
		failErr = m.syncFault.err
		// Mark the loss now, so that writes made while a stalled sync
		// waits are not counted as lost.
		f.n.failSync()
	}
	data := f.n.data
	if m.stall != nil {
		if failErr == nil {
			data = slices.Clone(data)
		}
		gen := m.gen
		if err := m.waitStall(); err != nil {
			return &fs.PathError{Op: "sync", Path: f.name, Err: err}
		}
		if m.gen != gen {
			return &fs.PathError{Op: "sync", Path: f.name, Err: ErrCrashed}
		}
	}
	if failErr != nil {
		return &fs.PathError{Op: "sync", Path: f.name, Err: failErr}
	}
	f.n.sync(data)
	m.syncs++
	return nil
}

func (f *memFile) Truncate(size int64) error {
	f.m.mu.Lock()
	defer f.m.mu.Unlock()
	if err := f.check("truncate"); err != nil {
		return err
	}
	if size < 0 || !f.write {
		return &fs.PathError{Op: "truncate", Path: f.name, Err: syscall.EINVAL}
	}
	f.n.truncate(size)
	return nil
}

func (f *memFile) Size() (int64, error) {
	f.m.mu.Lock()
	defer f.m.mu.Unlock()
	if err := f.check("stat"); err != nil {
		return 0, err
	}
	return int64(len(f.n.data)), nil
}

// memInfo is the os.FileInfo of a Mem file or directory.
type memInfo struct {
	name    string
	size    int64
	mode    os.FileMode
	modTime time.Time
}

func (i *memInfo) Name() string       { return i.name }
func (i *memInfo) Size() int64        { return i.size }
func (i *memInfo) Mode() os.FileMode  { return i.mode }
func (i *memInfo) ModTime() time.Time { return i.modTime }
func (i *memInfo) IsDir() bool        { return i.mode.IsDir() }
func (i *memInfo) Sys() any           { return nil }
