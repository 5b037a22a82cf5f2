package log

import (
	"fmt"
	"os"
	"path/filepath"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/sluicemq/sluice/log/vfs"
)

// Benchmarks of the segment log on the real filesystem (vfs.OS under
// b.TempDir, never tmpfs). Run them with
//
//	go test -run '^$' -bench . -benchtime 2s -count 3 ./log/
//
// BenchmarkRawWriteFdatasync is the floor the log is measured against: the
// same bytes written to a growing file with one fdatasync per write and no
// framing, checksums, index or writer goroutine.

// benchSizes are the append sizes compared against the raw baseline.
var benchSizes = []struct {
	name string
	size int
}{
	{"16KiB", 16 << 10},
	{"64KiB", 64 << 10},
	{"1MiB", 1 << 20},
}

// benchBatch returns a valid RecordBatch v2 of exactly size bytes (one
// record whose value fills the rest), built by testBatch.
func benchBatch(tb testing.TB, size int) []byte {
	tb.Helper()
	v := size - 80
	for range 8 {
		b := testBatch(1, 1_700_000_000_000, v)
		if len(b) == size {
			return b
		}
		v -= len(b) - size
	}
	tb.Fatalf("cannot build a batch of exactly %d bytes", size)
	return nil
}

// benchFill appends total bytes of batches of batchSize bytes, many per
// fsync so that setup stays fast, and returns the batches appended.
func benchFill(tb testing.TB, l *Log, batchSize, total int) int {
	tb.Helper()
	proto := benchBatch(tb, batchSize)
	n := total / batchSize
	per := max(1, (8<<20)/batchSize)
	for done := 0; done < n; {
		k := min(per, n-done)
		es := make([]Entry, k)
		for i := range es {
			es[i] = Entry{Batch: true, Data: append([]byte(nil), proto...)}
		}
		if err := l.AppendBatches(es); err != nil {
			tb.Fatalf("fill: %v", err)
		}
		done += k
	}
	return n
}

// benchCountingFS is vfs.OS with a count of file and directory fsyncs.
type benchCountingFS struct {
	vfs.OS
	syncs atomic.Int64
}

func (c *benchCountingFS) OpenFile(name string, flag int, perm os.FileMode) (vfs.File, error) {
	f, err := c.OS.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err
	}
	return &benchCountingFile{File: f, syncs: &c.syncs}, nil
}

func (c *benchCountingFS) SyncDir(dir string) error {
	c.syncs.Add(1)
	return c.OS.SyncDir(dir)
}

type benchCountingFile struct {
	vfs.File
	syncs *atomic.Int64
}

func (f *benchCountingFile) Sync() error {
	f.syncs.Add(1)
	return f.File.Sync()
}

// benchCPUTime is the CPU time (user and system, every thread, GC
// included) the process has used so far.
func benchCPUTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// benchReportCPU reports CPU time per op since start: unlike ns/op it
// hardly moves when other processes compete for the 2 cores.
func benchReportCPU(b *testing.B, start time.Duration, ops int64) {
	if ops > 0 {
		b.ReportMetric(float64(benchCPUTime()-start)/float64(ops), "cpu-ns/op")
	}
}

func benchOpen(b *testing.B, o Options) *Log {
	b.Helper()
	l := mustOpen(b, filepath.Join(b.TempDir(), "log"), o)
	b.Cleanup(func() { l.Close() })
	return l
}

