package log

import (
	"bytes"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluicemq/sluice/log/vfs"
)

var (
	powerLossIters = flag.Int("powerloss.iters", 200, "iterations of TestPowerLoss")
	powerLossSeed  = flag.Uint64("powerloss.seed", 1, "first seed of TestPowerLoss; iteration i uses seed+i")
)

// --- power loss ---

// crashFS wraps a Mem and loses power just before its crashAt-th mutating
// call: that call and every later one fail with errPowerLost, so the log never
// touches the disk again, as if the machine had stopped. File handles opened
// before the crash fail by themselves (vfs.ErrCrashed).
type crashFS struct {
	m    *vfs.Mem
	opts vfs.CrashOptions
	// reorder, instead of opts, keeps a random subset of the 512-byte
	// sectors written past each file's synced end, zeroing the others: a
	// disk that persists the pages of one write out of order.
	reorder *rand.Rand
	mu      sync.Mutex
	ops     int
	crashAt int // 0: never
	dead    atomic.Bool
}

var errPowerLost = errors.New("power lost")

func newCrashFS(m *vfs.Mem, r *rand.Rand, crashAt int) *crashFS {
	c := &crashFS{
		m:       m,
		crashAt: crashAt,
		opts:    vfs.CrashOptions{Rand: rand.New(rand.NewPCG(r.Uint64(), r.Uint64())), TornWrites: true, Garbage: true},
	}
	if r.IntN(3) == 0 {
		c.reorder = rand.New(rand.NewPCG(r.Uint64(), r.Uint64()))
	}
	return c
}

func (c *crashFS) crash() {
	if c.reorder == nil {
		c.m.Crash(c.opts)
		return
	}
	before := map[string][]byte{}
	for _, p := range c.m.List() {
		before[p], _ = c.m.ReadFile(p)
	}
	c.m.Crash(vfs.CrashOptions{}) // keep only what was synced
	for _, p := range c.m.List() {
		synced, _ := c.m.ReadFile(p)
		cur := before[p]
		if len(cur) <= len(synced) || !bytes.Equal(cur[:len(synced)], synced) {
			continue
		}
		out := append([]byte(nil), synced...)
		kept := len(out)
		for off := len(synced); off < len(cur); off += 512 {
			sector := cur[off:min(off+512, len(cur))]
			switch c.reorder.IntN(4) {
			case 0, 1:
				out = append(out, sector...)
				kept = len(out)
			case 2:
				out = append(out, make([]byte, len(sector))...)
			default:
				g := make([]byte, len(sector))
				for i := range g {
					g[i] = byte(c.reorder.IntN(256))
				}
				out = append(out, g...)
			}
		}
		if c.reorder.IntN(2) == 0 {
			out = out[:kept] // the size reached the disk only as far as the last sector kept
		}
		if err := c.m.WriteFile(p, out, true); err != nil {
			panic(err)
		}
	}
}

func (c *crashFS) do(f func() error) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.dead.Load() {
		return errPowerLost
	}
	c.ops++
	if c.ops == c.crashAt {
		c.dead.Store(true)
		c.crash()
		return errPowerLost
	}
	return f()
}

// crashWithin moves the power loss to within the next n mutating calls.
func (c *crashFS) crashWithin(r *rand.Rand, n int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.crashAt = c.ops + 1 + r.IntN(n)
}

func (c *crashFS) OpenFile(name string, flag int, perm os.FileMode) (vfs.File, error) {
	var f vfs.File
	err := c.do(func() (err error) { f, err = c.m.OpenFile(name, flag, perm); return err })
	if err != nil {
		return nil, err
	}
	return &crashFile{File: f, c: c}, nil
}

func (c *crashFS) Remove(name string) error { return c.do(func() error { return c.m.Remove(name) }) }
func (c *crashFS) Rename(o, n string) error { return c.do(func() error { return c.m.Rename(o, n) }) }
func (c *crashFS) SyncDir(dir string) error { return c.do(func() error { return c.m.SyncDir(dir) }) }
func (c *crashFS) MkdirAll(dir string, perm os.FileMode) error {
	return c.do(func() error { return c.m.MkdirAll(dir, perm) })
}

func (c *crashFS) ReadDir(dir string) ([]string, error) {
	if c.dead.Load() {
		return nil, errPowerLost
	}
	return c.m.ReadDir(dir)
}

func (c *crashFS) Stat(name string) (os.FileInfo, error) {
	if c.dead.Load() {
		return nil, errPowerLost
	}
	return c.m.Stat(name)
}

type crashFile struct {
	vfs.File
	c *crashFS
}

func (f *crashFile) Write(p []byte) (n int, err error) {
	err = f.c.do(func() error { n, err = f.File.Write(p); return err })
	return n, err
}

func (f *crashFile) WriteAt(p []byte, off int64) (n int, err error) {
	err = f.c.do(func() error { n, err = f.File.WriteAt(p, off); return err })
	return n, err
}

func (f *crashFile) Sync() error { return f.c.do(f.File.Sync) }

func (f *crashFile) Truncate(size int64) error {
	return f.c.do(func() error { return f.File.Truncate(size) })
}

