package protocol

import "github.com/twmb/franz-go/pkg/kmsg"

// ShareAcknowledge (key 79, KIP-932). Sluice accepts v1 only (v0 was Kafka
// 4.0's early access, with the same request layout). Every version is
// flexible. v2 (Kafka 4.2) adds the renew flag (KIP-1222); the schema
// describes it, so accepting it is a change to Supported only.
//
// The layout is ShareFetch's without the fetch parameters and forgotten
// topics: nullable group and member ids, the session epoch, then
// non-nullable topics, partitions and acknowledgement batches, each batch
// with an int8 array of acknowledge types.
var shareAcknowledgeRequest = &apiSchema{
	key: 79, flexibleFrom: 0, maxVersion: 2,
	body: structOf[kmsg.ShareAcknowledgeRequest](
		nullStringF("group_id"),
		nullStringF("member_id"),
		int32F("share_session_epoch"),
		boolF("is_renew_ack").since(2),
		arrayF("topics", structOf[kmsg.ShareAcknowledgeRequestTopic](
			uuidF("topic_id"),
			arrayF("partitions", structOf[kmsg.ShareAcknowledgeRequestTopicPartition](
				int32F("partition_index"),
				arrayF("acknowledgement_batches", structOf[kmsg.ShareAcknowledgeRequestTopicPartitionAcknowledgementBatch](
					int64F("first_offset"),
					int64F("last_offset"),
					int8sF("acknowledge_types"),
				)),
			)),
		)),
	),
}