// BenchmarkRawWriteFdatasync writes one buffer per op to an O_APPEND file
// that keeps growing, then fdatasyncs it: the disk's ceiling for the log.
func BenchmarkRawWriteFdatasync(b *testing.B) {
	for _, sz := range benchSizes {
		b.Run(sz.name, func(b *testing.B) {
			f, err := os.OpenFile(filepath.Join(b.TempDir(), "raw"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
			if err != nil {
				b.Fatal(err)
			}
			defer f.Close()
			buf := benchBatch(b, sz.size)
			fd := int(f.Fd())
			b.SetBytes(int64(len(buf)))
			cpu, ops := benchCPUTime(), int64(0)
			for b.Loop() {
				if _, err := f.Write(buf); err != nil {
					b.Fatal(err)
				}
				if err := syscall.Fdatasync(fd); err != nil {
					b.Fatal(err)
				}
				ops++
			}
			benchReportCPU(b, cpu, ops)
			b.ReportMetric(1, "fsyncs/op")
		})
	}
}

// BenchmarkAppend is one appender with default options: every Append waits
// for its own fdatasync, so it is compared with BenchmarkRawWriteFdatasync.
func BenchmarkAppend(b *testing.B) {
	for _, sz := range benchSizes {
		b.Run(sz.name, func(b *testing.B) {
			l := benchOpen(b, Options{})
			batch := benchBatch(b, sz.size)
			b.SetBytes(int64(len(batch)))
			cpu, ops := benchCPUTime(), int64(0)
			for b.Loop() {
				if _, err := l.Append(batch); err != nil {
					b.Fatal(err)
				}
				ops++
			}
			benchReportCPU(b, cpu, ops)
		})
	}
}

// BenchmarkAppendVsRaw alternates, op by op, one Append (default options)
// and one raw write+fdatasync of the same size to a sibling file, so both
// see the same disk state: the virtio disk's throughput drifts by several
// times over a run (burst credit), which makes ratios between separately run
// benchmarks unreliable. It reports each side's MB/s and log/raw, the log's
// throughput as a fraction of the raw baseline's; SetBytes counts both writes.
func BenchmarkAppendVsRaw(b *testing.B) {
	for _, sz := range benchSizes {
		b.Run(sz.name, func(b *testing.B) {
			dir := b.TempDir()
			l := mustOpen(b, filepath.Join(dir, "log"), Options{})
			defer l.Close()
			f, err := os.OpenFile(filepath.Join(dir, "raw"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
			if err != nil {
				b.Fatal(err)
			}
			defer f.Close()
			fd := int(f.Fd())
			batch := benchBatch(b, sz.size)
			buf := append([]byte(nil), batch...)
			raw := func() time.Duration {
				t := time.Now()
				if _, err := f.Write(buf); err != nil {
					b.Fatal(err)
				}
				if err := syscall.Fdatasync(fd); err != nil {
					b.Fatal(err)
				}
				return time.Since(t)
			}
			app := func() time.Duration {
				t := time.Now()
				if _, err := l.Append(batch); err != nil {
					b.Fatal(err)
				}
				return time.Since(t)
			}
			var logD, rawD time.Duration
			var ops int64
			b.SetBytes(2 * int64(sz.size))
			for b.Loop() {
				if ops%2 == 0 {
					logD += app()
					rawD += raw()
				} else {
					rawD += raw()
					logD += app()
				}
				ops++
			}
			mb := float64(ops) * float64(sz.size) / 1e6
			b.ReportMetric(mb/logD.Seconds(), "log-MB/s")
			b.ReportMetric(mb/rawD.Seconds(), "raw-MB/s")
			b.ReportMetric(rawD.Seconds()/logD.Seconds(), "log/raw")
		})
	}
}

// BenchmarkAppendParallel has 16 goroutines per GOMAXPROCS appending at
// once; group commit lets one fsync cover many appends.
func BenchmarkAppendParallel(b *testing.B) {
	for _, sz := range []struct {
		name string
		size int
	}{{"1KiB", 1 << 10}, {"16KiB", 16 << 10}} {
		b.Run(sz.name, func(b *testing.B) {
			fs := &benchCountingFS{}
			l := benchOpen(b, Options{FS: fs})
			proto := benchBatch(b, sz.size)
			b.SetBytes(int64(len(proto)))
			b.SetParallelism(16)
			start, cpu := fs.syncs.Load(), benchCPUTime()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				batch := append([]byte(nil), proto...) // Append stamps it: one per goroutine
				for pb.Next() {
					if _, err := l.Append(batch); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.StopTimer()
			syncs := fs.syncs.Load() - start
			benchReportCPU(b, cpu, int64(b.N))
			b.ReportMetric(float64(syncs)/float64(b.N), "fsyncs/op")
			if syncs > 0 {
				b.ReportMetric(float64(b.N)/float64(syncs), "appends/fsync")
			}
		})
	}
}

// BenchmarkRead reads a pre-filled log sequentially from the page cache
// with 1 MiB fetches, wrapping around at the end; each op is one Read.
func BenchmarkRead(b *testing.B) {
	for _, c := range []struct {
		name         string
		batch, total int
	}{
		{"64KiBBatches-1MiB-maxBytes", 64 << 10, 256 << 20},
		{"1KiBBatches-1MiB-maxBytes", 1 << 10, 64 << 20},
	} {
		b.Run(c.name, func(b *testing.B) {
			l := benchOpen(b, Options{})
			benchFill(b, l, c.batch, c.total)
			end := l.EndOffset()
			var off int64
			var bytes, batches, ops int64
			cpu := benchCPUTime()
			for b.Loop() {
				res, err := l.Read(off, 1<<20, -1)
				if err != nil {
					b.Fatal(err)
				}
				bytes += int64(res.Bytes)
				batches += int64(len(res.Batches))
				res.Release()
				ops++
				if off = res.Next; off >= end {
					off = 0
				}
			}
			benchReportCPU(b, cpu, ops)
			b.SetBytes(bytes / ops)
			b.ReportMetric(float64(batches)/float64(ops), "batches/op")
		})
	}
}

// BenchmarkEntry reads 1 KiB entries one at a time by Raft index, as a Raft
// follower or leader replicating from the log would.
func BenchmarkEntry(b *testing.B) {
	l := benchOpen(b, Options{})
	n := benchFill(b, l, 1<<10, 64<<20)
	first := l.FirstIndex()
	var size, ops int64
	i := 0
	cpu := benchCPUTime()
	for b.Loop() {
		e, err := l.Entry(first + uint64(i))
		if err != nil {
			b.Fatal(err)
		}
		size = int64(len(e.Data))
		if i++; i == n {
			i = 0
		}
		ops++
	}
	benchReportCPU(b, cpu, ops)
	b.SetBytes(size)
}

// BenchmarkOpen measures opening a log of 256 MiB in 64 KiB batches
// (8 MiB segments) with and without VerifyOnOpen, which replicas use: the
// price of refusing damaged sealed data at start is one CRC walk of it.
func BenchmarkOpen(b *testing.B) {
	dir := filepath.Join(b.TempDir(), "log")
	l := mustOpen(b, dir, Options{SegmentBytes: 8 << 20})
	benchFill(b, l, 64<<10, 256<<20)
	size := l.Size()
	if err := l.Close(); err != nil {
		b.Fatal(err)
	}
	for _, verify := range []bool{false, true} {
		b.Run(fmt.Sprintf("verify=%v", verify), func(b *testing.B) {
			for b.Loop() {
				l, err := Open(dir, Options{SegmentBytes: 8 << 20, VerifyOnOpen: verify})
				if err != nil {
					b.Fatal(err)
				}
				l.Close()
			}
			b.SetBytes(size)
		})
	}
}
