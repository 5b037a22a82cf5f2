package replication

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/sluicemq/sluice/log"
	"github.com/sluicemq/sluice/partition"
)

// BenchmarkReplicatedProduce proposes 64 KiB produce batches from many
// goroutines to a 3-replica group over InmemTransport, each replica's log
// on real disk (fsync per group commit), and waits for each to commit.
// MB/s counts batch bytes committed (each is written by all three logs).
func BenchmarkReplicatedProduce(b *testing.B) {
	for _, maxAppend := range []int{64, 256} {
		b.Run(fmt.Sprintf("MaxAppendEntries=%d", maxAppend), func(b *testing.B) {
			benchReplicatedProduce(b, 64<<10, maxAppend)
		})
	}
}

func benchReplicatedProduce(b *testing.B, batchBytes, maxAppend int) {
	c := newCluster(b, 3, log.Options{}, func(c *raft.Config) { c.MaxAppendEntries = maxAppend })
	ld := c.leader()
	const records = 64
	tmpl := produce(b, "bench", records, batchBytes/records-20)
	// Raft's election no-op and the configuration entry are committed
	// before the timer starts.
	if err := ld.raft.Barrier(10 * time.Second).Error(); err != nil {
		b.Fatal(err)
	}

	b.SetBytes(int64(len(tmpl) - 1))
	b.SetParallelism(8)
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			// A fresh buffer per proposal, as a produce request has: the
			// log stamps the base offset into it.
			if err := ld.raft.Apply(bytes.Clone(tmpl), 10*time.Second).Error(); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.StopTimer()
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "entries/s")
	c.waitConverged()
}

// BenchmarkReplicaProduce produces through Replica.Produce with acks=-1
// from many concurrent idempotent producers (one pid each, one batch in
// flight each, as a producer with max.in.flight=1) to a 3-replica group
// over InmemTransport, each replica's log on real disk. MB/s counts batch
// bytes acknowledged (each written by all three logs).
func BenchmarkReplicaProduce(b *testing.B) {
	for _, size := range []int{1 << 10, 64 << 10} {
		b.Run(fmt.Sprintf("batch=%dKiB", size>>10), func(b *testing.B) {
			benchReplicaProduce(b, size)
		})
	}
}

func benchReplicaProduce(b *testing.B, batchBytes int) {
	c := newReplicaCluster(b, 3, partition.Config{MaxMessageBytes: 1 << 20, SegmentBytes: 1 << 30}, fastTimings)
	ld := c.leader()
	records := max(batchBytes/1024, 1) * 8
	tmpl := idem(b, "bench", 0, 0, 0, records, batchBytes/records-30)
	var pids atomic.Int64
	b.SetBytes(int64(len(tmpl)))
	b.SetParallelism(16)
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		pid := pids.Add(1)
		seq := int32(0)
		for pb.Next() {
			// A fresh buffer per request, as a produce request has, with
			// this producer's id and sequence and the CRC over them.
			cmd := make([]byte, 1+len(tmpl))
			bt := cmd[1:]
			copy(bt, tmpl)
			binary.BigEndian.PutUint64(bt[43:], uint64(pid))
			binary.BigEndian.PutUint32(bt[53:], uint32(seq))
			binary.BigEndian.PutUint32(bt[17:], crc32.Checksum(bt[21:], castagnoli))
			seq += int32(records)
			if _, err := ld.r.ProduceCommand(cmd, -1)(); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.StopTimer()
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "batches/s")
}
