package protocol

import "github.com/twmb/franz-go/pkg/kmsg"

// IncrementalAlterConfigs (key 44). Sluice accepts v0-v1; v1 is flexible.
var incrementalAlterConfigsRequest = &apiSchema{
	key: 44, flexibleFrom: 1, maxVersion: 1,
	body: structOf[kmsg.IncrementalAlterConfigsRequest](
		arrayF("resources", structOf[kmsg.IncrementalAlterConfigsRequestResource](
			int8F("resource_type"),
			stringF("resource_name"),
			arrayF("configs", structOf[kmsg.IncrementalAlterConfigsRequestResourceConfig](
				stringF("name"),
				int8F("config_operation"),
				nullStringF("value"),
			)),
		)),
		boolF("validate_only"),
	),
}
