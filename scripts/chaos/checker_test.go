package main

import (
	"path/filepath"
	"strings"
	"testing"
)

// hist builds synthetic histories for the checker.
type hist struct {
	ops []Op
	t   int64
	idx int64
}

func (h *hist) add(op Op) *hist {
	h.t += 1e6
	op.T = h.t
	h.ops = append(h.ops, op)
	return h
}

// send is an invoked and completed send of v.
func (h *hist) send(proc, v, typ string, p int32, o int64) *hist {
	h.idx++
	h.add(Op{Index: h.idx, Process: proc, Type: Invoke, F: FSend, Value: v})
	return h.add(Op{Index: h.idx, Process: proc, Type: typ, F: FSend, Value: v, P: p, O: o})
}

func (h *hist) poll(proc string, recs ...Rec) *hist {
	h.idx++
	h.add(Op{Index: h.idx, Process: proc, Type: Invoke, F: FPoll})
	return h.add(Op{Index: h.idx, Process: proc, Type: OK, F: FPoll, Recs: recs})
}

func (h *hist) final(node int, recs ...Rec) *hist {
	return h.add(Op{Process: "final-reader", Type: OK, F: FRead, Node: node, Recs: recs})
}

func (h *hist) commit(proc, typ string, offs map[int32]int64) *hist {
	h.idx++
	h.add(Op{Index: h.idx, Process: proc, Type: Invoke, F: FCommit, Offsets: offs})
	return h.add(Op{Index: h.idx, Process: proc, Type: typ, F: FCommit, Offsets: offs})
}

func (h *hist) committed(offs map[int32]int64) *hist {
	h.idx++
	h.add(Op{Index: h.idx, Process: "observer", Type: Invoke, F: FCommitted})
	return h.add(Op{Index: h.idx, Process: "observer", Type: OK, F: FCommitted, Offsets: offs})
}

func (h *hist) check() Report {
	c := NewChecker()
	for _, op := range h.ops {
		c.Add(op)
	}
	return c.Report()
}

// healthy is a history with no anomaly: three records of two keys on
// partition 0, acknowledged, polled in one assignment, committed, read
// back from two replicas; one unknown send that never appeared.
func healthy() *hist {
	h := &hist{}
	h.send("producer-0", "p0k00/1", OK, 0, 0)
	h.send("producer-0", "p0k01/1", OK, 0, 1)
	h.send("producer-0", "p0k00/2", OK, 0, 2)
	h.send("producer-0", "p0k00/3", Unknown, 0, 0)
	h.add(Op{Process: "consumer-0", Type: Info, F: FAssign, Parts: []int32{0}})
	h.poll("consumer-0", Rec{0, 0, "p0k00/1"}, Rec{0, 1, "p0k01/1"})
	h.poll("consumer-0", Rec{0, 2, "p0k00/2"})
	h.commit("consumer-0", OK, map[int32]int64{0: 3})
	h.committed(map[int32]int64{0: 3})
	for node := 1; node <= 2; node++ {
		h.final(node, Rec{0, 0, "p0k00/1"}, Rec{0, 1, "p0k01/1"}, Rec{0, 2, "p0k00/2"})
	}
	return h
}

func wantOnly(t *testing.T, r Report, kind string, n int) {
	t.Helper()
	for _, a := range AllAnomalies {
		want := 0
		if a == kind {
			want = n
		}
		if r.Anomalies[a] != want {
			t.Errorf("%s: %d, want %d (examples %v)", a, r.Anomalies[a], want, r.Examples[a])
		}
	}
	if r.Valid != (n == 0) {
		t.Errorf("valid %v with %d %s", r.Valid, n, kind)
	}
}

func TestCheckerHealthy(t *testing.T) {
	r := healthy().check()
	wantOnly(t, r, "", 0)
	if r.Sends != (Counts{OK: 3, Unknown: 1}) || r.Polled != 3 || r.FinalRead != 3 || r.Commits.OK != 1 {
		t.Errorf("counts: %+v", r)
	}
}

func TestCheckerLost(t *testing.T) {
	h := healthy()
	h.send("producer-0", "p0k01/2", OK, 0, 3) // acknowledged, never read back
	r := h.check()
	wantOnly(t, r, Lost, 1)
	if !strings.Contains(r.Examples[Lost][0], "p0k01/2") {
		t.Errorf("example %q", r.Examples[Lost][0])
	}
}

