package client_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluicemq/sluice/client"
	"github.com/sluicemq/sluice/partition/keys"
)

var seq atomic.Int64

// uniq names a topic or group after the test, unique within the run.
func uniq(t *testing.T, what string) string {
	name := regexp.MustCompile(`[^a-zA-Z0-9]+`).ReplaceAllString(t.Name(), "-")
	return fmt.Sprintf("%s-%s-%d", strings.ToLower(name), what, seq.Add(1))
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func newClient(t *testing.T, opts ...client.Option) *client.Client {
	t.Helper()
	c, err := client.New(append([]client.Option{client.Brokers(brokerAddr), client.AdminAddr(adminAddr)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

func createTopic(t *testing.T, c *client.Client, name string, partitions int32) {
	t.Helper()
	if err := c.Admin().CreateTopic(testCtx(t), client.TopicSpec{Name: name, Partitions: partitions}); err != nil {
		t.Fatal(err)
	}
}

// consumer runs Consume in the background and records what it handled.
type consumer struct {
	mu      sync.Mutex
	handled []*client.Record
	cancel  context.CancelFunc
	done    chan error
}

// startConsumer runs c.Consume with h wrapped to record every record h
// finished without error.
func startConsumer(t *testing.T, c *client.Client, group string, topics []string, h client.Handler, opts ...client.ConsumerOption) *consumer {
	t.Helper()
	ctx, cancel := context.WithCancel(testCtx(t))
	cs := &consumer{cancel: cancel, done: make(chan error, 1)}
	go func() {
		cs.done <- c.Consume(ctx, group, topics, func(ctx context.Context, r *client.Record) error {
			if h != nil {
				if err := h(ctx, r); err != nil {
					return err
				}
			}
			cs.mu.Lock()
			cs.handled = append(cs.handled, r)
			cs.mu.Unlock()
			return nil
		}, opts...)
	}()
	t.Cleanup(func() { cs.stop() })
	return cs
}

func (cs *consumer) records() []*client.Record {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	return slices.Clone(cs.handled)
}

// wait polls until the consumer handled at least n records.
func (cs *consumer) wait(t *testing.T, n int) []*client.Record {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		rs := cs.records()
		if len(rs) >= n {
			return rs
		}
		select {
		case err := <-cs.done:
			cs.done <- err
			t.Fatalf("consumer returned after %d of %d records: %v", len(rs), n, err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("consumer handled %d of %d records in 60s", len(rs), n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// stop cancels the consumer and returns what Consume returned.
func (cs *consumer) stop() error {
	cs.cancel()
	err := <-cs.done
	cs.done <- err
	return err
}

func TestRoundTripKeysHeadersCompression(t *testing.T) {
	for _, codec := range []client.Codec{client.CompressionNone, client.CompressionGzip, client.CompressionSnappy, client.CompressionLZ4, client.CompressionZstd} {
		t.Run(string(codec), func(t *testing.T) {
			ctx := testCtx(t)
			c := newClient(t, client.Compression(codec))
			topic := uniq(t, "t")
			createTopic(t, c, topic, 3)
			ts := time.UnixMilli(time.Now().UnixMilli())
			const n = 50
			var wg sync.WaitGroup
			var failed atomic.Int64
			for i := range n {
				r := &client.Record{
					Topic: topic, Key: fmt.Appendf(nil, "user-%d", i%7), Value: bytes.Repeat(fmt.Appendf(nil, "v%d;", i), 20),
					Headers: []client.Header{{Key: "seq", Value: fmt.Appendf(nil, "%d", i)}, {Key: "empty"}}, Timestamp: ts,
				}
				wg.Add(1)
				c.Produce(ctx, r, func(r *client.Record, err error) {
					defer wg.Done()
					if err != nil || r.Offset < 0 {
						failed.Add(1)
					}
				})
			}
			if err := c.Flush(ctx); err != nil {
				t.Fatal(err)
			}
			wg.Wait()
			if failed.Load() != 0 {
				t.Fatalf("%d produces failed", failed.Load())
			}
			cs := startConsumer(t, c, uniq(t, "g"), []string{topic}, nil)
			got := cs.wait(t, n)
			if err := cs.stop(); err != nil {
				t.Fatal(err)
			}
			if len(got) != n {
				t.Fatalf("handled %d records, want %d (duplicates?)", len(got), n)
			}
			seen := map[string]bool{}
			for _, r := range got {
				i := string(r.Headers[0].Value)
				want := bytes.Repeat([]byte("v"+i+";"), 20)
				if r.Headers[0].Key != "seq" || r.Headers[1].Key != "empty" || len(r.Headers[1].Value) != 0 {
					t.Fatalf("headers %v", r.Headers)
				}
				if !bytes.Equal(r.Value, want) || !r.Timestamp.Equal(ts) {
					t.Fatalf("record %s: value %q timestamp %v, want %q %v", i, r.Value, r.Timestamp, want, ts)
				}
				var k int
				fmt.Sscanf(i, "%d", &k)
				if string(r.Key) != fmt.Sprintf("user-%d", k%7) {
					t.Fatalf("record %s: key %q", i, r.Key)
				}
				seen[i] = true
			}
			if len(seen) != n {
				t.Fatalf("%d distinct records, want %d", len(seen), n)
			}
		})
	}
}

// Keyed records land where Kafka's murmur2 puts them, and a key's records
// are handled in produce order.
func TestKeyedPartitioningMatchesMurmur2(t *testing.T) {
	ctx := testCtx(t)
	c := newClient(t)
	topic := uniq(t, "t")
	const parts, nkeys, per = 8, 40, 5
	createTopic(t, c, topic, parts)
	var rs []*client.Record
	for i := range per {
		for k := range nkeys {
			rs = append(rs, &client.Record{Topic: topic, Key: fmt.Appendf(nil, "key-%d", k), Value: fmt.Appendf(nil, "%d", i)})
		}
	}
	if err := c.ProduceSync(ctx, rs...); err != nil {
		t.Fatal(err)
	}
	used := map[int32]bool{}
	for _, r := range rs {
		if want := keys.Partition(r.Key, parts); r.Partition != want {
			t.Fatalf("key %q went to partition %d, murmur2 says %d", r.Key, r.Partition, want)
		}
		used[r.Partition] = true
	}
	if len(used) < parts/2 {
		t.Fatalf("only partitions %v used", used)
	}
	cs := startConsumer(t, c, uniq(t, "g"), []string{topic}, nil)
	got := cs.wait(t, len(rs))
	next := map[string]int{}
	for _, r := range got {
		if want := keys.Partition(r.Key, parts); r.Partition != want {
			t.Fatalf("consumed key %q from partition %d, want %d", r.Key, r.Partition, want)
		}
		if v := string(r.Value); v != fmt.Sprint(next[string(r.Key)]) {
			t.Fatalf("key %q: got value %s, want %d: per-key order broken", r.Key, v, next[string(r.Key)])
		}
		next[string(r.Key)]++
	}
}

// A nil record or one without a topic fails in its callback, not by panic.
func TestProduceInvalidRecord(t *testing.T) {
	c := newClient(t)
	ctx := testCtx(t)
	if err := c.ProduceSync(ctx, nil); err == nil {
		t.Fatal("nil record: no error")
	}
	err := c.ProduceSync(ctx, &client.Record{Value: []byte("x")})
	var ce *client.Error
	if !errors.As(err, &ce) || ce.Op != "produce" {
		t.Fatalf("record without topic: %v, want an *Error from produce", err)
	}
}

func containsStr(s, sub string) bool { return strings.Contains(s, sub) }
