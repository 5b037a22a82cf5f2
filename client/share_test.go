package client_test

import (
	"context"
	"errors"
	"maps"
	"slices"
	"strconv"
	"sync"
	"testing"

	"github.com/sluicemq/sluice/client"
)

// runWorker runs a worker until the returned stop is called (or the test
// ends), recording each record's delivery count by offset.
func runWorker(t *testing.T, c *client.Client, group, topic string) (got func() map[int64]int32, stop func()) {
	t.Helper()
	var mu sync.Mutex
	seen := map[int64]int32{}
	_, stop = startWorker(t, c, group, topic, func(_ context.Context, r *client.Record) error {
		mu.Lock()
		defer mu.Unlock()
		seen[r.Offset] = r.DeliveryCount()
		return nil
	})
	got = func() map[int64]int32 {
		mu.Lock()
		defer mu.Unlock()
		return maps.Clone(seen)
	}
	return got, stop
}

// Share-group offsets through the Admin API: the start offset shows after
// a worker finished records; a reset or delete is refused while it runs
// (a plan is not); after it stopped, resets move the start (clamped to the
// log), a worker then gets the records from there as first deliveries,
// and a delete leaves no offsets. A reset of a new group creates it.
func TestAdminShareGroupOffsets(t *testing.T) {
	c := newClient(t)
	adm := c.Admin()
	topic, group := uniq(t, "jobs"), uniq(t, "pool")
	createTopic(t, c, topic, 1)
	setShareConfig(t, c, group, map[string]string{client.ShareAutoOffsetReset: "earliest"})
	var recs []*client.Record
	for i := range 10 {
		recs = append(recs, &client.Record{Topic: topic, Value: []byte(strconv.Itoa(i))})
	}
	if err := c.ProduceSync(testCtx(t), recs...); err != nil {
		t.Fatal(err)
	}
	// (On a fresh cluster the first group request creates the
	// coordinators: retriable until they are loaded.)
	waitFor(t, "the group coordinator", func() bool {
		_, err := adm.ShareGroupOffsets(testCtx(t), group)
		return !client.IsRetriable(err)
	})
	if _, err := adm.ShareGroupOffsets(testCtx(t), group); !errors.Is(err, client.ErrUnknownGroup) {
		t.Fatalf("offsets of a group that never ran: %v, want ErrUnknownGroup", err)
	}

	got, stop := runWorker(t, c, group, topic)
	waitFor(t, "ten records handled", func() bool { return len(got()) == 10 })
	waitFor(t, "the start offset at 10", func() bool {
		os, err := adm.ShareGroupOffsets(testCtx(t), group)
		return err == nil && len(os) == 1 && os[0].Start == 10
	})
	if _, err := adm.ResetShareGroupOffsets(testCtx(t), group, topic, client.Beginning()); !errors.Is(err, client.ErrGroupNotEmpty) {
		t.Fatalf("reset with a worker: %v, want ErrGroupNotEmpty", err)
	}
	if err := adm.DeleteShareGroupOffsets(testCtx(t), group, topic); !errors.Is(err, client.ErrGroupNotEmpty) {
		t.Fatalf("delete with a worker: %v, want ErrGroupNotEmpty", err)
	}
	plan, err := adm.PlanResetShareGroupOffsets(testCtx(t), group, topic, client.Beginning())
	if err != nil || len(plan) != 1 || plan[0] != (client.OffsetReset{Partition: 0, Old: 10, New: 0}) {
		t.Fatalf("plan with a worker: %+v %v", plan, err)
	}
	stop()
	waitFor(t, "the group empty", func() bool {
		d, err := adm.DescribeShareGroup(testCtx(t), group)
		return err == nil && len(d.Members) == 0
	})

	for _, s := range []struct {
		to       client.Offset
		old, new int64
	}{
		{client.AtOffset(4), 10, 4},
		{client.AtOffset(100), 4, 10}, // clamped to the end
		{client.Beginning(), 10, 0},
		{client.End(), 0, 10},
		{client.AtOffset(6), 10, 6},
	} {
		res, err := adm.ResetShareGroupOffsets(testCtx(t), group, topic, s.to)
		if err != nil || len(res) != 1 || res[0] != (client.OffsetReset{Partition: 0, Old: s.old, New: s.new}) {
			t.Fatalf("reset to %v: %+v %v, want old %d new %d", s.to, res, err, s.old, s.new)
		}
		os, err := adm.ShareGroupOffsets(testCtx(t), group)
		if err != nil || len(os) != 1 || os[0].Topic != topic || os[0].Start != s.new || os[0].Lag != 10-s.new {
			t.Fatalf("offsets after the reset to %v: %+v %v", s.to, os, err)
		}
	}
	got, stop = runWorker(t, c, group, topic)
	waitFor(t, "records from 6 handled", func() bool { return len(got()) == 4 })
	stop()
	for off, n := range got() {
		if off < 6 || n != 1 {
			t.Errorf("after the reset to 6: offset %d, delivery %d", off, n)
		}
	}

	if err := adm.DeleteShareGroupOffsets(testCtx(t), group, topic); err != nil {
		t.Fatal(err)
	}
	if os, err := adm.ShareGroupOffsets(testCtx(t), group); err != nil || len(os) != 0 {
		t.Fatalf("offsets after the delete: %+v %v", os, err)
	}
	if err := adm.DeleteShareGroupOffsets(testCtx(t), group, topic); !errors.Is(err, client.ErrUnknownTopic) {
		t.Fatalf("delete again: %v, want ErrUnknownTopic (no offsets)", err)
	}
	missing := uniq(t, "missing")
	if err := adm.DeleteShareGroupOffsets(testCtx(t), group, missing); !errors.Is(err, client.ErrUnknownTopic) {
		t.Fatalf("delete on a missing topic: %v", err)
	}
	if _, err := adm.ResetShareGroupOffsets(testCtx(t), group, missing, client.Beginning()); !errors.Is(err, client.ErrUnknownTopic) {
		t.Fatalf("reset on a missing topic: %v", err)
	}

	// A group's start can be set before its first worker.
	fresh := uniq(t, "fresh")
	res, err := adm.ResetShareGroupOffsets(testCtx(t), fresh, topic, client.AtOffset(8))
	if err != nil || !slices.Equal(res, []client.OffsetReset{{Partition: 0, Old: -1, New: 8}}) {
		t.Fatalf("reset of a new group: %+v %v", res, err)
	}
	if os, err := adm.ShareGroupOffsets(testCtx(t), fresh); err != nil || len(os) != 1 || os[0].Start != 8 || os[0].Lag != 2 {
		t.Fatalf("offsets of the new group: %+v %v", os, err)
	}
}
