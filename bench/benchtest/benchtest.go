// Package benchtest starts an in-process single-node Sluice broker for
// tests that run bench workloads against a real broker, as net/http/httptest
// does for servers. Only tests should import it.
package benchtest

import (
	"context"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/sluicemq/sluice/broker"
	"github.com/sluicemq/sluice/broker/config"
)

// StartBroker runs a broker over a temporary directory on loopback ports the
// kernel chooses, shut down when the test ends, and returns its Kafka
// address once it is ready.
func StartBroker(t testing.TB) string {
	t.Helper()
	cfg := config.Default()
	cfg.DataDir, cfg.KafkaAddr, cfg.HTTPAddr, cfg.RaftAddr = t.TempDir(), "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0"
	// A one-voter group elects itself sooner with a short timeout.
	cfg.RaftHeartbeatTimeout = 100 * time.Millisecond
	b, err := broker.New(cfg, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Shutdown(context.Background()) })
	deadline := time.Now().Add(20 * time.Second)
	for !b.Ready() {
		if time.Now().After(deadline) {
			t.Fatal("broker not ready within 20s")
		}
		time.Sleep(5 * time.Millisecond)
	}
	return b.KafkaAddr()
}
