package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/sluicemq/sluice/broker/brokertest"
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
	b, err := brokertest.Start(brokertest.Config(dir + "/data"))
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
