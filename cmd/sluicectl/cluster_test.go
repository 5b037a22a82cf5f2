package main

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/sluicemq/sluice/broker"
	"github.com/sluicemq/sluice/broker/brokertest"
	"github.com/sluicemq/sluice/client"
)

// Cluster commands on the single-node broker: status, brokers, add, the
// refusals (exit codes 2, 4, 5), leadership.
func TestClusterSingleNode(t *testing.T) {
	topic := uniq(t, "t")
	ok(t, "topic", "create", topic, "-p", "2")

	out := ok(t, "cluster", "status")
	for _, want := range []string{"CLUSTER ID", "CONTROLLER  broker 1 (voters 1)", "BROKERS     1 (draining: none)", "PARTITIONS"} {
		if !strings.Contains(out, want) {
			t.Errorf("cluster status lacks %q:\n%s", want, out)
		}
	}
	s := decode[clusterSummary](t, ok(t, "cluster", "status", "--json"))
	if s.ClusterID == "" || s.ControllerLeader != 1 || fmt.Sprint(s.ControllerVoters) != "[1]" || s.Brokers != 1 || s.Partitions < 2 || s.Moving == nil || s.Draining == nil {
		t.Fatalf("cluster status --json: %+v", s)
	}

	rows := fields(ok(t, "cluster", "brokers"))
	if fmt.Sprint(rows[0]) != "[ID KAFKA RAFT HTTP VOTER DRAINING REPLICAS LEADERS]" || rows[1][0] != "1" || rows[1][1] != brokerAddr || rows[1][4] != "yes" || rows[1][5] != "no" {
		t.Fatalf("cluster brokers: %v", rows)
	}
	bs := decode[struct {
		Brokers []client.BrokerStatus `json:"brokers"`
	}](t, ok(t, "cluster", "brokers", "--json"))
	if len(bs.Brokers) != 1 || bs.Brokers[0].KafkaAddr != brokerAddr || !bs.Brokers[0].Voter {
		t.Fatalf("cluster brokers --json: %+v", bs)
	}

	out = ok(t, "cluster", "add", "--host", "10.0.0.9")
	for _, want := range []string{"Start broker 2", "--node-id 2", "--advertised-kafka-addr 10.0.0.9:9092", "--controller-voters 1@"} {
		if !strings.Contains(out, want) {
			t.Errorf("cluster add lacks %q:\n%s", want, out)
		}
	}
	plan := decode[addPlan](t, ok(t, "cluster", "add", "--id", "7", "--json"))
	if plan.Broker != 7 || plan.Registered || !strings.HasPrefix(plan.ControllerVoters, "1@") || !slices.Contains(plan.Command, "--controller-voters") {
		t.Fatalf("cluster add --json: %+v", plan)
	}
	fails(t, exitConflict, "broker 1 is already registered", "cluster", "add", "--id", "1")
	if p := decode[addPlan](t, ok(t, "cluster", "add", "--id", "1", "--wait", "--json")); !p.Registered || p.KafkaAddr != brokerAddr {
		t.Fatalf("cluster add --wait for a registered broker: %+v", p)
	}

	fails(t, exitConflict, "controller voter", "cluster", "decommission", "1")
	fails(t, exitNotFound, "broker 9 is not registered", "cluster", "decommission", "9")
	fails(t, exitUsage, "broker \"x\"", "cluster", "decommission", "x")
	if out := ok(t, "cluster", "undrain", "1"); !strings.Contains(out, "broker 1 not draining") {
		t.Fatalf("undrain: %q", out)
	}

	waitFor(t, "leaders of "+topic, func() bool {
		d := decode[topicDescription](t, ok(t, "topic", "describe", topic, "--json"))
		return d.Partitions[0].Leader == 1 && d.Partitions[1].Leader == 1
	})
	if out := ok(t, "partition", "transfer-leadership", topic, "0", "--to", "1"); !strings.Contains(out, topic+"/0: leader 1 -> 1") {
		t.Fatalf("transfer-leadership: %q", out)
	}
	if out := ok(t, "leaders", "rebalance"); !strings.Contains(out, "preferred replica") {
		t.Fatalf("leaders rebalance: %q", out)
	}
	if r := decode[client.RebalanceResult](t, ok(t, "leaders", "rebalance", "--json")); r.Transfers == nil {
		t.Fatalf("rebalance --json: transfers is null")
	}
	fails(t, exitUsage, "broker 7 is not registered", "partition", "move", topic, "0", "--replicas", "7")
	fails(t, exitNotFound, "has no partition 5", "partition", "move", topic, "5", "--replicas", "1")
	fails(t, exitNotFound, "unknown topic", "partition", "move", uniq(t, "missing"), "0", "--replicas", "1")
	if out := ok(t, "partition", "move", topic, "0", "--replicas", "1", "--wait"); out != topic+"/0: done, replicas 1\n" {
		t.Fatalf("move to the same replica: %q", out)
	}
}

