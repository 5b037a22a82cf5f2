package broker

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// setGroupConfigs sets share-group configs through the Kafka API.
func setGroupConfigs(t *testing.T, cl *kgo.Client, group string, kv map[string]string) {
	t.Helper()
	r := kmsg.NewPtrIncrementalAlterConfigsRequest()
	rr := kmsg.NewIncrementalAlterConfigsRequestResource()
	rr.ResourceType, rr.ResourceName = kmsg.ConfigResourceTypeGroupConfig, group
	for k, v := range kv {
		c := kmsg.NewIncrementalAlterConfigsRequestResourceConfig()
		c.Op, c.Name = kmsg.IncrementalAlterConfigOpSet, k
		v := v
		c.Value = &v
		rr.Configs = append(rr.Configs, c)
	}
	r.Resources = append(r.Resources, rr)
	resp, err := r.RequestWith(ctx(t), cl)
	if err != nil || resp.Resources[0].ErrorCode != 0 {
		t.Fatalf("group configs: %v %+v", err, resp)
	}
}

// shareWorker is a franz-go share-group consumer whose handler decides
// each record's acknowledgement.
type shareWorker struct {
	cl *kgo.Client
}

func startShareWorker(t *testing.T, b *Broker, group, topic string, handle func(*kgo.Record) kgo.AckStatus, opts ...kgo.Opt) *shareWorker {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(b.KafkaAddr()), kgo.ShareGroup(group), kgo.ConsumeTopics(topic),
		kgo.FetchMaxWait(300 * time.Millisecond)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	w := &shareWorker{cl: cl}
	go func() {
		for {
			fs := cl.PollFetches(context.Background())
			if fs.IsClientClosed() {
				return
			}
			fs.EachRecord(func(r *kgo.Record) { cl.MarkAcks(handle(r), r) })
		}
	}()
	t.Cleanup(cl.Close)
	return w
}

// TestShareGroupEmailWorkers is the sign-up story on a share group: four
// workers take messages from one two-partition topic with per-message
// acknowledgement; one message fails twice then succeeds; a poison message
// is released until the delivery limit parks it in the dead-letter topic,
// and a rejected one goes there at once, each with headers saying why.
func TestShareGroupEmailWorkers(t *testing.T) {
	b := startBroker(t, t.TempDir())
	cl := newClient(t, b)
	createTopic(t, b, "signups", 2, nil)
	setGroupConfigs(t, cl, "mailers", map[string]string{
		"share.auto.offset.reset":    "earliest",
		"share.delivery.count.limit": "3",
		"share.dead.letter.topic":    "signups.dlq",
	})
	var recs []*kgo.Record
	for i := range 40 {
		recs = append(recs, &kgo.Record{Topic: "signups", Key: []byte(fmt.Sprintf("user-%d", i)), Value: []byte(fmt.Sprintf("email %d", i))})
	}
	recs = append(recs,
		&kgo.Record{Topic: "signups", Key: []byte("poison"), Value: []byte("poison")},
		&kgo.Record{Topic: "signups", Key: []byte("bad"), Value: []byte("bad address")},
		&kgo.Record{Topic: "signups", Key: []byte("flaky"), Value: []byte("flaky")})
	if err := cl.ProduceSync(ctx(t), recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}

	var mu sync.Mutex
	accepted := map[string]int{}
	attempts := map[string]int{}
	handle := func(r *kgo.Record) kgo.AckStatus {
		mu.Lock()
		defer mu.Unlock()
		v := string(r.Value)
		attempts[v]++
		switch {
		case v == "poison":
			return kgo.AckRelease // transient forever: the delivery limit ends it
		case v == "bad address":
			return kgo.AckReject
		case v == "flaky" && attempts[v] < 3:
			return kgo.AckRelease
		}
		accepted[v]++
		return kgo.AckAccept
	}
	for range 4 {
		startShareWorker(t, b, "mailers", "signups", handle)
	}
	waitFor(t, 60*time.Second, "every good message accepted", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(accepted) == 41
	})
	mu.Lock()
	for v, n := range accepted {
		if n != 1 {
			t.Errorf("%q accepted %d times", v, n)
		}
	}
	if attempts["flaky"] != 3 {
		t.Errorf("flaky delivered %d times, want 3 (two releases, then accepted)", attempts["flaky"])
	}
	mu.Unlock()

	// The dead-letter topic holds the poison message (delivery limit) and
	// the rejected one, with their provenance.
	dlq := newClient(t, b, kgo.ConsumeTopics("signups.dlq"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxWait(200*time.Millisecond))
	got := map[string]map[string]string{}
	c := ctx(t)
	for len(got) < 2 {
		fs := dlq.PollFetches(c)
		if c.Err() != nil {
			t.Fatalf("dead letters: got %v", got)
		}
		fs.EachRecord(func(r *kgo.Record) {
			h := map[string]string{}
			for _, rh := range r.Headers {
				h[rh.Key] = string(rh.Value)
			}
			got[string(r.Value)] = h
		})
	}
	if h := got["poison"]; h["sluice.dlq.reason"] != "delivery limit" || h["sluice.dlq.delivery.count"] != "3" ||
		h["sluice.dlq.topic"] != "signups" || h["sluice.dlq.group"] != "mailers" || h["sluice.dlq.offset"] == "" {
		t.Errorf("poison dead letter headers: %v", h)
	}
	if h := got["bad address"]; h["sluice.dlq.reason"] != "rejected" || h["sluice.dlq.delivery.count"] != "1" {
		t.Errorf("rejected dead letter headers: %v", h)
	}
	mu.Lock()
	if attempts["poison"] != 3 {
		t.Errorf("poison delivered %d times, want the limit of 3", attempts["poison"])
	}
	mu.Unlock()
}

