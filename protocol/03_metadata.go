package protocol

import "github.com/twmb/franz-go/pkg/kmsg"

// Metadata (key 3). Sluice accepts v0-v12. A null topics array (v1+) asks
// for every topic; in v0 an empty one does. v9 is the first flexible
// version; from v10 each topic carries a topic id and its name may be null.
var metadataRequest = &apiSchema{
	key: 3, flexibleFrom: 9, maxVersion: 13,
	body: structOf[kmsg.MetadataRequest](
		arrayF("topics", structOf[kmsg.MetadataRequestTopic](
			uuidF("topic_id").since(10),
			// kmsg stores the name as a *string in every version.
			stringF("name").until(9).viaPtr(),
			nullStringF("name").since(10),
		)).nullableSince(1),
		boolF("allow_auto_topic_creation").since(4),
		boolF("include_cluster_authorized_operations").since(8).until(10),
		boolF("include_topic_authorized_operations").since(8),
	),
}
