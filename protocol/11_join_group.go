package protocol

import "github.com/twmb/franz-go/pkg/kmsg"

// JoinGroup (key 11). Sluice accepts v2-v9 (Kafka 4.0 removed v0 and v1).
// v4 makes a new member rejoin with the member id it is given (KIP-394); v5
// adds the static group instance id (KIP-345); v6 is the first flexible
// version; v8 adds the reason (KIP-800). Each protocol's metadata is
// non-nullable bytes, aliased into the frame by kmsg.
var joinGroupRequest = &apiSchema{
	key: 11, flexibleFrom: 6, maxVersion: 9,
	body: structOf[kmsg.JoinGroupRequest](
		stringF("group_id"),
		int32F("session_timeout_ms"),
		int32F("rebalance_timeout_ms").since(1),
		stringF("member_id"),
		nullStringF("group_instance_id").since(5),
		stringF("protocol_type"),
		arrayF("protocols", structOf[kmsg.JoinGroupRequestProtocol](
			stringF("name"),
			bytesF("metadata"),
		)),
		nullStringF("reason").since(8),
	),
}
