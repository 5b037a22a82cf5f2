package vfs

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// osContents is what the OS file holds: what a power loss would leave.
func osContents(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func readFull(t *testing.T, f File) string {
	t.Helper()
	size, err := f.Size()
	if err != nil {
		t.Fatal(err)
	}
	b := make([]byte, size)
	if n, err := f.ReadAt(b, 0); err != nil && !errors.Is(err, io.EOF) || n != len(b) {
		t.Fatalf("read %d of %d bytes: %v", n, size, err)
	}
	return string(b)
}

// TestFaultMatchesOS runs the script TestMemMatchesOS runs: without a
// crash, Fault must behave as the real filesystem does.
func TestFaultMatchesOS(t *testing.T) {
	want := opsScript(t, OS{}, t.TempDir())
	f := NewFault()
	compareScripts(t, "Fault", want, opsScript(t, f, t.TempDir()))
	// Every handle is closed and every file removed or synced: nothing
	// is held but the unsynced files the script left behind.
	if st := f.Stats(); st.Files != 0 {
		t.Errorf("%d files still tracked after the script: %+v", st.Files, st)
	}
}

// TestFaultReadYourWrites: Write, WriteAt, Truncate and O_APPEND are seen
// by reads, Size and Stat, through every handle, but reach the OS file only
// at Sync.
func TestFaultReadYourWrites(t *testing.T) {
	f := NewFault()
	name := filepath.Join(t.TempDir(), "a")
	w := mustOpen(t, f, name, os.O_RDWR|os.O_CREATE)
	defer w.Close()
	r := mustOpen(t, f, name, os.O_RDONLY)
	defer r.Close()
	a := mustOpen(t, f, name, os.O_WRONLY|os.O_APPEND)
	defer a.Close()

	step := func(what, want, disk string) {
		t.Helper()
		for _, h := range []File{w, r} {
			if got := readFull(t, h); got != want {
				t.Fatalf("%s: read %q, want %q", what, got, want)
			}
		}
		if n, _ := a.Size(); n != int64(len(want)) {
			t.Fatalf("%s: size %d through the append handle, want %d", what, n, len(want))
		}
		fi, err := f.Stat(name)
		if err != nil || fi.Size() != int64(len(want)) {
			t.Fatalf("%s: stat size %v %v, want %d", what, fi, err, len(want))
		}
		if got := osContents(t, name); got != disk {
			t.Fatalf("%s: OS file %q, want %q", what, got, disk)
		}
	}
	must := func(_ int, err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(w.Write([]byte("hello")))
	step("write", "hello", "")
	must(w.WriteAt([]byte("world"), 8))
	step("write past the end", "hello\x00\x00\x00world", "")
	must(a.Write([]byte("!")))
	step("append", "hello\x00\x00\x00world!", "")
	must(w.WriteAt([]byte("ZZZZ"), 3))
	step("overwrite joining extents", "helZZZZ\x00world!", "")
	if err := w.Sync(); err != nil {
		t.Fatal(err)
	}
	step("sync", "helZZZZ\x00world!", "helZZZZ\x00world!")

	if err := w.Truncate(4); err != nil {
		t.Fatal(err)
	}
	step("truncate", "helZ", "helZZZZ\x00world!")
	if err := w.Truncate(6); err != nil {
		t.Fatal(err)
	}
	step("grow after truncate reads zeros", "helZ\x00\x00", "helZZZZ\x00world!")
	must(a.Write([]byte("++")))
	step("append after truncate", "helZ\x00\x00++", "helZZZZ\x00world!")
	must(w.WriteAt([]byte("x"), 1))
	step("overwrite synced byte", "hxlZ\x00\x00++", "helZZZZ\x00world!")
	if err := r.Sync(); err != nil { // any handle syncs the file
		t.Fatal(err)
	}
	step("sync through a read-only handle", "hxlZ\x00\x00++", "hxlZ\x00\x00++")

	// O_TRUNC is pending too.
	tr := mustOpen(t, f, name, os.O_RDWR|os.O_TRUNC)
	step("open O_TRUNC", "", "hxlZ\x00\x00++")
	must(tr.Write([]byte("new")))
	step("write after O_TRUNC", "new", "hxlZ\x00\x00++")
	if err := tr.Sync(); err != nil {
		t.Fatal(err)
	}
	step("sync after O_TRUNC", "new", "new")
	tr.Close()
	if st := f.Stats(); st.PendingBytes != 0 || st.DirtyFiles != 0 || st.Syncs != 3 {
		t.Fatalf("stats after syncing everything: %+v", st)
	}
}

// TestFaultCrash: after a crash, the OS files hold exactly what was synced.
func TestFaultCrash(t *testing.T) {
	dir := t.TempDir()
	f := NewFault()
	p := func(n string) string { return filepath.Join(dir, n) }

	synced := mustOpen(t, f, p("synced"), os.O_RDWR|os.O_CREATE)
	synced.Write([]byte("durable"))
	if err := synced.Sync(); err != nil {
		t.Fatal(err)
	}
	synced.WriteAt([]byte("XX"), 0)
	synced.Write([]byte(" and not"))
	synced.Truncate(3)

	never := mustOpen(t, f, p("never"), os.O_RDWR|os.O_CREATE|os.O_APPEND)
	never.Write([]byte("gone"))

	closed := mustOpen(t, f, p("closed"), os.O_RDWR|os.O_CREATE)
	closed.Write([]byte("closed unsynced"))
	closed.Close()
	if got := readFull(t, mustOpen(t, f, p("closed"), os.O_RDONLY)); got != "closed unsynced" {
		t.Fatalf("reopened unsynced file reads %q", got)
	}

	stalled := make(chan error, 1)
	f.Stall()
	go func() { stalled <- never.Sync() }()
	waitFor(t, func() bool { return f.Stats().Waiting == 1 })

	f.Crash()
	if err := <-stalled; !errors.Is(err, ErrCrashed) {
		t.Fatalf("stalled sync released by the crash: %v", err)
	}
	for name, want := range map[string]string{"synced": "durable", "never": "", "closed": ""} {
		if got := osContents(t, p(name)); got != want {
			t.Errorf("%s after crash: %q, want %q", name, got, want)
		}
	}
	if _, err := synced.Write([]byte("x")); !errors.Is(err, ErrCrashed) {
		t.Errorf("write through a handle from before the crash: %v", err)
	}
	if _, err := synced.ReadAt(make([]byte, 1), 0); !errors.Is(err, ErrCrashed) {
		t.Errorf("read through a handle from before the crash: %v", err)
	}
	if err := synced.Close(); !errors.Is(err, ErrCrashed) {
		t.Errorf("close of a handle from before the crash: %v", err)
	}
	never.Close()
	if st := f.Stats(); st.Files != 0 || st.Generation != 1 {
		t.Errorf("stats after the crash: %+v", st)
	}
	f.Resume()
	// The same Fault serves the files again.
	h := mustOpen(t, f, p("synced"), os.O_RDWR)
	defer h.Close()
	if got := readFull(t, h); got != "durable" {
		t.Errorf("reopened after the crash: %q", got)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("timed out")
		}
		time.Sleep(time.Millisecond)
	}
}

// TestFaultSIGKILL: a process killed with SIGKILL loses exactly its
// unsynced data, though the page cache survives it.
func TestFaultSIGKILL(t *testing.T) {
	if name := os.Getenv("SLUICE_FAULT_HELPER"); name != "" {
		faultHelper(name)
		return
	}
	name := filepath.Join(t.TempDir(), "f")
	cmd := exec.Command(os.Args[0], "-test.run=^TestFaultSIGKILL$")
	cmd.Env = append(os.Environ(), "SLUICE_FAULT_HELPER="+name)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || strings.TrimSpace(line) != "ready" {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("helper said %q: %v", line, err)
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	if got := osContents(t, name); got != "synced" {
		t.Fatalf("after SIGKILL the file holds %q, want %q", got, "synced")
	}
}

func faultHelper(name string) {
	f := NewFault()
	h, err := f.OpenFile(name, os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		panic(err)
	}
	h.Write([]byte("synced"))
	if err := h.Sync(); err != nil {
		panic(err)
	}
	h.Write([]byte(" but not this"))
	if got := make([]byte, 19); func() bool { n, _ := h.ReadAt(got, 0); return n != 19 }() {
		panic("unsynced data not readable")
	}
	fmt.Println("ready")
	time.Sleep(time.Minute)
	os.Exit(1)
}

// TestFaultModel applies random writes, appends, truncations, syncs and
// crashes to one file and compares reads, Size and the OS file with a
// plain byte-slice model.
func TestFaultModel(t *testing.T) {
	for seed := uint64(1); seed <= 40; seed++ {
		r := rand.New(rand.NewPCG(seed, 0))
		dir := t.TempDir()
		name := filepath.Join(dir, "f")
		f := NewFault()
		w := mustOpen(t, f, name, os.O_RDWR|os.O_CREATE)
		a := mustOpen(t, f, name, os.O_WRONLY|os.O_APPEND)
		var cur, durable []byte
		for op := 0; op < 300; op++ {
			switch k := r.IntN(20); {
			case k < 8:
				off := r.Int64N(int64(len(cur)) + 64)
				p := make([]byte, 1+r.IntN(48))
				for i := range p {
					p[i] = byte('a' + r.IntN(26))
				}
				var err error
				if r.IntN(2) == 0 {
					_, err = w.WriteAt(p, off)
				} else {
					_, err = WritevAt(w, [][]byte{p[:len(p)/2], p[len(p)/2:]}, off)
				}
				if err != nil {
					t.Fatal(err)
				}
				if end := off + int64(len(p)); end > int64(len(cur)) {
					cur = append(cur, make([]byte, end-int64(len(cur)))...)
				}
				copy(cur[off:], p)
			case k < 12:
				p := bytes.Repeat([]byte{byte('A' + r.IntN(26))}, 1+r.IntN(32))
				if _, err := a.Write(p); err != nil {
					t.Fatal(err)
				}
				cur = append(cur, p...)
			case k < 15:
				size := r.Int64N(int64(len(cur)) + 32)
				if err := w.Truncate(size); err != nil {
					t.Fatal(err)
				}
				if size <= int64(len(cur)) {
					cur = cur[:size]
				} else {
					cur = append(cur, make([]byte, size-int64(len(cur)))...)
				}
			case k < 19:
				if err := w.Sync(); err != nil {
					t.Fatal(err)
				}
				durable = bytes.Clone(cur)
				if got := osContents(t, name); got != string(durable) {
					t.Fatalf("seed %d op %d: OS file after sync differs from the model", seed, op)
				}
			default:
				f.Crash()
				w.Close()
				a.Close()
				if got := osContents(t, name); got != string(durable) {
					t.Fatalf("seed %d op %d: OS file after crash differs from what was synced", seed, op)
				}
				cur = bytes.Clone(durable)
				w = mustOpen(t, f, name, os.O_RDWR)
				a = mustOpen(t, f, name, os.O_WRONLY|os.O_APPEND)
			}
			if got := readFull(t, w); got != string(cur) {
				t.Fatalf("seed %d op %d: read %q, model %q", seed, op, got, cur)
			}
			// A read at a random offset and length, across the end.
			off := r.Int64N(int64(len(cur)) + 8)
			b := bytes.Repeat([]byte{0xee}, r.IntN(40)) // a used buffer
			n, err := w.ReadAt(b, off)
			want := max(0, min(int64(len(b)), int64(len(cur))-off))
			if int64(n) != want || (n < len(b)) != errors.Is(err, io.EOF) || (err != nil && !errors.Is(err, io.EOF)) {
				t.Fatalf("seed %d op %d: ReadAt(%d@%d) = %d, %v; want %d", seed, op, len(b), off, n, err, want)
			}
			if n > 0 && !bytes.Equal(b[:n], cur[off:off+int64(n)]) {
				t.Fatalf("seed %d op %d: ReadAt(%d@%d) = %q, model %q", seed, op, len(b), off, b[:n], cur[off:off+int64(n)])
			}
		}
		w.Close()
		a.Close()
	}
}

// TestFaultStall: a stalled disk blocks syncs (and, with StallWrites,
// writes) until Resume; reads go on.
func TestFaultStall(t *testing.T) {
	dir := t.TempDir()
	f := NewFault()
	h := mustOpen(t, f, filepath.Join(dir, "f"), os.O_RDWR|os.O_CREATE)
	defer h.Close()
	h.Write([]byte("abc"))

	f.Stall()
	done := make(chan error, 2)
	go func() { done <- h.Sync() }()
	go func() { done <- f.SyncDir(dir) }()
	waitFor(t, func() bool { return f.Stats().Waiting == 2 })
	if _, err := h.Write([]byte("def")); err != nil { // writes go on
		t.Fatal(err)
	}
	if got := readFull(t, h); got != "abcdef" {
		t.Fatalf("read while stalled: %q", got)
	}
	select {
	case err := <-done:
		t.Fatalf("a sync returned %v while stalled", err)
	case <-time.After(50 * time.Millisecond):
	}
	f.Resume()
	for range 2 {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	if got := osContents(t, filepath.Join(dir, "f")); got != "abcdef" {
		t.Fatalf("OS file after resume: %q", got)
	}

	f.StallWrites()
	go func() { _, err := h.Write([]byte("g")); done <- err }()
	go func() { done <- h.Truncate(1) }()
	waitFor(t, func() bool { return f.Stats().Waiting == 2 })
	if st := f.Stats(); !st.Stalled || !st.StallWrites {
		t.Fatalf("stats while stalled: %+v", st)
	}
	f.Resume()
	for range 2 {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	if st := f.Stats(); st.Stalled || st.StallWrites || st.Waiting != 0 {
		t.Fatalf("stats after resume: %+v", st)
	}
}

// TestFaultFail: FailSyncs fails syncs with EIO and drops the file's
// unsynced data; FailWrites fails writes with EIO, changing nothing; Heal
// ends both.
func TestFaultFail(t *testing.T) {
	dir := t.TempDir()
	name := filepath.Join(dir, "f")
	f := NewFault()
	h := mustOpen(t, f, name, os.O_RDWR|os.O_CREATE)
	defer h.Close()
	h.Write([]byte("kept"))
	if err := h.Sync(); err != nil {
		t.Fatal(err)
	}
	h.Write([]byte(" lost"))

	f.FailSyncs()
	if err := h.Sync(); !errors.Is(err, syscall.EIO) {
		t.Fatalf("sync: %v, want EIO", err)
	}
	if err := f.SyncDir(dir); !errors.Is(err, syscall.EIO) {
		t.Fatalf("syncdir: %v, want EIO", err)
	}
	// The dirty data is gone: reads show the disk.
	if got := readFull(t, h); got != "kept" {
		t.Fatalf("read after the failed sync: %q", got)
	}
	h.Write([]byte(" again"))
	if err := h.Sync(); !errors.Is(err, syscall.EIO) {
		t.Fatalf("second sync: %v, want EIO", err)
	}
	if st := f.Stats(); st.FailedSyncs != 3 || !st.FailSyncs {
		t.Fatalf("stats: %+v", st)
	}

	f.FailWrites()
	if _, err := h.Write([]byte("x")); !errors.Is(err, syscall.EIO) {
		t.Fatalf("write: %v, want EIO", err)
	}
	if _, err := h.WriteAt([]byte("x"), 0); !errors.Is(err, syscall.EIO) {
		t.Fatalf("writeat: %v, want EIO", err)
	}
	if err := h.Truncate(0); !errors.Is(err, syscall.EIO) {
		t.Fatalf("truncate: %v, want EIO", err)
	}
	if got := readFull(t, h); got != "kept" {
		t.Fatalf("failed writes changed the file: %q", got)
	}

	f.Heal()
	if _, err := h.WriteAt([]byte(" healed"), 4); err != nil {
		t.Fatal(err)
	}
	if err := h.Sync(); err != nil {
		t.Fatal(err)
	}
	if got := osContents(t, name); got != "kept healed" {
		t.Fatalf("OS file after heal: %q", got)
	}
}

// TestFaultRemoveAndRename: unsynced data follows the file across a
// rename and is forgotten with its last name and handle.
func TestFaultRemoveAndRename(t *testing.T) {
	dir := t.TempDir()
	p := func(n string) string { return filepath.Join(dir, n) }
	f := NewFault()
	h := mustOpen(t, f, p("a"), os.O_RDWR|os.O_CREATE)
	h.Write([]byte("pending"))
	h.Close()
	if err := f.Rename(p("a"), p("b")); err != nil {
		t.Fatal(err)
	}
	fi, err := f.Stat(p("b"))
	if err != nil || fi.Size() != 7 {
		t.Fatalf("stat after rename: %v %v", fi, err)
	}
	h = mustOpen(t, f, p("b"), os.O_RDWR)
	if got := readFull(t, h); got != "pending" {
		t.Fatalf("renamed file reads %q", got)
	}
	h.Close()
	if n := f.Stats().Files; n != 1 {
		t.Fatalf("%d files tracked, want the unsynced one", n)
	}
	if err := f.Remove(p("b")); err != nil {
		t.Fatal(err)
	}
	if st := f.Stats(); st.Files != 0 || st.PendingBytes != 0 {
		t.Fatalf("removed file still tracked: %+v", st)
	}
	// A rename over a file with unsynced data forgets that data.
	x := mustOpen(t, f, p("x"), os.O_RDWR|os.O_CREATE)
	x.Write([]byte("xx"))
	x.Close()
	create(t, f, p("y"), "yy", true)
	if err := f.Rename(p("y"), p("x")); err != nil {
		t.Fatal(err)
	}
	if st := f.Stats(); st.Files != 0 {
		t.Fatalf("replaced file still tracked: %+v", st)
	}
	if err := f.Remove(p("missing")); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("remove missing: %v", err)
	}
}

// TestFaultConcurrent runs an appender, readers, a syncer and a fault
// injector at once; run it with -race.
func TestFaultConcurrent(t *testing.T) {
	dir := t.TempDir()
	name := filepath.Join(dir, "log")
	f := NewFault()
	w := mustOpen(t, f, name, os.O_RDWR|os.O_CREATE|os.O_APPEND)
	defer w.Close()
	const recSize = 16
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 3 {
		r := mustOpen(t, f, name, os.O_RDONLY)
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer r.Close()
			p := make([]byte, recSize)
			for {
				select {
				case <-stop:
					return
				default:
				}
				size, err := r.Size()
				if err != nil {
					t.Error(err)
					return
				}
				if size < recSize {
					continue
				}
				// Records are whole once Size covers them; check the last.
				off := size/recSize*recSize - recSize
				if _, err := r.ReadAt(p, off); err != nil {
					t.Error(err)
					return
				}
				if want := fmt.Sprintf("%015d\n", off/recSize); string(p) != want {
					t.Errorf("record at %d: %q, want %q", off, p, want)
					return
				}
			}
		}()
	}
	wg.Add(2)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			if err := w.Sync(); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			case <-time.After(time.Millisecond):
			}
			f.Stall()
			_ = f.Stats()
			f.Resume()
		}
	}()
	for i := range 3000 {
		if _, err := w.Write([]byte(fmt.Sprintf("%015d\n", i))); err != nil {
			t.Fatal(err)
		}
	}
	close(stop)
	wg.Wait()
	if err := w.Sync(); err != nil {
		t.Fatal(err)
	}
	if got := osContents(t, name); len(got) != 3000*recSize {
		t.Fatalf("OS file holds %d bytes, want %d", len(got), 3000*recSize)
	}
}
