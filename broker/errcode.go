package broker

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// responseCode names the first error a response carries (top-level, then
// per topic or partition), or "none", for the per-API request metric.
func responseCode(resp kmsg.Response) string {
	c := int16(0)
	first := func(codes ...int16) {
		for _, x := range codes {
			if c == 0 && x != 0 {
				c = x
			}
		}
	}
	switch r := resp.(type) {
	case *kmsg.ProduceResponse:
		for _, t := range r.Topics {
			for _, p := range t.Partitions {
				first(p.ErrorCode)
			}
		}
	case *kmsg.FetchResponse:
		first(r.ErrorCode)
		for _, t := range r.Topics {
			for _, p := range t.Partitions {
				first(p.ErrorCode)
			}
		}
	case *kmsg.ListOffsetsResponse:
		for _, t := range r.Topics {
			for _, p := range t.Partitions {
				first(p.ErrorCode)
			}
		}
	case *kmsg.MetadataResponse:
		for _, t := range r.Topics {
			first(t.ErrorCode)
		}
	case *kmsg.CreateTopicsResponse:
		for _, t := range r.Topics {
			first(t.ErrorCode)
		}
	case *kmsg.DeleteTopicsResponse:
		for _, t := range r.Topics {
			first(t.ErrorCode)
		}
	case *kmsg.CreatePartitionsResponse:
		for _, t := range r.Topics {
			first(t.ErrorCode)
		}
	case *kmsg.DescribeConfigsResponse:
		for _, x := range r.Resources {
			first(x.ErrorCode)
		}
	case *kmsg.IncrementalAlterConfigsResponse:
		for _, x := range r.Resources {
			first(x.ErrorCode)
		}
	case *kmsg.DeleteRecordsResponse:
		for _, t := range r.Topics {
			for _, p := range t.Partitions {
				first(p.ErrorCode)
			}
		}
	case *kmsg.InitProducerIDResponse:
		first(r.ErrorCode)
	case *kmsg.ApiVersionsResponse:
		first(r.ErrorCode)
	case *kmsg.DescribeClusterResponse:
		first(r.ErrorCode)
	case *kmsg.FindCoordinatorResponse:
		first(r.ErrorCode)
		for _, x := range r.Coordinators {
			first(x.ErrorCode)
		}
	case *kmsg.JoinGroupResponse:
		first(r.ErrorCode)
	case *kmsg.SyncGroupResponse:
		first(r.ErrorCode)
	case *kmsg.HeartbeatResponse:
		first(r.ErrorCode)
	case *kmsg.LeaveGroupResponse:
		first(r.ErrorCode)
		for _, m := range r.Members {
			first(m.ErrorCode)
		}
	case *kmsg.OffsetCommitResponse:
		for _, t := range r.Topics {
			for _, p := range t.Partitions {
				first(p.ErrorCode)
			}
		}
	case *kmsg.OffsetFetchResponse:
		first(r.ErrorCode)
		for _, g := range r.Groups {
			first(g.ErrorCode)
		}
	case *kmsg.OffsetDeleteResponse:
		first(r.ErrorCode)
		for _, t := range r.Topics {
			for _, p := range t.Partitions {
				first(p.ErrorCode)
			}
		}
	case *kmsg.ListGroupsResponse:
		first(r.ErrorCode)
	case *kmsg.DescribeGroupsResponse:
		for _, g := range r.Groups {
			first(g.ErrorCode)
		}
	case *kmsg.DeleteGroupsResponse:
		for _, g := range r.Groups {
			first(g.ErrorCode)
		}
	}
	if c == 0 {
		return "none"
	}
	if e := kerr.ErrorForCode(c); e != nil {
		if ke, ok := e.(*kerr.Error); ok {
			return ke.Message
		}
	}
	return "UNKNOWN_SERVER_ERROR"
}