func TestCheckerLostOnlyWhenNoReplicaHasIt(t *testing.T) {
	h := healthy()
	h.send("producer-0", "p0k01/2", OK, 0, 3)
	h.final(2, Rec{0, 3, "p0k01/2"}) // one replica has it: not lost
	h.poll("consumer-0", Rec{0, 3, "p0k01/2"})
	wantOnly(t, h.check(), "", 0)
}

func TestCheckerDuplicate(t *testing.T) {
	h := healthy()
	h.final(1, Rec{0, 3, "p0k00/1"}) // the first record again, at offset 3
	wantOnly(t, h.check(), Duplicate, 1)
}

func TestCheckerInconsistentOffsets(t *testing.T) {
	h := healthy()
	h.send("producer-1", "p1k00/1", Unknown, 0, 0)
	h.final(2, Rec{0, 1, "p1k00/1"}) // replica 2 has another value at 0/1
	r := h.check()
	// p1k00/1 is not a duplicate (read at one offset); p0k01/1 is still read at 0/1 too.
	wantOnly(t, r, InconsistentOffsets, 1)
}

func TestCheckerAckedOffsetDisagreesWithRead(t *testing.T) {
	h := &hist{}
	h.send("producer-0", "p0k00/1", OK, 0, 5) // the ack claims offset 5
	h.add(Op{Process: "consumer-0", Type: Info, F: FAssign, Parts: []int32{0}})
	h.poll("consumer-0", Rec{0, 0, "p0k00/1"})
	h.final(1, Rec{0, 0, "p0k00/1"}, Rec{0, 5, "p0k00/9"})
	r := h.check()
	if r.Anomalies[InconsistentOffsets] != 1 {
		t.Errorf("inconsistent offsets %d, examples %v", r.Anomalies[InconsistentOffsets], r.Examples)
	}
}

func TestCheckerReorder(t *testing.T) {
	h := &hist{}
	h.send("producer-0", "p0k00/1", OK, 0, 1)
	h.send("producer-0", "p0k00/2", OK, 0, 0)
	h.add(Op{Process: "consumer-0", Type: Info, F: FAssign, Parts: []int32{0}})
	h.poll("consumer-0", Rec{0, 0, "p0k00/2"}, Rec{0, 1, "p0k00/1"})
	h.final(1, Rec{0, 0, "p0k00/2"}, Rec{0, 1, "p0k00/1"})
	wantOnly(t, h.check(), Reorder, 1)
}

func TestCheckerReorderIgnoresOtherKeysAndUnacked(t *testing.T) {
	h := &hist{}
	h.send("producer-0", "p0k00/2", OK, 0, 0)
	h.send("producer-0", "p0k01/1", OK, 0, 1)
	h.send("producer-0", "p0k00/1", Unknown, 0, 0) // not acknowledged: order not promised
	h.send("producer-0", "p0k00/3", OK, 0, 3)
	h.add(Op{Process: "consumer-0", Type: Info, F: FAssign, Parts: []int32{0}})
	recs := []Rec{{0, 0, "p0k00/2"}, {0, 1, "p0k01/1"}, {0, 2, "p0k00/1"}, {0, 3, "p0k00/3"}}
	h.poll("consumer-0", recs...)
	h.final(1, recs...)
	wantOnly(t, h.check(), "", 0)
}

func TestCheckerNonMonotonicPoll(t *testing.T) {
	h := healthy()
	h.poll("consumer-0", Rec{0, 1, "p0k01/1"}) // same assignment, back to offset 1
	wantOnly(t, h.check(), NonMonotonicPoll, 1)
}

func TestCheckerPollAfterReassignmentMayRepeat(t *testing.T) {
	h := healthy()
	h.add(Op{Process: "consumer-0", Type: Info, F: FRevoke, Parts: []int32{0}})
	h.add(Op{Process: "consumer-1", Type: Info, F: FAssign, Parts: []int32{0}})
	h.poll("consumer-1", Rec{0, 1, "p0k01/1"}, Rec{0, 2, "p0k00/2"})
	h.add(Op{Process: "consumer-0", Type: Info, F: FAssign, Parts: []int32{0}})
	h.poll("consumer-0", Rec{0, 2, "p0k00/2"})
	wantOnly(t, h.check(), "", 0)
}

