package protocol

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"net"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// Splice stands for one large bytes field (a fetch's record batches) that
// is written from the caller's buffers instead of being copied into the
// encoding. The caller puts Marker in the kmsg field; Parts are the real
// bytes, in order.
type Splice struct {
	Marker [16]byte
	Parts  [][]byte
}

// AppendSplicedResponse encodes resp as AppendResponse does, then replaces
// each splice's field (the length prefix and marker kmsg wrote) with a
// prefix for the real length followed by its parts. It returns the frame as
// buffers for writev (pieces of the returned dst and the parts) so the
// parts are never copied. Splices must be given in encoding order; a marker
// that cannot be found is an error and nothing should be written.
func AppendSplicedResponse(dst []byte, h Header, resp kmsg.Response, splices []Splice) (net.Buffers, []byte, error) {
	start := len(dst)
	dst = AppendResponse(dst, h, resp)
	flexible := resp.IsFlexible()
	// Each prefix goes at the end of dst, so the encoding is never moved
	// once the pieces slice into it: reserve room first.
	encoded := len(dst)
	dst = append(dst, make([]byte, 5*len(splices))...)[:encoded]
	var out net.Buffers
	size := len(dst) - start - 4
	at := start + 4
	prefixes := len(dst)
	for _, s := range splices {
		i := bytes.Index(dst[at:prefixes], s.Marker[:])
		if i < 0 {
			return nil, dst[:start], fmt.Errorf("protocol: splice marker not found in %s response", kmsg.NameForKey(h.Key))
		}
		i += at
		var old []byte
		if flexible {
			old = binary.AppendUvarint(nil, uint64(len(s.Marker))+1)
		} else {
			old = binary.BigEndian.AppendUint32(nil, uint32(len(s.Marker)))
		}
		p := i - len(old)
		if p < at || !bytes.Equal(dst[p:i], old) {
			return nil, dst[:start], fmt.Errorf("protocol: splice marker in %s response is not a whole bytes field", kmsg.NameForKey(h.Key))
		}
		n := 0
		for _, part := range s.Parts {
			n += len(part)
		}
		pstart := len(dst)
		if flexible {
			dst = binary.AppendUvarint(dst, uint64(n)+1)
		} else {
			dst = binary.BigEndian.AppendUint32(dst, uint32(n))
		}
		out = append(out, dst[at:p], dst[pstart:])
		for _, part := range s.Parts {
			if len(part) > 0 {
				out = append(out, part)
			}
		}
		size += len(dst) - pstart - len(old) - len(s.Marker) + n
		at = i + len(s.Marker)
	}
	out = append(out, dst[at:prefixes])
	binary.BigEndian.PutUint32(dst[start:], uint32(size))
	return append(net.Buffers{dst[start : start+4]}, out...), dst, nil
}
