package protocol

import "github.com/twmb/franz-go/pkg/kmsg"

// OffsetFetch (key 9). Sluice accepts v1-v9: Kafka 4.0 removed v0, which
// read offsets from ZooKeeper, and v10 replaces topic names with topic ids
// (KIP-848), which the group coordinator does not resolve yet (described
// here all the same). A null topics array (v2+) asks for every topic the
// group has offsets for. v6 is the first flexible version; v8 replaces the
// single group with a groups array; v9 adds the member id and epoch of the
// consumer protocol (KIP-848).
var offsetFetchRequest = &apiSchema{
	key: 9, flexibleFrom: 6, maxVersion: 10,
	body: structOf[kmsg.OffsetFetchRequest](
		stringF("group_id").until(7),
		arrayF("topics", structOf[kmsg.OffsetFetchRequestTopic](
			stringF("name"),
			int32sF("partition_indexes"),
		)).until(7).nullableSince(2),
		arrayF("groups", structOf[kmsg.OffsetFetchRequestGroup](
			stringF("group_id"),
			nullStringF("member_id").since(9),
			int32F("member_epoch").since(9),
			arrayF("topics", structOf[kmsg.OffsetFetchRequestGroupTopic](
				stringF("name").until(9),
				uuidF("topic_id").since(10),
				int32sF("partition_indexes"),
			)).nullableSince(8),
		)).since(8),
		boolF("require_stable").since(7),
	),
}
