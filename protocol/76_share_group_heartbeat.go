package protocol

import "github.com/twmb/franz-go/pkg/kmsg"

// ShareGroupHeartbeat (key 76, KIP-932). Sluice accepts v1 only: v0 was
// Kafka 4.0's early access and was removed in 4.1, which ships v1 alone.
// Every version is flexible and v0 and v1 have the same request layout.
// The rack id is null when not provided or unchanged since the last
// heartbeat; the subscribed topic names are null when unchanged (an empty
// list unsubscribes from everything), so the array is nullable in every
// version. The group and member ids are non-nullable strings.
var shareGroupHeartbeatRequest = &apiSchema{
	key: 76, flexibleFrom: 0, maxVersion: 1,
	body: structOf[kmsg.ShareGroupHeartbeatRequest](
		stringF("group_id"),
		stringF("member_id"),
		int32F("member_epoch"),
		nullStringF("rack_id"),
		stringsF("subscribed_topic_names").nullableSince(0),
	),
}
