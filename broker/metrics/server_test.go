package metrics

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

func startServer(t *testing.T, m *Metrics, ready func() error) *Server {
	t.Helper()
	s := NewServer("127.0.0.1:0", m, ready, zerolog.Nop())
	if err := s.Start(); err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := s.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
	})
	return s
}

func get(t *testing.T, s *Server, path string) (int, string, http.Header) {
	t.Helper()
	resp, err := http.Get("http://" + s.Addr() + path)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: reading body: %v", path, err)
	}
	return resp.StatusCode, string(body), resp.Header
}

func TestHealthz(t *testing.T) {
	s := startServer(t, New(), nil)
	if strings.HasSuffix(s.Addr(), ":0") {
		t.Fatalf("Addr() = %q, want the bound port", s.Addr())
	}
	code, body, h := get(t, s, "/healthz")
	if code != http.StatusOK || body != "ok\n" {
		t.Errorf("/healthz = %d %q, want 200 ok", code, body)
	}
	if ct := h.Get("Content-Type"); ct != "text/plain; charset=utf-8" {
		t.Errorf("Content-Type = %q", ct)
	}

	resp, err := http.Post("http://"+s.Addr()+"/healthz", "text/plain", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST /healthz = %d, want 405", resp.StatusCode)
	}
}

func TestReadyz(t *testing.T) {
	var notReady atomic.Pointer[error]
	errLoading := errors.New("loading partitions: 3 of 10")
	notReady.Store(&errLoading)
	s := startServer(t, New(), func() error {
		if p := notReady.Load(); p != nil {
			return *p
		}
		return nil
	})

	code, body, _ := get(t, s, "/readyz")
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "loading partitions: 3 of 10") {
		t.Errorf("/readyz while not ready = %d %q, want 503 with the error", code, body)
	}
	// Liveness does not depend on readiness.
	if code, _, _ := get(t, s, "/healthz"); code != http.StatusOK {
		t.Errorf("/healthz while not ready = %d, want 200", code)
	}

	notReady.Store(nil)
	code, body, _ = get(t, s, "/readyz")
	if code != http.StatusOK || body != "ok\n" {
		t.Errorf("/readyz when ready = %d %q, want 200 ok", code, body)
	}
}

func TestReadyzNilIsReady(t *testing.T) {
	s := startServer(t, nil, nil)
	if code, _, _ := get(t, s, "/readyz"); code != http.StatusOK {
		t.Errorf("/readyz with nil ready = %d, want 200", code)
	}
	if code, _, _ := get(t, s, "/metrics"); code != http.StatusNotFound {
		t.Errorf("/metrics with nil Metrics = %d, want 404", code)
	}
}

