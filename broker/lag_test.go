package broker

import (
	"bufio"
	"context"
	"io"
	"math"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicemq/sluice/broker/config"
)

// lagConfig suits group tests: few __consumer_offsets partitions, quick
// rebalances, short sessions and a fast lag loop.
func lagConfig(c *config.Config) {
	c.OffsetsTopicPartitions = 2
	c.GroupMinSessionTimeout = 500 * time.Millisecond
	c.GroupInitialRebalanceDelay = 100 * time.Millisecond
	c.LagInterval = 100 * time.Millisecond
}

// produceAged writes n records to topic/partition whose timestamps are
// base, base+1m, base+2m, ...
func produceAged(t *testing.T, cl *kgo.Client, topic string, partition int32, n int, base time.Time) {
	t.Helper()
	var recs []*kgo.Record
	for i := range n {
		recs = append(recs, &kgo.Record{Topic: topic, Partition: partition, Value: []byte(strconv.Itoa(i)), Timestamp: base.Add(time.Duration(i) * time.Minute)})
	}
	if err := cl.ProduceSync(ctx(t), recs...).FirstErr(); err != nil {
		t.Fatalf("produce: %v", err)
	}
}

func commit(t *testing.T, cl *kgo.Client, group string, offs ...kadm.Offset) {
	t.Helper()
	for i := range offs {
		offs[i].LeaderEpoch = -1
	}
	res, err := kadm.NewClient(cl).CommitOffsets(ctx(t), group, kadm.OffsetsList(offs).Offsets())
	if err == nil {
		err = res.Error()
	}
	if err != nil {
		t.Fatalf("commit %s: %v", group, err)
	}
}

// lagOf finds a partition's lag in a group's stats.
func statOf(t *testing.T, b *Broker, group, topic string, p int32) (records int64, seconds float64, ok bool) {
	t.Helper()
	for _, g := range b.groupStats(ctx(t)) {
		if g.Group != group {
			continue
		}
		for _, s := range g.Partitions {
			if s.Topic == topic && s.Partition == p {
				return s.LagRecords, s.LagSeconds, true
			}
		}
	}
	return 0, 0, false
}

// near reports whether got is within margin of want.
func near(got, want, margin float64) bool { return math.Abs(got-want) <= margin }

