package replication

import (
	"bytes"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	"github.com/rs/zerolog"

	"github.com/sluicemq/sluice/log"
)

// ssFSM is a minimal test FSM whose Restore installs the streamed segments,
// as the partition FSM will: it type-asserts the reader, calls Install and
// reads the manifest. When the log held entries at or past the snapshot
// index with another term (or past it at all), raft's cached last entry is
// stale after the restore (hashicorp/raft#697): it asks for a restart.
type ssFSM struct {
	l       *log.Log
	restart chan struct{}

	mu       sync.Mutex
	applied  uint64
	restores int
}

func (f *ssFSM) restoreCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.restores
}

func (f *ssFSM) Apply(l *raft.Log) any {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.applied = max(f.applied, l.Index)
	return nil
}

func (f *ssFSM) Snapshot() (raft.FSMSnapshot, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return ssManifest(fmt.Sprintf("ssfsm applied=%d", f.applied)), nil
}

func (f *ssFSM) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	rc = UnwrapSnapshot(rc)
	is, ok := rc.(installableSnapshot)
	if !ok {
		return fmt.Errorf("snapshot reader %T cannot install segments", rc)
	}
	rs := rc.(*ReceivedSnapshot)
	meta := rs.Meta()
	// Is raft's cached last entry about to be stale?
	stale := false
	if last := f.l.LastIndex(); last > meta.Index {
		stale = true
	} else if last == meta.Index {
		e, err := f.l.Entry(last)
		stale = err != nil || e.Term != meta.Term
	}
	f.mu.Lock()
	f.restores++ // before Install: the log may look converged as soon as it returns
	f.mu.Unlock()
	if err := is.Install(); err != nil {
		return err
	}
	m, err := io.ReadAll(rc)
	if err != nil || !bytes.Equal(m, is.Manifest()) {
		return fmt.Errorf("manifest: %v", err)
	}
	f.mu.Lock()
	f.applied = meta.Index
	f.mu.Unlock()
	if stale {
		select {
		case f.restart <- struct{}{}:
		default:
		}
	}
	return nil
}

type ssManifest string

func (m ssManifest) Persist(sink raft.SnapshotSink) error {
	if _, err := sink.Write([]byte(m)); err != nil {
		sink.Cancel()
		return err
	}
	return sink.Close()
}

func (ssManifest) Release() {}

type ssNode struct {
	id     string
	log    *log.Log
	stable *raft.InmemStore
	snaps  *SnapshotStore
	fsm    *ssFSM
	trans  *raft.InmemTransport
	raft   *raft.Raft
}

type ssCluster struct {
	t     *testing.T
	nodes []*ssNode
}

func ssRaftConfig(id string) *raft.Config {
	c := raft.DefaultConfig()
	c.LocalID = raft.ServerID(id)
	// Slower than fastTimings: these tests keep one leader throughout, and
	// 200 ms lost leaderships on two loaded cores ("leadership lost while
	// committing log", "node is not the leader").
	c.HeartbeatTimeout, c.ElectionTimeout = time.Second, time.Second
	c.LeaderLeaseTimeout, c.CommitTimeout = 500*time.Millisecond, 5*time.Millisecond
	c.TrailingLogs, c.SnapshotThreshold, c.SnapshotInterval = math.MaxUint64, math.MaxUint64, time.Hour
	c.NoSnapshotRestoreOnStart = true
	c.Logger = hclog.NewNullLogger()
	if os.Getenv("SS_RAFT_LOG") != "" {
		c.Logger = hclog.New(&hclog.LoggerOptions{Name: id, Level: hclog.Info})
	}
	return c
}

