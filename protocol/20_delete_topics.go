package protocol

import "github.com/twmb/franz-go/pkg/kmsg"

// DeleteTopics (key 20). Sluice accepts v1-v6; v4 is the first flexible
// version; v6 names topics by name or id.
var deleteTopicsRequest = &apiSchema{
	key: 20, flexibleFrom: 4, maxVersion: 6,
	body: structOf[kmsg.DeleteTopicsRequest](
		stringsF("topic_names").until(5),
		arrayF("topics", structOf[kmsg.DeleteTopicsRequestTopic](
			nullStringF("name"),
			uuidF("topic_id"),
		)).since(6),
		int32F("timeout_ms"),
	),
}