// plStats counts where the power went out and what recovery did.
type plStats struct {
	crashes      map[string]int // by what the log was doing
	tornTails    int            // opens that cut a torn tail
	removedFiles int            // opens that removed files
	acked        int
}

// plBatch is one batch submitted to the log, identified by its
// FirstTimestamp.
type plBatch struct {
	id        int64
	data      []byte // as submitted; bytes 0..8 are stamped by the log
	count     int64
	acked     bool // Append returned nil, or a clean reopen showed it
	off       int64
	index     uint64
	gone      bool // durably truncated, deleted or lost: must never reappear
	maybeGone bool // a truncation of it was cut short by the crash
}

type plModel struct {
	phase   atomic.Value // string: what the workload is doing
	mu      sync.Mutex
	batches map[int64]*plBatch
	start   int64
	// Bounds on the start offset after a crash, when a DeleteBefore or a
	// TruncateFrom was cut short.
	startLo, startHi int64
}

func batchID(b []byte) int64 { return int64(binary.BigEndian.Uint64(b[27:35])) }

func batchCount(b []byte) int64 { return int64(int32(binary.BigEndian.Uint32(b[23:27]))) + 1 }

// check compares a freshly opened log with the model and then makes what it
// found the model's truth (a clean open made it durable).
func (md *plModel) check(l *Log) error {
	md.mu.Lock()
	defer md.mu.Unlock()
	start, end := l.StartOffset(), l.EndOffset()
	if start < md.startLo || start > md.startHi {
		return fmt.Errorf("start offset %d, want within [%d, %d]", start, md.startLo, md.startHi)
	}
	// Kafka view: contiguous batches from the start to the end.
	present := map[int64]int64{} // id -> offset
	for from := start; from < end; {
		res, err := l.Read(from, 64<<10, -1)
		if err != nil {
			return fmt.Errorf("read at %d: %w", from, err)
		}
		if len(res.Batches) == 0 {
			return fmt.Errorf("read at %d returned nothing before the end %d", from, end)
		}
		for _, b := range res.Batches {
			base := int64(binary.BigEndian.Uint64(b[0:8]))
			if (from == start && (base > start || base+batchCount(b) <= start)) || (from != start && base != from) {
				return fmt.Errorf("inconsistent offsets: batch at %d where %d was expected", base, from)
			}
			id := batchID(b)
			if _, dup := present[id]; dup {
				return fmt.Errorf("duplicate: batch %d at offsets %d and %d", id, present[id], base)
			}
			present[id] = base
			from = base + batchCount(b)
		}
		if from != res.Next {
			return fmt.Errorf("read Next %d, batches end at %d", res.Next, from)
		}
	}
	// Raft view: contiguous indexes.
	first, last := l.FirstIndex(), l.LastIndex()
	indexOf := map[int64]uint64{}
	for i := first; i <= last && last > 0; i++ {
		e, err := l.Entry(i)
		if err != nil {
			return fmt.Errorf("entry %d of [%d, %d]: %w", i, first, last, err)
		}
		if !e.Batch || e.BaseOffset != int64(binary.BigEndian.Uint64(e.Data[0:8])) {
			return fmt.Errorf("entry %d is not the batch it should be", i)
		}
		id := batchID(e.Data)
		if _, dup := indexOf[id]; dup {
			return fmt.Errorf("duplicate: batch %d at indexes %d and %d", id, indexOf[id], i)
		}
		indexOf[id] = i
		b := md.batches[id]
		if b == nil {
			return fmt.Errorf("entry %d holds batch %d that was never appended", i, id)
		}
		if !bytes.Equal(e.Data[8:], b.data[8:]) {
			return fmt.Errorf("entry %d: batch %d bytes differ", i, id)
		}
		if off, ok := present[id]; ok && off != e.BaseOffset {
			return fmt.Errorf("batch %d at offset %d by Read, %d by Entry", id, off, e.BaseOffset)
		}
		if e.BaseOffset+batchCount(e.Data) > start {
			if _, ok := present[id]; !ok {
				return fmt.Errorf("entry %d (batch %d at %d) not returned by Read from %d", i, id, e.BaseOffset, start)
			}
		}
	}
	for id, off := range present {
		b := md.batches[id]
		switch {
		case b == nil:
			return fmt.Errorf("batch %d at offset %d was never appended", id, off)
		case b.gone:
			return fmt.Errorf("batch %d reappeared at offset %d after it was truncated, deleted or lost", id, off)
		case b.acked && (b.off != off || (b.index != 0 && b.index != indexOf[id])):
			// Also for a batch whose truncation was cut short: what is left
			// of an interrupted TruncateFrom is a prefix of the old log.
			return fmt.Errorf("inconsistent offsets: acknowledged batch %d at offset %d index %d, now at %d index %d", id, b.off, b.index, off, indexOf[id])
		}
		if _, ok := indexOf[id]; !ok {
			return fmt.Errorf("batch %d read at %d has no entry", id, off)
		}
	}
	for id, b := range md.batches {
		if b.acked && !b.gone && !b.maybeGone && b.off+b.count > start {
			if _, ok := present[id]; !ok {
				return fmt.Errorf("lost write: acknowledged batch %d at offset %d index %d is gone (log [%d, %d) indexes [%d, %d])",
					id, b.off, b.index, start, end, first, last)
			}
		}
	}
	if err := l.Verify(); err != nil {
		return fmt.Errorf("verify: %w", err)
	}
	// What a clean open shows is durable: it is the new truth.
	for id, b := range md.batches {
		if off, ok := present[id]; ok {
			b.acked, b.maybeGone, b.off, b.index = true, false, off, indexOf[id]
		} else if idx, ok := indexOf[id]; ok { // below the start offset, still in a segment
			b.acked, b.maybeGone, b.index = true, false, idx
		} else {
			b.gone = true
		}
	}
	md.start, md.startLo, md.startHi = start, start, start
	return nil
}

