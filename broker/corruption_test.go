package broker

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicemq/sluice/broker/config"
	"github.com/sluicemq/sluice/broker/controller"
	"github.com/sluicemq/sluice/log"
)

// Committed data damaged on one replica, then that broker restarted: the
// damaged replica refuses to open (log.ErrCorrupt), so it has no raft
// instance and neither votes nor leads; the other two keep the partition
// available (electing a leader among themselves when the damaged one led);
// no broker ever serves a corrupt record (franz-go checks every batch's
// CRC). The operator repairs it by moving the partition off the broker and
// back: the damaged directory is deleted, a fresh replica catches up from
// the leader, all three then hold identical batches, and the repaired
// broker can lead again. Four rounds: a bit flip and a truncation, each
// on a follower and on the leader.
func TestDamagedReplicaRefusesToServeAndIsRepaired(t *testing.T) {
	d := newDmgCluster(t)
	bs := d.bs
	d.leader()
	d.produce(100)

	for _, round := range []struct {
		name     string
		leader   bool
		truncate bool
	}{
		{"bit flip on a follower", false, false},
		{"truncation on the leader", true, true},
		{"truncation on a follower", false, true},
		{"bit flip on the leader", true, false},
	} {
		t.Logf("round: %s", round.name)
		ld := d.leader()
		victim := ld
		if !round.leader {
			for _, b := range bs {
				if b != ld {
					victim = b
					break
				}
			}
		}
		id := victim.cfg.NodeID
		tid := controller.TopicID(victim.reg.get("dmg").id)
		dir := victim.reg.partDir(tid, 0)
		cfg := victim.cfg
		victim.Shutdown(context.Background())
		damageSealed(t, dir, round.truncate)

		// The log itself names the damage.
		if l, err := log.Open(dir, log.Options{VerifyOnOpen: true}); !errors.Is(err, log.ErrCorrupt) {
			if l != nil {
				l.Close()
			}
			t.Fatalf("damaged log opened: %v", err)
		}

		healthy := map[int32]*Broker{}
		for bid, b := range bs {
			if bid != id {
				healthy[bid] = b
			}
		}
		back := runBroker(t, cfg)
		bs[id] = back
		waitUntil(t, "restarted broker ready", back.Ready)
		waitUntil(t, "the damaged replica failed to open", func() bool {
			back.reg.mu.Lock()
			defer back.reg.mu.Unlock()
			return back.reg.failed[partKey{tid, 0}] == failedOpen
		})
		if localPart(back, "dmg") != nil {
			t.Fatal("the damaged replica is open")
		}
		// The healthy two lead and take writes; the damaged one never
		// appears as leader.
		if ld := d.leader(); ld.cfg.NodeID == id {
			t.Fatal("the damaged broker leads")
		}
		d.produce(50)
		checkServed(t, bs, d.acked)

		// Repair: move off the damaged broker, then back.
		var rest []int32
		for bid := range healthy {
			rest = append(rest, bid)
		}
		slices.Sort(rest)
		movePartition(t, back, "dmg", rest)
		waitUntil(t, "the damaged directory removed", func() bool {
			_, err := os.Stat(dir)
			return os.IsNotExist(err)
		})
		d.produce(20)
		movePartition(t, back, "dmg", append(rest, id))
		var rep replica
		waitUntil(t, "the repaired replica open", func() bool { rep = localPart(back, "dmg"); return rep != nil })
		ldp := localPart(d.leader(), "dmg").Partition()
		waitUntil(t, "the repaired replica caught up", func() bool {
			return rep.Partition().HighWatermark() == ldp.HighWatermark() && ldp.HighWatermark() == int64(len(d.acked))
		})
		want := fetchAll(t, ldp)
		for bid, b := range bs {
			if got := fetchAll(t, localPart(b, "dmg").Partition()); !bytes.Equal(got, want) {
				t.Fatalf("broker %d holds other batches than the leader (%d vs %d bytes)", bid, len(got), len(want))
			}
		}
		// The repaired broker can lead again.
		if code, raw := call(t, back, "POST", "/v1/partitions/dmg/0/leader", map[string]int32{"broker": id}, nil); code != http.StatusOK {
			t.Fatalf("transfer to the repaired broker: %d %s", code, raw)
		}
		waitUntil(t, "the repaired broker leads", func() bool { return rep.IsLeader() && rep.Ready() })
		d.produce(20)
		checkServed(t, bs, d.acked)
	}
}

