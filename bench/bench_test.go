package bench_test

import (
	"bytes"
	"context"
	"errors"
	"math"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicemq/sluice/bench"
	"github.com/sluicemq/sluice/broker/brokertest"
)

// config is a small count-based run against addr.
func config(addr, topic string, w bench.Workload, n int64) bench.Config {
	cfg := bench.DefaultConfig()
	cfg.Workload, cfg.Brokers, cfg.Topic = w, []string{addr}, topic
	cfg.Messages, cfg.Duration = n, 0
	cfg.MessageSize = 256
	cfg.Interval = 100 * time.Millisecond
	cfg.DrainTimeout = 20 * time.Second
	return cfg
}

func run(t *testing.T, cfg bench.Config) *bench.Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var mu sync.Mutex
	var progress []bench.Sample
	cfg.Progress = func(s bench.Sample) { mu.Lock(); progress = append(progress, s); mu.Unlock() }
	res, err := bench.Run(ctx, cfg)
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(progress) != len(res.Series) {
		t.Errorf("%d progress calls, %d series points: want one call per point", len(progress), len(res.Series))
	}
	return res
}

func checkOrdered(t *testing.T, what string, l bench.Latency) {
	t.Helper()
	if l.Count == 0 {
		t.Errorf("%s: no values", what)
		return
	}
	if !(l.P50 > 0 && l.P50 <= l.P99 && l.P99 <= l.P999 && l.P999 <= l.Max) {
		t.Errorf("%s: percentiles out of order: p50 %v p99 %v p99.9 %v max %v", what, l.P50, l.P99, l.P999, l.Max)
	}
}

func near(a, b float64) bool { return math.Abs(a-b) <= 1e-9*math.Max(1, math.Abs(b)) }

func checkProduce(t *testing.T, p *bench.ProduceResult, n int64, size int) {
	t.Helper()
	if p == nil {
		t.Fatal("no produce results")
	}
	if p.Produced != n || p.Acknowledged+p.Failed != p.Produced || p.Failed != 0 {
		t.Errorf("produced %d acknowledged %d failed %d (first error %q), want %d = %d + 0",
			p.Produced, p.Acknowledged, p.Failed, p.FirstError, n, n)
	}
	if p.Bytes != p.Acknowledged*int64(size) {
		t.Errorf("bytes %d, want %d x %d", p.Bytes, p.Acknowledged, size)
	}
	if p.Seconds <= 0 || !near(p.MsgsPerSec, float64(p.Acknowledged)/p.Seconds) || !near(p.MBPerSec, float64(p.Bytes)/p.Seconds/1e6) {
		t.Errorf("rates inconsistent: %d msgs, %d bytes over %v s gave %v msg/s, %v MB/s", p.Acknowledged, p.Bytes, p.Seconds, p.MsgsPerSec, p.MBPerSec)
	}
	checkOrdered(t, "publish latency", p.Latency)
	if p.Latency.Count != p.Acknowledged {
		t.Errorf("publish latency has %d values for %d acknowledgements", p.Latency.Count, p.Acknowledged)
	}
}

// checkSeries checks the per-interval points add up to the totals.
func checkSeries(t *testing.T, res *bench.Result) {
	t.Helper()
	if len(res.Series) == 0 {
		t.Fatal("no series points")
	}
	var acked, consumed float64
	for i, s := range res.Series {
		if i > 0 && s.Elapsed <= res.Series[i-1].Elapsed {
			t.Errorf("series time goes backwards at %d", i)
		}
		acked += s.ProduceMsgsPerSec * s.Seconds
		consumed += s.ConsumeMsgsPerSec * s.Seconds
	}
	last := res.Series[len(res.Series)-1]
	if p := res.Produce; p != nil && (last.Acknowledged != p.Acknowledged || math.Abs(acked-float64(p.Acknowledged)) > 0.5) {
		t.Errorf("series acknowledged %d (sum of rates %v), results %d", last.Acknowledged, acked, p.Acknowledged)
	}
	if c := res.Consume; c != nil && (last.Consumed != c.Consumed || math.Abs(consumed-float64(c.Consumed)) > 0.5) {
		t.Errorf("series consumed %d (sum of rates %v), results %d", last.Consumed, consumed, c.Consumed)
	}
}

func TestRunProduceCountsAddUp(t *testing.T) {
	addr := brokertest.Run(t).KafkaAddr()
	cfg := config(addr, "produce", bench.Produce, 3000)
	cfg.Partitions, cfg.Producers = 3, 2
	cfg.KeyDist, cfg.Keys = bench.Zipf, 100
	cfg.Compression = "zstd"
	res := run(t, cfg)
	checkProduce(t, res.Produce, 3000, 256)
	checkSeries(t, res)
	if res.Consume != nil || res.EndToEnd != nil {
		t.Error("a produce run reports consume or end-to-end results")
	}
	if !res.Topic.Created || res.Topic.Partitions != 3 || res.Topic.ReplicationFactor != 1 {
		t.Errorf("topic %+v, want created with 3 partitions, rf 1", res.Topic)
	}
	if res.Produce.SendDelay != nil {
		t.Error("maximum-throughput run reports a send delay")
	}
}

