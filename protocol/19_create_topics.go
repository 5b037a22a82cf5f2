package protocol

import "github.com/twmb/franz-go/pkg/kmsg"

// CreateTopics (key 19). Sluice accepts v2-v7; v5 is the first flexible
// version.
var createTopicsRequest = &apiSchema{
	key: 19, flexibleFrom: 5, maxVersion: 7,
	body: structOf[kmsg.CreateTopicsRequest](
		arrayF("topics", structOf[kmsg.CreateTopicsRequestTopic](
			stringF("name"),
			int32F("num_partitions"),
			int16F("replication_factor"),
			arrayF("assignments", structOf[kmsg.CreateTopicsRequestTopicReplicaAssignment](
				int32F("partition_index"),
				int32sF("broker_ids"),
			)),
			arrayF("configs", structOf[kmsg.CreateTopicsRequestTopicConfig](
				stringF("name"),
				nullStringF("value"),
			)),
		)),
		int32F("timeout_ms"),
		boolF("validate_only").since(1),
	),
}
