package keys

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"
)

// Vectors from Kafka's UtilsTest.testMurmur2.
func TestMurmur2KafkaVectors(t *testing.T) {
	tests := []struct {
		in   []byte
		want int32
	}{
		{[]byte("21"), -973932308},
		{[]byte("foobar"), -790332482},
		{[]byte("a-little-bit-long-string"), -985981536},
		{[]byte("a-little-bit-longer-string"), -1486304829},
		{[]byte("lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8"), -58897971},
		{[]byte{'a', 'b', 'c'}, 479470107},
	}
	for _, tc := range tests {
		if got := Murmur2(tc.in); got != tc.want {
			t.Errorf("Murmur2(%q) = %d, want %d", tc.in, got, tc.want)
		}
	}
}

// franz-go's default key partitioner must agree on every key and count.
func TestPartitionMatchesFranzGo(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	part := kgo.StickyKeyPartitioner(nil).ForTopic("t")
	for i := 0; i < 5000; i++ {
		key := make([]byte, rng.IntN(40))
		for j := range key {
			key[j] = byte(rng.Uint32())
		}
		n := 1 + rng.IntN(300)
		want := part.Partition(&kgo.Record{Key: key}, n)
		if got := Partition(key, int32(n)); int(got) != want {
			t.Fatalf("key %x over %d partitions: %d, franz-go says %d", key, n, got, want)
		}
	}
}

func TestPartitionEdges(t *testing.T) {
	if Partition([]byte("k"), 0) != -1 || Partition([]byte("k"), -3) != -1 {
		t.Fatal("non-positive partition counts must give -1")
	}
	if p := Partition([]byte{}, 7); p < 0 || p >= 7 {
		t.Fatalf("empty key: %d", p)
	}
}

func ExamplePartition() {
	fmt.Println(Partition([]byte("user-42"), 6))
	// Output: 4
}
