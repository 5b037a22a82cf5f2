package replication

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/sluicemq/sluice/log"
	"github.com/sluicemq/sluice/log/vfs"
)

// TestWholeClusterPowerLoss: every replica of a group loses power at the
// same instant while produce commands are in flight (one vfs.Mem holds
// all three logs; Crash drops every unsynced write, tearing some with
// garbage), then all restart together. Raft's term and vote and the
// snapshots are in stores that survive, as raft.db and the manifests do
// (both fsynced). After each of several rounds the group elects a leader,
// converges, and every acknowledged batch is on every replica at the
// offset it was acknowledged with.
func TestWholeClusterPowerLoss(t *testing.T) {
	m := vfs.NewMem()
	c := newCluster(t, 3, log.Options{FS: m, SegmentBytes: 4096, Now: fixedNow}, fastTimings)
	r := rand.New(rand.NewPCG(5, 1))
	var (
		mu  sync.Mutex
		all []acked
	)
	count := func() int { mu.Lock(); defer mu.Unlock(); return len(all) }
	var torn int64 // bytes of torn tails recovery cut, over all restarts
	for round := range 5 {
		rf := c.leader().raft
		stop, dead := make(chan struct{}), make(chan struct{})
		var wg sync.WaitGroup
		for w := range 4 {
			wg.Go(func() {
				for i := 0; ; i++ {
					select {
					case <-stop:
						return
					default:
					}
					tag := fmt.Sprintf("r%d-w%d-%d", round, w, i)
					cmd := produce(t, tag, 2, 40)
					orig := bytes.Clone(cmd[1:])
					f := rf.Apply(cmd, 5*time.Second)
					res := make(chan error, 1)
					// raft leaves a proposal still queued at Shutdown
					// unanswered: stop waiting when the node is gone.
					go func() { res <- f.Error() }()
					select {
					case err := <-res:
						if err != nil {
							return // the crash: unknown outcome, not acknowledged
						}
					case <-dead:
						return
					}
					mu.Lock()
					all = append(all, acked{tag: tag, offset: f.Response().(int64), batch: orig})
					mu.Unlock()
				}
			})
		}
		// Crash at a different point of the stream each round.
		target := count() + 20 + r.IntN(60)
		waitTrue(t, "acknowledgements before the crash", func() bool { return count() >= target })
		if round%2 == 1 {
			// Writes in flight at the crash: hold fsyncs until a replica
			// waits in one, its frames written but not synced.
			m.StallSync(make(chan struct{}))
			waitTrue(t, "a stalled fsync", func() bool { return m.StalledSyncs() >= 1 })
		}
		m.Crash(vfs.CrashOptions{Rand: r, TornWrites: true, Garbage: true})
		m.ClearFaults()
		close(stop)
		// The processes die with the power: a proposal the crash left
		// uncommitted ends with the shutdown, never acknowledged.
		for _, nd := range c.nodes {
			c.stop(nd)
		}
		close(dead)
		wg.Wait()
		for _, nd := range c.nodes {
			_, nd.trans = raft.NewInmemTransportWithTimeout(nd.addr(), 5*time.Second)
			c.start(nd)
			torn += nd.log.Recovery().TruncatedBytes
		}
		for _, nd := range c.nodes {
			c.heal(nd)
		}
		c.leader()
		c.waitConverged()
		mu.Lock()
		c.checkAcked(all)
		mu.Unlock()
		t.Logf("round %d: %d acknowledged batches survive on all replicas; %d torn bytes cut so far", round, count(), torn)
	}
	if torn == 0 {
		t.Fatal("no power loss tore a write: recovery of a torn tail was not exercised")
	}
}
