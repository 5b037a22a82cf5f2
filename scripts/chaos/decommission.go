package main

// The decommission fault: a broker drained of every replica while the
// workload runs (POST /v1/brokers/{id}/decommission: the controller leader
// moves its replicas off one partition at a time), and the heal that
// re-adds it (POST /v1/brokers/{id}/undrain, then partition moves that
// give it replicas again, POST /v1/partitions/{topic}/{p}/move).
//
// The admin API refuses to drain a controller voter, so the fault needs a
// broker that is not one: with -brokers 4 (voters 1-3) broker 4, with 6 or
// more (voters 1-5) brokers 6 and up.

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"
)

// Timings of the decommission fault.
const (
	drainTimeout   = 2 * time.Minute // a drain that runs to completion
	readdTimeout   = 2 * time.Minute // the re-add's moves
	adminRetryTime = 30 * time.Second
)

// drainView is the part of /v1/brokers/{id}/decommission the harness reads.
type drainView struct {
	Draining          bool   `json:"draining"`
	Done              bool   `json:"done"`
	ReplicasRemaining int    `json:"replicas_remaining"`
	Error             string `json:"error"` // why draining cannot progress
	Partitions        []struct {
		Topic     string `json:"topic"`
		Partition int32  `json:"partition"`
		Progress  *struct {
			Step  string `json:"step"`
			Error string `json:"error"`
		} `json:"progress"`
	} `json:"partitions"`
}

