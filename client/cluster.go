package client

// Cluster operations over the brokers' HTTP admin API (JSON; see
// broker/admin_http.go). Moves and decommissioning are recorded at once
// and driven in the background by the controller leader; the Wait helpers
// poll their progress.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// ClusterStatus is GET /v1/cluster: who the brokers are, who leads the
// controller, and where every partition's replicas and leader are.
type ClusterStatus struct {
	ClusterID  string           `json:"cluster_id"`
	Controller ControllerStatus `json:"controller"`
	Brokers    []BrokerStatus   `json:"brokers"`
	Topics     []TopicPlacement `json:"topics"`
}

// ControllerStatus is the metadata raft group.
type ControllerStatus struct {
	Leader  int32              `json:"leader"` // -1: none known
	Voters  []int32            `json:"voters"`
	Members []ControllerMember `json:"members,omitempty"`
}

// ControllerMember is a server of the controller group.
type ControllerMember struct {
	ID    int32 `json:"id"`
	Voter bool  `json:"voter"`
}

// BrokerStatus is one registered broker.
type BrokerStatus struct {
	ID        int32  `json:"id"`
	KafkaAddr string `json:"kafka_addr"`
	RaftAddr  string `json:"raft_addr"`
	HTTPAddr  string `json:"http_addr,omitempty"`
	Voter     bool   `json:"voter"`    // a controller voter
	Draining  bool   `json:"draining"` // takes no new replicas
	Replicas  int    `json:"replicas"`
	Leaders   int    `json:"leaders"`
}

// TopicPlacement is where a topic's partitions are.
type TopicPlacement struct {
	Name       string               `json:"name"`
	ID         string               `json:"id"`
	Partitions []PartitionPlacement `json:"partitions"`
}

// PartitionPlacement is one partition's replicas and leader.
type PartitionPlacement struct {
	Partition int32   `json:"partition"`
	Replicas  []int32 `json:"replicas"`         // the first is the preferred leader
	Target    []int32 `json:"target,omitempty"` // set while the partition moves
	Leader    int32   `json:"leader"`           // -1: none known
	Epoch     int32   `json:"epoch"`
}

// Partition returns the placement of topic's partition p, if known.
func (s *ClusterStatus) Partition(topic string, p int32) (PartitionPlacement, bool) {
	for _, t := range s.Topics {
		if t.Name == topic && p >= 0 && int(p) < len(t.Partitions) {
			return t.Partitions[p], true
		}
	}
	return PartitionPlacement{}, false
}

// MoveProgress is the move driver's current step.
type MoveProgress struct {
	Step    string    `json:"step"`
	Error   string    `json:"error,omitempty"`
	Started time.Time `json:"started"`
	Updated time.Time `json:"updated"`
}

// MoveStatus is a partition move: State is "moving" or "done".
type MoveStatus struct {
	Topic         string        `json:"topic"`
	Partition     int32         `json:"partition"`
	State         string        `json:"state"`
	Replicas      []int32       `json:"replicas"`
	Target        []int32       `json:"target,omitempty"`
	Progress      *MoveProgress `json:"progress,omitempty"`
	ProgressError string        `json:"progress_error,omitempty"`
}

// Done reports whether the move has finished.
func (m *MoveStatus) Done() bool { return m.State == "done" }

// LeaderTransfer is the answer to TransferLeadership.
type LeaderTransfer struct {
	Topic     string `json:"topic"`
	Partition int32  `json:"partition"`
	Previous  int32  `json:"previous_leader"`
	Leader    int32  `json:"leader"`
	Note      string `json:"note,omitempty"`
}

// RebalanceResult lists the leadership transfers RebalanceLeaders made.
type RebalanceResult struct {
	Transfers []Transfer       `json:"transfers"`
	Errors    map[int32]string `json:"errors,omitempty"` // brokers that could not be asked
}

// Transfer is one leadership transfer.
type Transfer struct {
	Topic     string `json:"topic"`
	Partition int32  `json:"partition"`
	From      int32  `json:"from"`
	To        int32  `json:"to"`
	Error     string `json:"error,omitempty"`
}