// damageSealed flips a bit in the middle of, or cuts 100 bytes off, the
// first sealed segment in dir (committed and fsynced data).
func damageSealed(t *testing.T, dir string, truncate bool) {
	t.Helper()
	segs, err := filepath.Glob(filepath.Join(dir, "*.seg"))
	if err != nil || len(segs) < 2 {
		t.Fatalf("want a sealed segment in %s: %v %v", dir, segs, err)
	}
	slices.Sort(segs)
	path := segs[0]
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if truncate {
		b = b[:len(b)-100]
	} else {
		b[len(b)/2] ^= 0x10
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// movePartition moves topic/0 onto replicas and waits for the move to end.
func movePartition(t *testing.T, via *Broker, topic string, replicas []int32) {
	t.Helper()
	path := "/v1/partitions/" + topic + "/0/move"
	if code, raw := call(t, via, "POST", path, moveRequest{Replicas: replicas}, nil); code != http.StatusAccepted && code != http.StatusOK {
		t.Fatalf("move to %v: %d %s", replicas, code, raw)
	}
	waitUntil(t, fmt.Sprintf("move to %v done", replicas), func() bool {
		var mv moveView
		call(t, via, "GET", path, nil, &mv)
		return mv.State == "done" && slices.Equal(mv.Replicas, replicas)
	})
}

// checkServed reads the whole partition through every broker with a
// franz-go consumer (which verifies each batch's CRC) and checks it is
// exactly the acknowledged records, in order.
func checkServed(t *testing.T, bs map[int32]*Broker, acked []string) {
	t.Helper()
	for id, b := range bs {
		recs := consume(t, b, "dmg", len(acked), nil)
		for i, r := range recs {
			if string(r.Value) != acked[i] || r.Offset != int64(i) {
				t.Fatalf("via broker %d: offset %d holds %.12q, want %.12q at %d", id, r.Offset, r.Value, acked[i], i)
			}
		}
	}
}

// Committed data damaged under a running leader: the first read that
// finds it (here a consumer's fetch from the start) takes the replica out
// of service at once, not at the next restart. The broker closes it and
// lists it as failed to open, so it neither leads nor votes; the other two
// elect a leader and take writes; nothing corrupt is served; the usual
// repair (move off and back) rebuilds it.
func TestDamageFoundWhileRunningClosesTheReplica(t *testing.T) {
	d := newDmgCluster(t)
	bs := d.bs
	d.produce(100)
	victim := d.leader()
	id := victim.cfg.NodeID
	tid := controller.TopicID(victim.reg.get("dmg").id)
	dir := victim.reg.partDir(tid, 0)
	rep := localPart(victim, "dmg")

	// One bit of the first sealed segment, in place under the open log.
	segs, err := filepath.Glob(filepath.Join(dir, "*.seg"))
	if err != nil || len(segs) < 2 {
		t.Fatalf("want a sealed segment: %v %v", segs, err)
	}
	slices.Sort(segs)
	f, err := os.OpenFile(segs[0], os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	fi, _ := f.Stat()
	var b [1]byte
	if _, err := f.ReadAt(b[:], fi.Size()/2); err != nil {
		t.Fatal(err)
	}
	b[0] ^= 0x10
	if _, err := f.WriteAt(b[:], fi.Size()/2); err != nil {
		t.Fatal(err)
	}
	f.Close()

	if _, err := rep.Partition().Fetch(0, 1<<20); err == nil {
		t.Fatal("a fetch over the damaged segment succeeded")
	}
	waitUntil(t, "the damaged replica closed and listed as failed", func() bool {
		victim.reg.mu.Lock()
		defer victim.reg.mu.Unlock()
		return victim.reg.failed[partKey{tid, 0}] == failedOpen && victim.reg.replicas[partKey{tid, 0}] == nil
	})
	if localPart(victim, "dmg") != nil {
		t.Fatal("the damaged replica is still published")
	}
	if rep.IsLeader() {
		t.Fatal("the damaged replica still leads")
	}
	if ld := d.leader(); ld.cfg.NodeID == id {
		t.Fatal("the damaged broker leads")
	}
	d.produce(50)
	checkServed(t, bs, d.acked)
	// Reconcile retries the open every second meanwhile, and the damaged
	// log keeps refusing it.
	if localPart(victim, "dmg") != nil {
		t.Fatal("the damaged replica reopened")
	}

	var rest []int32
	for bid := range bs {
		if bid != id {
			rest = append(rest, bid)
		}
	}
	slices.Sort(rest)
	movePartition(t, victim, "dmg", rest)
	waitUntil(t, "the damaged directory removed", func() bool {
		_, err := os.Stat(dir)
		return os.IsNotExist(err)
	})
	movePartition(t, victim, "dmg", append(rest, id))
	var fresh replica
	waitUntil(t, "the repaired replica open", func() bool { fresh = localPart(victim, "dmg"); return fresh != nil })
	ldp := localPart(d.leader(), "dmg").Partition()
	waitUntil(t, "the repaired replica caught up", func() bool {
		return fresh.Partition().HighWatermark() == ldp.HighWatermark() && ldp.HighWatermark() == int64(len(d.acked))
	})
	if got, want := fetchAll(t, fresh.Partition()), fetchAll(t, ldp); !bytes.Equal(got, want) {
		t.Fatalf("the repaired replica holds other batches than the leader (%d vs %d bytes)", len(got), len(want))
	}
}

// rf3Cluster is three brokers (leader balancing off) and one topic of one
// RF 3 partition, with a producing client that retries until a leader
// takes each record.
type rf3Cluster struct {
	t     *testing.T
	topic string
	bs    map[int32]*Broker
	cl    *kgo.Client
	acked []string
}

func newRF3Cluster(t *testing.T, topic string, topicConfigs map[string]*string, cfg func(*config.Config), opts ...kgo.Opt) *rf3Cluster {
	bs := startCluster(t, 3, 3, func(c *config.Config) {
		c.AutoLeaderRebalance = false
		if cfg != nil {
			cfg(c)
		}
	})
	var seeds []string
	for _, b := range bs {
		seeds = append(seeds, b.KafkaAddr())
	}
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(seeds...), kgo.DefaultProduceTopic(topic), kgo.RecordRetries(1 << 30)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	if r, err := kadm.NewClient(cl).CreateTopic(ctx(t), 1, 3, topicConfigs, topic); err != nil || r.Err != nil {
		t.Fatalf("create: %v %v", err, r.Err)
	}
	return &rf3Cluster{t: t, topic: topic, bs: bs, cl: cl}
}

// newDmgCluster is the corruption tests' cluster: topic "dmg" in 2 KiB
// segments, so a hundred records fill sealed segments to damage.
func newDmgCluster(t *testing.T) *rf3Cluster {
	seg := "2048"
	return newRF3Cluster(t, "dmg", map[string]*string{"segment.bytes": &seg}, nil)
}

// produce writes n numbered records, each within a minute, and remembers
// them as acknowledged.
func (d *rf3Cluster) produce(n int) {
	d.t.Helper()
	c, cancel := context.WithTimeout(ctx(d.t), time.Minute)
	defer cancel()
	for range n {
		v := fmt.Sprintf("%s-%04d-%s", d.topic, len(d.acked), strings.Repeat("x", 100))
		if err := d.cl.ProduceSync(c, &kgo.Record{Value: []byte(v)}).FirstErr(); err != nil {
			d.t.Fatal(err)
		}
		d.acked = append(d.acked, v)
	}
}

// leader waits for a ready leader of the topic's partition and returns
// its broker.
func (d *rf3Cluster) leader() *Broker {
	d.t.Helper()
	var ld *Broker
	waitUntil(d.t, "a leader of "+d.topic+"/0", func() bool {
		for _, b := range d.bs {
			if rep := localPart(b, d.topic); rep != nil && rep.IsLeader() && rep.Ready() {
				ld = b
				return true
			}
		}
		return false
	})
	return ld
}
