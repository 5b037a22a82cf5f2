package group

import (
	"errors"
	"testing"
	"time"
)

// TestDecodeRecordRefusesNewerValues: a value of a version this broker does
// not write is skipped as unknown, before kmsg decodes it. v4 is flexible, and
// kmsg would spin through the claimed tag count (2^32-1 here) for seconds.
func TestDecodeRecordRefusesNewerValues(t *testing.T) {
	tp := topicPartition{"orders", 0}
	manyTags := []byte{0xff, 0xff, 0xff, 0xff, 0x0f}
	for _, c := range []struct {
		name       string
		key, value []byte
	}{
		{"group value v4", groupKey("g"), append([]byte{0, 4, 0}, manyTags...)},
		{"offset value v4", offsetKey("g", tp), append([]byte{0, 4}, manyTags...)},
		{"offset value v12336", offsetKey("g", tp), []byte("00000000")},
		{"negative version", groupKey("g"), []byte{0xff, 0xff, 0}},
	} {
		if _, err := decodeRecord(c.key, c.value); !errors.Is(err, errUnknownRecord) {
			t.Errorf("%s: err %v, want errUnknownRecord", c.name, err)
		}
	}
	// The versions written are still read.
	r, err := decodeRecord(offsetKey("g", tp), offsetValue(committed{offset: 7, leaderEpoch: 2}))
	if err != nil || r.offset == nil || r.offset.Offset != 7 || r.offset.LeaderEpoch != 2 {
		t.Fatalf("offset record: %+v, %v", r, err)
	}
	g := newGroup("g", time.UnixMilli(0))
	r, err = decodeRecord(groupKey("g"), groupValue(g))
	if err != nil || !r.isGroup || r.meta == nil || r.meta.Version != groupValueVersion {
		t.Fatalf("group record: %+v, %v", r, err)
	}
}
