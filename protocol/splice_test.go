package protocol

import (
	"bytes"
	"math/rand/v2"
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// For every Fetch version, splicing the record batches in must produce
// exactly the bytes kmsg produces when the batches are copied in.
func TestSplicedFetchMatchesKmsg(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 9))
	randBytes := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		return b
	}
	for v := int16(4); v <= 16; v++ {
		for trial := 0; trial < 20; trial++ {
			build := func(records func(ti, pi int) []byte) *kmsg.FetchResponse {
				resp := kmsg.NewPtrFetchResponse()
				resp.SetVersion(v)
				resp.SessionID = 0
				for ti := 0; ti < 2; ti++ {
					ft := kmsg.NewFetchResponseTopic()
					ft.Topic = "topic-" + string(rune('a'+ti))
					ft.TopicID = [16]byte{byte(ti + 1)}
					for pi := 0; pi < 3; pi++ {
						fp := kmsg.NewFetchResponseTopicPartition()
						fp.Partition, fp.HighWatermark, fp.LastStableOffset = int32(pi), 1000, 1000
						fp.RecordBatches = records(ti, pi)
						ft.Partitions = append(ft.Partitions, fp)
					}
					resp.Topics = append(resp.Topics, ft)
				}
				return resp
			}
			var parts [2][3][][]byte
			for ti := range parts {
				for pi := range parts[ti] {
					for k := rng.IntN(4); k > 0; k-- {
						parts[ti][pi] = append(parts[ti][pi], randBytes(rng.IntN(300)))
					}
				}
			}
			h := Header{Key: 1, Version: v, CorrelationID: 42}
			want := AppendResponse(nil, h, build(func(ti, pi int) []byte { return append([]byte{}, bytes.Join(parts[ti][pi], nil)...) }))

			var splices []Splice
			resp := build(func(ti, pi int) []byte {
				var s Splice
				copy(s.Marker[:], randBytes(16))
				s.Parts = parts[ti][pi]
				splices = append(splices, s)
				m := s.Marker
				return m[:]
			})
			bufs, _, err := AppendSplicedResponse([]byte("prefix"), h, resp, splices)
			if err != nil {
				t.Fatalf("v%d: %v", v, err)
			}
			if got := bytes.Join(bufs, nil); !bytes.Equal(got, want) {
				i := 0
				for i < len(got) && got[i] == want[i] {
					i++
				}
				t.Fatalf("v%d trial %d: spliced encoding differs from kmsg's (%d vs %d bytes) at byte %d: got % x want % x", v, trial, len(got), len(want), i, got[max(i-8, 0):min(i+8, len(got))], want[max(i-8, 0):min(i+8, len(want))])
			}
		}
	}
}

func TestSpliceMarkerMissing(t *testing.T) {
	resp := kmsg.NewPtrFetchResponse()
	resp.SetVersion(12)
	if _, _, err := AppendSplicedResponse(nil, Header{Key: 1, Version: 12}, resp, []Splice{{Marker: [16]byte{1, 2, 3}}}); err == nil {
		t.Fatal("a marker absent from the encoding was accepted")
	}
}
