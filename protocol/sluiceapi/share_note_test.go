package sluiceapi

import (
	"bytes"
	"errors"
	"reflect"
	"runtime"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/twmb/franz-go/pkg/kbin"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/kversion"
)

func sampleRequest() *ShareNoteRequest {
	member := "member-1"
	r := &ShareNoteRequest{GroupID: "mailers", MemberID: &member, Topics: []ShareNoteRequestTopic{
		{TopicID: [16]byte{1, 2, 3}, Partitions: []ShareNoteRequestPartition{
			{Partition: 0, Notes: []ShareNote{{Offset: 41, DeliveryCount: 1, Text: "no such mailbox"}}},
			{Partition: 3, Notes: []ShareNote{{Offset: 7, DeliveryCount: 5, Text: "smtp timeout: ü"}, {Offset: 9, DeliveryCount: 2}}},
		}},
		{TopicID: [16]byte{9}},
	}}
	r.Topics[0].Partitions[1].Notes[1].UnknownTags.Set(30, []byte("x"))
	r.UnknownTags.Set(5, []byte{})
	return r
}

func sampleResponse() *ShareNoteResponse {
	r := &ShareNoteResponse{ThrottleMillis: 3, Topics: []ShareNoteResponseTopic{
		{TopicID: [16]byte{1, 2, 3}, Partitions: []ShareNoteResponsePartition{{Partition: 0}, {Partition: 3, ErrorCode: 121}}},
	}}
	r.Topics[0].UnknownTags.Set(2, []byte{1, 2})
	return r
}

// TestShareNoteRoundTrip encodes a request and a response and decodes
// them back, field for field (unknown tags included).
func TestShareNoteRoundTrip(t *testing.T) {
	req := sampleRequest()
	var gotReq ShareNoteRequest
	if err := gotReq.ReadFrom(req.AppendTo(nil)); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(&gotReq, req) {
		t.Fatalf("request:\n got %+v\nwant %+v", gotReq, *req)
	}
	resp := sampleResponse()
	gotResp, ok := req.ResponseKind().(*ShareNoteResponse)
	if !ok {
		t.Fatalf("response kind %T", req.ResponseKind())
	}
	if err := gotResp.ReadFrom(resp.AppendTo(nil)); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(gotResp, resp) {
		t.Fatalf("response:\n got %+v\nwant %+v", gotResp, resp)
	}
	// A null member id, empty arrays.
	empty := &ShareNoteRequest{GroupID: "g"}
	var gotEmpty ShareNoteRequest
	if err := gotEmpty.ReadFrom(empty.AppendTo(nil)); err != nil || gotEmpty.MemberID != nil || len(gotEmpty.Topics) != 0 || gotEmpty.GroupID != "g" {
		t.Fatalf("empty request: %+v %v", gotEmpty, err)
	}
	if req.Key() != ShareNoteKey || resp.Key() != ShareNoteKey || !req.IsFlexible() || !resp.IsFlexible() || req.MaxVersion() != 0 {
		t.Error("key, version or flexibility")
	}
	if rk := resp.RequestKind(); rk.Key() != ShareNoteKey {
		t.Errorf("request kind %T", rk)
	}
	if ms, after := resp.Throttle(); ms != 3 || !after {
		t.Errorf("throttle %d %v", ms, after)
	}
}

// TestShareNoteReadFromRejects: every strict prefix of a valid encoding,
// a trailing byte, and counts the bytes cannot hold are errors wrapping
// ErrMalformed (never a panic), and the value is left empty.
func TestShareNoteReadFromRejects(t *testing.T) {
	for name, body := range map[string][]byte{"request": sampleRequest().AppendTo(nil), "response": sampleResponse().AppendTo(nil)} {
		decode := func(b []byte) error {
			if name == "request" {
				var r ShareNoteRequest
				err := r.ReadFrom(b)
				if err != nil && !reflect.DeepEqual(r, ShareNoteRequest{}) {
					t.Errorf("%s: fields left after an error: %+v", name, r)
				}
				return err
			}
			var r ShareNoteResponse
			return r.ReadFrom(b)
		}
		for n := range len(body) {
			if err := decode(body[:n]); !errors.Is(err, ErrMalformed) {
				t.Fatalf("%s: %d-byte prefix of %d: %v", name, n, len(body), err)
			}
		}
		if err := decode(append(bytes.Clone(body), 0)); !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), "1 trailing bytes") {
			t.Errorf("%s with a trailing byte: %v", name, err)
		}
	}

	huge := []byte{0xff, 0xff, 0xff, 0xff, 0x07} // compact count 2^31-1
	for _, tc := range []struct {
		name string
		body []byte
		want string
	}{
		{"topics 2^31-1", cat(kbin.AppendCompactString(nil, "g"), []byte{0}, huge, make([]byte, 30)),
			"topics: 2147483646 elements of at least 18 bytes need more than the 30 bytes remaining"},
		{"notes 2^31-1", cat(kbin.AppendCompactString(nil, "g"), []byte{0, 2}, make([]byte, 16), []byte{2, 0, 0, 0, 0}, huge, make([]byte, 5)),
			"notes: 2147483646 elements of at least 12 bytes"},
		{"null topics", cat(kbin.AppendCompactString(nil, "g"), []byte{0, 0, 0}), "topics: null array"},
		{"null group", []byte{0, 0, 1, 0}, "group_id: null string"},
		{"tags 2^32-1", cat(kbin.AppendCompactString(nil, "g"), []byte{0, 1}, []byte{0xff, 0xff, 0xff, 0xff, 0x0f}),
			"4294967295 tagged fields need more than the 0 bytes remaining"},
		{"tag past the end", cat(kbin.AppendCompactString(nil, "g"), []byte{0, 1}, []byte{1, 7, 100, 1}), "tag 7 size 100 exceeds the 1 bytes remaining"},
		{"text past the end", cat(kbin.AppendCompactString(nil, "g"), []byte{0, 2}, make([]byte, 16), []byte{2, 0, 0, 0, 0, 2}, make([]byte, 10), []byte{0xff, 0x7f}, []byte("abc")),
			"truncated"},
	} {
		var r ShareNoteRequest
		var err error
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		err = r.ReadFrom(tc.body)
		runtime.ReadMemStats(&after)
		if !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", tc.name, err, tc.want)
		}
		if n := after.TotalAlloc - before.TotalAlloc; n > 64<<10 {
			t.Errorf("%s: %d bytes allocated for a refused %d-byte body", tc.name, n, len(tc.body))
		}
	}
	var resp ShareNoteResponse
	if err := resp.ReadFrom(cat([]byte{0, 0, 0, 0, 0, 0}, huge, make([]byte, 9))); !errors.Is(err, ErrMalformed) {
		t.Errorf("response topics 2^31-1: %v", err)
	}
}