func newSSCluster(t *testing.T) *ssCluster {
	c := &ssCluster{t: t}
	tmp := t.TempDir()
	var servers []raft.Server
	for i := range 3 {
		id := fmt.Sprintf("n%d", i)
		l, err := log.Open(filepath.Join(tmp, id, "log"), ssLogOptions())
		if err != nil {
			t.Fatal(err)
		}
		snaps, err := NewSnapshotStore(filepath.Join(tmp, id, "snapshots"), l, zerolog.Nop())
		if err != nil {
			t.Fatal(err)
		}
		nd := &ssNode{id: id, log: l, stable: raft.NewInmemStore(), snaps: snaps, fsm: &ssFSM{l: l, restart: make(chan struct{}, 1)}}
		c.nodes = append(c.nodes, nd)
		servers = append(servers, raft.Server{ID: raft.ServerID(id), Address: raft.ServerAddress(id)})
	}
	for _, nd := range c.nodes {
		_, tr := raft.NewInmemTransport(raft.ServerAddress(nd.id))
		if err := raft.BootstrapCluster(ssRaftConfig(nd.id), NewLogStore(nd.log), nd.stable, nd.snaps, tr, raft.Configuration{Servers: servers}); err != nil {
			t.Fatal(err)
		}
		c.start(nd)
	}
	t.Cleanup(func() {
		for _, nd := range c.nodes {
			if nd.raft != nil {
				nd.raft.Shutdown().Error()
			}
			nd.log.Close()
		}
	})
	return c
}

// start runs nd's raft over its stores with a fresh transport connected to
// every running node.
func (c *ssCluster) start(nd *ssNode) {
	_, nd.trans = raft.NewInmemTransport(raft.ServerAddress(nd.id))
	for _, o := range c.nodes {
		if o != nd && o.trans != nil {
			nd.trans.Connect(raft.ServerAddress(o.id), o.trans)
			o.trans.Connect(raft.ServerAddress(nd.id), nd.trans)
		}
	}
	r, err := raft.NewRaft(ssRaftConfig(nd.id), nd.fsm, NewLogStore(nd.log), nd.stable, nd.snaps, nd.trans)
	if err != nil {
		c.t.Fatal(err)
	}
	nd.raft = r
}

func (c *ssCluster) stop(nd *ssNode) {
	if err := nd.raft.Shutdown().Error(); err != nil {
		c.t.Fatal(err)
	}
	for _, o := range c.nodes {
		if o.trans != nil && o != nd {
			o.trans.Disconnect(raft.ServerAddress(nd.id))
		}
	}
	nd.raft, nd.trans = nil, nil
}

