package protocol

import "github.com/twmb/franz-go/pkg/kmsg"

// InitProducerId (key 22). Sluice accepts v0-v4; v2 is the first flexible
// version; v3 lets an idempotent producer bump its epoch.
var initProducerIDRequest = &apiSchema{
	key: 22, flexibleFrom: 2, maxVersion: 5,
	body: structOf[kmsg.InitProducerIDRequest](
		nullStringF("transactional_id"),
		int32F("transaction_timeout_ms"),
		int64F("producer_id").since(3),
		int16F("producer_epoch").since(3),
	),
}
