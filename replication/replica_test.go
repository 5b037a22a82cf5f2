package replication

import (
	"bytes"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/sluicemq/sluice/log"
	"github.com/sluicemq/sluice/partition"
)

// TestReplicaProduceReplicates produces with acks=-1 through the leader and
// reads every batch back through Fetch on every replica, up to each one's
// high watermark; followers' high watermarks reach the leader's and wake
// their Changed waiters; writes and ListOffsets on a follower are refused
// with NOT_LEADER_FOR_PARTITION.
func TestReplicaProduceReplicates(t *testing.T) {
	c := newReplicaCluster(t, 3, testPartitionConfig(), fastTimings)
	ld := c.leader()
	var follower *replicaNode
	for _, nd := range c.nodes {
		if nd != ld {
			follower = nd
			break
		}
	}
	changed := follower.r.Partition().Changed()

	type sent struct {
		tag     string
		offset  int64
		records int32
	}
	var all []sent
	next := int64(0)
	for i := range 40 {
		pid, n := int64(-1), int32(1+i%7)
		if i%2 == 0 {
			pid = 42
		}
		tag := fmt.Sprintf("b%d", i)
		res, err := ld.r.Produce(idem(t, tag, pid, 0, seqFor(i), int(n), 200), -1)()
		if err != nil {
			t.Fatalf("produce %d: %v", i, err)
		}
		if res.BaseOffset != next {
			t.Fatalf("produce %d: base offset %d, want %d", i, res.BaseOffset, next)
		}
		if hw := ld.r.Partition().HighWatermark(); hw < next+int64(n) {
			t.Fatalf("acks=-1 answered with the leader's high watermark %d below the batch's end %d", hw, next+int64(n))
		}
		all = append(all, sent{tag, next, n})
		next += int64(n)
	}
	select {
	case <-changed:
	case <-time.After(20 * time.Second):
		t.Fatalf("follower's Changed never fired")
	}
	hw, _ := c.waitSame(next)
	if hw != next {
		t.Fatalf("high watermark %d, want %d", hw, next)
	}
	for _, nd := range c.nodes {
		got := fetchAll(t, nd.r.Partition())
		if len(got) != len(all) {
			t.Fatalf("%s: fetched %d batches, want %d", nd.id, len(got), len(all))
		}
		for i, s := range all {
			if g := got[i]; g.offset != s.offset || g.firstKey != s.tag || g.records != s.records {
				t.Fatalf("%s: batch %d is %+v, want %+v", nd.id, i, g, s)
			}
		}
	}

	if _, err := follower.r.Produce(idem(t, "nope", -1, 0, 0, 1, 10), -1)(); !isNotLeader(err) {
		t.Fatalf("produce on a follower: %v, want NOT_LEADER_FOR_PARTITION", err)
	}
	if _, _, err := follower.r.ListOffset(partition.ListLatest); !isNotLeader(err) {
		t.Fatalf("ListOffset on a follower: %v", err)
	}
	if _, err := follower.r.DeleteRecords(1); !isNotLeader(err) {
		t.Fatalf("DeleteRecords on a follower: %v", err)
	}
	if off, _, err := ld.r.ListOffset(partition.ListLatest); err != nil || off != next {
		t.Fatalf("ListOffset(latest) on the leader: %d, %v, want %d", off, err, next)
	}
	// An invalid batch never reaches raft: the leader refuses it and stays.
	bad := idem(t, "bad", -1, 0, 0, 2, 10)
	bad[len(bad)-1] ^= 0xff
	if _, err := ld.r.Produce(bad, -1)(); !errors.Is(err, kerr.CorruptMessage) {
		t.Fatalf("corrupt batch: %v", err)
	}
	if !ld.r.Ready() {
		t.Fatalf("the leader stepped down after a refused batch")
	}
}

// seqFor is the base sequence of the i-th batch in
// TestReplicaProduceReplicates: producer 42 sends the even ones, each of
// 1+i%7 records.
func seqFor(i int) int32 {
	var s int32
	for j := 0; j < i; j += 2 {
		s += int32(1 + j%7)
	}
	return s
}

