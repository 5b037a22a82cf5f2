package partition

import (
	"errors"
	"testing"
	"time"

	"github.com/sluicemq/sluice/partition/share"
)

// TestResetShare: a reset replaces a group's committed state whatever it
// was (a window behind the old one included), leaves other groups alone,
// refuses anything but the first delta of a new state without changing
// anything, and an empty delta deletes the state.
func TestResetShare(t *testing.T) {
	f := newFixture(t, defaultConfig())
	p := f.p
	defer p.Close()
	now := time.Unix(1000, 0)
	old := share.New(share.DefaultConfig(), 0)
	old.Admit([]share.Record{{Offset: 0}, {Offset: 1}, {Offset: 2}, {Offset: 3}}, 4)
	old.Acquire("m", 4, now)
	if err := old.Ack("m", []share.AckBatch{{First: 0, Last: 3, Type: share.AckAccept}}, now); err != nil {
		t.Fatal(err)
	}
	d := share.New(share.DefaultConfig(), 0)
	d.Admit([]share.Record{{Offset: 0}, {Offset: 1}, {Offset: 2}, {Offset: 3}}, 4)
	d.Acquire("m", 4, now)
	first := d.TakeDelta()
	_ = d.Ack("m", []share.AckBatch{{First: 0, Last: 3, Type: share.AckAccept}}, now)
	second := d.TakeDelta()
	for _, g := range []string{"a", "b"} {
		if err := p.ApplyShare(g, first); err != nil {
			t.Fatal(err)
		}
		if err := p.ApplyShare(g, second); err != nil {
			t.Fatal(err)
		}
	}
	if st, ok := p.ShareStats("a"); !ok || st.Start != 4 || st.Seq != 2 {
		t.Fatalf("before the reset: %+v %v", st, ok)
	}

	// Back to offset 1, behind the old window: a plain delta cannot (its
	// sequence number 1 is taken as already applied).
	if err := p.ApplyShare("a", share.New(share.DefaultConfig(), 1).TakeDelta()); err != nil {
		t.Fatal(err)
	}
	if st, _ := p.ShareStats("a"); st.Start != 4 {
		t.Fatalf("a plain delta moved the window back: %+v", st)
	}
	if err := p.ResetShare("a", share.New(share.DefaultConfig(), 1).TakeDelta()); err != nil {
		t.Fatal(err)
	}
	st, ok := p.ShareStats("a")
	if !ok || st.Start != 1 || st.NextRead != 1 || st.InFlight != 0 || st.Seq != 1 {
		t.Fatalf("after the reset: %+v %v", st, ok)
	}
	if st, _ := p.ShareStats("b"); st.Start != 4 {
		t.Fatalf("another group changed: %+v", st)
	}
	// The next leader delta (sequence 2) applies on top.
	next, err := share.Restore(share.DefaultConfig(), p.ShareState("a"))
	if err != nil {
		t.Fatal(err)
	}
	next.Admit([]share.Record{{Offset: 1}, {Offset: 2}}, 3)
	if err := p.ApplyShare("a", next.TakeDelta()); err != nil {
		t.Fatalf("a delta after the reset: %v", err)
	}

	// Refused whole: a later delta, a snapshot, garbage.
	before := p.ShareState("a")
	for name, bad := range map[string][]byte{"second delta": second, "snapshot": old.Snapshot(), "garbage": []byte("SQ\x01\x02")} {
		if err := p.ResetShare("a", bad); !errors.Is(err, share.ErrCorrupt) && !errors.Is(err, share.ErrDeltaGap) {
			t.Errorf("%s: %v", name, err)
		}
		if string(p.ShareState("a")) != string(before) {
			t.Fatalf("%s changed the state", name)
		}
	}

	if err := p.ResetShare("a", nil); err != nil {
		t.Fatal(err)
	}
	if _, ok := p.ShareStats("a"); ok || p.ShareState("a") != nil {
		t.Fatal("state left after the delete")
	}
	if err := p.ResetShare("nobody", nil); err != nil {
		t.Fatalf("deleting what is not there: %v", err)
	}
	if got := p.ShareGroups(); len(got) != 1 || got[0] != "b" {
		t.Fatalf("groups %v", got)
	}
}
