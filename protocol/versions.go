package protocol

import (
	"fmt"
	"slices"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluicemq/sluice/protocol/sluiceapi"
)

// VersionRange is an inclusive range of API versions.
type VersionRange struct {
	Min, Max int16
}

// Contains reports whether v is within the range.
func (r VersionRange) Contains(v int16) bool { return v >= r.Min && v <= r.Max }

// API is one API key Sluice implements and the versions it accepts.
type API struct {
	Key      int16
	Name     string
	Versions VersionRange
}

// Supported lists, sorted by key, exactly the APIs and versions Sluice
// implements; it is what ApiVersions advertises and what Decode accepts.
// Every range is within what kmsg v1.15.0 can encode and decode, except
// for Sluice's own APIs (key sluiceapi.MinKey, 32000, and up: see package
// sluiceapi), whose types are sluiceapi's; NewRequest returns either.
//
// Supported is a description for readers and tools: the package copies it
// when it is initialized, so modifying it has no effect on Lookup, Keys,
// Decode or FillApiVersions.
//
// Why the floors: Produce v3 and Fetch v4 are the first versions that carry
// only RecordBatch v2 (magic 2), the one format Sluice's log stores;
// ListOffsets v0 returns a list of offsets per partition, an API Kafka
// itself deprecated; the other floors drop versions only clients older than
// Kafka 2.1 send (the baseline Kafka 4.0 adopted in KIP-896: OffsetCommit
// v2, OffsetFetch v1, JoinGroup v2). The ceilings are what the broker
// implements, at or below kmsg's maxima: OffsetCommit and OffsetFetch stop
// at v9 because v10 names topics by id only (KIP-848), which the group
// coordinator does not resolve; their schemas describe v10 already. The
// share-group APIs (KIP-932, keys 76-79) are v1 only: v0 was Kafka 4.0's
// early access (ShareFetch v0 differs on the wire) and Kafka 4.1 ships v1
// alone; ShareFetch and ShareAcknowledge v2 (renew acknowledgements,
// KIP-1222) are described by their schemas but not accepted until the
// broker implements them. The share-group offset APIs (keys 90-92) take
// every version kmsg knows: they had no early-access versions, and
// DescribeShareGroupOffsets v1 (Kafka 4.2, KIP-1226) only adds lag to the
// answer.
var Supported = []API{
	{Key: 0, Name: "Produce", Versions: VersionRange{3, 11}},
	{Key: 1, Name: "Fetch", Versions: VersionRange{4, 16}},
	{Key: 2, Name: "ListOffsets", Versions: VersionRange{1, 8}},
	{Key: 3, Name: "Metadata", Versions: VersionRange{0, 12}},
	{Key: 8, Name: "OffsetCommit", Versions: VersionRange{2, 9}},
	{Key: 9, Name: "OffsetFetch", Versions: VersionRange{1, 9}},
	{Key: 10, Name: "FindCoordinator", Versions: VersionRange{0, 5}},
	{Key: 11, Name: "JoinGroup", Versions: VersionRange{2, 9}},
	{Key: 12, Name: "Heartbeat", Versions: VersionRange{0, 4}},
	{Key: 13, Name: "LeaveGroup", Versions: VersionRange{0, 5}},
	{Key: 14, Name: "SyncGroup", Versions: VersionRange{0, 5}},
	{Key: 15, Name: "DescribeGroups", Versions: VersionRange{0, 6}},
	{Key: 16, Name: "ListGroups", Versions: VersionRange{0, 5}},
	{Key: 18, Name: "ApiVersions", Versions: VersionRange{0, 4}},
	{Key: 19, Name: "CreateTopics", Versions: VersionRange{2, 7}},
	{Key: 20, Name: "DeleteTopics", Versions: VersionRange{1, 6}},
	{Key: 21, Name: "DeleteRecords", Versions: VersionRange{0, 2}},
	{Key: 22, Name: "InitProducerId", Versions: VersionRange{0, 4}},
	{Key: 32, Name: "DescribeConfigs", Versions: VersionRange{1, 4}},
	{Key: 37, Name: "CreatePartitions", Versions: VersionRange{0, 3}},
	{Key: 42, Name: "DeleteGroups", Versions: VersionRange{0, 3}},
	{Key: 44, Name: "IncrementalAlterConfigs", Versions: VersionRange{0, 1}},
	{Key: 47, Name: "OffsetDelete", Versions: VersionRange{0, 0}},
	{Key: 60, Name: "DescribeCluster", Versions: VersionRange{0, 1}},
	{Key: 76, Name: "ShareGroupHeartbeat", Versions: VersionRange{1, 1}},
	{Key: 77, Name: "ShareGroupDescribe", Versions: VersionRange{1, 1}},
	{Key: 78, Name: "ShareFetch", Versions: VersionRange{1, 2}},
	{Key: 79, Name: "ShareAcknowledge", Versions: VersionRange{1, 2}},
	{Key: 90, Name: "DescribeShareGroupOffsets", Versions: VersionRange{0, 1}},
	{Key: 91, Name: "AlterShareGroupOffsets", Versions: VersionRange{0, 0}},
	{Key: 92, Name: "DeleteShareGroupOffsets", Versions: VersionRange{0, 0}},
	{Key: sluiceapi.ShareNoteKey, Name: "SluiceShareNote", Versions: VersionRange{0, 0}},
}

