package main

import (
	"context"
	"slices"
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
