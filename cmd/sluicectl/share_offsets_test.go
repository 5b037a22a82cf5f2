package main

import (
	"context"
	"fmt"
	"maps"
	"strings"
	"sync"
	"testing"

	"github.com/sluicemq/sluice/client"
)

// stoppableWorker runs a share-group worker that accepts everything until
// the returned stop is called; handled counts the records by offset.
func stoppableWorker(t *testing.T, group, topic string) (handled func() map[int64]int, stop func()) {
	t.Helper()
	var mu sync.Mutex
	seen := map[int64]int{}
	stop = runWorker(t, group, topic, func(_ context.Context, r *client.Record) error {
		mu.Lock()
		seen[r.Offset]++
		mu.Unlock()
		return nil
	})
	handled = func() map[int64]int {
		mu.Lock()
		defer mu.Unlock()
		return maps.Clone(seen)
	}
	return handled, stop
}

// Share-group offsets through sluicectl: offsets shows the start offset
// and lag; reset-offsets and delete-offsets are refused while a worker
// runs (exit 5; a dry run is not); after it stopped a reset moves the
// start and a worker gets the records again; delete-offsets forgets the
// group's state; unknown groups and topics exit 4, bad flags 2.
func TestShareGroupOffsetsCommands(t *testing.T) {
	topic, group := uniq(t, "jobs"), uniq(t, "pool")
	ok(t, "topic", "create", topic, "-p", "1")
	ok(t, "share-group", "config", group, "--set", "share.auto.offset.reset=earliest")
	var in strings.Builder
	for i := range 8 {
		fmt.Fprintf(&in, "job %d\n", i)
	}
	if r := sctl(t, in.String(), "produce", topic); r.code != exitOK {
		t.Fatal(r.stderr)
	}
	handled, stop := stoppableWorker(t, group, topic)
	waitFor(t, "eight jobs done", func() bool { return len(handled()) == 8 })
	waitFor(t, "the start offset at 8", func() bool {
		r := sctl(t, "", "share-group", "offsets", group)
		return r.code == exitOK && len(fields(r.stdout)) == 2 && fmt.Sprint(fields(r.stdout)[1]) == fmt.Sprintf("[%s 0 8 0]", topic)
	})
	out := ok(t, "share-group", "offsets", group)
	if rows := fields(out); fmt.Sprint(rows[0]) != "[TOPIC PARTITION START-OFFSET LAG]" {
		t.Fatalf("share-group offsets:\n%s", out)
	}
	fails(t, exitConflict, "active members", "share-group", "reset-offsets", group, "--topic", topic, "--to-earliest")
	fails(t, exitConflict, "active members", "share-group", "delete-offsets", group, "--topic", topic)
	r := sctl(t, "", "share-group", "reset-offsets", group, "--topic", topic, "--to-offset", "3", "--dry-run")
	if r.code != exitOK || !strings.Contains(r.stderr, "1 active members") || !strings.Contains(r.stdout, "dry run: nothing was changed") ||
		fmt.Sprint(fields(r.stdout)[1]) != fmt.Sprintf("[%s 0 8 3 -]", topic) {
		t.Fatalf("reset-offsets --dry-run with a worker: %+v", r)
	}
	stop()
	waitFor(t, "the group empty", func() bool {
		return strings.Contains(ok(t, "share-group", "describe", group), "MEMBERS      0")
	})

	res := decode[resetResult](t, ok(t, "share-group", "reset", group, "-t", topic, "--to-offset", "100", "--json"))
	if res.DryRun || len(res.Partitions) != 1 || res.Partitions[0] != (resetPartRow{0, 8, 8, true}) {
		t.Fatalf("reset-offsets --to-offset 100 --json: %+v", res)
	}
	out = ok(t, "share-group", "reset-offsets", group, "--topic", topic, "--to-offset", "3")
	if rows := fields(out); fmt.Sprint(rows[0]) != "[TOPIC PARTITION OLD-START NEW-START NOTE]" || fmt.Sprint(rows[1]) != fmt.Sprintf("[%s 0 8 3 -]", topic) {
		t.Fatalf("reset-offsets:\n%s", out)
	}
	so := decode[shareOffsetsResult](t, ok(t, "share-group", "offsets", group, "--json"))
	if so.Group != group || len(so.Offsets) != 1 || so.Offsets[0].Topic != topic || so.Offsets[0].StartOffset != 3 || so.Offsets[0].Lag != 5 || so.Offsets[0].LeaderEpoch < 1 {
		t.Fatalf("offsets --json after the reset: %+v", so)
	}
	handled, stop = stoppableWorker(t, group, topic)
	waitFor(t, "jobs from 3 done again", func() bool { return len(handled()) == 5 })
	stop()
	for off := range handled() {
		if off < 3 {
			t.Errorf("offset %d delivered after the reset to 3", off)
		}
	}

	out = ok(t, "share-group", "delete-offsets", group, "--topic", topic)
	if out != fmt.Sprintf("deleted the offsets of share group %s on %s\n", group, topic) {
		t.Fatalf("delete-offsets: %q", out)
	}
	if so := decode[shareOffsetsResult](t, ok(t, "share-group", "offsets", group, "--json")); len(so.Offsets) != 0 {
		t.Fatalf("offsets after delete-offsets: %+v", so)
	}
	fails(t, exitNotFound, "has no offsets on topic", "share-group", "delete-offsets", group, "--topic", topic)
	fails(t, exitNotFound, "has no offsets on topic", "share-group", "delete-offsets", group, "--topic", uniq(t, "missing"))
	fails(t, exitNotFound, "does not exist", "share-group", "offsets", uniq(t, "nobody"))
	fails(t, exitNotFound, "does not exist", "share-group", "delete-offsets", uniq(t, "nobody"), "--topic", topic)
	fails(t, exitNotFound, "does not exist", "share-group", "reset-offsets", group, "--topic", uniq(t, "missing"), "--to-earliest")
	fails(t, exitUsage, "exactly one of", "share-group", "reset-offsets", group, "--topic", topic)
	fails(t, exitUsage, "--topic: required", "share-group", "reset-offsets", group, "--to-latest")
	fails(t, exitUsage, "want >= 0", "share-group", "reset-offsets", group, "--topic", topic, "--to-offset", "-1")
	fails(t, exitUsage, "--topic: required", "share-group", "delete-offsets", group)
}
