package broker

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicemq/sluice/broker/config"
)

// startBroker runs a broker on loopback ports chosen by the kernel over dir.
func startBroker(t *testing.T, dir string, mod ...func(*config.Config)) *Broker {
	t.Helper()
	cfg := config.Default()
	cfg.DataDir, cfg.KafkaAddr, cfg.HTTPAddr, cfg.RaftAddr = dir, "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0"
	cfg.FetchMaxWaitMax = 2 * time.Second
	cfg.RaftHeartbeatTimeout = 100 * time.Millisecond
	for _, m := range mod {
		m(&cfg)
	}
	b := runBroker(t, cfg)
	waitUntil(t, "broker ready", b.Ready)
	return b
}

// runBroker starts a broker with cfg, to be shut down when the test ends.
func runBroker(t testing.TB, cfg config.Config) *Broker {
	t.Helper()
	b, err := New(cfg, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Shutdown(context.Background()) })
	return b
}

// waitUntil polls ok for up to 20 s.
func waitUntil(t testing.TB, what string, ok func() bool) {
	t.Helper()
	waitFor(t, 20*time.Second, what, ok)
}

// waitFor polls ok for up to d.
func waitFor(t testing.TB, d time.Duration, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, d)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// waitLeaders waits until every partition of topic has a leader here, so
// raw requests that bypass a client's retries find one.
func waitLeaders(t testing.TB, b *Broker, topic string) {
	t.Helper()
	waitUntil(t, "leaders of "+topic, func() bool {
		tp := b.reg.get(topic)
		if tp == nil {
			return false
		}
		for _, p := range tp.parts {
			if id, _ := p.Leader(); p == nil || id == "" {
				return false
			}
		}
		return true
	})
}

func newClient(t *testing.T, b *Broker, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(b.KafkaAddr()), kgo.RetryTimeout(10 * time.Second)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return c
}

func createTopic(t *testing.T, b *Broker, name string, partitions int32, configs map[string]*string) {
	t.Helper()
	adm := kadm.NewClient(newClient(t, b))
	resp, err := adm.CreateTopic(ctx(t), partitions, 1, configs, name)
	if err != nil || resp.Err != nil {
		t.Fatalf("create %s: %v %v", name, err, resp.Err)
	}
	waitLeaders(t, b, name)
}

// consume reads n records of topic from the start (or the given offsets).
func consume(t *testing.T, b *Broker, topic string, n int, offsets map[int32]kgo.Offset) []*kgo.Record {
	t.Helper()
	opts := []kgo.Opt{kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxWait(200 * time.Millisecond)}
	if offsets != nil {
		opts = []kgo.Opt{kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: offsets}), kgo.FetchMaxWait(200 * time.Millisecond)}
	}
	cl := newClient(t, b, opts...)
	var out []*kgo.Record
	c := ctx(t)
	for len(out) < n {
		fs := cl.PollFetches(c)
		if err := c.Err(); err != nil {
			t.Fatalf("consumed %d of %d records of %s: %v", len(out), n, topic, err)
		}
		fs.EachError(func(_ string, _ int32, err error) { t.Fatalf("fetch: %v", err) })
		out = append(out, fs.Records()...)
	}
	return out
}

