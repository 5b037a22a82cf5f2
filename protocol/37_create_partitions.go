package protocol

import "github.com/twmb/franz-go/pkg/kmsg"

// CreatePartitions (key 37). Sluice accepts v0-v3; v2 is the first flexible
// version. A null assignments array lets the broker place the new
// partitions.
var createPartitionsRequest = &apiSchema{
	key: 37, flexibleFrom: 2, maxVersion: 3,
	body: structOf[kmsg.CreatePartitionsRequest](
		arrayF("topics", structOf[kmsg.CreatePartitionsRequestTopic](
			stringF("name"),
			int32F("count"),
			arrayF("assignments", structOf[kmsg.CreatePartitionsRequestTopicAssignment](
				int32sF("broker_ids"),
			)).nullableSince(0),
		)),
		int32F("timeout_ms"),
		boolF("validate_only"),
	),
}
