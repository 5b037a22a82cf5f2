package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/sluicemq/sluice/bench"
	"github.com/sluicemq/sluice/broker/brokertest"
)

// sb runs the CLI with args and returns its exit code, stdout and stderr.
func sb(t *testing.T, ctx context.Context, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := run(ctx, args, &out, &errOut)
	return code, out.String(), errOut.String()
}

func TestUsageErrorsExit2(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"produce", "--bogus"}, "unknown flag: --bogus"},
		{[]string{"produce", "--size", "x"}, "invalid argument"},
		{[]string{"produce", "extra"}, "unknown command"},
		{[]string{"produce", "--acks", "2"}, `acks "2"`},
		{[]string{"produce", "--compression", "brotli"}, "compression"},
		{[]string{"produce", "--key-dist", "zipf", "--zipf-s", "0.5"}, "zipf exponent"},
		{[]string{"produce", "--duration", "0"}, "would not end"},
		{[]string{"produce", "--reuse"}, "--reuse needs --topic"},
		{[]string{"e2e", "--size", "8"}, "at least 16"},
		{[]string{"consume", "--consumers", "0"}, "consumers 0"},
		{[]string{"compare", "a.json"}, "accepts 2 arg(s)"},
		{[]string{"plot", "r.json", "-o", "r.png"}, "only HTML"},
		{[]string{"nope"}, "unknown command"},
	} {
		code, _, stderr := sb(t, context.Background(), tc.args...)
		if code != exitUsage || !strings.Contains(stderr, tc.want) {
			t.Errorf("%q: exit %d, stderr %q; want %d and %q", tc.args, code, stderr, exitUsage, tc.want)
		}
	}
}

func TestUnreachableBrokerExit1(t *testing.T) {
	code, _, stderr := sb(t, context.Background(), "produce", "-b", "127.0.0.1:1", "--connect-timeout", "500ms", "-n", "10")
	if code != exitError || !strings.Contains(stderr, "unreachable") {
		t.Errorf("exit %d, stderr %q; want %d and 'unreachable'", code, stderr, exitError)
	}
}

func TestWorkloadsAgainstABroker(t *testing.T) {
	addr := brokertest.Run(t).KafkaAddr()
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a.json"), filepath.Join(dir, "b.json")

	code, stdout, stderr := sb(t, context.Background(), "produce", "-b", addr, "-t", "cli", "-n", "800", "-s", "100",
		"--partitions", "2", "--producers", "2", "--interval", "100ms", "--json", a)
	if code != exitOK {
		t.Fatalf("produce: exit %d\n%s", code, stderr)
	}
	if !strings.Contains(stdout, "produced 800 = acknowledged 800 + failed 0") {
		t.Errorf("produce summary:\n%s", stdout)
	}
	if !strings.Contains(stderr, "produce ") || !strings.Contains(stderr, "acked 800") {
		t.Errorf("no progress lines on stderr:\n%s", stderr)
	}

	// JSON on stdout instead of the table; quiet.
	code, stdout, stderr = sb(t, context.Background(), "e2e", "-b", addr, "-t", "cli", "-n", "600", "--consumers", "2",
		"--rate", "3000", "-q", "--json", "-")
	if code != exitOK || stderr != "" {
		t.Fatalf("e2e: exit %d, stderr %q", code, stderr)
	}
	var res bench.Result
	if err := json.Unmarshal([]byte(stdout), &res); err != nil {
		t.Fatalf("e2e --json -: %v\n%s", err, stdout)
	}
	if res.Produce.Produced != 600 || res.Consume.Consumed != 600 || res.EndToEnd.Count != 600 || res.Topic.Created {
		t.Errorf("e2e results: produce %+v consume %+v e2e %+v created %v", res.Produce, res.Consume, res.EndToEnd, res.Topic.Created)
	}
	if err := os.WriteFile(b, []byte(stdout), 0o644); err != nil {
		t.Fatal(err)
	}

	code, stdout, _ = sb(t, context.Background(), "compare", a, b)
	if code != exitOK || !strings.Contains(stdout, "produce") || !strings.Contains(stdout, "b/a") {
		t.Errorf("compare: exit %d\n%s", code, stdout)
	}
	code, stdout, _ = sb(t, context.Background(), "compare", "--json", a, b)
	var rows []bench.Comparison
	if err := json.Unmarshal([]byte(stdout), &rows); code != exitOK || err != nil || len(rows) == 0 {
		t.Errorf("compare --json: exit %d, %v\n%s", code, err, stdout)
	}

	code, stdout, _ = sb(t, context.Background(), "plot", b)
	html := filepath.Join(dir, "b.html")
	page, err := os.ReadFile(html)
	if code != exitOK || err != nil || !strings.Contains(stdout, html) || !bytes.Contains(page, []byte("<polyline")) {
		t.Errorf("plot: exit %d, %v, stdout %q", code, err, stdout)
	}
}

func TestFileErrorsExit1(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.json")
	if err := os.WriteFile(bad, []byte(`{"schema":"other"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"compare", filepath.Join(dir, "missing.json"), bad},
		{"compare", bad, bad},
		{"plot", bad, "-o", filepath.Join(dir, "x.html")},
	} {
		if code, _, stderr := sb(t, context.Background(), args...); code != exitError || stderr == "" {
			t.Errorf("%q: exit %d, stderr %q; want %d", args, code, stderr, exitError)
		}
	}
}

// cancelOnWrite cancels a run at its first progress line, a stand-in for
// SIGINT that cannot land before the run has started.
type cancelOnWrite struct {
	mu     sync.Mutex
	buf    bytes.Buffer
	cancel context.CancelFunc
}

func (w *cancelOnWrite) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.cancel()
	return w.buf.Write(p)
}

func TestInterruptWritesPartialResultsExit130(t *testing.T) {
	addr := brokertest.Run(t).KafkaAddr()
	path := filepath.Join(t.TempDir(), "r.json")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	errOut := &cancelOnWrite{cancel: cancel}
	var out bytes.Buffer
	code := run(ctx, []string{"produce", "-b", addr, "-d", "1m", "--rate", "200", "--interval", "300ms", "--json", path}, &out, errOut)
	if code != exitInterrupted {
		t.Fatalf("exit %d, want %d\n%s", code, exitInterrupted, errOut.buf.String())
	}
	r, err := bench.ReadResultFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !r.Interrupted || r.Produce.Produced == 0 || r.Produce.Produced != r.Produce.Acknowledged+r.Produce.Failed {
		t.Errorf("partial results: interrupted %v, produce %+v", r.Interrupted, r.Produce)
	}
	if !strings.Contains(out.String(), "INTERRUPTED") {
		t.Errorf("summary does not say it was interrupted:\n%s", out.String())
	}
}
