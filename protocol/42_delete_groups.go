package protocol

import "github.com/twmb/franz-go/pkg/kmsg"

// DeleteGroups (key 42). Sluice accepts v0-v3. v2 is the first flexible
// version; v3 changes only the response (an error message per group).
var deleteGroupsRequest = &apiSchema{
	key: 42, flexibleFrom: 2, maxVersion: 3,
	body: structOf[kmsg.DeleteGroupsRequest](
		stringsF("groups_names"),
	),
}