// workload appends from 4 goroutines, with an occasional TruncateFrom or
// DeleteBefore between rounds, until the power goes.
func (md *plModel) workload(l *Log, cfs *crashFS, r *rand.Rand, nextID *atomic.Int64) error {
	for !cfs.dead.Load() {
		switch x := r.IntN(100); {
		case x < 86:
			md.phase.Store("append")
			var wg sync.WaitGroup
			errc := make(chan error, 4)
			for g := 0; g < 4; g++ {
				gr := rand.New(rand.NewPCG(r.Uint64(), r.Uint64()))
				wg.Add(1)
				go func() {
					defer wg.Done()
					for k := 1 + gr.IntN(6); k > 0; k-- {
						n := 1
						if gr.IntN(10) == 0 {
							n = 2 + gr.IntN(2)
						}
						entries := make([]Entry, n)
						subs := make([]*plBatch, n)
						for i := range entries {
							id := nextID.Add(1)
							size := 5 + gr.IntN(150)
							if gr.IntN(50) == 0 {
								size = 17 << 10 // written past the buffer
							}
							data := testBatch(1+gr.IntN(4), id, size)
							subs[i] = &plBatch{id: id, data: append([]byte(nil), data...), count: batchCount(data)}
							entries[i] = Entry{Batch: true, Data: data}
						}
						md.mu.Lock()
						for _, b := range subs {
							md.batches[b.id] = b
						}
						md.mu.Unlock()
						// Acknowledged means: Append, AppendBatches or
						// AppendAsync's Wait returned nil.
						var err error
						switch api := gr.IntN(3); {
						case n > 1 || api == 0:
							err = l.AppendBatches(entries)
						case api == 1:
							entries[0].BaseOffset, err = l.Append(entries[0].Data)
						default:
							var p *Pending
							if p, err = l.AppendAsync(entries[0].Data); err == nil {
								entries[0].BaseOffset, err = p.Wait()
							}
						}
						if err != nil {
							if !cfs.dead.Load() {
								errc <- fmt.Errorf("append before the crash: %w", err)
							}
							return
						}
						md.mu.Lock()
						for i, b := range subs {
							// Append and AppendAsync do not say the index (0: unknown).
							b.acked, b.off, b.index = true, entries[i].BaseOffset, entries[i].Index
						}
						md.mu.Unlock()
					}
				}()
			}
			wg.Wait()
			close(errc)
			if err := <-errc; err != nil {
				return err
			}
		case x < 93:
			md.phase.Store("TruncateFrom")
			first, last := l.FirstIndex(), l.LastIndex()
			if last == 0 {
				continue
			}
			i := first
			if d := uint64(r.IntN(25)); last-first > d {
				i = last - d
			}
			// Every entry is acknowledged now (no append is in flight):
			// learn the indexes Append and AppendAsync did not say.
			md.mu.Lock()
			byOffset := map[int64]*plBatch{}
			for _, b := range md.batches {
				if b.acked && !b.gone {
					byOffset[b.off] = b
				}
			}
			md.mu.Unlock()
			for j := first; j <= last; j++ {
				e, err := l.Entry(j)
				if err != nil {
					return fmt.Errorf("entry %d before truncating: %w", j, err)
				}
				b := byOffset[e.BaseOffset]
				if b == nil || b.id != batchID(e.Data) || (b.index != 0 && b.index != j) {
					return fmt.Errorf("entry %d at offset %d is not the acknowledged batch", j, e.BaseOffset)
				}
				md.mu.Lock()
				b.index = j
				md.mu.Unlock()
			}
			cutAt := int64(-1)
			md.mu.Lock()
			for _, b := range md.batches {
				if b.acked && !b.gone && b.index == i {
					cutAt = b.off
				}
			}
			md.mu.Unlock()
			if cutAt < 0 {
				return fmt.Errorf("no acknowledged batch at index %d in [%d, %d]", i, first, last)
			}
			if r.IntN(4) == 0 {
				cfs.crashWithin(r, 8) // lose power in the middle of it
			}
			err := l.TruncateFrom(i)
			md.mu.Lock()
			for _, b := range md.batches {
				if b.acked && !b.gone && b.index >= i {
					if err == nil {
						b.gone = true
					} else {
						b.maybeGone = true
					}
				}
			}
			if err == nil {
				md.start = min(md.start, cutAt)
				md.startLo, md.startHi = md.start, md.start
			} else {
				md.startLo = min(md.start, cutAt)
			}
			md.mu.Unlock()
			if err != nil && !cfs.dead.Load() {
				return fmt.Errorf("truncate from %d before the crash: %w", i, err)
			}
			if err == nil && (l.LastIndex() != i-1 && !(i == first && l.LastIndex() == 0)) {
				return fmt.Errorf("truncate from %d left last index %d", i, l.LastIndex())
			}
		default:
			md.phase.Store("DeleteBefore")
			start, end := l.StartOffset(), l.EndOffset()
			o := start + r.Int64N(end-start+1)
			if r.IntN(4) == 0 {
				cfs.crashWithin(r, 8)
			}
			err := l.DeleteBefore(o)
			md.mu.Lock()
			if err == nil {
				md.start = max(md.start, o)
				md.startLo, md.startHi = md.start, md.start
			} else {
				md.startHi = max(md.start, o)
			}
			md.mu.Unlock()
			if err != nil && !cfs.dead.Load() {
				return fmt.Errorf("delete before %d before the crash: %w", o, err)
			}
		}
	}
	return nil
}

