package broker

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluicemq/sluice/broker/controller"
)

// groupConfigDefs are the configs of Kafka's GROUP resource Sluice
// understands: KIP-932's share-group settings, and Sluice's extensions for
// queues (retry backoff, dead-letter topic, per-key ordering, delayed
// delivery). They live in the controller's state, set through
// IncrementalAlterConfigs on resource type GROUP (32).
var groupConfigDefs = []topicConfigDef{
	{"share.auto.offset.reset", "Where a share group starts on a partition it has not consumed: latest (records produced from then on) or earliest (the log start).", oneOf("latest", "earliest"), "latest"},
	{"share.record.lock.duration.ms", "How long a delivered record stays acquired by its consumer before it is delivered again (the acquisition lock).", longRange(1000, 3600000), "30000"},
	{"share.delivery.count.limit", "Deliveries after which a record that is released or times out is archived (and dead-lettered when share.dead.letter.topic is set).", longRange(2, 100), "5"},
	{"share.partition.max.record.locks", "Most records in flight (acquired or waiting for redelivery) per share-partition; when full, fetches return nothing until some are acknowledged.", longRange(100, 10000), "2000"},
	{"share.retry.backoff.ms", "Sluice: a released or timed-out record is redelivered only after this delay, multiplied by share.retry.backoff.multiplier per earlier delivery; 0 redelivers at once.", longRange(0, 86400000), "0"},
	{"share.retry.backoff.multiplier", "Sluice: growth of the retry backoff per delivery.", doubleRange(1, 100), "2"},
	{"share.retry.backoff.max.ms", "Sluice: the largest retry backoff.", longRange(0, 7*86400000), "600000"},
	{"share.dead.letter.topic", "Sluice: topic that receives records archived by REJECT or the delivery limit, with headers naming the source topic, partition, offset, delivery count, group and reason; empty for none.", anyTopicName, ""},
	{"share.key.ordering", "Sluice: deliver at most one record per key at a time, in offset order, so workers scale past the partition count and each key stays in order.", oneOf("true", "false"), "false"},
	{"share.delay.header", "Sluice: record header holding a not-before time (Unix milliseconds, decimal) before which share groups do not deliver the record; empty turns delayed delivery off.", anyString, "sluice.not-before"},
}

func anyString(v string) (string, error) { return v, nil }

func anyTopicName(v string) (string, error) {
	if v == "" {
		return v, nil
	}
	if err := validTopicName(v); err != nil {
		return "", err
	}
	return v, nil
}

func findGroupConfig(name string) (topicConfigDef, bool) {
	for _, d := range groupConfigDefs {
		if d.name == name {
			return d, true
		}
	}
	return topicConfigDef{}, false
}

// groupConfigs are a group's effective configs: its overrides over the
// defaults.
func (b *Broker) groupConfigs(group string) (values, overrides map[string]string) {
	overrides = b.ctrl.State().GroupConfigs[group]
	values = map[string]string{}
	for _, d := range groupConfigDefs {
		values[d.name] = d.def
	}
	for k, v := range overrides {
		values[k] = v
	}
	return values, overrides
}

// alterGroupConfigs applies IncrementalAlterConfigs to a GROUP resource.
func (b *Broker) alterGroupConfigs(rr kmsg.IncrementalAlterConfigsRequestResource, validateOnly bool) error {
	if rr.ResourceName == "" {
		return terr(kerr.InvalidGroupID, "empty group id")
	}
	_, cur := b.groupConfigs(rr.ResourceName)
	next := map[string]string{}
	for k, v := range cur {
		next[k] = v
	}
	for _, c := range rr.Configs {
		def, ok := findGroupConfig(c.Name)
		if !ok {
			return terr(kerr.InvalidConfig, "unknown group config %q", c.Name)
		}
		switch c.Op {
		case kmsg.IncrementalAlterConfigOpSet:
			if c.Value == nil {
				return terr(kerr.InvalidConfig, "SET %s without a value", c.Name)
			}
			v, err := def.check(*c.Value)
			if err != nil {
				return terr(kerr.InvalidConfig, "%s: %v", c.Name, err)
			}
			next[c.Name] = v
		case kmsg.IncrementalAlterConfigOpDelete:
			delete(next, c.Name)
		default:
			return terr(kerr.InvalidConfig, "%s is not a list: only SET and DELETE apply", c.Name)
		}
	}
	if validateOnly {
		return nil
	}
	_, err := b.reg.propose(controller.Command{Op: controller.OpSetGroupConfigs, Group: rr.ResourceName, Configs: next})
	return err
}
