package main

import (
	"encoding/json"
	"maps"
	"slices"
	"testing"
)

// replicaCounts counts the replicas each of brokers holds in assign.
func replicaCounts(assign map[int32][]int32, brokers []int32) map[int32]int {
	n := map[int32]int{}
	for _, id := range brokers {
		n[id] = 0
	}
	for _, rs := range assign {
		for _, r := range rs {
			n[r]++
		}
	}
	return n
}

// checkReadd checks the re-add moves of node on assign: each replaces one
// replica in place by node in a partition without it, and afterwards the
// replica counts differ by at most one between brokers.
func checkReadd(t *testing.T, assign map[int32][]int32, node int32, brokers []int32, wantMoves int) map[int32][]int32 {
	t.Helper()
	targets := readdTargets(assign, node, brokers)
	if len(targets) != wantMoves {
		t.Errorf("%d moves %v, want %d", len(targets), targets, wantMoves)
	}
	after := maps.Clone(assign)
	for p, rs := range targets {
		old := assign[p]
		if slices.Contains(old, node) {
			t.Errorf("partition %d already holds broker %d: %v -> %v", p, node, old, rs)
		}
		if len(rs) != len(old) {
			t.Fatalf("partition %d: %v -> %v changes the replication factor", p, old, rs)
		}
		changed := 0
		for i := range rs {
			if rs[i] != old[i] {
				changed++
				if rs[i] != node {
					t.Errorf("partition %d: %v -> %v replaces %d by %d, not by %d", p, old, rs, old[i], rs[i], node)
				}
			}
		}
		if changed != 1 {
			t.Errorf("partition %d: %v -> %v changes %d replicas, want 1", p, old, rs, changed)
		}
		after[p] = rs
	}
	counts := replicaCounts(after, brokers)
	lo, hi := len(after)*8, 0
	for _, n := range counts {
		lo, hi = min(lo, n), max(hi, n)
	}
	if hi-lo > 1 {
		t.Errorf("replica counts after the moves %v: spread %d", counts, hi-lo)
	}
	return targets
}

// Four brokers, six RF 3 partitions, broker 4 drained: every partition is
// on 1, 2 and 3. The re-add gives broker 4 its share (18/4 = 4), each move
// taken from a broker with the most replicas.
func TestReaddTargetsAfterDrain(t *testing.T) {
	assign := map[int32][]int32{}
	for p := range int32(6) {
		assign[p] = []int32{1 + p%3, 1 + (p+1)%3, 1 + (p+2)%3}
	}
	targets := checkReadd(t, assign, 4, []int32{1, 2, 3, 4}, 4)
	want := map[int32][]int32{0: {4, 2, 3}, 1: {4, 3, 1}, 2: {4, 1, 2}, 3: {4, 2, 3}}
	if !maps.EqualFunc(targets, want, slices.Equal) {
		t.Errorf("targets %v, want %v", targets, want)
	}
}

// A broker that already holds its share gets no move; one that holds some
// gets only the rest.
func TestReaddTargetsPartlyDrained(t *testing.T) {
	balanced := map[int32][]int32{0: {1, 2, 3}, 1: {2, 3, 4}, 2: {3, 4, 1}, 3: {4, 1, 2}}
	checkReadd(t, balanced, 4, []int32{1, 2, 3, 4}, 0)
	partly := map[int32][]int32{0: {1, 2, 3}, 1: {2, 3, 1}, 2: {3, 4, 1}, 3: {1, 2, 3}, 4: {2, 3, 1}, 5: {3, 1, 2}}
	checkReadd(t, partly, 4, []int32{1, 2, 3, 4}, 3)
}

// Seven brokers (voters 1-5), twelve RF 3 partitions on 1-6, broker 7
// re-added: it takes 36/7 = 5 replicas, each from a different partition.
func TestReaddTargetsSevenBrokers(t *testing.T) {
	assign := map[int32][]int32{}
	for p := range int32(12) {
		assign[p] = []int32{1 + p%6, 1 + (p+1)%6, 1 + (p+2)%6}
	}
	checkReadd(t, assign, 7, []int32{1, 2, 3, 4, 5, 6, 7}, 5)
}

