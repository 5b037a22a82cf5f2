package replication

import (
	"bytes"
	"fmt"
	"io"
	stdlog "log"
	"strings"
	"sync/atomic"

	"github.com/hashicorp/go-hclog"
	"github.com/rs/zerolog"
)

var _ hclog.Logger = (*hcLogger)(nil)

// HCLogger adapts a zerolog.Logger to the hclog.Logger raft writes to.
// Levels map one to one; the zerolog logger's level (and zerolog's global
// level) filters, and SetLevel can raise the bar further. Keys are turned
// into snake_case ("previous-index" becomes "previous_index") to match the
// rest of Sluice's log lines, and the hclog name goes in "raft_logger".
func HCLogger(l zerolog.Logger) hclog.Logger {
	return &hcLogger{zl: l, level: new(atomic.Int32)}
}

type hcLogger struct {
	zl      zerolog.Logger
	name    string
	implied []any
	level   *atomic.Int32 // hclog.Level; NoLevel means zerolog decides. Shared by derived loggers, as in hclog.
}

func toZerolog(l hclog.Level) zerolog.Level {
	switch l {
	case hclog.Trace:
		return zerolog.TraceLevel
	case hclog.Debug:
		return zerolog.DebugLevel
	case hclog.Warn:
		return zerolog.WarnLevel
	case hclog.Error:
		return zerolog.ErrorLevel
	case hclog.Off:
		return zerolog.Disabled
	default: // Info, NoLevel
		return zerolog.InfoLevel
	}
}

func (h *hcLogger) enabled(l hclog.Level) bool {
	if min := hclog.Level(h.level.Load()); min != hclog.NoLevel && l < min {
		return false
	}
	z := toZerolog(l)
	return z >= h.zl.GetLevel() && z >= zerolog.GlobalLevel()
}

func (h *hcLogger) Log(level hclog.Level, msg string, args ...any) {
	if level == hclog.Off || !h.enabled(level) {
		return
	}
	e := h.zl.WithLevel(toZerolog(level))
	if h.name != "" {
		e = e.Str("raft_logger", h.name)
	}
	e = addFields(e, h.implied)
	e = addFields(e, args)
	e.Msg(msg)
}

func addFields(e *zerolog.Event, kv []any) *zerolog.Event {
	for i := 0; i < len(kv); i += 2 {
		if i+1 == len(kv) {
			// As hclog does with an odd argument count.
			e = e.Interface("extra_value_at_end", kv[i])
			break
		}
		key := strings.ReplaceAll(fmt.Sprint(kv[i]), "-", "_")
		switch v := kv[i+1].(type) {
		case error:
			e = e.AnErr(key, v)
		case hclog.Format:
			if len(v) > 0 {
				e = e.Str(key, fmt.Sprintf(fmt.Sprint(v[0]), v[1:]...))
			}
		case fmt.Stringer:
			e = e.Stringer(key, v)
		default:
			e = e.Interface(key, v)
		}
	}
	return e
}

func (h *hcLogger) Trace(msg string, args ...any) { h.Log(hclog.Trace, msg, args...) }
func (h *hcLogger) Debug(msg string, args ...any) { h.Log(hclog.Debug, msg, args...) }
func (h *hcLogger) Info(msg string, args ...any)  { h.Log(hclog.Info, msg, args...) }
func (h *hcLogger) Warn(msg string, args ...any)  { h.Log(hclog.Warn, msg, args...) }
func (h *hcLogger) Error(msg string, args ...any) { h.Log(hclog.Error, msg, args...) }

func (h *hcLogger) IsTrace() bool { return h.enabled(hclog.Trace) }
func (h *hcLogger) IsDebug() bool { return h.enabled(hclog.Debug) }
func (h *hcLogger) IsInfo() bool  { return h.enabled(hclog.Info) }
func (h *hcLogger) IsWarn() bool  { return h.enabled(hclog.Warn) }
func (h *hcLogger) IsError() bool { return h.enabled(hclog.Error) }

func (h *hcLogger) ImpliedArgs() []any { return h.implied }

func (h *hcLogger) With(args ...any) hclog.Logger {
	c := *h
	c.implied = append(append([]any(nil), h.implied...), args...)
	return &c
}

func (h *hcLogger) Name() string { return h.name }

func (h *hcLogger) Named(name string) hclog.Logger {
	c := *h
	if c.name != "" {
		name = c.name + "." + name
	}
	c.name = name
	return &c
}

func (h *hcLogger) ResetNamed(name string) hclog.Logger {
	c := *h
	c.name = name
	return &c
}

func (h *hcLogger) SetLevel(level hclog.Level) { h.level.Store(int32(level)) }

func (h *hcLogger) GetLevel() hclog.Level { return hclog.Level(h.level.Load()) }

func (h *hcLogger) StandardLogger(opts *hclog.StandardLoggerOptions) *stdlog.Logger {
	return stdlog.New(h.StandardWriter(opts), "", 0)
}

func (h *hcLogger) StandardWriter(opts *hclog.StandardLoggerOptions) io.Writer {
	level := hclog.Info
	if opts != nil && opts.ForceLevel != hclog.NoLevel {
		level = opts.ForceLevel
	}
	return &hcWriter{h: h, level: level}
}

// hcWriter logs each Write (a standard logger's line) as one message.
type hcWriter struct {
	h     *hcLogger
	level hclog.Level
}

func (w *hcWriter) Write(p []byte) (int, error) {
	w.h.Log(w.level, string(bytes.TrimRight(p, "\n")))
	return len(p), nil
}
