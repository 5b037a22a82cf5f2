package broker

import (
	"errors"
	"math"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluicemq/sluice/broker/controller"
	"github.com/sluicemq/sluice/protocol"
	"github.com/sluicemq/sluice/protocol/sluiceapi"
)

// handle starts a request and returns what finishes it. Handlers run in
// arrival order on the connection's reader goroutine; only their returned
// responders may block.
func (b *Broker) handle(c *conn, req *protocol.Request, frame []byte) responder {
	switch r := req.Msg.(type) {
	case *kmsg.ApiVersionsRequest:
		return now(b.apiVersions(r))
	case *kmsg.MetadataRequest:
		return now(b.metadata(r))
	case *kmsg.ProduceRequest:
		return b.produce(r, frame)
	case *kmsg.FetchRequest:
		return b.fetch(r)
	case *kmsg.ListOffsetsRequest:
		return now(b.listOffsets(r))
	case *kmsg.CreateTopicsRequest:
		return now(b.createTopics(r))
	case *kmsg.DeleteTopicsRequest:
		return now(b.deleteTopics(r))
	case *kmsg.CreatePartitionsRequest:
		return now(b.createPartitions(r))
	case *kmsg.DescribeConfigsRequest:
		return now(b.describeConfigs(r))
	case *kmsg.IncrementalAlterConfigsRequest:
		return now(b.incrementalAlterConfigs(r))
	case *kmsg.DescribeClusterRequest:
		return now(b.describeCluster(r))
	case *kmsg.DeleteRecordsRequest:
		return now(b.deleteRecords(r))
	case *kmsg.InitProducerIDRequest:
		return now(b.initProducerID(r))
	case *kmsg.FindCoordinatorRequest:
		return now(b.findCoordinator(r))
	case *kmsg.JoinGroupRequest:
		return responder(b.groups.JoinGroup(r, clientIDOf(req), c.clientHost()))
	case *kmsg.SyncGroupRequest:
		return responder(b.groups.SyncGroup(r))
	case *kmsg.HeartbeatRequest:
		return responder(b.groups.Heartbeat(r))
	case *kmsg.LeaveGroupRequest:
		return responder(b.groups.LeaveGroup(r))
	case *kmsg.OffsetCommitRequest:
		return responder(b.groups.OffsetCommit(r))
	case *kmsg.OffsetFetchRequest:
		return responder(b.groups.OffsetFetch(r))
	case *kmsg.OffsetDeleteRequest:
		return responder(b.groups.OffsetDelete(r))
	case *kmsg.ListGroupsRequest:
		return responder(b.groups.ListGroups(r))
	case *kmsg.DescribeGroupsRequest:
		return responder(b.groups.DescribeGroups(r))
	case *kmsg.DeleteGroupsRequest:
		return responder(b.groups.DeleteGroups(r))
	case *kmsg.ShareGroupHeartbeatRequest:
		return responder(b.groups.ShareGroupHeartbeat(r, clientIDOf(req), c.clientHost()))
	case *kmsg.ShareGroupDescribeRequest:
		return responder(b.groups.ShareGroupDescribe(r))
	case *kmsg.ShareFetchRequest:
		return b.shareFetch(c, r)
	case *kmsg.ShareAcknowledgeRequest:
		return b.shareAcknowledge(c, r)
	case *kmsg.DescribeShareGroupOffsetsRequest:
		return b.describeShareGroupOffsets(r)
	case *kmsg.AlterShareGroupOffsetsRequest:
		return b.alterShareGroupOffsets(r)
	case *kmsg.DeleteShareGroupOffsetsRequest:
		return b.deleteShareGroupOffsets(r)
	case *sluiceapi.ShareNoteRequest:
		// A note takes the share-partition's lock, which an ack holds
		// across its raft commit: run it off the connection's reader.
		return func() kmsg.Response { return b.shareNote(r) }
	}
	// protocol.Decode only returns supported keys; this is a programming error.
	c.lg.Error().Int16("api_key", req.Header.Key).Msg("no handler for a supported API")
	return func() kmsg.Response { return nil }
}

