package client_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/sluicemq/sluice/client"
	"github.com/sluicemq/sluice/partition/keys"
)

// The sign-up flow: the sign-up service publishes "send a confirmation
// email" and answers the user at once; email workers in the group "email"
// send the emails, retrying transient failures with backoff and parking
// poison records in a dead-letter topic; the analytics group replays the
// same events on its own, from the beginning.
func Example_signupEmails() {
	ctx := context.Background()
	c, err := client.New(client.Brokers(brokerAddr), client.ClientID("signup-service"))
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	adm := c.Admin()
	for _, t := range []client.TopicSpec{{Name: "signups", Partitions: 3}, {Name: "signups.dlq", Partitions: 1}} {
		if err := adm.CreateTopic(ctx, t); err != nil && !errors.Is(err, client.ErrTopicExists) {
			log.Fatal(err)
		}
	}

	// The sign-up service: keyed by user, so one user's events stay in
	// order. Produce returns at once; the callback reports the outcome.
	signUp := func(user, email string) {
		c.Produce(ctx, &client.Record{Topic: "signups", Key: []byte(user), Value: []byte(email)}, func(_ *client.Record, err error) {
			if err != nil {
				log.Printf("sign-up of %s not published: %v", user, err)
			}
		})
	}
	signUp("ann", "ann@example.com")
	signUp("bob", "bob@example.com")
	signUp("eve", "not-an-address")
	if err := c.Flush(ctx); err != nil {
		log.Fatal(err)
	}

	// The email workers. The mail server refuses bob's first attempt.
	mail := &mailServer{busyOnce: map[string]bool{"bob@example.com": true}}
	workers, stopWorkers := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		done <- c.Consume(workers, "email", []string{"signups"}, func(ctx context.Context, r *client.Record) error {
			addr := string(r.Value)
			if !strings.Contains(addr, "@") {
				return client.Permanent(fmt.Errorf("invalid address %q", addr)) // no retry can fix it
			}
			return mail.send(ctx, addr) // a transient error is retried
		}, client.Retries(5), client.RetryBackoff(50*time.Millisecond, 2*time.Second), client.OnError(c.DeadLetter("signups.dlq")))
	}()
	// Wait until the workers have committed every sign-up.
	deadline := time.Now().Add(time.Minute)
	for {
		lag, err := adm.Lag(ctx, "email")
		if err == nil && len(lag.Partitions) == 3 && lag.Total == 0 {
			break
		}
		if time.Now().After(deadline) {
			log.Fatalf("email workers still behind after a minute: %+v %v", lag, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	stopWorkers()
	if err := <-done; err != nil {
		log.Fatal(err)
	}
	for _, s := range mail.log() {
		fmt.Println(s)
	}

	// The poison record, parked with the reason.
	_ = consumeUntil(ctx, c, "dlq-audit", "signups.dlq", 1, func(r *client.Record) {
		for _, h := range r.Headers {
			if h.Key == client.HeaderDLQError {
				fmt.Printf("parked %q: %s\n", r.Value, h.Value)
			}
		}
	})

	// Analytics replays the same events independently of the email group.
	var users []string
	_ = consumeUntil(ctx, c, "analytics", "signups", 3, func(r *client.Record) { users = append(users, string(r.Key)) })
	slices.Sort(users)
	fmt.Println("analytics saw sign-ups of", users)

	// Output:
	// sent to ann@example.com (attempt 1)
	// sent to bob@example.com (attempt 2)
	// parked "not-an-address": invalid address "not-an-address"
	// analytics saw sign-ups of [ann bob eve]
}

// mailServer pretends to send emails; it is busy once for some addresses.
type mailServer struct {
	mu       sync.Mutex
	busyOnce map[string]bool
	attempts map[string]int
	sent     []string
}

func (m *mailServer) send(_ context.Context, addr string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.attempts == nil {
		m.attempts = map[string]int{}
	}
	m.attempts[addr]++
	if m.busyOnce[addr] && m.attempts[addr] == 1 {
		return errors.New("421 service not available, try again later")
	}
	m.sent = append(m.sent, fmt.Sprintf("sent to %s (attempt %d)", addr, m.attempts[addr]))
	return nil
}

func (m *mailServer) log() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Sorted(slices.Values(m.sent))
}

// consumeUntil runs group over topic until it has handled n records,
// calling fn for each, one at a time, or a minute has passed.
func consumeUntil(ctx context.Context, c *client.Client, group, topic string, n int, fn func(*client.Record)) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	var mu sync.Mutex
	seen := 0
	return c.Consume(ctx, group, []string{topic}, func(_ context.Context, r *client.Record) error {
		mu.Lock()
		defer mu.Unlock()
		if seen < n {
			fn(r)
		}
		if seen++; seen == n {
			cancel() // Consume commits and returns nil
		}
		return nil
	})
}

