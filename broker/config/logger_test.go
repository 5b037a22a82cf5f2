package config

import (
	"bytes"
	"encoding/json"
	"os"
	"strings"
	"testing"
)

func TestLoggerJSON(t *testing.T) {
	for _, format := range []string{"json", "auto"} { // auto on a buffer is not a terminal
		c := Default()
		c.LogFormat = format
		c.LogLevel = "warn"
		var buf bytes.Buffer
		log := c.Logger(&buf)
		log.Info().Msg("hidden")
		log.Warn().Str("topic", "t").Msg("shown")

		lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
		if len(lines) != 1 {
			t.Fatalf("%s: got %d lines, want 1:\n%s", format, len(lines), buf.String())
		}
		var ev map[string]any
		if err := json.Unmarshal([]byte(lines[0]), &ev); err != nil {
			t.Fatalf("%s: not JSON: %v: %s", format, err, lines[0])
		}
		if ev["level"] != "warn" || ev["message"] != "shown" || ev["topic"] != "t" || ev["time"] == nil {
			t.Errorf("%s: event = %v", format, ev)
		}
	}
}

func TestLoggerConsole(t *testing.T) {
	c := Default()
	c.LogFormat = "console"
	c.LogLevel = "debug"
	var buf bytes.Buffer
	log := c.Logger(&buf)
	log.Trace().Msg("hidden")
	log.Debug().Str("topic", "t").Msg("shown")
	out := buf.String()
	if strings.Contains(out, "hidden") || !strings.Contains(out, "shown") || !strings.Contains(out, "topic=t") {
		t.Errorf("console output = %q", out)
	}
	if strings.HasPrefix(strings.TrimSpace(out), "{") {
		t.Errorf("console output is JSON: %q", out)
	}
	if strings.Contains(out, "\x1b[") {
		t.Errorf("colour escapes written to a non-terminal: %q", out)
	}
}

func TestLoggerLevels(t *testing.T) {
	for _, level := range []string{"trace", "debug", "info", "warn", "error"} {
		c := Default()
		c.LogLevel = level
		if got := c.Logger(&bytes.Buffer{}).GetLevel().String(); got != level {
			t.Errorf("level %s: logger at %s", level, got)
		}
	}
	c := Default()
	c.LogLevel = ""
	if got := c.Logger(&bytes.Buffer{}).GetLevel().String(); got != "info" {
		t.Errorf("empty level: logger at %s, want info", got)
	}
}

func TestIsTerminal(t *testing.T) {
	f, err := os.CreateTemp(t.TempDir(), "log")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if isTerminal(f) || isTerminal(&bytes.Buffer{}) {
		t.Error("a regular file or a buffer reported as a terminal")
	}
}
