package log

import (
	"bytes"
	"os"
	"sync"
	"testing"

	"github.com/sluicemq/sluice/log/vfs"
)

// dropFS records the page-cache drops the log asks for, and what each file
// had synced at the time.
type dropFS struct {
	vfs.FS
	mu    sync.Mutex
	drops []drop
}

type drop struct {
	name           string
	off, n, synced int64
}

type dropFile struct {
	vfs.File
	fs     *dropFS
	synced int64
}

func (d *dropFS) OpenFile(name string, flag int, perm os.FileMode) (vfs.File, error) {
	f, err := d.FS.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err
	}
	return &dropFile{File: f, fs: d}, nil
}

func (f *dropFile) Sync() error {
	size, err := f.Size()
	if err != nil {
		return err
	}
	if err := f.File.Sync(); err != nil {
		return err
	}
	f.synced = size
	return nil
}

func (f *dropFile) DropCache(off, n int64) error {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	f.fs.drops = append(f.fs.drops, drop{f.Name(), off, n, f.synced})
	return nil
}

// TestCacheWindowDropsOnlyOldSyncedBytes: with CacheWindow set, the log
// advises the kernel to drop the active segment's page cache from its start
// up to the window behind the synced end, page aligned, in steps of at least
// 1 MiB; never a byte that is unsynced or inside the window. Without it, it
// never does. Either way every record reads back.
func TestCacheWindowDropsOnlyOldSyncedBytes(t *testing.T) {
	const window = 2 << 20
	for _, cw := range []int64{window, 0} {
		m := vfs.NewMem()
		fs := &dropFS{FS: m}
		l := mustOpen(t, "/p", Options{FS: fs, CacheWindow: cw, SegmentBytes: 8 << 20})
		var want [][]byte
		for i := range 300 {
			b := testBatch(60, int64(i), 1000) // about 62 KB: several segments
			mustAppend(t, l, b)
			want = append(want, b)
		}
		got := readAllBatches(t, l, 0)
		if len(got) != len(want) {
			t.Fatalf("window %d: read %d batches, want %d", cw, len(got), len(want))
		}
		for i := range want {
			if !bytes.Equal(got[i], want[i]) {
				t.Fatalf("window %d: batch %d differs", cw, i)
			}
		}
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		if cw == 0 {
			if len(fs.drops) != 0 {
				t.Fatalf("no window, yet %d drops: %+v", len(fs.drops), fs.drops[0])
			}
			continue
		}
		next := map[string]int64{}
		for _, d := range fs.drops {
			if d.off != next[d.name] || d.off%4096 != 0 || d.n%4096 != 0 || d.n < 1<<20 {
				t.Fatalf("drop %+v: want page-aligned steps of >= 1 MiB from %d", d, next[d.name])
			}
			if d.off+d.n > d.synced-window {
				t.Fatalf("drop %+v reaches into the last %d synced bytes", d, window)
			}
			next[d.name] = d.off + d.n
		}
		// 300 x 62 KB over 8 MiB segments: three segments each dropped up to
		// within window + 1 MiB + a page of their end.
		if len(next) < 2 {
			t.Fatalf("drops in %d segments, want >= 2: %+v", len(next), fs.drops)
		}
		for name, end := range next {
			fi, err := m.Stat(name)
			if err != nil {
				t.Fatal(err)
			}
			if size := fi.Size(); end < size-window-(1<<20)-4096 {
				t.Errorf("%s: dropped up to %d of %d bytes", name, end, fi.Size())
			}
		}
	}
}
