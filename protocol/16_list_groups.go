package protocol

import "github.com/twmb/franz-go/pkg/kmsg"

// ListGroups (key 16). Sluice accepts v0-v5. v3 is the first flexible
// version; v4 adds states_filter (KIP-518) and v5 types_filter (KIP-848);
// an empty filter matches every group.
var listGroupsRequest = &apiSchema{
	key: 16, flexibleFrom: 3, maxVersion: 5,
	body: structOf[kmsg.ListGroupsRequest](
		stringsF("states_filter").since(4),
		stringsF("types_filter").since(5),
	),
}