// Shell completion: cobra's scripts, and topic and group names from the
// cluster; nothing (and no hang) when no broker answers.
func TestCompletion(t *testing.T) {
	for _, sh := range []string{"bash", "zsh", "fish", "powershell"} {
		if out := ok(t, "completion", sh); !strings.Contains(out, "sluicectl") || len(out) < 500 {
			t.Errorf("completion %s: %d bytes", sh, len(out))
		}
	}
	topic, group := uniq(t, "complete-t"), uniq(t, "complete-g")
	ok(t, "topic", "create", topic)
	if r := sctl(t, "x\n", "produce", topic); r.code != exitOK {
		t.Fatal(r.stderr)
	}
	ok(t, "consume", topic, "-g", group, "-n", "1")

	complete := func(args ...string) []string {
		t.Helper()
		out := ok(t, append([]string{"__complete"}, args...)...)
		ls := lines(out)
		if !strings.HasPrefix(ls[len(ls)-1], ":") {
			t.Fatalf("no directive line in %q", out)
		}
		return ls[:len(ls)-1]
	}
	if got := complete("topic", "describe", "complete-t"); !slices.Contains(got, topic) {
		t.Errorf("topic names: %v, want %s", got, topic)
	}
	if got := complete("consume", "complete-t"); !slices.Contains(got, topic) {
		t.Errorf("consume topic names: %v", got)
	}
	if got := complete("topic", "describe", topic, ""); len(got) != 0 {
		t.Errorf("second argument completed: %v", got)
	}
	if got := complete("group", "lag", "complete-g"); !slices.Contains(got, group) {
		t.Errorf("group names: %v, want %s", got, group)
	}
	if got := complete("group", "reset-offsets", group, "--topic", "complete-t"); !slices.Contains(got, topic) {
		t.Errorf("--topic names: %v", got)
	}
	if got := complete("cluster", "decommission", ""); fmt.Sprint(got) != "[1]" {
		t.Errorf("broker ids: %v", got)
	}
	if got := complete("topic", "describe", "--brokers", "127.0.0.1:1", ""); len(got) != 0 {
		t.Errorf("names without a broker: %v", got)
	}
}

