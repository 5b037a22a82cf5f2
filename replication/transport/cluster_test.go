package transport

import (
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// TestCluster runs two raft groups on three Muxes: elections, 1100 applies
// each, leadership transfer, and a 64 MiB snapshot installed on a lagging
// follower without the heap growing by the snapshot's size.
func TestCluster(t *testing.T) {
	const pad = 64 << 20
	groups := []groupSpec{{id: "g1"}, {id: "g2", pad: pad, stream: true}}
	c := newCluster(t, 3, groups, Options{RPCTimeout: 2 * time.Second}, fastRaft)

	for _, g := range groups {
		ld := c.leader(g.id)
		c.apply(ld, g.id, 1100, 100)
		c.converged(g.id, ld)

		// Leadership transfer to whichever follower raft picks.
		if err := ld.raft(g.id).LeadershipTransfer().Error(); err != nil {
			t.Fatalf("%s: leadership transfer: %v", g.id, err)
		}
		nl := c.leader(g.id)
		if nl == ld {
			t.Fatalf("%s: %s still leads after a transfer", g.id, ld.id)
		}
		c.apply(nl, g.id, 10, 100)
		c.converged(g.id, nl)
	}

	// g2: stop one follower's raft, move on without it, snapshot and
	// compact, then bring it back empty: it can only catch up by an
	// InstallSnapshot of 64 MiB.
	ld := c.leader("g2")
	var lag *testNode
	for _, nd := range c.nodes {
		if nd != ld {
			lag = nd
			break
		}
	}
	if err := lag.raft("g2").Shutdown().Error(); err != nil {
		t.Fatal(err)
	}
	c.apply(ld, "g2", 200, 100)
	if err := ld.raft("g2").Snapshot().Error(); err != nil {
		t.Fatal(err)
	}
	c.apply(ld, "g2", 20, 100)

	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	base := ms.HeapAlloc
	var peak atomic.Uint64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		var ms runtime.MemStats
		for {
			runtime.ReadMemStats(&ms)
			if ms.HeapAlloc > peak.Load() {
				peak.Store(ms.HeapAlloc)
			}
			select {
			case <-stop:
				return
			case <-time.After(5 * time.Millisecond):
			}
		}
	}()

	c.start(lag, groups[1], false)
	waitFor(t, "the snapshot to be installed", func() bool {
		_, restored, _ := lag.fsm("g2").state()
		return restored == pad
	})
	close(stop)
	wg.Wait()
	c.converged("g2", ld)

	// Both ends stream through fixed buffers (64 KiB to send, raft's 32 KiB
	// copy buffer to receive) and the snapshot store keeps no padding, so
	// the heap should grow by well under a MiB for the transfer itself; the
	// bound leaves room for garbage between GC cycles and raft's own churn
	// (heartbeats, a few hundred log entries), and is half the snapshot:
	// a transport that buffered it would exceed it on either side.
	growth := int64(peak.Load()) - int64(base)
	t.Logf("heap before %d MiB, peak during InstallSnapshot %d MiB (growth %d KiB) for a %d MiB snapshot",
		base>>20, peak.Load()>>20, growth>>10, pad>>20)
	if growth > 32<<20 {
		t.Fatalf("heap grew by %d MiB while installing a %d MiB snapshot", growth>>20, pad>>20)
	}
	applied, _, restores := lag.fsm("g2").state()
	t.Logf("lagging follower: %d snapshot restores, %d applied", restores, applied)
	if restores < 1 || applied == 0 {
		t.Fatalf("lagging follower: %d restores, %d applied", restores, applied)
	}
}

// TestFaultPartitionLeader drops every message to and from the leader's
// node: the other two elect a leader and commit; once the fault is cleared
// the old leader steps down and catches up.
func TestFaultPartitionLeader(t *testing.T) {
	c := newCluster(t, 3, []groupSpec{{id: "g"}}, Options{RPCTimeout: time.Second}, fastRaft)
	old := c.leader("g")
	c.apply(old, "g", 50, 10)
	c.converged("g", old)

	cut := old.mux.Addr()
	for _, nd := range c.nodes {
		if nd == old {
			nd.mux.SetFault(func(raft.ServerAddress) Fault { return Fault{Drop: true} })
			continue
		}
		nd.mux.SetFault(func(to raft.ServerAddress) Fault { return Fault{Drop: to == cut} })
	}
	nl := c.leader("g", old)
	c.apply(nl, "g", 50, 10)
	waitFor(t, "the partitioned leader to step down", func() bool {
		return old.raft("g").State() != raft.Leader
	})

	for _, nd := range c.nodes {
		nd.mux.SetFault(nil)
	}
	ld := c.leader("g")
	c.apply(ld, "g", 10, 10)
	c.converged("g", ld)
	if got, _, _ := old.fsm("g").state(); got != 110 {
		t.Fatalf("old leader applied %d, want 110", got)
	}
}

// TestFaultDelay runs a group with every message delayed: slower, still
// correct.
func TestFaultDelay(t *testing.T) {
	c := newCluster(t, 3, []groupSpec{{id: "g"}}, Options{}, fastRaft)
	for _, nd := range c.nodes {
		nd.mux.SetFault(func(raft.ServerAddress) Fault { return Fault{Delay: 2 * time.Millisecond} })
	}
	ld := c.leader("g")
	c.apply(ld, "g", 100, 10)
	c.converged("g", ld)
}
