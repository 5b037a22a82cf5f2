package client

import (
	"context"
	"net/http"
	"net/url"
)

// GroupStatus is GET /v1/groups/{group} of the HTTP admin API: a group's
// members and its lag in records and in seconds on every partition it
// committed. Lag (over Kafka) counts records only; the age of the oldest
// unconsumed record needs the broker's help.
type GroupStatus struct {
	Group        string              `json:"group"`
	State        string              `json:"state"`
	ProtocolType string              `json:"protocol_type"`
	Protocol     string              `json:"protocol"`
	Coordinator  int32               `json:"coordinator"`
	Members      []GroupStatusMember `json:"members"`
	Partitions   []GroupPartitionLag `json:"partitions"` // those with a committed offset
	Totals       GroupLagTotals      `json:"totals"`
}

// GroupStatusMember is a member and its assignment.
type GroupStatusMember struct {
	MemberID   string            `json:"member_id"`
	InstanceID string            `json:"instance_id,omitempty"`
	ClientID   string            `json:"client_id"`
	ClientHost string            `json:"client_host"`
	Assigned   []GroupAssignment `json:"assigned"`
}

// GroupAssignment is a member's partitions of one topic.
type GroupAssignment struct {
	Topic      string  `json:"topic"`
	Partitions []int32 `json:"partitions"`
}

// GroupPartitionLag is a group's lag on one partition.
type GroupPartitionLag struct {
	Topic         string `json:"topic"`
	Partition     int32  `json:"partition"`
	Committed     int64  `json:"committed"`
	LogStart      int64  `json:"log_start"`
	HighWatermark int64  `json:"high_watermark"`
	// LagRecords counts from the committed offset, or from the log start
	// when retention removed the committed record.
	LagRecords int64 `json:"lag_records"`
	// LagSeconds is the age of the next record to consume; 0 when caught up.
	LagSeconds float64 `json:"lag_seconds"`
	// Error says why the lag could not be measured.
	Error string `json:"error,omitempty"`
}

// GroupLagTotals sums a group's lag.
type GroupLagTotals struct {
	LagRecords    int64   `json:"lag_records"`
	MaxLagSeconds float64 `json:"max_lag_seconds"`
	Unmeasured    int     `json:"unmeasured,omitempty"` // partitions whose lag is unknown
}

// GroupStatus describes group with its lag in records and seconds, over
// the HTTP admin API (AdminAddr). An unknown group is ErrNotFound.
func (a *Admin) GroupStatus(ctx context.Context, group string) (*GroupStatus, error) {
	var out GroupStatus
	err := a.do(ctx, "group status", "", -1, http.MethodGet, "/v1/groups/"+url.PathEscape(group), nil, &out)
	if err != nil {
		return nil, err
	}
	return &out, nil
}
