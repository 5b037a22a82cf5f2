package protocol

import "github.com/twmb/franz-go/pkg/kmsg"

// DescribeCluster (key 60). Sluice accepts v0-v1; every version is
// flexible.
var describeClusterRequest = &apiSchema{
	key: 60, flexibleFrom: 0, maxVersion: 2,
	body: structOf[kmsg.DescribeClusterRequest](
		boolF("include_cluster_authorized_operations"),
		int8F("endpoint_type").since(1),
		boolF("include_fenced_brokers").since(2),
	),
}