// TestReplicaIdempotentAcrossLeaderChange produces a sequence, shuts the
// leader down and retries the last batches on the new leader: they are
// duplicates answered with their original offsets and stored once;
// sequence gaps and stale epochs are still refused.
func TestReplicaIdempotentAcrossLeaderChange(t *testing.T) {
	c := newReplicaCluster(t, 3, testPartitionConfig(), fastTimings)
	ld := c.leader()
	const pid = 9
	var batches [][]byte
	var offsets []int64
	for i := range 10 {
		b := idem(t, fmt.Sprintf("s%d", i), pid, 3, int32(i*3), 3, 100)
		batches = append(batches, b)
		res, err := ld.r.Produce(bytes.Clone(b), -1)()
		if err != nil {
			t.Fatal(err)
		}
		offsets = append(offsets, res.BaseOffset)
	}
	// An in-flight duplicate (the retry arrives before the original is
	// answered) is answered like the original, not stored twice.
	b10 := idem(t, "s10", pid, 3, 30, 3, 100)
	w1 := ld.r.Produce(bytes.Clone(b10), -1)
	w2 := ld.r.Produce(bytes.Clone(b10), -1)
	r1, err1 := w1()
	r2, err2 := w2()
	if err1 != nil || err2 != nil || r1.BaseOffset != r2.BaseOffset {
		t.Fatalf("in-flight duplicate: %v %v, offsets %d %d", err1, err2, r1.BaseOffset, r2.BaseOffset)
	}
	batches, offsets = append(batches, b10), append(offsets, r1.BaseOffset)
	hw := ld.r.Partition().HighWatermark()
	c.waitSame(hw)

	c.stop(ld)
	nl := c.leader()
	for i := len(batches) - 5; i < len(batches); i++ {
		res, err := nl.r.Produce(bytes.Clone(batches[i]), -1)()
		if err != nil {
			t.Fatalf("retry of batch %d on the new leader: %v", i, err)
		}
		if res.BaseOffset != offsets[i] {
			t.Fatalf("retry of batch %d: offset %d, want the original %d", i, res.BaseOffset, offsets[i])
		}
	}
	if got := nl.r.Partition().HighWatermark(); got != hw {
		t.Fatalf("retries moved the high watermark from %d to %d", hw, got)
	}
	// A batch older than the dedup window is out of order, a gap too.
	if _, err := nl.r.Produce(idem(t, "old", pid, 3, 0, 3, 100), -1)(); !errors.Is(err, kerr.OutOfOrderSequenceNumber) {
		t.Fatalf("batch from before the window: %v", err)
	}
	if _, err := nl.r.Produce(idem(t, "gap", pid, 3, 34, 3, 100), -1)(); !errors.Is(err, kerr.OutOfOrderSequenceNumber) {
		t.Fatalf("sequence gap: %v", err)
	}
	if _, err := nl.r.Produce(idem(t, "stale", pid, 2, 33, 3, 100), -1)(); !errors.Is(err, kerr.InvalidProducerEpoch) {
		t.Fatalf("stale epoch: %v", err)
	}
	res, err := nl.r.Produce(idem(t, "s11", pid, 3, 33, 3, 100), -1)()
	if err != nil || res.BaseOffset != hw {
		t.Fatalf("next batch: %d, %v, want offset %d", res.BaseOffset, err, hw)
	}
	c.waitSame(hw + 3)
	for _, nd := range c.running() {
		got := fetchAll(t, nd.r.Partition())
		if len(got) != 12 {
			t.Fatalf("%s holds %d batches, want 12", nd.id, len(got))
		}
		for i, g := range got {
			if g.seq != int32(i*3) || g.pid != pid {
				t.Fatalf("%s: batch %d has producer %d sequence %d", nd.id, i, g.pid, g.seq)
			}
		}
	}
}

