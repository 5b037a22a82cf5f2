// Package brokertest starts in-process Sluice brokers and clusters for the
// tests of other packages (the client, sluicectl, the bench tool), as
// net/http/httptest does for servers. Only tests should import it.
package brokertest

import (
	"context"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/sluicemq/sluice/broker"
	"github.com/sluicemq/sluice/broker/config"
)

// Config is a single-node broker over dir on loopback ports the kernel
// chooses, with timings shortened for tests: a fast election, short
// fetch waits, a short initial rebalance delay and few offsets partitions.
func Config(dir string) config.Config {
	cfg := config.Default()
	cfg.DataDir, cfg.KafkaAddr, cfg.HTTPAddr, cfg.RaftAddr = dir, "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0"
	cfg.RaftHeartbeatTimeout = 100 * time.Millisecond
	cfg.FetchMaxWaitMax = time.Second
	cfg.GroupInitialRebalanceDelay = 50 * time.Millisecond
	cfg.GroupMinSessionTimeout = time.Second
	cfg.OffsetsTopicPartitions = 4
	return cfg
}

// Launch starts a broker without waiting for it to be ready: a cluster's
// voters are ready only once a quorum of them runs.
func Launch(cfg config.Config) (*broker.Broker, error) {
	b, err := broker.New(cfg, zerolog.Nop())
	if err != nil {
		return nil, err
	}
	if err := b.Start(); err != nil {
		return nil, err
	}
	return b, nil
}

// WaitReady waits up to 30 s for b to be ready, and shuts it down if it
// is not.
func WaitReady(b *broker.Broker) error {
	deadline := time.Now().Add(30 * time.Second)
	for !b.Ready() {
		if time.Now().After(deadline) {
			b.Shutdown(context.Background())
			return fmt.Errorf("brokertest: broker not ready within 30s")
		}
		time.Sleep(5 * time.Millisecond)
	}
	return nil
}

// Start launches a broker and waits until it is ready (for TestMain,
// which has no *testing.T; the caller shuts it down).
func Start(cfg config.Config) (*broker.Broker, error) {
	b, err := Launch(cfg)
	if err != nil {
		return nil, err
	}
	return b, WaitReady(b)
}

// Run starts a ready single-node broker over a temporary directory, shut
// down when the test ends; mod adjusts its config.
func Run(t testing.TB, mod ...func(*config.Config)) *broker.Broker {
	t.Helper()
	cfg := Config(t.TempDir())
	for _, m := range mod {
		m(&cfg)
	}
	b, err := Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Shutdown(context.Background()) })
	return b
}

// Cluster starts n brokers (ids 1..n, the first voters of them controller
// voters) with replication factor 3 by default and no automatic leader
// balancing (leadership stays where a test puts it), and waits until all
// are ready. mod, when not nil, adjusts each broker's config.
func Cluster(t testing.TB, n, voters int, mod func(*config.Config)) []*broker.Broker {
	t.Helper()
	var lns []net.Listener
	var addrs []string
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		lns = append(lns, ln)
		addrs = append(addrs, ln.Addr().String())
	}
	for _, ln := range lns { // held together, so no two are the same
		ln.Close()
	}
	var vs []string
	for i := range voters {
		vs = append(vs, fmt.Sprintf("%d@%s", i+1, addrs[i]))
	}
	var out []*broker.Broker
	for i := range n {
		cfg := Config(t.TempDir())
		cfg.NodeID, cfg.RaftAddr = int32(i+1), addrs[i]
		cfg.ControllerVoters = strings.Join(vs, ",")
		cfg.RaftHeartbeatTimeout = 250 * time.Millisecond
		cfg.DefaultReplicationFactor = 3
		cfg.AutoLeaderRebalance = false
		if mod != nil {
			mod(&cfg)
		}
		b, err := Launch(cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { b.Shutdown(context.Background()) })
		out = append(out, b)
	}
	for _, b := range out {
		if err := WaitReady(b); err != nil {
			t.Fatal(err)
		}
	}
	return out
}