// decommissionCandidates lists the brokers of up that the admin API lets
// the harness drain (not controller voters, not draining already) and that
// hold a replica of topic, in id order.
func decommissionCandidates(v *clusterView, topic string, up []int) []int {
	hosting := map[int]bool{}
	for _, t := range v.Topics {
		if t.Name != topic {
			continue
		}
		for _, pv := range t.Partitions {
			for _, r := range pv.Replicas {
				hosting[int(r)] = true
			}
		}
	}
	var ids []int
	for _, b := range v.Brokers {
		id := int(b.ID)
		if !b.Voter && !b.Draining && hosting[id] && slices.Contains(up, id) {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	return ids
}

// assignment is topic's replica sets by partition, from v.
func assignment(v *clusterView, topic string) map[int32][]int32 {
	m := map[int32][]int32{}
	for _, t := range v.Topics {
		if t.Name == topic {
			for _, pv := range t.Partitions {
				m[pv.Partition] = pv.Replicas
			}
		}
	}
	return m
}

// hostedBy lists the partitions whose replica sets include node.
func hostedBy(assign map[int32][]int32, node int) []int32 {
	var ps []int32
	for p, rs := range assign {
		if slices.Contains(rs, int32(node)) {
			ps = append(ps, p)
		}
	}
	slices.Sort(ps)
	return ps
}

// readdTargets chooses the moves that give broker node replicas again and
// spread replicas evenly over brokers (which include node): while node
// holds fewer than its share (every replica over every broker, rounded
// down), one partition without node has one replica replaced, in place,
// by node. The replica taken is one of a broker holding the most replicas,
// and only from a broker with at least two more than node, so every move
// narrows the spread; ties go to the lowest partition, then the replica
// listed first. In place keeps the replica order: node becomes the
// preferred leader of a partition whose first replica it replaces. It
// returns the new replica sets by partition.
func readdTargets(assign map[int32][]int32, node int32, brokers []int32) map[int32][]int32 {
	counts := map[int32]int{}
	total := 0
	for _, id := range brokers {
		counts[id] = 0
	}
	parts := make([]int32, 0, len(assign))
	for p, rs := range assign {
		parts = append(parts, p)
		for _, r := range rs {
			counts[r]++
			total++
		}
	}
	slices.Sort(parts)
	out := map[int32][]int32{}
	if len(brokers) == 0 {
		return out
	}
	share := total / len(brokers)
	for counts[node] < share {
		bestP, bestI, bestN := int32(-1), -1, counts[node]+1
		for _, p := range parts {
			rs := assign[p]
			if _, moved := out[p]; moved || slices.Contains(rs, node) {
				continue
			}
			for i, r := range rs {
				if counts[r] > bestN {
					bestP, bestI, bestN = p, i, counts[r]
				}
			}
		}
		if bestI < 0 {
			break
		}
		rs := slices.Clone(assign[bestP])
		counts[rs[bestI]]--
		counts[node]++
		rs[bestI] = node
		out[bestP] = rs
	}
	return out
}

// adminRetry sends an admin request to the brokers up in turn until one
// answers other than 5xx or with no answer, for up to adminRetryTime. A
// 4xx answer is returned at once (the request was refused).
func (n *Nemesis) adminRetry(ctx context.Context, method, path string, in, out any) (int, error) {
	deadline := time.Now().Add(adminRetryTime)
	for try := 0; ; try++ {
		up := n.c.Up()
		if len(up) == 0 {
			return 0, fmt.Errorf("%s %s: no broker is up", method, path)
		}
		status, err := n.c.Admin(ctx, up[try%len(up)], method, path, in, out)
		if err == nil || status >= 400 && status < 500 || time.Now().After(deadline) || ctx.Err() != nil {
			return status, err
		}
		sleep(ctx, 250*time.Millisecond)
	}
}

// decommission drains a broker that is not a controller voter (one that
// leads a partition with probability -leader-frac). Half the time the
// drain runs to completion (up to drainTimeout) and the broker then stays
// empty for the fault time d; otherwise the heal stops it after d,
// drained or not (undrain during a drain). Heal re-adds the broker.
func (n *Nemesis) decommission(ctx context.Context, d time.Duration) {
	v, err := n.c.AnyView(ctx)
	if err != nil {
		n.fail("decommission: %v", err)
		return
	}
	cands := decommissionCandidates(v, n.topic, n.c.Up())
	if len(cands) == 0 {
		n.logf("decommission: no broker to drain (every broker up that holds replicas is a controller voter)")
		return
	}
	ls := n.leaders(ctx)
	node, target := cands[n.rng.IntN(len(cands))], "random"
	if n.rng.Float64() < n.cfg.LeaderFrac {
		var leading []int
		for _, id := range cands {
			if len(ledBy(ls, id)) > 0 {
				leading = append(leading, id)
			}
		}
		if len(leading) > 0 {
			node, target = leading[n.rng.IntN(len(leading))], "leader"
		}
	}
	full := n.rng.IntN(2) == 0
	hosted := hostedBy(assignment(v, n.topic), node)
	mode := fmt.Sprintf("stopped by the heal after %v", d.Round(time.Millisecond))
	if full {
		mode = fmt.Sprintf("until drained, then empty for %v", d.Round(time.Millisecond))
	}
	total := 0
	for _, b := range v.Brokers {
		if int(b.ID) == node {
			total = b.Replicas
		}
	}
	n.set(fmt.Sprintf("decommission broker %d (%s, leads %v, replicas of %v, %d replicas of every topic), %s", node, target, ledBy(ls, node), hosted, total, mode))
	op := n.h.Invoke(Op{Process: "nemesis", F: FDecommission, Node: node, Parts: hosted, Value: target})
	path := fmt.Sprintf("/v1/brokers/%d/decommission", node)
	status, err := n.adminRetry(ctx, http.MethodPost, path, nil, nil)
	if err != nil {
		if status >= 400 && status < 500 {
			n.h.Complete(op, Fail, err)
			n.fail("decommission refused: %v", err)
			return
		}
		n.h.Complete(op, Unknown, err)
		n.decommissioned = append(n.decommissioned, node)
		n.fail("decommission: %v", err)
		return
	}
	n.decommissioned = append(n.decommissioned, node)
	start := time.Now()
	deadline := start.Add(d)
	if full {
		deadline = start.Add(drainTimeout)
	}
	var dv drainView
	last, done := -1, false
	for {
		dv = drainView{}
		if _, err := n.c.Admin(ctx, node, http.MethodGet, path, nil, &dv); err == nil {
			if dv.ReplicasRemaining != last {
				last = dv.ReplicasRemaining
				msg := fmt.Sprintf("decommission broker %d: %d replicas remaining after %v%s", node, last, time.Since(start).Round(time.Millisecond), drainSteps(dv))
				n.logf("%s", msg)
				n.h.Add(Op{Process: "nemesis", Type: Info, F: FNemesis, Node: node, Value: msg})
			}
			if done = dv.Done; done {
				break
			}
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			break
		}
		sleep(ctx, 500*time.Millisecond)
	}
	took := time.Since(start).Round(time.Millisecond)
	switch {
	case done:
		op.Value = fmt.Sprintf("%s: drained in %v", target, took)
		n.h.Complete(op, OK, nil)
		if full {
			sleep(ctx, d)
		} else {
			sleep(ctx, time.Until(start.Add(d)))
		}
	case full:
		op.Value = target + ": not drained"
		n.h.Complete(op, Unknown, fmt.Errorf("%d replicas remaining after %v%s", last, took, drainSteps(dv)))
		n.fail("decommission of broker %d: %d replicas remaining after %v%s (drain error %q)", node, last, took, drainSteps(dv), dv.Error)
	default:
		op.Value = target + ": stopped by the heal"
		n.h.Complete(op, Unknown, fmt.Errorf("%d replicas remaining when stopped after %v", last, took))
	}
}

// drainSteps describes what the controller does for the partitions a
// drain still has to move.
func drainSteps(dv drainView) string {
	var s []string
	for _, p := range dv.Partitions {
		if p.Progress != nil && p.Progress.Step != "" {
			e := ""
			if p.Progress.Error != "" {
				e = " (" + p.Progress.Error + ")"
			}
			s = append(s, fmt.Sprintf("%s/%d: %s%s", p.Topic, p.Partition, p.Progress.Step, e))
		}
	}
	if len(s) == 0 {
		return ""
	}
	return "; " + strings.Join(s, "; ")
}

// readd ends the decommissioning of node: undrain, wait for the moves
// under way (a move already started finishes), then move replicas of every
// topic (the internal ones too: __consumer_offsets moves with its group
// coordinators) onto it, topic by topic (readdTargets), and wait until the
// moves are done. The history operation's Parts are the moves of the test
// topic's partitions.
func (n *Nemesis) readd(ctx context.Context, node int) {
	start := time.Now()
	op := n.h.Invoke(Op{Process: "nemesis", F: FReadd, Node: node})
	complete := func(typ string, err error) {
		n.h.Complete(op, typ, err)
		if err != nil {
			n.fail("re-add broker %d: %v", node, err)
		}
	}
	status, err := n.adminRetry(ctx, http.MethodPost, fmt.Sprintf("/v1/brokers/%d/undrain", node), nil, nil)
	if err != nil {
		typ := Unknown
		if status >= 400 && status < 500 {
			typ = Fail
		}
		complete(typ, err)
		return
	}
	if err := n.c.WaitMoves(ctx, readdTimeout); err != nil {
		complete(Unknown, fmt.Errorf("undrained, but the drain's moves did not finish: %w", err))
		return
	}
	v, err := n.c.AnyView(ctx)
	if err != nil {
		complete(Unknown, err)
		return
	}
	var brokers []int32
	for _, b := range v.Brokers {
		if !b.Draining {
			brokers = append(brokers, b.ID)
		}
	}
	type move struct {
		topic    string
		p        int32
		replicas []int32
	}
	var moves []move
	var desc []string
	for _, t := range v.Topics {
		targets := readdTargets(assignment(v, t.Name), int32(node), brokers)
		var ps []int32
		for p := range targets {
			ps = append(ps, p)
		}
		slices.Sort(ps)
		for _, p := range ps {
			moves = append(moves, move{t.Name, p, targets[p]})
			desc = append(desc, fmt.Sprintf("%s/%d:%v", t.Name, p, targets[p]))
			if t.Name == n.topic {
				op.Parts = append(op.Parts, p)
			}
		}
	}
	n.logf("re-add broker %d: moving %s", node, strings.Join(desc, " "))
	for i, m := range moves {
		req := map[string][]int32{"replicas": m.replicas}
		status, err := n.adminRetry(ctx, http.MethodPost, fmt.Sprintf("/v1/partitions/%s/%d/move", m.topic, m.p), req, nil)
		if err != nil {
			typ := Unknown // earlier moves were recorded
			if status >= 400 && status < 500 && i == 0 {
				typ = Fail
			}
			complete(typ, fmt.Errorf("move of %s/%d to %v: %w", m.topic, m.p, m.replicas, err))
			return
		}
	}
	if err := n.c.WaitMoves(ctx, readdTimeout); err != nil {
		complete(Unknown, err)
		return
	}
	if v, err = n.c.AnyView(ctx); err != nil {
		complete(Unknown, err)
		return
	}
	for _, m := range moves {
		if now := assignment(v, m.topic)[m.p]; !slices.Equal(now, m.replicas) {
			complete(Unknown, fmt.Errorf("%s/%d has replicas %v after its move to %v", m.topic, m.p, now, m.replicas))
			return
		}
	}
	op.Value = fmt.Sprintf("%d moves in %v; holds replicas of %s partitions %v", len(moves), time.Since(start).Round(time.Millisecond), n.topic, hostedBy(assignment(v, n.topic), node))
	n.logf("re-add broker %d: %s", node, op.Value)
	complete(OK, nil)
}
