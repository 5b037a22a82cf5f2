package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	slog "github.com/sluicemq/sluice/log"
	"github.com/sluicemq/sluice/log/batch"
)

// writeLog makes a real log with two small segments and returns them.
func writeLog(t *testing.T) []slog.SegmentInfo {
	t.Helper()
	dir := t.TempDir()
	l, err := slog.Open(dir, slog.Options{SegmentBytes: 400})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 6; i++ {
		b, err := batch.Build([]batch.Record{{Key: []byte("k"), Value: []byte("hello")}, {Value: []byte("world")}},
			batch.BuildOptions{BaseTimestamp: int64(1000 + i), Codec: batch.Codec(i % 5)})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := l.Append(b); err != nil {
			t.Fatal(err)
		}
	}
	segs := l.Segments()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if len(segs) < 2 {
		t.Fatalf("want at least 2 segments, got %d", len(segs))
	}
	return segs
}

func runCapture(t *testing.T, args ...string) (string, error) {
	t.Helper()
	r := sctl(t, "", args...)
	if r.code != exitOK {
		return r.stdout, fmt.Errorf("exit %d: %s", r.code, r.stderr)
	}
	return r.stdout, nil
}

func TestDumpSegmentText(t *testing.T) {
	segs := writeLog(t)
	out, err := runCapture(t, "debug", "dump-segment", "--records", segs[0].Path)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"base index 1, base offset 0", "@40 index 1 term 0 batch offsets 0..1", "crc ok", `key "k" value "hello"`, "frames"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	idx := strings.TrimSuffix(segs[0].Path, ".seg") + ".idx"
	out, err = runCapture(t, "debug", "dump-segment", idx)
	if err != nil || !strings.Contains(out, "@40 index 1 offset 0") {
		t.Fatalf("index dump: %v\n%s", err, out)
	}
}

func TestDumpSegmentJSON(t *testing.T) {
	segs := writeLog(t)
	out, err := runCapture(t, "debug", "dump-segment", "--json", "--records", segs[1].Path)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	var frames int
	for i, line := range lines {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("line %d is not JSON: %q", i, line)
		}
		if _, ok := m["crc_ok"]; ok {
			frames++
			if m["crc_ok"] != true || len(m["records"].([]any)) != 2 {
				t.Fatalf("frame line %d: %v", i, m)
			}
		}
	}
	if frames == 0 {
		t.Fatal("no frames in JSON output")
	}
}

func TestDumpSegmentExitCodes(t *testing.T) {
	segs := writeLog(t)
	b, err := os.ReadFile(segs[0].Path)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)-3] ^= 0x40 // damage the last frame's payload
	bad := filepath.Join(t.TempDir(), filepath.Base(segs[0].Path))
	if err := os.WriteFile(bad, b, 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		args []string
		code int
	}{
		{[]string{"debug", "dump-segment", segs[0].Path}, exitOK},
		{[]string{"debug", "dump-segment", bad}, exitCorrupt},
		{[]string{"debug", "dump-segment", "/nonexistent.seg"}, exitError},
		{[]string{"debug", "dump-segment", "notalogfile.txt"}, exitError},
		{[]string{"debug", "dump-segment"}, exitUsage},
	}
	for _, tc := range tests {
		if r := sctl(t, "", tc.args...); r.code != tc.code {
			t.Errorf("%v: exit %d, want %d; stderr %s", tc.args, r.code, tc.code, r.stderr)
		}
	}
}
