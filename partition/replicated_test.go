package partition

import (
	"errors"
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/sluicemq/sluice/log/batch"
)

// pendingAt is a Pending that is stored at off once release is closed.
type pendingAt struct {
	off     int64
	release chan struct{}
}

func (p *pendingAt) Done() bool {
	select {
	case <-p.release:
		return true
	default:
		return false
	}
}

func (p *pendingAt) Wait() (int64, error) { <-p.release; return p.off, nil }

func header(t *testing.T, b []byte, base int64) batch.Header {
	t.Helper()
	batch.SetBaseOffset(b, base)
	h, err := batch.ParseHeader(b)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// TestReplicatedSequenceSeesInflight checks a leader's sequence checks
// against committed and in-flight batches, and what applying, clearing and
// restoring the table do.
func TestReplicatedSequenceSeesInflight(t *testing.T) {
	f := newFixture(t, defaultConfig())
	p := f.p
	defer p.Close()

	// Committed: sequences 0-1 at offset 0.
	b0 := build(t, 2, 5, 0, 0, 1)
	p.ApplyProduce(header(t, b0, 0))
	p.SetHighWatermark(2)
	if p.HighWatermark() != 2 {
		t.Fatalf("high watermark %d", p.HighWatermark())
	}
	// In flight: 2-3 and 4-5.
	inf1 := &pendingAt{off: 2, release: make(chan struct{})}
	h1 := header(t, build(t, 2, 5, 0, 2, 1), 0)
	if dup, err := p.Sequence(h1, inf1); dup != nil || err != nil {
		t.Fatalf("first in-flight batch: %v, %v", dup, err)
	}
	h2 := header(t, build(t, 2, 5, 0, 4, 1), 0)
	if dup, err := p.Sequence(h2, &pendingAt{off: 4, release: make(chan struct{})}); dup != nil || err != nil {
		t.Fatalf("second in-flight batch: %v, %v", dup, err)
	}
	// The next must follow the in-flight ones, not the committed one.
	if _, err := p.Sequence(header(t, build(t, 2, 5, 0, 2+2, 1), 0), nil); err != nil {
		// 4-5 is a duplicate of the second in-flight batch: no error.
		t.Fatalf("duplicate of in-flight: %v", err)
	}
	if _, err := p.Sequence(header(t, build(t, 1, 5, 0, 7, 1), 0), nil); !errors.Is(err, kerr.OutOfOrderSequenceNumber) {
		t.Fatalf("gap after in-flight: %v", err)
	}
	// A duplicate of an in-flight batch waits for its offset.
	dup, err := p.Sequence(h1, nil)
	if err != nil || dup == nil || dup.Done() {
		t.Fatalf("in-flight duplicate: %v, %v", dup, err)
	}
	close(inf1.release)
	if off, err := dup.Wait(); off != 2 || err != nil {
		t.Fatalf("in-flight duplicate's offset %d, %v", off, err)
	}
	// Committed duplicate: settled at its offset.
	if dup, err := p.Sequence(header(t, build(t, 2, 5, 0, 0, 1), 0), nil); err != nil || dup == nil || !dup.Done() {
		t.Fatalf("committed duplicate: %v, %v", dup, err)
	} else if off, _ := dup.Wait(); off != 0 {
		t.Fatalf("committed duplicate at %d", off)
	}

	// Applying the first in-flight batch moves it to the table; clearing
	// forgets the second, so 4 is the next sequence again.
	p.ApplyProduce(header(t, build(t, 2, 5, 0, 2, 1), 2))
	p.ClearInflight()
	if _, err := p.Sequence(header(t, build(t, 1, 5, 0, 6, 1), 0), nil); !errors.Is(err, kerr.OutOfOrderSequenceNumber) {
		t.Fatalf("after clearing in-flight: %v", err)
	}
	state := p.ProducerState()
	p.ClearInflight()

	// A second replica restoring the state agrees.
	q := f.openAt("/data/t-1")
	defer q.Close()
	if err := q.RestoreProducerState(state); err != nil {
		t.Fatal(err)
	}
	if dup, err := q.Sequence(header(t, build(t, 2, 5, 0, 2, 1), 0), nil); err != nil || dup == nil {
		t.Fatalf("restored table: %v, %v", dup, err)
	} else if off, _ := dup.Wait(); off != 2 {
		t.Fatalf("restored duplicate at %d", off)
	}
	if _, err := q.Sequence(header(t, build(t, 1, 5, 0, 9, 1), 0), nil); !errors.Is(err, kerr.OutOfOrderSequenceNumber) {
		t.Fatalf("restored table accepts a gap: %v", err)
	}
	// Log start is replicated state: reads below it are out of range.
	p.SetLogStart(1)
	if p.LogStartOffset() != 1 {
		t.Fatalf("log start %d", p.LogStartOffset())
	}
	if _, err := p.Fetch(0, 100); !errors.Is(err, kerr.OffsetOutOfRange) {
		t.Fatalf("fetch below the log start: %v", err)
	}
}