func runPowerLoss(seed uint64, st *plStats) error {
	const dir = "/pl"
	r := rand.New(rand.NewPCG(seed, 0x9e3779b97f4a7c15))
	m := vfs.NewMem()
	base := Options{SegmentBytes: []int64{1024, 2048, 4096, 32 << 10}[r.IntN(4)], IndexIntervalBytes: 128 << r.IntN(4)}
	with := func(fs vfs.FS) Options { o := base; o.FS = fs; return o }
	md := &plModel{batches: map[int64]*plBatch{}}
	var nextID atomic.Int64
	cycles := 2 + r.IntN(3)
	for c := 0; c <= cycles; c++ {
		if c > 0 && r.IntN(4) == 0 {
			// Lose power again during recovery.
			cfs := newCrashFS(m, r, 1+r.IntN(8))
			l, err := Open(dir, with(cfs))
			if err == nil {
				l.Close()
			} else if !cfs.dead.Load() {
				return fmt.Errorf("cycle %d: open: %w", c, err)
			}
			if cfs.dead.Load() {
				st.crashes["recovery"]++
			}
		}
		l, err := Open(dir, with(m))
		if err != nil {
			return fmt.Errorf("cycle %d: open after power loss: %w", c, err)
		}
		if rec := l.Recovery(); rec.TruncatedBytes > 0 {
			st.tornTails++
		} else if len(rec.RemovedFiles) > 0 {
			st.removedFiles++
		}
		err = md.check(l)
		l.Close()
		if err != nil {
			return fmt.Errorf("cycle %d (segment bytes %d): %w", c, base.SegmentBytes, err)
		}
		if c == cycles {
			for _, b := range md.batches {
				if b.acked && !b.gone {
					st.acked++
				}
			}
			return nil
		}
		cfs := newCrashFS(m, r, 1+r.IntN(600))
		l, err = Open(dir, with(cfs))
		if err != nil {
			if cfs.dead.Load() {
				st.crashes["open"]++
				continue
			}
			return fmt.Errorf("cycle %d: open: %w", c, err)
		}
		err = md.workload(l, cfs, r, &nextID)
		l.Close()
		if cfs.dead.Load() {
			st.crashes[md.phase.Load().(string)]++
		}
		if err != nil {
			return fmt.Errorf("cycle %d: %w", c, err)
		}
	}
	return nil
}

// TestPowerLoss: concurrent appenders, rolls, truncations and deletions, and a
// power loss at a random filesystem call (torn writes, garbage in the last
// page), then recovery. Every acknowledged batch must be present exactly once
// at its offset and index; nothing truncated or lost may come back; offsets
// and indexes are contiguous; Verify is clean. Several crashes per seed,
// some during recovery itself.
func TestPowerLoss(t *testing.T) {
	iters := *powerLossIters
	if testing.Short() {
		iters = min(iters, 40)
	}
	st := &plStats{crashes: map[string]int{}}
	for i := 0; i < iters; i++ {
		seed := *powerLossSeed + uint64(i)
		if err := runPowerLoss(seed, st); err != nil {
			t.Fatalf("seed %d (rerun with -run 'TestPowerLoss$' -powerloss.seed=%d -powerloss.iters=1): %v", seed, seed, err)
		}
	}
	t.Logf("%d seeds: power lost during %v; recovery cut a torn tail %d times, removed files %d times; %d batches held at the end",
		iters, st.crashes, st.tornTails, st.removedFiles, st.acked)
}

// --- fsync failure (fsyncgate) and other write faults ---

var errInjected = errors.New("injected disk fault")

// fillToRoll appends batches until the next one of size n would roll the
// active segment, and returns the acknowledged batches.
func fillToRoll(t *testing.T, l *Log, segBytes int64, next []byte) [][]byte {
	t.Helper()
	var acked [][]byte
	for {
		if segs := l.Segments(); len(segs) > 1 {
			if a := segs[len(segs)-1]; a.Size > segmentHeaderSize && a.Size+frameHeaderSize+int64(len(next)) > segBytes {
				return acked
			}
		}
		b := testBatch(2, int64(len(acked)), 60)
		mustAppend(t, l, b)
		acked = append(acked, b)
	}
}