// DecommissionStatus is the progress of draining a broker.
type DecommissionStatus struct {
	Broker            int32           `json:"broker"`
	Draining          bool            `json:"draining"`
	Done              bool            `json:"done"`
	ReplicasRemaining int             `json:"replicas_remaining"`
	Partitions        []PartitionMove `json:"partitions,omitempty"` // still on the broker
	Error             string          `json:"error,omitempty"`      // why draining cannot progress
	ProgressError     string          `json:"progress_error,omitempty"`
	Note              string          `json:"note,omitempty"`
}

// PartitionMove is a partition still on a draining broker.
type PartitionMove struct {
	Topic     string        `json:"topic"`
	Partition int32         `json:"partition"`
	Replicas  []int32       `json:"replicas"`
	Target    []int32       `json:"target,omitempty"`
	Progress  *MoveProgress `json:"progress,omitempty"`
}

// PollInterval is how often the Wait helpers ask for progress.
const PollInterval = 250 * time.Millisecond

// Cluster returns the brokers, the controller and every partition's
// placement.
func (a *Admin) Cluster(ctx context.Context) (*ClusterStatus, error) {
	var out ClusterStatus
	return &out, a.do(ctx, "cluster status", "", -1, http.MethodGet, "/v1/cluster", nil, &out)
}

// MovePartition moves topic/p to replicas (the first becomes the
// preferred leader). It returns once the move is recorded; use WaitMove
// for its end. The same brokers in a new order only change the
// preferred leader, at once.
func (a *Admin) MovePartition(ctx context.Context, topic string, p int32, replicas []int32) (*MoveStatus, error) {
	var out MoveStatus
	err := a.do(ctx, "move partition", topic, p, http.MethodPost, partPath(topic, p, "move"), map[string]any{"replicas": replicas}, &out)
	return &out, err
}

// Move returns the state of topic/p's move.
func (a *Admin) Move(ctx context.Context, topic string, p int32) (*MoveStatus, error) {
	var out MoveStatus
	return &out, a.do(ctx, "move status", topic, p, http.MethodGet, partPath(topic, p, "move"), nil, &out)
}

// WaitMove polls until topic/p's move is done or ctx ends, calling
// progress (may be nil) with each status.
func (a *Admin) WaitMove(ctx context.Context, topic string, p int32, progress func(*MoveStatus)) (*MoveStatus, error) {
	return poll(ctx, func() (*MoveStatus, bool, error) {
		m, err := a.Move(ctx, topic, p)
		if err == nil && progress != nil {
			progress(m)
		}
		return m, err == nil && m.Done(), err
	})
}

// TransferLeadership makes broker lead topic/p now. The broker rebalances
// leadership back to the preferred replica at its next check; to make a
// change last, MovePartition to the same brokers with this one first.
func (a *Admin) TransferLeadership(ctx context.Context, topic string, p int32, broker int32) (*LeaderTransfer, error) {
	var out LeaderTransfer
	err := a.do(ctx, "transfer leadership", topic, p, http.MethodPost, partPath(topic, p, "leader"), map[string]any{"broker": broker}, &out)
	return &out, err
}

// RebalanceLeaders hands every partition's leadership to its preferred
// replica.
func (a *Admin) RebalanceLeaders(ctx context.Context) (*RebalanceResult, error) {
	var out RebalanceResult
	return &out, a.do(ctx, "rebalance leaders", "", -1, http.MethodPost, "/v1/leaders/rebalance", nil, &out)
}

// Decommission starts draining broker: no new replicas, and its replicas
// move to others one partition at a time. Controller voters are refused
// (ErrConflict). Use WaitDecommission for the end.
func (a *Admin) Decommission(ctx context.Context, broker int32) (*DecommissionStatus, error) {
	var out DecommissionStatus
	return &out, a.do(ctx, "decommission", "", -1, http.MethodPost, brokerPath(broker, "decommission"), nil, &out)
}

// Decommissioning returns the progress of draining broker.
func (a *Admin) Decommissioning(ctx context.Context, broker int32) (*DecommissionStatus, error) {
	var out DecommissionStatus
	return &out, a.do(ctx, "decommission status", "", -1, http.MethodGet, brokerPath(broker, "decommission"), nil, &out)
}