// TestShareGroupMoreWorkersThanPartitions: six workers on one partition
// all get work, and each record is accepted exactly once.
func TestShareGroupMoreWorkersThanPartitions(t *testing.T) {
	b := startBroker(t, t.TempDir())
	cl := newClient(t, b)
	createTopic(t, b, "jobs", 1, nil)
	setGroupConfigs(t, cl, "pool", map[string]string{"share.auto.offset.reset": "earliest"})
	var mu sync.Mutex
	done := map[string]int{}
	perWorker := map[int]int{}
	for w := range 6 {
		startShareWorker(t, b, "pool", "jobs", func(r *kgo.Record) kgo.AckStatus {
			time.Sleep(5 * time.Millisecond) // work, so the others get some
			mu.Lock()
			defer mu.Unlock()
			done[string(r.Value)]++
			perWorker[w]++
			return kgo.AckAccept
		}, kgo.ShareMaxRecords(10)) // small fetches, so the work spreads
	}
	var recs []*kgo.Record
	for i := range 300 {
		recs = append(recs, &kgo.Record{Topic: "jobs", Value: []byte(strconv.Itoa(i))})
	}
	if err := cl.ProduceSync(ctx(t), recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 60*time.Second, "300 jobs done", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(done) == 300
	})
	mu.Lock()
	defer mu.Unlock()
	for v, n := range done {
		if n != 1 {
			t.Errorf("job %s done %d times", v, n)
		}
	}
	busy := 0
	for _, n := range perWorker {
		if n > 0 {
			busy++
		}
	}
	if busy < 2 {
		t.Errorf("only %d of 6 workers got jobs from the single partition: %v", busy, perWorker)
	}
}