func TestCheckerPollSkip(t *testing.T) {
	h := &hist{}
	h.send("producer-0", "p0k00/1", OK, 0, 0)
	h.send("producer-0", "p0k00/2", OK, 0, 1)
	h.send("producer-0", "p0k00/3", OK, 0, 2)
	h.add(Op{Process: "consumer-0", Type: Info, F: FAssign, Parts: []int32{0}})
	h.poll("consumer-0", Rec{0, 0, "p0k00/1"})
	h.poll("consumer-0", Rec{0, 2, "p0k00/3"}) // skipped offset 1
	h.add(Op{Process: "consumer-1", Type: Info, F: FAssign, Parts: []int32{0}})
	h.poll("consumer-1", Rec{0, 1, "p0k00/2"})
	h.final(1, Rec{0, 0, "p0k00/1"}, Rec{0, 1, "p0k00/2"}, Rec{0, 2, "p0k00/3"})
	wantOnly(t, h.check(), PollSkip, 1)
}

func TestCheckerUnseen(t *testing.T) {
	h := healthy()
	h.send("producer-0", "p0k01/2", OK, 0, 3)
	h.final(1, Rec{0, 3, "p0k01/2"}) // stored, but the group never polled it
	wantOnly(t, h.check(), Unseen, 1)
}

func TestCheckerCommitBackwards(t *testing.T) {
	h := healthy()
	h.committed(map[int32]int64{0: 2}) // after 3 was acknowledged
	wantOnly(t, h.check(), CommitBackwards, 1)
}

func TestCheckerCommitBackwardsBetweenReads(t *testing.T) {
	h := healthy()
	h.commit("consumer-0", Unknown, map[int32]int64{0: 5}) // may have happened
	h.committed(map[int32]int64{0: 5})
	h.committed(map[int32]int64{0: 3}) // it did, and then it went back
	wantOnly(t, h.check(), CommitBackwards, 1)
}

func TestCheckerCommitConcurrentWithReadIsNotBackwards(t *testing.T) {
	h := healthy()
	// The read is invoked before the commit of 7 completes, so it may see 3.
	h.idx++
	read := h.idx
	h.add(Op{Index: read, Process: "observer", Type: Invoke, F: FCommitted})
	h.commit("consumer-0", OK, map[int32]int64{0: 7})
	h.add(Op{Index: read, Process: "observer", Type: OK, F: FCommitted, Offsets: map[int32]int64{0: 3}})
	wantOnly(t, h.check(), "", 0)
}

func TestCheckerPhantom(t *testing.T) {
	h := healthy()
	h.final(1, Rec{0, 3, "p9k00/1"})
	wantOnly(t, h.check(), Phantom, 1)
}

func TestCheckerFailedSendVisibleIsPhantom(t *testing.T) {
	h := healthy()
	h.send("producer-0", "p0k01/2", Fail, 0, 0)
	h.poll("consumer-0", Rec{0, 3, "p0k01/2"})
	h.final(1, Rec{0, 3, "p0k01/2"})
	wantOnly(t, h.check(), Phantom, 1)
}

func TestCheckerNoFinalReadJudgesNoLoss(t *testing.T) {
	h := &hist{}
	h.send("producer-0", "p0k00/1", OK, 0, 0)
	r := h.check()
	if !r.NoFinalRead || r.Anomalies[Lost] != 0 {
		t.Errorf("report %+v", r)
	}
}

func TestCheckerElections(t *testing.T) {
	h := &hist{}
	h.send("producer-0", "p0k00/1", OK, 0, 0)
	h.add(Op{Process: "nemesis", Type: Info, F: FKill, Node: 1, Parts: []int32{0}, Value: "leader"})
	kill := h.t
	h.t += 1.5e9
	h.send("producer-0", "p0k00/2", OK, 0, 1)
	ack := h.t
	h.add(Op{Process: "nemesis", Type: Info, F: FKill, Node: 2, Value: "random"})
	r := h.check()
	if r.Kills != 2 || r.LeaderKills != 1 || r.Elections != 1 {
		t.Fatalf("kills %d leader kills %d elections %d", r.Kills, r.LeaderKills, r.Elections)
	}
	if want := float64(ack-kill) / 1e9; r.ElectionP50 != want || r.ElectionP99 != want {
		t.Errorf("election p50 %v p99 %v, want %v", r.ElectionP50, r.ElectionP99, want)
	}
}

