package protocol

import "github.com/twmb/franz-go/pkg/kmsg"

// DeleteRecords (key 21). Sluice accepts v0-v2; v2 is flexible.
var deleteRecordsRequest = &apiSchema{
	key: 21, flexibleFrom: 2, maxVersion: 2,
	body: structOf[kmsg.DeleteRecordsRequest](
		arrayF("topics", structOf[kmsg.DeleteRecordsRequestTopic](
			stringF("name"),
			arrayF("partitions", structOf[kmsg.DeleteRecordsRequestTopicPartition](
				int32F("partition_index"),
				int64F("offset"),
			)),
		)),
		int32F("timeout_ms"),
	),
}
