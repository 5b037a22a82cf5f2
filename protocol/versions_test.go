package protocol

import (
	"slices"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"
)

func TestSupportedTable(t *testing.T) {
	want := map[int16]VersionRange{
		18: {0, 4}, 3: {0, 12}, 0: {3, 11}, 1: {4, 16}, 2: {1, 8}, 19: {2, 7}, 20: {1, 6},
		37: {0, 3}, 32: {1, 4}, 44: {0, 1}, 60: {0, 1}, 21: {0, 2}, 22: {0, 4}, 10: {0, 5},
		8: {2, 9}, 9: {1, 9}, 11: {2, 9}, 12: {0, 4}, 13: {0, 5}, 14: {0, 5}, 15: {0, 6}, 16: {0, 5},
		42: {0, 3}, 47: {0, 0}, 76: {1, 1}, 77: {1, 1}, 78: {1, 2}, 79: {1, 2},
		90: {0, 1}, 91: {0, 0}, 92: {0, 0},
		32000: {0, 0}, // SluiceShareNote, Sluice's own
	}
	if len(Supported) != len(want) {
		t.Fatalf("Supported has %d entries, want %d", len(Supported), len(want))
	}
	for i, a := range Supported {
		if i > 0 && Supported[i-1].Key >= a.Key {
			t.Errorf("Supported not sorted at %d", i)
		}
		if got, ok := Lookup(a.Key); !ok || got != want[a.Key] || a.Versions != want[a.Key] {
			t.Errorf("key %d: Lookup %v %v, table %v, want %v", a.Key, got, ok, a.Versions, want[a.Key])
		}
		req := NewRequest(a.Key)
		if req == nil {
			t.Fatalf("kmsg has no request for key %d", a.Key)
		}
		if a.Versions.Max > req.MaxVersion() {
			t.Errorf("key %d: max %d above kmsg's %d", a.Key, a.Versions.Max, req.MaxVersion())
		}
		if !strings.EqualFold(a.Name, NameForKey(a.Key)) { // Kafka says InitProducerId, kmsg InitProducerID
			t.Errorf("key %d: name %q, kmsg says %q", a.Key, a.Name, NameForKey(a.Key))
		}
	}
	if !slices.Equal(Keys(), []int16{0, 1, 2, 3, 8, 9, 10, 11, 12, 13, 14, 15, 16, 18, 19, 20, 21, 22, 32, 37, 42, 44, 47, 60, 76, 77, 78, 79, 90, 91, 92, 32000}) {
		t.Errorf("Keys() = %v", Keys())
	}
	// 61-75 and 80-89 lie between the keys, 93 is just above Kafka's
	// (the share-group offset APIs end them at 92); 31999 and 32001
	// surround Sluice's own key.
	for _, k := range []int16{-1, 4, 7, 17, 28, 48, 61, 67, 68, 75, 80, 89, 93, 9999, -32768, 31999, 32001, 32767} {
		if _, ok := Lookup(k); ok {
			t.Errorf("Lookup(%d) reported supported", k)
		}
	}
}

// TestSchemasMatchKmsg checks each schema's version coverage and
// flexibility against kmsg for every version kmsg knows.
func TestSchemasMatchKmsg(t *testing.T) {
	for _, s := range schemas {
		req := NewRequest(s.key)
		if s.maxVersion != req.MaxVersion() {
			t.Errorf("key %d: schema max %d, kmsg max %d", s.key, s.maxVersion, req.MaxVersion())
		}
		for v := int16(0); v <= req.MaxVersion(); v++ {
			req.SetVersion(v)
			if req.IsFlexible() != s.flexible(v) {
				t.Errorf("key %d v%d: schema flexible %v, kmsg %v", s.key, v, s.flexible(v), req.IsFlexible())
			}
			resp := req.ResponseKind()
			resp.SetVersion(v)
			if resp.IsFlexible() != req.IsFlexible() {
				t.Errorf("key %d v%d: response flexible %v, request %v", s.key, v, resp.IsFlexible(), req.IsFlexible())
			}
		}
	}
}

func TestSupportedIsACopy(t *testing.T) {
	saved := Supported[0].Versions
	Supported[0].Versions.Max = 13
	defer func() { Supported[0].Versions = saved }()
	if r, _ := Lookup(0); r.Max != 11 {
		t.Fatalf("modifying Supported changed Lookup: %v", r)
	}
}

func TestFillApiVersions(t *testing.T) {
	resp := kmsg.NewPtrApiVersionsResponse()
	resp.ApiKeys = []kmsg.ApiVersionsResponseApiKey{{ApiKey: 99}}
	FillApiVersions(resp)
	if len(resp.ApiKeys) != len(Supported) {
		t.Fatalf("%d keys, want %d", len(resp.ApiKeys), len(Supported))
	}
	for i, k := range resp.ApiKeys {
		a := Supported[i]
		if k.ApiKey != a.Key || k.MinVersion != a.Versions.Min || k.MaxVersion != a.Versions.Max {
			t.Errorf("entry %d = %+v, want %+v", i, k, a)
		}
	}
}
