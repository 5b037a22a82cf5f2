package protocol

import "github.com/twmb/franz-go/pkg/kmsg"

// ShareFetch (key 78, KIP-932). Sluice accepts v1 only. Every version is
// flexible. v0, Kafka 4.0's early access, differs on the wire: it has a
// per-partition max bytes and lacks the max records and batch size; v1 is
// what Kafka 4.1 ships. v2 (Kafka 4.2) adds the share acquire mode
// (KIP-1206) and the renew flag (KIP-1222); the schema describes it, so
// accepting it is a change to Supported only.
//
// The group and member ids are nullable strings (kmsg stores them behind
// pointers); every array is non-nullable. Each acknowledgement batch
// carries an array of int8 acknowledge types: one type for the whole range,
// or one per offset.
var shareFetchRequest = &apiSchema{
	key: 78, flexibleFrom: 0, maxVersion: 2,
	body: structOf[kmsg.ShareFetchRequest](
		nullStringF("group_id"),
		nullStringF("member_id"),
		int32F("share_session_epoch"),
		int32F("max_wait_ms"),
		int32F("min_bytes"),
		int32F("max_bytes"),
		int32F("max_records").since(1),
		int32F("batch_size").since(1),
		int8F("share_acquire_mode").since(2),
		boolF("is_renew_ack").since(2),
		arrayF("topics", structOf[kmsg.ShareFetchRequestTopic](
			uuidF("topic_id"),
			arrayF("partitions", structOf[kmsg.ShareFetchRequestTopicPartition](
				int32F("partition_index"),
				int32F("partition_max_bytes").until(0),
				arrayF("acknowledgement_batches", structOf[kmsg.ShareFetchRequestTopicPartitionAcknowledgementBatch](
					int64F("first_offset"),
					int64F("last_offset"),
					int8sF("acknowledge_types"),
				)),
			)),
		)),
		arrayF("forgotten_topics_data", structOf[kmsg.ShareFetchRequestForgottenTopicsData](
			uuidF("topic_id"),
			int32sF("partitions"),
		)),
	),
}