// The history file round-trips through JSON lines (and gzip) unchanged.
func TestHistoryRoundTrip(t *testing.T) {
	for _, name := range []string{"h.jsonl", "h.jsonl.gz"} {
		path := filepath.Join(t.TempDir(), name)
		hw, err := NewHistory(path)
		if err != nil {
			t.Fatal(err)
		}
		src := healthy()
		src.send("producer-0", "p0k01/2", OK, 0, 3) // lost
		for _, op := range src.ops {
			hw.Add(op)
		}
		op := hw.Invoke(Op{Process: "p", F: FSend, Value: "p0k05/1"})
		hw.Complete(op, Unknown, nil)
		if err := hw.Close(); err != nil {
			t.Fatal(err)
		}
		r, err := CheckFile(path)
		if err != nil {
			t.Fatal(err)
		}
		wantOnly(t, r, Lost, 1)
		if r.Sends.Unknown != 2 {
			t.Errorf("%s: unknown sends %d, want 2", name, r.Sends.Unknown)
		}
	}
}

func TestParseValue(t *testing.T) {
	for _, tc := range []struct {
		in  string
		key string
		seq int64
		ok  bool
	}{
		{"p0k01/12", "p0k01", 12, true},
		{"p0k01/12|xxxx", "p0k01", 12, true},
		{"nope", "", 0, false},
		{"p0k01/x", "", 0, false},
	} {
		k, s, ok := parseValue(tc.in)
		if k != tc.key || s != tc.seq || ok != tc.ok {
			t.Errorf("parseValue(%q) = %q %d %v", tc.in, k, s, ok)
		}
	}
}

// sharePoll is a share-group member's poll of recs.
func (h *hist) sharePoll(proc string, recs ...ShareRec) *hist {
	h.idx++
	h.add(Op{Index: h.idx, Process: proc, Type: Invoke, F: FSharePoll})
	return h.add(Op{Index: h.idx, Process: proc, Type: OK, F: FSharePoll, Shares: recs})
}

// shareAck is a member's ACCEPT of recs (one partition), completed typ.
func (h *hist) shareAck(proc, typ string, recs ...ShareRec) *hist {
	h.idx++
	h.add(Op{Index: h.idx, Process: proc, Type: Invoke, F: FShareAck, P: recs[0].P, Shares: recs})
	return h.add(Op{Index: h.idx, Process: proc, Type: typ, F: FShareAck, P: recs[0].P, Shares: recs})
}

// shareDrained is the end of the drain, with the group's lag per partition.
func (h *hist) shareDrained(lags map[int32]int64) *hist {
	return h.add(Op{Process: "share-drain", Type: Info, F: FShareDrain, Value: "complete", Offsets: lags})
}

// shareHealthy is healthy() with a share group that got all three
// records, one of them twice (released by a fault: at least once), and
// accepted each; the brokers report no lag after the drain.
func shareHealthy() *hist {
	h := healthy()
	h.sharePoll("share-0", ShareRec{0, 0, "p0k00/1", 1}, ShareRec{0, 1, "p0k01/1", 1})
	h.shareAck("share-0", Unknown, ShareRec{0, 0, "p0k00/1", 1}, ShareRec{0, 1, "p0k01/1", 1}) // the leader died
	h.sharePoll("share-1", ShareRec{0, 0, "p0k00/1", 2}, ShareRec{0, 2, "p0k00/2", 1})         // so 0/0 came back
	h.shareAck("share-1", OK, ShareRec{0, 0, "p0k00/1", 2}, ShareRec{0, 2, "p0k00/2", 1})
	// 0/1 was not delivered again: its ACCEPT of unknown outcome applied,
	// as the lag of 0 says.
	return h.shareDrained(map[int32]int64{0: 0})
}

func TestCheckerShareHealthy(t *testing.T) {
	r := shareHealthy().check()
	wantOnly(t, r, "", 0)
	s := r.Share
	if s == nil {
		t.Fatal("no share stats")
	}
	if s.Deliveries != 4 || s.Records != 3 || s.Redelivered != 1 || s.MaxDeliveryCount != 2 ||
		s.AcceptedUnknown != 1 || s.Acks != (Counts{OK: 1, Unknown: 1}) || s.DeliveriesPerRecord[1] != 2 || s.DeliveriesPerRecord[2] != 1 {
		t.Errorf("share stats %+v", s)
	}
	if healthy().check().Share != nil {
		t.Error("share stats without a share group")
	}
}

