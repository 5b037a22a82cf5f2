package protocol

import "github.com/twmb/franz-go/pkg/kmsg"

const apiVersionsKey = 18

// ApiVersions (key 18). Sluice accepts v0-v4. Its request header is
// flexible from v3 like its body, but its response header is always v0 (no
// tagged fields), so that a client that does not yet know the broker's
// versions can always read the answer. A request above v4 is answered by
// AppendApiVersionsFallback.
var apiVersionsRequest = &apiSchema{
	key: apiVersionsKey, flexibleFrom: 3, maxVersion: 5,
	body: structOf[kmsg.ApiVersionsRequest](
		stringF("client_software_name").since(3),
		stringF("client_software_version").since(3),
		nullStringF("cluster_id").since(5),
		int32F("node_id").since(5),
	),
}