// TestShareGroupKeyOrderingAndDelay: with share.key.ordering, many
// workers never handle two records of one key at once and handle each
// key's records in offset order; a record whose not-before header lies an
// hour ahead is not delivered while everything else is.
func TestShareGroupKeyOrderingAndDelay(t *testing.T) {
	b := startBroker(t, t.TempDir())
	cl := newClient(t, b)
	createTopic(t, b, "orders", 1, nil)
	setGroupConfigs(t, cl, "shippers", map[string]string{"share.auto.offset.reset": "earliest", "share.key.ordering": "true"})
	var recs []*kgo.Record
	for i := range 200 {
		recs = append(recs, &kgo.Record{Topic: "orders", Key: []byte(fmt.Sprintf("order-%d", i%8)), Value: []byte(strconv.Itoa(i))})
	}
	later := strconv.FormatInt(time.Now().Add(time.Hour).UnixMilli(), 10)
	recs = append(recs, &kgo.Record{Topic: "orders", Key: []byte("later"), Value: []byte("later"),
		Headers: []kgo.RecordHeader{{Key: "sluice.not-before", Value: []byte(later)}}})
	if err := cl.ProduceSync(ctx(t), recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	inFlight := map[string]bool{}
	last := map[string]int{}
	handled := 0
	var violations []string
	for range 4 {
		startShareWorker(t, b, "shippers", "orders", func(r *kgo.Record) kgo.AckStatus {
			k, v := string(r.Key), string(r.Value)
			mu.Lock()
			if inFlight[k] {
				violations = append(violations, "two records of "+k+" at once")
			}
			inFlight[k] = true
			n, _ := strconv.Atoi(v)
			if prev, ok := last[k]; ok && n <= prev {
				violations = append(violations, fmt.Sprintf("%s: %d after %d", k, n, prev))
			}
			last[k] = n
			mu.Unlock()
			time.Sleep(2 * time.Millisecond)
			mu.Lock()
			inFlight[k] = false
			handled++
			mu.Unlock()
			return kgo.AckAccept
		}, kgo.ShareMaxRecords(20))
	}
	waitFor(t, 60*time.Second, "200 orders handled", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return handled >= 200
	})
	time.Sleep(300 * time.Millisecond) // the delayed record would arrive by now if it could
	mu.Lock()
	defer mu.Unlock()
	if len(violations) > 0 {
		t.Errorf("key ordering violated: %v", violations[:min(len(violations), 5)])
	}
	if _, ok := last["later"]; ok || handled != 200 {
		t.Errorf("the record due in an hour was delivered (handled %d)", handled)
	}
}

// TestShareGroupSurvivesLeaderLoss: the leader of the partition stops
// mid-stream; the new leader takes over the share state (from the
// partition's raft group), records in flight are redelivered, and every
// record is accepted: none is lost.
func TestShareGroupSurvivesLeaderLoss(t *testing.T) {
	bs := groupCluster(t)
	cl := newClient(t, bs[1])
	createRF(t, cl, "tasks", 1, 3)
	setGroupConfigs(t, cl, "crew", map[string]string{"share.auto.offset.reset": "earliest", "share.record.lock.duration.ms": "2000"})
	var seeds []string
	for _, b := range bs {
		seeds = append(seeds, b.KafkaAddr())
	}
	var mu sync.Mutex
	accepted := map[string]int{}
	for range 3 {
		w, err := kgo.NewClient(kgo.SeedBrokers(seeds...), kgo.ShareGroup("crew"), kgo.ConsumeTopics("tasks"),
			kgo.FetchMaxWait(300*time.Millisecond), kgo.ShareMaxRecords(10))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(w.Close)
		go func() {
			for {
				fs := w.PollFetches(context.Background())
				if fs.IsClientClosed() {
					return
				}
				fs.EachRecord(func(r *kgo.Record) {
					time.Sleep(time.Millisecond)
					mu.Lock()
					accepted[string(r.Value)]++
					mu.Unlock()
					w.MarkAcks(kgo.AckAccept, r)
				})
			}
		}()
	}
	produce := func(from, to int) {
		var recs []*kgo.Record
		for i := from; i < to; i++ {
			recs = append(recs, &kgo.Record{Topic: "tasks", Value: []byte(strconv.Itoa(i))})
		}
		if err := cl.ProduceSync(ctx(t), recs...).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	produce(0, 300)
	waitFor(t, 60*time.Second, "consumption under way", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(accepted) >= 50
	})
	alive := stopTasksLeader(t, bs)
	cl2 := newClient(t, alive)
	var recs []*kgo.Record
	for i := 300; i < 400; i++ {
		recs = append(recs, &kgo.Record{Topic: "tasks", Value: []byte(strconv.Itoa(i))})
	}
	if err := cl2.ProduceSync(ctx(t), recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 90*time.Second, "all 400 tasks accepted", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(accepted) == 400
	})
	mu.Lock()
	defer mu.Unlock()
	again := 0
	for _, n := range accepted {
		if n > 1 {
			again++
		}
	}
	t.Logf("%d of 400 tasks were handled more than once (in flight at the leader change: at-least-once)", again)
}