func TestWriteFaultsFailClosed(t *testing.T) {
	type arm func(m *vfs.Mem)
	tests := []struct {
		name  string
		roll  bool // arm when the next append rolls the segment
		arm   arm
		cause error
	}{
		{"fsync of the group", false, func(m *vfs.Mem) { m.FailSync(errInjected, 0) }, errInjected},
		{"write of the group", false, func(m *vfs.Mem) { m.FailWrite(errInjected, 0) }, errInjected},
		{"short write of the group", false, func(m *vfs.Mem) { m.ShortWrite(0, 30) }, io.ErrShortWrite},
		{"roll: fsync of the index", true, func(m *vfs.Mem) { m.FailSync(errInjected, 0) }, errInjected},
		{"roll: fsync of the new segment", true, func(m *vfs.Mem) { m.FailSync(errInjected, 1) }, errInjected},
		{"roll: fsync of the first group in the new segment", true, func(m *vfs.Mem) { m.FailSync(errInjected, 2) }, errInjected},
		{"roll: write of the index", true, func(m *vfs.Mem) { m.FailWrite(errInjected, 0) }, errInjected},
		{"roll: write of the new segment header", true, func(m *vfs.Mem) { m.FailWrite(errInjected, 1) }, errInjected},
		{"roll: short write of the new segment header", true, func(m *vfs.Mem) { m.ShortWrite(1, 7) }, io.ErrShortWrite},
		{"roll: dir fsync after the index rename", true, func(m *vfs.Mem) { m.FailSyncDir(errInjected, 0) }, errInjected},
		{"roll: dir fsync after creating the segment", true, func(m *vfs.Mem) { m.FailSyncDir(errInjected, 1) }, errInjected},
	}
	for _, tc := range tests {
		for _, crash := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/crash=%v", tc.name, crash), func(t *testing.T) {
				o, m := memOpts()
				o.SegmentBytes = 2048
				l := mustOpen(t, "/d", o)
				failing := testBatch(3, 99, 70)
				var acked [][]byte
				if tc.roll {
					acked = fillToRoll(t, l, o.SegmentBytes, failing)
				} else {
					for i := 0; i < 20; i++ {
						b := testBatch(1+i%3, int64(i), 50)
						mustAppend(t, l, b)
						acked = append(acked, b)
					}
				}
				segsBefore := len(l.Segments())
				tc.arm(m)
				_, err := l.Append(failing)
				if !errors.Is(err, ErrClosed) || !errors.Is(err, tc.cause) {
					t.Fatalf("append under the fault: %v, want ErrClosed wrapping %v", err, tc.cause)
				}
				syncs, dirSyncs := m.SyncCount(), m.SyncDirCount()
				m.ClearFaults()
				// Failed closed for good: nothing is retried, nothing more written.
				if _, err := l.Append(testBatch(1, 0, 1)); !errors.Is(err, ErrClosed) || !errors.Is(err, tc.cause) {
					t.Fatalf("append after the failure: %v", err)
				}
				if err := l.AppendBatches([]Entry{{Batch: true, Data: testBatch(1, 0, 1)}}); !errors.Is(err, ErrClosed) {
					t.Fatalf("AppendBatches after the failure: %v", err)
				}
				if err := l.StoreEntries([]Entry{{Index: l.LastIndex() + 1, Term: 1}}); !errors.Is(err, ErrClosed) {
					t.Fatalf("StoreEntries after the failure: %v", err)
				}
				if err := l.TruncateFrom(2); !errors.Is(err, ErrClosed) {
					t.Fatalf("TruncateFrom after the failure: %v", err)
				}
				if err := l.DeleteBefore(1); !errors.Is(err, ErrClosed) {
					t.Fatalf("DeleteBefore after the failure: %v", err)
				}
				if err := l.Reset(5, 5); !errors.Is(err, ErrClosed) {
					t.Fatalf("Reset after the failure: %v", err)
				}
				if _, err := l.Read(0, 1, -1); !errors.Is(err, ErrClosed) {
					t.Fatalf("Read after the failure: %v", err)
				}
				l.Close()
				if m.SyncCount() != syncs || m.SyncDirCount() != dirSyncs {
					t.Fatalf("fsync retried after the failure: %d -> %d file syncs, %d -> %d dir syncs",
						syncs, m.SyncCount(), dirSyncs, m.SyncDirCount())
				}
				if crash {
					m.Crash(vfs.CrashOptions{Rand: rand.New(rand.NewPCG(3, 4)), TornWrites: true, Garbage: true})
				}
				l = mustOpen(t, "/d", o)
				defer l.Close()
				got := readAllBatches(t, l, 0)
				if len(got) < len(acked) || len(got) > len(acked)+1 {
					t.Fatalf("reopened log holds %d batches, %d were acknowledged", len(got), len(acked))
				}
				for i := range acked {
					if !bytes.Equal(got[i], acked[i]) {
						t.Fatalf("acknowledged batch %d differs after reopen", i)
					}
				}
				if len(got) > len(acked) && !bytes.Equal(got[len(acked)][8:], failing[8:]) {
					t.Fatal("reopened log holds a batch that was never appended")
				}
				if n := len(l.Segments()); n < segsBefore {
					t.Fatalf("%d segments after reopen, %d before", n, segsBefore)
				}
				if err := l.Verify(); err != nil {
					t.Fatal(err)
				}
				// And it works again.
				mustAppend(t, l, testBatch(1, 0, 5))
			})
		}
	}
}

