// Package keys maps record keys to partitions exactly as Kafka's default
// partitioner does (murmur2, positive modulo), so Sluice's client, Kafka's
// Java client, franz-go and librdkafka's murmur2_random agree on where a
// key's events go. It has no dependencies so clients can import it.
package keys

// Murmur2 is Kafka's murmur2 (org.apache.kafka.common.utils.Utils.murmur2):
// MurmurHash2 32-bit with seed 0x9747b28c, reading 4-byte little-endian
// blocks.
func Murmur2(data []byte) int32 {
	const (
		seed = uint32(0x9747b28c)
		m    = uint32(0x5bd1e995)
		r    = 24
	)
	h := seed ^ uint32(len(data))
	n := len(data) / 4 * 4
	for i := 0; i < n; i += 4 {
		k := uint32(data[i]) | uint32(data[i+1])<<8 | uint32(data[i+2])<<16 | uint32(data[i+3])<<24
		k *= m
		k ^= k >> r
		k *= m
		h *= m
		h ^= k
	}
	switch len(data) % 4 {
	case 3:
		h ^= uint32(data[n+2]) << 16
		fallthrough
	case 2:
		h ^= uint32(data[n+1]) << 8
		fallthrough
	case 1:
		h ^= uint32(data[n])
		h *= m
	}
	h ^= h >> 13
	h *= m
	h ^= h >> 15
	return int32(h)
}

// Partition returns the partition for a non-nil key among n partitions:
// (murmur2(key) & 0x7fffffff) % n, Kafka's toPositive then modulo.
// It returns -1 when n <= 0. Records with a nil key are not placed by
// their key (clients spread them, e.g. sticky partitioning).
func Partition(key []byte, n int32) int32 {
	if n <= 0 {
		return -1
	}
	return (Murmur2(key) & 0x7fffffff) % n
}
