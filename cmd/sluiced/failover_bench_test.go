package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// BenchmarkFailover measures what a producer sees when the leader of its
// partition is killed with SIGKILL: the time from the kill until an
// acks=all produce succeeds again, with the default raft timing (1 s
// heartbeat timeout). Each iteration kills the current leader, produces
// until a record is acknowledged, then restarts the killed broker.
//
//	go test -run '^$' -bench Failover -benchtime 20x ./cmd/sluiced/
func BenchmarkFailover(b *testing.B) {
	c := newProcCluster(b)
	c.hb = "1s"
	for i := range 3 {
		c.start(i)
	}
	for i := range 3 {
		c.waitReady(i)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.seeds()...), kgo.DefaultProduceTopic("failover"),
		kgo.RecordRetries(1<<30), kgo.RetryBackoffFn(func(int) time.Duration { return 20 * time.Millisecond }),
		kgo.MetadataMinAge(10*time.Millisecond), kgo.ProducerLinger(0))
	if err != nil {
		b.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	if r, err := adm.CreateTopic(ctx, 1, 3, nil, "failover"); err != nil || r.Err != nil {
		b.Fatalf("create: %v %v", err, r.Err)
	}
	if err := cl.ProduceSync(ctx, &kgo.Record{Value: []byte("warm")}).FirstErr(); err != nil {
		b.Fatal(err)
	}
	var took []time.Duration
	b.ResetTimer()
	for range b.N {
		victim := leaderOf(b, adm, "failover", 0)
		start := time.Now()
		c.kill(victim)
		pctx, pcancel := context.WithTimeout(ctx, time.Minute)
		err := cl.ProduceSync(pctx, &kgo.Record{Value: []byte("after kill")}).FirstErr()
		pcancel()
		if err != nil {
			b.Fatalf("produce after killing broker %d: %v", victim+1, err)
		}
		took = append(took, time.Since(start))
		b.StopTimer()
		c.start(victim)
		c.waitReady(victim)
		// Let the restarted broker catch up and leadership settle.
		time.Sleep(3 * time.Second)
		b.StartTimer()
	}
	b.StopTimer()
	slices.Sort(took)
	q := func(f float64) float64 { return took[min(len(took)-1, int(f*float64(len(took))))].Seconds() }
	b.ReportMetric(q(0.5), "p50_s")
	b.ReportMetric(q(0.99), "p99_s")
	b.ReportMetric(took[len(took)-1].Seconds(), "max_s")
	b.ReportMetric(0, "ns/op")
}

// procStat returns a process's CPU time (user+system) and resident set.
func procStat(b *testing.B, pid int) (cpu time.Duration, rss int64) {
	b.Helper()
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		b.Fatal(err)
	}
	// Fields after the command name (which may hold spaces) start at ')'.
	f := strings.Fields(string(raw[bytes.LastIndexByte(raw, ')')+2:]))
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	pages, _ := strconv.ParseInt(f[21], 10, 64)
	const hz = 100 // USER_HZ on Linux
	return time.Duration(utime+stime) * time.Second / hz, pages * int64(os.Getpagesize())
}

// BenchmarkIdleReplicas measures what an idle partition replica costs: three
// brokers with the default raft timing host an RF=3 topic of 200 partitions
// (200 replicas each); CPU and resident memory of the brokers are compared
// with the same brokers before the topic existed.
//
//	go test -run '^$' -bench IdleReplicas -benchtime 1x ./cmd/sluiced/
func BenchmarkIdleReplicas(b *testing.B) {
	const parts, window = 200, 20 * time.Second
	c := newProcCluster(b)
	c.hb = "1s"
	for i := range 3 {
		c.start(i)
	}
	for i := range 3 {
		c.waitReady(i)
	}
	measure := func() (cpuRate time.Duration, rss int64) {
		var cpu0 [3]time.Duration
		for i := range 3 {
			cpu0[i], _ = procStat(b, c.cmds[i].Process.Pid)
		}
		time.Sleep(window)
		for i := range 3 {
			cpu, r := procStat(b, c.cmds[i].Process.Pid)
			cpuRate += (cpu - cpu0[i]) * time.Second / window
			rss += r
		}
		return cpuRate, rss
	}
	time.Sleep(5 * time.Second)
	baseCPU, baseRSS := measure()
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.seeds()...))
	if err != nil {
		b.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if r, err := adm.CreateTopic(ctx, parts, 3, nil, "idle"); err != nil || r.Err != nil {
		b.Fatalf("create: %v %v", err, r.Err)
	}
	for p := int32(0); p < parts; p++ {
		leaderOf(b, adm, "idle", p)
	}
	time.Sleep(10 * time.Second) // elections and leader rebalancing settle
	b.ResetTimer()
	cpu, rss := measure()
	b.StopTimer()
	replicas := float64(3 * parts)
	b.ReportMetric(float64((cpu-baseCPU).Microseconds())/replicas, "cpu_us/s/replica")
	b.ReportMetric(float64(rss-baseRSS)/replicas/1024, "rss_KiB/replica")
	b.ReportMetric(0, "ns/op")
}
