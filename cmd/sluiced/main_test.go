package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "sluiced-bin")
	if err != nil {
		panic(err)
	}
	binary = filepath.Join(dir, "sluiced")
	if out, err := exec.Command("go", "build", "-o", binary, ".").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build sluiced: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// handedOut remembers every address freeAddr returned in this process:
// the kernel may offer a just-closed port again, and two brokers (or a
// broker's Kafka and raft listeners) given the same one fail to start.
var (
	handedOutMu sync.Mutex
	handedOut   = map[string]bool{}
)

func freeAddr(t testing.TB) string {
	t.Helper()
	handedOutMu.Lock()
	defer handedOutMu.Unlock()
	for {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close()
		if !handedOut[addr] {
			handedOut[addr] = true
			return addr
		}
	}
}

// start runs sluiced and waits for its "sluiced serving" log line.
func start(t *testing.T, dataDir, kafka string) (*exec.Cmd, *strings.Builder) {
	t.Helper()
	cmd, _, logs := startArgs(t, dataDir, kafka)
	return cmd, logs
}

// startArgs is start with extra flags; it also returns the HTTP address.
func startArgs(t *testing.T, dataDir, kafka string, extra ...string) (*exec.Cmd, string, *strings.Builder) {
	t.Helper()
	httpAddr := freeAddr(t)
	args := append([]string{"--data-dir", dataDir, "--kafka-addr", kafka, "--http-addr", httpAddr,
		"--raft-addr", freeAddr(t), "--raft-heartbeat-timeout", "200ms", "--log-format", "json"}, extra...)
	cmd := exec.Command(binary, args...)
	stderr, _ := cmd.StderrPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	logs := &strings.Builder{}
	ready := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stderr)
		once := false
		for sc.Scan() {
			logs.WriteString(sc.Text() + "\n")
			if !once && strings.Contains(sc.Text(), "sluiced serving") {
				once = true
				close(ready)
			}
		}
	}()
	select {
	case <-ready:
	case <-time.After(20 * time.Second):
		cmd.Process.Kill()
		t.Fatalf("sluiced did not start:\n%s", logs)
	}
	return cmd, httpAddr, logs
}

func TestSigtermShutsDownCleanlyAndDataSurvives(t *testing.T) {
	dir, kafka := t.TempDir(), freeAddr(t)
	cmd, logs := start(t, dir, kafka)
	cl, err := kgo.NewClient(kgo.SeedBrokers(kafka), kgo.DefaultProduceTopic("signups"), kgo.AllowAutoTopicCreation())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for i := 0; i < 100; i++ {
		if err := cl.ProduceSync(ctx, &kgo.Record{Key: []byte("k"), Value: []byte(fmt.Sprint(i))}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	cl.Close()
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("sluiced exited with %v after SIGTERM:\n%s", err, logs)
	}
	// Logs are JSON lines (not a terminal) and say it stopped.
	var sawStop bool
	for _, line := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("log line is not JSON: %q", line)
		}
		sawStop = sawStop || m["message"] == "sluiced stopped"
	}
	if !sawStop {
		t.Fatalf("no 'sluiced stopped' line:\n%s", logs)
	}

	cmd, _ = start(t, dir, kafka)
	defer func() { cmd.Process.Signal(syscall.SIGTERM); cmd.Wait() }()
	readNumbered(ctx, t, kafka, "signups", 100)
}

// readNumbered reads topic from its start and checks it holds exactly
// the records "0" .. n-1, in order.
func readNumbered(ctx context.Context, t *testing.T, kafka, topic string, n int) {
	t.Helper()
	cons, err := kgo.NewClient(kgo.SeedBrokers(kafka), kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cons.Close()
	var got []string
	for len(got) < n {
		fs := cons.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("read back %d of %d records of %s", len(got), n, topic)
		}
		fs.EachRecord(func(r *kgo.Record) { got = append(got, string(r.Value)) })
	}
	for i, v := range got {
		if v != fmt.Sprint(i) {
			t.Fatalf("record %d is %q", i, v)
		}
	}
}

func TestHelpAndBadFlags(t *testing.T) {
	out, err := exec.Command(binary, "--help").CombinedOutput()
	if err != nil {
		t.Fatalf("--help: %v", err)
	}
	for _, want := range []string{"--data-dir", "--kafka-addr", "--auto-create-topics", "--retention-ms", "SLUICE_"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("--help lacks %s", want)
		}
	}
	err = exec.Command(binary, "--node-id", "banana").Run()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 2 {
		t.Fatalf("bad flag: %v, want exit 2", err)
	}
}
