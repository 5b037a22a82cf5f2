package main

import (
	"fmt"
	"slices"
	"sort"
)

// ShareStats describes the share group's deliveries. Redeliveries are
// expected (a record in flight at a fault is released and delivered
// again: at least once), so they are statistics, not anomalies.
type ShareStats struct {
	Deliveries  int `json:"deliveries"`
	Records     int `json:"records"`     // distinct values delivered
	Redelivered int `json:"redelivered"` // values delivered more than once
	// DeliveriesPerRecord: how many values were delivered n times, by n.
	DeliveriesPerRecord map[int]int `json:"deliveries_per_record"`
	MaxDeliveryCount    int32       `json:"max_delivery_count"` // the highest delivery count the broker gave
	Acks                Counts      `json:"acks"`               // share-ack operations (one partition of one poll each)
	// AcceptedUnknown counts the acknowledged sends whose ACCEPTs all
	// had an unknown outcome, on partitions where the brokers reported no
	// lag after the drain: one of them was applied.
	AcceptedUnknown int `json:"accepted_unknown"`
	// Drain is how the drain after healing ended ("" when the history has
	// none: share-lost was not judged), and Lags the group's lag on each
	// partition the brokers reported then.
	Drain string          `json:"drain,omitempty"`
	Lags  map[int32]int64 `json:"lags,omitempty"`
}

// shareDelivery is one delivery of a value to the share group.
type shareDelivery struct {
	n    int32 // delivery count
	t    int64
	proc string
	at   po
}

// shareValue is everything the share group did with one value.
type shareValue struct {
	deliveries []shareDelivery
	accepted   []int32 // delivery counts whose ACCEPT was confirmed
}

type shareChecker struct {
	values map[string]*shareValue
	acks   Counts
	seen   bool            // the history has share operations
	drain  string          // the share-drain operation's value
	lags   map[int32]int64 // and its lags
}

func newShareChecker() shareChecker { return shareChecker{values: map[string]*shareValue{}} }

func (s *shareChecker) value(v string) *shareValue {
	sv := s.values[v]
	if sv == nil {
		sv = &shareValue{}
		s.values[v] = sv
	}
	return sv
}

// addShare takes a share-group operation.
func (c *Checker) addShare(op Op) {
	s := &c.share
	s.seen = true
	switch op.F {
	case FSharePoll:
		if op.Type != OK {
			return
		}
		for _, r := range op.Shares {
			x := po{r.P, r.O}
			// A delivery names its offset, as an ack does: another value
			// at the same offset is inconsistent-offsets.
			c.see(x, r.V, false)
			sv := s.value(r.V)
			sv.deliveries = append(sv.deliveries, shareDelivery{n: r.N, t: op.T, proc: op.Process, at: x})
		}
	case FShareAck:
		if op.Type == Invoke {
			return
		}
		s.acks.add(op.Type)
		if op.Type == OK {
			for _, r := range op.Shares {
				sv := s.value(r.V)
				sv.accepted = append(sv.accepted, r.N)
			}
		}
	case FShareDrain:
		s.drain, s.lags = op.Value, op.Offsets
	}
}

// reportShare judges the share group's operations.
func (c *Checker) reportShare() {
	s := &c.share
	c.rep.Share = nil
	if !s.seen {
		return
	}
	st := &ShareStats{DeliveriesPerRecord: map[int]int{}, Acks: s.acks, Drain: s.drain, Lags: s.lags}
	c.rep.Share = st
	vals := make([]string, 0, len(s.values))
	for v := range s.values {
		vals = append(vals, v)
	}
	sort.Strings(vals)
	for _, v := range vals {
		sv := s.values[v]
		n := len(sv.deliveries)
		if n > 0 {
			st.Records++
		}
		st.Deliveries += n
		st.DeliveriesPerRecord[n]++
		if n > 1 {
			st.Redelivered++
		}
		if n > 0 {
			if snd, ok := c.sends[v]; !ok {
				c.anomaly(SharePhantom, "%s delivered to %s but never sent", v, sv.deliveries[0].proc)
			} else if snd.status == Fail {
				c.anomaly(SharePhantom, "%s delivered to %s but its send failed (the broker refused it)", v, sv.deliveries[0].proc)
			}
		}
		counts := map[int32]shareDelivery{}
		for _, d := range sv.deliveries {
			st.MaxDeliveryCount = max(st.MaxDeliveryCount, d.n)
			if prev, dup := counts[d.n]; dup {
				c.anomaly(ShareCountReused, "%s delivered with delivery count %d twice: to %s at %.3fs and to %s at %.3fs",
					v, d.n, prev.proc, float64(prev.t)/1e9, d.proc, float64(d.t)/1e9)
			} else {
				counts[d.n] = d
			}
		}
		if len(sv.accepted) > 0 {
			first := slices.Min(sv.accepted)
			for _, d := range sv.deliveries {
				if d.n > first {
					c.anomaly(ShareAcceptedRedelivered, "%s delivered to %s at %.3fs as delivery %d, after the ACCEPT of its delivery %d was confirmed",
						v, d.proc, float64(d.t)/1e9, d.n, first)
				}
			}
		}
	}

	// Every acknowledged send still in the log is delivered, and accepted
	// once the drain is over: an ACCEPT confirmed, or the brokers report
	// no lag on its partition (so one of its ACCEPTs of unknown outcome
	// was applied).
	if s.drain == "" || !c.hasFinal {
		return
	}
	acked := make([]string, 0, len(c.sends))
	for v, snd := range c.sends {
		if snd.status == OK && c.final[v] {
			acked = append(acked, v)
		}
	}
	sort.Strings(acked)
	for _, v := range acked {
		sv, at := s.values[v], c.sends[v].acked
		switch lag, known := s.lags[at.p]; {
		case sv == nil || len(sv.deliveries) == 0:
			c.anomaly(ShareLost, "%s acknowledged at %s never delivered to the share group", v, at)
		case len(sv.accepted) > 0:
		case known && lag == 0:
			st.AcceptedUnknown++
		default:
			c.anomaly(ShareLost, "%s acknowledged at %s delivered %d times, no ACCEPT confirmed, and the group's lag on partition %d is %s after the drain",
				v, at, len(sv.deliveries), at.p, lagString(lag, known))
		}
	}
}

func lagString(lag int64, known bool) string {
	if !known {
		return "unknown"
	}
	return fmt.Sprint(lag)
}
