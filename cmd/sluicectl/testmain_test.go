package main

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/sluicemq/sluice/broker"
	"github.com/sluicemq/sluice/broker/config"
)

// brokerAddr and adminAddr are the in-process broker TestMain starts; the
// environment points sluicectl at it (SLUICE_BROKERS, SLUICE_ADMIN_URL),
// and XDG_CONFIG_HOME at an empty directory so no user config is read.
var brokerAddr, adminAddr string

func TestMain(m *testing.M) {
	os.Exit(testMain(m))
}

func testMain(m *testing.M) int {
	dir, err := os.MkdirTemp("", "sluicectl-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	b, err := startBroker(testConfig(dir + "/data"))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer b.Shutdown(context.Background())
	brokerAddr, adminAddr = b.KafkaAddr(), b.HTTPAddr()
	os.Setenv(envBrokers, brokerAddr)
	os.Setenv(envAdminURL, adminAddr)
	os.Setenv("XDG_CONFIG_HOME", dir+"/config")
	return m.Run()
}

// testConfig is a single-node broker on kernel-chosen loopback ports with
// timings shortened for tests (as client/main_test.go).
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

func startBroker(cfg config.Config) (*broker.Broker, error) {
	b, err := launchBroker(cfg)
	if err != nil {
		return nil, err
	}
	return b, waitReady(b)
}

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

// startCluster starts n in-process brokers (ids 1..n), the first voters of
// them controller voters, as client/cluster_test.go does.
func startCluster(t *testing.T, n, voters int) []*broker.Broker {
	t.Helper()
	var addrs []string
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addrs = append(addrs, ln.Addr().String())
		ln.Close()
	}
	var vs []string
	for i := range voters {
		vs = append(vs, fmt.Sprintf("%d@%s", i+1, addrs[i]))
	}
	var out []*broker.Broker
	for i := range n {
		cfg := testConfig(t.TempDir())
		cfg.NodeID = int32(i + 1)
		cfg.RaftAddr = addrs[i]
		cfg.ControllerVoters = strings.Join(vs, ",")
		cfg.RaftHeartbeatTimeout = 250 * time.Millisecond
		cfg.DefaultReplicationFactor = 3
		cfg.AutoLeaderRebalance = false
		b, err := launchBroker(cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { b.Shutdown(context.Background()) })
		out = append(out, b)
	}
	for _, b := range out {
		if err := waitReady(b); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

// result is one sluicectl run.
type result struct {
	stdout, stderr string
	code           int
}

// sctl runs sluicectl with args and stdin, as the binary would.
func sctl(t *testing.T, stdin string, args ...string) result {
	t.Helper()
	return sctlCtx(context.Background(), stdin, args...)
}

func sctlCtx(ctx context.Context, stdin string, args ...string) result {
	var out, errb bytes.Buffer
	code := run(ctx, args, strings.NewReader(stdin), &out, &errb)
	return result{out.String(), errb.String(), code}
}

// ok runs sluicectl and fails the test unless it exits 0.
func ok(t *testing.T, args ...string) string {
	t.Helper()
	r := sctl(t, "", args...)
	if r.code != exitOK {
		t.Fatalf("sluicectl %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), r.code, r.stdout, r.stderr)
	}
	return r.stdout
}

// fails runs sluicectl and checks its exit code and that stderr names want.
func fails(t *testing.T, code int, want string, args ...string) result {
	t.Helper()
	r := sctl(t, "", args...)
	if r.code != code || !strings.Contains(r.stderr, want) {
		t.Fatalf("sluicectl %s: exit %d, stderr %q; want exit %d mentioning %q", strings.Join(args, " "), r.code, r.stderr, code, want)
	}
	return r
}

func uniq(t *testing.T, what string) string {
	return fmt.Sprintf("%s-%s-%d", what, strings.ReplaceAll(strings.ToLower(t.Name()), "/", "-"), time.Now().UnixNano()%1e9)
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 30s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// lines splits output into lines, without the trailing empty one.
func lines(s string) []string {
	return strings.Split(strings.TrimRight(s, "\n"), "\n")
}

// fields splits each line of a table into its columns.
func fields(s string) [][]string {
	var out [][]string
	for _, l := range lines(s) {
		out = append(out, strings.Fields(l))
	}
	return out
}
