package protocol

import "github.com/twmb/franz-go/pkg/kmsg"

// FindCoordinator (key 10). Sluice accepts v0-v5 (the broker may answer
// COORDINATOR_NOT_AVAILABLE until it has coordinators). v3 is the first
// flexible version; v4 replaces the single key with a batch of keys.
var findCoordinatorRequest = &apiSchema{
	key: 10, flexibleFrom: 3, maxVersion: 6,
	body: structOf[kmsg.FindCoordinatorRequest](
		stringF("key").until(3),
		int8F("key_type").since(1),
		stringsF("coordinator_keys").since(4),
	),
}
