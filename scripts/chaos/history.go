package main

import (
	"bufio"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"
)

// Operation types, as Jepsen's: every operation is invoked, then completes
// ok (it happened), fail (it certainly did not) or unknown (it may or may
// not have happened: a timeout, a lost connection; Jepsen's :info).
const (
	Invoke  = "invoke"
	OK      = "ok"
	Fail    = "fail"
	Unknown = "unknown"
	Info    = "info" // nemesis events and harness notes; not client operations
)

// Operation functions.
const (
	FSend      = "send"      // one produced record: Value (which names its key); ok carries P and O
	FPoll      = "poll"      // one consumer poll: Recs
	FCommit    = "commit"    // a consumer's offset commit: Offsets (next offset to consume per partition)
	FCommitted = "committed" // the group's committed offsets read by an observer: Offsets
	FAssign    = "assign"    // a consumer was given Parts (starts a poll session per partition)
	FRevoke    = "revoke"    // a consumer lost Parts (ends their sessions)
	FRead      = "read"      // final read of one replica (Node) of one partition after healing: Recs
	FNemesis   = "nemesis"   // a fault started or healed: Value describes it
	FKill      = "kill"      // SIGKILL of Node (Value leader, random, or all: power-loss-all); Parts are the data partitions it led
	FPause     = "pause"     // SIGSTOP of Node; Parts are the data partitions it led
	FDisk      = "disk"      // disk fault on Node (Value stall or fail); Parts are the data partitions it led

	// FDecommission is a drain of Node (Value leader or random; Parts the
	// partitions it held replicas of): invoked, then ok (it holds no
	// replica), fail (refused) or unknown (not drained when stopped).
	FDecommission = "decommission"
	// FReadd undrains Node and moves replicas back onto it: invoked, then
	// ok (the moves of Parts finished), fail (refused) or unknown.
	FReadd = "re-add"

	FSharePoll  = "share-poll"  // one share-group member's poll: Shares
	FShareAck   = "share-ack"   // a member's ACCEPT of the Shares of one partition (P) of a poll
	FShareDrain = "share-drain" // info: the share group's drain after healing ended; Value says how
)

// Op is one line of the history (JSON lines). T is nanoseconds since the
// run started; Index pairs an invocation with its completion.
type Op struct {
	T       int64           `json:"t"`
	Index   int64           `json:"index,omitempty"`
	Process string          `json:"process"`
	Type    string          `json:"type"`
	F       string          `json:"f"`
	Value   string          `json:"value,omitempty"`
	P       int32           `json:"p,omitempty"`
	O       int64           `json:"o,omitempty"`
	Node    int             `json:"node,omitempty"`
	Parts   []int32         `json:"parts,omitempty"`
	Recs    []Rec           `json:"recs,omitempty"`
	Shares  []ShareRec      `json:"shares,omitempty"`
	Offsets map[int32]int64 `json:"offsets,omitempty"`
	Error   string          `json:"error,omitempty"`
}

// Rec is one record as read: partition, offset, value.
type Rec struct {
	P int32  `json:"p"`
	O int64  `json:"o"`
	V string `json:"v"`
}

// ShareRec is one record delivered to a share group: partition, offset,
// value and the broker's delivery count (1 the first time).
type ShareRec struct {
	P int32  `json:"p"`
	O int64  `json:"o"`
	V string `json:"v"`
	N int32  `json:"n"`
}

// History appends operations to a JSON-lines file (gzip when its name ends
// in .gz). It is safe for concurrent use.
type History struct {
	start time.Time
	mu    sync.Mutex
	f     *os.File
	gz    *gzip.Writer
	w     *bufio.Writer
	enc   *json.Encoder
	next  int64
	err   error
}

// NewHistory creates path.
func NewHistory(path string) (*History, error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	h := &History{start: time.Now(), f: f}
	var w io.Writer = f
	if strings.HasSuffix(path, ".gz") {
		h.gz = gzip.NewWriter(f)
		w = h.gz
	}
	h.w = bufio.NewWriterSize(w, 1<<20)
	h.enc = json.NewEncoder(h.w)
	return h, nil
}

// Now is the history's clock: nanoseconds since it was created.
func (h *History) Now() int64 { return int64(time.Since(h.start)) }

// Add writes op, stamping T when it is zero.
func (h *History) Add(op Op) {
	if op.T == 0 {
		op.T = h.Now()
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if err := h.enc.Encode(op); err != nil && h.err == nil {
		h.err = err
	}
}

// Invoke writes the invocation of op with a fresh index and returns it, so
// the caller completes it with Complete.
func (h *History) Invoke(op Op) Op {
	h.mu.Lock()
	h.next++
	op.Index = h.next
	h.mu.Unlock()
	op.Type = Invoke
	op.T = 0
	h.Add(op)
	return op
}

// Complete writes the completion of an invoked op with typ and err.
func (h *History) Complete(op Op, typ string, err error) {
	op.Type = typ
	op.T = 0
	if err != nil {
		op.Error = err.Error()
	}
	h.Add(op)
}

// Close flushes and closes the file.
func (h *History) Close() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	err := h.err
	if e := h.w.Flush(); err == nil {
		err = e
	}
	if h.gz != nil {
		if e := h.gz.Close(); err == nil {
			err = e
		}
	}
	if e := h.f.Close(); err == nil {
		err = e
	}
	return err
}

// ReadHistory calls fn for each operation in path, in order.
func ReadHistory(path string, fn func(Op) error) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	var r io.Reader = f
	if strings.HasSuffix(path, ".gz") {
		gz, err := gzip.NewReader(f)
		if err != nil {
			return err
		}
		defer gz.Close()
		r = gz
	}
	dec := json.NewDecoder(bufio.NewReaderSize(r, 1<<20))
	for n := 1; ; n++ {
		var op Op
		if err := dec.Decode(&op); err == io.EOF {
			return nil
		} else if err != nil {
			return fmt.Errorf("%s: operation %d: %w", path, n, err)
		}
		if err := fn(op); err != nil {
			return err
		}
	}
}
