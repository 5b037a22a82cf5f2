package broker

import (
	"errors"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// shareLog records what share workers got: offset -> deliveries, and the
// delivery count each delivery carried.
type shareLog struct {
	mu     sync.Mutex
	got    map[int64]int
	counts map[int64][]int32
}

func newShareLog() *shareLog { return &shareLog{got: map[int64]int{}, counts: map[int64][]int32{}} }

func (l *shareLog) accept(r *kgo.Record) kgo.AckStatus {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.got[r.Offset]++
	l.counts[r.Offset] = append(l.counts[r.Offset], r.DeliveryCount())
	return kgo.AckAccept
}

// offsets lists the offsets delivered, ascending.
func (l *shareLog) offsets() []int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []int64
	for o := range l.got {
		out = append(out, o)
	}
	slices.Sort(out)
	return out
}

func (l *shareLog) has(n int) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.got) >= n
}

func span(from, to int64) []int64 {
	var out []int64
	for o := from; o < to; o++ {
		out = append(out, o)
	}
	return out
}

func produceShare(t *testing.T, cl *kgo.Client, topic string, from, to int) {
	t.Helper()
	var recs []*kgo.Record
	for i := from; i < to; i++ {
		recs = append(recs, &kgo.Record{Topic: topic, Value: []byte(strconv.Itoa(i))})
	}
	if err := cl.ProduceSync(ctx(t), recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
}

// shareOffset describes group's share-partition topic/0 with kadm.
func shareOffset(t *testing.T, adm *kadm.Client, group, topic string) (kadm.ShareOffset, error) {
	t.Helper()
	res, err := adm.DescribeShareGroupOffsets(ctx(t), group)
	if err != nil {
		return kadm.ShareOffset{}, err
	}
	d := res[group]
	if d.Err != nil {
		return kadm.ShareOffset{}, d.Err
	}
	o, ok := d.Offsets[topic][0]
	if !ok {
		return kadm.ShareOffset{StartOffset: -1}, nil
	}
	return o, o.Err
}

// waitEmpty waits until the share group has no members.
func waitEmpty(t *testing.T, adm *kadm.Client, group string) {
	t.Helper()
	waitUntil(t, "share group "+group+" empty", func() bool {
		ds, err := adm.DescribeShareGroups(ctx(t), group)
		return err == nil && ds[group].Err == nil && len(ds[group].Members) == 0
	})
}

// TestShareGroupOffsetsAdmin: with kadm as the operator's tool, the start
// offset (SPSO) and lag of a share group show after a worker acknowledged
// records; Alter and Delete are refused while it is active; once it left,
// Alter to an earlier offset makes a new worker get those records again
// as first deliveries, and Delete makes the next worker start by
// share.auto.offset.reset.
func TestShareGroupOffsetsAdmin(t *testing.T) {
	b := startBroker(t, t.TempDir())
	cl := newClient(t, b)
	adm := kadm.NewClient(newClient(t, b))
	createTopic(t, b, "jobs", 1, nil)
	setGroupConfigs(t, cl, "crew", map[string]string{"share.auto.offset.reset": "earliest"})
	produceShare(t, cl, "jobs", 0, 10)

	first := newShareLog()
	w := startShareWorker(t, b, "crew", "jobs", first.accept)
	waitUntil(t, "ten records handled", func() bool { return first.has(10) })
	waitUntil(t, "SPSO past the acknowledged records", func() bool {
		o, err := shareOffset(t, adm, "crew", "jobs")
		return err == nil && o.StartOffset == 10
	})

	alter := func(at int64) (kadm.AlterShareGroupOffsetsResponses, error) {
		os := kadm.Offsets{}
		os.Add(kadm.Offset{Topic: "jobs", Partition: 0, At: at})
		return adm.AlterShareGroupOffsets(ctx(t), "crew", os)
	}
	if _, err := alter(3); !errors.Is(err, kerr.NonEmptyGroup) {
		t.Fatalf("alter with a member: %v, want NON_EMPTY_GROUP", err)
	}
	if _, err := adm.DeleteShareGroupOffsets(ctx(t), "crew", "jobs"); !errors.Is(err, kerr.NonEmptyGroup) {
		t.Fatalf("delete with a member: %v, want NON_EMPTY_GROUP", err)
	}

	w.cl.Close()
	waitEmpty(t, adm, "crew")
	produceShare(t, cl, "jobs", 10, 15)
	o, err := shareOffset(t, adm, "crew", "jobs")
	if err != nil || o.StartOffset != 10 || o.Lag != 5 || o.LeaderEpoch < 1 {
		t.Fatalf("describe after the worker left: %+v %v, want start 10, lag 5", o, err)
	}

	res, err := alter(3)
	if err != nil || res.Error() != nil {
		t.Fatalf("alter to 3: %v %v", err, res.Error())
	}
	if o, err := shareOffset(t, adm, "crew", "jobs"); err != nil || o.StartOffset != 3 || o.Lag != 12 {
		t.Fatalf("describe after the alter: %+v %v, want start 3, lag 12", o, err)
	}
	second := newShareLog()
	w = startShareWorker(t, b, "crew", "jobs", second.accept)
	waitUntil(t, "records from 3 handled", func() bool { return second.has(12) })
	waitUntil(t, "SPSO at the end", func() bool {
		o, err := shareOffset(t, adm, "crew", "jobs")
		return err == nil && o.StartOffset == 15 && o.Lag == 0
	})
	w.cl.Close()
	waitEmpty(t, adm, "crew")
	if got := second.offsets(); !slices.Equal(got, span(3, 15)) {
		t.Fatalf("after the alter the worker got %v, want 3..14", got)
	}
	second.mu.Lock()
	for off, cs := range second.counts {
		if cs[0] != 1 {
			t.Errorf("offset %d redelivered with delivery count %d, want 1: the reset starts counts at 0", off, cs[0])
		}
	}
	second.mu.Unlock()

	del, err := adm.DeleteShareGroupOffsets(ctx(t), "crew", "jobs")
	if err != nil || del.Error() != nil {
		t.Fatalf("delete: %v %v", err, del.Error())
	}
	if o, err := shareOffset(t, adm, "crew", "jobs"); err != nil || o.StartOffset != -1 {
		t.Fatalf("describe after the delete: %+v %v, want no state", o, err)
	}
	third := newShareLog()
	startShareWorker(t, b, "crew", "jobs", third.accept)
	waitUntil(t, "the whole log handled again", func() bool { return third.has(15) })
	if got := third.offsets(); !slices.Equal(got, span(0, 15)) {
		t.Fatalf("after the delete the worker got %v, want 0..14 (share.auto.offset.reset=earliest)", got)
	}
}

// TestShareGroupOffsetsBadInput: every refusal has its Kafka error code,
// and no request panics the broker.
func TestShareGroupOffsetsBadInput(t *testing.T) {
	b := startBroker(t, t.TempDir())
	cl := newClient(t, b)
	adm := kadm.NewClient(newClient(t, b))
	createTopic(t, b, "jobs", 1, nil)
	produceShare(t, cl, "jobs", 0, 10)

	// An unknown group: nothing to describe or delete. (The first
	// request creates __consumer_offsets: wait for its coordinator.)
	waitUntil(t, "the group coordinator", func() bool {
		_, err := shareOffset(t, adm, "nobody", "jobs")
		return !errors.Is(err, kerr.CoordinatorNotAvailable) && !errors.Is(err, kerr.CoordinatorLoadInProgress) && !errors.Is(err, kerr.NotCoordinator)
	})
	if _, err := shareOffset(t, adm, "nobody", "jobs"); !errors.Is(err, kerr.GroupIDNotFound) {
		t.Errorf("describe an unknown group: %v", err)
	}
	if _, err := adm.DeleteShareGroupOffsets(ctx(t), "nobody", "jobs"); !errors.Is(err, kerr.GroupIDNotFound) {
		t.Errorf("delete offsets of an unknown group: %v", err)
	}

	// Alter: per partition codes; the valid ones are set, clamped to the
	// log (below its start after DeleteRecords, past its end).
	dr, err := adm.DeleteRecords(ctx(t), kadm.Offsets{"jobs": {0: {Topic: "jobs", Partition: 0, At: 2}}})
	if err != nil || dr.Error() != nil {
		t.Fatalf("delete records: %v %v", err, dr.Error())
	}
	req := kmsg.NewPtrAlterShareGroupOffsetsRequest()
	req.GroupID = "fresh"
	for _, tp := range []struct {
		topic string
		p     int32
		at    int64
	}{{"jobs", 0, 0}, {"jobs", 7, 1}, {"missing", 0, 1}, {"__consumer_offsets", 0, 1}} {
		rt := kmsg.NewAlterShareGroupOffsetsRequestTopic()
		rt.Topic = tp.topic
		rp := kmsg.NewAlterShareGroupOffsetsRequestTopicPartition()
		rp.Partition, rp.StartOffset = tp.p, tp.at
		rt.Partitions = append(rt.Partitions, rp)
		req.Topics = append(req.Topics, rt)
	}
	resp, err := req.RequestWith(ctx(t), cl)
	if err != nil || resp.ErrorCode != 0 || len(resp.Topics) != 4 {
		t.Fatalf("alter: %v %+v", err, resp)
	}
	for i, want := range []int16{0, kerr.UnknownTopicOrPartition.Code, kerr.UnknownTopicOrPartition.Code, kerr.UnknownTopicOrPartition.Code} {
		if got := resp.Topics[i].Partitions[0].ErrorCode; got != want {
			t.Errorf("alter %s/%d: code %d, want %d", resp.Topics[i].Topic, resp.Topics[i].Partitions[0].Partition, got, want)
		}
	}
	if o, err := shareOffset(t, adm, "fresh", "jobs"); err != nil || o.StartOffset != 2 {
		t.Errorf("alter to 0 below the log start 2: %+v %v, want 2", o, err)
	}
	os := kadm.Offsets{}
	os.Add(kadm.Offset{Topic: "jobs", Partition: 0, At: 1000})
	if res, err := adm.AlterShareGroupOffsets(ctx(t), "fresh", os); err != nil || res.Error() != nil {
		t.Fatalf("alter past the end: %v %v", err, res.Error())
	}
	if o, err := shareOffset(t, adm, "fresh", "jobs"); err != nil || o.StartOffset != 10 || o.Lag != 0 {
		t.Errorf("alter to 1000 past the high watermark 10: %+v %v, want 10", o, err)
	}
	os = kadm.Offsets{}
	os.Add(kadm.Offset{Topic: "jobs", Partition: 0, At: -1})
	res, err := adm.AlterShareGroupOffsets(ctx(t), "fresh", os)
	if err != nil {
		t.Fatal(err)
	}
	if e, _ := res.Lookup("jobs", 0); !errors.Is(e, kerr.InvalidRequest) {
		t.Errorf("alter to -1: %v, want INVALID_REQUEST", e)
	}
	if o, _ := shareOffset(t, adm, "fresh", "jobs"); o.StartOffset != 10 {
		t.Errorf("a refused alter changed the start: %+v", o)
	}

	// Describe: a topic or partition without state is -1, no error (as
	// Kafka); all topics lists only where the group has state.
	dreq := kmsg.NewPtrDescribeShareGroupOffsetsRequest()
	dg := kmsg.NewDescribeShareGroupOffsetsRequestGroup()
	dg.GroupID = "fresh"
	for _, name := range []string{"jobs", "missing"} {
		dt := kmsg.NewDescribeShareGroupOffsetsRequestGroupTopic()
		dt.Topic, dt.Partitions = name, []int32{0, 5}
		dg.Topics = append(dg.Topics, dt)
	}
	all := kmsg.NewDescribeShareGroupOffsetsRequestGroup()
	all.GroupID = "fresh"
	dreq.Groups = append(dreq.Groups, dg, all)
	dresp, err := dreq.RequestWith(ctx(t), cl)
	if err != nil || len(dresp.Groups) != 2 {
		t.Fatalf("describe: %v %+v", err, dresp)
	}
	g := dresp.Groups[0]
	if g.ErrorCode != 0 || len(g.Topics) != 2 {
		t.Fatalf("describe named topics: %+v", g)
	}
	for _, tp := range g.Topics {
		for _, p := range tp.Partitions {
			want := int64(-1)
			if tp.Topic == "jobs" && p.Partition == 0 {
				want = 10
			}
			if p.StartOffset != want || p.ErrorCode != 0 {
				t.Errorf("describe %s/%d: %+v, want start %d", tp.Topic, p.Partition, p, want)
			}
		}
	}
	if g := dresp.Groups[1]; g.ErrorCode != 0 || len(g.Topics) != 1 || g.Topics[0].Topic != "jobs" || len(g.Topics[0].Partitions) != 1 ||
		g.Topics[0].Partitions[0].StartOffset != 10 || g.Topics[0].TopicID == [16]byte{} {
		t.Errorf("describe all topics: %+v", g)
	}

	// Delete: unknown topics and topics without state, per topic.
	del, err := adm.DeleteShareGroupOffsets(ctx(t), "fresh", "missing", "jobs")
	if err != nil {
		t.Fatal(err)
	}
	if e, _ := del.Lookup("missing"); !errors.Is(e, kerr.UnknownTopicOrPartition) {
		t.Errorf("delete offsets of an unknown topic: %v", e)
	}
	if e, ok := del.Lookup("jobs"); !ok || e != nil {
		t.Errorf("delete offsets of jobs: %v %v", e, ok)
	}
	del, err = adm.DeleteShareGroupOffsets(ctx(t), "fresh", "jobs")
	if e, _ := del.Lookup("jobs"); err != nil || !errors.Is(e, kerr.UnknownTopicOrPartition) {
		t.Errorf("delete offsets again: %v %v, want UNKNOWN_TOPIC_OR_PARTITION (nothing to delete)", err, e)
	}

	// A classic group is not a share group.
	co := kadm.Offsets{}
	co.Add(kadm.Offset{Topic: "jobs", Partition: 0, At: 5, LeaderEpoch: -1})
	if r, err := adm.CommitOffsets(ctx(t), "classic", co); err != nil || r.Error() != nil {
		t.Fatalf("commit: %v %v", err, r.Error())
	}
	os = kadm.Offsets{}
	os.Add(kadm.Offset{Topic: "jobs", Partition: 0, At: 5})
	if _, err := adm.AlterShareGroupOffsets(ctx(t), "classic", os); !errors.Is(err, kerr.GroupIDNotFound) {
		t.Errorf("alter a classic group: %v", err)
	}
	if _, err := shareOffset(t, adm, "classic", "jobs"); !errors.Is(err, kerr.GroupIDNotFound) {
		t.Errorf("describe a classic group: %v", err)
	}
	// The broker still answers.
	if _, err := shareOffset(t, adm, "fresh", "jobs"); err != nil {
		t.Fatal(err)
	}
}

// TestShareGroupOffsetsSurviveLeaderChange: an alter goes through the
// partition's raft group, so after its leader stops the new leader has
// the altered start, and a worker gets exactly the records from it.
func TestShareGroupOffsetsSurviveLeaderChange(t *testing.T) {
	bs := groupCluster(t)
	cl := newClient(t, bs[1])
	createRF(t, cl, "tasks", 1, 3)
	setGroupConfigs(t, cl, "crew", map[string]string{"share.auto.offset.reset": "earliest"})
	produceShare(t, cl, "tasks", 0, 20)
	os := kadm.Offsets{}
	os.Add(kadm.Offset{Topic: "tasks", Partition: 0, At: 7})
	res, err := kadm.NewClient(cl).AlterShareGroupOffsets(ctx(t), "crew", os)
	if err != nil || res.Error() != nil {
		t.Fatalf("alter: %v %v", err, res.Error())
	}
	alive := stopTasksLeader(t, bs)
	// A fresh client per try: one asking right after the stop may be told
	// the stopped broker still coordinates the group (its offsets
	// partition has not elected yet), and franz-go keeps a coordinator
	// it cannot dial, so that client would never ask again.
	waitFor(t, 60*time.Second, "the new leader answers", func() bool {
		cl, err := kgo.NewClient(kgo.SeedBrokers(alive.KafkaAddr()), kgo.RetryTimeout(time.Second))
		if err != nil {
			t.Fatal(err)
		}
		defer cl.Close()
		o, err := shareOffset(t, kadm.NewClient(cl), "crew", "tasks")
		if err == nil && o.StartOffset != 7 {
			t.Fatalf("after the leader change the start is %d, want 7", o.StartOffset)
		}
		return err == nil
	})
	got := newShareLog()
	startShareWorker(t, alive, "crew", "tasks", got.accept)
	waitFor(t, 60*time.Second, "records from 7 handled", func() bool { return got.has(13) })
	if offs := got.offsets(); !slices.Equal(offs, span(7, 20)) {
		t.Fatalf("the worker got %v, want 7..19", offs)
	}
}
