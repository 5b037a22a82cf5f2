package protocol

import "github.com/twmb/franz-go/pkg/kmsg"

// SyncGroup (key 14). Sluice accepts v0-v5. v3 adds the static group
// instance id; v4 is the first flexible version; v5 adds the protocol type
// and name (KIP-559), both nullable. Each assignment is non-nullable bytes,
// aliased into the frame by kmsg.
var syncGroupRequest = &apiSchema{
	key: 14, flexibleFrom: 4, maxVersion: 5,
	body: structOf[kmsg.SyncGroupRequest](
		stringF("group_id"),
		int32F("generation_id"),
		stringF("member_id"),
		nullStringF("group_instance_id").since(3),
		nullStringF("protocol_type").since(5),
		nullStringF("protocol_name").since(5),
		arrayF("assignments", structOf[kmsg.SyncGroupRequestGroupAssignment](
			stringF("member_id"),
			bytesF("assignment"),
		)),
	),
}
