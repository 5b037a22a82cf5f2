package log

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/sluicemq/sluice/log/vfs"
)

// The log on vfs.Fault, the real filesystem that keeps unsynced data in
// process memory: what the chaos harness's power-loss faults run.

// TestFaultFSPowerLoss: concurrent appenders roll small segments on a real
// directory until a crash drops every unsynced write; the log reopened on
// the OS (a new process) holds every acknowledged batch at its offset.
// Several crashes per seed, on the same directory.
func TestFaultFSPowerLoss(t *testing.T) {
	iters := 6
	if testing.Short() {
		iters = 2
	}
	for seed := uint64(1); seed <= uint64(iters); seed++ {
		r := rand.New(rand.NewPCG(seed, 1))
		dir := t.TempDir()
		acked := map[int64][]byte{}
		for cycle := 0; cycle < 4; cycle++ {
			fsys := vfs.NewFault()
			l := mustOpen(t, dir, Options{FS: fsys, SegmentBytes: 4096})
			var mu sync.Mutex
			var wg sync.WaitGroup
			// The power is lost: no new appends. (In this process, appends
			// in flight may still roll onto new segments and succeed.)
			var off atomic.Bool
			for w := range 3 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := 0; !off.Load(); i++ {
						b := testBatch(1+i%3, int64(w*100000+i), 50)
						off, err := l.Append(b)
						if err != nil {
							return // the crash
						}
						mu.Lock()
						acked[off] = b
						mu.Unlock()
					}
				}()
			}
			time.Sleep(time.Duration(5+r.IntN(40)) * time.Millisecond)
			off.Store(true)
			fsys.Crash()
			wg.Wait()
			l.Close()

			// A new process: the real filesystem, without the overlay.
			l = mustOpen(t, dir, Options{SegmentBytes: 4096})
			if err := l.Verify(); err != nil {
				t.Fatalf("seed %d cycle %d: verify: %v", seed, cycle, err)
			}
			got := map[int64][]byte{}
			for _, b := range readAllBatches(t, l, l.StartOffset()) {
				got[int64(binary.BigEndian.Uint64(b))] = b
			}
			for off, b := range acked {
				if !bytes.Equal(got[off], b) {
					t.Fatalf("seed %d cycle %d: acknowledged batch at offset %d lost or changed (log ends at %d)", seed, cycle, off, l.EndOffset())
				}
			}
			// Unacknowledged batches that did reach the disk are now part
			// of the log: later cycles must keep them too.
			for off, b := range got {
				acked[off] = b
			}
			l.Close()
		}
	}
}

// TestFaultFSFailedSync: an fsync error fails the log closed for good
// (fsyncgate: no retry); reopened, the log holds what was acknowledged.
func TestFaultFSFailedSync(t *testing.T) {
	dir := t.TempDir()
	fsys := vfs.NewFault()
	l := mustOpen(t, dir, Options{FS: fsys, SegmentBytes: 4096})
	var acked [][]byte
	for i := range 50 {
		b := testBatch(2, int64(i), 50)
		mustAppend(t, l, b)
		acked = append(acked, b)
	}
	fsys.FailSyncs()
	if _, err := l.Append(testBatch(1, 99, 50)); !errors.Is(err, syscall.EIO) {
		t.Fatalf("append with failing fsync: %v, want EIO", err)
	}
	fsys.Heal()
	if _, err := l.Append(testBatch(1, 100, 50)); !errors.Is(err, ErrClosed) || !errors.Is(err, syscall.EIO) {
		t.Fatalf("append after the disk healed: %v, want the log failed closed", err)
	}
	l.Close()
	l = mustOpen(t, dir, Options{FS: vfs.NewFault(), SegmentBytes: 4096})
	defer l.Close()
	got := readAllBatches(t, l, 0)
	if len(got) != len(acked) {
		t.Fatalf("reopened log holds %d batches, want the %d acknowledged", len(got), len(acked))
	}
	for i := range acked {
		if !bytes.Equal(got[i], acked[i]) {
			t.Fatalf("batch %d differs", i)
		}
	}
	mustAppend(t, l, testBatch(1, 101, 50))
}

// TestFaultFSStall: a stalled disk holds appends until it resumes.
func TestFaultFSStall(t *testing.T) {
	fsys := vfs.NewFault()
	l := mustOpen(t, t.TempDir(), Options{FS: fsys})
	defer l.Close()
	mustAppend(t, l, testBatch(1, 0, 10))
	fsys.Stall()
	done := make(chan error, 1)
	go func() { _, err := l.Append(testBatch(1, 1, 10)); done <- err }()
	select {
	case err := <-done:
		t.Fatalf("append returned %v on a stalled disk", err)
	case <-time.After(100 * time.Millisecond):
	}
	if l.EndOffset() != 1 {
		t.Fatalf("end offset %d while stalled, want 1", l.EndOffset())
	}
	fsys.Resume()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if l.EndOffset() != 2 {
		t.Fatalf("end offset %d after resume, want 2", l.EndOffset())
	}
}
