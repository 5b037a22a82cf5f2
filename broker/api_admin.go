package broker

import (
	"sort"
	"strconv"
	"strings"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluicemq/sluice/broker/controller"
)

// createTopics creates topics through the controller. Like Kafka, only
// the controller leader takes the request; other brokers answer
// NOT_CONTROLLER, so clients refresh metadata and send it there.
func (b *Broker) createTopics(r *kmsg.CreateTopicsRequest) kmsg.Response {
	resp := r.ResponseKind().(*kmsg.CreateTopicsResponse)
	seen := map[string]int{}
	for _, rt := range r.Topics {
		seen[rt.Topic]++
	}
	leader := b.ctrl.IsLeader()
	for _, rt := range r.Topics {
		st := kmsg.NewCreateTopicsResponseTopic()
		st.Topic = rt.Topic
		var t *topic
		var err error
		if !leader {
			err = kerr.NotController
		} else {
			t, err = b.createOne(rt, seen[rt.Topic] > 1, r.ValidateOnly)
		}
		st.ErrorCode, st.ErrorMessage = code(err), message(err)
		if err == nil {
			st.TopicID = t.id
			st.NumPartitions = max(rt.NumPartitions, int32(len(rt.ReplicaAssignment)))
			if st.NumPartitions <= 0 {
				st.NumPartitions = b.cfg.DefaultPartitions
			}
			st.ReplicationFactor = rt.ReplicationFactor
			if len(rt.ReplicaAssignment) > 0 {
				st.ReplicationFactor = int16(len(rt.ReplicaAssignment[0].Replicas))
			} else if st.ReplicationFactor <= 0 {
				st.ReplicationFactor = b.cfg.DefaultReplicationFactor
			}
			for _, name := range sortedKeys(effectiveConfigs(b.reg.defaults, t.overrides)) {
				c := kmsg.NewCreateTopicsResponseTopicConfig()
				v := effectiveConfigs(b.reg.defaults, t.overrides)[name]
				c.Name, c.Value, c.Source = name, &v, int8(configSource(t.overrides, name))
				st.Configs = append(st.Configs, c)
			}
		}
		resp.Topics = append(resp.Topics, st)
	}
	return resp
}

func (b *Broker) createOne(rt kmsg.CreateTopicsRequestTopic, duplicate, validateOnly bool) (*topic, error) {
	if duplicate {
		return nil, terr(kerr.InvalidRequest, "topic %q appears more than once in the request", rt.Topic)
	}
	n, rf := rt.NumPartitions, rt.ReplicationFactor
	var assignments [][]int32
	if len(rt.ReplicaAssignment) > 0 {
		if n != -1 || rf != -1 {
			return nil, terr(kerr.InvalidRequest, "give either a replica assignment or partition count and replication factor")
		}
		if len(rt.ReplicaAssignment) > controller.MaxPartitions {
			return nil, terr(kerr.InvalidPartitions, "%d partitions; the limit is %d", len(rt.ReplicaAssignment), controller.MaxPartitions)
		}
		assignments = make([][]int32, len(rt.ReplicaAssignment))
		for _, a := range rt.ReplicaAssignment {
			// As Kafka: the assigned partitions are 0 to n-1, each once.
			if a.Partition < 0 || int(a.Partition) >= len(assignments) || assignments[a.Partition] != nil {
				return nil, terr(kerr.InvalidReplicaAssignment, "partition %d: the %d assigned partitions must be numbered 0 to %d, each once", a.Partition, len(assignments), len(assignments)-1)
			}
			if len(a.Replicas) == 0 {
				return nil, terr(kerr.InvalidReplicaAssignment, "partition %d has no replicas", a.Partition)
			}
			assignments[a.Partition] = a.Replicas
		}
		n = int32(len(rt.ReplicaAssignment))
	}
	if n == -1 {
		n = b.cfg.DefaultPartitions
	}
	if rf == -1 {
		rf = b.cfg.DefaultReplicationFactor
	}
	cfgs := map[string]string{}
	for _, c := range rt.Configs {
		if c.Value == nil {
			return nil, terr(kerr.InvalidConfig, "topic config %s has a null value", c.Name)
		}
		cfgs[c.Name] = *c.Value
	}
	return b.reg.create(rt.Topic, n, rf, assignments, cfgs, validateOnly)
}

