package protocol

import "github.com/twmb/franz-go/pkg/kmsg"

// DescribeConfigs (key 32). Sluice accepts v1-v4; v4 is flexible. A null
// configuration_keys asks for every config of the resource.
var describeConfigsRequest = &apiSchema{
	key: 32, flexibleFrom: 4, maxVersion: 4,
	body: structOf[kmsg.DescribeConfigsRequest](
		arrayF("resources", structOf[kmsg.DescribeConfigsRequestResource](
			int8F("resource_type"),
			stringF("resource_name"),
			stringsF("configuration_keys").nullableSince(0),
		)),
		boolF("include_synonyms").since(1),
		boolF("include_documentation").since(3),
	),
}