// WaitDecommission polls until broker holds no replicas or ctx ends,
// calling progress (may be nil) with each status. It fails if the broker
// stops draining (Undrain).
func (a *Admin) WaitDecommission(ctx context.Context, broker int32, progress func(*DecommissionStatus)) (*DecommissionStatus, error) {
	return poll(ctx, func() (*DecommissionStatus, bool, error) {
		d, err := a.Decommissioning(ctx, broker)
		if err != nil {
			return d, false, err
		}
		if progress != nil {
			progress(d)
		}
		if !d.Draining {
			return d, false, &Error{Op: "wait decommission", Partition: -1, Err: ErrConflict, Message: fmt.Sprintf("broker %d is not draining", broker)}
		}
		return d, d.Done, nil
	})
}

// Undrain lets broker take new replicas again. A move already started
// finishes; moved replicas stay where they are.
func (a *Admin) Undrain(ctx context.Context, broker int32) (*DecommissionStatus, error) {
	var out DecommissionStatus
	return &out, a.do(ctx, "undrain", "", -1, http.MethodPost, brokerPath(broker, "undrain"), nil, &out)
}

func partPath(topic string, p int32, what string) string {
	return "/v1/partitions/" + url.PathEscape(topic) + "/" + strconv.Itoa(int(p)) + "/" + what
}

func brokerPath(id int32, what string) string {
	return "/v1/brokers/" + strconv.Itoa(int(id)) + "/" + what
}

// poll calls step every PollInterval until it reports done, fails with a
// non-retriable error, or ctx ends.
func poll[T any](ctx context.Context, step func() (T, bool, error)) (T, error) {
	t := time.NewTicker(PollInterval)
	defer t.Stop()
	for {
		v, done, err := step()
		switch {
		case err != nil && !IsRetriable(err):
			return v, err
		case done:
			return v, nil
		}
		select {
		case <-ctx.Done():
			if err == nil {
				err = ctx.Err()
			}
			return v, err
		case <-t.C:
		}
	}
}

// do sends one admin request, trying each AdminAddr in turn while the
// failure is a connection error, and decodes a 2xx answer into out.
func (a *Admin) do(ctx context.Context, op, topic string, p int32, method, path string, body, out any) error {
	addrs := a.c.opts.adminAddrs
	if len(addrs) == 0 {
		return &Error{Op: op, Topic: topic, Partition: p, Err: ErrNoAdminAddr}
	}
	var payload []byte
	if body != nil {
		var err error
		if payload, err = json.Marshal(body); err != nil {
			return &Error{Op: op, Topic: topic, Partition: p, Err: err}
		}
	}
	var last error
	for _, base := range addrs {
		req, err := http.NewRequestWithContext(ctx, method, base+path, bytes.NewReader(payload))
		if err != nil {
			return &Error{Op: op, Topic: topic, Partition: p, Err: err}
		}
		if body != nil {
			req.Header.Set("Content-Type", "application/json")
		}
		resp, err := a.http.Do(req)
		if err != nil {
			last = &Error{Op: op, Topic: topic, Partition: p, Err: err}
			if ctx.Err() != nil {
				return last
			}
			continue // try the next broker
		}
		raw, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
		resp.Body.Close()
		if err != nil {
			last = &Error{Op: op, Topic: topic, Partition: p, Err: err}
			continue
		}
		if resp.StatusCode >= 300 {
			return httpError(op, topic, p, resp.StatusCode, raw)
		}
		if out != nil {
			if err := json.Unmarshal(raw, out); err != nil {
				return &Error{Op: op, Topic: topic, Partition: p, Err: fmt.Errorf("decoding the answer: %w", err)}
			}
		}
		return nil
	}
	return last
}

func httpError(op, topic string, p int32, status int, raw []byte) error {
	var body struct {
		Error string `json:"error"`
	}
	msg := string(bytes.TrimSpace(raw))
	if json.Unmarshal(raw, &body) == nil && body.Error != "" {
		msg = body.Error
	}
	e := &Error{Op: op, Topic: topic, Partition: p, HTTPStatus: status, Message: msg}
	switch status {
	case http.StatusBadRequest, http.StatusRequestEntityTooLarge:
		e.Err = ErrBadRequest
	case http.StatusNotFound:
		e.Err = ErrNotFound
	case http.StatusConflict:
		e.Err = ErrConflict
	default:
		e.Err = errors.New(http.StatusText(status))
	}
	return e
}
