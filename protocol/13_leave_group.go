package protocol

import "github.com/twmb/franz-go/pkg/kmsg"

// LeaveGroup (key 13). Sluice accepts v0-v5. v3 replaces the single member
// id with a batch of members (member id and static group instance id); v4
// is the first flexible version; v5 adds a reason per member (KIP-800).
var leaveGroupRequest = &apiSchema{
	key: 13, flexibleFrom: 4, maxVersion: 5,
	body: structOf[kmsg.LeaveGroupRequest](
		stringF("group_id"),
		stringF("member_id").until(2),
		arrayF("members", structOf[kmsg.LeaveGroupRequestMember](
			stringF("member_id"),
			nullStringF("group_instance_id"),
			nullStringF("reason").since(5),
		)).since(3),
	),
}