func TestRunConsumeFillsThenReadsBacklog(t *testing.T) {
	addr := brokertest.Run(t).KafkaAddr()
	cfg := config(addr, "backlog", bench.Consume, 2500)
	cfg.Partitions, cfg.Consumers = 3, 2
	res := run(t, cfg)
	checkProduce(t, res.Produce, 2500, 256) // the fill
	if c := res.Consume; c == nil || c.Consumed != 2500 || c.Bytes != 2500*256 {
		t.Fatalf("consume %+v, want 2500 messages of 256 bytes", c)
	}
	c := res.Consume
	if c.Seconds <= 0 || !near(c.MsgsPerSec, float64(c.Consumed)/c.Seconds) || c.CatchUpMsgsPerSec != c.MsgsPerSec {
		t.Errorf("consume rates inconsistent: %+v", c)
	}
	checkSeries(t, res)

	// Again over the same topic, reused, until it is read: no fill.
	cfg = config(addr, "backlog", bench.Consume, 0)
	cfg.Duration, cfg.Reuse = time.Minute, true
	res = run(t, cfg)
	if res.Produce != nil {
		t.Error("reading a full topic filled it")
	}
	if res.Consume.Consumed != 2500 || res.Topic.Created || len(res.Notes) == 0 {
		t.Errorf("reuse: consumed %d, created %v, notes %q; want 2500, false, a note", res.Consume.Consumed, res.Topic.Created, res.Notes)
	}
}

func TestRunEndToEndConsumesEverythingProduced(t *testing.T) {
	addr := brokertest.Run(t).KafkaAddr()
	cfg := config(addr, "e2e", bench.EndToEnd, 3000)
	cfg.Partitions, cfg.Producers, cfg.Consumers = 2, 2, 2
	cfg.Compression = "lz4"
	res := run(t, cfg)
	checkProduce(t, res.Produce, 3000, 256)
	c := res.Consume
	if c == nil || c.Consumed != res.Produce.Produced {
		t.Fatalf("consumed %+v, want all %d produced", c, res.Produce.Produced)
	}
	if res.EndToEnd == nil || res.EndToEnd.Count != c.Consumed {
		t.Fatalf("end-to-end latency %+v, want one value per message consumed (%d)", res.EndToEnd, c.Consumed)
	}
	checkOrdered(t, "end-to-end latency", *res.EndToEnd)
	checkSeries(t, res)
	if len(res.Notes) != 0 {
		t.Errorf("notes %q, want none", res.Notes)
	}
}

// A share group's consumers may outnumber the partitions, and together
// read the whole backlog from the topic's start.
func TestRunShareGroupReadsBacklogWithMoreConsumersThanPartitions(t *testing.T) {
	addr := brokertest.Run(t).KafkaAddr()
	cfg := config(addr, "queue", bench.Consume, 2000)
	cfg.Partitions, cfg.Consumers, cfg.ShareGroup = 2, 4, "bench-workers"
	res := run(t, cfg)
	checkProduce(t, res.Produce, 2000, 256)
	// Deliveries are counted: a record released by a member's session
	// change is delivered again, so at least every record once.
	if c := res.Consume; c == nil || c.Consumed < 2000 || c.Bytes != c.Consumed*256 {
		t.Fatalf("consume %+v, want at least 2000 deliveries of 256 bytes", c)
	}
	checkSeries(t, res)

	adm := kadm.NewClient(mustClient(t, addr))
	groups, err := adm.ListGroupsByType(context.Background(), []string{"share"})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := groups["bench-workers"]; !ok {
		t.Errorf("share groups %v, want bench-workers", groups.Groups())
	}
}

func mustClient(t *testing.T, addr string) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

func TestRunOpenLoopSendsTheScheduledCount(t *testing.T) {
	addr := brokertest.Run(t).KafkaAddr()
	// Duration-bound: 2 producers x 250/s for 1 s is 500 sends on the
	// schedule, however late the machine runs them.
	cfg := config(addr, "rate", bench.Produce, 0)
	cfg.Duration, cfg.Rate, cfg.Producers = time.Second, 500, 2
	res := run(t, cfg)
	checkProduce(t, res.Produce, 500, 256)
	if d := res.Produce.SendDelay; d == nil || d.Count != 500 {
		t.Errorf("send delay %+v, want 500 values", d)
	}

	// Count-bound.
	cfg = config(addr, "rate", bench.EndToEnd, 300)
	cfg.Rate = 2000
	res = run(t, cfg)
	checkProduce(t, res.Produce, 300, 256)
	if res.Consume.Consumed != 300 {
		t.Errorf("consumed %d, want 300", res.Consume.Consumed)
	}
}

