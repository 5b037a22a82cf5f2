package protocol

import "github.com/twmb/franz-go/pkg/kmsg"

// FindCoordinator (key 10). Sluice accepts v0-v5. The broker has a group
// coordinator: a group key (key_type 0) is answered with the broker that
// leads the group's __consumer_offsets partition (COORDINATOR_NOT_AVAILABLE
// only while that partition is being created or has no leader); there is no
// transaction coordinator. v3 is the first flexible version; v4 replaces
// the single key with a batch of keys.
var findCoordinatorRequest = &apiSchema{
	key: 10, flexibleFrom: 3, maxVersion: 6,
	body: structOf[kmsg.FindCoordinatorRequest](
		stringF("key").until(3),
		int8F("key_type").since(1),
		stringsF("coordinator_keys").since(4),
	),
}
