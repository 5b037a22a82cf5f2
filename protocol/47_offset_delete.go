package protocol

import "github.com/twmb/franz-go/pkg/kmsg"

// OffsetDelete (key 47). Sluice accepts v0, its only version, which is not
// flexible.
var offsetDeleteRequest = &apiSchema{
	key: 47, flexibleFrom: neverFlexible, maxVersion: 0,
	body: structOf[kmsg.OffsetDeleteRequest](
		stringF("group_id"),
		arrayF("topics", structOf[kmsg.OffsetDeleteRequestTopic](
			stringF("name"),
			arrayF("partitions", structOf[kmsg.OffsetDeleteRequestTopicPartition](
				int32F("partition_index"),
			)),
		)),
	),
}