// Moves with progress, leadership transfer and a decommission followed to
// the end, on four brokers (three controller voters).
func TestClusterMoveAndDecommission(t *testing.T) {
	if testing.Short() {
		t.Skip("starts four brokers")
	}
	bs := brokertest.Cluster(t, 4, 3, nil)
	t.Setenv(envBrokers, addrs(bs, (*broker.Broker).KafkaAddr))
	t.Setenv(envAdminURL, addrs(bs, (*broker.Broker).HTTPAddr))
	waitFor(t, "four brokers", func() bool {
		r := sctl(t, "", "cluster", "status", "--json")
		return r.code == exitOK && decode[clusterSummary](t, r.stdout).Brokers == 4
	})
	topic := uniq(t, "t")
	ok(t, "topic", "create", topic, "-p", "3", "-r", "3")
	waitFor(t, "leaders", func() bool {
		r := sctl(t, "", "topic", "describe", topic, "--json") // every broker knows the topic soon
		if r.code != exitOK {
			return false
		}
		d := decode[topicDescription](t, r.stdout)
		return !slices.ContainsFunc(d.Partitions, func(p partitionRow) bool { return p.Leader < 0 })
	})
	if r := sctl(t, "a\nb\nc\nd\ne\nf\n", "produce", topic); r.code != exitOK {
		t.Fatal(r.stderr)
	}

	// Move partition 0 onto a set including broker 4, following it.
	d := decode[topicDescription](t, ok(t, "topic", "describe", topic, "--json"))
	target := []int32{4}
	for _, id := range d.Partitions[0].Replicas {
		if len(target) < 3 && id != 4 {
			target = append(target, id)
		}
	}
	if slices.Equal(target, d.Partitions[0].Replicas) {
		target = []int32{4, target[2], target[1]}
	}
	r := sctl(t, "", "partition", "move", topic, "0", "--replicas", ids(target), "--wait")
	if r.code != exitOK || r.stdout != fmt.Sprintf("%s/0: done, replicas %s\n", topic, ids(target)) {
		t.Fatalf("move --wait: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	m := decode[client.MoveStatus](t, ok(t, "partition", "move", topic, "0", "--replicas", ids(target), "--json"))
	if !m.Done() || m.Topic != topic || !slices.Equal(m.Replicas, target) {
		t.Fatalf("move --json after the move: %+v", m)
	}
	// Broker 4 is now partition 0's preferred leader; a rebalance hands it over.
	waitFor(t, "broker 4 leads partition 0", func() bool {
		if sctl(t, "", "leaders", "rebalance").code != exitOK {
			return false
		}
		d := decode[topicDescription](t, ok(t, "topic", "describe", topic, "--json"))
		return d.Partitions[0].Leader == 4
	})
	if out := ok(t, "partition", "transfer-leadership", topic, "0", "--to", fmt.Sprint(target[1])); !strings.Contains(out, fmt.Sprintf("leader 4 -> %d", target[1])) {
		t.Fatalf("transfer-leadership: %q", out)
	}

	// Decommission broker 4 with progress on stderr, then undrain it.
	r = sctl(t, "", "cluster", "decommission", "4")
	if r.code != exitOK || !strings.Contains(r.stdout, "broker 4 drained") || !strings.Contains(r.stderr, "broker 4: ") || !strings.Contains(r.stderr, "replicas left") {
		t.Fatalf("decommission: exit %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
	}
	st := decode[client.DecommissionStatus](t, ok(t, "cluster", "decommission", "4", "--no-wait", "--json"))
	if !st.Done || !st.Draining || st.ReplicasRemaining != 0 || st.Broker != 4 {
		t.Fatalf("decommission --json after the drain: %+v", st)
	}
	rows := fields(ok(t, "cluster", "brokers"))
	if fmt.Sprint(rows[4][:1]) != "[4]" || rows[4][5] != "yes" || rows[4][6] != "0" {
		t.Fatalf("brokers after the drain: %v", rows)
	}
	if s := decode[clusterSummary](t, ok(t, "cluster", "status", "--json")); fmt.Sprint(s.Draining) != "[4]" {
		t.Fatalf("status: draining %v", s.Draining)
	}
	fails(t, exitUsage, "draining", "partition", "move", topic, "1", "--replicas", "4,1,2")
	ok(t, "cluster", "undrain", "4")
	if s := decode[clusterSummary](t, ok(t, "cluster", "status", "--json")); len(s.Draining) != 0 {
		t.Fatalf("status after undrain: draining %v", s.Draining)
	}
	// Every record survived.
	if out := ok(t, "consume", topic, "-e"); len(lines(out)) != 6 {
		t.Fatalf("records after the moves:\n%s", out)
	}
}

func addrs(bs []*broker.Broker, f func(*broker.Broker) string) string {
	var out []string
	for _, b := range bs {
		out = append(out, f(b))
	}
	return strings.Join(out, ",")
}
