package protocol

import (
	"errors"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluicemq/sluice/protocol/sluiceapi"
)

// shareNoteV0 is a SluiceShareNote v0 body prefix up to its topics (4
// bytes): group "sg", null member id.
var shareNoteV0 = cat(cstr("sg"), []byte{0})

// TestDecodeSluiceShareNoteHostile feeds SluiceShareNote requests built to
// make a decoder allocate by counts or read past the end. Decode must fail
// with the walker's error, and sluiceapi's own decoder (which the client
// uses on responses and a broker might use without the walker) must refuse
// them too, without panicking.
func TestDecodeSluiceShareNoteHostile(t *testing.T) {
	hugeCompact := []byte{0xff, 0xff, 0xff, 0xff, 0x07} // 2^31-1 elements
	note := func(parts ...[]byte) []byte {
		return cat(header(sluiceapi.ShareNoteKey, 0, 1, -1, "", 0), cat(parts...))
	}
	onePartition := cat([]byte{2}, make([]byte, 16), []byte{2}, i32(0)) // one topic, one partition: notes count next
	for _, tc := range []struct {
		name  string
		frame []byte
		want  string
	}{
		{"topics 2^31-1 in a tiny body", note(shareNoteV0, hugeCompact, make([]byte, 8)),
			"topics at offset 9: 2147483646 elements of at least 18 bytes"},
		{"notes 2^31-1 in a tiny body", note(shareNoteV0, onePartition, hugeCompact, []byte{0, 0}),
			"notes at offset 31: 2147483646 elements of at least 12 bytes"},
		{"partitions beyond the bytes", note(shareNoteV0, []byte{2}, make([]byte, 16), []byte{100}, make([]byte, 60)),
			"partitions at offset 22: 99 elements of at least 6 bytes need more than the 60 bytes remaining"},
		{"null group id", note([]byte{0, 0, 1, 0}),
			"group_id at offset 1: invalid length -1"},
		{"null topics", note(shareNoteV0, []byte{0, 0}),
			"topics at offset 5: invalid array count -1"},
		{"text past the end", note(shareNoteV0, onePartition, []byte{2}, i64(5), i16(1), []byte{101}, []byte("abc")),
			"text at offset 38: length 100 exceeds the 3 bytes remaining"},
		{"note tags beyond the bytes", note(shareNoteV0, onePartition, []byte{2}, i64(5), i16(1), cstr("x"), []byte{0x80, 0x08}, []byte{0, 0, 0}),
			"1024 tagged fields need more than the 3 bytes remaining"},
		{"trailing byte", note(shareNoteV0, []byte{1, 0}, []byte{7}),
			"1 trailing bytes after the request"},
		{"truncated after the member id", note(shareNoteV0),
			"topics at offset 4: bad or truncated uvarint"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, err := Decode(tc.frame)
			if !errors.Is(err, ErrMalformedRequest) || !wrapsOneSentinel(err) {
				t.Fatalf("err = %v, want ErrMalformedRequest", err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v\nwant it to contain %q", err, tc.want)
			}
			if req == nil || req.Msg != nil || req.Header.Key != sluiceapi.ShareNoteKey {
				t.Fatalf("request %+v", req)
			}
			var direct sluiceapi.ShareNoteRequest
			if err := direct.ReadFrom(bodyOf(t, tc.frame, req.Header)); !errors.Is(err, sluiceapi.ErrMalformed) {
				t.Errorf("sluiceapi alone: %v, want ErrMalformed", err)
			}
		})
	}
}

// TestApiVersionsListsSluiceShareNote: ApiVersions advertises the
// extension last (keys sorted), at v0 only, and Decode knows it while
// Kafka's table stays indexed by Kafka's keys.
func TestApiVersionsListsSluiceShareNote(t *testing.T) {
	resp := kmsg.NewPtrApiVersionsResponse()
	FillApiVersions(resp)
	last := resp.ApiKeys[len(resp.ApiKeys)-1]
	if last.ApiKey != sluiceapi.ShareNoteKey || last.MinVersion != 0 || last.MaxVersion != 0 {
		t.Fatalf("last api key %+v, want SluiceShareNote v0-0", last)
	}
	if len(table) > 1000 {
		t.Errorf("the key table has %d entries: the extension key must not size it", len(table))
	}
	if NameForKey(sluiceapi.ShareNoteKey) != "SluiceShareNote" || NameForKey(sluiceapi.ShareNoteKey+1) != "Unknown" || NameForKey(1) != "Fetch" {
		t.Errorf("NameForKey: %q %q %q", NameForKey(sluiceapi.ShareNoteKey), NameForKey(sluiceapi.ShareNoteKey+1), NameForKey(1))
	}
	if NewRequest(sluiceapi.ShareNoteKey+1) != nil || NewResponse(sluiceapi.ShareNoteKey+1) != nil {
		t.Error("NewRequest or NewResponse made a message for an unknown Sluice key")
	}
}