func cat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

// FuzzShareNote decodes arbitrary bytes as a request and as a response: no
// panic, errors wrap ErrMalformed, what decodes re-encodes to the same
// bytes (kbin encodes minimally; non-minimal varints are re-encoded
// shorter, so only the decoded values are compared then).
func FuzzShareNote(f *testing.F) {
	f.Add(sampleRequest().AppendTo(nil))
	f.Add(sampleResponse().AppendTo(nil))
	f.Add([]byte{2, 'g', 0, 0xff, 0xff, 0xff, 0xff, 0x07, 0})
	f.Add([]byte{0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0x0f})
	f.Fuzz(func(t *testing.T, b []byte) {
		var req ShareNoteRequest
		if err := req.ReadFrom(b); err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("request error %v does not wrap ErrMalformed", err)
			}
		} else {
			var again ShareNoteRequest
			if err := again.ReadFrom(req.AppendTo(nil)); err != nil || !reflect.DeepEqual(again, req) {
				t.Fatalf("request does not survive re-encoding: %v", err)
			}
		}
		var resp ShareNoteResponse
		if err := resp.ReadFrom(b); err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("response error %v does not wrap ErrMalformed", err)
			}
		} else {
			var again ShareNoteResponse
			if err := again.ReadFrom(resp.AppendTo(nil)); err != nil || !reflect.DeepEqual(again, resp) {
				t.Fatalf("response does not survive re-encoding: %v", err)
			}
		}
	})
}

func TestTruncate(t *testing.T) {
	if got := Truncate("short"); got != "short" {
		t.Errorf("short: %q", got)
	}
	exact := strings.Repeat("a", MaxNoteText)
	if got := Truncate(exact); got != exact {
		t.Errorf("exactly the limit was cut to %d bytes", len(got))
	}
	long := strings.Repeat("a", 2000)
	if got := Truncate(long); len(got) != MaxNoteText || !strings.HasSuffix(got, "...") {
		t.Errorf("long: %d bytes, suffix %q", len(got), got[len(got)-3:])
	}
	// A two-byte rune straddling the cut is dropped whole.
	runes := strings.Repeat("é", 600) // 1200 bytes
	got := Truncate(runes)
	if len(got) > MaxNoteText || !utf8.ValidString(got) || !strings.HasSuffix(got, "é...") {
		t.Errorf("runes: %d bytes, valid %v, ends %q", len(got), utf8.ValidString(got), got[len(got)-5:])
	}
}

func TestRegistry(t *testing.T) {
	// The names are protocol.Supported's (TestApiVersionsListsSluiceShareNote).
	if _, ok := NewRequest(ShareNoteKey).(*ShareNoteRequest); !ok || NewRequest(1) != nil {
		t.Error("NewRequest")
	}
	if _, ok := NewResponse(ShareNoteKey).(*ShareNoteResponse); !ok || NewResponse(1) != nil {
		t.Error("NewResponse")
	}
	vs := AddVersions(nil)
	if v, ok := vs.LookupMaxKeyVersion(ShareNoteKey); !ok || v != 0 {
		t.Errorf("AddVersions: %d %v", v, ok)
	}
	if v, ok := vs.LookupMaxKeyVersion(78); !ok || v < 1 {
		t.Errorf("AddVersions lost ShareFetch: %d %v", v, ok)
	}
	own := kversion.Stable()
	if AddVersions(own) != own || !own.HasKey(ShareNoteKey) {
		t.Error("AddVersions on a given set")
	}
	var _ kmsg.ThrottleResponse = (*ShareNoteResponse)(nil)
}
