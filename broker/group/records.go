package group

import (
	"errors"
	"fmt"

	"github.com/twmb/franz-go/pkg/kbin"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluicemq/sluice/log/batch"
)

// The __consumer_offsets records use Kafka's own key and value schemas
// (kmsg's OffsetCommitKey/Value and GroupMetadataKey/Value), so tools that
// read that topic understand ours. A key's version says what it is: 0 and
// 1 are offset commits, 2 is group metadata. A null value is a tombstone.
const (
	offsetKeyVersion   = 1
	offsetValueVersion = 3 // v3 carries the committed leader epoch
	groupKeyVersion    = 2
	groupValueVersion  = 3 // v3 carries static members' instance ids
)

type topicPartition struct {
	topic     string
	partition int32
}

func offsetKey(group string, tp topicPartition) []byte {
	k := kmsg.OffsetCommitKey{Version: offsetKeyVersion, Group: group, Topic: tp.topic, Partition: tp.partition}
	return k.AppendTo(nil)
}

func offsetValue(o committed) []byte {
	v := kmsg.OffsetCommitValue{Version: offsetValueVersion, Offset: o.offset, LeaderEpoch: o.leaderEpoch, Metadata: o.metadata, CommitTimestamp: o.timestamp}
	return v.AppendTo(nil)
}

func groupKey(group string) []byte {
	k := kmsg.GroupMetadataKey{Version: groupKeyVersion, Group: group}
	return k.AppendTo(nil)
}

// groupValue is the group's membership after a rebalance: enough for a
// new coordinator to serve Sync and Heartbeat without a new rebalance.
func groupValue(g *group) []byte {
	v := kmsg.NewGroupMetadataValue()
	v.Version = groupValueVersion
	v.ProtocolType = g.protocolType
	v.Generation = g.generation
	if g.protocol != "" {
		p := g.protocol
		v.Protocol = &p
	}
	if g.leader != "" {
		l := g.leader
		v.Leader = &l
	}
	v.CurrentStateTimestamp = g.stateSince.UnixMilli()
	for _, id := range g.memberOrder() {
		m := g.members[id]
		vm := kmsg.NewGroupMetadataValueMember()
		vm.MemberID, vm.ClientID, vm.ClientHost = m.id, m.clientID, m.clientHost
		if m.instanceID != "" {
			inst := m.instanceID
			vm.InstanceID = &inst
		}
		vm.RebalanceTimeoutMillis = int32(m.rebalanceTimeout.Milliseconds())
		vm.SessionTimeoutMillis = int32(m.sessionTimeout.Milliseconds())
		vm.Subscription = m.metadata(g.protocol)
		vm.Assignment = m.assignment
		v.Members = append(v.Members, vm)
	}
	return v.AppendTo(nil)
}

// loadedRecord is one decoded __consumer_offsets record.
type loadedRecord struct {
	isGroup bool
	group   string
	tp      topicPartition
	offset  *kmsg.OffsetCommitValue  // nil: tombstone
	meta    *kmsg.GroupMetadataValue // nil: tombstone
}

var errUnknownRecord = errors.New("group: unknown __consumer_offsets record")

// decodeRecord decodes one record; records of unknown versions are
// errUnknownRecord (skipped by the loader, so newer formats don't stop it).
//
// Value versions above the ones this broker writes are refused before kmsg
// sees them: from v4 both values are flexible, and kmsg's tagged-field loop
// runs to its uvarint count even after the bytes run out, so a 100-byte
// value claiming 4 billion tags costs seconds of CPU (the fuzz test found it).
func decodeRecord(key, value []byte) (loadedRecord, error) {
	var r loadedRecord
	if len(key) < 2 {
		return r, fmt.Errorf("%w: key of %d bytes", errUnknownRecord, len(key))
	}
	if len(value) >= 2 {
		newest := int16(offsetValueVersion)
		if key[0] == 0 && key[1] == groupKeyVersion {
			newest = groupValueVersion
		}
		if ver := int16(value[0])<<8 | int16(value[1]); ver < 0 || ver > newest {
			return r, fmt.Errorf("%w: value version %d", errUnknownRecord, ver)
		}
	}
	rd := kbin.Reader{Src: key}
	switch ver := rd.Int16(); ver {
	case 0, 1:
		var k kmsg.OffsetCommitKey
		if err := k.ReadFrom(key); err != nil {
			return r, fmt.Errorf("group: offset key: %w", err)
		}
		r.group, r.tp = k.Group, topicPartition{k.Topic, k.Partition}
		if value != nil {
			var v kmsg.OffsetCommitValue
			if err := v.ReadFrom(value); err != nil {
				return r, fmt.Errorf("group: offset value: %w", err)
			}
			if v.Version < 3 {
				v.LeaderEpoch = -1
			}
			r.offset = &v
		}
	case 2:
		var k kmsg.GroupMetadataKey
		if err := k.ReadFrom(key); err != nil {
			return r, fmt.Errorf("group: group key: %w", err)
		}
		r.isGroup, r.group = true, k.Group
		if value != nil {
			var v kmsg.GroupMetadataValue
			if err := v.ReadFrom(value); err != nil {
				return r, fmt.Errorf("group: group value: %w", err)
			}
			r.meta = &v
		}
	default:
		return r, fmt.Errorf("%w: key version %d", errUnknownRecord, ver)
	}
	return r, nil
}

// kv is one record to append.
type kv struct{ key, value []byte }

// buildBatch encodes records as one uncompressed batch stamped now.
func buildBatch(recs []kv, nowMs int64) ([]byte, error) {
	out := make([]batch.Record, len(recs))
	for i, r := range recs {
		out[i] = batch.Record{Key: r.key, Value: r.value}
	}
	return batch.Build(out, batch.BuildOptions{BaseTimestamp: nowMs})
}
