package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"
)

// Fault kinds the nemesis knows.
var faultKinds = []string{
	"kill",             // SIGKILL a broker (a leader with probability -leader-frac), restart it after the fault time
	"kill-leader",      // SIGKILL the leader of a random partition
	"pause",            // SIGSTOP a broker (a leader with probability -leader-frac) for the fault time, then SIGCONT
	"pause-leader",     // SIGSTOP the leader of a random partition
	"partition-leader", // isolate the leader of a random partition from every other broker (minority | majority)
	"partition-random", // isolate a random minority of brokers
	"bridge",           // two sides that cannot talk, and one broker that talks to both
	"one-way",          // a random partition's leader can receive but not send to the others
	"delay",            // add 20-200 ms of latency to every link
	"reset",            // reset the connections between random pairs of brokers every 300 ms
	"power-loss",       // SIGKILL a broker (a leader with probability -leader-frac) running on the fault filesystem, losing its unsynced writes (half the time after stalling its fsyncs 0.1-1 s); restart it after the fault time
	"power-loss-all",   // SIGKILL every broker at the same instant (half the time after stalling their fsyncs 0.1-1 s); restart them all after the fault time
	"disk-stall",       // stall the fsyncs of a broker (a leader with probability -leader-frac) for the fault time
	"disk-fail",        // fail the fsyncs of a broker (a leader with probability -leader-frac) with EIO for the fault time; heal: restart it (SIGKILL, start), since its failed logs stay failed (fsyncgate)
	"decommission",     // drain a broker that is not a controller voter (a leader with probability -leader-frac) of every replica, to completion then for the fault time, or stopped after the fault time; heal: undrain it and move replicas back onto it (decommission.go)
}

// faultFSKinds need the brokers to run with --debug-fault-fs: partition
// logs keep unsynced data in process memory, so a SIGKILL loses it as a
// power loss would, and disk faults can be injected over HTTP. Every
// SIGKILL of such a run (kill and kill-leader too) is then a power loss of
// that broker's partition logs.
var faultFSKinds = []string{"power-loss", "power-loss-all", "disk-stall", "disk-fail"}

// needsFaultFS reports whether kinds (comma-separated) include a kind of
// faultFSKinds.
func needsFaultFS(kinds string) bool {
	for _, k := range strings.Split(kinds, ",") {
		if slices.Contains(faultFSKinds, k) {
			return true
		}
	}
	return false
}

// NemesisConfig shapes the fault schedule.
type NemesisConfig struct {
	Kinds      []string
	LeaderFrac float64
	FaultMin   time.Duration
	FaultMax   time.Duration
	HealMin    time.Duration
	HealMax    time.Duration
}

// Nemesis injects faults into a cluster, one at a time, healing after each.
type Nemesis struct {
	cfg   NemesisConfig
	c     *Cluster
	h     *History
	rng   *rand.Rand
	topic string
	parts int
	logf  func(string, ...any)

	mu      sync.Mutex
	current string
	counts  map[string]int
	kills   int
	errs    []string

	// Brokers whose disk is stalled or failing, and brokers
	// decommissioned, for Heal. Only the nemesis's goroutine (Run, then
	// Heal) uses them.
	diskStalled, diskFailed, decommissioned []int
}

// NewNemesis returns a nemesis whose choices come from seed.
func NewNemesis(cfg NemesisConfig, c *Cluster, h *History, seed uint64, topic string, parts int, logf func(string, ...any)) *Nemesis {
	return &Nemesis{cfg: cfg, c: c, h: h, rng: rand.New(rand.NewPCG(seed, 7)), topic: topic, parts: parts, logf: logf, counts: map[string]int{}}
}

// Current describes the fault in force, "" when healed.
func (n *Nemesis) Current() string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.current
}

// Counts is how often each kind ran.
func (n *Nemesis) Counts() map[string]int {
	n.mu.Lock()
	defer n.mu.Unlock()
	m := map[string]int{}
	for k, v := range n.counts {
		m[k] = v
	}
	return m
}

// Kills counts kill cycles: one per kill, kill-leader and power-loss, and
// one per power-loss-all (which kills every broker). The restart that
// heals disk-fail is not counted.
func (n *Nemesis) Kills() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.kills
}

// Errors are liveness failures met while healing.
func (n *Nemesis) Errors() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return slices.Clone(n.errs)
}

