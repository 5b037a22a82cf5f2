package client_test

import (
	"fmt"
	"slices"
	"testing"

	"github.com/sluicemq/sluice/broker"
	"github.com/sluicemq/sluice/broker/brokertest"
	"github.com/sluicemq/sluice/client"
)

// Leadership transfer, leader rebalance and a decommission with progress,
// on four brokers (three controller voters), with records produced
// before the decommission all still there after it.
func TestClusterOperations(t *testing.T) {
	if testing.Short() {
		t.Skip("starts four brokers")
	}
	bs := brokertest.Cluster(t, 4, 3, nil)
	ctx := testCtx(t)
	c := newTestClusterClient(t, bs)
	adm := c.Admin()
	waitFor(t, "four brokers registered", func() bool {
		st, err := adm.Cluster(ctx)
		return err == nil && len(st.Brokers) == 4
	})

	topic := uniq(t, "t")
	if err := adm.CreateTopic(ctx, client.TopicSpec{Name: topic, Partitions: 4, ReplicationFactor: 3}); err != nil {
		t.Fatal(err)
	}
	var st *client.ClusterStatus
	waitFor(t, "leaders elected", func() bool {
		var err error
		if st, err = adm.Cluster(ctx); err != nil {
			return false
		}
		for p := range int32(4) {
			if pp, ok := st.Partition(topic, p); !ok || pp.Leader < 0 {
				return false
			}
		}
		return true
	})
	var rs []*client.Record
	for i := range 100 {
		rs = append(rs, &client.Record{Topic: topic, Key: fmt.Appendf(nil, "k%d", i), Value: fmt.Appendf(nil, "%d", i)})
	}
	if err := c.ProduceSync(ctx, rs...); err != nil {
		t.Fatal(err)
	}

	// Move leadership of partition 0 off its current leader, then let the
	// rebalance hand it back to the preferred replica.
	p0, _ := st.Partition(topic, 0)
	var to int32
	for _, r := range p0.Replicas {
		if r != p0.Leader {
			to = r
			break
		}
	}
	tr, err := adm.TransferLeadership(ctx, topic, 0, to)
	if err != nil {
		t.Fatal(err)
	}
	if tr.Leader != to || tr.Previous != p0.Leader {
		t.Fatalf("transfer %+v, want %d -> %d", tr, p0.Leader, to)
	}
	waitFor(t, "metadata shows the new leader", func() bool {
		ti, err := adm.DescribeTopic(ctx, topic)
		return err == nil && ti.Partitions[0].Leader == to
	})
	if to != p0.Replicas[0] {
		// A rebalance skips a preferred replica that is not caught up yet
		// (a loaded machine): ask until it hands partition 0 back.
		waitFor(t, "a rebalance hands partition 0 back to its preferred replica", func() bool {
			reb, err := adm.RebalanceLeaders(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if slices.ContainsFunc(reb.Transfers, func(x client.Transfer) bool {
				return x.Topic == topic && x.Partition == 0 && x.To == p0.Replicas[0] && x.Error == ""
			}) {
				return true
			}
			ti, err := adm.DescribeTopic(ctx, topic)
			return err == nil && ti.Partitions[0].Leader == p0.Replicas[0]
		})
	}

	// Decommission broker 4 (not a voter) and follow its progress.
	var before int
	for _, b := range st.Brokers {
		if b.ID == 4 {
			before = b.Replicas
		}
	}
	if before == 0 {
		t.Fatalf("broker 4 holds no replicas to move: %+v", st.Brokers)
	}
	d, err := adm.Decommission(ctx, 4)
	if err != nil {
		t.Fatal(err)
	}
	if !d.Draining || d.ReplicasRemaining != before {
		t.Fatalf("decommission answered %+v, want draining with %d replicas", d, before)
	}
	var reports []int
	d, err = adm.WaitDecommission(ctx, 4, func(s *client.DecommissionStatus) { reports = append(reports, s.ReplicasRemaining) })
	if err != nil {
		t.Fatal(err)
	}
	if !d.Done || d.ReplicasRemaining != 0 || !slices.IsSortedFunc(reports, func(a, b int) int { return b - a }) {
		t.Fatalf("final %+v, progress %v: want done, remaining never growing", d, reports)
	}
	st, err = adm.Cluster(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, tp := range st.Topics {
		for _, p := range tp.Partitions {
			if slices.Contains(p.Replicas, 4) {
				t.Fatalf("%s/%d still on broker 4: %v", tp.Name, p.Partition, p.Replicas)
			}
		}
	}
	u, err := adm.Undrain(ctx, 4)
	if err != nil || u.Draining {
		t.Fatalf("undrain: %+v %v", u, err)
	}

	cs := startConsumer(t, c, uniq(t, "g"), []string{topic}, nil)
	got := cs.wait(t, 100)
	seen := map[string]bool{}
	for _, r := range got {
		seen[string(r.Value)] = true
	}
	if len(seen) != 100 {
		t.Fatalf("read back %d distinct records of 100", len(seen))
	}
}

func newTestClusterClient(t *testing.T, bs []*broker.Broker) *client.Client {
	t.Helper()
	var kafka, admin []string
	for _, b := range bs {
		kafka = append(kafka, b.KafkaAddr())
		admin = append(admin, b.HTTPAddr())
	}
	c, err := client.New(client.Brokers(kafka...), client.AdminAddr(admin...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}
