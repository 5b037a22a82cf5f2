package protocol

import (
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluicemq/sluice/protocol/sluiceapi"
)

// NewRequest returns an empty request of key: kmsg's for Kafka's keys,
// sluiceapi's for Sluice's own (sluiceapi.MinKey and up). It returns nil
// for a key neither knows.
func NewRequest(key int16) kmsg.Request {
	if key >= sluiceapi.MinKey {
		return sluiceapi.NewRequest(key)
	}
	return kmsg.RequestForKey(key)
}

// NewResponse returns an empty response of key, as NewRequest does.
func NewResponse(key int16) kmsg.Response {
	if key >= sluiceapi.MinKey {
		return sluiceapi.NewResponse(key)
	}
	return kmsg.ResponseForKey(key)
}

// NameForKey returns the API name of key (kmsg's for Kafka's keys), or
// "Unknown".
func NameForKey(key int16) string {
	if key >= sluiceapi.MinKey {
		if e := lookup(key); e != nil {
			return e.api.Name // Supported names Sluice's extensions
		}
		return "Unknown"
	}
	return kmsg.NameForKey(key)
}
