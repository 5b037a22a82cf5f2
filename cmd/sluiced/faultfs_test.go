package main

import (
	"context"
	"fmt"
	"net/http"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

func debugFS(t *testing.T, httpAddr, method, path string) int {
	t.Helper()
	req, _ := http.NewRequest(method, "http://"+httpAddr+path, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// TestDebugFaultFSPowerLoss: --debug-fault-fs is hidden from --help and
// serves /debug/fs; acknowledged records survive a SIGKILL of a broker
// whose unsynced writes die with it; without the flag /debug/fs is 404.
func TestDebugFaultFSPowerLoss(t *testing.T) {
	out, err := exec.Command(binary, "--help").CombinedOutput()
	if err != nil || strings.Contains(string(out), "debug-fault-fs") {
		t.Fatalf("--help (%v) mentions the hidden --debug-fault-fs:\n%s", err, out)
	}

	dir, kafka := t.TempDir(), freeAddr(t)
	cmd, httpAddr, _ := startArgs(t, dir, kafka, "--debug-fault-fs")
	cl, err := kgo.NewClient(kgo.SeedBrokers(kafka), kgo.DefaultProduceTopic("power"), kgo.AllowAutoTopicCreation())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for i := 0; i < 200; i++ {
		if err := cl.ProduceSync(ctx, &kgo.Record{Value: []byte(fmt.Sprint(i))}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	cl.Close()
	if code := debugFS(t, httpAddr, "GET", "/debug/fs"); code != http.StatusOK {
		t.Fatalf("GET /debug/fs with the flag: %d", code)
	}
	if code := debugFS(t, httpAddr, "POST", "/debug/fs/stall"); code != http.StatusOK {
		t.Fatalf("POST /debug/fs/stall with the flag: %d", code)
	}
	if code := debugFS(t, httpAddr, "POST", "/debug/fs/resume"); code != http.StatusOK {
		t.Fatalf("POST /debug/fs/resume with the flag: %d", code)
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()

	cmd, httpAddr, _ = startArgs(t, dir, kafka)
	defer func() { cmd.Process.Signal(syscall.SIGTERM); cmd.Wait() }()
	if code := debugFS(t, httpAddr, "POST", "/debug/fs/stall"); code != http.StatusNotFound {
		t.Fatalf("POST /debug/fs/stall without the flag: %d, want 404", code)
	}
	readNumbered(ctx, t, kafka, "power", 200) // every acknowledged record, after the power loss
}
