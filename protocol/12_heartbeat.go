package protocol

import "github.com/twmb/franz-go/pkg/kmsg"

// Heartbeat (key 12). Sluice accepts v0-v4; v3 adds the static group
// instance id; v4 is the first flexible version.
var heartbeatRequest = &apiSchema{
	key: 12, flexibleFrom: 4, maxVersion: 4,
	body: structOf[kmsg.HeartbeatRequest](
		stringF("group_id"),
		int32F("generation_id"),
		stringF("member_id"),
		nullStringF("group_instance_id").since(3),
	),
}
