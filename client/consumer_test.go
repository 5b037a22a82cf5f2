package client_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluicemq/sluice/client"
)

// produceN writes values "0".."n-1" to partition 0 of a new one-partition
// topic and returns its name.
func produceN(t *testing.T, c *client.Client, n int, ts func(i int) time.Time) string {
	t.Helper()
	topic := uniq(t, "t")
	createTopic(t, c, topic, 1)
	var rs []*client.Record
	for i := range n {
		r := &client.Record{Topic: topic, Value: []byte(strconv.Itoa(i))}
		if ts != nil {
			r.Timestamp = ts(i)
		}
		rs = append(rs, r)
	}
	if err := c.ProduceSync(testCtx(t), rs...); err != nil {
		t.Fatal(err)
	}
	return topic
}

func committed(t *testing.T, c *client.Client, group, topic string) int64 {
	t.Helper()
	offs, err := c.Admin().CommittedOffsets(testCtx(t), group)
	if err != nil {
		t.Fatal(err)
	}
	if o, ok := offs[topic][0]; ok {
		return o
	}
	return -1
}

func offsets(rs []*client.Record) []int64 {
	var out []int64
	for _, r := range rs {
		out = append(out, r.Offset)
	}
	return out
}

// A handler that fails once is retried in place: the record is handled
// again, nothing after it is handled first, and the commit reaches the end.
func TestAtLeastOnceRetry(t *testing.T) {
	c := newClient(t)
	topic := produceN(t, c, 10, nil)
	group := uniq(t, "g")
	var attempts []int64
	var mu sync.Mutex
	failed := false
	cs := startConsumer(t, c, group, []string{topic}, func(_ context.Context, r *client.Record) error {
		mu.Lock()
		defer mu.Unlock()
		attempts = append(attempts, r.Offset)
		if r.Offset == 4 && !failed {
			failed = true
			return errors.New("smtp: 421 try again later")
		}
		return nil
	}, client.Retries(2), client.RetryBackoff(10*time.Millisecond, 20*time.Millisecond))
	got := cs.wait(t, 10)
	if err := cs.stop(); err != nil {
		t.Fatal(err)
	}
	if want := []int64{0, 1, 2, 3, 4, 4, 5, 6, 7, 8, 9}; fmt.Sprint(attempts) != fmt.Sprint(want) {
		t.Fatalf("handler calls at offsets %v, want %v", attempts, want)
	}
	if fmt.Sprint(offsets(got)) != "[0 1 2 3 4 5 6 7 8 9]" {
		t.Fatalf("handled %v", offsets(got))
	}
	if o := committed(t, c, group, topic); o != 10 {
		t.Fatalf("committed %d after handling everything, want 10", o)
	}
}

// By default a failing handler stops the consumer: the commit stops just
// before the failed record, and the group resumes with it.
func TestAtLeastOnceStopAndRedeliver(t *testing.T) {
	c := newClient(t)
	topic := produceN(t, c, 10, nil)
	group := uniq(t, "g")
	cs := startConsumer(t, c, group, []string{topic}, func(_ context.Context, r *client.Record) error {
		if r.Offset == 6 {
			return errors.New("database down")
		}
		return nil
	}, client.Retries(1), client.RetryBackoff(time.Millisecond, time.Millisecond))
	err := <-cs.done
	cs.done <- err
	var he *client.HandlerError
	if !errors.As(err, &he) || he.Record.Offset != 6 || he.Attempts != 2 || he.Err.Error() != "database down" {
		t.Fatalf("Consume returned %v, want a HandlerError at offset 6 after 2 attempts", err)
	}
	if fmt.Sprint(offsets(cs.records())) != "[0 1 2 3 4 5]" {
		t.Fatalf("handled %v", offsets(cs.records()))
	}
	if o := committed(t, c, group, topic); o != 6 {
		t.Fatalf("committed %d, want 6: the failed record must not be skipped", o)
	}

	again := startConsumer(t, c, group, []string{topic}, nil)
	got := again.wait(t, 4)
	if fmt.Sprint(offsets(got)) != "[6 7 8 9]" {
		t.Fatalf("after restart handled %v, want [6 7 8 9]", offsets(got))
	}
}

