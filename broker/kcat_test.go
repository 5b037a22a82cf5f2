package broker

import (
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/sluicemq/sluice/partition/keys"
)

// kcat runs kcat (librdkafka), an independent Kafka client. make test
// installs it through scripts/test-deps.sh.
func kcat(t *testing.T, stdin string, args ...string) string {
	t.Helper()
	path, err := exec.LookPath("kcat")
	if err != nil {
		t.Fatal("kcat is not installed: run scripts/test-deps.sh (make test does)")
	}
	c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(c, path, args...)
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("kcat %v: %v\n%s", args, err, out)
	}
	return string(out)
}

func TestKcatMetadataProduceConsume(t *testing.T) {
	b := startBroker(t, t.TempDir())
	createTopic(t, b, "signups", 3, nil)

	var md struct {
		Brokers []struct {
			ID   int32  `json:"id"`
			Name string `json:"name"`
		} `json:"brokers"`
		Topics []struct {
			Topic      string `json:"topic"`
			Partitions []struct {
				Partition int32 `json:"partition"`
				Leader    int32 `json:"leader"`
			} `json:"partitions"`
		} `json:"topics"`
	}
	out := kcat(t, "", "-b", b.KafkaAddr(), "-L", "-J")
	if err := json.Unmarshal([]byte(out[strings.Index(out, "{"):]), &md); err != nil {
		t.Fatalf("kcat -L -J: %v\n%s", err, out)
	}
	if len(md.Brokers) != 1 || md.Brokers[0].Name != b.KafkaAddr() {
		t.Fatalf("brokers %+v", md.Brokers)
	}
	found := false
	for _, tp := range md.Topics {
		if tp.Topic == "signups" {
			found = len(tp.Partitions) == 3 && tp.Partitions[0].Leader == 1
		}
	}
	if !found {
		t.Fatalf("kcat does not see signups with 3 partitions led by broker 1: %+v", md.Topics)
	}

	// Keyed, idempotent, lz4-compressed produce with Kafka's murmur2 partitioner.
	var in strings.Builder
	for i := 0; i < 60; i++ {
		fmt.Fprintf(&in, "user-%d:send confirmation email %d\n", i%9, i)
	}
	kcat(t, in.String(), "-b", b.KafkaAddr(), "-t", "signups", "-P", "-K", ":", "-z", "lz4",
		"-X", "enable.idempotence=true", "-X", "partitioner=murmur2_random")

	out = kcat(t, "", "-b", b.KafkaAddr(), "-t", "signups", "-C", "-e", "-q", "-o", "beginning", "-f", "%p|%k|%s\n")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 60 {
		t.Fatalf("kcat consumed %d messages, want 60:\n%s", len(lines), out)
	}
	var values []string
	for _, l := range lines {
		parts := strings.SplitN(l, "|", 3)
		var p int32
		fmt.Sscan(parts[0], &p)
		if want := keys.Partition([]byte(parts[1]), 3); p != want {
			t.Errorf("key %s on partition %d; Kafka's murmur2 puts it on %d", parts[1], p, want)
		}
		values = append(values, parts[2])
	}
	sort.Strings(values)
	if values[0] != "send confirmation email 0" {
		t.Fatalf("values %v", values[:3])
	}
}