func TestMetricsEndpoint(t *testing.T) {
	m := New()
	m.ObserveRequest("Produce", "none", 3*time.Millisecond)
	m.ObserveRequest("Metadata", "UNKNOWN_TOPIC_OR_PARTITION", 200*time.Microsecond)
	m.AddBytesIn("orders", 1234)
	m.AddBytesOut("orders", 99)
	m.ConnOpened()
	m.SetPartitionSource(func() []PartitionStat {
		return []PartitionStat{{Topic: "orders", Partition: 3, LogStart: 1, HighWatermark: 7, LogEnd: 8, SizeBytes: 512}}
	})
	s := startServer(t, m, nil)

	code, body, _ := get(t, s, "/metrics")
	if code != http.StatusOK {
		t.Fatalf("/metrics = %d:\n%s", code, body)
	}
	for _, want := range []string{
		`sluice_requests_total{api="Produce",code="none"} 1`,
		`sluice_requests_total{api="Metadata",code="UNKNOWN_TOPIC_OR_PARTITION"} 1`,
		`sluice_request_duration_seconds_bucket{api="Produce",le="0.005"} 1`,
		`sluice_request_duration_seconds_count{api="Metadata"} 1`,
		`sluice_bytes_in_total{topic="orders"} 1234`,
		`sluice_bytes_out_total{topic="orders"} 99`,
		`sluice_connections 1`,
		`sluice_log_start_offset{partition="3",topic="orders"} 1`,
		`sluice_high_watermark{partition="3",topic="orders"} 7`,
		`sluice_log_end_offset{partition="3",topic="orders"} 8`,
		`sluice_log_size_bytes{partition="3",topic="orders"} 512`,
		"# TYPE go_goroutines gauge",
		"# TYPE process_cpu_seconds_total counter",
		"# TYPE promhttp_metric_handler_errors_total counter",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}

func TestHandle(t *testing.T) {
	s := NewServer("127.0.0.1:0", New(), nil, zerolog.Nop())
	s.Handle("GET /admin/v1/ping", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, "pong")
	}))
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := s.Shutdown(context.Background()); err != nil {
			t.Error(err)
		}
	}()
	// Handlers can also be added while serving.
	s.Handle("GET /admin/v1/later", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, "later")
	}))
	for path, want := range map[string]string{"/admin/v1/ping": "pong", "/admin/v1/later": "later"} {
		if code, body, _ := get(t, s, path); code != http.StatusOK || body != want {
			t.Errorf("%s = %d %q, want 200 %q", path, code, body, want)
		}
	}
}

func TestServerLifecycle(t *testing.T) {
	var logs bytes.Buffer
	s := NewServer("127.0.0.1:0", nil, nil, zerolog.New(&logs))
	if got := s.Addr(); got != "127.0.0.1:0" {
		t.Errorf("Addr() before Start = %q", got)
	}
	if err := s.Shutdown(context.Background()); err != nil {
		t.Errorf("Shutdown before Start = %v", err)
	}
	if err := s.Start(); !errors.Is(err, ErrShutdown) {
		t.Errorf("Start after Shutdown = %v, want ErrShutdown", err)
	}

	s = NewServer("127.0.0.1:0", nil, nil, zerolog.New(&logs))
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	if err := s.Start(); !errors.Is(err, ErrStarted) {
		t.Errorf("second Start = %v, want ErrStarted", err)
	}
	addr := s.Addr()
	if err := s.Shutdown(context.Background()); err != nil {
		t.Errorf("Shutdown = %v", err)
	}
	if err := s.Shutdown(context.Background()); err != nil {
		t.Errorf("second Shutdown = %v", err)
	}
	client := &http.Client{Timeout: time.Second}
	if resp, err := client.Get("http://" + addr + "/healthz"); err == nil {
		resp.Body.Close()
		t.Error("GET after Shutdown succeeded")
	}
	if !strings.Contains(logs.String(), `"component":"http"`) || !strings.Contains(logs.String(), addr) {
		t.Errorf("logs = %s, want the listening address under component http", logs.String())
	}
}

func TestStartError(t *testing.T) {
	a := startServer(t, nil, nil)
	b := NewServer(a.Addr(), nil, nil, zerolog.Nop())
	if err := b.Start(); err == nil {
		_ = b.Shutdown(context.Background())
		t.Fatal("Start on a port in use succeeded")
	}
	if err := b.Start(); err == nil || errors.Is(err, ErrStarted) {
		t.Errorf("retry after a failed Start = %v, want the listen error again", err)
	}
}

// TestShutdownDeadline checks that a request outliving the shutdown context
// is cut and Shutdown still returns, with the context's error.
func TestShutdownDeadline(t *testing.T) {
	s := NewServer("127.0.0.1:0", nil, nil, zerolog.Nop())
	entered := make(chan struct{})
	release := make(chan struct{})
	defer close(release)
	s.Handle("GET /slow", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(entered)
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		resp, err := http.Get("http://" + s.Addr() + "/slow")
		if err == nil {
			resp.Body.Close()
		}
	}()
	<-entered
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := s.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Shutdown = %v, want context.DeadlineExceeded", err)
	}
}
