package replication

import (
	"bytes"
	"fmt"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/sluicemq/sluice/log"
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
