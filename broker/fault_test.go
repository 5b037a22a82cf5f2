package broker

import (
	"bytes"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluicemq/sluice/broker/config"
	"github.com/sluicemq/sluice/broker/controller"
	"github.com/sluicemq/sluice/log/batch"
	"github.com/sluicemq/sluice/partition"
	"github.com/sluicemq/sluice/replication/transport"
)

// isolate cuts every raft link between b and the other brokers, both ways,
// with the transport's fault injection; heal restores them.
func isolate(b *Broker, others []*Broker) {
	b.mux.SetFault(func(raft.ServerAddress) transport.Fault { return transport.Fault{Drop: true} })
	addr := b.mux.Addr()
	for _, o := range others {
		o.mux.SetFault(func(to raft.ServerAddress) transport.Fault { return transport.Fault{Drop: to == addr} })
	}
}

func heal(all map[int32]*Broker) {
	for _, b := range all {
		b.mux.SetFault(nil)
	}
}

// fetchAll reads every batch of the local replica up to its high watermark.
func fetchAll(t *testing.T, p *partition.Partition) []byte {
	t.Helper()
	var out []byte
	for off := p.LogStartOffset(); off < p.HighWatermark(); {
		res, err := p.Fetch(off, 1<<20)
		if err != nil {
			t.Fatalf("fetch at %d: %v", off, err)
		}
		for _, b := range res.Batches {
			out = append(out, b...)
			h, err := batch.ParseHeader(b)
			if err != nil {
				t.Fatal(err)
			}
			off = h.NextOffset()
		}
		res.Release()
	}
	return out
}

