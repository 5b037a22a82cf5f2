package client_test

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/sluicemq/sluice/broker"
	"github.com/sluicemq/sluice/broker/config"
)

// brokerAddr and adminAddr are the Kafka and HTTP addresses of the
// in-process broker TestMain starts for the tests and examples. In
// production they would be e.g. "kafka-1:9092" and "kafka-1:9644".
var brokerAddr, adminAddr string

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	dir, err := os.MkdirTemp("", "sluice-client-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	b, err := startBroker(testConfig(dir))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer b.Shutdown(context.Background())
	brokerAddr, adminAddr = b.KafkaAddr(), b.HTTPAddr()
	return m.Run()
}

// testConfig is a single-node broker on kernel-chosen loopback ports, with
// timings shortened for tests.
func testConfig(dir string) config.Config {
	cfg := config.Default()
	cfg.DataDir, cfg.KafkaAddr, cfg.HTTPAddr, cfg.RaftAddr = dir, "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0"
	cfg.RaftHeartbeatTimeout = 100 * time.Millisecond
	cfg.FetchMaxWaitMax = time.Second
	cfg.GroupInitialRebalanceDelay = 50 * time.Millisecond
	cfg.GroupMinSessionTimeout = time.Second
	cfg.OffsetsTopicPartitions = 4
	return cfg
}

// startBroker starts a broker and waits until it is ready.
func startBroker(cfg config.Config) (*broker.Broker, error) {
	b, err := launchBroker(cfg)
	if err != nil {
		return nil, err
	}
	return b, waitReady(b)
}

// launchBroker starts a broker without waiting: a cluster's voters are
// ready only once a quorum of them runs.
func launchBroker(cfg config.Config) (*broker.Broker, error) {
	b, err := broker.New(cfg, zerolog.Nop())
	if err != nil {
		return nil, err
	}
	if err := b.Start(); err != nil {
		return nil, err
	}
	return b, nil
}

func waitReady(b *broker.Broker) error {
	deadline := time.Now().Add(30 * time.Second)
	for !b.Ready() {
		if time.Now().After(deadline) {
			b.Shutdown(context.Background())
			return fmt.Errorf("broker not ready within 30s")
		}
		time.Sleep(5 * time.Millisecond)
	}
	return nil
}
