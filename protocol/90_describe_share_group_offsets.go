package protocol

import "github.com/twmb/franz-go/pkg/kmsg"

// DescribeShareGroupOffsets (key 90, KIP-932): each share-partition's
// start offset (SPSO). Every version is flexible; v1 (Kafka 4.2, KIP-1226)
// adds lag to the response only, so both versions share the request
// layout. A group's topics may be null (every topic the group has state
// for); a topic's partitions may not.
var describeShareGroupOffsetsRequest = &apiSchema{
	key: 90, flexibleFrom: 0, maxVersion: 1,
	body: structOf[kmsg.DescribeShareGroupOffsetsRequest](
		arrayF("groups", structOf[kmsg.DescribeShareGroupOffsetsRequestGroup](
			stringF("group_id"),
			arrayF("topics", structOf[kmsg.DescribeShareGroupOffsetsRequestGroupTopic](
				stringF("topic_name"),
				int32sF("partitions"),
			)).nullableSince(0),
		)),
	),
}