func (n *Nemesis) set(desc string) {
	n.mu.Lock()
	n.current = desc
	n.mu.Unlock()
	if desc != "" {
		n.logf("fault: %s", desc)
		n.h.Add(Op{Process: "nemesis", Type: Info, F: FNemesis, Value: "start " + desc})
	}
}

func (n *Nemesis) between(lo, hi time.Duration) time.Duration {
	if hi <= lo {
		return lo
	}
	return lo + time.Duration(n.rng.Int64N(int64(hi-lo)))
}

// sleep waits d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

// leaders waits (up to 10 s) until every partition has a known leader and
// returns them.
func (n *Nemesis) leaders(ctx context.Context) []int {
	deadline := time.Now().Add(10 * time.Second)
	for {
		ls := n.c.Leaders(ctx, n.topic, n.parts)
		if !slices.Contains(ls, -1) || time.Now().After(deadline) || ctx.Err() != nil {
			return ls
		}
		sleep(ctx, 100*time.Millisecond)
	}
}

func ledBy(leaders []int, node int) []int32 {
	var ps []int32
	for p, l := range leaders {
		if l == node {
			ps = append(ps, int32(p))
		}
	}
	return ps
}

// target picks a victim: the leader of a random partition when leader is
// set (a random broker up if none is known), else a random broker up.
func (n *Nemesis) target(ctx context.Context, leader bool) (node int, led []int32, isLeader bool) {
	ls := n.leaders(ctx)
	up := n.c.Up()
	if len(up) == 0 {
		return 0, nil, false
	}
	node = up[n.rng.IntN(len(up))]
	if leader {
		p := n.rng.IntN(n.parts)
		if ls[p] > 0 && slices.Contains(up, ls[p]) {
			node, isLeader = ls[p], true
		}
	}
	return node, ledBy(ls, node), isLeader
}

// others lists every broker but node.
func (n *Nemesis) others(node int) []int {
	var o []int
	for _, b := range n.c.Brokers {
		if b.ID != node {
			o = append(o, b.ID)
		}
	}
	return o
}

// isolate cuts every link between the groups a and b, both ways.
func (n *Nemesis) isolate(a, b []int) {
	for _, x := range a {
		for _, y := range b {
			n.c.Net.Cut(x, y, true)
			n.c.Net.Cut(y, x, true)
		}
	}
}

// Run injects faults until stop reports true or ctx ends, healing after
// each one and waiting a healthy while before the next.
func (n *Nemesis) Run(ctx context.Context, stop func() bool) {
	for ctx.Err() == nil && !stop() {
		kind := n.cfg.Kinds[n.rng.IntN(len(n.cfg.Kinds))]
		n.mu.Lock()
		n.counts[kind]++
		n.mu.Unlock()
		n.inject(ctx, kind)
		n.Heal(ctx)
		sleep(ctx, n.between(n.cfg.HealMin, n.cfg.HealMax))
	}
}