// Keyed records go where Kafka's murmur2 puts them, so every Kafka client
// agrees on a key's partition; a key's records are in produce order.
func ExampleClient_ProduceSync() {
	ctx := context.Background()
	c, err := client.New(client.Brokers(brokerAddr))
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	if err := c.Admin().CreateTopic(ctx, client.TopicSpec{Name: "orders", Partitions: 6}); err != nil {
		log.Fatal(err)
	}
	first := &client.Record{Topic: "orders", Key: []byte("customer-7"), Value: []byte("created")}
	second := &client.Record{Topic: "orders", Key: []byte("customer-7"), Value: []byte("paid")}
	if err := c.ProduceSync(ctx, first, second); err != nil {
		log.Fatal(err)
	}
	fmt.Println("same partition:", first.Partition == second.Partition)
	fmt.Println("murmur2 agrees:", first.Partition == keys.Partition([]byte("customer-7"), 6))
	fmt.Println("offsets:", first.Offset, second.Offset)
	// Output:
	// same partition: true
	// murmur2 agrees: true
	// offsets: 0 1
}

// Replaying an existing group: stop its consumers, reset its offsets,
// start them again.
func ExampleAdmin_ResetOffsets() {
	ctx := context.Background()
	c, err := client.New(client.Brokers(brokerAddr))
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	if err := c.Admin().CreateTopic(ctx, client.TopicSpec{Name: "invoices", Partitions: 1}); err != nil {
		log.Fatal(err)
	}
	for _, v := range []string{"a", "b", "c"} {
		if err := c.ProduceSync(ctx, &client.Record{Topic: "invoices", Value: []byte(v)}); err != nil {
			log.Fatal(err)
		}
	}
	if err := consumeUntil(ctx, c, "billing", "invoices", 3, func(*client.Record) {}); err != nil {
		log.Fatal(err)
	}

	resets, err := c.Admin().ResetOffsets(ctx, "billing", "invoices", client.AtOffset(1))
	if err != nil {
		log.Fatal(err)
	}
	for _, r := range resets {
		fmt.Printf("partition %d: %d -> %d\n", r.Partition, r.Old, r.New)
	}
	_ = consumeUntil(ctx, c, "billing", "invoices", 2, func(r *client.Record) { fmt.Printf("replayed %s\n", r.Value) })
	// Output:
	// partition 0: 3 -> 1
	// replayed b
	// replayed c
}

// Invalid options are reported at New, saying what is wrong.
func ExampleNew_invalidOption() {
	_, err := client.New(client.Brokers("127.0.0.1:9092"), client.Compression("brotli"))
	fmt.Println(err)
	fmt.Println(errors.Is(err, client.ErrInvalidOption))
	// Output:
	// client: invalid option: compression "brotli": want none, gzip, snappy, lz4 or zstd
	// true
}

// IsRetriable separates failures worth retrying from those that need a
// change first.
func ExampleIsRetriable() {
	ctx := context.Background()
	c, err := client.New(client.Brokers(brokerAddr))
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	_ = c.Admin().CreateTopic(ctx, client.TopicSpec{Name: "payments", Partitions: 1})
	err = c.Admin().CreateTopic(ctx, client.TopicSpec{Name: "payments", Partitions: 1})
	fmt.Println(errors.Is(err, client.ErrTopicExists), client.IsRetriable(err))
	// Output:
	// true false
}