func sortedKeys(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func configSource(overrides map[string]string, name string) kmsg.ConfigSource {
	if _, ok := overrides[name]; ok {
		return kmsg.ConfigSourceDynamicTopicConfig
	}
	return kmsg.ConfigSourceDefaultConfig
}

func (b *Broker) deleteTopics(r *kmsg.DeleteTopicsRequest) kmsg.Response {
	resp := r.ResponseKind().(*kmsg.DeleteTopicsResponse)
	reqs := r.Topics
	for _, name := range r.TopicNames { // v0-v5
		n := name
		reqs = append(reqs, kmsg.DeleteTopicsRequestTopic{Topic: &n})
	}
	for _, rt := range reqs {
		st := kmsg.NewDeleteTopicsResponseTopic()
		st.Topic, st.TopicID = rt.Topic, rt.TopicID
		var t *topic
		if rt.Topic != nil {
			t = b.reg.get(*rt.Topic)
		} else {
			t = b.reg.getByID(rt.TopicID)
		}
		var err error
		switch {
		case !b.ctrl.IsLeader():
			err = kerr.NotController
		case t == nil && rt.Topic == nil:
			err = kerr.UnknownTopicID
		case t == nil:
			err = kerr.UnknownTopicOrPartition
		case isInternal(t.name):
			err = terr(kerr.InvalidTopicException, "%s is internal: deleting it would lose every group's offsets", t.name)
		default:
			name := t.name
			st.Topic, st.TopicID = &name, t.id
			err = b.reg.delete(t)
			if err == nil {
				b.metrics.ForgetTopic(name)
			}
		}
		st.ErrorCode, st.ErrorMessage = code(err), message(err)
		resp.Topics = append(resp.Topics, st)
	}
	return resp
}

func (b *Broker) createPartitions(r *kmsg.CreatePartitionsRequest) kmsg.Response {
	resp := r.ResponseKind().(*kmsg.CreatePartitionsResponse)
	for _, rt := range r.Topics {
		st := kmsg.NewCreatePartitionsResponseTopic()
		st.Topic = rt.Topic
		var err error
		if t := b.reg.get(rt.Topic); !b.ctrl.IsLeader() {
			err = kerr.NotController
		} else if t == nil {
			err = kerr.UnknownTopicOrPartition
		} else if isInternal(t.name) {
			err = terr(kerr.InvalidTopicException, "%s is internal: more partitions would move groups away from their offsets", t.name)
		} else {
			err = b.reg.addPartitions(t, rt.Count, r.ValidateOnly)
		}
		st.ErrorCode, st.ErrorMessage = code(err), message(err)
		resp.Topics = append(resp.Topics, st)
	}
	return resp
}

// brokerConfigs are the broker-level settings DescribeConfigs reports for
// the broker resource, under Kafka's names; they are static (read-only).
func (b *Broker) brokerConfigs() map[string]string {
	d := b.reg.defaults
	return map[string]string{
		"auto.create.topics.enable":  strconv.FormatBool(b.cfg.AutoCreateTopics),
		"default.replication.factor": strconv.Itoa(int(b.cfg.DefaultReplicationFactor)),
		"log.cleanup.policy":         d["cleanup.policy"],
		"log.message.timestamp.type": d["message.timestamp.type"],
		"log.retention.bytes":        d["retention.bytes"],
		"log.retention.ms":           d["retention.ms"],
		"log.roll.ms":                d["segment.ms"],
		"log.segment.bytes":          d["segment.bytes"],
		"message.max.bytes":          d["max.message.bytes"],
		"num.partitions":             strconv.Itoa(int(b.cfg.DefaultPartitions)),
		"socket.request.max.bytes":   strconv.Itoa(int(b.cfg.MaxRequestBytes)),
	}
}

func (b *Broker) describeConfigs(r *kmsg.DescribeConfigsRequest) kmsg.Response {
	resp := r.ResponseKind().(*kmsg.DescribeConfigsResponse)
	for _, rr := range r.Resources {
		sr := kmsg.NewDescribeConfigsResponseResource()
		sr.ResourceType, sr.ResourceName = rr.ResourceType, rr.ResourceName
		var values map[string]string
		var overrides map[string]string
		readOnly := false
		switch rr.ResourceType {
		case kmsg.ConfigResourceTypeTopic:
			t := b.reg.get(rr.ResourceName)
			if t == nil {
				sr.ErrorCode = kerr.UnknownTopicOrPartition.Code
				if validTopicName(rr.ResourceName) != nil {
					sr.ErrorCode = kerr.InvalidTopicException.Code // as Kafka; 3 would be retried
				}
				resp.Resources = append(resp.Resources, sr)
				continue
			}
			overrides = t.overrides
			values = effectiveConfigs(b.reg.defaults, overrides)
		case kmsg.ConfigResourceTypeGroupConfig:
			if rr.ResourceName == "" {
				sr.ErrorCode = kerr.InvalidGroupID.Code
				resp.Resources = append(resp.Resources, sr)
				continue
			}
			values, overrides = b.groupConfigs(rr.ResourceName)
		case kmsg.ConfigResourceTypeBroker:
			if rr.ResourceName != "" && rr.ResourceName != strconv.Itoa(int(b.cfg.NodeID)) {
				sr.ErrorCode = kerr.InvalidRequest.Code
				msg := "unknown broker " + rr.ResourceName
				sr.ErrorMessage = &msg
				resp.Resources = append(resp.Resources, sr)
				continue
			}
			values, readOnly = b.brokerConfigs(), true
		default:
			sr.ErrorCode = kerr.InvalidRequest.Code
			msg := "only topic, broker and group configs are supported"
			sr.ErrorMessage = &msg
			resp.Resources = append(resp.Resources, sr)
			continue
		}
		names := rr.ConfigNames
		if names == nil {
			names = sortedKeys(values)
		}
		for _, name := range names {
			v, ok := values[name]
			if !ok {
				continue // Kafka omits unknown names
			}
			c := kmsg.NewDescribeConfigsResponseResourceConfig()
			c.Name, c.Value, c.ReadOnly = name, &v, readOnly
			c.Source = kmsg.ConfigSourceStaticBrokerConfig
			if !readOnly {
				c.Source = configSource(overrides, name)
			}
			if _, ok := overrides[name]; ok && rr.ResourceType == kmsg.ConfigResourceTypeGroupConfig {
				c.Source = kmsg.ConfigSourceGroupConfig
			}
			c.IsDefault = c.Source == kmsg.ConfigSourceDefaultConfig
			c.ConfigType = configType(name)
			def, ok := findTopicConfig(name)
			if rr.ResourceType == kmsg.ConfigResourceTypeGroupConfig {
				def, ok = findGroupConfig(name)
			}
			if ok && r.IncludeDocumentation {
				doc := def.doc
				c.Documentation = &doc
			}
			sr.Configs = append(sr.Configs, c)
		}
		resp.Resources = append(resp.Resources, sr)
	}
	return resp
}

func configType(name string) kmsg.ConfigType {
	switch {
	case name == "cleanup.policy" || name == "log.cleanup.policy":
		return kmsg.ConfigTypeList
	case strings.HasSuffix(name, ".type"):
		return kmsg.ConfigTypeString
	case strings.HasSuffix(name, ".enable"):
		return kmsg.ConfigTypeBoolean
	case name == "max.message.bytes" || name == "segment.bytes" || name == "num.partitions" || name == "message.max.bytes":
		return kmsg.ConfigTypeInt
	case name == "min.cleanable.dirty.ratio", name == "share.retry.backoff.multiplier":
		return kmsg.ConfigTypeDouble
	case name == "share.key.ordering":
		return kmsg.ConfigTypeBoolean
	case name == "share.auto.offset.reset", name == "share.dead.letter.topic", name == "share.delay.header":
		return kmsg.ConfigTypeString
	case name == "share.record.lock.duration.ms", name == "share.delivery.count.limit", name == "share.partition.max.record.locks":
		return kmsg.ConfigTypeInt
	}
	return kmsg.ConfigTypeLong
}

func (b *Broker) incrementalAlterConfigs(r *kmsg.IncrementalAlterConfigsRequest) kmsg.Response {
	resp := r.ResponseKind().(*kmsg.IncrementalAlterConfigsResponse)
	for _, rr := range r.Resources {
		sr := kmsg.NewIncrementalAlterConfigsResponseResource()
		sr.ResourceType, sr.ResourceName = rr.ResourceType, rr.ResourceName
		err := b.alterTopicConfigs(rr, r.ValidateOnly)
		sr.ErrorCode, sr.ErrorMessage = code(err), message(err)
		resp.Resources = append(resp.Resources, sr)
	}
	return resp
}

func (b *Broker) alterTopicConfigs(rr kmsg.IncrementalAlterConfigsRequestResource, validateOnly bool) error {
	switch rr.ResourceType {
	case kmsg.ConfigResourceTypeTopic:
	case kmsg.ConfigResourceTypeGroupConfig:
		return b.alterGroupConfigs(rr, validateOnly)
	case kmsg.ConfigResourceTypeBroker:
		return terr(kerr.InvalidRequest, "broker configs are static: set them in sluiced's flags, environment or config file")
	default:
		return terr(kerr.InvalidRequest, "only topic and group configs can be altered")
	}
	t := b.reg.get(rr.ResourceName)
	if t == nil {
		if err := validTopicName(rr.ResourceName); err != nil {
			return terr(kerr.InvalidTopicException, "%v", err) // as Kafka; 3 would be retried
		}
		return kerr.UnknownTopicOrPartition
	}
	next := map[string]string{}
	for k, v := range t.overrides {
		next[k] = v
	}
	for _, c := range rr.Configs {
		if _, ok := findTopicConfig(c.Name); !ok {
			return terr(kerr.InvalidConfig, "unknown topic config %q", c.Name)
		}
		switch c.Op {
		case kmsg.IncrementalAlterConfigOpSet:
			if c.Value == nil {
				return terr(kerr.InvalidConfig, "SET %s without a value", c.Name)
			}
			next[c.Name] = *c.Value
		case kmsg.IncrementalAlterConfigOpDelete:
			delete(next, c.Name)
		case kmsg.IncrementalAlterConfigOpAppend, kmsg.IncrementalAlterConfigOpSubtract:
			if configType(c.Name) != kmsg.ConfigTypeList || c.Value == nil {
				return terr(kerr.InvalidConfig, "APPEND and SUBTRACT apply to list configs only, not %s", c.Name)
			}
			next[c.Name] = editList(effectiveConfigs(b.reg.defaults, next)[c.Name], *c.Value, c.Op == kmsg.IncrementalAlterConfigOpAppend)
		default:
			return terr(kerr.InvalidRequest, "unknown config operation %d", c.Op)
		}
	}
	return b.reg.setOverrides(t, next, validateOnly)
}

// editList appends or removes the comma-separated items of v from list.
func editList(list, v string, add bool) string {
	var items []string
	if list != "" {
		items = strings.Split(list, ",")
	}
	for _, x := range strings.Split(v, ",") {
		has := false
		for _, y := range items {
			has = has || y == x
		}
		switch {
		case add && !has:
			items = append(items, x)
		case !add && has:
			out := items[:0]
			for _, y := range items {
				if y != x {
					out = append(out, y)
				}
			}
			items = out
		}
	}
	return strings.Join(items, ",")
}

func (b *Broker) deleteRecords(r *kmsg.DeleteRecordsRequest) kmsg.Response {
	resp := r.ResponseKind().(*kmsg.DeleteRecordsResponse)
	for _, rt := range r.Topics {
		st := kmsg.NewDeleteRecordsResponseTopic()
		st.Topic = rt.Topic
		t := b.reg.get(rt.Topic)
		for _, rp := range rt.Partitions {
			sp := kmsg.NewDeleteRecordsResponseTopicPartition()
			sp.Partition, sp.LowWatermark = rp.Partition, -1
			if p := t.partition(rp.Partition); isInternal(rt.Topic) && t != nil {
				sp.ErrorCode = kerr.InvalidTopicException.Code // offsets would be lost
			} else if p == nil {
				sp.ErrorCode = t.partitionError(rp.Partition).Code
			} else if lw, err := p.DeleteRecords(rp.Offset); err != nil {
				sp.ErrorCode = code(err)
			} else {
				sp.LowWatermark = lw
			}
			st.Partitions = append(st.Partitions, sp)
		}
		resp.Topics = append(resp.Topics, st)
	}
	return resp
}
