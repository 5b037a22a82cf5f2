package metrics

import (
	"context"
	"errors"
	stdlog "log"
	"net"
	"net/http"
	"net/http/pprof"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"
)

// Timeouts of the HTTP server. Admin operations that take longer than
// WriteTimeout must run in the background and be polled.
const (
	ReadHeaderTimeout = 5 * time.Second
	ReadTimeout       = 30 * time.Second
	WriteTimeout      = 60 * time.Second
	IdleTimeout       = 2 * time.Minute
	MaxHeaderBytes    = 64 << 10
)

// Server is the broker's HTTP server: /healthz, /readyz, /metrics, and
// whatever the broker adds with Handle. One goroutine serves, started by
// Start and stopped by Shutdown.
type Server struct {
	log zerolog.Logger
	mux *http.ServeMux
	srv *http.Server

	mu      sync.Mutex
	addr    string        // as configured, then as bound
	done    chan struct{} // closed when the serving goroutine returns
	started bool
	closed  bool
}

// NewServer returns a server for addr (host:port; port 0 picks a free one).
// ready reports readiness for /readyz: nil means ready; a nil ready is always
// ready. m may be nil, for no /metrics. Nothing listens until Start.
func NewServer(addr string, m *Metrics, ready func() error, log zerolog.Logger) *Server {
	log = log.With().Str("component", "http").Logger()
	s := &Server{log: log, mux: http.NewServeMux(), addr: addr}
	s.mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		writeText(w, http.StatusOK, "ok")
	})
	s.mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if ready != nil {
			if err := ready(); err != nil {
				writeText(w, http.StatusServiceUnavailable, "not ready: "+err.Error())
				return
			}
		}
		writeText(w, http.StatusOK, "ok")
	})
	if m != nil {
		s.mux.Handle("GET /metrics", m.Handler(log))
	}
	// Go's profiler, for performance work on a running broker (the admin
	// port is for operators; keep it off public networks).
	s.mux.HandleFunc("GET /debug/pprof/", pprof.Index)
	s.mux.HandleFunc("GET /debug/pprof/cmdline", pprof.Cmdline)
	s.mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
	s.mux.HandleFunc("GET /debug/pprof/symbol", pprof.Symbol)
	s.mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
	s.srv = &http.Server{
		Handler:           s.mux,
		ReadHeaderTimeout: ReadHeaderTimeout,
		ReadTimeout:       ReadTimeout,
		WriteTimeout:      WriteTimeout,
		IdleTimeout:       IdleTimeout,
		MaxHeaderBytes:    MaxHeaderBytes,
		ErrorLog:          stdlog.New(logWriter{log}, "", 0),
	}
	return s
}

// Handle registers h for pattern (net/http.ServeMux syntax, such as
// "POST /admin/v1/partitions/{topic}"), before or after Start. Like
// ServeMux.Handle it panics if pattern conflicts with one registered.
func (s *Server) Handle(pattern string, h http.Handler) {
	s.mux.Handle(pattern, h)
}

// Start listens on the address and serves in a goroutine. It returns once
// the listener is bound, so Addr is the real address.
func (s *Server) Start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.closed:
		return ErrShutdown
	case s.started:
		return ErrStarted
	}
	ln, err := net.Listen("tcp", s.addr)
	if err != nil {
		return err
	}
	s.started = true
	s.addr = ln.Addr().String()
	s.done = make(chan struct{})
	s.log.Info().Str("addr", s.addr).Msg("http server listening")
	go func() {
		defer close(s.done)
		if err := s.srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			s.log.Error().Err(err).Str("addr", s.addr).Msg("http server stopped")
		}
	}()
	return nil
}

// Addr is the bound address after Start, the configured one before.
func (s *Server) Addr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.addr
}

// Shutdown stops accepting connections and waits, until ctx is done, for
// requests in progress to finish; then it closes what remains and returns
// ctx's error. It returns once the serving goroutine has exited. Calling it
// again, or before Start, is harmless.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.closed = true
	started, done := s.started, s.done
	s.mu.Unlock()
	if !started {
		return nil
	}
	err := s.srv.Shutdown(ctx)
	if err != nil {
		_ = s.srv.Close() // cut the connections Shutdown did not drain
	}
	<-done
	return err
}

func writeText(w http.ResponseWriter, code int, body string) {
	h := w.Header()
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	_, _ = w.Write([]byte(body + "\n"))
}

// logWriter routes net/http's own error log (TLS and connection errors,
// handler panics) to zerolog.
type logWriter struct{ log zerolog.Logger }

func (w logWriter) Write(p []byte) (int, error) {
	w.log.Warn().Msg(strings.TrimSpace(string(p)))
	return len(p), nil
}