func (n *Nemesis) inject(ctx context.Context, kind string) {
	d := n.between(n.cfg.FaultMin, n.cfg.FaultMax)
	switch kind {
	case "kill", "kill-leader", "power-loss":
		node, led, isLeader := n.target(ctx, kind == "kill-leader" || n.rng.Float64() < n.cfg.LeaderFrac)
		if node == 0 {
			return
		}
		target := "random"
		if isLeader {
			target = "leader"
		}
		n.set(fmt.Sprintf("%s broker %d (pid %d, %s, leads %v) for %v", kind, node, n.c.Broker(node).PID(), target, led, d.Round(time.Millisecond)))
		if kind == "power-loss" {
			n.stallFirst(ctx, []int{node})
			n.logUnsynced(ctx, []int{node})
		}
		t := n.h.Now()
		n.c.Kill(node)
		n.h.Add(Op{T: t, Process: "nemesis", Type: Info, F: FKill, Node: node, Parts: led, Value: target})
		n.mu.Lock()
		n.kills++
		n.mu.Unlock()
		sleep(ctx, d)
	case "power-loss-all":
		n.set(fmt.Sprintf("power-loss-all: every broker, down for %v", d.Round(time.Millisecond)))
		n.stallFirst(ctx, n.c.Up())
		n.logUnsynced(ctx, n.c.Up())
		t := n.h.Now()
		// No Parts: a cluster restarting from cold is no election to time.
		for _, id := range n.c.KillTogether() {
			n.h.Add(Op{T: t, Process: "nemesis", Type: Info, F: FKill, Node: id, Value: "all"})
		}
		n.mu.Lock()
		n.kills++
		n.mu.Unlock()
		sleep(ctx, d)
	case "disk-stall", "disk-fail":
		node, led, isLeader := n.target(ctx, n.rng.Float64() < n.cfg.LeaderFrac)
		if node == 0 {
			return
		}
		target := "random"
		if isLeader {
			target = "leader"
		}
		action := strings.TrimPrefix(kind, "disk-")
		n.set(fmt.Sprintf("%s broker %d (%s, leads %v) for %v", kind, node, target, led, d.Round(time.Millisecond)))
		t := n.h.Now()
		if err := n.c.Disk(ctx, node, action); err != nil {
			n.fail("%s: %v", kind, err)
			return
		}
		n.h.Add(Op{T: t, Process: "nemesis", Type: Info, F: FDisk, Node: node, Parts: led, Value: action})
		if kind == "disk-stall" {
			n.diskStalled = append(n.diskStalled, node)
		} else {
			n.diskFailed = append(n.diskFailed, node)
		}
		sleep(ctx, d)
	case "pause", "pause-leader":
		node, led, isLeader := n.target(ctx, kind == "pause-leader" || n.rng.Float64() < n.cfg.LeaderFrac)
		if node == 0 {
			return
		}
		target := "random"
		if isLeader {
			target = "leader"
		}
		n.set(fmt.Sprintf("%s broker %d (pid %d, %s, leads %v) for %v", kind, node, n.c.Broker(node).PID(), target, led, d.Round(time.Millisecond)))
		t := n.h.Now()
		n.c.Pause(node)
		n.h.Add(Op{T: t, Process: "nemesis", Type: Info, F: FPause, Node: node, Parts: led, Value: target})
		sleep(ctx, d)
	case "partition-leader", "one-way":
		node, led, _ := n.target(ctx, true)
		if node == 0 {
			return
		}
		rest := n.others(node)
		if kind == "one-way" {
			n.set(fmt.Sprintf("one-way: broker %d (leads %v) cannot send to %v for %v", node, led, rest, d.Round(time.Millisecond)))
			for _, o := range rest {
				n.c.Net.Cut(node, o, true)
			}
		} else {
			n.set(fmt.Sprintf("partition-leader: [%d] (leads %v) | %v for %v", node, led, rest, d.Round(time.Millisecond)))
			n.isolate([]int{node}, rest)
		}
		sleep(ctx, d)
	case "partition-random":
		ids := n.ids()
		n.rng.Shuffle(len(ids), func(i, j int) { ids[i], ids[j] = ids[j], ids[i] })
		k := (len(ids) - 1) / 2
		minority, majority := sorted(ids[:k]), sorted(ids[k:])
		n.set(fmt.Sprintf("partition-random: %v | %v for %v", minority, majority, d.Round(time.Millisecond)))
		n.isolate(minority, majority)
		sleep(ctx, d)
	case "bridge":
		ids := n.ids()
		n.rng.Shuffle(len(ids), func(i, j int) { ids[i], ids[j] = ids[j], ids[i] })
		bridge := ids[0]
		half := (len(ids) - 1) / 2
		a, b := sorted(ids[1:1+half]), sorted(ids[1+half:])
		n.set(fmt.Sprintf("bridge: %v | %v, broker %d talks to both, for %v", a, b, bridge, d.Round(time.Millisecond)))
		n.isolate(a, b)
		sleep(ctx, d)
	case "delay":
		var desc []string
		for _, x := range n.ids() {
			for _, y := range n.ids() {
				if x != y {
					l := time.Duration(20+n.rng.IntN(180)) * time.Millisecond
					n.c.Net.Delay(x, y, l)
					desc = append(desc, fmt.Sprintf("%d->%d %v", x, y, l))
				}
			}
		}
		n.set(fmt.Sprintf("delay: %s for %v", strings.Join(desc, ", "), d.Round(time.Millisecond)))
		sleep(ctx, d)
	case "reset":
		n.set(fmt.Sprintf("reset: random pairs every 300ms for %v", d.Round(time.Millisecond)))
		end := time.Now().Add(d)
		resets := 0
		for time.Now().Before(end) && ctx.Err() == nil {
			ids := n.ids()
			n.rng.Shuffle(len(ids), func(i, j int) { ids[i], ids[j] = ids[j], ids[i] })
			resets += n.c.Net.Reset(ids[0], ids[1])
			sleep(ctx, 300*time.Millisecond)
		}
		n.logf("reset %d connections", resets)
	case "decommission":
		n.decommission(ctx, d)
	default:
		n.logf("unknown fault kind %q", kind)
	}
}

