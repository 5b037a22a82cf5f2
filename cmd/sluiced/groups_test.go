package main

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// TestGroupSurvivesCoordinatorKill: the broker coordinating a consumer
// group is killed with SIGKILL while a member consumes. The member goes
// on with the new coordinator (which rebuilt the group and its offsets
// from __consumer_offsets), and a consumer that takes over after it
// resumes at its last commit: nothing committed is read again.
func TestGroupSurvivesCoordinatorKill(t *testing.T) {
	c := newProcCluster(t)
	c.extra = []string{"--offsets-topic-partitions", "3", "--group-initial-rebalance-delay", "100ms", "--group-min-session-timeout", "1s"}
	for i := range 3 {
		c.start(i)
	}
	for i := range 3 {
		c.waitReady(i)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.seeds()...), kgo.ProducerLinger(0))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	const topic = "orders"
	if r, err := adm.CreateTopic(ctx, 3, 3, nil, topic); err != nil || r.Err != nil {
		t.Fatalf("create topic: %v %v", err, r.Err)
	}
	produce := func(from, to int) {
		t.Helper()
		var recs []*kgo.Record
		for i := from; i < to; i++ {
			recs = append(recs, &kgo.Record{Topic: topic, Key: []byte(strconv.Itoa(i % 10)), Value: []byte(strconv.Itoa(i))})
		}
		if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
			t.Fatalf("produce: %v", err)
		}
	}
	produce(0, 200)

	var mu sync.Mutex
	seen := map[int]int{}
	member, err := kgo.NewClient(kgo.SeedBrokers(c.seeds()...), kgo.ConsumerGroup("billing"), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.DisableAutoCommit(), kgo.FetchMaxWait(200*time.Millisecond),
		kgo.SessionTimeout(10*time.Second), kgo.HeartbeatInterval(300*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer member.Close()
	consumeUntil := func(n int) {
		t.Helper()
		for {
			mu.Lock()
			got := len(seen)
			mu.Unlock()
			if got >= n {
				return
			}
			fs := member.PollFetches(ctx)
			if ctx.Err() != nil {
				t.Fatalf("consumed %d of %d", got, n)
			}
			mu.Lock()
			fs.EachRecord(func(r *kgo.Record) {
				v, _ := strconv.Atoi(string(r.Value))
				seen[v]++
			})
			mu.Unlock()
		}
	}
	consumeUntil(200)
	if err := member.CommitUncommittedOffsets(ctx); err != nil {
		t.Fatalf("commit: %v", err)
	}
	coord := adm.FindGroupCoordinators(ctx, "billing")["billing"]
	if coord.Err != nil {
		t.Fatalf("find coordinator: %v", coord.Err)
	}
	c.kill(int(coord.NodeID) - 1)
	t.Logf("killed broker %d, the coordinator of billing", coord.NodeID)

	// The member keeps consuming and commits through the new coordinator.
	// If its session ran out during the failover (a loaded machine), the
	// group rebalanced and it re-reads from the last commit (at least
	// once): it polls and commits until the group's commits cover all 300.
	produce(200, 300)
	consumeUntil(300)
	commitCtx, cancelCommit := context.WithTimeout(ctx, time.Minute)
	defer cancelCommit()
	for {
		err := member.CommitUncommittedOffsets(commitCtx)
		if err == nil {
			if fo, ferr := adm.FetchOffsets(commitCtx, "billing"); ferr == nil {
				var sum int64
				fo.Each(func(o kadm.OffsetResponse) { sum += o.At })
				if sum == 300 {
					break
				}
			}
		}
		if commitCtx.Err() != nil {
			t.Fatalf("commits after the coordinator was killed never covered all 300 records: %v", err)
		}
		pctx, pcancel := context.WithTimeout(commitCtx, 300*time.Millisecond)
		fs := member.PollFetches(pctx)
		pcancel()
		mu.Lock()
		fs.EachRecord(func(r *kgo.Record) {
			v, _ := strconv.Atoi(string(r.Value))
			seen[v]++
		})
		mu.Unlock()
	}
	member.Close()
	for v := range 300 {
		if seen[v] == 0 {
			t.Errorf("record %d never consumed", v)
		}
	}

	// A new member of the group starts where the group committed.
	produce(300, 320)
	next, err := kgo.NewClient(kgo.SeedBrokers(c.seeds()...), kgo.ConsumerGroup("billing"), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxWait(200*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer next.Close()
	var resumed []int
	for len(resumed) < 20 {
		fs := next.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("resumed consumer got %d of 20 new records: %v", len(resumed), resumed)
		}
		fs.EachRecord(func(r *kgo.Record) {
			v, _ := strconv.Atoi(string(r.Value))
			resumed = append(resumed, v)
		})
	}
	for _, v := range resumed {
		if v < 300 {
			t.Errorf("record %d was read again after its offset was committed", v)
		}
	}
	if len(resumed) != 20 {
		t.Errorf("resumed consumer got %d records, want 20: %s", len(resumed), fmt.Sprint(resumed))
	}
}