// A Permanent error skips the retries and DeadLetter parks the record with
// where it came from, then the partition moves on.
func TestDeadLetter(t *testing.T) {
	c := newClient(t)
	topic := produceN(t, c, 5, nil)
	dlq := topic + ".dlq"
	createTopic(t, c, dlq, 1)
	group := uniq(t, "g")
	var calls atomic.Int64
	cs := startConsumer(t, c, group, []string{topic}, func(_ context.Context, r *client.Record) error {
		calls.Add(1)
		if r.Offset == 2 {
			return client.Permanent(errors.New("malformed address"))
		}
		return nil
	}, client.Retries(5), client.OnError(c.DeadLetter(dlq)))
	got := cs.wait(t, 4)
	if err := cs.stop(); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(offsets(got)) != "[0 1 3 4]" || calls.Load() != 5 {
		t.Fatalf("handled %v in %d calls, want [0 1 3 4] in 5 (no retry of a permanent error)", offsets(got), calls.Load())
	}
	if o := committed(t, c, group, topic); o != 5 {
		t.Fatalf("committed %d, want 5", o)
	}
	parked := startConsumer(t, c, uniq(t, "dlq"), []string{dlq}, nil).wait(t, 1)
	h := map[string]string{}
	for _, x := range parked[0].Headers {
		h[x.Key] = string(x.Value)
	}
	if string(parked[0].Value) != "2" || h[client.HeaderDLQTopic] != topic || h[client.HeaderDLQPartition] != "0" ||
		h[client.HeaderDLQOffset] != "2" || h[client.HeaderDLQError] != "malformed address" {
		t.Fatalf("parked %q with headers %v", parked[0].Value, h)
	}
}

// Batches hold one partition's records in order; a batch that fails is
// retried whole and its records are committed only after it succeeds.
func TestConsumeBatches(t *testing.T) {
	c := newClient(t)
	topic := uniq(t, "t")
	createTopic(t, c, topic, 4)
	var rs []*client.Record
	for i := range 200 {
		rs = append(rs, &client.Record{Topic: topic, Key: fmt.Appendf(nil, "k%d", i%13), Value: []byte(strconv.Itoa(i))})
	}
	if err := c.ProduceSync(testCtx(t), rs...); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(testCtx(t))
	defer cancel()
	var (
		mu      sync.Mutex
		total   int
		failOne = true
		last    = map[int32]int64{}
	)
	done := make(chan error, 1)
	go func() {
		done <- c.ConsumeBatches(ctx, uniq(t, "g"), []string{topic}, func(_ context.Context, rs []*client.Record) error {
			mu.Lock()
			defer mu.Unlock()
			if failOne {
				failOne = false
				return errors.New("transient")
			}
			for i, r := range rs {
				if r.Partition != rs[0].Partition {
					t.Errorf("batch mixes partitions %d and %d", rs[0].Partition, r.Partition)
				}
				if i > 0 && r.Offset != rs[i-1].Offset+1 {
					t.Errorf("batch offsets not consecutive: %d after %d", r.Offset, rs[i-1].Offset)
				}
			}
			if l, ok := last[rs[0].Partition]; ok && rs[0].Offset != l+1 {
				t.Errorf("partition %d: batch starts at %d after %d", rs[0].Partition, rs[0].Offset, l)
			}
			last[rs[0].Partition] = rs[len(rs)-1].Offset
			total += len(rs)
			if total == 200 {
				cancel()
			}
			return nil
		}, client.Retries(1), client.RetryBackoff(time.Millisecond, time.Millisecond), client.MaxPollRecords(30))
	}()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if total != 200 {
		t.Fatalf("handled %d records, want 200", total)
	}
}

// StartAt places a new group by time, offset or at the end; committed
// offsets then win over StartAt.
func TestReplayFromTimestampOffsetAndEnd(t *testing.T) {
	c := newClient(t)
	base := time.Now().Add(-time.Hour).Truncate(time.Millisecond)
	topic := produceN(t, c, 10, func(i int) time.Time { return base.Add(time.Duration(i) * time.Minute) })

	byTime := startConsumer(t, c, uniq(t, "time"), []string{topic}, nil, client.StartAt(client.AtTime(base.Add(6*time.Minute))))
	if got := offsets(byTime.wait(t, 4)); fmt.Sprint(got) != "[6 7 8 9]" {
		t.Fatalf("from a timestamp: %v", got)
	}
	byOffset := startConsumer(t, c, uniq(t, "offset"), []string{topic}, nil, client.StartAt(client.AtOffset(3)))
	if got := offsets(byOffset.wait(t, 7)); fmt.Sprint(got) != "[3 4 5 6 7 8 9]" {
		t.Fatalf("from offset 3: %v", got)
	}

	group := uniq(t, "end")
	atEnd := startConsumer(t, c, group, []string{topic}, nil, client.StartAt(client.End()))
	time.Sleep(time.Second) // joined and positioned at the end, we hope; the assertion holds either way
	if err := c.ProduceSync(testCtx(t), &client.Record{Topic: topic, Value: []byte("new")}); err != nil {
		t.Fatal(err)
	}
	got := atEnd.wait(t, 1)
	if len(got) != 1 || got[0].Offset != 10 {
		t.Fatalf("from the end: %v", offsets(got))
	}
	if err := atEnd.stop(); err != nil {
		t.Fatal(err)
	}
	// The group committed 11; StartAt(Beginning) must not rewind it.
	resumed := startConsumer(t, c, group, []string{topic}, nil, client.StartAt(client.Beginning()))
	if err := c.ProduceSync(testCtx(t), &client.Record{Topic: topic, Value: []byte("newer")}); err != nil {
		t.Fatal(err)
	}
	if got := offsets(resumed.wait(t, 1)); fmt.Sprint(got) != "[11]" {
		t.Fatalf("a committed group restarted at %v, want [11]", got)
	}
}

