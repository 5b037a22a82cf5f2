package batch

import "math"

// Kafka's record format uses protobuf-style zigzag varints: "varint" for
// int32 values (at most 5 bytes) and "varlong" for int64 (at most 10).
// The readers below never index past the slice and reject encodings that
// are too long or overflow, returning n <= 0:
//
//	n == 0: the slice ended inside the varint
//	n < 0:  the varint is too long or its value overflows

const (
	maxVarintLen  = 5
	maxVarlongLen = 10
)

// readUvarint decodes an unsigned LEB128 value of at most maxLen bytes.
func readUvarint(b []byte, maxLen int) (uint64, int) {
	var x uint64
	var s uint
	for i := 0; i < maxLen; i++ {
		if i == len(b) {
			return 0, 0
		}
		c := b[i]
		if c < 0x80 {
			if i == maxVarlongLen-1 && c > 1 {
				return 0, -1 // bits beyond 64
			}
			return x | uint64(c)<<s, i + 1
		}
		x |= uint64(c&0x7f) << s
		s += 7
	}
	return 0, -1
}

// readVarint decodes a zigzag varint that must fit in an int32.
func readVarint(b []byte) (int32, int) {
	if len(b) > 0 && b[0] < 0x80 { // fast path: one byte
		u := uint32(b[0])
		return int32(u>>1) ^ -int32(u&1), 1
	}
	u, n := readUvarint(b, maxVarintLen)
	if n <= 0 {
		return 0, n
	}
	if u > math.MaxUint32 {
		return 0, -1
	}
	return int32(uint32(u)>>1) ^ -int32(uint32(u)&1), n
}

// readVarlong decodes a zigzag varlong (int64).
func readVarlong(b []byte) (int64, int) {
	if len(b) > 0 && b[0] < 0x80 {
		u := uint64(b[0])
		return int64(u>>1) ^ -int64(u&1), 1
	}
	u, n := readUvarint(b, maxVarlongLen)
	if n <= 0 {
		return 0, n
	}
	return int64(u>>1) ^ -int64(u&1), n
}

// appendVarint appends v as a zigzag varint.
func appendVarint(b []byte, v int32) []byte {
	return appendUvarint(b, uint64(uint32(v<<1)^uint32(v>>31)))
}

// appendVarlong appends v as a zigzag varlong.
func appendVarlong(b []byte, v int64) []byte {
	return appendUvarint(b, uint64(v<<1)^uint64(v>>63))
}

// appendUvarint appends u in unsigned LEB128.
func appendUvarint(b []byte, u uint64) []byte {
	for u >= 0x80 {
		b = append(b, byte(u)|0x80)
		u >>= 7
	}
	return append(b, byte(u))
}

// varintLen returns the encoded size of v as a zigzag varint.
func varintLen(v int32) int { return uvarintLen(uint64(uint32(v<<1) ^ uint32(v>>31))) }

// varlongLen returns the encoded size of v as a zigzag varlong.
func varlongLen(v int64) int { return uvarintLen(uint64(v<<1) ^ uint64(v>>63)) }

// uvarintLen returns the encoded size of u in unsigned LEB128.
func uvarintLen(u uint64) int {
	n := 1
	for u >= 0x80 {
		u >>= 7
		n++
	}
	return n
}