func TestProduceConsumeWithEveryCodecAcksAndIdempotence(t *testing.T) {
	b := startBroker(t, t.TempDir())
	codecs := map[string]kgo.CompressionCodec{
		"none": kgo.NoCompression(), "gzip": kgo.GzipCompression(), "snappy": kgo.SnappyCompression(),
		"lz4": kgo.Lz4Compression(), "zstd": kgo.ZstdCompression(),
	}
	acks := map[string]kgo.Acks{"all": kgo.AllISRAcks(), "leader": kgo.LeaderAck(), "none": kgo.NoAck()}
	for cname, codec := range codecs {
		for aname, ack := range acks {
			for _, idem := range []bool{true, false} {
				if idem && aname != "all" {
					continue // idempotence requires acks=all, as in Kafka
				}
				name := fmt.Sprintf("%s-%s-idem-%v", cname, aname, idem)
				t.Run(name, func(t *testing.T) {
					topic := "t-" + name
					createTopic(t, b, topic, 3, nil)
					opts := []kgo.Opt{kgo.ProducerBatchCompression(codec), kgo.RequiredAcks(ack), kgo.DefaultProduceTopic(topic)}
					if !idem {
						opts = append(opts, kgo.DisableIdempotentWrite())
					}
					cl := newClient(t, b, opts...)
					const n = 300
					var recs []*kgo.Record
					for i := 0; i < n; i++ {
						recs = append(recs, &kgo.Record{
							Key:     []byte(fmt.Sprintf("user-%d", i%7)),
							Value:   []byte(strings.Repeat(fmt.Sprintf("event %d ", i), 5)),
							Headers: []kgo.RecordHeader{{Key: "seq", Value: []byte(fmt.Sprint(i))}},
						})
					}
					if err := cl.ProduceSync(ctx(t), recs...).FirstErr(); err != nil {
						t.Fatal(err)
					}
					if aname == "none" {
						cl.Flush(ctx(t))
					}
					got := consume(t, b, topic, n, nil)
					// Per key, records arrive in produce order with their headers.
					last := map[string]int{}
					for _, r := range got {
						var i int
						fmt.Sscan(string(r.Headers[0].Value), &i)
						if want := fmt.Sprintf("user-%d", i%7); string(r.Key) != want {
							t.Fatalf("record %d has key %s, want %s", i, r.Key, want)
						}
						if prev, ok := last[string(r.Key)]; ok && i <= prev {
							t.Fatalf("key %s: record %d after %d", r.Key, i, prev)
						}
						last[string(r.Key)] = i
					}
					if len(got) != n {
						t.Fatalf("consumed %d records, want %d", len(got), n)
					}
				})
			}
		}
	}
}

