package client_test

import (
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/sluicemq/sluice/client"
)

func TestAdminTopicsAndConfigs(t *testing.T) {
	ctx := testCtx(t)
	c := newClient(t)
	adm := c.Admin()
	topic := uniq(t, "t")
	err := adm.CreateTopic(ctx, client.TopicSpec{Name: topic, Partitions: 3, Configs: map[string]string{"retention.ms": "3600000"}})
	if err != nil {
		t.Fatal(err)
	}
	err = adm.CreateTopic(ctx, client.TopicSpec{Name: topic, Partitions: 3})
	if !errors.Is(err, client.ErrTopicExists) || client.IsRetriable(err) {
		t.Fatalf("second create: %v (retriable %v), want ErrTopicExists, not retriable", err, client.IsRetriable(err))
	}

	topics, err := adm.ListTopics(ctx, false)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(topics, func(ti client.TopicInfo) bool { return ti.Name == topic }) {
		t.Fatalf("ListTopics misses %s", topic)
	}
	if slices.ContainsFunc(topics, func(ti client.TopicInfo) bool { return ti.Internal }) {
		t.Fatal("ListTopics(false) lists internal topics")
	}

	if err := adm.AddPartitions(ctx, topic, 2); err != nil {
		t.Fatal(err)
	}
	ti, err := adm.DescribeTopic(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	if len(ti.Partitions) != 5 || ti.ID == "" {
		t.Fatalf("described %+v, want 5 partitions and an id", ti)
	}
	for i, p := range ti.Partitions {
		if p.Partition != int32(i) || len(p.Replicas) != 1 {
			t.Fatalf("partition %d: %+v", i, p)
		}
	}

	cfg := configMap(t, adm, topic)
	if cfg["retention.ms"] != (client.ConfigEntry{Name: "retention.ms", Value: "3600000", Source: "topic"}) {
		t.Fatalf("retention.ms: %+v", cfg["retention.ms"])
	}
	if cfg["cleanup.policy"].Value != "delete" || cfg["cleanup.policy"].Source == "topic" {
		t.Fatalf("cleanup.policy: %+v, want the default", cfg["cleanup.policy"])
	}
	if err := adm.AlterTopicConfigs(ctx, topic, map[string]string{"max.message.bytes": "2000"}, "retention.ms"); err != nil {
		t.Fatal(err)
	}
	cfg = configMap(t, adm, topic)
	if cfg["max.message.bytes"].Value != "2000" || cfg["retention.ms"].Source == "topic" {
		t.Fatalf("after alter: %+v %+v", cfg["max.message.bytes"], cfg["retention.ms"])
	}
	err = adm.AlterTopicConfigs(ctx, topic, map[string]string{"retention.ms": "soon"})
	var ce *client.Error
	if !errors.As(err, &ce) || ce.Code == 0 || ce.Retriable() {
		t.Fatalf("bad config value: %v, want a non-retriable Kafka error", err)
	}

	// The topic's limit is the broker's to enforce: too large is typed and
	// no retry helps.
	err = c.ProduceSync(ctx, &client.Record{Topic: topic, Value: make([]byte, 5000)})
	if !errors.Is(err, client.ErrRecordTooLarge) || client.IsRetriable(err) {
		t.Fatalf("5000 bytes over a 2000 byte limit: %v, want ErrRecordTooLarge", err)
	}

	if err := adm.DeleteTopics(ctx, topic); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "topic deleted", func() bool {
		_, err := adm.DescribeTopic(ctx, topic)
		return errors.Is(err, client.ErrUnknownTopic)
	})
}

func configMap(t *testing.T, adm *client.Admin, topic string) map[string]client.ConfigEntry {
	t.Helper()
	cs, err := adm.DescribeTopicConfigs(testCtx(t), topic)
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]client.ConfigEntry{}
	for _, c := range cs {
		m[c.Name] = c
	}
	return m
}

