package client_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/sluicemq/sluice/client"
)

// startWorker runs a worker in the background until stop is called or
// the test ends.
func startWorker(t *testing.T, c *client.Client, group, topic string, h client.WorkerHandler, opts ...client.WorkerOption) (w *client.Worker, stop func()) {
	t.Helper()
	w, err := client.NewWorker(c, group, topic, h, opts...)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- w.Run(context.Background()) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if err := w.Stop(ctx); err != nil {
				t.Errorf("stop: %v", err)
			}
			if err := <-done; err != nil {
				t.Errorf("run: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return w, stop
}

func setShareConfig(t *testing.T, c *client.Client, group string, kv map[string]string) {
	t.Helper()
	if err := c.Admin().SetShareGroupConfig(testCtx(t), group, kv); err != nil {
		t.Fatal(err)
	}
}

func headerMap(r *client.Record) map[string]string {
	m := map[string]string{}
	for _, h := range r.Headers {
		m[h.Key] = string(h.Value)
	}
	return m
}

// The sign-up email story on Worker: four workers share a two-partition
// topic; "flaky" fails twice (Retry) and is redelivered until it succeeds;
// "poison" is rejected and "doomed" keeps failing until the delivery
// limit, and both land in the dead-letter topic with their provenance and
// their last error (the reject reason; the last delivery's error).
// Redrive copies them back to the source topic, where the workers (now
// accepting everything) handle them; a second Redrive copies nothing.
func TestWorkerEmailStory(t *testing.T) {
	c := newClient(t)
	adm := c.Admin()
	topic, group, dlq := uniq(t, "signups"), uniq(t, "mailers"), uniq(t, "dlq")
	createTopic(t, c, topic, 2)
	setShareConfig(t, c, group, map[string]string{
		client.ShareAutoOffsetReset:    "earliest",
		client.ShareDeliveryCountLimit: "3",
		client.ShareDeadLetterTopic:    dlq,
		client.ShareRetryBackoffMs:     "50",
	})
	cfg, err := adm.ShareGroupConfig(testCtx(t), group)
	if err != nil {
		t.Fatal(err)
	}
	if i := slices.IndexFunc(cfg, func(e client.ConfigEntry) bool { return e.Name == client.ShareDeadLetterTopic }); i < 0 || cfg[i].Value != dlq || cfg[i].Source != "group" {
		t.Fatalf("share group config: %+v", cfg)
	}
	if i := slices.IndexFunc(cfg, func(e client.ConfigEntry) bool { return e.Name == client.ShareKeyOrdering }); i < 0 || cfg[i].Value != "false" || cfg[i].Source != "default" {
		t.Fatalf("share group config default: %+v", cfg)
	}

	var recs []*client.Record
	for i := range 40 {
		recs = append(recs, &client.Record{Topic: topic, Key: fmt.Appendf(nil, "user-%d", i), Value: fmt.Appendf(nil, "email %d", i)})
	}
	recs = append(recs,
		&client.Record{Topic: topic, Key: []byte("flaky"), Value: []byte("flaky")},
		&client.Record{Topic: topic, Key: []byte("poison"), Value: []byte("poison"), Headers: []client.Header{{Key: "trace", Value: []byte("p1")}}},
		&client.Record{Topic: topic, Key: []byte("doomed"), Value: []byte("doomed")})
	if err := c.ProduceSync(testCtx(t), recs...); err != nil {
		t.Fatal(err)
	}
	poison := recs[41]

	var (
		mu         sync.Mutex
		accepting  bool // after the redrive: everything succeeds
		accepted   = map[string]int{}
		deliveries = map[string][]int32{}
		redriven   = map[string]map[string]string{} // value -> headers of the redriven copy
	)
	handle := func(_ context.Context, r *client.Record) error {
		mu.Lock()
		defer mu.Unlock()
		v := string(r.Value)
		deliveries[v] = append(deliveries[v], r.DeliveryCount())
		h := headerMap(r)
		if _, ok := h[client.HeaderRedrivenFrom]; ok {
			redriven[v] = h
		}
		switch {
		case accepting:
		case v == "poison":
			return client.Reject("mailbox does not exist")
		case v == "doomed":
			return fmt.Errorf("smtp timeout (delivery %d)", r.DeliveryCount())
		case v == "flaky" && r.DeliveryCount() < 3:
			return client.Retry(errors.New("smtp 451, try again"))
		}
		accepted[v]++
		return nil
	}
	var workers []*client.Worker
	for range 4 {
		w, _ := startWorker(t, c, group, topic, handle, client.Concurrency(2), client.MaxRecords(10))
		workers = append(workers, w)
	}
	waitFor(t, "41 messages accepted", func() bool {
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
	if got := deliveries["flaky"]; fmt.Sprint(got) != "[1 2 3]" {
		t.Errorf("flaky deliveries %v, want [1 2 3]", got)
	}
	mu.Unlock()

	// Both dead letters, with their provenance.
	var dls []client.DeadLetterRecord
	waitFor(t, "two dead letters", func() bool {
		dls, err = adm.DeadLetters(testCtx(t), dlq, 0)
		return err == nil && len(dls) == 2
	})
	byValue := map[string]client.DeadLetterRecord{}
	for _, d := range dls {
		byValue[string(d.Record.Value)] = d
	}
	p := byValue["poison"]
	if p.SourceTopic != topic || p.SourcePartition != poison.Partition || p.SourceOffset != poison.Offset || p.Reason != client.ReasonRejected ||
		p.DeliveryCount != 1 || p.Group != group || string(p.Record.Key) != "poison" || p.SourceTime.UnixMilli() != poison.Timestamp.UnixMilli() ||
		p.Error != "mailbox does not exist" {
		t.Errorf("poison dead letter: %+v", p)
	}
	if h := p.Headers(); len(h) != 1 || h[0].Key != "trace" {
		t.Errorf("poison's original headers: %v", h)
	}
	if d := byValue["doomed"]; d.Reason != client.ReasonDeliveryLimit || d.DeliveryCount != 3 || d.Error != "smtp timeout (delivery 3)" {
		t.Errorf("doomed dead letter: %+v", d)
	}
	mu.Lock()
	if got := deliveries["doomed"]; fmt.Sprint(got) != "[1 2 3]" {
		t.Errorf("doomed deliveries %v, want the limit of 3", got)
	}
	accepting = true
	mu.Unlock()
	var st client.WorkerStats
	for _, w := range workers {
		s := w.Stats()
		st.Accepted, st.Released, st.Rejected = st.Accepted+s.Accepted, st.Released+s.Released, st.Rejected+s.Rejected
	}
	if st.Accepted != 41 || st.Rejected != 1 || st.Released != 5 {
		t.Errorf("worker stats %+v: want 41 accepted, 1 rejected, 5 released (flaky twice, doomed three times)", st)
	}

	one, err := adm.ReadDeadLetter(testCtx(t), dlq, p.Record.Partition, p.Record.Offset)
	if err != nil || string(one.Record.Value) != "poison" || one.Reason != client.ReasonRejected {
		t.Fatalf("read dead letter: %+v %v", one, err)
	}
	if _, err := adm.ReadDeadLetter(testCtx(t), dlq, 0, 99); !errors.Is(err, client.ErrNotFound) {
		t.Fatalf("read dead letter past the end: %v, want ErrNotFound", err)
	}

	res, err := adm.Redrive(testCtx(t), dlq, client.RedriveOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if res.Copied != 2 || res.Remaining != 0 || res.Sources[topic] != 2 || res.Group != "sluice-redrive-"+dlq ||
		len(res.Partitions) != 1 || res.Partitions[0].Next != 2 {
		t.Fatalf("redrive: %+v", res)
	}
	waitFor(t, "the redriven messages handled", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return accepted["poison"] == 1 && accepted["doomed"] == 1
	})
	mu.Lock()
	h := redriven["poison"]
	mu.Unlock()
	if h[client.HeaderRedrivenFrom] != fmt.Sprintf("%s/%d/%d", dlq, p.Record.Partition, p.Record.Offset) || h["trace"] != "p1" || h[client.HeaderDeadLetterReason] != "" {
		t.Errorf("redriven copy's headers: %v", h)
	}
	res, err = adm.Redrive(testCtx(t), dlq, client.RedriveOptions{})
	if err != nil || res.Copied != 0 || res.Remaining != 0 {
		t.Fatalf("second redrive copied again: %+v %v", res, err)
	}

	gs, err := adm.ListShareGroups(testCtx(t))
	if err != nil || !slices.ContainsFunc(gs, func(g client.GroupInfo) bool { return g.Name == group && g.ProtocolType == "share" }) {
		t.Fatalf("list share groups: %+v %v", gs, err)
	}
	d, err := adm.DescribeShareGroup(testCtx(t), group)
	if err != nil {
		t.Fatal(err)
	}
	assigned := map[int32]bool{}
	for _, m := range d.Members {
		for _, p := range m.Assigned[topic] {
			assigned[p] = true
		}
		if !slices.Equal(m.Subscribed, []string{topic}) {
			t.Errorf("member %s subscribed to %v", m.ID, m.Subscribed)
		}
	}
	if d.State != "Stable" || len(d.Members) != 4 || len(assigned) != 2 || d.Coordinator != 1 {
		t.Fatalf("describe share group: %+v", d)
	}
}

// Redrive in pieces: Limit stops it (the rest is Remaining), a dry run
// copies and commits nothing, Filter passes records over, records without
// provenance are left alone, a custom Group keeps its own position, and a
// re-run continues where the last stopped.
func TestRedriveLimitFilterDryRun(t *testing.T) {
	c := newClient(t)
	adm := c.Admin()
	src, dlq := uniq(t, "src"), uniq(t, "dlq")
	createTopic(t, c, src, 1)
	createTopic(t, c, dlq, 1)
	var recs []*client.Record
	for i := range 10 {
		reason := client.ReasonDeliveryLimit
		if i%2 == 1 {
			reason = client.ReasonRejected
		}
		recs = append(recs, &client.Record{Topic: dlq, Key: fmt.Appendf(nil, "k%d", i), Value: fmt.Appendf(nil, "v%d", i), Headers: []client.Header{
			{Key: "app", Value: []byte("x")},
			{Key: client.HeaderDeadLetterTopic, Value: []byte(src)},
			{Key: client.HeaderDeadLetterPartition, Value: []byte("0")},
			{Key: client.HeaderDeadLetterOffset, Value: []byte(strconv.Itoa(100 + i))},
			{Key: client.HeaderDeadLetterReason, Value: []byte(reason)},
		}})
	}
	recs = append(recs, &client.Record{Topic: dlq, Value: []byte("not a dead letter")})
	if err := c.ProduceSync(testCtx(t), recs...); err != nil {
		t.Fatal(err)
	}
	count := func() int {
		n := 0
		if err := c.Tail(testCtx(t), src, client.TailOptions{StopAtEnd: true}, func(*client.Record) error { n++; return nil }); err != nil {
			t.Fatal(err)
		}
		return n
	}

	var progress []int
	res, err := adm.Redrive(testCtx(t), dlq, client.RedriveOptions{Limit: 3, Rate: 500, Progress: func(r client.RedriveResult) { progress = append(progress, r.Copied) }})
	if err != nil || res.Copied != 3 || res.Remaining != 8 || res.Partitions[0].Next != 3 || count() != 3 {
		t.Fatalf("limit 3 at 500/s: %+v %v (source has %d)", res, err, count())
	}
	if len(progress) == 0 || progress[len(progress)-1] != 3 || !slices.IsSorted(progress) {
		t.Errorf("progress: %v", progress)
	}
	for range 2 { // a dry run moves nothing, so twice gives the same
		res, err = adm.Redrive(testCtx(t), dlq, client.RedriveOptions{DryRun: true})
		if err != nil || !res.DryRun || res.Copied != 7 || res.Invalid != 1 || res.Partitions[0].From != 3 || count() != 3 {
			t.Fatalf("dry run: %+v %v", res, err)
		}
	}
	onlyLimit := func(d client.DeadLetterRecord) bool { return d.Reason == client.ReasonDeliveryLimit }
	res, err = adm.Redrive(testCtx(t), dlq, client.RedriveOptions{Filter: onlyLimit, Rate: 1000})
	if err != nil || res.Copied != 3 || res.Skipped != 4 || res.Invalid != 1 || res.Remaining != 0 || count() != 6 {
		t.Fatalf("filtered: %+v %v", res, err)
	}
	res, err = adm.Redrive(testCtx(t), dlq, client.RedriveOptions{})
	if err != nil || res.Copied != 0 || res.Partitions[0].From != 11 {
		t.Fatalf("re-run: %+v %v", res, err)
	}
	// Another group starts over: the rejected ones it can take now.
	res, err = adm.Redrive(testCtx(t), dlq, client.RedriveOptions{Group: "again-" + dlq, Filter: func(d client.DeadLetterRecord) bool { return !onlyLimit(d) }})
	if err != nil || res.Copied != 5 || count() != 11 {
		t.Fatalf("other group: %+v %v", res, err)
	}
	var got []*client.Record
	if err := c.Tail(testCtx(t), src, client.TailOptions{StopAtEnd: true}, func(r *client.Record) error { got = append(got, r); return nil }); err != nil {
		t.Fatal(err)
	}
	for _, r := range got {
		h := headerMap(r)
		if len(r.Headers) != 2 || h["app"] != "x" || h[client.HeaderRedrivenFrom] == "" {
			t.Errorf("copy %s: headers %v", r.Value, h)
		}
	}
	if _, err := adm.Redrive(testCtx(t), dlq, client.RedriveOptions{Rate: -1}); !errors.Is(err, client.ErrInvalidOption) {
		t.Errorf("negative rate: %v", err)
	}
	if _, err := adm.Redrive(testCtx(t), uniq(t, "missing"), client.RedriveOptions{}); !errors.Is(err, client.ErrUnknownTopic) {
		t.Errorf("unknown topic: %v", err)
	}
}

// Stop lets the handler in flight finish and accepts its record, and
// releases the records fetched but not handled: another worker gets them
// at once (the lock is an hour, so only the release explains it) and the
// accepted record is not delivered again.
func TestWorkerStopReleases(t *testing.T) {
	c := newClient(t)
	topic, group := uniq(t, "jobs"), uniq(t, "pool")
	createTopic(t, c, topic, 1)
	setShareConfig(t, c, group, map[string]string{client.ShareAutoOffsetReset: "earliest", client.ShareRecordLockDurationMs: "3600000"})
	var recs []*client.Record
	for i := range 10 {
		recs = append(recs, &client.Record{Topic: topic, Value: []byte(strconv.Itoa(i))})
	}
	if err := c.ProduceSync(testCtx(t), recs...); err != nil {
		t.Fatal(err)
	}
	started, unblock := make(chan string, 10), make(chan struct{})
	a, err := client.NewWorker(c, group, topic, func(_ context.Context, r *client.Record) error {
		started <- string(r.Value)
		<-unblock
		return nil
	}, client.MaxRecords(10))
	if err != nil {
		t.Fatal(err)
	}
	ran := make(chan error, 1)
	go func() { ran <- a.Run(context.Background()) }()
	first := <-started
	stopped := make(chan error, 1)
	go func() { stopped <- a.Stop(testCtx(t)) }()
	select {
	case err := <-stopped:
		t.Fatalf("Stop returned with a handler running: %v", err)
	case <-time.After(100 * time.Millisecond):
	}
	close(unblock)
	if err := <-stopped; err != nil {
		t.Fatal(err)
	}
	if err := <-ran; err != nil {
		t.Fatal(err)
	}
	if len(started) != 0 {
		t.Fatalf("handlers started after Stop: %d", len(started))
	}
	if st := a.Stats(); st.Accepted != 1 || st.Released != 9 {
		t.Fatalf("stats after stop: %+v, want 1 accepted and 9 released", st)
	}

	var mu sync.Mutex
	seen := map[string]int32{}
	startWorker(t, c, group, topic, func(_ context.Context, r *client.Record) error {
		mu.Lock()
		seen[string(r.Value)] = r.DeliveryCount()
		mu.Unlock()
		return nil
	})
	waitFor(t, "the released records handled by another worker", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(seen) == 9
	})
	mu.Lock()
	defer mu.Unlock()
	if _, ok := seen[first]; ok {
		t.Errorf("record %s, accepted at the stop, was delivered again", first)
	}
	for v, n := range seen {
		if n != 2 {
			t.Errorf("record %s: delivery %d, want 2", v, n)
		}
	}
}

// With share.key.ordering and concurrent handlers on several workers, two
// records of one key are never handled at once, and each key's records
// are handled in offset order.
func TestWorkerKeyOrdering(t *testing.T) {
	c := newClient(t)
	topic, group := uniq(t, "orders"), uniq(t, "shippers")
	createTopic(t, c, topic, 2)
	setShareConfig(t, c, group, map[string]string{client.ShareAutoOffsetReset: "earliest", client.ShareKeyOrdering: "true"})
	var recs []*client.Record
	for i := range 120 {
		recs = append(recs, &client.Record{Topic: topic, Key: fmt.Appendf(nil, "order-%d", i%6), Value: []byte(strconv.Itoa(i))})
	}
	if err := c.ProduceSync(testCtx(t), recs...); err != nil {
		t.Fatal(err)
	}
	var (
		mu         sync.Mutex
		inFlight   = map[string]bool{}
		last       = map[string]int{}
		handled    int
		violations []string
	)
	for range 2 {
		startWorker(t, c, group, topic, func(_ context.Context, r *client.Record) error {
			k := string(r.Key)
			n, _ := strconv.Atoi(string(r.Value))
			mu.Lock()
			if inFlight[k] {
				violations = append(violations, "two records of "+k+" at once")
			}
			if prev, ok := last[k]; ok && n <= prev {
				violations = append(violations, fmt.Sprintf("%s: %d after %d", k, n, prev))
			}
			inFlight[k], last[k] = true, n
			mu.Unlock()
			time.Sleep(time.Millisecond)
			mu.Lock()
			inFlight[k] = false
			handled++
			mu.Unlock()
			return nil
		}, client.Concurrency(4), client.MaxRecords(20))
	}
	waitFor(t, "120 orders handled", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return handled >= 120
	})
	mu.Lock()
	defer mu.Unlock()
	if len(violations) > 0 {
		t.Errorf("key order violated: %v", violations[:min(5, len(violations))])
	}
}

// Options and arguments are checked by NewWorker; the share-group admin
// calls answer typed errors.
func TestWorkerValidationAndShareAdminErrors(t *testing.T) {
	c := newClient(t)
	h := func(context.Context, *client.Record) error { return nil }
	for name, fn := range map[string]func() (*client.Worker, error){
		"no group":      func() (*client.Worker, error) { return client.NewWorker(c, "", "t", h) },
		"no topic":      func() (*client.Worker, error) { return client.NewWorker(c, "g", "", h) },
		"nil handler":   func() (*client.Worker, error) { return client.NewWorker(c, "g", "t", nil) },
		"concurrency 0": func() (*client.Worker, error) { return client.NewWorker(c, "g", "t", h, client.Concurrency(0)) },
		"max records 0": func() (*client.Worker, error) { return client.NewWorker(c, "g", "t", h, client.MaxRecords(0)) },
	} {
		if _, err := fn(); !errors.Is(err, client.ErrInvalidOption) {
			t.Errorf("%s: %v, want ErrInvalidOption", name, err)
		}
	}
	w, err := client.NewWorker(c, "g", "t", h)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Stop(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	if err := w.Run(testCtx(t)); err != nil {
		t.Fatalf("run after stop: %v", err)
	}
	if err := w.Run(testCtx(t)); !errors.Is(err, client.ErrInvalidOption) {
		t.Fatalf("second run: %v", err)
	}

	if reason, ok := client.IsRejected(fmt.Errorf("wrapped: %w", client.Reject("bounced"))); !ok || reason != "bounced" {
		t.Errorf("IsRejected: %q %v", reason, ok)
	}
	if client.Retry(nil) != nil {
		t.Error("Retry(nil) is not nil")
	}
	if h := client.NotBefore(time.UnixMilli(1700000000123)); h.Key != client.HeaderNotBefore || string(h.Value) != "1700000000123" {
		t.Errorf("NotBefore: %+v", h)
	}

	adm := c.Admin()
	err = adm.SetShareGroupConfig(testCtx(t), uniq(t, "g"), map[string]string{"share.bogus": "1"})
	if !errors.Is(err, kerr.InvalidConfig) {
		t.Errorf("unknown config: %v", err)
	}
	err = adm.SetShareGroupConfig(testCtx(t), uniq(t, "g"), map[string]string{client.ShareDeliveryCountLimit: "1"})
	if !errors.Is(err, kerr.InvalidConfig) {
		t.Errorf("limit out of range: %v", err)
	}
	if _, err := adm.DescribeShareGroup(testCtx(t), uniq(t, "nobody")); !errors.Is(err, client.ErrUnknownGroup) {
		t.Errorf("unknown share group: %v", err)
	}
	if _, err := adm.DeadLetters(testCtx(t), uniq(t, "missing"), 0); !errors.Is(err, client.ErrUnknownTopic) {
		t.Errorf("dead letters of an unknown topic: %v", err)
	}
}
