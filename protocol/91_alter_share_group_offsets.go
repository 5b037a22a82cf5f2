package protocol

import "github.com/twmb/franz-go/pkg/kmsg"

// AlterShareGroupOffsets (key 91, KIP-932): set share-partitions' start
// offsets while the group is empty. v0 only, flexible; no array is
// nullable.
var alterShareGroupOffsetsRequest = &apiSchema{
	key: 91, flexibleFrom: 0, maxVersion: 0,
	body: structOf[kmsg.AlterShareGroupOffsetsRequest](
		stringF("group_id"),
		arrayF("topics", structOf[kmsg.AlterShareGroupOffsetsRequestTopic](
			stringF("topic_name"),
			arrayF("partitions", structOf[kmsg.AlterShareGroupOffsetsRequestTopicPartition](
				int32F("partition_index"),
				int64F("start_offset"),
			)),
		)),
	),
}
