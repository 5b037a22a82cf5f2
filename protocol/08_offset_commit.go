package protocol

import "github.com/twmb/franz-go/pkg/kmsg"

// OffsetCommit (key 8). Sluice accepts v2-v9: v0 and v1 are the versions
// Kafka 4.0 removed (KIP-896), and v10 replaces the topic name with a topic
// id (KIP-848), which the group coordinator does not resolve yet (the
// schema describes it, so accepting it is a change to Supported only). The
// retention time exists only in v2-v4; v8 is the first flexible version.
var offsetCommitRequest = &apiSchema{
	key: 8, flexibleFrom: 8, maxVersion: 10,
	body: structOf[kmsg.OffsetCommitRequest](
		stringF("group_id"),
		int32F("generation_id_or_member_epoch").since(1),
		stringF("member_id").since(1),
		nullStringF("group_instance_id").since(7),
		int64F("retention_time_ms").since(2).until(4),
		arrayF("topics", structOf[kmsg.OffsetCommitRequestTopic](
			stringF("name").until(9),
			uuidF("topic_id").since(10),
			arrayF("partitions", structOf[kmsg.OffsetCommitRequestTopicPartition](
				int32F("partition_index"),
				int64F("committed_offset"),
				int64F("commit_timestamp").since(1).until(1),
				int32F("committed_leader_epoch").since(6),
				nullStringF("committed_metadata"),
			)),
		)),
	),
}