func clientIDOf(req *protocol.Request) string {
	if req.Header.ClientID != nil {
		return *req.Header.ClientID
	}
	return ""
}

func now(resp kmsg.Response) responder { return func() kmsg.Response { return resp } }

// code turns an error into a Kafka error code (UNKNOWN_SERVER_ERROR for
// anything that is not a Kafka error).
func code(err error) int16 {
	if err == nil {
		return 0
	}
	var ke *kerr.Error
	if errors.As(err, &ke) {
		return ke.Code
	}
	return kerr.UnknownServerError.Code
}

// message is the error message for responses that carry one.
func message(err error) *string {
	if err == nil {
		return nil
	}
	var te *topicError
	if errors.As(err, &te) {
		return &te.msg
	}
	s := err.Error()
	return &s
}

func (b *Broker) apiVersions(r *kmsg.ApiVersionsRequest) kmsg.Response {
	resp := r.ResponseKind().(*kmsg.ApiVersionsResponse)
	protocol.FillApiVersions(resp)
	return resp
}

func (b *Broker) describeCluster(r *kmsg.DescribeClusterRequest) kmsg.Response {
	resp := r.ResponseKind().(*kmsg.DescribeClusterResponse)
	resp.ClusterID = b.reg.clusterID()
	resp.ControllerID = b.ctrl.Leader()
	resp.EndpointType = r.EndpointType
	switch {
	case r.Version >= 1 && r.EndpointType == 2: // controllers: this is a broker endpoint (KIP-919)
		resp.ErrorCode = kerr.MismatchedEndpointType.Code
		return resp
	case r.Version >= 1 && r.EndpointType != 1: // 1 is brokers
		resp.ErrorCode = kerr.UnsupportedEndpointType.Code
		return resp
	}
	for _, br := range b.brokers() {
		d := kmsg.NewDescribeClusterResponseBroker()
		d.NodeID, d.Host, d.Port = br.NodeID, br.Host, br.Port
		resp.Brokers = append(resp.Brokers, d)
	}
	return resp
}

// initProducerID hands out idempotent producer ids. With a known id and
// epoch (KIP-360, v3+) the epoch is bumped so the producer can reset its
// sequences. Transactions are not supported.
func (b *Broker) initProducerID(r *kmsg.InitProducerIDRequest) kmsg.Response {
	resp := r.ResponseKind().(*kmsg.InitProducerIDResponse)
	resp.ProducerID, resp.ProducerEpoch = -1, -1
	if r.TransactionalID != nil {
		resp.ErrorCode = kerr.TransactionalIDAuthorizationFailed.Code
		return resp
	}
	if r.ProducerID >= 0 && r.ProducerEpoch >= 0 && r.ProducerEpoch < 32767 {
		resp.ProducerID, resp.ProducerEpoch = r.ProducerID, r.ProducerEpoch+1
		return resp
	}
	id, err := b.reg.allocProducerID()
	if err != nil {
		b.lg.Error().Err(err).Msg("allocate producer id")
		resp.ErrorCode = kerr.KafkaStorageError.Code
		return resp
	}
	resp.ProducerID, resp.ProducerEpoch = id, 0
	return resp
}

// brokers lists the registered brokers; before this broker's registration
// is applied it lists at least this broker, so clients can bootstrap.
func (b *Broker) brokers() []kmsg.MetadataResponseBroker {
	st := b.ctrl.State()
	var out []kmsg.MetadataResponseBroker
	for _, id := range st.BrokerIDs() {
		info := st.Brokers[id]
		br := kmsg.NewMetadataResponseBroker()
		br.NodeID, br.Host, br.Port = info.ID, info.Host, info.Port
		out = append(out, br)
	}
	if st.Brokers[b.cfg.NodeID] == nil {
		br := kmsg.NewMetadataResponseBroker()
		br.NodeID, br.Host, br.Port = b.cfg.NodeID, b.advHost, b.advPort
		out = append(out, br)
	}
	return out
}