// No move takes a replica from a broker holding fewer than two more than
// the re-added one: that would only move the imbalance.
func TestReaddTargetsNeverWidensTheSpread(t *testing.T) {
	// Broker 3 holds 1, broker 4 none; 1 and 2 hold 2 each: share 5/4 = 1.
	assign := map[int32][]int32{0: {1, 2}, 1: {2, 1}, 2: {3}}
	checkReadd(t, assign, 4, []int32{1, 2, 3, 4}, 1)
	// Everyone holds one but broker 4, share 3/4 = 0: nothing to do.
	checkReadd(t, map[int32][]int32{0: {1}, 1: {2}, 2: {3}}, 4, []int32{1, 2, 3, 4}, 0)
}

func TestDecommissionCandidates(t *testing.T) {
	var v clusterView
	err := json.Unmarshal([]byte(`{
		"brokers": [
			{"id": 1, "voter": true, "replicas": 5},
			{"id": 2, "voter": true, "replicas": 5},
			{"id": 3, "voter": true, "replicas": 4},
			{"id": 4, "voter": false, "replicas": 4},
			{"id": 5, "voter": false, "replicas": 0},
			{"id": 6, "voter": false, "draining": true, "replicas": 1},
			{"id": 7, "voter": false, "replicas": 3}
		],
		"topics": [
			{"name": "other", "partitions": [{"partition": 0, "replicas": [5, 1, 2]}]},
			{"name": "chaos", "partitions": [
				{"partition": 0, "replicas": [1, 2, 4], "leader": 4},
				{"partition": 1, "replicas": [3, 6, 7], "target": [3, 7, 1], "leader": 3}
			]}
		]}`), &v)
	if err != nil {
		t.Fatal(err)
	}
	// 1-3 are voters, 5 holds no replica of chaos, 6 is draining.
	if got := decommissionCandidates(&v, "chaos", []int{1, 2, 3, 4, 5, 6, 7}); !slices.Equal(got, []int{4, 7}) {
		t.Errorf("candidates %v, want [4 7]", got)
	}
	// Brokers down or paused are not candidates.
	if got := decommissionCandidates(&v, "chaos", []int{1, 2, 3, 7}); !slices.Equal(got, []int{7}) {
		t.Errorf("candidates with 4 down %v, want [7]", got)
	}
	if got := hostedBy(assignment(&v, "chaos"), 7); !slices.Equal(got, []int32{1}) {
		t.Errorf("broker 7 hosts %v, want [1]", got)
	}
}

func TestCheckerCountsDecommissions(t *testing.T) {
	h := healthy()
	h.add(Op{Index: 90, Process: "nemesis", Type: Invoke, F: FDecommission, Node: 4, Parts: []int32{0}})
	h.add(Op{Index: 90, Process: "nemesis", Type: OK, F: FDecommission, Node: 4, Parts: []int32{0}})
	h.add(Op{Index: 91, Process: "nemesis", Type: Invoke, F: FReadd, Node: 4})
	h.add(Op{Index: 91, Process: "nemesis", Type: Unknown, F: FReadd, Node: 4, Error: "timeout"})
	h.add(Op{Index: 92, Process: "nemesis", Type: Invoke, F: FDecommission, Node: 4})
	h.add(Op{Index: 92, Process: "nemesis", Type: Fail, F: FDecommission, Node: 4})
	r := h.check()
	wantOnly(t, r, "", 0)
	if want := (Counts{OK: 1, Fail: 1}); r.Decommissions != want {
		t.Errorf("decommissions %+v, want %+v", r.Decommissions, want)
	}
	if want := (Counts{Unknown: 1}); r.ReAdds != want {
		t.Errorf("re-adds %+v, want %+v", r.ReAdds, want)
	}
}

func TestParseFlagsDecommissionNeedsANonVoter(t *testing.T) {
	for _, tc := range []struct {
		brokers string
		ok      bool
	}{{"3", false}, {"4", true}, {"5", false}, {"6", true}} {
		_, err := parseFlags([]string{"-brokers", tc.brokers, "-faults", "kill,decommission"})
		if (err == nil) != tc.ok {
			t.Errorf("-brokers %s: error %v, want ok %v", tc.brokers, err, tc.ok)
		}
	}
}
