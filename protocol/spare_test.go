package protocol

import "testing"

func TestSpareByteBefore(t *testing.T) {
	frame := []byte("0123456789")
	cmd, ok := SpareByteBefore(frame, frame[3:7])
	if !ok || string(cmd) != "23456" || cap(cmd) != 5 {
		t.Fatalf("inside: %q %v cap %d", cmd, ok, cap(cmd))
	}
	for name, rec := range map[string][]byte{
		"at the start": frame[:4],
		"empty":        frame[5:5],
		"elsewhere":    []byte("3456"),
		"past the end": frame[8:10:10][:2],
	} {
		if _, ok := SpareByteBefore(frame[:8], rec); ok {
			t.Fatalf("%s: ok", name)
		}
	}
	if _, ok := SpareByteBefore(nil, frame[1:2]); ok {
		t.Fatal("nil frame: ok")
	}
}