// A leader cut off from the majority stops acknowledging acks=all writes;
// the majority elects a new leader and keeps taking writes; after healing,
// the old leader's unacknowledged entries are gone and all three replicas
// hold the same records.
func TestMinorityLeaderStopsAcknowledging(t *testing.T) {
	brokers := startCluster(t, 3, 3, func(c *config.Config) { c.AutoLeaderRebalance = false })
	var seeds []string
	for _, b := range brokers {
		seeds = append(seeds, b.KafkaAddr())
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(seeds...), kgo.DefaultProduceTopic("fault"), kgo.RecordRetries(1<<30))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if r, err := kadm.NewClient(cl).CreateTopic(ctx(t), 1, 3, nil, "fault"); err != nil || r.Err != nil {
		t.Fatalf("create: %v %v", err, r.Err)
	}
	var old *Broker
	waitUntil(t, "a leader", func() bool {
		for _, b := range brokers {
			if tp := b.reg.get("fault"); tp != nil && tp.parts[0] != nil {
				if id, _ := tp.parts[0].Leader(); id != "" && controller.ParseServerID(id) == b.cfg.NodeID {
					old = b
					return true
				}
			}
		}
		return false
	})
	for i := range 20 {
		if err := cl.ProduceSync(ctx(t), &kgo.Record{Value: []byte{byte(i)}}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	var others []*Broker
	for _, b := range brokers {
		if b != old {
			others = append(others, b)
		}
	}
	isolate(old, others)

	// The isolated leader takes the batch into its log but cannot commit
	// it: the wait must end in an error, never an acknowledgement.
	rep := old.reg.get("fault").parts[0]
	lost := mustBuild(t, biRecords(3, "never-acknowledged"), batch.BuildOptions{})
	done := make(chan error, 1)
	go func() {
		_, err := rep.Produce(lost, -1)()
		done <- err
	}()

	// The majority elects a new leader and acknowledges writes.
	var next *Broker
	waitUntil(t, "a new leader in the majority", func() bool {
		for _, b := range others {
			if p := b.reg.get("fault").parts[0]; p != nil {
				if id, _ := p.Leader(); id != "" && controller.ParseServerID(id) == b.cfg.NodeID {
					next = b
					return true
				}
			}
		}
		return false
	})
	maj, err := kgo.NewClient(kgo.SeedBrokers(others[0].KafkaAddr(), others[1].KafkaAddr()), kgo.DefaultProduceTopic("fault"), kgo.RecordRetries(1<<30))
	if err != nil {
		t.Fatal(err)
	}
	defer maj.Close()
	for i := range 20 {
		if err := maj.ProduceSync(ctx(t), &kgo.Record{Value: []byte{100 + byte(i)}}).FirstErr(); err != nil {
			t.Fatalf("majority produce: %v", err)
		}
	}
	// The new leader reports the isolated replica out of sync, under a
	// newer leader epoch than before.
	isr := func(b *Broker) ([]int32, int32, int32) {
		var topics []kmsg.MetadataResponseTopic
		req := kmsg.NewPtrMetadataRequest()
		name := "fault"
		req.Topics = []kmsg.MetadataRequestTopic{{Topic: &name}}
		topics = b.metadata(req).(*kmsg.MetadataResponse).Topics
		p := topics[0].Partitions[0]
		return p.ISR, p.Leader, p.LeaderEpoch
	}
	_, _, oldEpoch := isr(old)
	waitUntil(t, "the isolated replica leaves the ISR", func() bool {
		got, leader, epoch := isr(next)
		return len(got) == 2 && !slices.Contains(got, old.cfg.NodeID) && leader == next.cfg.NodeID && epoch > oldEpoch
	})
	// The old leader steps down after its lease; its pending write fails.
	select {
	case err := <-done:
		if !errors.Is(err, kerr.NotLeaderForPartition) {
			t.Fatalf("isolated leader's acks=all produce ended with %v, want NOT_LEADER_OR_FOLLOWER", err)
		}
	case <-ctx(t).Done():
		t.Fatal("isolated leader's produce neither failed nor returned")
	}
	if _, err := rep.Produce(lost, -1)(); !errors.Is(err, kerr.NotLeaderForPartition) {
		t.Fatalf("produce on the deposed leader: %v, want NOT_LEADER_OR_FOLLOWER", err)
	}

	// The batch did reach the deposed leader's log, uncommitted: healing
	// must remove it.
	if p := rep.Partition(); p.Log().EndOffset() != p.HighWatermark()+3 {
		t.Fatalf("deposed leader: log end %d, high watermark %d; want the 3 unacknowledged records past it", p.Log().EndOffset(), p.HighWatermark())
	}
	heal(brokers)
	want := next.reg.get("fault").parts[0].Partition()
	// raft backs off from a peer whose RPCs kept failing, up to about 41 s
	// (10 ms x 2^12, replication.go), so reaching the healed replica
	// again can take that long.
	waitFor(t, 90*time.Second, "replicas converge after healing", func() bool {
		hw := want.HighWatermark()
		for _, b := range brokers {
			if b.reg.get("fault").parts[0].Partition().HighWatermark() != hw {
				return false
			}
		}
		return hw == 40
	})
	waitFor(t, 90*time.Second, "the healed replica rejoins the ISR", func() bool {
		got, _, _ := isr(next)
		return len(got) == 3
	})
	ref := fetchAll(t, want)
	for _, b := range brokers {
		got := fetchAll(t, b.reg.get("fault").parts[0].Partition())
		if !bytes.Equal(got, ref) {
			t.Fatalf("broker %d holds different batches than the leader", b.cfg.NodeID)
		}
		if bytes.Contains(got, []byte("never-acknowledged")) {
			t.Fatalf("broker %d kept the isolated leader's unacknowledged batch", b.cfg.NodeID)
		}
	}
}

// TestLaggingFollowerDoesNotSayOutOfRange: a follower cut off from the
// leader lacks records a client may already have seen. Asked for an offset
// past its own log, it must send the client to the leader, not answer
// OFFSET_OUT_OF_RANGE (which makes consumers reset their position).
func TestLaggingFollowerDoesNotSayOutOfRange(t *testing.T) {
	brokers := startCluster(t, 3, 3, func(c *config.Config) { c.AutoLeaderRebalance = false })
	cl := newClient(t, brokers[1])
	if r, err := kadm.NewClient(cl).CreateTopic(ctx(t), 1, 3, nil, "lag"); err != nil || r.Err != nil {
		t.Fatalf("create: %v %v", err, r.Err)
	}
	var leader *Broker
	waitUntil(t, "a leader", func() bool {
		for _, b := range brokers {
			if p := b.reg.get("lag").partition(0); p != nil && p.IsLeader() {
				leader = b
				return true
			}
		}
		return false
	})
	var follower *Broker
	var others []*Broker
	for _, b := range brokers {
		if b != leader && follower == nil {
			follower = b
			continue
		}
		others = append(others, b)
	}
	isolate(follower, others)
	defer heal(brokers)
	pc := newClient(t, leader, kgo.DefaultProduceTopic("lag"))
	for i := range 10 {
		if err := pc.ProduceSync(ctx(t), &kgo.Record{Value: []byte{byte(i)}}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	if end := follower.reg.get("lag").partition(0).Partition().Log().EndOffset(); end >= 10 {
		t.Fatalf("the isolated follower has the records (log end %d)", end)
	}
	// On a loaded machine leadership may have moved to the other
	// connected broker meanwhile: ask whichever leads now.
	waitUntil(t, "a leader among the connected brokers", func() bool {
		for _, b := range others {
			if p := b.reg.get("lag").partition(0); p != nil && p.Ready() {
				leader = b
				return true
			}
		}
		return false
	})
	fc := newClient(t, follower)
	resp, err := fc.Broker(int(follower.cfg.NodeID)).Request(ctx(t), fetchReq(12, "lag", follower.reg.get("lag").id, fetchPart{0, 10}))
	if err != nil {
		t.Fatal(err)
	}
	if got := resp.(*kmsg.FetchResponse).Topics[0].Partitions[0].ErrorCode; got != kerr.NotLeaderForPartition.Code {
		t.Errorf("follower asked past its log: error %d, want NOT_LEADER_OR_FOLLOWER (6)", got)
	}
	resp, err = cl.Broker(int(leader.cfg.NodeID)).Request(ctx(t), fetchReq(12, "lag", leader.reg.get("lag").id, fetchPart{0, 11}))
	if err != nil {
		t.Fatal(err)
	}
	if got := resp.(*kmsg.FetchResponse).Topics[0].Partitions[0].ErrorCode; got != kerr.OffsetOutOfRange.Code {
		t.Errorf("leader asked past its log: error %d, want OFFSET_OUT_OF_RANGE (1)", got)
	}
}