// leaderOf names partition i's leader and its epoch (the raft term it
// leads in): this broker's raft view when it hosts a replica (freshest),
// otherwise the last leader reported to the controller. Leader -1 means
// unknown. Terms grow with every election, so clients that compare leader
// epochs (KIP-320) discard metadata older than what they have seen.
func leaderOf(t *topic, i int) (leader, epoch int32) {
	if rep := t.parts[i]; rep != nil {
		id, term := rep.Leader()
		if id == "" {
			return -1, -1
		}
		return controller.ParseServerID(id), clampEpoch(term)
	}
	if a := t.assign[i]; a.Leader >= 0 {
		return a.Leader, clampEpoch(a.LeaderTerm)
	}
	return -1, -1
}

func clampEpoch(term uint64) int32 { return int32(min(term, math.MaxInt32)) }

// inSync is partition i's ISR: the leader's view when this broker leads
// it (voters it hears from), otherwise every assigned replica.
func inSync(t *topic, i int) []int32 {
	if rep := t.parts[i]; rep != nil {
		if ids := rep.InSync(); ids != nil {
			out := make([]int32, 0, len(ids))
			for _, id := range ids {
				out = append(out, controller.ParseServerID(id))
			}
			return out
		}
	}
	return t.assign[i].Replicas
}

func (b *Broker) metadata(r *kmsg.MetadataRequest) kmsg.Response {
	resp := r.ResponseKind().(*kmsg.MetadataResponse)
	resp.Brokers = b.brokers()
	cid := b.reg.clusterID()
	resp.ClusterID = &cid
	resp.ControllerID = b.ctrl.Leader()

	var topics []*topic
	var missing []kmsg.MetadataResponseTopic
	// v0: an empty list means all topics; v1+: a null list means all.
	if r.Topics == nil || (r.Version == 0 && len(r.Topics) == 0) {
		topics = b.reg.list()
	}
	for _, rt := range r.Topics {
		var t *topic
		switch {
		case rt.Topic != nil:
			t = b.reg.get(*rt.Topic)
			if t == nil && (r.AllowAutoTopicCreation || r.Version < 4) && b.cfg.AutoCreateTopics {
				t, _ = b.autoCreate(*rt.Topic)
			}
		case rt.TopicID != [16]byte{}:
			t = b.reg.getByID(rt.TopicID)
		}
		if t != nil && t.assign != nil {
			topics = append(topics, t)
			continue
		}
		mt := kmsg.NewMetadataResponseTopic()
		mt.Topic, mt.TopicID = rt.Topic, rt.TopicID
		mt.ErrorCode = kerr.UnknownTopicOrPartition.Code
		if rt.Topic != nil && validTopicName(*rt.Topic) != nil {
			mt.ErrorCode = kerr.InvalidTopicException.Code
		} else if rt.Topic == nil {
			mt.ErrorCode = kerr.UnknownTopicID.Code
		}
		missing = append(missing, mt)
	}
	for _, t := range topics {
		mt := kmsg.NewMetadataResponseTopic()
		name := t.name
		mt.Topic, mt.TopicID, mt.IsInternal = &name, t.id, isInternal(name)
		for i, a := range t.assign {
			mp := kmsg.NewMetadataResponseTopicPartition()
			mp.Partition = int32(i)
			mp.Leader, mp.LeaderEpoch = leaderOf(t, i)
			if mp.Leader < 0 {
				// An election is under way: clients retry this code.
				mp.ErrorCode = kerr.LeaderNotAvailable.Code
			}
			mp.Replicas, mp.ISR = a.Replicas, inSync(t, i)
			mt.Partitions = append(mt.Partitions, mp)
		}
		resp.Topics = append(resp.Topics, mt)
	}
	resp.Topics = append(resp.Topics, missing...)
	return resp
}

// autoCreate creates a topic with the broker defaults, as Kafka's
// auto.create.topics.enable does for Metadata and Produce.
func (b *Broker) autoCreate(name string) (*topic, error) {
	t, err := b.reg.create(name, b.cfg.DefaultPartitions, b.cfg.DefaultReplicationFactor, nil, nil, false)
	if errors.Is(err, kerr.TopicAlreadyExists) {
		return b.reg.get(name), nil
	}
	if err == nil {
		b.lg.Info().Str("topic", name).Msg("topic auto-created")
	}
	return t, err
}