// Groups: describe a live one, lag, reset refused while it runs, then
// reset to a time, an offset (clamped) and the beginning, and delete.
func TestAdminGroupsResetAndLag(t *testing.T) {
	ctx := testCtx(t)
	c := newClient(t)
	adm := c.Admin()
	base := time.Now().Add(-time.Hour).Truncate(time.Millisecond)
	topic := produceN(t, c, 10, func(i int) time.Time { return base.Add(time.Duration(i) * time.Minute) })
	group := uniq(t, "g")

	cs := startConsumer(t, c, group, []string{topic}, nil, client.CommitInterval(100*time.Millisecond))
	cs.wait(t, 10)
	d, err := adm.DescribeGroup(ctx, group)
	if err != nil {
		t.Fatal(err)
	}
	if d.State != "Stable" || len(d.Members) != 1 || fmt.Sprint(d.Members[0].Assigned[topic]) != "[0]" || d.Members[0].ClientID != client.DefaultClientID {
		t.Fatalf("described %+v", d)
	}
	groups, err := adm.ListGroups(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(groups, func(g client.GroupInfo) bool { return g.Name == group && g.ProtocolType == "consumer" }) {
		t.Fatalf("ListGroups %+v misses %s", groups, group)
	}
	waitFor(t, "commit of 10", func() bool { return committed(t, c, group, topic) == 10 })
	if _, err := adm.ResetOffsets(ctx, group, topic, client.Beginning()); !errors.Is(err, client.ErrGroupNotEmpty) {
		t.Fatalf("reset of a live group: %v, want ErrGroupNotEmpty", err)
	}
	if err := adm.DeleteGroup(ctx, group); !errors.Is(err, client.ErrGroupNotEmpty) {
		t.Fatalf("delete of a live group: %v, want ErrGroupNotEmpty", err)
	}
	if err := cs.stop(); err != nil {
		t.Fatal(err)
	}

	lag, err := adm.Lag(ctx, group)
	if err != nil {
		t.Fatal(err)
	}
	if lag.Total != 0 || len(lag.Partitions) != 1 || lag.Partitions[0].Committed != 10 || lag.Partitions[0].End != 10 {
		t.Fatalf("lag after consuming everything: %+v", lag)
	}

	steps := []struct {
		to       client.Offset
		old, new int64
	}{
		{client.AtTime(base.Add(5 * time.Minute)), 10, 5},
		{client.AtOffset(100), 5, 10}, // clamped to the end
		{client.AtOffset(2), 10, 2},
		{client.Beginning(), 2, 0},
		{client.End(), 0, 10},
		{client.AtTime(base.Add(time.Hour)), 10, 10}, // after the last record: the end
		{client.AtTime(base.Add(3 * time.Minute)), 10, 3},
	}
	for _, s := range steps {
		res, err := adm.ResetOffsets(ctx, group, topic, s.to)
		if err != nil {
			t.Fatalf("reset to %v: %v", s.to, err)
		}
		if len(res) != 1 || res[0] != (client.OffsetReset{Partition: 0, Old: s.old, New: s.new}) {
			t.Fatalf("reset to %v: %+v, want old %d new %d", s.to, res, s.old, s.new)
		}
	}
	lag, err = adm.Lag(ctx, group)
	if err != nil {
		t.Fatal(err)
	}
	if lag.Total != 7 || lag.Partitions[0].Lag != 7 {
		t.Fatalf("lag after reset to offset 3: %+v, want 7", lag)
	}
	// The group replays from the reset point.
	again := startConsumer(t, c, group, []string{topic}, nil)
	if got := offsets(again.wait(t, 7)); fmt.Sprint(got) != "[3 4 5 6 7 8 9]" {
		t.Fatalf("replayed %v", got)
	}
	if err := again.stop(); err != nil {
		t.Fatal(err)
	}

	if _, err := adm.ResetOffsets(ctx, group, uniq(t, "missing"), client.Beginning()); !errors.Is(err, client.ErrUnknownTopic) {
		t.Fatalf("reset on a missing topic: %v, want ErrUnknownTopic", err)
	}
	if err := adm.DeleteGroup(ctx, group); err != nil {
		t.Fatal(err)
	}
	if _, err := adm.DescribeGroup(ctx, group); !errors.Is(err, client.ErrUnknownGroup) {
		t.Fatalf("describe deleted group: %v, want ErrUnknownGroup", err)
	}
	if err := adm.DeleteGroup(ctx, group); !errors.Is(err, client.ErrUnknownGroup) {
		t.Fatalf("delete twice: %v, want ErrUnknownGroup", err)
	}
}

func waitFor(t *testing.T, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 30s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// The cluster operations over HTTP on a single node: status, and the typed
// errors of the admin API.
func TestAdminClusterSingleNode(t *testing.T) {
	ctx := testCtx(t)
	c := newClient(t)
	// The first admin address refuses connections; the client moves on.
	c2, err := client.New(client.Brokers(brokerAddr), client.AdminAddr("127.0.0.1:1", adminAddr))
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	topic := uniq(t, "t")
	createTopic(t, c, topic, 2)
	var st *client.ClusterStatus
	waitFor(t, "leaders of "+topic, func() bool {
		st, err = c2.Admin().Cluster(ctx)
		if err != nil {
			t.Fatal(err)
		}
		p, _ := st.Partition(topic, 1)
		return p.Leader >= 0
	})
	if len(st.Brokers) != 1 || st.Brokers[0].ID != 1 || !st.Brokers[0].Voter || st.Controller.Leader != 1 || st.ClusterID == "" {
		t.Fatalf("cluster %+v", st)
	}
	if p, ok := st.Partition(topic, 1); !ok || p.Leader != 1 || fmt.Sprint(p.Replicas) != "[1]" {
		t.Fatalf("partition 1 of %s: %+v %v", topic, p, ok)
	}

	_, err = c2.Admin().Decommission(ctx, 1)
	var ce *client.Error
	if !errors.Is(err, client.ErrConflict) || !errors.As(err, &ce) || ce.HTTPStatus != 409 || ce.Retriable() || !containsStr(ce.Message, "controller voter") {
		t.Fatalf("decommission of a voter: %v, want a 409 ErrConflict explaining why", err)
	}
	if _, err := c2.Admin().Move(ctx, uniq(t, "missing"), 0); !errors.Is(err, client.ErrNotFound) {
		t.Fatalf("move status of a missing topic: %v, want ErrNotFound", err)
	}
	if _, err := c2.Admin().MovePartition(ctx, topic, 0, []int32{7}); !errors.Is(err, client.ErrBadRequest) {
		t.Fatalf("move to an unknown broker: %v, want ErrBadRequest", err)
	}
	m, err := c2.Admin().Move(ctx, topic, 0)
	if err != nil || !m.Done() {
		t.Fatalf("move status: %+v %v", m, err)
	}

	noAdmin, err := client.New(client.Brokers(brokerAddr))
	if err != nil {
		t.Fatal(err)
	}
	defer noAdmin.Close()
	if _, err := noAdmin.Admin().Cluster(ctx); !errors.Is(err, client.ErrNoAdminAddr) {
		t.Fatalf("no admin address: %v", err)
	}
}