// TestFsyncFailureOtherRequests: a failing fsync in TruncateFrom,
// DeleteBefore and Reset fails the log closed as well.
func TestFsyncFailureOtherRequests(t *testing.T) {
	for _, tc := range []struct {
		name string
		op   func(l *Log) error
		arm  func(m *vfs.Mem)
	}{
		{"TruncateFrom: segment fsync", func(l *Log) error { return l.TruncateFrom(30) }, func(m *vfs.Mem) { m.FailSync(errInjected, 0) }},
		{"TruncateFrom: dir fsync", func(l *Log) error { return l.TruncateFrom(3) }, func(m *vfs.Mem) { m.FailSyncDir(errInjected, 0) }},
		{"DeleteBefore: checkpoint fsync", func(l *Log) error { return l.DeleteBefore(30) }, func(m *vfs.Mem) { m.FailSync(errInjected, 0) }},
		{"DeleteBefore: dir fsync", func(l *Log) error { return l.DeleteBefore(30) }, func(m *vfs.Mem) { m.FailSyncDir(errInjected, 0) }},
		{"Reset: segment fsync", func(l *Log) error { return l.Reset(100, 100) }, func(m *vfs.Mem) { m.FailSync(errInjected, 0) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o, m := memOpts()
			o.SegmentBytes = 1024
			l := mustOpen(t, "/d", o)
			defer l.Close()
			for i := 0; i < 40; i++ {
				mustAppend(t, l, testBatch(1, int64(i), 40))
			}
			tc.arm(m)
			if err := tc.op(l); !errors.Is(err, ErrClosed) || !errors.Is(err, errInjected) {
				t.Fatalf("under the fault: %v, want ErrClosed wrapping the fault", err)
			}
			syncs := m.SyncCount()
			m.ClearFaults()
			if _, err := l.Append(testBatch(1, 0, 1)); !errors.Is(err, ErrClosed) {
				t.Fatalf("append after the failure: %v", err)
			}
			if err := tc.op(l); !errors.Is(err, ErrClosed) {
				t.Fatalf("retry after the failure: %v", err)
			}
			if m.SyncCount() != syncs {
				t.Fatal("fsync retried after the failure")
			}
		})
	}
}

// TestFsyncFailureThenRestartThenPowerLoss documents fsyncgate's long tail:
// after a failed fsync, a restart without a reboot still sees the lost
// bytes in the page cache. The log cannot know they never reached the disk,
// and acknowledges a batch written after them; after a power loss the hole
// they leave must be refused by name (the later frame's syncedThrough proves
// the hole had been fsynced, as far as the log knew), never served and never
// silently cut together with the batch acknowledged after it.
//
// One append after the restart: vfs.Mem forgets a failed sync's lost bytes
// after the next successful Sync, and a second Sync would persist them.
func TestFsyncFailureThenRestartThenPowerLoss(t *testing.T) {
	o, m := memOpts()
	l := mustOpen(t, "/d", o)
	var acked [][]byte
	for i := 0; i < 5; i++ {
		b := testBatch(1, int64(i), 30)
		mustAppend(t, l, b)
		acked = append(acked, b)
	}
	hole := l.Size()
	m.FailSync(errInjected, 0)
	if _, err := l.Append(testBatch(1, 50, 30)); !errors.Is(err, errInjected) {
		t.Fatalf("append under the fault: %v", err)
	}
	l.Close()
	l = mustOpen(t, "/d", o) // restart, no reboot: the page cache still holds the failed batch
	if l.EndOffset() != 6 {
		t.Fatalf("restart: end %d, want 6 (the failed batch is visible)", l.EndOffset())
	}
	b := testBatch(1, 100, 30)
	mustAppend(t, l, b)
	acked = append(acked, nil, b) // the failed batch's slot is unknown
	l.Close()
	m.Crash(vfs.CrashOptions{})
	l, err := Open("/d", o)
	if err == nil {
		// Had the log repaired the hole, every acknowledged batch would
		// have to be there.
		defer l.Close()
		got := readAllBatches(t, l, 0)
		if len(got) != len(acked) {
			t.Fatalf("%d batches after the power loss, want %d", len(got), len(acked))
		}
		for i := range acked {
			if acked[i] != nil && !bytes.Equal(got[i], acked[i]) {
				t.Fatalf("acknowledged batch %d lost", i)
			}
		}
		return
	}
	checkCorruptErr(t, "open after the power loss", err, "/d/"+segmentName(0, 1)+segmentExt, hole)
}

