package protocol

import "github.com/twmb/franz-go/pkg/kmsg"

// ShareGroupDescribe (key 77, KIP-932). Sluice accepts v1 only (v0 was
// Kafka 4.0's early access); every version is flexible and v0 and v1 have
// the same request layout. The group ids array is not nullable.
var shareGroupDescribeRequest = &apiSchema{
	key: 77, flexibleFrom: 0, maxVersion: 1,
	body: structOf[kmsg.ShareGroupDescribeRequest](
		stringsF("group_ids"),
		boolF("include_authorized_operations"),
	),
}
