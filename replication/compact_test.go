package replication

import (
	"bytes"
	"fmt"
	"maps"
	"slices"
	"testing"

	"github.com/sluicemq/sluice/log/batch"
	"github.com/sluicemq/sluice/partition"
)

// latestPerKey reads p from its log start to its high watermark as a
// consumer does (zero-record batches included) and returns the latest
// value of every key, checking every batch.
func latestPerKey(t testing.TB, p *partition.Partition) map[string]string {
	t.Helper()
	out := map[string]string{}
	off := p.LogStartOffset()
	for off < p.HighWatermark() {
		res, err := p.Fetch(off, 64<<10)
		if err != nil || len(res.Batches) == 0 {
			t.Fatalf("fetch at %d: %d batches, %v", off, len(res.Batches), err)
		}
		for _, b := range res.Batches {
			h, err := batch.Validate(b, batch.ValidateOptions{Deep: true, AllowCompacted: true})
			if err != nil {
				t.Fatalf("batch at %d: %v", off, err)
			}
			if err := batch.Records(b, batch.DefaultLimits, func(r batch.Record) error {
				out[string(r.Key)] = string(r.Value)
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			off = h.NextOffset()
		}
		res.Release()
	}
	return out
}

// rawBatches reads p's batches from its log start to its high watermark.
func rawBatches(t testing.TB, p *partition.Partition) [][]byte {
	t.Helper()
	var out [][]byte
	for off := p.LogStartOffset(); off < p.HighWatermark(); {
		res, err := p.Fetch(off, 64<<10)
		if err != nil || len(res.Batches) == 0 {
			t.Fatalf("fetch at %d: %d batches, %v", off, len(res.Batches), err)
		}
		for _, b := range res.Batches {
			out = append(out, bytes.Clone(b))
			h, _ := batch.ParseHeader(b)
			off = h.NextOffset()
		}
		res.Release()
	}
	return out
}

// TestReplicaCompactThenCatchUp: the leader compacts its own log; a
// follower that was down catches up from it, first by AppendEntries that
// read the cleaned frames, then (after the head is deleted everywhere) by
// a snapshot that streams the cleaned segments. Each time it reaches the
// leader's high watermark, and the same latest value for every key.
func TestReplicaCompactThenCatchUp(t *testing.T) {
	pcfg := testPartitionConfig()
	pcfg.SegmentBytes = 16 << 10
	pcfg.CleanupPolicy = partition.CleanupCompactDelete
	c := newReplicaCluster(t, 3, pcfg, fastTimings)
	ld := c.leader()
	down := c.nodes[0]
	if down == ld {
		down = c.nodes[1]
	}
	want := map[string]string{}
	seq, lastKey := 0, ""
	produceRound := func(n int) {
		for range n {
			k := fmt.Sprintf("k%d", seq%7)
			b := idem(t, k, 5, 0, int32(seq), 4, 500) // 4 records of key k
			mustProduce(t, ld.r, b)
			_ = batch.Records(b, batch.DefaultLimits, func(r batch.Record) error {
				want[k] = string(r.Value)
				return nil
			})
			seq += 4
			lastKey = k
		}
	}
	check := func(phase string) {
		t.Helper()
		hw, _ := c.waitSame(ld.r.Partition().HighWatermark())
		for _, nd := range c.running() {
			if got := latestPerKey(t, nd.r.Partition()); !maps.Equal(got, want) {
				t.Fatalf("%s: %s holds %v, want %v", phase, nd.id, got, want)
			}
			if idx, fhw := nd.r.FSM().Applied(); fhw != hw || idx == 0 {
				t.Fatalf("%s: %s's state machine at index %d, high watermark %d; want %d", phase, nd.id, idx, fhw, hw)
			}
			if err := nd.r.Partition().Log().Verify(); err != nil {
				t.Fatalf("%s: %s: %v", phase, nd.id, err)
			}
		}
	}

	c.stop(down)
	produceRound(60)
	c.waitSame(ld.r.Partition().HighWatermark())
	st, err := ld.r.Compact()
	if err != nil || st.SegmentsRewritten == 0 || st.RecordsRemoved == 0 {
		t.Fatalf("leader compact: %+v, %v", st, err)
	}
	// Raft reads the entries it sends from the log, as after a leader
	// restart, not from the cache of what it stored.
	ld.r.store.tail.drop()
	c.start(down)
	check("entries")
	// The follower stored the leader's cleaned batches, byte for byte.
	lb, fb := rawBatches(t, ld.r.Partition()), rawBatches(t, down.r.Partition())
	if !slices.EqualFunc(lb, fb, bytes.Equal) {
		t.Fatalf("%s's batches differ from the leader's", down.id)
	}
	cleaned := 0
	for _, b := range fb {
		if h, _ := batch.ParseHeader(b); int64(h.RecordCount) < int64(h.LastOffsetDelta)+1 {
			cleaned++
		}
	}
	if cleaned == 0 {
		t.Fatalf("%s received no cleaned batch", down.id)
	}

	behind := down.r.Partition().Log().LastIndex()
	c.stop(down)
	produceRound(60)
	hw, _ := c.waitSame(ld.r.Partition().HighWatermark())
	if _, err := ld.r.Compact(); err != nil {
		t.Fatal(err)
	}
	if _, err := ld.r.DeleteRecords(hw - 4); err != nil { // all but the last batch
		t.Fatal(err)
	}
	c.waitSame(hw)
	for _, nd := range c.running() {
		if err := nd.r.ApplyRetention(); err != nil { // snapshot, then trim
			t.Fatalf("%s: retention: %v", nd.id, err)
		}
		if first := nd.r.Partition().Log().FirstIndex(); first <= behind+1 {
			t.Fatalf("%s's log starts at index %d: %s's next entry %d is not gone", nd.id, first, down.id, behind+1)
		}
	}
	want = map[string]string{lastKey: want[lastKey]}
	c.start(down)
	produceRound(3)
	check("snapshot")
	if down.r.FSM().Stats().Restores == 0 {
		t.Fatalf("%s caught up without a snapshot install", down.id)
	}
}
