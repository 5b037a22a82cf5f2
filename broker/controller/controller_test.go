package controller

import (
	"context"
	"errors"

	"path/filepath"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"github.com/rs/zerolog"
	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/sluicemq/sluice/replication"
	"github.com/sluicemq/sluice/replication/transport"
)

type node struct {
	id     int32
	dir    string
	mux    *transport.Mux
	stable *replication.StableDB
	ctrl   *Controller
}

func fast(c *raft.Config) {
	c.HeartbeatTimeout, c.ElectionTimeout = 200*time.Millisecond, 200*time.Millisecond
	c.LeaderLeaseTimeout, c.CommitTimeout = 100*time.Millisecond, 5*time.Millisecond
}

func (n *node) open(t *testing.T, voters []Voter, addr string) {
	t.Helper()
	mux, err := transport.Listen(addr, transport.Options{})
	if err != nil {
		t.Fatal(err)
	}
	stable, err := replication.OpenStableDB(filepath.Join(n.dir, "raft.db"))
	if err != nil {
		t.Fatal(err)
	}
	c, err := Open(Config{
		NodeID: n.id, RaftAddr: string(mux.Addr()), Dir: filepath.Join(n.dir, "controller"), Voters: voters,
		Transport: mux.Group("controller"), RPC: mux, Stable: stable.Group("controller"), Tune: fast, Logger: zerolog.Nop(),
	})
	if err != nil {
		t.Fatal(err)
	}
	n.mux, n.stable, n.ctrl = mux, stable, c
}

func (n *node) close() {
	if n.ctrl == nil {
		return
	}
	n.ctrl.Close()
	n.mux.Close()
	n.stable.Close()
	n.ctrl = nil
}

// threeVoters starts three voters over the real transport on loopback.
func threeVoters(t *testing.T) ([]*node, []Voter) {
	t.Helper()
	var nodes []*node
	var voters []Voter
	for i := int32(1); i <= 3; i++ {
		n := &node{id: i, dir: t.TempDir()}
		mux, err := transport.Listen("127.0.0.1:0", transport.Options{})
		if err != nil {
			t.Fatal(err)
		}
		addr := string(mux.Addr())
		mux.Close() // reopened on the same port by open
		voters = append(voters, Voter{ID: i, RaftAddr: addr})
		nodes = append(nodes, n)
	}
	for i, n := range nodes {
		n.open(t, voters, voters[i].RaftAddr)
	}
	t.Cleanup(func() {
		for _, n := range nodes {
			n.close()
		}
	})
	return nodes, voters
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// Proposals made on any voter (forwarded to the leader) are applied on
// all of them; a new non-voter joins and receives the whole state; the
// state survives a restart of every node.
func TestControllerGroup(t *testing.T) {
	nodes, voters := threeVoters(t)
	for _, n := range nodes {
		info := &BrokerInfo{ID: n.id, Host: "127.0.0.1", Port: 9000 + n.id, RaftAddr: string(n.mux.Addr()), Voter: true}
		if _, err := n.ctrl.Propose(ctxT(t), Command{Op: OpRegisterBroker, Broker: info}); err != nil {
			t.Fatalf("register %d: %v", n.id, err)
		}
	}
	// Whichever node is not the leader forwards.
	var follower *node
	for _, n := range nodes {
		if !n.ctrl.IsLeader() {
			follower = n
		}
	}
	res, err := follower.ctrl.Propose(ctxT(t), Command{Op: OpCreateTopic, Topic: "a", TopicID: TopicID{1}, Partitions: 3, ReplicationFactor: 3})
	if err != nil || res.Code != 0 {
		t.Fatalf("create through a follower: %v %+v", err, res)
	}
	// Propose waits until the proposer's own state has the change.
	if follower.ctrl.State().Topic("a") == nil {
		t.Fatal("the proposing follower does not see its own change")
	}
	res, err = follower.ctrl.Propose(ctxT(t), Command{Op: OpCreateTopic, Topic: "a", TopicID: TopicID{2}, Partitions: 3, ReplicationFactor: 3})
	if err != nil || !errors.Is(res.Err(), kerr.TopicAlreadyExists) {
		t.Fatalf("duplicate create: %v %+v", err, res)
	}

	// A fourth broker joins as a non-voter and learns everything.
	n4 := &node{id: 4, dir: t.TempDir()}
	n4.open(t, voters, "127.0.0.1:0")
	t.Cleanup(n4.close)
	if err := n4.ctrl.Join(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return n4.ctrl.State().Topic("a") != nil })
	// nodes[0] may be a follower that has not yet stored the
	// configuration change adding broker 4: wait until it lists it.
	var suffrage raft.ServerSuffrage = -1
	waitFor(t, func() bool {
		cfg := nodes[0].ctrl.Raft().GetConfiguration()
		if err := cfg.Error(); err != nil {
			t.Fatal(err)
		}
		for _, s := range cfg.Configuration().Servers {
			if s.ID == "4" {
				suffrage = s.Suffrage
				return true
			}
		}
		return false
	})
	if suffrage != raft.Nonvoter {
		t.Fatalf("broker 4 suffrage %v, want nonvoter", suffrage)
	}
	// The non-voter can propose (forwarded) too.
	if _, err := n4.ctrl.Propose(ctxT(t), Command{Op: OpRegisterBroker, Broker: &BrokerInfo{ID: 4, RaftAddr: string(n4.mux.Addr())}}); err != nil {
		t.Fatal(err)
	}

	// Restart every voter: the state comes back from the log.
	want := nodes[0].ctrl.State()
	for _, n := range nodes {
		n.close()
	}
	for i, n := range nodes {
		n.open(t, voters, voters[i].RaftAddr)
	}
	for _, n := range nodes {
		waitFor(t, func() bool { return n.ctrl.State().Index >= want.Index })
		got := n.ctrl.State()
		if got.Topic("a") == nil || len(got.Brokers) != 4 || got.Topic("a").ID != (TopicID{1}) {
			t.Fatalf("node %d after restart: %+v", n.id, got)
		}
	}
}