// TestReplicaLeaderKilledUnderLoad kills the leader while producers send
// acks=-1 idempotent batches, retrying like a Kafka client (same bytes,
// same sequence) on NOT_LEADER_FOR_PARTITION, then restarts it: every
// acknowledged batch is on every replica exactly once, at its acknowledged
// offset, in each producer's order.
func TestReplicaLeaderKilledUnderLoad(t *testing.T) {
	c := newReplicaCluster(t, 3, testPartitionConfig(), fastTimings)
	c.leader()
	const producers, each = 3, 60
	var progress atomic.Int64
	acked := make([][]int64, producers)
	var wg sync.WaitGroup
	for p := range producers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			pid := int64(100 + p)
			for i := range each {
				b := idem(t, fmt.Sprintf("p%d-%d", p, i), pid, 0, int32(i*2), 2, 300)
				for attempt := 0; ; attempt++ {
					if attempt > 2000 {
						t.Errorf("producer %d batch %d: no leader took it", p, i)
						return
					}
					var ld *Replica
					for _, nd := range c.nodesSnapshot() {
						if nd != nil && nd.Ready() {
							ld = nd
							break
						}
					}
					if ld == nil {
						time.Sleep(5 * time.Millisecond)
						continue
					}
					res, err := ld.Produce(bytes.Clone(b), -1)()
					if isNotLeader(err) {
						time.Sleep(5 * time.Millisecond)
						continue
					}
					if err != nil {
						t.Errorf("producer %d batch %d: %v", p, i, err)
						return
					}
					acked[p] = append(acked[p], res.BaseOffset)
					progress.Add(1)
					break
				}
			}
		}()
	}
	for progress.Load() < producers*each/3 {
		time.Sleep(time.Millisecond)
	}
	old := c.leader()
	c.mu.Lock()
	c.stop(old)
	c.mu.Unlock()
	for progress.Load() < producers*each*2/3 {
		time.Sleep(time.Millisecond)
	}
	c.mu.Lock()
	c.start(old)
	c.mu.Unlock()
	wg.Wait()
	if t.Failed() {
		return
	}
	ld := c.leader()
	c.waitSame(ld.r.Partition().HighWatermark())
	for _, nd := range c.nodes {
		got := fetchAll(t, nd.r.Partition())
		next := make([]int, producers)
		for _, g := range got {
			p := int(g.pid - 100)
			if p < 0 || p >= producers {
				t.Fatalf("%s: batch at %d from producer %d", nd.id, g.offset, g.pid)
			}
			if g.seq != int32(next[p]*2) {
				t.Fatalf("%s: producer %d's batch at %d has sequence %d, want %d (duplicate or out of order)", nd.id, p, g.offset, g.seq, next[p]*2)
			}
			if g.offset != acked[p][next[p]] {
				t.Fatalf("%s: producer %d's batch %d at %d, acknowledged at %d", nd.id, p, next[p], g.offset, acked[p][next[p]])
			}
			next[p]++
		}
		for p, n := range next {
			if n != each {
				t.Fatalf("%s: producer %d has %d batches, want %d", nd.id, p, n, each)
			}
		}
	}
}

// TestReplicaAcks1BeforeCommit cuts the leader off from its followers:
// acks=1 is answered once the leader's log has the batch, which cannot be
// committed (the high watermark stays below it), and acks=-1 is not
// answered with success until the leader is reconnected.
func TestReplicaAcks1BeforeCommit(t *testing.T) {
	c := newReplicaCluster(t, 3, testPartitionConfig(), func(cfg *raft.Config) {
		fastTimings(cfg)
		// Long enough that the cut-off leader keeps its lease while the
		// acks=1 batch is stored.
		cfg.HeartbeatTimeout = 2 * time.Second
		cfg.ElectionTimeout = 2 * time.Second
		cfg.LeaderLeaseTimeout = 2 * time.Second
	})
	ld := c.leader()
	if _, err := ld.r.Produce(idem(t, "first", -1, 0, 0, 5, 100), -1)(); err != nil {
		t.Fatal(err)
	}
	hw := ld.r.Partition().HighWatermark()
	c.isolate(ld)

	done := make(chan struct{})
	var res1 partition.ProduceResult
	var err1 error
	go func() {
		defer close(done)
		res1, err1 = ld.r.Produce(idem(t, "one", -1, 0, 0, 3, 100), 1)()
	}()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatalf("acks=1 not answered while the followers are cut off")
	}
	if err1 != nil {
		t.Fatalf("acks=1: %v", err1)
	}
	if res1.BaseOffset != hw {
		t.Fatalf("acks=1 offset %d, want %d", res1.BaseOffset, hw)
	}
	if got := ld.r.Partition().HighWatermark(); got != hw {
		t.Fatalf("high watermark %d moved to %d without a quorum", hw, got)
	}
	if end := ld.r.Partition().Log().EndOffset(); end != hw+3 {
		t.Fatalf("leader's log ends at %d, want %d", end, hw+3)
	}

	var healed atomic.Bool
	all := make(chan error, 1)
	go func() {
		_, err := ld.r.Produce(idem(t, "all", -1, 0, 0, 3, 100), -1)()
		if err == nil && !healed.Load() {
			err = errors.New("acks=-1 answered without a quorum")
		} else if err != nil && !isNotLeader(err) {
			err = fmt.Errorf("acks=-1 failed with %w, want NOT_LEADER_FOR_PARTITION", err)
		} else {
			err = nil
		}
		all <- err
	}()
	// Let the acks=-1 batch reach the leader's log before healing: its
	// end moves past the acks=1 batch (or the leader has stepped down).
	deadline := time.Now().Add(10 * time.Second)
	for ld.r.Partition().Log().EndOffset() < hw+6 && ld.r.IsLeader() && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	healed.Store(true)
	c.heal(ld)
	select {
	case err := <-all:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("acks=-1 never answered after reconnecting")
	}
	c.waitSame(hw)
}

