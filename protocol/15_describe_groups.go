package protocol

import "github.com/twmb/franz-go/pkg/kmsg"

// DescribeGroups (key 15). Sluice accepts v0-v6. v3 adds
// include_authorized_operations; v5 is the first flexible version; v6
// changes only the response (GROUP_ID_NOT_FOUND and an error message for an
// unknown group, KIP-1043).
var describeGroupsRequest = &apiSchema{
	key: 15, flexibleFrom: 5, maxVersion: 6,
	body: structOf[kmsg.DescribeGroupsRequest](
		stringsF("groups"),
		boolF("include_authorized_operations").since(3),
	),
}