func TestRunResultJSONRoundTrips(t *testing.T) {
	addr := brokertest.Run(t).KafkaAddr()
	cfg := config(addr, "json", bench.EndToEnd, 500)
	res := run(t, cfg)
	res.Config.Progress = nil
	var buf bytes.Buffer
	if err := res.WriteJSON(&buf); err != nil {
		t.Fatal(err)
	}
	got, err := bench.ReadResult(bytes.NewReader(buf.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	var again bytes.Buffer
	if err := got.WriteJSON(&again); err != nil {
		t.Fatal(err)
	}
	if again.String() != buf.String() {
		t.Errorf("JSON changed on a round trip:\n%s\nthen\n%s", buf.String(), again.String())
	}
	if got.Schema != bench.Schema || got.Produce.Acknowledged != 500 || got.Config.Linger != cfg.Linger {
		t.Errorf("decoded %+v", got)
	}
	var s strings.Builder
	if err := got.WriteSummary(&s); err != nil || !strings.Contains(s.String(), "end to end") {
		t.Errorf("summary (%v):\n%s", err, s.String())
	}
}

func TestRunErrors(t *testing.T) {
	addr := brokertest.Run(t).KafkaAddr()
	ctx := context.Background()

	cfg := config(addr, "missing", bench.Produce, 10)
	cfg.Reuse = true
	if _, err := bench.Run(ctx, cfg); !errors.Is(err, bench.ErrTopic) {
		t.Errorf("reuse of a missing topic: %v, want ErrTopic", err)
	}

	cfg = config(addr, "few", bench.EndToEnd, 10)
	cfg.Partitions, cfg.Consumers = 1, 2
	if _, err := bench.Run(ctx, cfg); !errors.Is(err, bench.ErrConfig) {
		t.Errorf("2 consumers on 1 partition: %v, want ErrConfig", err)
	}

	cfg = config(addr, "empty", bench.Consume, 0)
	cfg.Duration = time.Second
	if _, err := bench.Run(ctx, cfg); !errors.Is(err, bench.ErrTopic) {
		t.Errorf("consume of an empty topic: %v, want ErrTopic", err)
	}

	cfg = config("127.0.0.1:1", "x", bench.Produce, 10)
	cfg.ConnectTimeout = 300 * time.Millisecond
	if _, err := bench.Run(ctx, cfg); !errors.Is(err, bench.ErrUnreachable) {
		t.Errorf("no broker: %v, want ErrUnreachable", err)
	}
}

func TestConfigValidate(t *testing.T) {
	for name, mod := range map[string]func(*bench.Config){
		"workload":        func(c *bench.Config) { c.Workload = "both" },
		"no brokers":      func(c *bench.Config) { c.Brokers = nil },
		"no topic":        func(c *bench.Config) { c.Topic = "" },
		"partitions":      func(c *bench.Config) { c.Partitions = 0 },
		"rf":              func(c *bench.Config) { c.ReplicationFactor = 0 },
		"e2e size":        func(c *bench.Config) { c.Workload, c.MessageSize = bench.EndToEnd, 8 },
		"key dist":        func(c *bench.Config) { c.KeyDist = "normal" },
		"zipf s":          func(c *bench.Config) { c.KeyDist, c.ZipfS = bench.Zipf, 1 },
		"acks":            func(c *bench.Config) { c.Acks = "2" },
		"compression":     func(c *bench.Config) { c.Compression = "brotli" },
		"batch":           func(c *bench.Config) { c.BatchMaxBytes = 10 },
		"producers":       func(c *bench.Config) { c.Producers = 0 },
		"consumers":       func(c *bench.Config) { c.Workload, c.Consumers = bench.Consume, 0 },
		"endless":         func(c *bench.Config) { c.Messages, c.Duration = 0, 0 },
		"rate":            func(c *bench.Config) { c.Rate = -1 },
		"in flight":       func(c *bench.Config) { c.MaxInFlight = 0 },
		"drain timeout":   func(c *bench.Config) { c.DrainTimeout = 0 },
		"connect timeout": func(c *bench.Config) { c.ConnectTimeout = 0 },
		"interval":        func(c *bench.Config) { c.Interval = 0 },
	} {
		cfg := bench.DefaultConfig()
		mod(&cfg)
		if err := cfg.Validate(); !errors.Is(err, bench.ErrConfig) {
			t.Errorf("%s: %v, want ErrConfig", name, err)
		}
	}
	cfg := bench.DefaultConfig()
	if err := cfg.Validate(); err != nil {
		t.Errorf("defaults: %v", err)
	}
}
