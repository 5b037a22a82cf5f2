package broker

import (
	"errors"
	"strconv"
	"sync/atomic"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluicemq/sluice/broker/group"
)

// offsetsTopic holds committed offsets and group membership. Each of its
// partitions is a raft group like any other; the leader of a group's
// partition is that group's coordinator.
const offsetsTopic = "__consumer_offsets"

// isInternal reports whether clients may not write or delete a topic.
func isInternal(name string) bool { return name == offsetsTopic }

// groupHost gives the coordinator its __consumer_offsets partitions.
type groupHost struct{ b *Broker }

func (h groupHost) OffsetsPartitions() int32 {
	if t := h.b.reg.get(offsetsTopic); t != nil {
		return int32(len(t.assign))
	}
	return 0
}

func (h groupHost) OffsetsPartition(p int32) (group.Store, uint64, bool) {
	rep := h.b.reg.get(offsetsTopic).partition(p)
	if rep == nil || !rep.Ready() {
		return nil, 0, false
	}
	_, term := rep.Leader()
	return offsetsStore{rep}, term, true
}

func (h groupHost) PartitionExists(topic string, p int32) (exists, known bool) {
	if t := h.b.reg.get(topic); t != nil {
		return t.has(p), true
	}
	return false, h.b.Ready()
}

func (h groupHost) Topic(name string) (group.TopicInfo, bool) {
	t := h.b.reg.get(name)
	if t == nil || isInternal(name) {
		return group.TopicInfo{}, false
	}
	return group.TopicInfo{ID: t.id, Partitions: int32(len(t.assign))}, true
}

// offsetsStore is a __consumer_offsets replica as the coordinator uses it:
// appends are acks=all, reads stop at the high watermark.
type offsetsStore struct{ rep replica }

func (s offsetsStore) Append(b []byte) func() (int64, error) {
	wait := s.rep.Produce(b, -1)
	return func() (int64, error) {
		res, err := wait()
		return res.BaseOffset, err
	}
}

func (s offsetsStore) Read(offset int64, maxBytes int) ([][]byte, func(), int64, error) {
	res, err := s.rep.Partition().Fetch(offset, maxBytes)
	if err != nil {
		return nil, func() {}, res.HighWatermark, err
	}
	return res.Batches, res.Release, res.HighWatermark, nil
}

func (s offsetsStore) LogStart() int64 { return s.rep.Partition().LogStartOffset() }

// offsetsTopicCreating is set while this broker creates __consumer_offsets.
var offsetsTopicCreating atomic.Bool

// ensureOffsetsTopic creates __consumer_offsets in the background, as
// Kafka does on the first FindCoordinator: compacted, with the configured
// partitions and a replication factor no larger than the cluster.
func (b *Broker) ensureOffsetsTopic() {
	if !offsetsTopicCreating.CompareAndSwap(false, true) {
		return
	}
	b.bgWG.Add(1)
	go func() {
		defer b.bgWG.Done()
		defer offsetsTopicCreating.Store(false)
		rf := min(int(b.cfg.OffsetsTopicReplicationFactor), len(b.ctrl.State().Brokers))
		if rf < 1 {
			return
		}
		_, err := b.reg.create(offsetsTopic, b.cfg.OffsetsTopicPartitions, int16(rf), nil, map[string]string{
			"cleanup.policy": "compact",
			"segment.bytes":  strconv.Itoa(100 << 20),
		}, false)
		switch {
		case err == nil:
			b.lg.Info().Int32("partitions", b.cfg.OffsetsTopicPartitions).Int("replication_factor", rf).Msg("created " + offsetsTopic)
		case !errors.Is(err, kerr.TopicAlreadyExists):
			b.lg.Warn().Err(err).Msg("create " + offsetsTopic)
		}
	}()
}

// findCoordinator names the leader of the group's __consumer_offsets
// partition. Transactions and share groups have no coordinator here.
func (b *Broker) findCoordinator(r *kmsg.FindCoordinatorRequest) kmsg.Response {
	resp := r.ResponseKind().(*kmsg.FindCoordinatorResponse)
	keys := r.CoordinatorKeys
	if r.Version < 4 {
		keys = []string{r.CoordinatorKey}
	}
	for _, k := range keys {
		c := kmsg.NewFindCoordinatorResponseCoordinator()
		c.Key = k
		c.NodeID, c.Host, c.Port, c.ErrorCode, c.ErrorMessage = b.coordinatorFor(r.CoordinatorType, k)
		resp.Coordinators = append(resp.Coordinators, c)
	}
	if r.Version < 4 {
		c := resp.Coordinators[0]
		resp.NodeID, resp.Host, resp.Port, resp.ErrorCode, resp.ErrorMessage = c.NodeID, c.Host, c.Port, c.ErrorCode, c.ErrorMessage
		resp.Coordinators = nil
	}
	return resp
}

func (b *Broker) coordinatorFor(kind int8, key string) (node int32, host string, port int32, ec int16, msg *string) {
	fail := func(e *kerr.Error, m string) (int32, string, int32, int16, *string) {
		return -1, "", -1, e.Code, &m
	}
	switch {
	case kind == 1:
		return fail(kerr.TransactionalIDAuthorizationFailed, "transactions are not supported")
	case kind != 0:
		return fail(kerr.InvalidRequest, "only consumer group coordinators exist")
	case key == "":
		return fail(kerr.InvalidGroupID, "empty group id")
	}
	t := b.reg.get(offsetsTopic)
	if t == nil {
		b.ensureOffsetsTopic()
		return fail(kerr.CoordinatorNotAvailable, offsetsTopic+" is being created")
	}
	leader, _ := leaderOf(t, int(group.PartitionOf(key, int32(len(t.assign)))))
	if leader < 0 {
		return fail(kerr.CoordinatorNotAvailable, "the group's "+offsetsTopic+" partition has no leader yet")
	}
	for _, br := range b.brokers() {
		if br.NodeID == leader {
			return br.NodeID, br.Host, br.Port, 0, nil
		}
	}
	return fail(kerr.CoordinatorNotAvailable, "the coordinator's broker is not registered yet")
}

// clientHost is the client's address as group descriptions show it.
func (c *conn) clientHost() string {
	if a := c.nc.RemoteAddr(); a != nil {
		return "/" + a.String()
	}
	return ""
}
