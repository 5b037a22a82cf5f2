package client_test

import (
	"context"
	"fmt"
	"os"
	"testing"

	"github.com/sluicemq/sluice/broker/brokertest"
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
	b, err := brokertest.Start(brokertest.Config(dir))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer b.Shutdown(context.Background())
	brokerAddr, adminAddr = b.KafkaAddr(), b.HTTPAddr()
	return m.Run()
}