func TestConsumeFromLatestOffsetAndTimestamp(t *testing.T) {
	b := startBroker(t, t.TempDir())
	createTopic(t, b, "events", 1, nil)
	cl := newClient(t, b, kgo.DefaultProduceTopic("events"))
	base := time.Now().Add(-time.Hour).Truncate(time.Millisecond)
	for i := 0; i < 10; i++ {
		r := &kgo.Record{Value: []byte(fmt.Sprint(i)), Timestamp: base.Add(time.Duration(i) * time.Minute)}
		if err := cl.ProduceSync(ctx(t), r).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	check := func(name string, off kgo.Offset, want string) {
		got := consume(t, b, "events", 1, map[int32]kgo.Offset{0: off})
		if string(got[0].Value) != want {
			t.Errorf("%s: first record %q, want %q", name, got[0].Value, want)
		}
	}
	check("exact offset", kgo.NewOffset().At(4), "4")
	check("timestamp", kgo.NewOffset().AfterMilli(base.Add(6*time.Minute).UnixMilli()), "6")
	check("between timestamps", kgo.NewOffset().AfterMilli(base.Add(6*time.Minute+time.Second).UnixMilli()), "7")
	check("relative to the end", kgo.NewOffset().AtEnd().Relative(-2), "8")

	// From latest: only what is produced after the consumer starts.
	cons := newClient(t, b, kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{"events": {0: kgo.NewOffset().AtEnd()}}), kgo.FetchMaxWait(100*time.Millisecond))
	fs := cons.PollFetches(ctx(t)) // resolves the end offset (and long-polls)
	if n := len(fs.Records()); n != 0 {
		t.Fatalf("latest consumer saw %d old records", n)
	}
	if err := cl.ProduceSync(ctx(t), &kgo.Record{Value: []byte("new")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	for {
		fs := cons.PollFetches(ctx(t))
		if rs := fs.Records(); len(rs) > 0 {
			if string(rs[0].Value) != "new" {
				t.Fatalf("latest consumer got %q", rs[0].Value)
			}
			break
		}
	}
}

func TestAdminTopicLifecycle(t *testing.T) {
	b := startBroker(t, t.TempDir())
	adm := kadm.NewClient(newClient(t, b))
	c := ctx(t)
	ms := "3600000"
	if r, err := adm.CreateTopic(c, 2, 1, map[string]*string{"retention.ms": &ms}, "orders"); err != nil || r.Err != nil {
		t.Fatalf("create: %v %v", err, r.Err)
	}
	bad := []struct {
		name       string
		topic      string
		partitions int32
		rf         int16
		configs    map[string]*string
		want       error
	}{
		{"exists", "orders", 1, 1, nil, kerr.TopicAlreadyExists},
		{"bad name", "no/slashes", 1, 1, nil, kerr.InvalidTopicException},
		{"too long", strings.Repeat("x", 250), 1, 1, nil, kerr.InvalidTopicException},
		{"zero partitions", "p0", 0, 1, nil, kerr.InvalidPartitions},
		{"rf 3 on one node", "rf3", 1, 3, nil, kerr.InvalidReplicationFactor},
		{"unknown config", "cfg1", 1, 1, map[string]*string{"retention.mss": &ms}, kerr.InvalidConfig},
		{"bad config value", "cfg2", 1, 1, map[string]*string{"retention.ms": strPtr("soon")}, kerr.InvalidConfig},
	}
	for _, tc := range bad {
		// kadm returns the topic's error both as err and as r.Err.
		r, err := adm.CreateTopic(c, tc.partitions, tc.rf, tc.configs, tc.topic)
		if !errors.Is(err, tc.want) || !errors.Is(r.Err, tc.want) {
			t.Errorf("%s: %v %v, want %v", tc.name, err, r.Err, tc.want)
		}
		if r.ErrMessage == "" {
			t.Errorf("%s: no error message explains the refusal", tc.name)
		}
	}
	rc, err := adm.DescribeTopicConfigs(c, "orders")
	if err != nil {
		t.Fatal(err)
	}
	cfg, _ := rc.On("orders", nil)
	vals := map[string]string{}
	for _, kv := range cfg.Configs {
		vals[kv.Key] = kv.MaybeValue()
	}
	if vals["retention.ms"] != "3600000" || vals["segment.bytes"] != "1073741824" {
		t.Fatalf("described configs %v", vals)
	}
	if _, err := adm.AlterTopicConfigs(c, []kadm.AlterConfig{{Name: "retention.ms", Value: strPtr("60000")}, {Op: kadm.DeleteConfig, Name: "segment.bytes"}}, "orders"); err != nil {
		t.Fatal(err)
	}
	resps, err := adm.AlterTopicConfigs(c, []kadm.AlterConfig{{Name: "cleanup.policy", Value: strPtr("bogus")}}, "orders")
	if err != nil || !errors.Is(resps[0].Err, kerr.InvalidConfig) {
		t.Fatalf("bad alter: %v %+v", err, resps)
	}
	if _, err := adm.CreatePartitions(c, 3, "orders"); err != nil {
		t.Fatal(err)
	}
	td, err := adm.ListTopics(c, "orders")
	if err != nil || len(td["orders"].Partitions) != 5 {
		t.Fatalf("after adding 3 partitions: %v %d", err, len(td["orders"].Partitions))
	}
	if r, err := adm.CreatePartitions(c, 0, "orders"); err == nil && r["orders"].Err == nil {
		t.Fatal("adding 0 partitions was accepted")
	}
	if r, err := adm.DeleteTopics(c, "orders"); err != nil || r["orders"].Err != nil {
		t.Fatalf("delete: %v %v", err, r["orders"].Err)
	}
	if r, _ := adm.DeleteTopics(c, "orders"); !errors.Is(r["orders"].Err, kerr.UnknownTopicOrPartition) {
		t.Fatalf("second delete: %v", r["orders"].Err)
	}
	td, _ = adm.ListTopics(c)
	if td.Has("orders") {
		t.Fatal("deleted topic still listed")
	}
}

func strPtr(s string) *string { return &s }

func TestListOffsetsAndDeleteRecords(t *testing.T) {
	b := startBroker(t, t.TempDir())
	createTopic(t, b, "logs", 1, nil)
	cl := newClient(t, b, kgo.DefaultProduceTopic("logs"))
	for i := 0; i < 20; i++ {
		if err := cl.ProduceSync(ctx(t), &kgo.Record{Value: []byte("x")}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	adm := kadm.NewClient(cl)
	del, err := adm.DeleteRecords(ctx(t), kadm.Offsets{"logs": {0: {At: 12}}})
	if err != nil || del["logs"][0].Err != nil || del["logs"][0].LowWatermark != 12 {
		t.Fatalf("delete records: %v %+v", err, del)
	}
	start, _ := adm.ListStartOffsets(ctx(t), "logs")
	end, _ := adm.ListEndOffsets(ctx(t), "logs")
	if s, _ := start.Lookup("logs", 0); s.Offset != 12 {
		t.Fatalf("start offset %d, want 12", s.Offset)
	}
	if e, _ := end.Lookup("logs", 0); e.Offset != 20 {
		t.Fatalf("end offset %d, want 20", e.Offset)
	}
	got := consume(t, b, "logs", 8, nil)
	if got[0].Offset != 12 {
		t.Fatalf("consuming from the start begins at %d, want 12", got[0].Offset)
	}
}

func TestRestartKeepsRecordsTopicsAndProducerState(t *testing.T) {
	dir := t.TempDir()
	b := startBroker(t, dir)
	createTopic(t, b, "durable", 2, map[string]*string{"segment.bytes": strPtr("2048")})
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.KafkaAddr()), kgo.DefaultProduceTopic("durable"))
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 200; i++ {
		if err := cl.ProduceSync(ctx(t), &kgo.Record{Key: []byte(fmt.Sprint(i % 5)), Value: []byte(fmt.Sprint(i))}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	cl.Close()
	b.Shutdown(context.Background())

	b = startBroker(t, dir)
	got := consume(t, b, "durable", 200, nil)
	seen := map[string]bool{}
	for _, r := range got {
		seen[string(r.Value)] = true
	}
	if len(seen) != 200 {
		t.Fatalf("after restart %d distinct records, want 200", len(seen))
	}
	// The broker keeps producing after restart with a new idempotent producer.
	cl = newClient(t, b, kgo.DefaultProduceTopic("durable"))
	if err := cl.ProduceSync(ctx(t), &kgo.Record{Value: []byte("after")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
}

func TestAutoCreateAndUnknownTopic(t *testing.T) {
	b := startBroker(t, t.TempDir())
	cl := newClient(t, b, kgo.AllowAutoTopicCreation(), kgo.DefaultProduceTopic("auto"))
	if err := cl.ProduceSync(ctx(t), &kgo.Record{Value: []byte("v")}).FirstErr(); err != nil {
		t.Fatalf("produce with auto-creation: %v", err)
	}
	off := startBroker(t, t.TempDir(), func(c *config.Config) { c.AutoCreateTopics = false })
	cl2 := newClient(t, off, kgo.AllowAutoTopicCreation(), kgo.DefaultProduceTopic("nope"), kgo.RecordRetries(2), kgo.RetryTimeout(2*time.Second))
	err := cl2.ProduceSync(ctx(t), &kgo.Record{Value: []byte("v")}).FirstErr()
	if !errors.Is(err, kerr.UnknownTopicOrPartition) {
		t.Fatalf("produce to a missing topic with auto-creation off: %v", err)
	}
}

func TestHTTPHealthReadinessAndMetrics(t *testing.T) {
	b := startBroker(t, t.TempDir())
	createTopic(t, b, "m", 1, nil)
	cl := newClient(t, b, kgo.DefaultProduceTopic("m"))
	if err := cl.ProduceSync(ctx(t), &kgo.Record{Value: []byte("v")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	get := func(path string) (int, string) {
		resp, err := http.Get("http://" + b.HTTPAddr() + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	if code, _ := get("/healthz"); code != 200 {
		t.Fatalf("healthz %d", code)
	}
	if code, _ := get("/readyz"); code != 200 {
		t.Fatalf("readyz %d", code)
	}
	// An error shows in the request metric with its Kafka code.
	if err := newClient(t, b, kgo.DefaultProduceTopic("m"), kgo.RequiredAcks(kgo.LeaderAck()), kgo.DisableIdempotentWrite(), kgo.ProducerBatchMaxBytes(2<<20), kgo.RecordRetries(0), kgo.ProducerBatchCompression(kgo.NoCompression())).
		ProduceSync(ctx(t), &kgo.Record{Value: make([]byte, 1<<20+100)}).FirstErr(); !errors.Is(err, kerr.MessageTooLarge) {
		t.Fatalf("oversized record: %v", err)
	}
	_, m := get("/metrics")
	for _, want := range []string{`sluice_requests_total{api="Produce",code="none"}`, `sluice_requests_total{api="Produce",code="MESSAGE_TOO_LARGE"} 1`, `sluice_bytes_in_total{topic="m"}`, `sluice_log_end_offset{partition="0",topic="m"} 1`} {
		if !strings.Contains(m, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}

// A client that sends half a request and stalls loses its connection after
// connections_max_idle instead of holding it (and its buffer) forever.
func TestIdleAndStalledConnectionsAreClosed(t *testing.T) {
	b := startBroker(t, t.TempDir(), func(c *config.Config) { c.ConnectionsMaxIdle = time.Second })
	for _, send := range [][]byte{nil, {0, 0, 0, 100, 0, 18}} { // idle; half a frame
		nc, err := net.Dial("tcp", b.KafkaAddr())
		if err != nil {
			t.Fatal(err)
		}
		nc.Write(send)
		nc.SetReadDeadline(time.Now().Add(15 * time.Second))
		_, err = nc.Read(make([]byte, 1))
		nc.Close()
		if err != io.EOF {
			t.Fatalf("after sending %v: read %v, want the broker to close the connection (EOF)", send, err)
		}
	}
}
