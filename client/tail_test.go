package client_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/sluicemq/sluice/client"
)

// Tail without a group: to the end from the beginning, an offset and a
// time, on chosen partitions; following new records; and its errors.
func TestTail(t *testing.T) {
	ctx := testCtx(t)
	c := newClient(t)
	base := time.Now().Add(-time.Hour).Truncate(time.Millisecond)
	topic := produceN(t, c, 10, func(i int) time.Time { return base.Add(time.Duration(i) * time.Minute) })

	read := func(o client.TailOptions) []int64 {
		t.Helper()
		var got []int64
		if err := c.Tail(ctx, topic, o, func(r *client.Record) error {
			got = append(got, r.Offset)
			return nil
		}); err != nil {
			t.Fatalf("tail %+v: %v", o, err)
		}
		return got
	}
	for _, tc := range []struct {
		o    client.TailOptions
		want string
	}{
		{client.TailOptions{StopAtEnd: true}, "[0 1 2 3 4 5 6 7 8 9]"},
		{client.TailOptions{From: client.AtOffset(7), StopAtEnd: true}, "[7 8 9]"},
		{client.TailOptions{From: client.AtTime(base.Add(8 * time.Minute)), StopAtEnd: true}, "[8 9]"},
		{client.TailOptions{From: client.End(), StopAtEnd: true}, "[]"},
		{client.TailOptions{Partitions: []int32{0}, StopAtEnd: true}, "[0 1 2 3 4 5 6 7 8 9]"},
	} {
		if got := fmt.Sprint(read(tc.o)); got != tc.want {
			t.Errorf("tail %+v: %s, want %s", tc.o, got, tc.want)
		}
	}

	// Following: a record produced after the start arrives; the callback's
	// error stops Tail and is returned.
	stop := errors.New("enough")
	done := make(chan error, 1)
	go func() {
		done <- c.Tail(ctx, topic, client.TailOptions{From: client.End()}, func(r *client.Record) error {
			if string(r.Value) != "late" || r.Offset != 10 {
				return fmt.Errorf("unexpected record %d %q", r.Offset, r.Value)
			}
			return stop
		})
	}()
	time.Sleep(300 * time.Millisecond) // let Tail resolve the end first
	if err := c.ProduceSync(ctx, &client.Record{Topic: topic, Value: []byte("late")}); err != nil {
		t.Fatal(err)
	}
	if err := <-done; !errors.Is(err, stop) {
		t.Fatalf("follow: %v, want the callback's error", err)
	}

	// Cancelling ends a follow with nil.
	cctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	if err := c.Tail(cctx, topic, client.TailOptions{From: client.End()}, func(*client.Record) error { return nil }); err != nil {
		t.Fatalf("cancelled follow: %v, want nil", err)
	}

	if err := c.Tail(ctx, uniq(t, "missing"), client.TailOptions{StopAtEnd: true}, func(*client.Record) error { return nil }); !errors.Is(err, client.ErrUnknownTopic) {
		t.Fatalf("missing topic: %v, want ErrUnknownTopic", err)
	}
	if err := c.Tail(ctx, topic, client.TailOptions{Partitions: []int32{3}}, func(*client.Record) error { return nil }); !errors.Is(err, client.ErrUnknownTopic) {
		t.Fatalf("missing partition: %v, want ErrUnknownTopic", err)
	}
}

// GroupStatus (HTTP, with lag in seconds) and PlanResetOffsets (a dry
// run that commits nothing).
func TestGroupStatusAndPlanReset(t *testing.T) {
	ctx := testCtx(t)
	c := newClient(t)
	adm := c.Admin()
	old := time.Now().Add(-time.Hour).Truncate(time.Millisecond)
	topic := produceN(t, c, 10, func(int) time.Time { return old })
	group := uniq(t, "g")
	cs := startConsumer(t, c, group, []string{topic}, nil, client.CommitInterval(100*time.Millisecond))
	cs.wait(t, 10)
	waitFor(t, "commit of 10", func() bool { return committed(t, c, group, topic) == 10 })

	st, err := adm.GroupStatus(ctx, group)
	if err != nil {
		t.Fatal(err)
	}
	if st.Group != group || st.State != "Stable" || len(st.Members) != 1 || len(st.Members[0].Assigned) != 1 ||
		len(st.Partitions) != 1 || st.Partitions[0].HighWatermark != 10 || st.Totals.LagRecords != 0 {
		t.Fatalf("status %+v", st)
	}

	plan, err := adm.PlanResetOffsets(ctx, group, topic, client.AtOffset(4))
	if err != nil {
		t.Fatalf("plan while the group runs: %v", err)
	}
	if len(plan) != 1 || plan[0] != (client.OffsetReset{Partition: 0, Old: 10, New: 4}) {
		t.Fatalf("plan %+v", plan)
	}
	if err := cs.stop(); err != nil {
		t.Fatal(err)
	}
	if got := committed(t, c, group, topic); got != 10 {
		t.Fatalf("committed %d after a dry run, want 10", got)
	}
	if _, err := adm.ResetOffsets(ctx, group, topic, client.AtOffset(4)); err != nil {
		t.Fatal(err)
	}
	st, err = adm.GroupStatus(ctx, group)
	if err != nil {
		t.Fatal(err)
	}
	// The next record to consume is an hour old.
	p := st.Partitions[0]
	if p.Committed != 4 || p.LagRecords != 6 || p.LagSeconds < 3500 || st.Totals.LagRecords != 6 || st.Totals.MaxLagSeconds != p.LagSeconds {
		t.Fatalf("status after reset %+v", st)
	}
	if _, err := adm.GroupStatus(ctx, uniq(t, "missing")); !errors.Is(err, client.ErrNotFound) {
		t.Fatalf("missing group: %v, want ErrNotFound", err)
	}
}