// stallFirst, for half of the power losses, stalls the fsyncs of ids for
// 100 ms to 1 s before the power goes, so that it finds frames written but
// not synced (the log fsyncs every group commit: without a slow disk there
// is rarely anything unsynced at the instant of a SIGKILL). The restarted
// brokers' disks are healthy.
func (n *Nemesis) stallFirst(ctx context.Context, ids []int) {
	if n.rng.IntN(2) == 0 {
		return
	}
	d := n.between(100*time.Millisecond, time.Second)
	n.logf("stalling the fsyncs of brokers %v for %v before the power loss", ids, d.Round(time.Millisecond))
	n.h.Add(Op{Process: "nemesis", Type: Info, F: FNemesis, Value: fmt.Sprintf("fsyncs of %v stalled %v before the power loss", ids, d.Round(time.Millisecond))})
	for _, id := range ids {
		if err := n.c.Disk(ctx, id, "stall"); err != nil {
			n.fail("stall before power-loss: %v", err)
		}
	}
	sleep(ctx, d)
}

// logUnsynced logs what the brokers' partition logs hold unsynced just
// before a power loss (a moment before: the log syncs every group commit,
// so without a stall this is usually nothing).
func (n *Nemesis) logUnsynced(ctx context.Context, ids []int) {
	var parts []string
	for _, id := range ids {
		b, f, err := n.c.DiskStats(ctx, id)
		if err != nil {
			parts = append(parts, fmt.Sprintf("broker %d: %v", id, err))
			continue
		}
		parts = append(parts, fmt.Sprintf("broker %d: %d bytes in %d files", id, b, f))
	}
	n.logf("unsynced just before the power loss: %s", strings.Join(parts, "; "))
}

func (n *Nemesis) ids() []int {
	var ids []int
	for _, b := range n.c.Brokers {
		ids = append(ids, b.ID)
	}
	return ids
}

func sorted(xs []int) []int {
	ys := slices.Clone(xs)
	sort.Ints(ys)
	return ys
}

// Heal removes every network fault, resumes paused brokers and stalled
// disks, restarts dead brokers and those whose disk failed, waits until
// all are ready and every partition has a leader, then re-adds the
// brokers decommissioned (undrain, moves back) and waits for the moves.
func (n *Nemesis) Heal(ctx context.Context) {
	n.c.Net.Heal()
	for _, id := range n.diskStalled {
		if err := n.c.Disk(ctx, id, "resume"); err != nil && n.c.Broker(id).Running() {
			n.fail("resume the disk of broker %d: %v", id, err)
		}
	}
	n.diskStalled = nil
	for _, id := range n.diskFailed {
		// A log whose fsync failed stays failed closed (fsyncgate): the
		// disk healing does not reopen it, a restart does, from what is on
		// disk. SIGKILL, as an operator replacing a failed disk's broker
		// would not wait for a clean shutdown.
		n.logf("disk-fail: restarting broker %d (SIGKILL, then start)", id)
		n.h.Add(Op{Process: "nemesis", Type: Info, F: FNemesis, Value: fmt.Sprintf("restart broker %d after disk-fail", id)})
		n.c.Kill(id)
	}
	n.diskFailed = nil
	for _, b := range n.c.Brokers {
		n.c.Resume(b.ID)
		if !b.Running() {
			if err := n.c.Start(b.ID); err != nil {
				n.fail("restart broker %d: %v", b.ID, err)
			}
		}
	}
	if n.Current() != "" {
		n.h.Add(Op{Process: "nemesis", Type: Info, F: FNemesis, Value: "heal"})
	}
	n.set("")
	wctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	for _, b := range n.c.Brokers {
		if err := n.c.WaitReady(wctx, b.ID); err != nil && ctx.Err() == nil {
			n.fail("after healing: %v", err)
		}
	}
	if ls := n.leaders(ctx); slices.Contains(ls, -1) && ctx.Err() == nil {
		n.fail("after healing: partitions without a leader after 10s: %v", ls)
	}
	for _, id := range n.decommissioned {
		n.readd(ctx, id)
	}
	n.decommissioned = nil
}

func (n *Nemesis) fail(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	n.logf("LIVENESS: %s", msg)
	n.h.Add(Op{Process: "nemesis", Type: Info, F: FNemesis, Value: "liveness: " + msg})
	n.mu.Lock()
	n.errs = append(n.errs, msg)
	n.mu.Unlock()
}
