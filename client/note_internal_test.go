package client

import (
	"fmt"
	"testing"

	"github.com/sluicemq/sluice/protocol/sluiceapi"
)

// Notes go one request per leader, with no more than maxNotesPerRequest
// notes and one chunk per partition in each; partitions without a known
// leader are batched under -1 (retried after a metadata refresh).
func TestPackNotes(t *testing.T) {
	chunk := func(p int32, n int) noteChunk { return noteChunk{p: p, notes: make([]sluiceapi.ShareNote, n)} }
	leaders := map[int32]int32{0: 1, 1: 1, 2: 2, 3: -1}
	got := packNotes([]noteChunk{chunk(0, 150), chunk(0, 10), chunk(1, 40), chunk(1, 30), chunk(2, 5), chunk(3, 1), chunk(4, 1)}, leaders)
	var s []string
	for _, b := range got {
		one := fmt.Sprintf("%d:", b.leader)
		for _, c := range b.chunks {
			one += fmt.Sprintf(" p%d/%d", c.p, len(c.notes))
		}
		s = append(s, one)
	}
	// A chunk joins its leader's latest batch when it fits there.
	want := "[1: p0/150 1: p0/10 p1/40 1: p1/30 2: p2/5 -1: p3/1 p4/1]"
	if fmt.Sprint(s) != want {
		t.Fatalf("batches %v\nwant %s", s, want)
	}
	for _, b := range got {
		n, seen := 0, map[int32]bool{}
		for _, c := range b.chunks {
			if l, ok := leaders[c.p]; ok && l != b.leader || !ok && b.leader != -1 || seen[c.p] {
				t.Errorf("batch for %d holds partition %d (leader %d, twice %v)", b.leader, c.p, l, seen[c.p])
			}
			seen[c.p] = true
			n += len(c.notes)
		}
		if n > maxNotesPerRequest {
			t.Errorf("batch of %d notes", n)
		}
	}
}