func TestCheckerShareLostNeverDelivered(t *testing.T) {
	h := shareHealthy()
	h.send("producer-0", "p0k01/2", OK, 0, 3)
	h.poll("consumer-0", Rec{0, 3, "p0k01/2"})
	h.final(1, Rec{0, 3, "p0k01/2"}) // in the log, never delivered to the share group
	r := h.check()
	wantOnly(t, r, ShareLost, 1)
	if !strings.Contains(r.Examples[ShareLost][0], "never delivered") {
		t.Errorf("example %q", r.Examples[ShareLost][0])
	}
}

func TestCheckerShareLostJudgedOnlyAfterTheDrain(t *testing.T) {
	h := healthy()
	h.sharePoll("share-0", ShareRec{0, 0, "p0k00/1", 1})
	wantOnly(t, h.check(), "", 0) // no share-drain operation: a history cut short
}

// An ACCEPT of unknown outcome settles a record only where the brokers
// report no lag after the drain.
func TestCheckerShareLostWhenLagRemains(t *testing.T) {
	for _, tc := range []struct {
		lags map[int32]int64
		lost int
	}{
		{map[int32]int64{0: 0}, 0},
		{map[int32]int64{0: 1}, 1},
		{map[int32]int64{1: 0}, 1}, // no lag known for partition 0
	} {
		h := healthy()
		all := []ShareRec{{0, 0, "p0k00/1", 1}, {0, 1, "p0k01/1", 1}, {0, 2, "p0k00/2", 1}}
		h.sharePoll("share-0", all...)
		h.shareAck("share-0", OK, all[:2]...)
		h.shareAck("share-0", Unknown, all[2])
		h.sharePoll("share-1", ShareRec{0, 2, "p0k00/2", 2}) // it came back
		h.shareAck("share-1", Unknown, ShareRec{0, 2, "p0k00/2", 2})
		h.shareDrained(tc.lags)
		r := h.check()
		wantOnly(t, r, ShareLost, tc.lost)
		if tc.lost == 0 && r.Share.AcceptedUnknown != 1 {
			t.Errorf("lags %v: accepted with an unknown outcome %d, want 1", tc.lags, r.Share.AcceptedUnknown)
		}
	}
}

func TestCheckerSharePhantom(t *testing.T) {
	h := shareHealthy()
	h.sharePoll("share-0", ShareRec{0, 3, "p9k00/1", 1}) // never sent
	h.send("producer-0", "p0k01/2", Fail, 0, 0)
	h.sharePoll("share-0", ShareRec{0, 4, "p0k01/2", 1}) // its send was refused
	wantOnly(t, h.check(), SharePhantom, 2)
}

func TestCheckerShareAcceptedRedelivered(t *testing.T) {
	h := shareHealthy()
	// 0/2 was accepted at delivery 1 (confirmed) and comes back.
	h.sharePoll("share-0", ShareRec{0, 2, "p0k00/2", 2})
	h.shareAck("share-0", OK, ShareRec{0, 2, "p0k00/2", 2})
	r := h.check()
	wantOnly(t, r, ShareAcceptedRedelivered, 1)
	if !strings.Contains(r.Examples[ShareAcceptedRedelivered][0], "p0k00/2") {
		t.Errorf("example %q", r.Examples[ShareAcceptedRedelivered][0])
	}
}

func TestCheckerShareCountReused(t *testing.T) {
	h := shareHealthy()
	// A new leader forgot delivery 1 of 0/1 and delivered it as 1 again.
	h.sharePoll("share-1", ShareRec{0, 1, "p0k01/1", 1})
	h.shareAck("share-1", OK, ShareRec{0, 1, "p0k01/1", 1})
	wantOnly(t, h.check(), ShareCountReused, 1)
}

func TestCheckerShareDeliveryAtWrongOffset(t *testing.T) {
	h := shareHealthy()
	h.sharePoll("share-0", ShareRec{0, 1, "p0k00/2", 2}) // 0/1 holds p0k01/1
	r := h.check()
	if r.Anomalies[InconsistentOffsets] != 1 {
		t.Errorf("inconsistent offsets %d, examples %v", r.Anomalies[InconsistentOffsets], r.Examples)
	}
}
