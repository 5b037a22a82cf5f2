package replication

import (
	"bytes"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/sluicemq/sluice/log"
	"github.com/sluicemq/sluice/log/batch"
)

// Small segments, so the tests roll and seal several of them and compare
// their index files too.
func testLogOptions() log.Options {
	return log.Options{SegmentBytes: 256 << 10, Now: fixedNow}
}

// TestReplicasIdentical applies produce commands (and a few other entries)
// from several goroutines and checks that every replica holds the same
// entries at the same Kafka offsets in the same segment files: offsets are
// assigned by each replica's log and need no translation.
func TestReplicasIdentical(t *testing.T) {
	c := newCluster(t, 3, testLogOptions(), fastTimings)
	ld := c.leader()

	const producers, each = 4, 60
	var mu sync.Mutex
	var all []acked
	var wg sync.WaitGroup
	for p := range producers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				a, err := applyProduce(t, ld, fmt.Sprintf("p%d-%d", p, i), 1+(i*7+p)%20, 100+(i*31)%900)
				if err != nil {
					t.Errorf("apply: %v", err)
					return
				}
				mu.Lock()
				all = append(all, a)
				mu.Unlock()
				if i%20 == 0 {
					// Non-produce entries between batches take no offsets.
					if err := ld.raft.Apply([]byte{99, 'x'}, 5*time.Second).Error(); err != nil {
						t.Errorf("apply other command: %v", err)
					}
					if err := ld.raft.Barrier(5 * time.Second).Error(); err != nil {
						t.Errorf("barrier: %v", err)
					}
				}
			}
		}()
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	c.waitConverged()
	c.checkIdentical()
	c.checkAcked(all)

	var records int64
	for _, a := range all {
		h, err := batch.ParseHeader(a.batch)
		if err != nil {
			t.Fatal(err)
		}
		records += int64(h.RecordCount)
	}
	if end := ld.log.EndOffset(); end != records {
		t.Fatalf("log end offset %d, want %d records", end, records)
	}
	for _, nd := range c.nodes {
		if _, hw := nd.fsm.Applied(); hw != records {
			t.Fatalf("%s: high watermark %d, want %d", nd.id, hw, records)
		}
		if segs := nd.log.Segments(); len(segs) < 3 {
			t.Fatalf("%s: %d segments; the test wants several to compare", nd.id, len(segs))
		}
	}
	t.Logf("%d batches, %d records, %d entries, %d segments", len(all), records, ld.log.LastIndex(), len(ld.log.Segments()))
}

// TestConflictTruncation isolates the leader, lets it store entries that
// cannot commit, elects a new leader that commits others at the same
// indexes, and heals: the old leader must cut its conflicting suffix
// through DeleteRange -> TruncateFrom, roll its offsets back and end with
// the majority's log, losing no acknowledged record.
func TestConflictTruncation(t *testing.T) {
	c := newCluster(t, 3, testLogOptions(), fastTimings)
	old := c.leader()

	var all []acked
	for i := range 20 {
		a, err := applyProduce(t, old, fmt.Sprintf("before-%d", i), 5, 200)
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, a)
	}
	c.waitConverged()
	lastCommitted, endCommitted := old.log.LastIndex(), old.log.EndOffset()

	c.isolate(old)
	const doomed = 5
	futures := make([]raft.ApplyFuture, doomed)
	for i := range futures {
		futures[i] = old.raft.Apply(produce(t, fmt.Sprintf("doomed-%d", i), 3, 200), time.Second)
	}
	for i, f := range futures {
		if err := f.Error(); err == nil {
			t.Fatalf("doomed apply %d succeeded without a quorum", i)
		}
	}
	if got := old.log.LastIndex(); got != lastCommitted+doomed {
		t.Fatalf("isolated leader stored up to %d, want %d uncommitted entries after %d", got, doomed, lastCommitted)
	}
	if got := old.log.EndOffset(); got != endCommitted+doomed*3 {
		t.Fatalf("isolated leader's end offset %d, want %d", got, endCommitted+doomed*3)
	}

	var rest []*testNode
	for _, nd := range c.nodes {
		if nd != old {
			rest = append(rest, nd)
		}
	}
	ld := c.leader(rest...)
	for i := range 8 {
		a, err := applyProduce(t, ld, fmt.Sprintf("after-%d", i), 4, 300)
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, a)
	}

	c.heal(old)
	c.waitConverged()
	c.checkIdentical()
	c.checkAcked(all)

	if !strings.Contains(old.logBuf.String(), `"truncated conflicting suffix"`) {
		t.Fatalf("the old leader never truncated through DeleteRange")
	}
	for _, nd := range c.nodes {
		for _, b := range readAll(t, nd.log) {
			if bytes.Contains(b, []byte("doomed-")) {
				t.Fatalf("%s still holds an uncommitted batch", nd.id)
			}
		}
	}
	if got, want := old.log.EndOffset(), endCommitted+8*4; got != want {
		t.Fatalf("end offset %d after healing, want %d", got, want)
	}
}

// TestFollowerRestart stops a follower, closes its log, commits more
// without it, then reopens the log and restarts raft over it: it must catch
// up from its own log, with no snapshot, to an identical log.
func TestFollowerRestart(t *testing.T) {
	c := newCluster(t, 3, testLogOptions(), fastTimings)
	ld := c.leader()
	var all []acked
	for i := range 40 {
		a, err := applyProduce(t, ld, fmt.Sprintf("first-%d", i), 10, 500)
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, a)
	}
	c.waitConverged()

	var f *testNode
	for _, nd := range c.nodes {
		if nd != ld {
			f = nd
			break
		}
	}
	stoppedAt := f.log.LastIndex()
	c.isolate(f)
	c.stop(f)

	for i := range 40 {
		a, err := applyProduce(t, ld, fmt.Sprintf("second-%d", i), 10, 500)
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, a)
	}

	// A restarted process gets a fresh transport at the same address.
	_, f.trans = raft.NewInmemTransportWithTimeout(f.addr(), 5*time.Second)
	c.start(f)
	if got := f.log.LastIndex(); got != stoppedAt {
		t.Fatalf("reopened log ends at %d, want %d", got, stoppedAt)
	}
	c.heal(f)
	c.waitConverged()
	c.checkIdentical()
	c.checkAcked(all)

	if snaps, err := f.snaps.List(); err != nil || len(snaps) != 0 {
		t.Fatalf("follower has snapshots %v (%v); it should have caught up from its log", snaps, err)
	}
	if first := f.log.FirstIndex(); first != 1 {
		t.Fatalf("follower's log starts at %d: it was replaced, not extended", first)
	}
}