// TestStalledDisk: while fsync hangs, appends block and are not visible, but
// reads of what was already synced go on. Once the disk answers, the
// blocked appends complete.
func TestStalledDisk(t *testing.T) {
	o, m := memOpts()
	o.SegmentBytes = 2048
	l := mustOpen(t, "/d", o)
	defer l.Close()
	var acked [][]byte
	for i := 0; i < 30; i++ {
		b := testBatch(2, int64(i), 40)
		mustAppend(t, l, b)
		acked = append(acked, b)
	}
	end, syncs := l.EndOffset(), m.SyncCount()
	release := make(chan struct{})
	m.StallSync(release)
	results := make(chan error, 3)
	for i := 0; i < 3; i++ {
		go func() {
			_, err := l.Append(testBatch(1, 1000, 40))
			results <- err
		}()
	}
	deadline := time.Now().Add(150 * time.Millisecond)
	for time.Now().Before(deadline) {
		select {
		case err := <-results:
			t.Fatalf("append returned %v while the disk was stalled", err)
		default:
		}
		// Reads of synced data are served meanwhile; unsynced data is not visible.
		if l.EndOffset() != end {
			t.Fatalf("end moved to %d while the disk was stalled", l.EndOffset())
		}
		got := readAllBatches(t, l, 0)
		if len(got) != len(acked) {
			t.Fatalf("read %d batches while stalled, want %d", len(got), len(acked))
		}
		for i := range acked {
			if !bytes.Equal(got[i], acked[i]) {
				t.Fatalf("batch %d differs while stalled", i)
			}
		}
		if e, err := l.Entry(7); err != nil || !bytes.Equal(e.Data, acked[6]) {
			t.Fatalf("Entry(7) while stalled: %v", err)
		}
		if err := l.Verify(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if m.SyncCount() != syncs {
		t.Fatal("a sync completed while the disk was stalled")
	}
	m.StallSync(nil)
	close(release)
	for i := 0; i < 3; i++ {
		select {
		case err := <-results:
			if err != nil {
				t.Fatalf("append after the disk recovered: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("appends still blocked after the disk recovered")
		}
	}
	if l.EndOffset() != end+3 {
		t.Fatalf("end %d, want %d", l.EndOffset(), end+3)
	}
}

// TestStalledDiskThenPowerLoss: a power loss releases the stalled fsync with
// an error; the appends waiting on it fail, and everything acknowledged
// before survives.
func TestStalledDiskThenPowerLoss(t *testing.T) {
	o, m := memOpts()
	o.SegmentBytes = 2048
	l := mustOpen(t, "/d", o)
	var acked [][]byte
	for i := 0; i < 30; i++ {
		b := testBatch(2, int64(i), 40)
		mustAppend(t, l, b)
		acked = append(acked, b)
	}
	m.StallSync(make(chan struct{}))
	results := make(chan error, 1)
	go func() {
		_, err := l.Append(testBatch(1, 1000, 40))
		results <- err
	}()
	time.Sleep(30 * time.Millisecond)
	m.Crash(vfs.CrashOptions{Rand: rand.New(rand.NewPCG(1, 1)), TornWrites: true, Garbage: true})
	select {
	case err := <-results:
		if !errors.Is(err, ErrClosed) || !errors.Is(err, vfs.ErrCrashed) {
			t.Fatalf("stalled append after the power loss: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("stalled append not released by the power loss")
	}
	l.Close()
	m.ClearFaults()
	l = mustOpen(t, "/d", o)
	defer l.Close()
	got := readAllBatches(t, l, 0)
	if len(got) < len(acked) {
		t.Fatalf("%d batches after the power loss, %d acknowledged", len(got), len(acked))
	}
	for i := range acked {
		if !bytes.Equal(got[i], acked[i]) {
			t.Fatalf("batch %d differs", i)
		}
	}
	if err := l.Verify(); err != nil {
		t.Fatal(err)
	}
}

// --- regressions for bugs the tables found ---

// TestTruncateFromRefusesDamagedFrame: a flipped bit in a frame header must
// not move a Raft truncation: TruncateFrom(k+1) must never cut at frame k
// because its damaged header claims index k+1.
func TestTruncateFromRefusesDamagedFrame(t *testing.T) {
	o, m := memOpts()
	o.SegmentBytes = 4096
	o.IndexIntervalBytes = 1 << 20 // one index entry per segment: truncation walks the segment
	l := mustOpen(t, "/d", o)
	for i := 0; i < 40; i++ {
		mustAppend(t, l, testBatch(1, int64(i), 50))
	}
	seg := l.Segments()[0]
	l.Close()
	// Entry 6's header says 7 (6 ^ 1 = 7).
	b, _ := m.ReadFile(seg.Path)
	pos := int64(segmentHeaderSize)
	var at int64
	for {
		h, _ := parseFrameHeader(b[pos:])
		if h.index == 6 {
			at = pos
			break
		}
		pos += h.size()
	}
	if err := m.CorruptAt(seg.Path, at+16, 0x01); err != nil {
		t.Fatal(err)
	}
	l = mustOpen(t, "/d", o)
	defer l.Close()
	last := l.LastIndex()
	err := l.TruncateFrom(7)
	checkCorruptErr(t, "TruncateFrom", err, seg.Path, at+16)
	if l.LastIndex() != last {
		t.Fatalf("refused truncation changed the log: last %d, was %d", l.LastIndex(), last)
	}
}

// TestStartOffsetAfterTruncatingBelowIt: TruncateFrom below the start offset
// lowers it (the log would otherwise start past its end). Batches appended
// afterwards at those offsets are acknowledged and readable; a reopen must
// not hide them behind the old start.ckpt.
func TestStartOffsetAfterTruncatingBelowIt(t *testing.T) {
	for _, crash := range []bool{false, true} {
		t.Run(fmt.Sprintf("crash=%v", crash), func(t *testing.T) {
			o, m := memOpts()
			o.SegmentBytes = 4096
			l := mustOpen(t, "/d", o)
			for i := 0; i < 20; i++ {
				mustAppend(t, l, testBatch(1, int64(i), 40))
			}
			if err := l.DeleteBefore(15); err != nil {
				t.Fatal(err)
			}
			if err := l.TruncateFrom(11); err != nil { // offsets 10.. go
				t.Fatal(err)
			}
			if l.StartOffset() != 10 || l.EndOffset() != 10 {
				t.Fatalf("after truncation [%d, %d), want [10, 10)", l.StartOffset(), l.EndOffset())
			}
			var acked [][]byte
			for i := 0; i < 8; i++ {
				b := testBatch(1, int64(100+i), 40)
				mustAppend(t, l, b)
				acked = append(acked, b)
			}
			l.Close()
			if crash {
				m.Crash(vfs.CrashOptions{})
			}
			l = mustOpen(t, "/d", o)
			defer l.Close()
			if l.StartOffset() != 10 {
				t.Fatalf("start offset %d after reopen, want 10: acknowledged batches at 10..14 hidden", l.StartOffset())
			}
			got := readAllBatches(t, l, 10)
			if len(got) != len(acked) {
				t.Fatalf("%d batches from 10, want %d", len(got), len(acked))
			}
			for i := range acked {
				if !bytes.Equal(got[i], acked[i]) {
					t.Fatalf("batch %d differs", i)
				}
			}
		})
	}
}

// TestTornCreateReactivatesPreviousSegment: after a torn segment creation is
// removed, the segment before it is the active one again: its index is
// removed (FORMAT.md step 4) and it is no longer reported sealed.
func TestTornCreateReactivatesPreviousSegment(t *testing.T) {
	o, m := memOpts()
	o.SegmentBytes = 1024
	l := mustOpen(t, "/d", o)
	for i := 0; i < 12; i++ {
		mustAppend(t, l, testBatch(1, int64(i), 40))
	}
	segs := l.Segments()
	l.Close()
	act := segs[len(segs)-1]
	prev := segs[len(segs)-2]
	for _, s := range segs[:len(segs)-1] {
		if !s.Sealed {
			t.Fatal("fixture: not sealed")
		}
	}
	// Drop the active segment, then leave a torn creation in its place.
	if err := m.WriteFile(act.Path, []byte("SLSG\x01"), true); err != nil {
		t.Fatal(err)
	}
	l = mustOpen(t, "/d", o)
	idx := prev.Path[:len(prev.Path)-len(segmentExt)] + indexExt
	got := sortedCopy(l.Recovery().RemovedFiles)
	if want := sortedCopy([]string{act.Path, idx}); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("removed %v, want %v", got, want)
	}
	now := l.Segments()
	if a := now[len(now)-1]; a.Path != prev.Path || a.Sealed {
		t.Fatalf("active segment %+v, want %s unsealed", a, prev.Path)
	}
	if _, err := m.Stat(idx); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("index of the active segment still there: %v", err)
	}
	l.Close()
}

// TestSegmentBaseIndexZero: Raft indexes start at 1, so a segment header with
// base index 0 (a checksummed header the log never writes) is damage. It
// used to open as an empty segment whose LastIndex was 2^64-1.
func TestSegmentBaseIndexZero(t *testing.T) {
	hdr := segmentHeader{baseIndex: 0, baseOffset: 0, createdMs: 1}.encode()
	path := "/d/" + segmentName(0, 0) + segmentExt
	t.Run("header only: a torn creation", func(t *testing.T) {
		o, m := memOpts()
		if err := m.MkdirAll("/d", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := m.WriteFile(path, hdr, true); err != nil {
			t.Fatal(err)
		}
		l := mustOpen(t, "/d", o)
		defer l.Close()
		if l.LastIndex() != 0 || len(l.Recovery().RemovedFiles) != 1 {
			t.Fatalf("last index %d, recovery %+v", l.LastIndex(), l.Recovery())
		}
	})
	t.Run("with frames: refused", func(t *testing.T) {
		o, m := memOpts()
		if err := m.MkdirAll("/d", 0o755); err != nil {
			t.Fatal(err)
		}
		frame := make([]byte, frameHeaderSize)
		putFrameHeader(frame, &frameHeader{index: 0, term: 1}, nil)
		if err := m.WriteFile(path, append(hdr, frame...), true); err != nil {
			t.Fatal(err)
		}
		_, err := Open("/d", o)
		checkCorruptErr(t, "Open", err, path, 0)
	})
}
