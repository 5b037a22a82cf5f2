package protocol

import "github.com/twmb/franz-go/pkg/kmsg"

// ListOffsets (key 2). Sluice accepts v1-v8: v0 returned a list of offsets
// per partition (max_num_offsets), which Kafka itself dropped; v6 is the
// first flexible version.
var listOffsetsRequest = &apiSchema{
	key: 2, flexibleFrom: 6, maxVersion: 11,
	body: structOf[kmsg.ListOffsetsRequest](
		int32F("replica_id"),
		int8F("isolation_level").since(2),
		arrayF("topics", structOf[kmsg.ListOffsetsRequestTopic](
			stringF("name"),
			arrayF("partitions", structOf[kmsg.ListOffsetsRequestTopicPartition](
				int32F("partition_index"),
				int32F("current_leader_epoch").since(4),
				int64F("timestamp"),
				int32F("max_num_offsets").until(0),
			)),
		)),
		int32F("timeout_ms").since(10),
	),
}