// entry is the package's private, immutable view of one supported API.
type entry struct {
	api    API
	schema *apiSchema
}

var (
	// table is indexed by API key; a nil schema means unsupported. It
	// holds Kafka's keys, below sluiceapi.MinKey.
	table []entry
	// extensions holds Sluice's keys (sluiceapi.MinKey and up), which
	// are too far above Kafka's to index a table by; there are few.
	extensions []entry
	// sortedAPIs is the private copy of Supported, sorted by key.
	sortedAPIs []API
)

func init() {
	sortedAPIs = slices.Clone(Supported)
	slices.SortFunc(sortedAPIs, func(a, b API) int { return int(a.Key) - int(b.Key) })
	maxKafka := int16(-1)
	for _, a := range sortedAPIs {
		if a.Key < sluiceapi.MinKey {
			maxKafka = max(maxKafka, a.Key)
		}
	}
	table = make([]entry, int(maxKafka)+1)
	for _, a := range sortedAPIs {
		s := schemaFor(a.Key)
		// These are invariants of the source, checked once at start-up
		// (and by the tests), never conditions of the input.
		if s == nil {
			panic(fmt.Sprintf("protocol: no request schema for supported key %d", a.Key))
		}
		if a.Versions.Min < 0 || a.Versions.Max < a.Versions.Min || a.Versions.Max > s.maxVersion {
			panic(fmt.Sprintf("protocol: key %d range %v outside its schema (max %d)", a.Key, a.Versions, s.maxVersion))
		}
		if lookup(a.Key) != nil {
			panic(fmt.Sprintf("protocol: key %d listed twice", a.Key))
		}
		if a.Key >= sluiceapi.MinKey {
			extensions = append(extensions, entry{api: a, schema: s})
			continue
		}
		table[a.Key] = entry{api: a, schema: s}
	}
}

// lookup returns the entry for key, or nil when the key is not supported.
func lookup(key int16) *entry {
	if key >= sluiceapi.MinKey {
		for i := range extensions {
			if extensions[i].api.Key == key {
				return &extensions[i]
			}
		}
		return nil
	}
	if key < 0 || int(key) >= len(table) || table[key].schema == nil {
		return nil
	}
	return &table[key]
}

// Lookup returns the versions Sluice supports for an API key, and false
// when it does not implement the key at all.
func Lookup(key int16) (VersionRange, bool) {
	e := lookup(key)
	if e == nil {
		return VersionRange{}, false
	}
	return e.api.Versions, true
}

// Keys returns the supported API keys in ascending order, in a new slice.
func Keys() []int16 {
	keys := make([]int16, len(sortedAPIs))
	for i, a := range sortedAPIs {
		keys[i] = a.Key
	}
	return keys
}

// FillApiVersions sets resp.ApiKeys to exactly the supported table, sorted
// by key, replacing whatever was there. Other fields (error code, throttle,
// features) are left to the caller.
func FillApiVersions(resp *kmsg.ApiVersionsResponse) {
	keys := make([]kmsg.ApiVersionsResponseApiKey, len(sortedAPIs))
	for i, a := range sortedAPIs {
		k := kmsg.NewApiVersionsResponseApiKey()
		k.ApiKey = a.Key
		k.MinVersion = a.Versions.Min
		k.MaxVersion = a.Versions.Max
		keys[i] = k
	}
	resp.ApiKeys = keys
}
