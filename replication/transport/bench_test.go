package transport

import (
	"fmt"
	"io"
	"os"
	"runtime"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// BenchmarkIdleGroups measures what idle raft groups cost over one Mux per
// broker: 3 Muxes, N groups (IDLE_GROUPS, default 200) of 3 voters, all
// elected and then left alone. It reports process CPU time per second of
// wall time per group replica (getrusage, user+system, so it includes raft
// itself) and heap per replica. It runs once whatever b.N is:
//
//	go test -run '^$' -bench BenchmarkIdleGroups -benchtime 1x ./replication/transport/
func BenchmarkIdleGroups(b *testing.B) {
	n := 200
	if s := os.Getenv("IDLE_GROUPS"); s != "" {
		var err error
		if n, err = strconv.Atoi(s); err != nil {
			b.Fatal(err)
		}
	}
	window := 10 * time.Second
	for _, tc := range []struct {
		name              string
		hb, elect, commit time.Duration
	}{
		{"hb=1s,elect=1s,commit=50ms", time.Second, time.Second, 50 * time.Millisecond}, // raft defaults
		{"hb=2s,elect=2s,commit=500ms", 2 * time.Second, 2 * time.Second, 500 * time.Millisecond},
	} {
		b.Run(tc.name, func(b *testing.B) {
			specs := make([]groupSpec, n)
			for i := range specs {
				specs[i] = groupSpec{id: fmt.Sprintf("topic-%d/0", i)}
			}
			runtime.GC()
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			heap0 := ms.HeapAlloc
			c := newCluster(b, 3, specs, Options{}, func(cfg *raft.Config) {
				cfg.HeartbeatTimeout, cfg.ElectionTimeout, cfg.CommitTimeout = tc.hb, tc.elect, tc.commit
			})
			for _, g := range specs {
				c.leader(g.id)
			}
			time.Sleep(3 * time.Second) // let elections and pipelines settle
			runtime.GC()
			runtime.ReadMemStats(&ms)
			replicas := float64(3 * n)
			heapPer := float64(ms.HeapAlloc-heap0) / replicas
			goroutines := runtime.NumGoroutine()

			b.ResetTimer()
			cpu0, t0 := cpuTime(), time.Now()
			time.Sleep(window)
			cpu, wall := cpuTime()-cpu0, time.Since(t0)
			b.StopTimer()

			b.ReportMetric(float64(cpu.Microseconds())/wall.Seconds()/replicas, "cpu-us/s/replica")
			b.ReportMetric(heapPer/1024, "heap-KiB/replica")
			b.ReportMetric(float64(goroutines)/replicas, "goroutines/replica")
			b.ReportMetric(0, "ns/op")
		})
	}
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		panic(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkReplicate measures replication throughput of one group of 3
// voters in one process, 64 KiB entries, MaxAppendEntries 256 and
// BatchApplyCh, over this transport and over raft.NetworkTransport (TCP on
// loopback, same stores). Logs are kept in a bounded ring, so only the
// transport and raft are measured, not a disk.
//
//	go test -run '^$' -bench BenchmarkReplicate -benchtime 5s ./replication/transport/
func BenchmarkReplicate(b *testing.B) {
	b.Run("transport=mux", func(b *testing.B) {
		var muxes []*Mux
		benchReplicate(b, func(i int) (raft.Transport, raft.ServerAddress) {
			m, err := Listen("127.0.0.1:0", Options{})
			if err != nil {
				b.Fatal(err)
			}
			muxes = append(muxes, m)
			return m.Group("bench"), m.Addr()
		})
		for _, m := range muxes {
			_ = m.Close()
		}
	})
	b.Run("transport=net", func(b *testing.B) {
		benchReplicate(b, func(i int) (raft.Transport, raft.ServerAddress) {
			t, err := raft.NewTCPTransport("127.0.0.1:0", nil, 3, 10*time.Second, io.Discard)
			if err != nil {
				b.Fatal(err)
			}
			return t, t.LocalAddr()
		})
	})
}

func benchReplicate(b *testing.B, newTrans func(i int) (raft.Transport, raft.ServerAddress)) {
	const entrySize = 64 << 10
	var (
		rafts []*raft.Raft
		cfg   raft.Configuration
		trans []raft.Transport
	)
	for i := 0; i < 3; i++ {
		t, addr := newTrans(i)
		trans = append(trans, t)
		cfg.Servers = append(cfg.Servers, raft.Server{ID: raft.ServerID(fmt.Sprint(i)), Address: addr})
	}
	for i := 0; i < 3; i++ {
		conf := raft.DefaultConfig()
		conf.LocalID = raft.ServerID(fmt.Sprint(i))
		conf.Logger = raftLogger()
		conf.MaxAppendEntries = 256
		conf.BatchApplyCh = true
		conf.SnapshotThreshold = 1 << 40
		conf.SnapshotInterval = time.Hour
		conf.TrailingLogs = 1 << 20
		stable := raft.NewInmemStore()
		r, err := raft.NewRaft(conf, &testFSM{}, newRingStore(2048), stable, raft.NewInmemSnapshotStore(), trans[i])
		if err != nil {
			b.Fatal(err)
		}
		if err := r.BootstrapCluster(cfg).Error(); err != nil {
			b.Fatal(err)
		}
		rafts = append(rafts, r)
	}
	defer func() {
		for _, r := range rafts {
			_ = r.Shutdown().Error()
		}
	}()
	var ld *raft.Raft
	waitFor(b, "a leader", func() bool {
		for _, r := range rafts {
			if r.State() == raft.Leader {
				ld = r
				return true
			}
		}
		return false
	})
	data := make([]byte, entrySize)
	b.SetBytes(entrySize)
	b.ReportAllocs()
	b.ResetTimer()
	const window = 1024
	futs := make(chan raft.ApplyFuture, window)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for f := range futs {
			if err := f.Error(); err != nil {
				b.Error(err)
				return
			}
		}
	}()
	for i := 0; i < b.N; i++ {
		futs <- ld.Apply(data, 0)
	}
	close(futs)
	wg.Wait()
	b.StopTimer()
}

// ringStore is a raft.LogStore holding the last size entries: enough for
// followers that keep up, without holding gigabytes in a benchmark.
type ringStore struct {
	mu          sync.RWMutex
	logs        []raft.Log
	first, last uint64
}

func newRingStore(size int) *ringStore { return &ringStore{logs: make([]raft.Log, size)} }

func (s *ringStore) FirstIndex() (uint64, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.first, nil
}

func (s *ringStore) LastIndex() (uint64, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.last, nil
}

func (s *ringStore) GetLog(index uint64, log *raft.Log) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.last == 0 || index < s.first || index > s.last {
		return raft.ErrLogNotFound
	}
	*log = s.logs[index%uint64(len(s.logs))]
	return nil
}

func (s *ringStore) StoreLog(log *raft.Log) error { return s.StoreLogs([]*raft.Log{log}) }

func (s *ringStore) StoreLogs(logs []*raft.Log) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, l := range logs {
		s.logs[l.Index%uint64(len(s.logs))] = *l
		if s.first == 0 {
			s.first = l.Index
		}
		s.last = l.Index
		if s.last-s.first >= uint64(len(s.logs)) {
			s.first = s.last - uint64(len(s.logs)) + 1
		}
	}
	return nil
}

func (s *ringStore) DeleteRange(min, max uint64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if min <= s.first {
		s.first = max + 1
	} else if max >= s.last {
		s.last = min - 1
	}
	if s.first > s.last {
		s.first, s.last = 0, 0
	}
	return nil
}
