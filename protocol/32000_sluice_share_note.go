package protocol

import "github.com/sluicemq/sluice/protocol/sluiceapi"

// SluiceShareNote (key 32000), a Sluice extension (package sluiceapi
// documents it and its key numbering): v0 only, flexible. A member's note
// on the records it gives back, which the partition leader writes to their
// dead letters.
//
// The group id is a non-nullable string (sluiceapi stores it as a string),
// the member id a nullable one; every array is non-nullable. The decoded
// types are sluiceapi's, whose Go sizes the allocation estimate uses.
var sluiceShareNoteRequest = &apiSchema{
	key: sluiceapi.ShareNoteKey, flexibleFrom: 0, maxVersion: 0,
	body: structOf[sluiceapi.ShareNoteRequest](
		stringF("group_id"),
		nullStringF("member_id"),
		arrayF("topics", structOf[sluiceapi.ShareNoteRequestTopic](
			uuidF("topic_id"),
			arrayF("partitions", structOf[sluiceapi.ShareNoteRequestPartition](
				int32F("partition_index"),
				arrayF("notes", structOf[sluiceapi.ShareNote](
					int64F("offset"),
					int16F("delivery_count"),
					stringF("text"),
				)),
			)),
		)),
	),
}