// TestShareMetrics: a worker that holds what it fetched fills a small
// in-flight window; /metrics says the window is full, how many records
// are acquired, and how old the oldest unacknowledged record is.
func TestShareMetrics(t *testing.T) {
	b := startBroker(t, t.TempDir())
	cl := newClient(t, b)
	createTopic(t, b, "backlog", 1, nil)
	setGroupConfigs(t, cl, "slow", map[string]string{"share.auto.offset.reset": "earliest", "share.partition.max.record.locks": "100"})
	old := time.Now().Add(-time.Hour)
	var recs []*kgo.Record
	for i := range 150 {
		recs = append(recs, &kgo.Record{Topic: "backlog", Value: []byte(strconv.Itoa(i)), Timestamp: old})
	}
	if err := cl.ProduceSync(ctx(t), recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	w, err := kgo.NewClient(kgo.SeedBrokers(b.KafkaAddr()), kgo.ShareGroup("slow"), kgo.ConsumeTopics("backlog"), kgo.FetchMaxWait(300*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	held := 0
	c := ctx(t)
	for held == 0 { // poll once and never again: the records stay acquired
		held = w.PollFetches(c).NumRecords()
		if c.Err() != nil {
			t.Fatal("nothing fetched")
		}
	}
	labels := []string{"group", "slow", "topic", "backlog", "partition", "0"}
	waitFor(t, 20*time.Second, "share metrics", func() bool {
		ss := scrape(t, b)
		full, ok1 := find(ss, "sluice_share_window_full", labels...)
		acq, ok2 := find(ss, "sluice_share_records", append(labels, "state", "acquired")...)
		lag, ok3 := find(ss, "sluice_share_lag_seconds", labels...)
		return ok1 && ok2 && ok3 && full == 1 && acq == float64(held) && lag > 3500
	})
	if held != 100 {
		t.Errorf("fetched %d records, want the window of 100", held)
	}
}

// TestShareRenewKeepsTheLock: a worker renews its acquisition lock
// (RENEW, ShareAcknowledge v2) while it works past the lock duration, so
// the record is not delivered to anyone else meanwhile.
func TestShareRenewKeepsTheLock(t *testing.T) {
	b := startBroker(t, t.TempDir())
	cl := newClient(t, b)
	createTopic(t, b, "reports", 1, nil)
	setGroupConfigs(t, cl, "builders", map[string]string{"share.auto.offset.reset": "earliest", "share.record.lock.duration.ms": "1000"})
	if err := cl.ProduceSync(ctx(t), &kgo.Record{Topic: "reports", Value: []byte("long job")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	deliveries := 0
	done := make(chan struct{})
	a, err := kgo.NewClient(kgo.SeedBrokers(b.KafkaAddr()), kgo.ShareGroup("builders"), kgo.ConsumeTopics("reports"), kgo.FetchMaxWait(300*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	go func() {
		for {
			fs := a.PollFetches(context.Background())
			if fs.IsClientClosed() {
				return
			}
			fs.EachRecord(func(r *kgo.Record) {
				mu.Lock()
				deliveries++
				mu.Unlock()
				for range 4 { // 2.8 s of work against a 1 s lock
					time.Sleep(700 * time.Millisecond)
					r.Ack(kgo.AckRenew)
					if err := a.FlushAcks(context.Background()); err != nil {
						t.Errorf("renew: %v", err)
					}
				}
				a.MarkAcks(kgo.AckAccept, r)
				close(done)
			})
		}
	}()
	waitFor(t, 20*time.Second, "the first delivery", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return deliveries == 1
	})
	startShareWorker(t, b, "builders", "reports", func(r *kgo.Record) kgo.AckStatus {
		mu.Lock()
		deliveries++
		mu.Unlock()
		return kgo.AckAccept
	})
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("the long job never finished")
	}
	time.Sleep(500 * time.Millisecond)
	mu.Lock()
	defer mu.Unlock()
	if deliveries != 1 {
		t.Errorf("the record was delivered %d times although its lock was renewed", deliveries)
	}
}

// stopTasksLeader shuts down the broker leading tasks/0 and returns one of
// the brokers still running.
func stopTasksLeader(t *testing.T, bs map[int32]*Broker) (alive *Broker) {
	t.Helper()
	var leader *Broker
	for _, b := range bs {
		if p := b.reg.get("tasks").partition(0); p != nil && p.IsLeader() {
			leader = b
		}
	}
	if leader == nil {
		t.Fatal("no leader")
	}
	leader.Shutdown(context.Background())
	for _, b := range bs {
		if b != leader {
			alive = b
		}
	}
	return alive
}
