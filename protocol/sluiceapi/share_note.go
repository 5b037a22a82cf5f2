package sluiceapi

import (
	"context"

	"github.com/twmb/franz-go/pkg/kbin"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// SluiceShareNote (key 32000), v0, flexible: a share-group member tells
// the leader of a partition why it is giving a record back, before it
// acknowledges the record with REJECT or RELEASE. KIP-932's
// acknowledgement has no room for text, so without it the dead letter
// would say only "rejected" or "delivery limit". The leader keeps the
// latest note of each record it has handed out (in memory only) and
// writes it to the dead letter as the sluice.dlq.error header.
//
// Request v0:
//
//	group_id      compact string
//	member_id     compact nullable string: null names the member that
//	              holds each record (franz-go does not tell its user the
//	              member id it generates)
//	topics        compact array:
//	  topic_id    uuid
//	  partitions  compact array:
//	    partition_index int32
//	    notes     compact array:
//	      offset         int64
//	      delivery_count int16: the delivery the note is about
//	      text           compact string, at most MaxNoteText bytes
//	      tagged fields
//	    tagged fields
//	  tagged fields
//	tagged fields
//
// Response v0:
//
//	throttle_time_ms int32
//	error_code       int16: INVALID_REQUEST for a bad group or member id
//	topics           compact array:
//	  topic_id       uuid
//	  partitions     compact array:
//	    partition_index int32
//	    error_code      int16
//	    tagged fields
//	  tagged fields
//	tagged fields
//
// A partition's error code: NOT_LEADER_OR_FOLLOWER when the broker does
// not lead it, UNKNOWN_TOPIC_ID or UNKNOWN_TOPIC_OR_PARTITION,
// INVALID_REQUEST (nothing kept) when a note is longer than MaxNoteText or
// its offset is negative, and INVALID_RECORD_STATE when some note's record
// is not acquired, at that delivery count, by the member (the others are
// kept). The broker keeps one note per record, the latest.

// MaxNoteText is the longest note the broker accepts, in bytes; clients
// cut longer texts (Truncate).
const MaxNoteText = 1024

// Smallest encodings of the array elements (v0), for count checks.
const (
	minNoteSize          = 8 + 2 + 1 + 1 // offset, count, empty text, tags
	minNotePartitionSize = 4 + 1 + 1     // partition, notes count, tags
	minNoteTopicSize     = 16 + 1 + 1    // topic id, partitions count, tags
	minNoteRespPartSize  = 4 + 2 + 1     // partition, error code, tags
)

// ShareNoteRequest is a SluiceShareNote request.
type ShareNoteRequest struct {
	Version     int16
	GroupID     string
	MemberID    *string // nil: whichever member holds each record
	Topics      []ShareNoteRequestTopic
	UnknownTags kmsg.Tags
}

// ShareNoteRequestTopic is a topic of a ShareNoteRequest.
type ShareNoteRequestTopic struct {
	TopicID     [16]byte
	Partitions  []ShareNoteRequestPartition
	UnknownTags kmsg.Tags
}

// ShareNoteRequestPartition is a partition of a ShareNoteRequest.
type ShareNoteRequestPartition struct {
	Partition   int32
	Notes       []ShareNote
	UnknownTags kmsg.Tags
}

// ShareNote is the text a member reports for one delivery of a record.
type ShareNote struct {
	Offset        int64
	DeliveryCount int16
	Text          string
	UnknownTags   kmsg.Tags
}

// ShareNoteResponse is a SluiceShareNote response.
type ShareNoteResponse struct {
	Version        int16
	ThrottleMillis int32
	ErrorCode      int16
	Topics         []ShareNoteResponseTopic
	UnknownTags    kmsg.Tags
}

// ShareNoteResponseTopic is a topic of a ShareNoteResponse.
type ShareNoteResponseTopic struct {
	TopicID     [16]byte
	Partitions  []ShareNoteResponsePartition
	UnknownTags kmsg.Tags
}

// ShareNoteResponsePartition is a partition's answer.
type ShareNoteResponsePartition struct {
	Partition   int32
	ErrorCode   int16
	UnknownTags kmsg.Tags
}

var (
	_ kmsg.Request  = (*ShareNoteRequest)(nil)
	_ kmsg.Response = (*ShareNoteResponse)(nil)
)

func (*ShareNoteRequest) Key() int16           { return ShareNoteKey }
func (*ShareNoteRequest) MaxVersion() int16    { return 0 }
func (v *ShareNoteRequest) SetVersion(x int16) { v.Version = x }
func (v *ShareNoteRequest) GetVersion() int16  { return v.Version }
func (*ShareNoteRequest) IsFlexible() bool     { return true }

// ResponseKind returns an empty response at the request's version.
func (v *ShareNoteRequest) ResponseKind() kmsg.Response {
	return &ShareNoteResponse{Version: v.Version}
}

// RequestWith issues the request with r (for SluiceShareNote, a
// kgo.Client.Broker: the partitions' leader).
func (v *ShareNoteRequest) RequestWith(ctx context.Context, r kmsg.Requestor) (*ShareNoteResponse, error) {
	resp, err := r.Request(ctx, v)
	if err != nil {
		return nil, err
	}
	return resp.(*ShareNoteResponse), nil
}

// AppendTo appends the request body.
func (v *ShareNoteRequest) AppendTo(dst []byte) []byte {
	dst = kbin.AppendCompactString(dst, v.GroupID)
	dst = kbin.AppendCompactNullableString(dst, v.MemberID)
	dst = appendArray(dst, v.Topics, (*ShareNoteRequestTopic).appendTo)
	return appendTags(dst, &v.UnknownTags)
}

// ReadFrom decodes a request body, replacing v's fields but its version.
func (v *ShareNoteRequest) ReadFrom(src []byte) error {
	r := reader{Reader: kbin.Reader{Src: src}}
	*v = ShareNoteRequest{Version: v.Version}
	v.GroupID = r.str("group_id")
	v.MemberID = r.nullableStr()
	v.Topics = readArray(&r, "topics", minNoteTopicSize, (*ShareNoteRequestTopic).readFrom)
	v.UnknownTags = r.tags()
	if err := r.done("SluiceShareNote request"); err != nil {
		*v = ShareNoteRequest{Version: v.Version}
		return err
	}
	return nil
}

func (t *ShareNoteRequestTopic) appendTo(dst []byte) []byte {
	dst = kbin.AppendUuid(dst, t.TopicID)
	dst = appendArray(dst, t.Partitions, (*ShareNoteRequestPartition).appendTo)
	return appendTags(dst, &t.UnknownTags)
}

func (t *ShareNoteRequestTopic) readFrom(r *reader) {
	t.TopicID = r.Uuid()
	t.Partitions = readArray(r, "partitions", minNotePartitionSize, (*ShareNoteRequestPartition).readFrom)
	t.UnknownTags = r.tags()
}

func (p *ShareNoteRequestPartition) appendTo(dst []byte) []byte {
	dst = kbin.AppendInt32(dst, p.Partition)
	dst = appendArray(dst, p.Notes, (*ShareNote).appendTo)
	return appendTags(dst, &p.UnknownTags)
}

func (p *ShareNoteRequestPartition) readFrom(r *reader) {
	p.Partition = r.Int32()
	p.Notes = readArray(r, "notes", minNoteSize, (*ShareNote).readFrom)
	p.UnknownTags = r.tags()
}

func (n *ShareNote) appendTo(dst []byte) []byte {
	dst = kbin.AppendInt64(dst, n.Offset)
	dst = kbin.AppendInt16(dst, n.DeliveryCount)
	dst = kbin.AppendCompactString(dst, n.Text)
	return appendTags(dst, &n.UnknownTags)
}

func (n *ShareNote) readFrom(r *reader) {
	n.Offset = r.Int64()
	n.DeliveryCount = r.Int16()
	n.Text = r.str("text")
	n.UnknownTags = r.tags()
}

func (*ShareNoteResponse) Key() int16           { return ShareNoteKey }
func (*ShareNoteResponse) MaxVersion() int16    { return 0 }
func (v *ShareNoteResponse) SetVersion(x int16) { v.Version = x }
func (v *ShareNoteResponse) GetVersion() int16  { return v.Version }
func (*ShareNoteResponse) IsFlexible() bool     { return true }

// RequestKind returns an empty request at the response's version.
func (v *ShareNoteResponse) RequestKind() kmsg.Request {
	return &ShareNoteRequest{Version: v.Version}
}

// Throttle implements kmsg.ThrottleResponse (Sluice does not throttle).
func (v *ShareNoteResponse) Throttle() (int32, bool) { return v.ThrottleMillis, true }

// SetThrottle implements kmsg.SetThrottleResponse.
func (v *ShareNoteResponse) SetThrottle(ms int32) { v.ThrottleMillis = ms }

// AppendTo appends the response body.
func (v *ShareNoteResponse) AppendTo(dst []byte) []byte {
	dst = kbin.AppendInt32(dst, v.ThrottleMillis)
	dst = kbin.AppendInt16(dst, v.ErrorCode)
	dst = appendArray(dst, v.Topics, (*ShareNoteResponseTopic).appendTo)
	return appendTags(dst, &v.UnknownTags)
}

// ReadFrom decodes a response body, replacing v's fields but its version.
func (v *ShareNoteResponse) ReadFrom(src []byte) error {
	r := reader{Reader: kbin.Reader{Src: src}}
	*v = ShareNoteResponse{Version: v.Version}
	v.ThrottleMillis = r.Int32()
	v.ErrorCode = r.Int16()
	v.Topics = readArray(&r, "topics", minNoteTopicSize, (*ShareNoteResponseTopic).readFrom)
	v.UnknownTags = r.tags()
	if err := r.done("SluiceShareNote response"); err != nil {
		*v = ShareNoteResponse{Version: v.Version}
		return err
	}
	return nil
}

func (t *ShareNoteResponseTopic) appendTo(dst []byte) []byte {
	dst = kbin.AppendUuid(dst, t.TopicID)
	dst = appendArray(dst, t.Partitions, (*ShareNoteResponsePartition).appendTo)
	return appendTags(dst, &t.UnknownTags)
}

func (t *ShareNoteResponseTopic) readFrom(r *reader) {
	t.TopicID = r.Uuid()
	t.Partitions = readArray(r, "partitions", minNoteRespPartSize, (*ShareNoteResponsePartition).readFrom)
	t.UnknownTags = r.tags()
}

func (p *ShareNoteResponsePartition) appendTo(dst []byte) []byte {
	dst = kbin.AppendInt32(dst, p.Partition)
	dst = kbin.AppendInt16(dst, p.ErrorCode)
	return appendTags(dst, &p.UnknownTags)
}

func (p *ShareNoteResponsePartition) readFrom(r *reader) {
	p.Partition = r.Int32()
	p.ErrorCode = r.Int16()
	p.UnknownTags = r.tags()
}

// Truncate cuts text to at most MaxNoteText bytes, at a UTF-8 boundary,
// ending it with "..." when it was cut.
func Truncate(text string) string {
	if len(text) <= MaxNoteText {
		return text
	}
	const ellipsis = "..."
	cut := MaxNoteText - len(ellipsis)
	for cut > 0 && text[cut]&0xc0 == 0x80 { // not the start of a rune
		cut--
	}
	return text[:cut] + ellipsis
}
