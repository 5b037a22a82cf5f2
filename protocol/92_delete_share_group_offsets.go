package protocol

import "github.com/twmb/franz-go/pkg/kmsg"

// DeleteShareGroupOffsets (key 92, KIP-932): drop an empty group's state
// on whole topics. v0 only, flexible; the topics array is not nullable.
var deleteShareGroupOffsetsRequest = &apiSchema{
	key: 92, flexibleFrom: 0, maxVersion: 0,
	body: structOf[kmsg.DeleteShareGroupOffsetsRequest](
		stringF("group_id"),
		arrayF("topics", structOf[kmsg.DeleteShareGroupOffsetsRequestTopic](
			stringF("topic_name"),
		)),
	),
}
