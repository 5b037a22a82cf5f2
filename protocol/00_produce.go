package protocol

import "github.com/twmb/franz-go/pkg/kmsg"

const produceKey = 0

// Produce (key 0). Sluice accepts v3-v11: v3 is the first version whose
// records are RecordBatch v2 only; v9 is the first flexible version; v13
// replaces the topic name with a topic id (described here for completeness).
//
// The records of each partition are opaque bytes that kmsg aliases into the
// frame, which is why Produce alone may use the large frame limit.
var produceRequest = &apiSchema{
	key: produceKey, flexibleFrom: 9, maxVersion: 13,
	body: structOf[kmsg.ProduceRequest](
		nullStringF("transactional_id").since(3),
		int16F("acks"),
		int32F("timeout_ms"),
		arrayF("topics", structOf[kmsg.ProduceRequestTopic](
			stringF("name").until(12),
			uuidF("topic_id").since(13),
			arrayF("partitions", structOf[kmsg.ProduceRequestTopicPartition](
				int32F("index"),
				nullBytesF("records"),
			)),
		)),
	),
}