// TestLagComputation: records and time lag of committed offsets on local
// partitions, a caught-up partition, a partition without a commit, and a
// committed offset that retention has passed.
func TestLagComputation(t *testing.T) {
	b := startBroker(t, t.TempDir(), lagConfig)
	cl := newClient(t, b, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	createTopic(t, b, "orders", 3, nil)
	base := time.Now().Add(-2 * time.Hour)
	produceAged(t, cl, "orders", 0, 10, base)
	produceAged(t, cl, "orders", 1, 5, time.Now())

	commit(t, cl, "billing", kadm.Offset{Topic: "orders", Partition: 0, At: 4}, kadm.Offset{Topic: "orders", Partition: 1, At: 5})
	n, secs, ok := statOf(t, b, "billing", "orders", 0)
	// The record at offset 4 was stamped base+4m.
	want := time.Since(base.Add(4 * time.Minute)).Seconds()
	if !ok || n != 6 || !near(secs, want, 120) {
		t.Errorf("orders/0: lag %d records, %.0f s (found %v); want 6 records, about %.0f s", n, secs, ok, want)
	}
	if n, secs, ok := statOf(t, b, "billing", "orders", 1); !ok || n != 0 || secs != 0 {
		t.Errorf("orders/1 (caught up): lag %d records, %v s (found %v); want 0, 0", n, secs, ok)
	}
	if _, _, ok := statOf(t, b, "billing", "orders", 2); ok {
		t.Error("orders/2 has no committed offset but has a lag")
	}

	// Retention passes the committed offset: lag counts from the log start.
	res, err := kadm.NewClient(cl).DeleteRecords(ctx(t), kadm.Offsets{"orders": {0: {Topic: "orders", Partition: 0, At: 7}}})
	if err != nil || res.Error() != nil {
		t.Fatalf("delete records: %v %v", err, res.Error())
	}
	n, secs, _ = statOf(t, b, "billing", "orders", 0)
	want = time.Since(base.Add(7 * time.Minute)).Seconds()
	if n != 3 || !near(secs, want, 120) {
		t.Errorf("after DeleteRecords to 7: lag %d records, %.0f s; want 3 records, about %.0f s", n, secs, want)
	}
}

// TestLagRemotePartition: a broker measures lag on partitions it does not
// host through its internal client (ListOffsets and a Fetch to the leader).
func TestLagRemotePartition(t *testing.T) {
	bs := startCluster(t, 3, 3, lagConfig)
	cl := newClient(t, bs[1], kgo.RecordPartitioner(kgo.ManualPartitioner()))
	createRF(t, cl, "remote", 3, 1)
	base := time.Now().Add(-3 * time.Hour)
	for p := range int32(3) {
		produceAged(t, cl, "remote", p, 20, base)
	}
	checked := 0
	for _, b := range bs {
		tp := b.reg.get("remote")
		for p := range int32(3) {
			if tp.partition(p) != nil {
				continue // hosted here: the local path
			}
			// Metadata reaches every broker a little after the produce.
			var pl partitionLag
			waitUntil(t, "lag measured", func() bool {
				pl = newLagReader(ctx(t), b, time.Now()).lag("remote", p, 15)
				return pl.Error == ""
			})
			want := time.Since(base.Add(15 * time.Minute)).Seconds()
			if pl.Error != "" || pl.LagRecords != 5 || pl.HighWatermark != 20 || !near(pl.LagSeconds, want, 120) {
				t.Errorf("broker %d, remote/%d: %+v; want 5 records, high watermark 20, about %.0f s", b.cfg.NodeID, p, pl, want)
			}
			checked++
		}
	}
	if checked == 0 {
		t.Fatal("every broker hosts every partition; nothing remote was measured")
	}
}

// sample is one line of the Prometheus text format.
type sample struct {
	name   string
	labels map[string]string
	value  float64
}

func scrape(t *testing.T, b *Broker) []sample {
	t.Helper()
	resp, err := http.Get("http://" + b.HTTPAddr() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out []sample
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		sp := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[sp+1:], 64)
		if err != nil {
			t.Fatalf("metrics line %q: %v", line, err)
		}
		s := sample{name: line[:sp], labels: map[string]string{}, value: v}
		if i := strings.IndexByte(s.name, '{'); i >= 0 {
			for _, kv := range strings.Split(strings.TrimSuffix(s.name[i+1:], "}"), ",") {
				k, val, _ := strings.Cut(kv, "=")
				s.labels[k] = strings.Trim(val, `"`)
			}
			s.name = s.name[:i]
		}
		out = append(out, s)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	return out
}

// find returns the value of the sample with name and labels, if present.
func find(ss []sample, name string, labels ...string) (float64, bool) {
next:
	for _, s := range ss {
		if s.name != name {
			continue
		}
		for i := 0; i+1 < len(labels); i += 2 {
			if s.labels[labels[i]] != labels[i+1] {
				continue next
			}
		}
		return s.value, true
	}
	return 0, false
}

// TestLagMetrics: the coordinator exports lag, members and state on
// /metrics, refreshed by the lag loop, and drops a deleted group's series.
func TestLagMetrics(t *testing.T) {
	b := startBroker(t, t.TempDir(), lagConfig)
	cl := newClient(t, b, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	createTopic(t, b, "events", 2, nil)
	base := time.Now().Add(-time.Hour)
	produceAged(t, cl, "events", 0, 8, base)
	commit(t, cl, "audit", kadm.Offset{Topic: "events", Partition: 0, At: 2})

	var ss []sample
	waitUntil(t, "lag metrics for group audit", func() bool {
		ss = scrape(t, b)
		_, ok := find(ss, "sluice_group_lag_records", "group", "audit", "topic", "events", "partition", "0")
		return ok
	})
	if v, _ := find(ss, "sluice_group_lag_records", "group", "audit", "topic", "events", "partition", "0"); v != 6 {
		t.Errorf("sluice_group_lag_records = %v, want 6", v)
	}
	want := time.Since(base.Add(2 * time.Minute)).Seconds()
	if v, ok := find(ss, "sluice_group_lag_seconds", "group", "audit", "topic", "events", "partition", "0"); !ok || !near(v, want, 120) {
		t.Errorf("sluice_group_lag_seconds = %v (present %v), want about %.0f", v, ok, want)
	}
	if v, ok := find(ss, "sluice_group_members", "group", "audit"); !ok || v != 0 {
		t.Errorf("sluice_group_members = %v (present %v), want 0", v, ok)
	}
	if v, ok := find(ss, "sluice_group_state", "group", "audit", "state", "Empty"); !ok || v != 1 {
		t.Errorf(`sluice_group_state{state="Empty"} = %v (present %v), want 1`, v, ok)
	}
	if _, ok := find(ss, "sluice_group_lag_records", "group", "audit", "partition", "1"); ok {
		t.Error("events/1 has no committed offset but is exported")
	}

	// A consumer joins and catches up: one member, Stable, lag 0.
	startMember(t, b, "c0", "audit", "events", &seen{vals: map[string]int{}})
	waitFor(t, 30*time.Second, "audit stable with one member and no lag", func() bool {
		ss = scrape(t, b)
		m, _ := find(ss, "sluice_group_members", "group", "audit")
		st, _ := find(ss, "sluice_group_state", "group", "audit", "state", "Stable")
		lag, ok := find(ss, "sluice_group_lag_records", "group", "audit", "topic", "events", "partition", "0")
		return m == 1 && st == 1 && ok && lag == 0
	})
	if _, ok := find(ss, "sluice_group_state", "group", "audit", "state", "Empty"); ok {
		t.Error("the Empty state series stayed after the group became Stable")
	}

	// A deleted group's series go.
	commit(t, cl, "gone", kadm.Offset{Topic: "events", Partition: 1, At: 0})
	waitUntil(t, "metrics for group gone", func() bool {
		_, ok := find(scrape(t, b), "sluice_group_members", "group", "gone")
		return ok
	})
	if _, err := kadm.NewClient(cl).DeleteGroup(ctx(t), "gone"); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "group gone's series removed", func() bool {
		ss := scrape(t, b)
		_, m := find(ss, "sluice_group_members", "group", "gone")
		_, l := find(ss, "sluice_group_lag_records", "group", "gone")
		return !m && !l
	})
}

// TestLagMetricsCoordinatorOnly: in a cluster, only the coordinator of a
// group exports it, so summing over brokers counts each group once.
func TestLagMetricsCoordinatorOnly(t *testing.T) {
	bs := startCluster(t, 3, 3, lagConfig)
	cl := newClient(t, bs[1], kgo.RecordPartitioner(kgo.ManualPartitioner()))
	createRF(t, cl, "clicks", 3, 3)
	produceAged(t, cl, "clicks", 0, 5, time.Now().Add(-time.Minute))
	for _, g := range []string{"g-a", "g-b", "g-c", "g-d"} {
		commit(t, cl, g, kadm.Offset{Topic: "clicks", Partition: 0, At: 1})
	}
	waitFor(t, 30*time.Second, "each group exported by exactly one broker", func() bool {
		for _, g := range []string{"g-a", "g-b", "g-c", "g-d"} {
			n := 0
			for _, b := range bs {
				if v, ok := find(scrape(t, b), "sluice_group_lag_records", "group", g, "topic", "clicks", "partition", "0"); ok && v == 4 {
					n++
				}
			}
			if n != 1 {
				return false
			}
		}
		return true
	})
}

// TestLagLoopStops: the loop ends with the broker and closes its client.
func TestLagLoopStops(t *testing.T) {
	b := startBroker(t, t.TempDir(), lagConfig)
	if _, err := b.lag.client(); err != nil {
		t.Fatal(err)
	}
	b.Shutdown(context.Background())
	if _, err := b.lag.client(); err == nil {
		t.Error("the internal client is available after shutdown")
	}
}

// TestAdminGroups: the group HTTP endpoints' answers and status codes.
func TestAdminGroups(t *testing.T) {
	b := startBroker(t, t.TempDir(), lagConfig)
	cl := newClient(t, b, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	createTopic(t, b, "ledger", 2, nil)
	base := time.Now().Add(-time.Hour)
	produceAged(t, cl, "ledger", 0, 10, base)
	produceAged(t, cl, "ledger", 1, 4, base)
	commit(t, cl, "batch", kadm.Offset{Topic: "ledger", Partition: 0, At: 3}, kadm.Offset{Topic: "ledger", Partition: 1, At: 4})
	startMember(t, b, "live-0", "live", "ledger", &seen{vals: map[string]int{}})

	// GET /v1/groups/{group}: a group with members, once stable.
	var live groupView
	waitFor(t, 30*time.Second, "group live stable with its assignment", func() bool {
		live = groupView{}
		st, _ := call(t, b, "GET", "/v1/groups/live", nil, &live)
		return st == http.StatusOK && live.State == "Stable" && len(live.Members) == 1 && len(live.Members[0].Assigned) == 1
	})
	m := live.Members[0]
	if live.ProtocolType != "consumer" || live.Protocol == "" || live.Coordinator != b.cfg.NodeID ||
		m.ClientID != "live-0" || m.ClientHost == "" || m.MemberID == "" ||
		m.Assigned[0].Topic != "ledger" || len(m.Assigned[0].Partitions) != 2 {
		t.Errorf("live: %+v", live)
	}

	// GET /v1/groups lists both, with state and protocol type.
	var list groupsView
	if st, raw := call(t, b, "GET", "/v1/groups", nil, &list); st != http.StatusOK {
		t.Fatalf("GET /v1/groups: %d %s", st, raw)
	}
	got := map[string]listedGroupView{}
	for _, g := range list.Groups {
		got[g.Group] = g
	}
	if g := got["live"]; g.State != "Stable" || g.ProtocolType != "consumer" || g.Coordinator != b.cfg.NodeID {
		t.Errorf("listed live: %+v", g)
	}
	if g := got["batch"]; g.State != "Empty" {
		t.Errorf("listed batch: %+v (all: %+v)", g, list)
	}

	// GET /v1/groups/batch: per-partition lag and totals.
	var batch groupView
	if st, raw := call(t, b, "GET", "/v1/groups/batch", nil, &batch); st != http.StatusOK {
		t.Fatalf("GET /v1/groups/batch: %d %s", st, raw)
	}
	if batch.State != "Empty" || len(batch.Members) != 0 || len(batch.Partitions) != 2 {
		t.Fatalf("batch: %+v", batch)
	}
	p0, p1 := batch.Partitions[0], batch.Partitions[1]
	want := time.Since(base.Add(3 * time.Minute)).Seconds()
	if p0.Topic != "ledger" || p0.Partition != 0 || p0.Committed != 3 || p0.HighWatermark != 10 || p0.LagRecords != 7 || !near(p0.LagSeconds, want, 120) {
		t.Errorf("batch ledger/0: %+v, want committed 3, high watermark 10, lag 7 records and about %.0f s", p0, want)
	}
	if p1.Partition != 1 || p1.Committed != 4 || p1.LagRecords != 0 || p1.LagSeconds != 0 {
		t.Errorf("batch ledger/1: %+v, want caught up", p1)
	}
	if batch.Totals.LagRecords != 7 || batch.Totals.MaxLagSeconds != p0.LagSeconds || batch.Totals.Unmeasured != 0 {
		t.Errorf("batch totals: %+v", batch.Totals)
	}
	if st, raw := call(t, b, "GET", "/v1/groups/nope", nil, nil); st != http.StatusNotFound {
		t.Errorf("GET unknown group: %d %s", st, raw)
	}

	committed := func(group string, p int32) int64 {
		t.Helper()
		os, err := kadm.NewClient(cl).FetchOffsets(ctx(t), group)
		if err != nil {
			t.Fatal(err)
		}
		o, _ := os.Lookup("ledger", p)
		return o.At
	}
	reset := func(body any) (int, resetView, string) {
		t.Helper()
		var v resetView
		st, raw := call(t, b, "POST", "/v1/groups/batch/reset", body, &v)
		return st, v, raw
	}

	// A dry run computes without committing.
	st, v, raw := reset(map[string]any{"topic": "ledger", "to": "earliest", "dry_run": true})
	if st != http.StatusOK || !v.DryRun || len(v.Partitions) != 2 ||
		v.Partitions[0] != (resetPartitionView{Partition: 0, OldOffset: 3, NewOffset: 0}) ||
		v.Partitions[1] != (resetPartitionView{Partition: 1, OldOffset: 4, NewOffset: 0}) {
		t.Errorf("dry run to earliest: %d %s", st, raw)
	}
	if c := committed("batch", 0); c != 3 {
		t.Errorf("a dry run committed: ledger/0 at %d", c)
	}

	// earliest, latest, timestamp and offset commit and answer old and new.
	steps := []struct {
		body       map[string]any
		p0, p1     int64 // new offsets
		old0, old1 int64
	}{
		{map[string]any{"topic": "ledger", "to": "earliest"}, 0, 0, 3, 4},
		{map[string]any{"topic": "ledger", "to": "latest"}, 10, 4, 0, 0},
		// The record stamped base+5m is offset 5 on ledger/0; ledger/1 has
		// none that recent, so it goes to the end.
		{map[string]any{"topic": "ledger", "to": "timestamp", "timestamp_ms": base.Add(5 * time.Minute).UnixMilli()}, 5, 4, 10, 4},
		{map[string]any{"topic": "ledger", "to": "offset", "offset": 2, "partitions": []int32{0}}, 2, -1, 5, -1},
	}
	for _, s := range steps {
		st, v, raw := reset(s.body)
		if st != http.StatusOK || v.DryRun || v.Group != "batch" || v.Topic != "ledger" || v.To != s.body["to"] {
			t.Errorf("reset %v: %d %s", s.body, st, raw)
			continue
		}
		if v.Partitions[0].NewOffset != s.p0 || v.Partitions[0].OldOffset != s.old0 {
			t.Errorf("reset %v: ledger/0 %+v, want old %d new %d", s.body, v.Partitions[0], s.old0, s.p0)
		}
		if s.p1 >= 0 && (len(v.Partitions) != 2 || v.Partitions[1].NewOffset != s.p1 || v.Partitions[1].OldOffset != s.old1) {
			t.Errorf("reset %v: partitions %+v, want ledger/1 old %d new %d", s.body, v.Partitions, s.old1, s.p1)
		}
		if s.p1 < 0 && len(v.Partitions) != 1 {
			t.Errorf("reset %v touched partitions %+v", s.body, v.Partitions)
		}
		if c := committed("batch", 0); c != s.p0 {
			t.Errorf("after reset %v: ledger/0 committed at %d, want %d", s.body, c, s.p0)
		}
	}
	// An offset past the end is clamped to it.
	st, v, raw = reset(map[string]any{"topic": "ledger", "to": "offset", "offset": 1000, "partitions": []int32{1}})
	if st != http.StatusOK || len(v.Partitions) != 1 || v.Partitions[0].NewOffset != 4 || !v.Partitions[0].Clamped {
		t.Errorf("reset past the end: %d %s", st, raw)
	}

	// A group with members refuses an admin commit.
	st, raw = call(t, b, "POST", "/v1/groups/live/reset", map[string]any{"topic": "ledger", "to": "earliest"}, nil)
	if st != http.StatusConflict || !strings.Contains(raw, "stop the group's consumers first") {
		t.Errorf("reset of an active group: %d %s", st, raw)
	}

	// Bad input.
	bad := []struct {
		body string
		want int
	}{
		{`{"topic":"ledger","to":"yesterday"}`, http.StatusBadRequest},
		{`{"to":"earliest"}`, http.StatusBadRequest},
		{`{"topic":"ledger","to":"offset","offset":-1}`, http.StatusBadRequest},
		{`{"topic":"ledger","to":"offset"}`, http.StatusBadRequest},
		{`{"topic":"ledger","to":"timestamp"}`, http.StatusBadRequest},
		{`{"topic":"ledger","to":"timestamp","timestamp_ms":-5}`, http.StatusBadRequest},
		{`{"topic":"ledger","to":"latest","offset":3}`, http.StatusBadRequest},
		{`{"topic":"ledger","to":"latest","partitions":[0,0]}`, http.StatusBadRequest},
		{`{"topic":"ledger","to":"latest","partitions":[-1]}`, http.StatusBadRequest},
		{`{"topic":"ledger","to":"latest","colour":"red"}`, http.StatusBadRequest},
		{`{"topic":"ledger","to":"latest"} {}`, http.StatusBadRequest},
		{`not json`, http.StatusBadRequest},
		{`{"topic":"ledger","to":"latest","partitions":[7]}`, http.StatusNotFound},
		{`{"topic":"nosuch","to":"latest"}`, http.StatusNotFound},
		{`{"topic":"ledger","to":"latest","pad":"` + strings.Repeat("x", maxAdminBody) + `"}`, http.StatusRequestEntityTooLarge},
	}
	for _, c := range bad {
		if st, raw := call(t, b, "POST", "/v1/groups/batch/reset", c.body, nil); st != c.want || !strings.Contains(raw, `"error"`) {
			t.Errorf("reset %.80s: %d %s, want %d", c.body, st, raw, c.want)
		}
	}

	// DELETE: refused with members, unknown group 404, an empty group goes.
	if st, raw := call(t, b, "DELETE", "/v1/groups/live", nil, nil); st != http.StatusConflict {
		t.Errorf("delete an active group: %d %s", st, raw)
	}
	if st, raw := call(t, b, "DELETE", "/v1/groups/nope", nil, nil); st != http.StatusNotFound {
		t.Errorf("delete an unknown group: %d %s", st, raw)
	}
	var del deleteGroupView
	if st, raw := call(t, b, "DELETE", "/v1/groups/batch", nil, &del); st != http.StatusOK || del != (deleteGroupView{Group: "batch", Deleted: true}) {
		t.Errorf("delete batch: %d %s", st, raw)
	}
	if st, raw := call(t, b, "GET", "/v1/groups/batch", nil, nil); st != http.StatusNotFound {
		t.Errorf("GET a deleted group: %d %s", st, raw)
	}
}