// TestReplicaRetentionAndDeleteRecords moves the log start with
// DeleteRecords and retention through the leader: every replica agrees on
// the log start, refuses fetches below it and removes the segments below it
// (after a snapshot); a follower that was down learns both on its return.
func TestReplicaRetentionAndDeleteRecords(t *testing.T) {
	pcfg := testPartitionConfig()
	pcfg.SegmentBytes = 16 << 10
	c := newReplicaCluster(t, 3, pcfg, fastTimings)
	ld := c.leader()
	for i := range 60 {
		if _, err := ld.r.Produce(idem(t, fmt.Sprintf("r%d", i), -1, 0, 0, 4, 500), -1)(); err != nil {
			t.Fatal(err)
		}
	}
	hw, _ := c.waitSame(240)
	var down *replicaNode
	for _, nd := range c.nodes {
		if nd != ld {
			down = nd
			break
		}
	}
	c.stop(down)

	if _, err := ld.r.DeleteRecords(hw + 1); !errors.Is(err, kerr.OffsetOutOfRange) {
		t.Fatalf("DeleteRecords past the high watermark: %v", err)
	}
	low, err := ld.r.DeleteRecords(30)
	if err != nil || low != 30 {
		t.Fatalf("DeleteRecords(30): %d, %v", low, err)
	}
	_, start := c.waitSame(hw)
	if start != 30 {
		t.Fatalf("replicas' log start %d after DeleteRecords(30)", start)
	}
	cfg := pcfg
	cfg.Retention = log.Retention{MaxBytes: 40 << 10}
	for _, nd := range c.running() {
		if err := nd.r.SetConfig(cfg); err != nil {
			t.Fatal(err)
		}
	}
	if err := ld.r.ApplyRetention(); err != nil {
		t.Fatal(err)
	}
	cut := ld.r.Partition().LogStartOffset()
	if cut <= 30 || cut > hw {
		t.Fatalf("retention moved the log start to %d (high watermark %d)", cut, hw)
	}
	// More data while the follower is down, so it has entries to catch up.
	for i := range 5 {
		if _, err := ld.r.Produce(idem(t, fmt.Sprintf("late%d", i), -1, 0, 0, 4, 500), -1)(); err != nil {
			t.Fatal(err)
		}
	}
	c.start(down)
	hw, start = c.waitSame(hw + 20)
	if start != cut {
		t.Fatalf("log start %d on every replica, want %d", start, cut)
	}
	// Every replica removes the segments below the log start (after a
	// snapshot); the leader may also move the log start again, as the late
	// batches pushed more segments over retention.bytes.
	for _, nd := range append([]*replicaNode{ld}, c.running()...) {
		if err := nd.r.ApplyRetention(); err != nil {
			t.Fatalf("%s: retention: %v", nd.id, err)
		}
	}
	_, start = c.waitSame(hw)
	for _, nd := range c.nodes {
		if err := nd.r.ApplyRetention(); err != nil {
			t.Fatalf("%s: retention: %v", nd.id, err)
		}
		p := nd.r.Partition()
		if s := p.Log().StartOffset(); s <= 0 || s > start {
			t.Fatalf("%s: segments start at %d, want in (0, %d]", nd.id, s, start)
		}
		if _, err := p.Fetch(start-1, 1<<20); !errors.Is(err, kerr.OffsetOutOfRange) {
			t.Fatalf("%s: fetch below the log start: %v", nd.id, err)
		}
		if got := fetchAll(t, p); len(got) == 0 || got[0].offset > start || got[0].offset+int64(got[0].records) <= start {
			t.Fatalf("%s: first fetched batch %+v, want the one holding offset %d", nd.id, got, start)
		}
		if nd.r.Ready() {
			if off, _, err := nd.r.ListOffset(partition.ListEarliest); err != nil || off != start {
				t.Fatalf("%s: ListOffset(earliest) %d, %v", nd.id, off, err)
			}
		}
	}
}

