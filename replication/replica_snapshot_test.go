package replication

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"github.com/rs/zerolog"
	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/sluicemq/sluice/log/batch"
	"github.com/sluicemq/sluice/partition"
)

// sameData fails the test unless every running replica has the leader's
// log start, high watermark and batches (bytes and offsets) from the log
// start on, and its log verifies.
func (c *replicaCluster) sameData(ld *replicaNode) []rawBatch {
	c.t.Helper()
	want := fetchRaw(c.t, ld.r.Partition())
	lp := ld.r.Partition()
	for _, nd := range c.running() {
		p := nd.r.Partition()
		if p.LogStartOffset() != lp.LogStartOffset() || p.HighWatermark() != lp.HighWatermark() {
			c.t.Fatalf("%s: log start %d, high watermark %d; leader %s: %d, %d", nd.id,
				p.LogStartOffset(), p.HighWatermark(), ld.id, lp.LogStartOffset(), lp.HighWatermark())
		}
		got := fetchRaw(c.t, p)
		if len(got) != len(want) {
			c.t.Fatalf("%s holds %d batches from the log start, leader %s %d", nd.id, len(got), ld.id, len(want))
		}
		for i := range got {
			if got[i].offset != want[i].offset || !bytes.Equal(got[i].data, want[i].data) {
				c.t.Fatalf("%s: batch %d at offset %d (%q) differs from the leader's at %d (%q)", nd.id, i,
					got[i].offset, got[i].key, want[i].offset, want[i].key)
			}
		}
		if err := p.Log().Verify(); err != nil {
			c.t.Fatalf("%s: %v", nd.id, err)
		}
	}
	return want
}

