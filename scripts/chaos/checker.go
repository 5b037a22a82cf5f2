package main

import (
	"fmt"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Anomalies the checker reports, with Jepsen's names for them (Jepsen's
// Kafka and Redpanda analyses). Every one fails a run.
const (
	// Lost: a record whose send was acknowledged is in no replica's final
	// read after healing.
	Lost = "lost"
	// Duplicate: one value read at two or more offsets.
	Duplicate = "duplicate"
	// InconsistentOffsets: two different values read (or acknowledged) at
	// one partition and offset.
	InconsistentOffsets = "inconsistent-offsets"
	// Reorder: two acknowledged values of one key (each key is written by
	// one producer, in sequence order) stored in the other order.
	Reorder = "reorder"
	// NonMonotonicPoll: a consumer, within one assignment of a partition,
	// polled an offset at or below one it had already polled.
	NonMonotonicPoll = "nonmonotonic-poll"
	// PollSkip: a consumer, within one assignment of a partition, jumped
	// over offsets (offsets are dense: every offset holds a record).
	PollSkip = "poll-skip"
	// Unseen: an acknowledged record present after healing that the
	// consumer group never polled, although it was given time to catch up.
	Unseen = "unseen"
	// CommitBackwards: the group's committed offset of a partition, read by
	// the observer, below an offset whose commit was acknowledged before the
	// read began, or below an earlier read.
	CommitBackwards = "commit-backwards"
	// Phantom: a value read that no producer ever sent, or whose send
	// failed definitely (a refusal must mean it was not written).
	Phantom = "phantom"

	// The share group's (share_check.go).

	// ShareLost: an acknowledged record present after healing that the
	// share group did not accept by the end of its drain: never
	// delivered, or its latest delivery's ACCEPT certainly not applied.
	ShareLost = "share-lost"
	// SharePhantom: a value delivered to the share group that no
	// producer sent, or whose send failed definitely.
	SharePhantom = "share-phantom"
	// ShareAcceptedRedelivered: a record delivered with a higher delivery
	// count than a delivery whose ACCEPT the broker confirmed: an
	// acknowledged record came back.
	ShareAcceptedRedelivered = "share-accepted-redelivered"
	// ShareCountReused: two deliveries of one record with the same
	// delivery count: an acquisition was forgotten (delivery counts are
	// replicated before records are handed out).
	ShareCountReused = "share-count-reused"
)

// AllAnomalies lists every anomaly, in report order.
var AllAnomalies = []string{Lost, Duplicate, InconsistentOffsets, Reorder, NonMonotonicPoll, PollSkip, Unseen, CommitBackwards, Phantom,
	ShareLost, SharePhantom, ShareAcceptedRedelivered, ShareCountReused}

// minElection is the shortest kill-to-ack time counted as an election.
const minElection = 50 * time.Millisecond

// maxExamples bounds the examples kept per anomaly.
const maxExamples = 8

// Counts counts completions of one operation function.
type Counts struct {
	OK      int `json:"ok"`
	Fail    int `json:"fail"`
	Unknown int `json:"unknown"`
}

func (c *Counts) add(typ string) {
	switch typ {
	case OK:
		c.OK++
	case Fail:
		c.Fail++
	case Unknown:
		c.Unknown++
	}
}

// Report is the checker's verdict on a history.
type Report struct {
	Valid     bool                `json:"valid"`
	Sends     Counts              `json:"sends"`
	Polls     Counts              `json:"polls"`
	Commits   Counts              `json:"commits"`
	Polled    int                 `json:"records_polled"`
	FinalRead int                 `json:"records_in_final_read"`
	Anomalies map[string]int      `json:"anomalies"`
	Examples  map[string][]string `json:"examples,omitempty"`
	// Elections are the times from each SIGKILL of a partition's leader
	// to the first acknowledged send on that partition afterwards.
	// LeaderKills counts the kills aimed at a partition's leader (Value
	// "leader" in the history); random kills may hit leaders too.
	Elections     int     `json:"elections_measured"`
	ElectionP50   float64 `json:"election_p50_s"`
	ElectionP99   float64 `json:"election_p99_s"`
	ElectionMax   float64 `json:"election_max_s"`
	Kills         int     `json:"kills"`
	LeaderKills   int     `json:"leader_kills"`
	Pauses        int     `json:"pauses"`
	NemesisEvents int     `json:"nemesis_events"`
	// Decommissions and ReAdds count the decommission fault's drains and
	// the re-adds that heal it, by outcome.
	Decommissions Counts `json:"decommissions"`
	ReAdds        Counts `json:"re_adds"`
	// NoFinalRead is set when the history has no final read, so lost and
	// unseen could not be judged (a history cut short).
	NoFinalRead bool `json:"no_final_read,omitempty"`
	// Share describes the share group's deliveries; nil without one.
	Share *ShareStats `json:"share,omitempty"`
}

type po struct {
	p int32
	o int64
}

func (x po) String() string { return fmt.Sprintf("%d/%d", x.p, x.o) }

type sendState struct {
	status string // the completion's type; "" while only invoked
	acked  po     // where the ack put it
	ackT   int64
}

type pollSession struct {
	last int64 // last offset polled in this assignment; -1 none
}

type commitAck struct {
	t   int64 // completion time
	off int64
}

type commitObs struct {
	t   int64 // invocation time
	off int64
	src string
}

// Checker accumulates a history (Add, in file order) and judges it (Report).
type Checker struct {
	rep Report

	sends    map[string]*sendState
	at       map[po][]string            // distinct values seen at each offset (reads and acks)
	readAt   map[string]map[po]struct{} // offsets each value was read at
	final    map[string]bool            // values in some final read
	finalLog map[int32]map[int64]string
	polled   map[string]bool
	sessions map[string]map[int32]*pollSession // process -> partition
	acks     map[int32][]commitAck
	obs      map[int32][]commitObs
	kills    []Op // kill and pause ops, with the partitions their victim led
	firstAck map[int32][]int64
	invokeT  map[int64]int64 // invocation times of committed reads, by index

	pollCounts   map[string]int
	pollExamples map[string][]string
	hasFinal     bool

	share shareChecker
}

// NewChecker returns an empty checker.
func NewChecker() *Checker {
	return &Checker{
		rep:      Report{Anomalies: map[string]int{}, Examples: map[string][]string{}},
		sends:    map[string]*sendState{},
		at:       map[po][]string{},
		readAt:   map[string]map[po]struct{}{},
		final:    map[string]bool{},
		finalLog: map[int32]map[int64]string{},
		polled:   map[string]bool{},
		sessions: map[string]map[int32]*pollSession{},
		acks:     map[int32][]commitAck{},
		obs:      map[int32][]commitObs{},
		firstAck: map[int32][]int64{},
		invokeT:  map[int64]int64{},

		pollCounts:   map[string]int{},
		pollExamples: map[string][]string{},

		share: newShareChecker(),
	}
}

func (c *Checker) anomaly(kind, format string, args ...any) {
	c.rep.Anomalies[kind]++
	if len(c.rep.Examples[kind]) < maxExamples {
		c.rep.Examples[kind] = append(c.rep.Examples[kind], fmt.Sprintf(format, args...))
	}
}

// pollAnomaly records an anomaly found while adding polls; Report adds
// these to what it finds.
func (c *Checker) pollAnomaly(kind, format string, args ...any) {
	c.pollCounts[kind]++
	if len(c.pollExamples[kind]) < maxExamples {
		c.pollExamples[kind] = append(c.pollExamples[kind], fmt.Sprintf(format, args...))
	}
}

// see records that v was observed at x (by a read, or an ack when read is
// false).
func (c *Checker) see(x po, v string, read bool) {
	vs := c.at[x]
	if !slices.Contains(vs, v) {
		vs = append(vs, v)
		c.at[x] = vs
	}
	if !read {
		return
	}
	m := c.readAt[v]
	if m == nil {
		m = map[po]struct{}{}
		c.readAt[v] = m
	}
	m[x] = struct{}{}
}

// Add takes the next operation of the history.
func (c *Checker) Add(op Op) {
	switch op.F {
	case FSend:
		s := c.sends[op.Value]
		if s == nil {
			s = &sendState{}
			c.sends[op.Value] = s
		}
		if op.Type == Invoke {
			return
		}
		c.rep.Sends.add(op.Type)
		s.status = op.Type
		if op.Type == OK {
			s.acked, s.ackT = po{op.P, op.O}, op.T
			c.see(s.acked, op.Value, false)
			c.firstAck[op.P] = append(c.firstAck[op.P], op.T)
		}
	case FPoll:
		if op.Type == Invoke {
			return
		}
		c.rep.Polls.add(op.Type)
		sess := c.sessions[op.Process]
		if sess == nil {
			sess = map[int32]*pollSession{}
			c.sessions[op.Process] = sess
		}
		for _, r := range op.Recs {
			c.rep.Polled++
			c.polled[r.V] = true
			c.see(po{r.P, r.O}, r.V, true)
			s := sess[r.P]
			if s == nil {
				// Polled without an assignment we know of: a session of its own.
				s = &pollSession{last: -1}
				sess[r.P] = s
			}
			switch {
			case s.last >= 0 && r.O <= s.last:
				c.pollAnomaly(NonMonotonicPoll, "%s polled %d/%d (%s) after %d/%d", op.Process, r.P, r.O, r.V, r.P, s.last)
			case s.last >= 0 && r.O > s.last+1:
				c.pollAnomaly(PollSkip, "%s polled %d/%d after %d/%d, skipping %d offsets", op.Process, r.P, r.O, r.P, s.last, r.O-s.last-1)
			}
			s.last = max(s.last, r.O)
		}
	case FAssign, FRevoke:
		sess := c.sessions[op.Process]
		if sess == nil {
			sess = map[int32]*pollSession{}
			c.sessions[op.Process] = sess
		}
		for _, p := range op.Parts {
			if op.F == FAssign {
				sess[p] = &pollSession{last: -1}
			} else {
				delete(sess, p)
			}
		}
	case FCommit:
		if op.Type == Invoke {
			return
		}
		c.rep.Commits.add(op.Type)
		if op.Type == OK {
			for p, off := range op.Offsets {
				c.acks[p] = append(c.acks[p], commitAck{op.T, off})
			}
		}
	case FCommitted:
		if op.Type == Invoke {
			c.invokeT[op.Index] = op.T
			return
		}
		t, ok := c.invokeT[op.Index]
		delete(c.invokeT, op.Index)
		if op.Type == OK && ok {
			// The read began at its invocation: commits acknowledged
			// before then must be visible to it.
			for p, off := range op.Offsets {
				c.obs[p] = append(c.obs[p], commitObs{t, off, op.Process})
			}
		}
	case FRead:
		c.hasFinal = true
		for _, r := range op.Recs {
			c.see(po{r.P, r.O}, r.V, true)
			c.final[r.V] = true
			l := c.finalLog[r.P]
			if l == nil {
				l = map[int64]string{}
				c.finalLog[r.P] = l
			}
			l[r.O] = r.V
		}
	case FKill, FPause:
		if op.Type != Invoke {
			c.kills = append(c.kills, op)
		}
	case FNemesis:
		c.rep.NemesisEvents++
	case FDecommission:
		c.rep.Decommissions.add(op.Type)
	case FReadd:
		c.rep.ReAdds.add(op.Type)
	case FSharePoll, FShareAck, FShareDrain:
		c.addShare(op)
	}
}

// parseValue splits a value "<key>/<seq>[|padding]".
func parseValue(v string) (key string, seq int64, ok bool) {
	if i := strings.IndexByte(v, '|'); i >= 0 {
		v = v[:i]
	}
	i := strings.LastIndexByte(v, '/')
	if i < 0 {
		return "", 0, false
	}
	n, err := strconv.ParseInt(v[i+1:], 10, 64)
	if err != nil {
		return "", 0, false
	}
	return v[:i], n, true
}

// Report judges everything added so far.
func (c *Checker) Report() Report {
	c.rep.Anomalies = map[string]int{}
	c.rep.Examples = map[string][]string{}
	for k, n := range c.pollCounts {
		c.rep.Anomalies[k] = n
		c.rep.Examples[k] = slices.Clone(c.pollExamples[k])
	}
	c.rep.Kills, c.rep.LeaderKills, c.rep.Pauses = 0, 0, 0
	c.rep.Elections, c.rep.ElectionP50, c.rep.ElectionP99, c.rep.ElectionMax = 0, 0, 0, 0

	// Inconsistent offsets, in offset order for stable examples.
	pos := make([]po, 0, len(c.at))
	for x, vs := range c.at {
		if len(vs) > 1 {
			pos = append(pos, x)
		}
	}
	sort.Slice(pos, func(i, j int) bool { return pos[i].p < pos[j].p || pos[i].p == pos[j].p && pos[i].o < pos[j].o })
	for _, x := range pos {
		c.anomaly(InconsistentOffsets, "%s holds %s", x, strings.Join(c.at[x], " and "))
	}

	// Duplicates and phantoms.
	vals := make([]string, 0, len(c.readAt))
	for v := range c.readAt {
		vals = append(vals, v)
	}
	sort.Strings(vals)
	for _, v := range vals {
		if len(c.readAt[v]) > 1 {
			var at []string
			for x := range c.readAt[v] {
				at = append(at, x.String())
			}
			sort.Strings(at)
			c.anomaly(Duplicate, "%s read at %s", v, strings.Join(at, ", "))
		}
		if s, ok := c.sends[v]; !ok {
			c.anomaly(Phantom, "%s read but never sent", v)
		} else if s.status == Fail {
			c.anomaly(Phantom, "%s read but its send failed (the broker refused it)", v)
		}
	}

	// Lost and unseen: acknowledged values missing after healing.
	c.rep.NoFinalRead = !c.hasFinal
	c.rep.FinalRead = len(c.final)
	acked := make([]string, 0, len(c.sends))
	for v, s := range c.sends {
		if s.status == OK {
			acked = append(acked, v)
		}
	}
	sort.Strings(acked)
	if c.hasFinal {
		for _, v := range acked {
			s := c.sends[v]
			switch {
			case !c.final[v]:
				c.anomaly(Lost, "%s acknowledged at %s (%.3fs) is in no replica's final read", v, s.acked, float64(s.ackT)/1e9)
			case !c.polled[v]:
				c.anomaly(Unseen, "%s acknowledged at %s never polled by the group", v, s.acked)
			}
		}
	}

	// Reorder: per key, acknowledged values in offset order must have
	// increasing sequence numbers.
	parts := make([]int32, 0, len(c.finalLog))
	for p := range c.finalLog {
		parts = append(parts, p)
	}
	slices.Sort(parts)
	for _, p := range parts {
		l := c.finalLog[p]
		offs := make([]int64, 0, len(l))
		for o := range l {
			offs = append(offs, o)
		}
		slices.Sort(offs)
		last := map[string]int64{}
		lastV := map[string]string{}
		done := map[string]bool{}
		for _, o := range offs {
			v := l[o]
			if s := c.sends[v]; s == nil || s.status != OK || done[v] {
				continue // later copies of a value are duplicates, reported as such
			}
			done[v] = true
			k, seq, ok := parseValue(v)
			if !ok {
				continue
			}
			if prev, seen := last[k]; seen && seq <= prev {
				c.anomaly(Reorder, "key %s: %s at %d/%d after %s", k, v, p, o, lastV[k])
			}
			if seq > last[k] || lastV[k] == "" {
				last[k], lastV[k] = seq, v
			}
		}
	}

	// Committed offsets going backwards.
	cparts := make([]int32, 0, len(c.obs))
	for p := range c.obs {
		cparts = append(cparts, p)
	}
	slices.Sort(cparts)
	for _, p := range cparts {
		acks := c.acks[p]
		sort.Slice(acks, func(i, j int) bool { return acks[i].t < acks[j].t })
		obs := c.obs[p]
		sort.SliceStable(obs, func(i, j int) bool { return obs[i].t < obs[j].t })
		var maxAck int64 = -1
		var maxAckT int64
		prevObs := map[string]int64{}
		i := 0
		for _, ob := range obs {
			for i < len(acks) && acks[i].t < ob.t {
				if acks[i].off > maxAck {
					maxAck, maxAckT = acks[i].off, acks[i].t
				}
				i++
			}
			if ob.off < maxAck {
				c.anomaly(CommitBackwards, "partition %d: %s read committed offset %d at %.3fs; %d was acknowledged at %.3fs", p, ob.src, ob.off, float64(ob.t)/1e9, maxAck, float64(maxAckT)/1e9)
			} else if prev, ok := prevObs[ob.src]; ok && ob.off < prev {
				c.anomaly(CommitBackwards, "partition %d: %s read committed offset %d at %.3fs after reading %d", p, ob.src, ob.off, float64(ob.t)/1e9, prev)
			}
			prevObs[ob.src] = max(prevObs[ob.src], ob.off)
		}
	}

	c.reportShare()

	// Election times: kill or pause of a leader to the partition's next ack.
	var took []float64
	for _, ts := range c.firstAck {
		slices.Sort(ts)
	}
	for _, k := range c.kills {
		if k.F != FKill {
			c.rep.Pauses++
			continue // a paused leader may come back before anyone is elected
		}
		c.rep.Kills++
		if k.Value == "leader" {
			c.rep.LeaderKills++
		}
		for _, p := range k.Parts {
			ts := c.firstAck[p]
			i := sort.Search(len(ts), func(i int) bool { return ts[i] > k.T })
			// An ack within minElection of the kill came from a leader
			// elected before it: the harness's view of who led was stale
			// (no election takes less than the raft timeout).
			if i < len(ts) && time.Duration(ts[i]-k.T) >= minElection {
				took = append(took, time.Duration(ts[i]-k.T).Seconds())
			}
		}
	}
	if len(took) > 0 {
		slices.Sort(took)
		c.rep.Elections = len(took)
		c.rep.ElectionP50 = quantile(took, 0.5)
		c.rep.ElectionP99 = quantile(took, 0.99)
		c.rep.ElectionMax = took[len(took)-1]
	}

	total := 0
	for _, n := range c.rep.Anomalies {
		total += n
	}
	c.rep.Valid = total == 0
	for _, a := range AllAnomalies {
		if _, ok := c.rep.Anomalies[a]; !ok {
			c.rep.Anomalies[a] = 0
		}
	}
	return c.rep
}

// quantile of sorted xs, nearest rank.
func quantile(xs []float64, q float64) float64 {
	i := int(math.Ceil(q*float64(len(xs)))) - 1
	return xs[min(max(i, 0), len(xs)-1)]
}

// CheckFile reads the history at path and judges it.
func CheckFile(path string) (Report, error) {
	c := NewChecker()
	err := ReadHistory(path, func(op Op) error { c.Add(op); return nil })
	if err != nil {
		return Report{}, err
	}
	return c.Report(), nil
}