// TestReplicaRestartFromSnapshot closes every replica and opens them again
// over the same directories and stable stores: the high watermark, the
// producer table and the data are back, taken from the snapshot manifest
// (nothing at or below its index is applied again).
func TestReplicaRestartFromSnapshot(t *testing.T) {
	c := newReplicaCluster(t, 3, testPartitionConfig(), fastTimings)
	ld := c.leader()
	var last []byte
	var lastOff int64
	for i := range 30 {
		pid := int64(-1)
		if i%3 == 0 {
			pid = 77
		}
		b := idem(t, fmt.Sprintf("x%d", i), pid, 1, int32(i/3*2), 2, 300)
		res, err := ld.r.Produce(bytes.Clone(b), -1)()
		if err != nil {
			t.Fatal(err)
		}
		if pid >= 0 {
			last, lastOff = b, res.BaseOffset
		}
	}
	if _, err := ld.r.DeleteRecords(4); err != nil {
		t.Fatal(err)
	}
	hw, start := c.waitSame(60)
	before := fetchAll(t, ld.r.Partition())
	for _, nd := range c.nodes {
		c.stop(nd)
	}
	for _, nd := range c.nodes {
		c.start(nd)
		// Straight from the manifest, before raft has applied anything.
		p := nd.r.Partition()
		if p.HighWatermark() != hw || p.LogStartOffset() != start {
			t.Fatalf("%s reopened with high watermark %d, log start %d; want %d, %d", nd.id, p.HighWatermark(), p.LogStartOffset(), hw, start)
		}
	}
	ld = c.leader()
	c.waitSame(hw)
	for _, nd := range c.nodes {
		st := nd.r.FSM().Stats()
		if st.StartIndex == 0 {
			t.Fatalf("%s started without a snapshot", nd.id)
		}
		if st.LowestApplied != 0 && st.LowestApplied <= st.StartIndex {
			t.Fatalf("%s applied index %d again, at or below its snapshot's %d", nd.id, st.LowestApplied, st.StartIndex)
		}
		after := fetchAll(t, nd.r.Partition())
		if fmt.Sprint(after) != fmt.Sprint(before) {
			t.Fatalf("%s: data after restart differs:\n%v\n%v", nd.id, after, before)
		}
	}
	res, err := ld.r.Produce(bytes.Clone(last), -1)()
	if err != nil || res.BaseOffset != lastOff {
		t.Fatalf("retry of the last batch after restart: %d, %v, want duplicate at %d", res.BaseOffset, err, lastOff)
	}
	if res, err := ld.r.Produce(idem(t, "next", 77, 1, 20, 2, 300), -1)(); err != nil || res.BaseOffset != hw {
		t.Fatalf("next batch after restart: %d, %v, want %d", res.BaseOffset, err, hw)
	}
}

// TestReplicaSingleVoter runs a one-replica group, as a single-node broker
// does: it elects itself, takes writes and comes back after a restart.
func TestReplicaSingleVoter(t *testing.T) {
	c := newReplicaCluster(t, 1, testPartitionConfig(), fastTimings)
	ld := c.leader()
	for i := range 10 {
		for _, acks := range []int16{-1, 1, 0} {
			res, err := ld.r.Produce(idem(t, fmt.Sprintf("s%d", i), -1, 0, 0, 1, 50), acks)()
			if err != nil {
				t.Fatal(err)
			}
			if acks == 0 && res.BaseOffset != -1 {
				t.Fatalf("acks=0 answered with offset %d", res.BaseOffset)
			}
		}
	}
	hw, _ := c.waitSame(30)
	c.stop(ld)
	c.start(ld)
	ld = c.leader()
	if got := ld.r.Partition().HighWatermark(); got != hw {
		t.Fatalf("high watermark %d after restart, want %d", got, hw)
	}
}
