package broker

import (
	"bytes"
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicemq/sluice/broker/config"
	"github.com/sluicemq/sluice/replication"
)

// A broker that was down while retention deleted the records it had not
// seen comes back and catches up through InstallSnapshot, streamed over the
// real transport: afterwards it serves the same batches from the same log
// start as the leader, and keeps replicating.
func TestFollowerCatchesUpBySnapshotAfterRetention(t *testing.T) {
	brokers := startCluster(t, 3, 3, func(c *config.Config) {
		c.AutoLeaderRebalance = false
		c.RetentionCheckInterval = 100 * time.Millisecond
	})
	var seeds []string
	for _, b := range brokers {
		seeds = append(seeds, b.KafkaAddr())
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(seeds...), kgo.DefaultProduceTopic("ret"), kgo.RecordRetries(1<<30))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	seg, keep := "4096", "16384"
	r, err := kadm.NewClient(cl).CreateTopic(ctx(t), 1, 3, map[string]*string{"segment.bytes": &seg, "retention.bytes": &keep}, "ret")
	if err != nil || r.Err != nil {
		t.Fatalf("create: %v %v", err, r.Err)
	}
	waitUntil(t, "a leader", func() bool {
		rep := localPart(brokers[1], "ret")
		if rep == nil {
			return false
		}
		id, _ := rep.Leader()
		return id != ""
	})
	// Stop a follower, keeping its directory and raft address.
	var down *Broker
	waitUntil(t, "a follower to stop", func() bool {
		for _, b := range brokers {
			if rep := localPart(b, "ret"); rep != nil {
				if id, _ := rep.Leader(); id != "" && string(id) != fmt.Sprint(b.cfg.NodeID) {
					down = b
					return true
				}
			}
		}
		return false
	})
	cfg := down.cfg
	down.Shutdown(context.Background())

	value := bytes.Repeat([]byte("x"), 900)
	for i := range 300 {
		if err := cl.ProduceSync(ctx(t), &kgo.Record{Key: []byte(fmt.Sprint(i)), Value: value}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	var leader *Broker
	waitUntil(t, "the leader", func() bool {
		for _, b := range brokers {
			if rep := localPart(b, "ret"); b != down && rep != nil {
				if id, _ := rep.Leader(); string(id) == fmt.Sprint(b.cfg.NodeID) {
					leader = b
					return true
				}
			}
		}
		return false
	})
	lp := leader.reg.get("ret").parts[0].Partition()
	// Retention moves the log start at once, and removes segment files
	// once a snapshot covers them; then the entries the stopped follower
	// needs are gone from the leader.
	waitUntil(t, "retention removed the head of the leader's log", func() bool {
		return lp.LogStartOffset() > 100 && lp.Log().FirstIndex() > 20
	})

	back := runBroker(t, cfg)
	waitUntil(t, "restarted broker ready", back.Ready)
	waitUntil(t, "restarted replica caught up", func() bool {
		rep := localPart(back, "ret")
		if rep == nil {
			return false
		}
		p := rep.Partition()
		return p.HighWatermark() == lp.HighWatermark() && p.LogStartOffset() == lp.LogStartOffset()
	})
	rep := back.reg.get("ret").parts[0].(*replication.Replica)
	if st := rep.FSM().Stats(); st.Restores == 0 {
		t.Fatalf("caught up without installing a snapshot (stats %+v): retention did not outrun it", st)
	}
	if !bytes.Equal(fetchAll(t, rep.Partition()), fetchAll(t, lp)) {
		t.Fatal("the restarted replica serves different batches than the leader")
	}
	// It keeps replicating.
	if err := cl.ProduceSync(ctx(t), &kgo.Record{Value: []byte("after")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "new record replicated", func() bool { return rep.Partition().HighWatermark() == lp.HighWatermark() })
}

// localPart is partition 0 of topic on b, nil while b does not host it yet.
func localPart(b *Broker, topic string) replica {
	if tp := b.reg.get(topic); tp != nil {
		return tp.partition(0)
	}
	return nil
}