// waitFor polls cond, restarting any node whose FSM asked for it, and fails
// the test after a generous deadline.
func (c *ssCluster) waitFor(what string, cond func() bool) {
	c.t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		for _, nd := range c.nodes {
			select {
			case <-nd.fsm.restart:
				c.stop(nd)
				c.start(nd)
			default:
			}
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (c *ssCluster) leader() *ssNode {
	c.t.Helper()
	var ld *ssNode
	c.waitFor("a leader", func() bool {
		for _, nd := range c.nodes {
			if nd.raft != nil && nd.raft.State() == raft.Leader {
				ld = nd
				return true
			}
		}
		return false
	})
	return ld
}

// produce applies n produce commands through ld, several in flight.
func (c *ssCluster) produce(ld *ssNode, tag string, n int) {
	c.t.Helper()
	var fs []raft.ApplyFuture
	for i := range n {
		cmd := append([]byte{CmdProduce}, ssBatch(c.t, fmt.Sprintf("%s%d", tag, i), 1+i%4, 300)...)
		fs = append(fs, ld.raft.Apply(cmd, 5*time.Second))
	}
	for _, f := range fs {
		if err := f.Error(); err != nil {
			c.t.Fatalf("apply: %v", err)
		}
	}
}

// sameAs reports whether nd's log holds exactly ld's entries from nd's
// first index through ld's last, with the same start offset.
func sameAs(t *testing.T, nd, ld *ssNode) bool {
	first, last := nd.log.FirstIndex(), ld.log.LastIndex()
	if first == 0 || nd.log.LastIndex() != last || first < ld.log.FirstIndex() {
		return false
	}
	return reflect.DeepEqual(ssEntries(t, nd.log, first, last), ssEntries(t, ld.log, first, last)) &&
		nd.log.StartOffset() == ld.log.StartOffset() && nd.log.EndOffset() == ld.log.EndOffset()
}

// deleteHead removes about half of ld's sealed segments (retention), and
// returns the new first index.
func deleteHead(t *testing.T, ld *ssNode) uint64 {
	segs := ld.log.Segments()
	if len(segs) < 6 {
		t.Fatalf("only %d segments", len(segs))
	}
	if err := ld.log.DeleteBefore(segs[len(segs)/2].BaseOffset + 1); err != nil {
		t.Fatal(err)
	}
	return ld.log.FirstIndex()
}

// TestRaftInstallSnapshotLaggingFollower: a follower stopped while the
// leader's retention deleted the entries it needs catches up through
// InstallSnapshot with the streamed segments, then replicates as usual.
func TestRaftInstallSnapshotLaggingFollower(t *testing.T) {
	c := newSSCluster(t)
	ld := c.leader()
	c.produce(ld, "a", 20)
	var f *ssNode
	for _, nd := range c.nodes {
		if nd != ld {
			f = nd
		}
	}
	c.waitFor("the follower", func() bool { return f.log.LastIndex() == ld.log.LastIndex() })
	c.stop(f)
	behind := f.log.LastIndex()

	c.produce(ld, "b", 250)
	if first := deleteHead(t, ld); first <= behind+1 {
		t.Fatalf("leader's first index %d: the follower's next %d is not gone", first, behind+1)
	}
	if err := ld.raft.Snapshot().Error(); err != nil {
		t.Fatal(err)
	}
	c.produce(ld, "c", 10) // entries after the snapshot, sent as entries
	c.start(f)
	c.waitFor("the follower to catch up", func() bool { return sameAs(t, f, ld) })
	if f.fsm.restoreCount() != 1 {
		t.Fatalf("%d restores, want 1", f.fsm.restoreCount())
	}
	if f.log.FirstIndex() != ld.log.FirstIndex() {
		t.Fatalf("follower starts at %d, leader at %d", f.log.FirstIndex(), ld.log.FirstIndex())
	}
	c.produce(ld, "d", 30)
	c.waitFor("replication after the install", func() bool { return sameAs(t, f, ld) })
	if err := f.log.Verify(); err != nil {
		t.Fatal(err)
	}
}

// TestRaftInstallSnapshotConflictingFollower: a former leader holding
// uncommitted entries of its old term at and past the new leader's
// snapshot index (hashicorp/raft#697) gets the snapshot, its raft is
// restarted after Restore so its cached last entry matches the log, and it
// converges.
func TestRaftInstallSnapshotConflictingFollower(t *testing.T) {
	c := newSSCluster(t)
	old := c.leader()
	c.produce(old, "a", 20)
	for _, nd := range c.nodes {
		c.waitFor("replication", func() bool { return nd.log.LastIndex() == old.log.LastIndex() })
	}
	term := old.raft.Stats()["term"]
	c.stop(old)
	// What the old leader would have appended before it crashed: entries of
	// its own term that nobody else got, well past where the new leader's
	// snapshot will be.
	var oldTerm uint64
	fmt.Sscan(term, &oldTerm)
	next := old.log.LastIndex() + 1
	for i := range 600 {
		e := log.Entry{Index: next + uint64(i), Term: oldTerm, Type: uint8(raft.LogCommand), Batch: true, Data: ssBatch(t, fmt.Sprintf("lost%d", i), 2, 50)}
		if err := old.log.StoreEntries([]log.Entry{e}); err != nil {
			t.Fatal(err)
		}
	}
	ld := c.leader()
	c.produce(ld, "b", 250)
	deleteHead(t, ld)
	if err := ld.raft.Snapshot().Error(); err != nil {
		t.Fatal(err)
	}
	snapIndex := ld.log.LastIndex()
	if old.log.LastIndex() < snapIndex {
		t.Fatalf("old leader's log ends at %d, before the snapshot index %d: no conflict to test", old.log.LastIndex(), snapIndex)
	}
	c.start(old)
	c.waitFor("the old leader to converge", func() bool { return sameAs(t, old, ld) })
	if old.fsm.restoreCount() == 0 {
		t.Fatal("converged without a snapshot")
	}
	c.produce(ld, "c", 30)
	c.waitFor("replication after the install", func() bool { return sameAs(t, old, ld) })
}