func TestConsumerOptionValidation(t *testing.T) {
	c := newClient(t)
	ctx := testCtx(t)
	h := func(context.Context, *client.Record) error { return nil }
	tests := []struct {
		name  string
		group string
		top   []string
		h     client.Handler
		opts  []client.ConsumerOption
		want  string
	}{
		{"no group", "", []string{"t"}, h, nil, "group: want a non-empty name"},
		{"no topics", "g", nil, h, nil, "topics: want one or more"},
		{"nil handler", "g", []string{"t"}, nil, nil, "nil handler"},
		{"negative retries", "g", []string{"t"}, h, []client.ConsumerOption{client.Retries(-1)}, "retries -1: want >= 0"},
		{"backoff", "g", []string{"t"}, h, []client.ConsumerOption{client.RetryBackoff(time.Second, time.Millisecond)}, "retry backoff 1s..1ms"},
		{"commit interval", "g", []string{"t"}, h, []client.ConsumerOption{client.CommitInterval(time.Millisecond)}, "commit interval 1ms: want 100ms or more"},
		{"max poll", "g", []string{"t"}, h, []client.ConsumerOption{client.MaxPollRecords(0)}, "max poll records 0"},
		{"session", "g", []string{"t"}, h, []client.ConsumerOption{client.SessionTimeout(time.Millisecond)}, "session timeout 1ms"},
		{"on error", "g", []string{"t"}, h, []client.ConsumerOption{client.OnError(nil)}, "OnError: nil handler"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := c.Consume(ctx, tc.group, tc.top, tc.h, tc.opts...)
			if !errors.Is(err, client.ErrInvalidOption) || !containsStr(err.Error(), tc.want) {
				t.Fatalf("got %v, want ErrInvalidOption saying %q", err, tc.want)
			}
		})
	}
}

// A second member joining mid-stream takes partitions over from the first:
// the first commits what it handled before giving them up, so nothing is
// lost and nothing handled is handed out again.
func TestRebalanceCommitsOnRevoke(t *testing.T) {
	c := newClient(t)
	topic := uniq(t, "t")
	createTopic(t, c, topic, 4)
	group := uniq(t, "g")
	produce := func(from, to int) {
		var rs []*client.Record
		for i := from; i < to; i++ {
			rs = append(rs, &client.Record{Topic: topic, Key: fmt.Appendf(nil, "k%d", i), Value: []byte(strconv.Itoa(i))})
		}
		if err := c.ProduceSync(testCtx(t), rs...); err != nil {
			t.Fatal(err)
		}
	}
	produce(0, 100)
	a := startConsumer(t, c, group, []string{topic}, nil, client.MaxPollRecords(10))
	a.wait(t, 100)
	b := startConsumer(t, c, group, []string{topic}, nil)
	waitFor(t, "two members", func() bool {
		d, err := c.Admin().DescribeGroup(testCtx(t), group)
		return err == nil && d.State == "Stable" && len(d.Members) == 2
	})
	produce(100, 200)
	waitFor(t, "200 records handled", func() bool { return len(a.records())+len(b.records()) >= 200 })
	time.Sleep(300 * time.Millisecond) // room for a duplicate to show up
	seen := map[string]int{}
	for _, r := range append(a.records(), b.records()...) {
		seen[string(r.Value)]++
	}
	for v, n := range seen {
		if n != 1 {
			t.Errorf("record %s handled %d times", v, n)
		}
	}
	if len(seen) != 200 {
		t.Fatalf("%d distinct records handled, want 200", len(seen))
	}
	if len(b.records()) == 0 {
		t.Fatal("the second member got nothing")
	}
}