func waitFor(t *testing.T, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met in 20s")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// The controller's log is compacted behind its snapshots, so it stays
// bounded however many changes the cluster sees; a restart comes back
// with the state from the snapshot and the entries after it.
func TestControllerLogCompacts(t *testing.T) {
	n := &node{id: 1, dir: t.TempDir()}
	compact := func(c *raft.Config) {
		fast(c)
		c.SnapshotThreshold, c.SnapshotInterval, c.TrailingLogs = 16, 50*time.Millisecond, 8
	}
	open := func() {
		mux, err := transport.Listen("127.0.0.1:0", transport.Options{})
		if err != nil {
			t.Fatal(err)
		}
		stable, err := replication.OpenStableDB(filepath.Join(n.dir, "raft.db"))
		if err != nil {
			t.Fatal(err)
		}
		c, err := Open(Config{
			NodeID: 1, RaftAddr: string(mux.Addr()), Dir: filepath.Join(n.dir, "controller"),
			Voters:    []Voter{{ID: 1, RaftAddr: string(mux.Addr())}},
			Transport: mux.Group("controller"), RPC: mux, Stable: stable.Group("controller"), Tune: compact, Logger: zerolog.Nop(),
		})
		if err != nil {
			t.Fatal(err)
		}
		n.mux, n.stable, n.ctrl = mux, stable, c
	}
	open()
	t.Cleanup(n.close)
	for i := range 100 {
		if _, err := n.ctrl.Propose(ctxT(t), Command{Op: OpAllocProducerIDs}); err != nil {
			t.Fatalf("propose %d: %v", i, err)
		}
	}
	waitFor(t, func() bool {
		first, err := n.ctrl.store.FirstIndex()
		return err == nil && first > 50
	})
	want := n.ctrl.State().NextProducerID
	n.close()
	open()
	waitFor(t, func() bool { return n.ctrl.State().NextProducerID == want })
}
