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

	"github.com/twmb/franz-go/pkg/kadm"

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

// TestKcatBalancedConsumer: librdkafka's group consumer (kcat -G) joins a
// group on a three-broker cluster, consumes, commits, and a second run of
// the same group resumes after what the first committed.
func TestKcatBalancedConsumer(t *testing.T) {
	bs := groupCluster(t)
	cl := newClient(t, bs[1])
	createRF(t, cl, "welcome", 3, 3)
	produceN(t, cl, "welcome", 0, 30)

	run := func() []string {
		out := kcat(t, "", "-b", bs[2].KafkaAddr(), "-G", "mailer", "welcome", "-e", "-q",
			"-X", "auto.offset.reset=earliest", "-X", "session.timeout.ms=6000", "-f", "%s\n")
		var vals []string
		for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
			if l != "" && !strings.Contains(l, "%") {
				vals = append(vals, l)
			}
		}
		sort.Strings(vals)
		return vals
	}
	if got := run(); len(got) != 30 {
		t.Fatalf("first kcat -G run consumed %d records, want 30: %v", len(got), got)
	}
	adm := kadm.NewClient(cl)
	waitFor(t, 20*time.Second, "kcat's commits", func() bool {
		fo, err := adm.FetchOffsets(ctx(t), "mailer")
		if err != nil {
			return false
		}
		var sum int64
		fo.Each(func(o kadm.OffsetResponse) { sum += o.At })
		return sum == 30
	})
	produceN(t, cl, "welcome", 30, 5)
	got := run()
	want := []string{"30", "31", "32", "33", "34"}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("second kcat -G run consumed %v, want only the 5 new records %v", got, want)
	}
}
