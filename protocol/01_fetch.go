package protocol

import "github.com/twmb/franz-go/pkg/kmsg"

// Fetch (key 1). Sluice accepts v4-v16: v4 is the first version whose
// responses carry RecordBatch v2 (and isolation level); v12 is the first
// flexible version; v13 replaces topic names with topic ids.
//
// Flexible versions have tagged fields kmsg decodes itself: cluster_id
// (tag 0) and replica_state (tag 1) at the top level, replica_directory_id
// (tag 0) and high_watermark (tag 1) in each partition. kmsg decodes them at
// every flexible version, so the walker does too.
var fetchRequest = &apiSchema{
	key: 1, flexibleFrom: 12, maxVersion: 18,
	body: structOf[kmsg.FetchRequest](
		int32F("replica_id").until(14),
		int32F("max_wait_ms"),
		int32F("min_bytes"),
		int32F("max_bytes").since(3),
		int8F("isolation_level").since(4),
		int32F("session_id").since(7),
		int32F("session_epoch").since(7),
		arrayF("topics", structOf[kmsg.FetchRequestTopic](
			stringF("topic").until(12),
			uuidF("topic_id").since(13),
			arrayF("partitions", structOf[kmsg.FetchRequestTopicPartition](
				int32F("partition"),
				int32F("current_leader_epoch").since(9),
				int64F("fetch_offset"),
				int32F("last_fetched_epoch").since(12),
				int64F("log_start_offset").since(5),
				int32F("partition_max_bytes"),
			).withTags(
				knownTag{0, uuidF("replica_directory_id")},
				knownTag{1, int64F("high_watermark")},
			)),
		)),
		arrayF("forgotten_topics_data", structOf[kmsg.FetchRequestForgottenTopic](
			stringF("topic").until(12),
			uuidF("topic_id").since(13),
			int32sF("partitions"),
		)).since(7),
		stringF("rack_id").since(11),
	).withTags(
		knownTag{0, nullStringF("cluster_id")},
		knownTag{1, structF("replica_state", structOf[kmsg.FetchRequestReplicaState](
			int32F("replica_id"),
			int64F("replica_epoch"),
		))},
	),
}