// waitLeader waits until nd is a ready leader, asking the current leader
// to hand leadership over to it.
func (c *replicaCluster) waitLeader(nd *replicaNode) {
	c.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !nd.r.Ready() {
		if time.Now().After(deadline) {
			c.t.Fatalf("%s did not become the leader", nd.id)
		}
		for _, o := range c.running() {
			if o != nd && o.r.Ready() {
				// Errors (a transfer in progress, a lagging target) are
				// retried.
				_ = o.r.Raft().LeadershipTransferToServer(nd.id, nd.addr()).Error()
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// otherLeader waits for a ready leader other than not.
func (c *replicaCluster) otherLeader(not *replicaNode) *replicaNode {
	c.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		for _, nd := range c.running() {
			if nd != not && nd.r.Ready() {
				return nd
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	c.t.Fatalf("no ready leader besides %s", not.id)
	return nil
}

func mustProduce(t testing.TB, r *Replica, b []byte) int64 {
	t.Helper()
	res, err := r.Produce(b, -1)()
	if err != nil {
		t.Fatalf("produce: %v", err)
	}
	return res.BaseOffset
}

// TestReplicaCatchUpBySnapshot stops a follower, produces enough to roll
// many segments (among them an idempotent producer's batches), deletes the
// head on the leader and the other follower (DeleteRecords, then
// retention's snapshot and trim), and restarts the follower: it catches
// up through InstallSnapshot with the streamed segments (the entries it
// needs are gone everywhere), holds the leader's log start, high watermark
// and batches byte for byte, never applies an entry the snapshot covers,
// keeps replicating, and, made leader, recognises a retry of the
// idempotent producer's last batch, which it never applied, as a
// duplicate: the producer table came with the manifest.
func TestReplicaCatchUpBySnapshot(t *testing.T) {
	pcfg := testPartitionConfig()
	pcfg.SegmentBytes = 16 << 10
	c := newReplicaCluster(t, 3, pcfg, fastTimings)
	ld := c.leader()
	for i := range 10 {
		mustProduce(t, ld.r, idem(t, fmt.Sprintf("a%d", i), -1, 0, 0, 4, 500))
	}
	c.waitSame(40)
	var down *replicaNode
	for _, nd := range c.nodes {
		if nd != ld {
			down = nd
			break
		}
	}
	behind := down.r.Partition().Log().LastIndex()
	c.stop(down)

	const pid = 31
	var lastIdem []byte
	var lastIdemOff int64
	for i := range 80 {
		if i%4 == 0 {
			b := idem(t, fmt.Sprintf("i%d", i), pid, 2, int32(i/4*4), 4, 500)
			lastIdem, lastIdemOff = b, mustProduce(t, ld.r, bytes.Clone(b))
			continue
		}
		mustProduce(t, ld.r, idem(t, fmt.Sprintf("b%d", i), -1, 0, 0, 4, 500))
	}
	hw, _ := c.waitSame(360)
	if low, err := ld.r.DeleteRecords(hw - 10); err != nil || low != hw-10 {
		t.Fatalf("DeleteRecords(%d): %d, %v", hw-10, low, err)
	}
	c.waitSame(hw)
	for _, nd := range c.running() {
		if err := nd.r.ApplyRetention(); err != nil { // snapshot, then trim
			t.Fatalf("%s: retention: %v", nd.id, err)
		}
		if first := nd.r.Partition().Log().FirstIndex(); first <= behind+1 {
			t.Fatalf("%s's log starts at index %d: the stopped follower's next entry %d is not gone", nd.id, first, behind+1)
		}
		// Retention kept what the latest snapshot streams.
		list, err := nd.r.snaps.List()
		if err != nil || len(list) == 0 {
			t.Fatalf("%s: snapshots %v, %v", nd.id, list, err)
		}
		meta, rc, err := nd.r.snaps.Open(list[0].ID)
		if err != nil {
			t.Fatalf("%s: open the latest snapshot: %v", nd.id, err)
		}
		n, err := io.Copy(io.Discard, rc)
		rc.Close()
		if err != nil || n != meta.Size {
			t.Fatalf("%s: streamed %d of %d bytes of the latest snapshot: %v", nd.id, n, meta.Size, err)
		}
	}
	for i := range 5 { // after the snapshot: sent as entries
		mustProduce(t, ld.r, idem(t, fmt.Sprintf("c%d", i), -1, 0, 0, 4, 500))
	}

	c.start(down)
	hw, _ = c.waitSame(hw + 20)
	want := c.sameData(ld)
	if len(want) == 0 || want[0].offset > hw-10 || !strings.HasPrefix(want[len(want)-1].key, "c") {
		t.Fatalf("leader's batches from the log start: %d, first at %d", len(want), want[0].offset)
	}
	st := down.r.FSM().Stats()
	if st.Restores == 0 {
		t.Fatalf("%s caught up without installing a snapshot: %+v", down.id, st)
	}
	if st.StaleRestores != 0 || down.r.RaftRestarts() != 0 {
		t.Fatalf("a lagging follower restarted raft: %+v, %d restarts", st, down.r.RaftRestarts())
	}
	if st.LowestApplied != 0 && st.LowestApplied <= st.SnapshotIndex {
		t.Fatalf("%s applied index %d, at or below the installed snapshot's %d", down.id, st.LowestApplied, st.SnapshotIndex)
	}
	if !strings.Contains(down.logBuf.String(), "installed snapshot from the leader") {
		t.Fatalf("%s logged no snapshot install", down.id)
	}

	// It keeps replicating, and leads with the producer table it got.
	for i := range 5 {
		mustProduce(t, ld.r, idem(t, fmt.Sprintf("d%d", i), -1, 0, 0, 4, 500))
	}
	hw, _ = c.waitSame(hw + 20)
	c.waitLeader(down)
	res, err := down.r.Produce(bytes.Clone(lastIdem), -1)()
	if err != nil || res.BaseOffset != lastIdemOff {
		t.Fatalf("retry of the idempotent producer's last batch on %s: offset %d, %v; want the duplicate at %d", down.id, res.BaseOffset, err, lastIdemOff)
	}
	if got := down.r.Partition().HighWatermark(); got != hw {
		t.Fatalf("the retry moved the high watermark from %d to %d", hw, got)
	}
	if off := mustProduce(t, down.r, idem(t, "next", pid, 2, 80, 4, 500)); off != hw {
		t.Fatalf("the producer's next batch at %d, want %d", off, hw)
	}
	c.waitSame(hw + 4)
	c.sameData(down)
}

// TestReplicaSnapshotOverConflictingEntries is hashicorp/raft#697 at the
// replica level: a leader cut off from its followers stores acks=1 batches
// that never commit, while the others elect a leader that writes past
// them, deletes its head (DeleteRecords, snapshot, trim) and so can only
// send the old leader a snapshot. The old leader's log held entries past
// the snapshot's index, so the install leaves raft's cached last entry
// stale; the replica restarts its raft and converges: the leader's batches
// byte for byte, none of the uncommitted ones. Without the restart it
// never does (replication livelocks sending the snapshot again). The
// restarted replica keeps replicating and can lead.
func TestReplicaSnapshotOverConflictingEntries(t *testing.T) {
	pcfg := testPartitionConfig()
	pcfg.SegmentBytes = 16 << 10
	c := newReplicaCluster(t, 3, pcfg, func(cfg *raft.Config) {
		fastTimings(cfg)
		// The cut-off leader keeps its lease while it stores the acks=1
		// batches (pipelined, milliseconds); the others elect a leader
		// within 0.5-1 s.
		cfg.HeartbeatTimeout = 500 * time.Millisecond
		cfg.ElectionTimeout = 500 * time.Millisecond
		cfg.LeaderLeaseTimeout = 500 * time.Millisecond
	})
	old := c.leader()
	for i := range 5 {
		mustProduce(t, old.r, idem(t, fmt.Sprintf("a%d", i), -1, 0, 0, 4, 500))
	}
	c.waitSame(20)
	base := old.r.Partition().Log().LastIndex()

	c.isolate(old)
	var waits []func() (partition.ProduceResult, error)
	for i := range 60 {
		waits = append(waits, old.r.Produce(idem(t, fmt.Sprintf("lost%d", i), -1, 0, 0, 4, 500), 1))
	}
	stored := 0
	for _, w := range waits {
		if _, err := w(); err == nil {
			stored++
		} else if !isNotLeader(err) {
			t.Fatalf("acks=1 on the cut-off leader: %v", err)
		}
	}
	oldLast := old.r.Partition().Log().LastIndex()
	if stored < 40 || oldLast < base+40 {
		t.Fatalf("the cut-off leader stored %d acks=1 batches (log %d..%d): too few to conflict", stored, base, oldLast)
	}

	nl := c.otherLeader(old)
	for i := range 20 {
		mustProduce(t, nl.r, idem(t, fmt.Sprintf("b%d", i), -1, 0, 0, 4, 500))
	}
	hw := nl.r.Partition().HighWatermark()
	if _, err := nl.r.DeleteRecords(-1); err != nil {
		t.Fatal(err)
	}
	for _, nd := range c.running() {
		if nd == old {
			continue
		}
		// Wait for the follower to apply the DeleteRecords, then snapshot and trim.
		deadline := time.Now().Add(20 * time.Second)
		for nd.r.Partition().LogStartOffset() != hw {
			if time.Now().After(deadline) {
				t.Fatalf("%s: log start %d, want %d", nd.id, nd.r.Partition().LogStartOffset(), hw)
			}
			time.Sleep(5 * time.Millisecond)
		}
		if err := nd.r.ApplyRetention(); err != nil {
			t.Fatalf("%s: retention: %v", nd.id, err)
		}
		if first := nd.r.Partition().Log().FirstIndex(); first <= base+1 {
			t.Fatalf("%s's log starts at index %d: the entry after the last common one (%d) is still there", nd.id, first, base+1)
		}
	}
	snapIndex, err := strconv.ParseUint(nl.r.Raft().Stats()["last_snapshot_index"], 10, 64)
	if err != nil || snapIndex == 0 || oldLast <= snapIndex {
		t.Fatalf("leader's snapshot index %s (%v), the old leader's log ends at %d: no entries past the snapshot to conflict",
			nl.r.Raft().Stats()["last_snapshot_index"], err, oldLast)
	}
	for i := range 3 {
		mustProduce(t, nl.r, idem(t, fmt.Sprintf("c%d", i), -1, 0, 0, 4, 500))
	}

	c.heal(old)
	hw, _ = c.waitSame(hw + 12)
	want := c.sameData(nl)
	for _, b := range want {
		if strings.HasPrefix(b.key, "lost") {
			t.Fatalf("uncommitted batch %q at %d survived", b.key, b.offset)
		}
	}
	st := old.r.FSM().Stats()
	if st.Restores == 0 || st.StaleRestores == 0 || old.r.RaftRestarts() == 0 {
		t.Fatalf("the old leader converged without a stale install and a raft restart: %+v, %d restarts", st, old.r.RaftRestarts())
	}

	for i := range 5 {
		mustProduce(t, nl.r, idem(t, fmt.Sprintf("d%d", i), -1, 0, 0, 4, 500))
	}
	hw, _ = c.waitSame(hw + 20)
	c.sameData(nl)
	c.waitLeader(old)
	if off := mustProduce(t, old.r, idem(t, "e", -1, 0, 0, 4, 500)); off != hw {
		t.Fatalf("produce on the restarted replica as leader: offset %d, want %d", off, hw)
	}
	c.waitSame(hw + 4)
	c.sameData(old)
}

// TestReplicaRaftRestart restarts a replica's raft, as after an install
// that left raft's cached last entry stale, while a producer writes and
// another goroutine reads its state: writes fail only with
// NOT_LEADER_FOR_PARTITION, OnLeaderChange reports the restarted raft's
// leadership, the replica takes writes again with the same offsets, and a
// restart requested as Close runs neither deadlocks nor outlives it.
func TestReplicaRaftRestart(t *testing.T) {
	nd := &replicaNode{id: "solo", dir: t.TempDir(), logBuf: &syncBuffer{}, stable: raft.NewInmemStore()}
	_, nd.trans = raft.NewInmemTransport(nd.addr())
	var mu sync.Mutex
	var reports []uint64 // terms reported with this replica as leader
	r, err := OpenReplica(ReplicaConfig{
		Dir: nd.dir, Topic: "t", Config: testPartitionConfig(), Options: partition.Options{Now: fixedNow},
		ID: nd.id, Transport: nd.trans, Stable: nd.stable, Tune: fastTimings,
		Logger:    zerolog.New(nd.logBuf).Level(zerolog.InfoLevel),
		Bootstrap: []raft.Server{{ID: nd.id, Address: nd.addr()}},
		OnLeaderChange: func(id raft.ServerID, term uint64) {
			if id == nd.id {
				mu.Lock()
				reports = append(reports, term)
				mu.Unlock()
			}
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		r.Close()
		if t.Failed() {
			t.Logf("--- log ---\n%s", nd.logBuf.String())
		}
	})
	waitReady := func() {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for !r.Ready() {
			if time.Now().After(deadline) {
				t.Fatalf("not ready")
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	waitReady()
	hw := int64(0)
	for i := range 5 {
		if off := mustProduce(t, r, idem(t, fmt.Sprintf("a%d", i), -1, 0, 0, 2, 100)); off != hw {
			t.Fatalf("offset %d, want %d", off, hw)
		}
		hw += 2
	}

	stop := make(chan struct{})
	var wg sync.WaitGroup
	var acked atomic.Int64
	wg.Add(2)
	go func() { // producer
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			_, err := r.Produce(idem(t, fmt.Sprintf("p%d", i), -1, 0, 0, 1, 50), int16(1-2*(i%2)))()
			switch {
			case err == nil:
				acked.Add(1)
			case isNotLeader(err):
				time.Sleep(time.Millisecond)
			default:
				t.Errorf("produce during a restart: %v", err)
				return
			}
		}
	}()
	go func() { // readers of the swapped raft
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			r.Leader()
			r.IsLeader()
			r.Ready()
			_ = r.Raft().State()
			if err := r.ApplyRetention(); err != nil && !isNotLeader(err) {
				t.Errorf("retention during a restart: %v", err)
				return
			}
			time.Sleep(time.Millisecond)
		}
	}()
	for acked.Load() < 10 {
		time.Sleep(time.Millisecond)
	}
	mu.Lock()
	before := len(reports)
	mu.Unlock()
	r.fsm.stale <- struct{}{}
	deadline := time.Now().Add(20 * time.Second)
	for r.RaftRestarts() == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("raft not restarted")
		}
		time.Sleep(time.Millisecond)
	}
	n := acked.Load()
	for acked.Load() < n+10 {
		if time.Now().After(deadline) {
			t.Fatalf("no writes after the restart")
		}
		time.Sleep(time.Millisecond)
	}
	close(stop)
	wg.Wait()
	waitReady()
	_, term := r.Leader()
	mu.Lock()
	got := append([]uint64(nil), reports[before:]...)
	mu.Unlock()
	if len(got) == 0 || got[len(got)-1] != term {
		t.Fatalf("OnLeaderChange after the restart reported leader terms %v, want the current %d last", got, term)
	}
	// The log is whole: every batch from offset 0 on, consecutive.
	next := int64(0)
	for _, b := range fetchRaw(t, r.Partition()) {
		if b.offset != next {
			t.Fatalf("batch at %d, want %d", b.offset, next)
		}
		h, _ := batch.ParseHeader(b.data)
		next = h.NextOffset()
	}
	if next != r.Partition().HighWatermark() || next < hw+20 {
		t.Fatalf("batches end at %d, high watermark %d", next, r.Partition().HighWatermark())
	}

	// A restart racing Close: Close waits for it or it sees Close.
	r.fsm.stale <- struct{}{}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Produce(idem(t, "late", -1, 0, 0, 1, 50), -1)(); !errors.Is(err, kerr.NotLeaderForPartition) {
		t.Fatalf("produce after Close: %v", err)
	}
	if n := r.RaftRestarts(); n > 2 {
		t.Fatalf("%d restarts", n)
	}
}

// TestReplicaRaftRestartFails: a restart whose NewRaft fails leaves a
// replica that answers NOT_LEADER_FOR_PARTITION and still closes cleanly.
func TestReplicaRaftRestartFails(t *testing.T) {
	nd := &replicaNode{id: "solo", dir: t.TempDir(), logBuf: &syncBuffer{}, stable: raft.NewInmemStore()}
	_, nd.trans = raft.NewInmemTransport(nd.addr())
	r, err := OpenReplica(ReplicaConfig{
		Dir: nd.dir, Topic: "t", Config: testPartitionConfig(), Options: partition.Options{Now: fixedNow},
		ID: nd.id, Transport: nd.trans, Stable: nd.stable, Tune: fastTimings,
		Logger:    zerolog.New(nd.logBuf).Level(zerolog.InfoLevel),
		Bootstrap: []raft.Server{{ID: nd.id, Address: nd.addr()}},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("--- log ---\n%s", nd.logBuf.String())
		}
	})
	deadline := time.Now().Add(20 * time.Second)
	for !r.Ready() {
		if time.Now().After(deadline) {
			t.Fatalf("not ready")
		}
		time.Sleep(5 * time.Millisecond)
	}
	mustProduce(t, r, idem(t, "a", -1, 0, 0, 2, 100))
	bad := *r.rc
	bad.LocalID = "" // NewRaft refuses it
	r.rc = &bad
	r.fsm.stale <- struct{}{} // the channel orders the write above before the watcher's read
	for !strings.Contains(nd.logBuf.String(), "raft restart failed") {
		if time.Now().After(deadline) {
			t.Fatalf("restart did not fail")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if r.RaftRestarts() != 0 || r.Ready() {
		t.Fatalf("%d restarts, ready %v", r.RaftRestarts(), r.Ready())
	}
	if _, err := r.Produce(idem(t, "b", -1, 0, 0, 1, 50), -1)(); !isNotLeader(err) {
		t.Fatalf("produce after a failed restart: %v", err)
	}
	if err := r.ApplyRetention(); err != nil {
		t.Fatalf("retention after a failed restart: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- r.Close() }()
	select {
	case <-done: // the shut-down raft's error, if any, is not the point
	case <-time.After(20 * time.Second):
		t.Fatalf("Close hangs after a failed restart")
	}
}
