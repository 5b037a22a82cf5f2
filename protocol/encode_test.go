package protocol

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"reflect"
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// TestAppendResponse frames a random response of every supported (key,
// version), then reads it back as a client does: size, correlation id,
// response-header tags when flexible (never for ApiVersions), and the body
// decoded with kmsg.
func TestAppendResponse(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	for _, a := range Supported {
		for v := a.Versions.Min; v <= a.Versions.Max; v++ {
			t.Run(fmt.Sprintf("%s/v%d", a.Name, v), func(t *testing.T) {
				for range 10 {
					resp := NewResponse(a.Key)
					fill(r, reflect.ValueOf(resp))
					resp.SetVersion(v)
					h := Header{Key: a.Key, Version: v, CorrelationID: int32(r.Uint32())}
					prefix := []byte("existing")
					out := AppendResponse(bytes.Clone(prefix), h, resp)
					if !bytes.HasPrefix(out, prefix) {
						t.Fatal("dst prefix lost")
					}
					frame := out[len(prefix):]
					if size := binary.BigEndian.Uint32(frame); int(size) != len(frame)-4 {
						t.Fatalf("size %d, frame %d", size, len(frame)-4)
					}
					if corr := int32(binary.BigEndian.Uint32(frame[4:])); corr != h.CorrelationID {
						t.Fatalf("correlation id %d, want %d", corr, h.CorrelationID)
					}
					body := frame[8:]
					flexHeader := resp.IsFlexible() && a.Key != 18
					if flexHeader {
						if body[0] != 0 {
							t.Fatalf("response header tags = %d", body[0])
						}
						body = body[1:]
					}
					want := resp.AppendTo(nil)
					if !bytes.Equal(body, want) {
						t.Fatalf("body differs")
					}
					got := NewResponse(a.Key)
					got.SetVersion(v)
					if err := got.ReadFrom(body); err != nil {
						t.Fatalf("kmsg cannot read the response: %v", err)
					}
					if !bytes.Equal(got.AppendTo(nil), want) {
						t.Fatalf("decoded response re-encodes differently")
					}
				}
			})
		}
	}
}

func TestApiVersionsResponseHeaderIsV0(t *testing.T) {
	for v := int16(0); v <= 4; v++ {
		resp := kmsg.NewPtrApiVersionsResponse()
		resp.SetVersion(v)
		FillApiVersions(resp)
		out := AppendResponse(nil, Header{Key: 18, Version: v, CorrelationID: 5}, resp)
		got := kmsg.NewPtrApiVersionsResponse()
		got.SetVersion(v)
		if err := got.ReadFrom(out[8:]); err != nil {
			t.Fatalf("v%d: %v", v, err)
		}
		if !reflect.DeepEqual(got.ApiKeys, resp.ApiKeys) {
			t.Fatalf("v%d: api keys differ", v)
		}
	}
}

func TestAppendApiVersionsFallback(t *testing.T) {
	req, err := Decode(header(18, 9, 1234, 3, "cli", 0, 1, 2))
	if err == nil || req == nil {
		t.Fatalf("expected unsupported version with a header, got %v", err)
	}
	out := AppendApiVersionsFallback(nil, req.Header.CorrelationID)
	if int(binary.BigEndian.Uint32(out)) != len(out)-4 || int32(binary.BigEndian.Uint32(out[4:])) != 1234 {
		t.Fatalf("bad frame header %x", out[:8])
	}
	resp := kmsg.NewPtrApiVersionsResponse()
	resp.SetVersion(0)
	if err := resp.ReadFrom(out[8:]); err != nil {
		t.Fatal(err)
	}
	if resp.ErrorCode != 35 || len(resp.ApiKeys) != len(Supported) {
		t.Fatalf("error code %d, %d keys", resp.ErrorCode, len(resp.ApiKeys))
	}
	for i, k := range resp.ApiKeys {
		if k.ApiKey != Supported[i].Key || k.MinVersion != Supported[i].Versions.Min || k.MaxVersion != Supported[i].Versions.Max {
			t.Fatalf("entry %d: %+v", i, k)
		}
	}
	// v0 body: error code, then the array and nothing else.
	if want := 2 + 4 + 6*len(Supported); len(out)-8 != want {
		t.Fatalf("v0 body is %d bytes, want %d", len(out)-8, want)
	}
}

func TestAppendResponseMismatchPanics(t *testing.T) {
	for _, tc := range []struct {
		h    Header
		resp kmsg.Response
	}{
		{Header{Key: 3, Version: 12}, func() kmsg.Response { r := kmsg.NewPtrMetadataResponse(); r.SetVersion(11); return r }()},
		{Header{Key: 3, Version: 0}, kmsg.NewPtrFetchResponse()},
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("no panic for %+v", tc.h)
				}
			}()
			AppendResponse(nil, tc.h, tc.resp)
		}()
	}
}
