package broker

// Hostile-input tests for the broker as a whole: TestBadInput sends a table
// of malformed frames and semantically bad requests to one running broker
// and checks each one's specific outcome, that the broker keeps serving,
// that nothing already stored changes and that memory stays bounded.
// FuzzBrokerRequest feeds arbitrary bytes as one request frame.

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/snappy"
	"github.com/klauspost/compress/zstd"
	"github.com/pierrec/lz4/v4"
	"github.com/rs/zerolog"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluicemq/sluice/broker/config"
	"github.com/sluicemq/sluice/log/batch"
	"github.com/sluicemq/sluice/protocol"
)

// ---------------------------------------------------------------------------
// Wire helpers: request frames built by hand, responses decoded with kmsg.

// RecordBatch v2 header offsets (log/batch keeps its own unexported).
const (
	biOffBatchLength     = 8
	biOffMagic           = 16
	biOffCRC             = 17
	biOffAttributes      = 21
	biOffLastOffsetDelta = 23
	biOffMaxTimestamp    = 35
	biOffProducerID      = 43
	biOffBaseSequence    = 53
	biOffRecordCount     = 57
)

// biCorr is the correlation id of every request the tests send.
const biCorr int32 = 0x5eed

var biCastagnoli = crc32.MakeTable(crc32.Castagnoli)

func biStr(s string) *string { return &s }

// appendReqHeader appends a request header: v1 (key, version, correlation
// id, nullable client id), plus an empty tagged-field section for v2.
func appendReqHeader(dst []byte, key, version int16, clientID *string, flexible bool) []byte {
	dst = binary.BigEndian.AppendUint16(dst, uint16(key))
	dst = binary.BigEndian.AppendUint16(dst, uint16(version))
	dst = binary.BigEndian.AppendUint32(dst, uint32(biCorr))
	if clientID == nil {
		dst = binary.BigEndian.AppendUint16(dst, 0xffff)
	} else {
		dst = binary.BigEndian.AppendUint16(dst, uint16(len(*clientID)))
		dst = append(dst, *clientID...)
	}
	if flexible {
		dst = append(dst, 0)
	}
	return dst
}

// sized prefixes payload with its 4-byte size.
func sized(payload []byte) []byte {
	return append(binary.BigEndian.AppendUint32(nil, uint32(len(payload))), payload...)
}

// sizeThen is a size prefix claiming size bytes, followed by rest.
func sizeThen(size int32, rest ...byte) []byte {
	return append(binary.BigEndian.AppendUint32(nil, uint32(size)), rest...)
}

// encodeReq frames a kmsg request with the header its version needs.
func encodeReq(req kmsg.Request) []byte {
	return sized(req.AppendTo(appendReqHeader(nil, req.Key(), req.GetVersion(), biStr("badinput"), req.IsFlexible())))
}

// rawReq frames an arbitrary body under a well-formed header.
func rawReq(key, version int16, flexible bool, body []byte) []byte {
	return sized(append(appendReqHeader(nil, key, version, biStr("badinput"), flexible), body...))
}

// bodyAt encodes req's body at version v.
func bodyAt(req kmsg.Request, v int16) []byte {
	req.SetVersion(v)
	return req.AppendTo(nil)
}

// readRespFrame reads one response frame (without its size prefix).
func readRespFrame(c net.Conn) ([]byte, error) {
	var sz [4]byte
	if _, err := io.ReadFull(c, sz[:]); err != nil {
		return nil, err
	}
	n := int32(binary.BigEndian.Uint32(sz[:]))
	if n < 4 || n > 64<<20 {
		return nil, fmt.Errorf("response frame size %d", n)
	}
	buf := make([]byte, n)
	if _, err := io.ReadFull(c, buf); err != nil {
		return nil, fmt.Errorf("truncated response frame: %w", err)
	}
	return buf, nil
}

// decodeResp decodes a response frame to req with kmsg, checking the
// correlation id, the response header and that re-encoding gives back the
// same bytes (no garbage after or inside the body).
func decodeResp(req kmsg.Request, frame []byte) (kmsg.Response, error) {
	if len(frame) < 4 {
		return nil, fmt.Errorf("response of %d bytes", len(frame))
	}
	if got := int32(binary.BigEndian.Uint32(frame)); got != biCorr {
		return nil, fmt.Errorf("correlation id %d, want %d", got, biCorr)
	}
	body := frame[4:]
	resp := req.ResponseKind()
	resp.SetVersion(req.GetVersion())
	if resp.IsFlexible() && req.Key() != 18 {
		if len(body) == 0 || body[0] != 0 {
			return nil, errors.New("bad response header tagged fields")
		}
		body = body[1:]
	}
	if err := resp.ReadFrom(body); err != nil {
		return nil, fmt.Errorf("decoding %s v%d response: %w", kmsg.NameForKey(req.Key()), req.GetVersion(), err)
	}
	if again := resp.AppendTo(nil); !bytes.Equal(again, body) {
		return nil, fmt.Errorf("%s response does not re-encode to the bytes received (%d vs %d bytes)", kmsg.NameForKey(req.Key()), len(again), len(body))
	}
	return resp, nil
}

// errorCodes lists every ErrorCode field of a response in field order
// (top level first, then depth first through topics and partitions).
func errorCodes(resp kmsg.Response) []int16 {
	var out []int16
	var walk func(v reflect.Value)
	walk = func(v reflect.Value) {
		switch v.Kind() {
		case reflect.Pointer:
			if !v.IsNil() {
				walk(v.Elem())
			}
		case reflect.Slice:
			for i := 0; i < v.Len(); i++ {
				walk(v.Index(i))
			}
		case reflect.Struct:
			for i := 0; i < v.NumField(); i++ {
				f := v.Type().Field(i)
				if f.Name == "ErrorCode" && f.Type.Kind() == reflect.Int16 {
					out = append(out, int16(v.Field(i).Int()))
					continue
				}
				if f.IsExported() && f.Name != "UnknownTags" {
					walk(v.Field(i))
				}
			}
		}
	}
	walk(reflect.ValueOf(resp))
	return out
}

// awaitClose waits for the broker to close c without sending anything.
func awaitClose(c net.Conn) error {
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	var b [512]byte
	n, err := c.Read(b[:])
	switch {
	case n > 0:
		return fmt.Errorf("the broker sent %d bytes (%x...) instead of closing the connection", n, b[:min(n, 16)])
	case errors.Is(err, io.EOF), errors.Is(err, syscall.ECONNRESET):
		return nil
	case isTimeout(err):
		return errors.New("the connection is still open 10s later (hang)")
	}
	return fmt.Errorf("reading: %v", err)
}

// ---------------------------------------------------------------------------
// Request builders.

func produceReq(v, acks int16, topic string, part int32, records []byte) *kmsg.ProduceRequest {
	r := kmsg.NewPtrProduceRequest()
	r.SetVersion(v)
	r.Acks, r.TimeoutMillis = acks, 5000
	rt := kmsg.NewProduceRequestTopic()
	rt.Topic = topic
	rp := kmsg.NewProduceRequestTopicPartition()
	rp.Partition, rp.Records = part, records
	rt.Partitions = append(rt.Partitions, rp)
	r.Topics = append(r.Topics, rt)
	return r
}

type fetchPart struct {
	part   int32
	offset int64
}

func fetchReq(v int16, topic string, id [16]byte, parts ...fetchPart) *kmsg.FetchRequest {
	r := kmsg.NewPtrFetchRequest()
	r.SetVersion(v)
	r.MaxWaitMillis, r.MinBytes, r.MaxBytes, r.SessionEpoch = 0, 1, 4<<20, -1
	rt := kmsg.NewFetchRequestTopic()
	rt.Topic, rt.TopicID = topic, id
	for _, p := range parts {
		rp := kmsg.NewFetchRequestTopicPartition()
		rp.Partition, rp.FetchOffset, rp.PartitionMaxBytes = p.part, p.offset, 1<<20
		rt.Partitions = append(rt.Partitions, rp)
	}
	r.Topics = append(r.Topics, rt)
	return r
}

func listOffsetsReq(v int16, topic string, part int32, ts int64) *kmsg.ListOffsetsRequest {
	r := kmsg.NewPtrListOffsetsRequest()
	r.SetVersion(v)
	rt := kmsg.NewListOffsetsRequestTopic()
	rt.Topic = topic
	rp := kmsg.NewListOffsetsRequestTopicPartition()
	rp.Partition, rp.Timestamp = part, ts
	rt.Partitions = append(rt.Partitions, rp)
	r.Topics = append(r.Topics, rt)
	return r
}

func deleteRecordsReq(v int16, topic string, part int32, offset int64) *kmsg.DeleteRecordsRequest {
	r := kmsg.NewPtrDeleteRecordsRequest()
	r.SetVersion(v)
	r.TimeoutMillis = 5000
	rt := kmsg.NewDeleteRecordsRequestTopic()
	rt.Topic = topic
	rp := kmsg.NewDeleteRecordsRequestTopicPartition()
	rp.Partition, rp.Offset = part, offset
	rt.Partitions = append(rt.Partitions, rp)
	r.Topics = append(r.Topics, rt)
	return r
}

func createTopicReq(v int16, validateOnly bool, topics ...kmsg.CreateTopicsRequestTopic) *kmsg.CreateTopicsRequest {
	r := kmsg.NewPtrCreateTopicsRequest()
	r.SetVersion(v)
	r.TimeoutMillis, r.ValidateOnly, r.Topics = 5000, validateOnly, topics
	return r
}

func newTopic(name string, partitions int32, rf int16, configs ...[2]*string) kmsg.CreateTopicsRequestTopic {
	t := kmsg.NewCreateTopicsRequestTopic()
	t.Topic, t.NumPartitions, t.ReplicationFactor = name, partitions, rf
	for _, kv := range configs {
		c := kmsg.NewCreateTopicsRequestTopicConfig()
		c.Name, c.Value = *kv[0], kv[1]
		t.Configs = append(t.Configs, c)
	}
	return t
}

func kv(k string, v *string) [2]*string { return [2]*string{&k, v} }

func createPartitionsReq(topic string, count int32, validateOnly bool) *kmsg.CreatePartitionsRequest {
	r := kmsg.NewPtrCreatePartitionsRequest()
	r.SetVersion(3)
	r.TimeoutMillis, r.ValidateOnly = 5000, validateOnly
	rt := kmsg.NewCreatePartitionsRequestTopic()
	rt.Topic, rt.Count = topic, count
	r.Topics = append(r.Topics, rt)
	return r
}

func describeConfigsReq(typ kmsg.ConfigResourceType, name string) *kmsg.DescribeConfigsRequest {
	r := kmsg.NewPtrDescribeConfigsRequest()
	r.SetVersion(4)
	rr := kmsg.NewDescribeConfigsRequestResource()
	rr.ResourceType, rr.ResourceName = typ, name
	r.Resources = append(r.Resources, rr)
	return r
}

func alterConfigsReq(typ kmsg.ConfigResourceType, name string, op kmsg.IncrementalAlterConfigOp, key string, value *string) *kmsg.IncrementalAlterConfigsRequest {
	r := kmsg.NewPtrIncrementalAlterConfigsRequest()
	r.SetVersion(1)
	rr := kmsg.NewIncrementalAlterConfigsRequestResource()
	rr.ResourceType, rr.ResourceName = typ, name
	c := kmsg.NewIncrementalAlterConfigsRequestResourceConfig()
	c.Name, c.Op, c.Value = key, op, value
	rr.Configs = append(rr.Configs, c)
	r.Resources = append(r.Resources, rr)
	return r
}

func metadataReq(v int16, autoCreate bool, names ...*string) *kmsg.MetadataRequest {
	r := kmsg.NewPtrMetadataRequest()
	r.SetVersion(v)
	r.AllowAutoTopicCreation = autoCreate
	r.Topics = []kmsg.MetadataRequestTopic{}
	for _, n := range names {
		t := kmsg.NewMetadataRequestTopic()
		t.Topic = n
		r.Topics = append(r.Topics, t)
	}
	return r
}

func apiVersionsReq(v int16) *kmsg.ApiVersionsRequest {
	r := kmsg.NewPtrApiVersionsRequest()
	r.SetVersion(v)
	r.ClientSoftwareName, r.ClientSoftwareVersion = "sluice-badinput", "1.0"
	return r
}

// ---------------------------------------------------------------------------
// Batch helpers.

func biRecords(n int, prefix string) []batch.Record {
	out := make([]batch.Record, n)
	for i := range out {
		out[i] = batch.Record{Key: []byte(fmt.Sprintf("k%d", i)), Value: []byte(fmt.Sprintf("%s-%d", prefix, i))}
	}
	return out
}

func mustBuild(t testing.TB, recs []batch.Record, opts batch.BuildOptions) []byte {
	t.Helper()
	b, err := batch.Build(recs, opts)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// refreshCRC recomputes a v2 batch's CRC-32C after an edit.
func refreshCRC(b []byte) []byte {
	binary.BigEndian.PutUint32(b[biOffCRC:], crc32.Checksum(b[biOffAttributes:], biCastagnoli))
	return b
}

// edited returns a copy of b changed by f.
func edited(b []byte, f func(c []byte)) []byte {
	c := append([]byte(nil), b...)
	f(c)
	return c
}

func put32(b []byte, off int, v int32) { binary.BigEndian.PutUint32(b[off:], uint32(v)) }

// rawBatch wraps an already encoded records payload (compressed with codec)
// in a v2 batch header claiming count records.
func rawBatch(codec batch.Codec, payload []byte, count int32) []byte {
	b := make([]byte, 61, 61+len(payload))
	b = append(b, payload...)
	put32(b, biOffBatchLength, int32(len(b)-12))
	b[biOffMagic] = 2
	binary.BigEndian.PutUint16(b[biOffAttributes:], uint16(codec))
	put32(b, biOffLastOffsetDelta, count-1)
	binary.BigEndian.PutUint64(b[27:], uint64(time.Now().UnixMilli()))
	binary.BigEndian.PutUint64(b[biOffMaxTimestamp:], uint64(time.Now().UnixMilli()))
	binary.BigEndian.PutUint64(b[biOffProducerID:], math.MaxUint64) // -1
	binary.BigEndian.PutUint16(b[51:], 0xffff)
	put32(b, biOffBaseSequence, -1)
	put32(b, biOffRecordCount, count)
	return refreshCRC(b)
}

// legacyMessage is a magic 0 or 1 message set of one message, as Produce
// v0-v2 carried (CRC-32 IEEE over magic..end).
func legacyMessage(magic byte, value string) []byte {
	msg := []byte{magic, 0}
	if magic == 1 {
		msg = binary.BigEndian.AppendUint64(msg, uint64(time.Now().UnixMilli()))
	}
	msg = binary.BigEndian.AppendUint32(msg, 0xffffffff) // null key
	msg = binary.BigEndian.AppendUint32(msg, uint32(len(value)))
	msg = append(msg, value...)
	out := binary.BigEndian.AppendUint64(nil, 0)
	out = binary.BigEndian.AppendUint32(out, uint32(4+len(msg)))
	out = binary.BigEndian.AppendUint32(out, crc32.ChecksumIEEE(msg))
	return append(out, msg...)
}

// bombSize is the decompressed size of the compression bombs.
const bombSize = 200 << 20

// bombRecordParts is one record whose value is bombSize zero bytes, split
// into the encoded prefix (length, attributes, deltas, null key, value
// length) and suffix (header count), so the zeros can be streamed.
func bombRecordParts() (prefix, suffix []byte) {
	zz := func(dst []byte, v int64) []byte { return binary.AppendUvarint(dst, uint64((v<<1)^(v>>63))) }
	var body []byte
	body = append(body, 0)    // attributes
	body = zz(body, 0)        // timestamp delta
	body = zz(body, 0)        // offset delta
	body = zz(body, -1)       // null key
	body = zz(body, bombSize) // value length
	suffix = zz(nil, 0)       // no headers
	prefix = zz(nil, int64(len(body)+bombSize+len(suffix)))
	return append(prefix, body...), suffix
}

// streamBomb writes the bomb record to w without ever holding it.
func streamBomb(w io.Writer) error {
	prefix, suffix := bombRecordParts()
	if _, err := w.Write(prefix); err != nil {
		return err
	}
	zeros := make([]byte, 1<<20)
	for left := bombSize; left > 0; left -= len(zeros) {
		if _, err := w.Write(zeros[:min(left, len(zeros))]); err != nil {
			return err
		}
	}
	_, err := w.Write(suffix)
	return err
}

// compressionBomb is a batch of one record of 200 MiB of zeros compressed
// with codec by the real library, built by streaming.
func compressionBomb(t testing.TB, codec batch.Codec) []byte {
	t.Helper()
	var buf bytes.Buffer
	var err error
	switch codec {
	case batch.CodecGzip:
		zw, _ := gzip.NewWriterLevel(&buf, 4) // as small as level 9 on zeros, 10x faster
		if err = streamBomb(zw); err == nil {
			err = zw.Close()
		}
	case batch.CodecLZ4:
		zw := lz4.NewWriter(&buf)
		if err = streamBomb(zw); err == nil {
			err = zw.Close()
		}
	case batch.CodecZstd:
		zw, _ := zstd.NewWriter(&buf, zstd.WithEncoderConcurrency(1))
		if err = streamBomb(zw); err == nil {
			err = zw.Close()
		}
	case batch.CodecSnappy:
		// The xerial framing the Java client writes: a header, then
		// [int32 length][raw snappy block] chunks, here of 1 MiB each.
		buf.Write([]byte{0x82, 'S', 'N', 'A', 'P', 'P', 'Y', 0, 0, 0, 0, 1, 0, 0, 0, 1})
		cw := &xerialWriter{w: &buf}
		if err = streamBomb(cw); err == nil {
			cw.flush()
		}
	}
	if err != nil {
		t.Fatalf("building the %s bomb: %v", codec, err)
	}
	return rawBatch(codec, buf.Bytes(), 1)
}

// xerialWriter chunks what is written to it into 1 MiB xerial chunks.
type xerialWriter struct {
	w       *bytes.Buffer
	pending []byte
}

func (x *xerialWriter) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		take := min(len(p), 1<<20-len(x.pending))
		x.pending = append(x.pending, p[:take]...)
		p = p[take:]
		if len(x.pending) == 1<<20 {
			x.flush()
		}
	}
	return n, nil
}

func (x *xerialWriter) flush() {
	if len(x.pending) == 0 {
		return
	}
	blk := snappy.Encode(nil, x.pending)
	x.w.Write(binary.BigEndian.AppendUint32(nil, uint32(len(blk))))
	x.w.Write(blk)
	x.pending = x.pending[:0]
}

// ---------------------------------------------------------------------------
// The harness.

type outcomeKind int

const (
	// wantClosed: the broker closes the connection without a response.
	wantClosed outcomeKind = iota + 1
	// wantCodes: a response whose error codes (errorCodes) are exactly codes.
	wantCodes
	// wantFallback: an ApiVersions v0 response with UNSUPPORTED_VERSION
	// and the supported versions (KIP-511); the connection stays open.
	wantFallback
	// wantCodesThenClosed: one response with codes, then the connection is
	// closed (a good or refused request pipelined before a bad frame).
	wantCodesThenClosed
)

type badCase struct {
	name string
	// What to send: req (framed with its header) or raw bytes.
	req kmsg.Request
	raw []byte
	// halfClose shuts our write side after sending (truncated frame, EOF).
	halfClose bool
	// decodeAs is the request a response to raw bytes answers.
	decodeAs kmsg.Request
	kind     outcomeKind
	codes    []int16
	// check makes further assertions on a decoded response.
	check func(resp kmsg.Response) error
	// after checks broker state once the case finished.
	after func() error
	// allocMax bounds the heap allocated (runtime TotalAlloc, broker and
	// test together) while the case runs; 0 means 8 MiB + 4x the bytes sent.
	allocMax uint64
}

func closed(name string, raw []byte) badCase {
	return badCase{name: name, raw: raw, kind: wantClosed}
}

func closedEOF(name string, raw []byte) badCase {
	return badCase{name: name, raw: raw, kind: wantClosed, halfClose: true}
}

func codes(name string, req kmsg.Request, want ...int16) badCase {
	return badCase{name: name, req: req, kind: wantCodes, codes: want}
}

type badHarness struct {
	t    *testing.T
	b    *Broker
	addr string
}

func (h *badHarness) dial() (net.Conn, error) {
	return net.DialTimeout("tcp", h.addr, 5*time.Second)
}

// roundTrip sends req on a new connection and decodes the response.
func (h *badHarness) roundTrip(req kmsg.Request) (kmsg.Response, error) {
	c, err := h.dial()
	if err != nil {
		return nil, err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(15 * time.Second))
	if _, err := c.Write(encodeReq(req)); err != nil {
		return nil, err
	}
	f, err := readRespFrame(c)
	if err != nil {
		return nil, err
	}
	return decodeResp(req, f)
}

func (h *badHarness) mustRoundTrip(req kmsg.Request) kmsg.Response {
	h.t.Helper()
	resp, err := h.roundTrip(req)
	if err != nil {
		h.t.Fatalf("%s: %v", kmsg.NameForKey(req.Key()), err)
	}
	if c := errorCodes(resp); len(c) > 0 && slicesAny(c) {
		h.t.Fatalf("%s: error codes %v", kmsg.NameForKey(req.Key()), c)
	}
	return resp
}

func slicesAny(c []int16) bool {
	for _, x := range c {
		if x != 0 {
			return true
		}
	}
	return false
}

// stillServing checks the broker answers ApiVersions on a new connection.
func (h *badHarness) stillServing() error {
	for _, v := range []int16{0, 3} {
		resp, err := h.roundTrip(apiVersionsReq(v))
		if err != nil {
			return fmt.Errorf("ApiVersions v%d on a new connection: %w", v, err)
		}
		av := resp.(*kmsg.ApiVersionsResponse)
		if av.ErrorCode != 0 || len(av.ApiKeys) != len(protocol.Supported) {
			return fmt.Errorf("ApiVersions v%d: code %d, %d keys", v, av.ErrorCode, len(av.ApiKeys))
		}
	}
	return nil
}

// run sends one case and checks its outcome.
func (h *badHarness) run(tc *badCase, out []byte) error {
	c, err := h.dial()
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetWriteDeadline(time.Now().Add(15 * time.Second))
	if _, err := c.Write(out); err != nil && tc.kind != wantClosed {
		return fmt.Errorf("writing: %v", err)
	}
	if tc.halfClose {
		c.(*net.TCPConn).CloseWrite()
	}
	decodeAs := tc.req
	if decodeAs == nil {
		decodeAs = tc.decodeAs
	}
	switch tc.kind {
	case wantClosed:
		return awaitClose(c)
	case wantFallback:
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		f, err := readRespFrame(c)
		if err != nil {
			return fmt.Errorf("no ApiVersions fallback response: %v", err)
		}
		v0 := kmsg.NewPtrApiVersionsRequest()
		v0.SetVersion(0)
		resp, err := decodeResp(v0, f)
		if err != nil {
			return err
		}
		av := resp.(*kmsg.ApiVersionsResponse)
		if av.ErrorCode != kerr.UnsupportedVersion.Code {
			return fmt.Errorf("fallback error code %d, want %d", av.ErrorCode, kerr.UnsupportedVersion.Code)
		}
		if err := sameVersions(av); err != nil {
			return err
		}
		// KIP-511: the connection stays usable.
		c.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := c.Write(encodeReq(apiVersionsReq(3))); err != nil {
			return fmt.Errorf("after the fallback: %v", err)
		}
		if _, err := readRespFrame(c); err != nil {
			return fmt.Errorf("connection unusable after the fallback: %v", err)
		}
		return nil
	case wantCodes, wantCodesThenClosed:
		c.SetReadDeadline(time.Now().Add(15 * time.Second))
		f, err := readRespFrame(c)
		if err != nil {
			return fmt.Errorf("no response: %v", err)
		}
		resp, err := decodeResp(decodeAs, f)
		if err != nil {
			return err
		}
		if got := errorCodes(resp); !reflect.DeepEqual(got, tc.codes) {
			return fmt.Errorf("error codes %v, want %v (%s)", got, tc.codes, codeNames(got))
		}
		if tc.check != nil {
			if err := tc.check(resp); err != nil {
				return err
			}
		}
		if tc.kind == wantCodesThenClosed {
			return awaitClose(c)
		}
		return nil
	}
	return fmt.Errorf("case has no outcome")
}

func codeNames(cs []int16) string {
	var out []string
	for _, c := range cs {
		if e := kerr.ErrorForCode(c); e != nil {
			out = append(out, e.(*kerr.Error).Message)
		} else {
			out = append(out, "NONE")
		}
	}
	return strings.Join(out, ", ")
}

func sameVersions(av *kmsg.ApiVersionsResponse) error {
	if len(av.ApiKeys) != len(protocol.Supported) {
		return fmt.Errorf("%d api keys listed, want %d", len(av.ApiKeys), len(protocol.Supported))
	}
	for _, k := range av.ApiKeys {
		r, ok := protocol.Lookup(k.ApiKey)
		if !ok || r.Min != k.MinVersion || r.Max != k.MaxVersion {
			return fmt.Errorf("api key %d listed as %d-%d", k.ApiKey, k.MinVersion, k.MaxVersion)
		}
	}
	return nil
}

// ---------------------------------------------------------------------------
// TestBadInput.

// badTopics are the topics the test creates; nothing else may exist at the end.
const (
	tGood    = "good"    // records stored before the cases; must not change
	tVictim  = "victim"  // target of refused produces; must stay empty
	tBig     = "big"     // max.message.bytes 16 MiB, for the snappy bomb
	tIdem    = "idem"    // one idempotent batch, for sequence errors
	tTrimmed = "trimmed" // 5 records, log start 3
	tCfg     = "cfg"     // target of refused config changes
)

func TestBadInput(t *testing.T) {
	b := startBroker(t, t.TempDir(), func(c *config.Config) { c.FetchMaxWaitMax = 500 * time.Millisecond })
	h := &badHarness{t: t, b: b, addr: b.KafkaAddr()}

	// Setup: topics and the records that must survive unchanged.
	h.mustRoundTrip(createTopicReq(7, false,
		newTopic(tGood, 2, 1), newTopic(tVictim, 1, 1), newTopic(tIdem, 1, 1), newTopic(tTrimmed, 1, 1), newTopic(tCfg, 1, 1),
		newTopic(tBig, 1, 1, kv("max.message.bytes", biStr("16777216")))))
	for _, name := range []string{tGood, tVictim, tIdem, tTrimmed, tCfg, tBig} {
		waitLeaders(t, b, name)
	}
	goodBatches := map[int32][][]byte{
		0: {mustBuild(t, biRecords(3, "p0-none"), batch.BuildOptions{BaseTimestamp: 1700000000000}),
			mustBuild(t, biRecords(4, "p0-gzip"), batch.BuildOptions{Codec: batch.CodecGzip, BaseTimestamp: 1700000001000}),
			mustBuild(t, biRecords(2, "p0-zstd"), batch.BuildOptions{Codec: batch.CodecZstd, BaseTimestamp: 1700000002000})},
		1: {mustBuild(t, biRecords(5, "p1-lz4"), batch.BuildOptions{Codec: batch.CodecLZ4, BaseTimestamp: 1700000003000}),
			mustBuild(t, biRecords(1, "p1-snappy"), batch.BuildOptions{Codec: batch.CodecSnappy, BaseTimestamp: 1700000004000})},
	}
	for p, bs := range goodBatches {
		for _, bt := range bs {
			h.mustRoundTrip(produceReq(9, -1, tGood, p, bt))
		}
	}
	for i := 0; i < 5; i++ {
		h.mustRoundTrip(produceReq(9, -1, tTrimmed, 0, mustBuild(t, biRecords(1, "trim"), batch.BuildOptions{})))
	}
	h.mustRoundTrip(deleteRecordsReq(2, tTrimmed, 0, 3))
	ipid := kmsg.NewPtrInitProducerIDRequest()
	ipid.SetVersion(4)
	ipid.ProducerID, ipid.ProducerEpoch = -1, -1
	pid := h.mustRoundTrip(ipid).(*kmsg.InitProducerIDResponse).ProducerID
	idemBatch := mustBuild(t, biRecords(3, "idem"), batch.BuildOptions{Producer: &batch.ProducerInfo{ID: pid, Epoch: 1, BaseSequence: 0}})
	h.mustRoundTrip(produceReq(9, -1, tIdem, 0, idemBatch))

	goodID := b.reg.get(tGood).id
	baseline := h.snapshotGood()
	topicsBefore := topicNames(b)

	built := time.Now()
	cases := badInputCases(t, h, pid, idemBatch, goodID)
	t.Logf("built %d cases in %v", len(cases), time.Since(built).Round(time.Millisecond))
	if len(cases) < 120 {
		t.Fatalf("only %d cases", len(cases))
	}

	type figure struct {
		name  string
		alloc uint64
		took  time.Duration
	}
	var figures []figure
	byOutcome := map[string]int{}
	for i := range cases {
		tc := &cases[i]
		out := tc.raw
		if tc.req != nil {
			out = encodeReq(tc.req)
		}
		bound := tc.allocMax
		if bound == 0 {
			bound = 8<<20 + 4*uint64(len(out))
		}
		var m0, m1 runtime.MemStats
		runtime.ReadMemStats(&m0)
		start := time.Now()
		err := h.run(tc, out)
		took := time.Since(start)
		runtime.ReadMemStats(&m1)
		alloc := m1.TotalAlloc - m0.TotalAlloc
		figures = append(figures, figure{tc.name, alloc, took})
		if err != nil {
			t.Errorf("case %d %q: %v", i, tc.name, err)
		}
		if alloc > bound {
			t.Errorf("case %d %q: %d MiB allocated while it ran, bound %d MiB", i, tc.name, alloc>>20, bound>>20)
		}
		if tc.after != nil {
			if err := tc.after(); err != nil {
				t.Errorf("case %d %q: %v", i, tc.name, err)
			}
		}
		if err := h.stillServing(); err != nil {
			t.Fatalf("after case %d %q the broker stopped serving: %v", i, tc.name, err)
		}
		if hw := b.reg.get(tVictim).parts[0].Partition().HighWatermark(); hw != 0 {
			t.Fatalf("after case %d %q topic %s holds %d records: a refused batch was stored", i, tc.name, tVictim, hw)
		}
		switch tc.kind {
		case wantClosed:
			byOutcome["connection closed without a response"]++
		case wantFallback:
			byOutcome["ApiVersions v0 fallback with UNSUPPORTED_VERSION"]++
		default:
			nonzero := 0
			for _, c := range tc.codes {
				if c != 0 {
					nonzero++
					byOutcome[fmt.Sprintf("code %d %s", c, kerr.ErrorForCode(c).(*kerr.Error).Message)]++
					break
				}
			}
			if nonzero == 0 {
				byOutcome["code 0 with a checked outcome (no-op, dedup, boundary)"]++
			}
			if tc.kind == wantCodesThenClosed {
				byOutcome["  of which: response, then closed (pipelined)"]++
			}
		}
	}

	// Every case's connection is gone: no reader or writer is stuck.
	deadline := time.Now().Add(10 * time.Second)
	for {
		b.connMu.Lock()
		n := len(b.conns)
		b.connMu.Unlock()
		if n == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Errorf("%d connections still open 10s after the last case", n)
			break
		}
		time.Sleep(20 * time.Millisecond)
	}

	// Nothing stored changed.
	if after := h.snapshotGood(); !reflect.DeepEqual(after, baseline) {
		t.Errorf("topic %s changed:\nbefore %+v\nafter  %+v", tGood, baseline, after)
	}
	h.checkGoodWithClient(goodBatches)
	if got := topicNames(b); !reflect.DeepEqual(got, topicsBefore) {
		t.Errorf("topics %v after the cases, want %v", got, topicsBefore)
	}
	if hw := b.reg.get(tIdem).parts[0].Partition().HighWatermark(); hw != 3 {
		t.Errorf("topic %s high watermark %d, want 3", tIdem, hw)
	}
	if p := b.reg.get(tTrimmed).parts[0].Partition(); p.LogStartOffset() != 3 || p.HighWatermark() != 5 {
		t.Errorf("topic %s offsets [%d, %d), want [3, 5)", tTrimmed, p.LogStartOffset(), p.HighWatermark())
	}
	overrides := fmt.Sprint(b.reg.get(tCfg).overrides)
	if overrides != "map[]" {
		t.Errorf("topic %s has config overrides %s after refused changes", tCfg, overrides)
	}
	if n := len(b.reg.get(tGood).parts); n != 2 {
		t.Errorf("topic %s has %d partitions, want 2", tGood, n)
	}
	// Memory: the heap after GC stays small whatever was claimed.
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	if ms.HeapInuse > 512<<20 {
		t.Errorf("HeapInuse %d MiB after the cases and a GC", ms.HeapInuse>>20)
	}
	sort.Slice(figures, func(i, j int) bool { return figures[i].alloc > figures[j].alloc })
	t.Logf("%d cases; HeapInuse after GC %.1f MiB, HeapSys %.1f MiB, Sys %.1f MiB",
		len(cases), mib(ms.HeapInuse), mib(ms.HeapSys), mib(ms.Sys))
	for _, f := range figures[:8] {
		t.Logf("  allocated %7.1f MiB in %v: %s", mib(f.alloc), f.took.Round(time.Millisecond), f.name)
	}
	var classes []string
	for k := range byOutcome {
		classes = append(classes, k)
	}
	sort.Strings(classes)
	for _, k := range classes {
		t.Logf("  %4d  %s", byOutcome[k], k)
	}
}

func mib(n uint64) float64 { return float64(n) / (1 << 20) }

func topicNames(b *Broker) []string {
	var out []string
	for _, t := range b.reg.list() {
		out = append(out, t.name)
	}
	return out
}

// goodState is what topic good serves: per partition the log start, high
// watermark and the raw batch bytes a fetch returns.
type goodState struct {
	Start, HW int64
	Batches   []byte
}

func (h *badHarness) snapshotGood() map[int32]goodState {
	h.t.Helper()
	out := map[int32]goodState{}
	for p := int32(0); p < 2; p++ {
		resp := h.mustRoundTrip(fetchReq(11, tGood, [16]byte{}, fetchPart{p, 0})).(*kmsg.FetchResponse)
		fp := resp.Topics[0].Partitions[0]
		out[p] = goodState{fp.LogStartOffset, fp.HighWatermark, fp.RecordBatches}
	}
	return out
}

// checkGoodWithClient reads topic good with franz-go and compares every
// record's partition, offset, key and value with what was produced.
func (h *badHarness) checkGoodWithClient(produced map[int32][][]byte) {
	h.t.Helper()
	type rec struct {
		p          int32
		off        int64
		key, value string
	}
	var want []rec
	for p, bs := range produced {
		off := int64(0)
		for _, bt := range bs {
			err := batch.Records(bt, batch.Limits{}, func(r batch.Record) error {
				want = append(want, rec{p, off, string(r.Key), string(r.Value)})
				off++
				return nil
			})
			if err != nil {
				h.t.Fatal(err)
			}
		}
	}
	var got []rec
	for _, r := range consume(h.t, h.b, tGood, len(want), nil) {
		got = append(got, rec{r.Partition, r.Offset, string(r.Key), string(r.Value)})
	}
	less := func(s []rec) func(i, j int) bool {
		return func(i, j int) bool { return s[i].p < s[j].p || s[i].p == s[j].p && s[i].off < s[j].off }
	}
	sort.Slice(want, less(want))
	sort.Slice(got, less(got))
	if !reflect.DeepEqual(got, want) {
		h.t.Errorf("franz-go reads topic %s as %v, want %v", tGood, got, want)
	}
}

// ---------------------------------------------------------------------------
// The cases.

func badInputCases(t *testing.T, h *badHarness, pid int64, idemBatch []byte, goodID [16]byte) []badCase {
	b := h.b
	good := mustBuild(t, biRecords(3, "bad"), batch.BuildOptions{BaseTimestamp: time.Now().UnixMilli()})
	gz := mustBuild(t, biRecords(3, "bad"), batch.BuildOptions{Codec: batch.CodecGzip, BaseTimestamp: time.Now().UnixMilli()})
	var cs []badCase
	add := func(c ...badCase) { cs = append(cs, c...) }
	prod := func(records []byte) *kmsg.ProduceRequest { return produceReq(9, -1, tVictim, 0, records) }
	C := func(e *kerr.Error) int16 { return e.Code }
	corrupt, invalidRecord := C(kerr.CorruptMessage), C(kerr.InvalidRecord)

	// ---- Framing: the 4-byte size and the request header. Each closes the
	// connection before anything is allocated for the claimed size.
	small := uint64(3 << 20)
	fr := func(c badCase) badCase { c.allocMax = small; return c }
	add(
		fr(closed("frame: produce size one over max_request_bytes", sizeThen(100<<20+1, 0, 0, 0, 9, 0, 0, 0, 1))),
		fr(closed("frame: produce size MaxInt32", sizeThen(math.MaxInt32, 0, 0, 0, 9))),
		fr(closed("frame: metadata size one over max_control_request_bytes", sizeThen(1<<20+1, 0, 3, 0, 1))),
		fr(closed("frame: fetch of 50 MiB (over the control limit)", sizeThen(50<<20, 0, 1, 0, 12))),
		fr(closed("frame: api versions of 2 MiB", sizeThen(2<<20, 0, 18, 0, 3))),
		fr(closed("frame: size -1", sizeThen(-1, 0, 18, 0, 3))),
		fr(closed("frame: size MinInt32", sizeThen(math.MinInt32, 0, 18, 0, 3))),
		fr(closed("frame: size 0", sizeThen(0, 0, 18, 0, 3))),
		fr(closed("frame: size 7, below the fixed header", sizeThen(7, 0, 18, 0, 3, 0, 0, 0))),
		fr(closedEOF("frame: size prefix cut after 2 bytes, then EOF", []byte{0, 0})),
		fr(closedEOF("frame: size 8 then 3 bytes, then EOF", sizeThen(8, 0, 18, 0))),
		fr(closedEOF("frame: metadata size 100 then 50 bytes, then EOF", sizeThen(100, rawReq(3, 1, false, make([]byte, 60))[4:54]...))),
		closedEOF("frame: metadata size 1 MiB, header only, then EOF", sizeThen(1<<20, appendReqHeader(nil, 3, 1, nil, false)...)),
		// Memory follows the bytes received, not the size claimed.
		fr(closedEOF("frame: produce claiming 100 MiB, 10 bytes, then EOF", sizeThen(100<<20, appendReqHeader(nil, 0, 9, nil, false)...))),
		closedEOF("frame: produce claiming 100 MiB, 5 MiB sent, then EOF", sizeThen(100<<20, append(appendReqHeader(nil, 0, 9, nil, false), make([]byte, 5<<20)...)...)),
		closed("header: client id length -2", sized([]byte{0, 18, 0, 3, 0, 0, 0x5e, 0xed, 0xff, 0xfe, 0})),
		closed("header: client id longer than the frame", sized([]byte{0, 18, 0, 3, 0, 0, 0x5e, 0xed, 0x7f, 0xff, 'a', 'b'})),
		closed("header: v2 header with 2^32-1 tagged fields", sized(append(appendReqHeader(nil, 3, 12, nil, false), 0xff, 0xff, 0xff, 0xff, 0x0f, 0))),
		closed("header: v2 header tag larger than the frame", sized(append(appendReqHeader(nil, 3, 12, nil, false), 1, 0, 0x7f, 1))),
		closed("header: 64 bytes of 0xff", sized(bytes.Repeat([]byte{0xff}, 64))),
		closed("header: 64 zero bytes (produce v0)", sized(make([]byte, 64))),
	)

	// ---- Unknown API keys and unsupported versions.
	sasl := kmsg.NewPtrSASLHandshakeRequest()
	sasl.SetVersion(1)
	sasl.Mechanism = "PLAIN"
	add(
		closed("api: unknown key 9999", rawReq(9999, 0, false, []byte{0, 0, 0, 0})),
		closed("api: negative key -1", rawReq(-1, 0, false, nil)),
		closed("api: SaslHandshake v1 (a Kafka API Sluice does not implement)", encodeReq(sasl)),
		closed("api: key 67 above the table", rawReq(67, 0, false, nil)),
		closed("api: key 32767", rawReq(32767, 0, false, nil)),
	)

	// ---- Consumer groups: refused before any coordinator is involved.
	jg := func(group string, session int32) *kmsg.JoinGroupRequest {
		r := kmsg.NewPtrJoinGroupRequest()
		r.SetVersion(9)
		r.Group, r.ProtocolType, r.SessionTimeoutMillis, r.RebalanceTimeoutMillis = group, "consumer", session, 10000
		p := kmsg.NewJoinGroupRequestProtocol()
		p.Name, p.Metadata = "range", []byte{0, 0}
		r.Protocols = append(r.Protocols, p)
		return r
	}
	noProtocols := jg("g", 10000)
	noProtocols.Protocols = nil
	fcBad := kmsg.NewPtrFindCoordinatorRequest()
	fcBad.SetVersion(4)
	fcBad.CoordinatorType, fcBad.CoordinatorKeys = 7, []string{"g"}
	fcTxn := kmsg.NewPtrFindCoordinatorRequest()
	fcTxn.SetVersion(4)
	fcTxn.CoordinatorType, fcTxn.CoordinatorKeys = 1, []string{"tx"}
	oc := kmsg.NewPtrOffsetCommitRequest()
	oc.SetVersion(8)
	oc.Generation = -1
	ocT := kmsg.NewOffsetCommitRequestTopic()
	ocT.Topic, ocT.Partitions = "t", []kmsg.OffsetCommitRequestTopicPartition{kmsg.NewOffsetCommitRequestTopicPartition()}
	oc.Topics = append(oc.Topics, ocT)
	dg := kmsg.NewPtrDescribeGroupsRequest()
	dg.SetVersion(5)
	dg.Groups = []string{""}
	hb := kmsg.NewPtrHeartbeatRequest()
	hb.SetVersion(4)
	add(
		codes("group: JoinGroup with an empty group id", jg("", 10000), kerr.InvalidGroupID.Code),
		codes("group: JoinGroup with a 1 ms session timeout", jg("g", 1), kerr.InvalidSessionTimeout.Code),
		codes("group: JoinGroup with a 1-day session timeout", jg("g", 86400000), kerr.InvalidSessionTimeout.Code),
		codes("group: JoinGroup without protocols", noProtocols, kerr.InconsistentGroupProtocol.Code),
		codes("group: FindCoordinator of key type 7", fcBad, 0, kerr.InvalidRequest.Code),
		codes("group: FindCoordinator of a transaction", fcTxn, 0, kerr.TransactionalIDAuthorizationFailed.Code),
		codes("group: OffsetCommit with an empty group id", oc, kerr.InvalidGroupID.Code),
		codes("group: DescribeGroups of an empty group id", dg, kerr.InvalidGroupID.Code),
		codes("group: Heartbeat with an empty group id", hb, kerr.InvalidGroupID.Code),
	)

	// ---- Share groups (KIP-932).
	sf := func(member string, epoch int32, acks bool) *kmsg.ShareFetchRequest {
		r := kmsg.NewPtrShareFetchRequest()
		r.SetVersion(1)
		g := "sg"
		r.GroupID, r.MemberID, r.ShareSessionEpoch, r.MaxRecords = &g, &member, epoch, 10
		if acks {
			rt := kmsg.NewShareFetchRequestTopic()
			rp := kmsg.NewShareFetchRequestTopicPartition()
			ab := kmsg.NewShareFetchRequestTopicPartitionAcknowledgementBatch()
			ab.FirstOffset, ab.LastOffset, ab.AcknowledgeTypes = 0, 0, []int8{1}
			rp.AcknowledgementBatches = append(rp.AcknowledgementBatches, ab)
			rt.Partitions = append(rt.Partitions, rp)
			r.Topics = append(r.Topics, rt)
		}
		return r
	}
	sa := kmsg.NewPtrShareAcknowledgeRequest()
	sa.SetVersion(1)
	saG, saM := "sg", "m"
	sa.GroupID, sa.MemberID, sa.ShareSessionEpoch = &saG, &saM, 0
	sh := kmsg.NewPtrShareGroupHeartbeatRequest()
	sh.SetVersion(1)
	sh.GroupID, sh.MemberID = "sg", "m"
	add(
		codes("share: ShareFetch with an empty member id", sf("", 0, false), kerr.InvalidRequest.Code),
		codes("share: ShareFetch opening a session with acks", sf("m", 0, true), kerr.InvalidRequest.Code),
		codes("share: ShareFetch in a session that does not exist", sf("m", 5, false), kerr.ShareSessionNotFound.Code),
		codes("share: ShareAcknowledge at epoch 0", sa, kerr.InvalidShareSessionEpoch.Code),
		codes("share: ShareGroupHeartbeat joining without topics", sh, kerr.InvalidRequest.Code),
		codes("group: JoinGroup with a 40000-byte group id", jg(strings.Repeat("g", 40000), 10000), kerr.InvalidGroupID.Code),
	)
	for _, v := range []struct {
		req kmsg.Request
		ver int16
	}{
		{kmsg.NewPtrProduceRequest(), 2}, {kmsg.NewPtrProduceRequest(), 12}, {kmsg.NewPtrProduceRequest(), -1},
		{kmsg.NewPtrFetchRequest(), 3}, {kmsg.NewPtrFetchRequest(), 17},
		{kmsg.NewPtrListOffsetsRequest(), 0}, {kmsg.NewPtrListOffsetsRequest(), 9},
		{kmsg.NewPtrMetadataRequest(), 13},
		{kmsg.NewPtrCreateTopicsRequest(), 1}, {kmsg.NewPtrCreateTopicsRequest(), 8},
		{kmsg.NewPtrDeleteTopicsRequest(), 0},
		{kmsg.NewPtrDescribeConfigsRequest(), 0}, {kmsg.NewPtrDescribeConfigsRequest(), 5},
		{kmsg.NewPtrIncrementalAlterConfigsRequest(), 2},
		{kmsg.NewPtrDeleteRecordsRequest(), 3},
		{kmsg.NewPtrInitProducerIDRequest(), 6},
		{kmsg.NewPtrCreatePartitionsRequest(), 4},
		{kmsg.NewPtrDescribeClusterRequest(), 2},
		{kmsg.NewPtrFindCoordinatorRequest(), 7},
	} {
		flex := v.ver >= 0 && func() bool { v.req.SetVersion(v.ver); return v.req.IsFlexible() }()
		body := bodyAt(v.req, max(v.ver, 0))
		add(closed(fmt.Sprintf("version: %s v%d", kmsg.NameForKey(v.req.Key()), v.ver), rawReq(v.req.Key(), v.ver, flex, body)))
	}
	for _, v := range []int16{5, 127, 32767, -1} {
		add(badCase{name: fmt.Sprintf("version: ApiVersions v%d gets the v0 fallback", v), raw: rawReq(18, v, false, []byte{0xde, 0xad}), kind: wantFallback})
	}

	// ---- Bodies that do not decode: truncated, trailing bytes, claimed
	// counts and lengths far beyond the bytes present.
	md1 := bodyAt(metadataReq(1, false, biStr("good"), biStr("victim")), 1)
	md9 := bodyAt(metadataReq(9, false, biStr("good")), 9)
	pr3 := bodyAt(produceReq(3, -1, tVictim, 0, good), 3)
	pr9 := bodyAt(produceReq(9, -1, tVictim, 0, good), 9)
	ct5 := bodyAt(createTopicReq(5, true, newTopic("x", 1, 1, kv("retention.ms", biStr("1000")))), 5)
	av3 := bodyAt(apiVersionsReq(3), 3)
	cut := func(b []byte, n int) []byte { return append([]byte(nil), b[:len(b)-n]...) }
	plus := func(b []byte, extra ...byte) []byte { return append(append([]byte(nil), b...), extra...) }
	at := func(b []byte, off int, v ...byte) []byte { return edited(b, func(c []byte) { copy(c[off:], v) }) }
	// Produce v3 body: transactional_id (2) acks (2) timeout (4) topics count (4) name ...
	// Produce v9 body: transactional_id (1) acks (2) timeout (4) topics count (uvarint) ...
	add(
		closed("body: Metadata v1 cut by one byte", rawReq(3, 1, false, cut(md1, 1))),
		closed("body: Metadata v1 with a trailing byte", rawReq(3, 1, false, plus(md1, 0))),
		closed("body: Metadata v1 claiming 2^31-1 topics", rawReq(3, 1, false, at(md1, 0, 0x7f, 0xff, 0xff, 0xff))),
		closed("body: Metadata v1 claiming -2 topics", rawReq(3, 1, false, at(md1, 0, 0xff, 0xff, 0xff, 0xfe))),
		closed("body: Metadata v1 topic name length -5", rawReq(3, 1, false, at(md1, 4, 0xff, 0xfb))),
		closed("body: Metadata v9 compact array of 2^32-2 topics", rawReq(3, 9, true, append([]byte{0xff, 0xff, 0xff, 0xff, 0x0f}, md9[1:]...))),
		closed("body: Metadata v9 claiming 2^32-1 tagged fields", rawReq(3, 9, true, append(cut(md9, 1), 0xff, 0xff, 0xff, 0xff, 0x0f))),
		closed("body: Metadata v9 bad uvarint in tags", rawReq(3, 9, true, append(cut(md9, 1), 0xff, 0xff, 0xff, 0xff, 0xff, 0xff))),
		closed("body: Produce v3 claiming 10^9 topics", rawReq(0, 3, false, at(pr3, 8, 0x3b, 0x9a, 0xca, 0x00))),
		closed("body: Produce v3 topics null (-1)", rawReq(0, 3, false, at(pr3, 8, 0xff, 0xff, 0xff, 0xff))),
		closed("body: Produce v3 topic name length -5", rawReq(0, 3, false, at(pr3, 12, 0xff, 0xfb))),
		closed("body: Produce v3 claiming 2^31-1 partitions", rawReq(0, 3, false, at(pr3, 14+len(tVictim), 0x7f, 0xff, 0xff, 0xff))),
		closed("body: Produce v3 records length 2^31-1", rawReq(0, 3, false, at(pr3, 22+len(tVictim), 0x7f, 0xff, 0xff, 0xff))),
		closed("body: Produce v3 records length -2", rawReq(0, 3, false, at(pr3, 22+len(tVictim), 0xff, 0xff, 0xff, 0xfe))),
		closed("body: Produce v3 cut inside the records", rawReq(0, 3, false, cut(pr3, 20))),
		closed("body: Produce v9 compact topics count 2^32-2", rawReq(0, 9, true, at(pr9, 7, 0xff, 0xff, 0xff, 0xff, 0x0f))),
		closed("body: Produce v9 with a trailing byte", rawReq(0, 9, true, plus(pr9, 0))),
		closed("body: CreateTopics v5 claiming 2^31-1 topics", rawReq(19, 5, true, at(ct5, 0, 0xff, 0xff, 0xff, 0xff, 0x07))),
		closed("body: CreateTopics v5 cut by one byte", rawReq(19, 5, true, cut(ct5, 1))),
		closed("body: ApiVersions v3 software name longer than the body", rawReq(18, 3, true, at(av3, 0, 0x7f))),
		closed("body: ApiVersions v3 with trailing bytes", rawReq(18, 3, true, plus(av3, 1, 2, 3))),
		closed("body: DescribeConfigs v4 empty body", rawReq(32, 4, true, nil)),
		closed("body: Fetch v12 empty body", rawReq(1, 12, true, nil)),
	)
	// A produce body of a million empty topics: 3 bytes each on the wire, 64
	// bytes each once kmsg decodes it. Refused by the decode budget.
	{
		body := []byte{0, 0xff, 0xff, 0, 0, 0x13, 0x88}                  // null txn id, acks -1, timeout 5000
		body = binary.AppendUvarint(body, 1_000_000+1)                   // compact topics count
		body = append(body, bytes.Repeat([]byte{1, 1, 0}, 1_000_000)...) // "" name, no partitions, no tags
		body = append(body, 0)                                           // request tags
		add(closed("body: Produce v9 with 10^6 empty topics (decode amplification)", rawReq(0, 9, true, body)))
	}

	// ---- Pipelining: requests before a bad frame are answered, then the
	// connection closes.
	{
		c := badCase{name: "pipeline: ApiVersions, then an unknown key", raw: append(encodeReq(apiVersionsReq(3)), rawReq(9999, 0, false, nil)...),
			decodeAs: apiVersionsReq(3), kind: wantCodesThenClosed, codes: []int16{0}}
		add(c)
		bad := edited(good, func(c []byte) { c[70] ^= 0xff })
		c = badCase{name: "pipeline: a corrupt produce, then a negative size", raw: append(encodeReq(prod(bad)), sizeThen(-1)...),
			decodeAs: prod(bad), kind: wantCodesThenClosed, codes: []int16{corrupt}}
		add(c)
	}

	// ---- Produce: damaged batches. Each is refused with its code and
	// nothing is stored (checked after every case).
	lastRec := len(good) - 1
	add(
		codes("batch: CRC field flipped", prod(edited(good, func(c []byte) { c[biOffCRC] ^= 1 })), corrupt),
		codes("batch: a record byte flipped (CRC mismatch)", prod(edited(good, func(c []byte) { c[lastRec] ^= 0x40 })), corrupt),
		codes("batch: attributes flipped without fixing the CRC", prod(edited(good, func(c []byte) { c[biOffAttributes+1] ^= 1 })), corrupt),
		codes("batch: record count +1 (uncompressed)", prod(refreshCRC(edited(good, func(c []byte) { put32(c, biOffRecordCount, 4); put32(c, biOffLastOffsetDelta, 3) }))), corrupt),
		codes("batch: record count -1 (uncompressed)", prod(refreshCRC(edited(good, func(c []byte) { put32(c, biOffRecordCount, 2); put32(c, biOffLastOffsetDelta, 1) }))), corrupt),
		codes("batch: record count 2^31-1 (uncompressed)", prod(refreshCRC(edited(good, func(c []byte) {
			put32(c, biOffRecordCount, math.MaxInt32)
			put32(c, biOffLastOffsetDelta, math.MaxInt32-1)
		}))), corrupt),
		codes("batch: record count -1 as a value", prod(refreshCRC(edited(good, func(c []byte) { put32(c, biOffRecordCount, -1) }))), corrupt),
		codes("batch: lastOffsetDelta +1", prod(refreshCRC(edited(good, func(c []byte) { put32(c, biOffLastOffsetDelta, 3) }))), corrupt),
		codes("batch: lastOffsetDelta -1 as a value", prod(refreshCRC(edited(good, func(c []byte) { put32(c, biOffLastOffsetDelta, -1) }))), corrupt),
		codes("batch: first record length beyond the batch", prod(refreshCRC(edited(good, func(c []byte) { c[61] = 0x7e }))), corrupt),
		codes("batch: trailing bytes after the last record", prod(func() []byte {
			c := append(append([]byte(nil), good...), 1, 2, 3)
			put32(c, biOffBatchLength, int32(len(c)-12))
			return refreshCRC(c)
		}()), corrupt),
		codes("batch: batchLength -1", prod(edited(good, func(c []byte) { put32(c, biOffBatchLength, -1) })), corrupt),
		codes("batch: batchLength below the header", prod(edited(good, func(c []byte) { put32(c, biOffBatchLength, 20) })), corrupt),
		codes("batch: truncated by 10 bytes", prod(good[:len(good)-10]), corrupt),
		codes("batch: truncated to 30 bytes", prod(good[:30]), corrupt),
		codes("batch: 5 bytes of garbage", prod([]byte{1, 2, 3, 4, 5}), corrupt),
		codes("batch: empty records", prod([]byte{}), invalidRecord),
		codes("batch: null records", prod(nil), invalidRecord),
		codes("batch: two batches concatenated", prod(append(append([]byte(nil), good...), good...)), invalidRecord),
		codes("batch: zero records (header only)", prod(mustBuild(t, nil, batch.BuildOptions{})), invalidRecord),
		codes("batch: magic 0 message set", prod(legacyMessage(0, "old")), invalidRecord),
		codes("batch: magic 1 message set", prod(legacyMessage(1, "old")), invalidRecord),
		codes("batch: magic 3", prod(edited(good, func(c []byte) { c[biOffMagic] = 3 })), corrupt),
		codes("batch: magic -1", prod(edited(good, func(c []byte) { c[biOffMagic] = 0xff })), corrupt),
		codes("batch: producer id -5", prod(refreshCRC(edited(good, func(c []byte) { binary.BigEndian.PutUint64(c[biOffProducerID:], uint64(math.MaxUint64-4)) }))), corrupt),
		codes("batch: maxTimestamp -5", prod(refreshCRC(edited(good, func(c []byte) { binary.BigEndian.PutUint64(c[biOffMaxTimestamp:], uint64(math.MaxUint64-4)) }))), corrupt),
		codes("batch: control batch from a client", prod(mustBuild(t, biRecords(1, "ctl"), batch.BuildOptions{Control: true})), invalidRecord),
		codes("batch: transactional batch without a transactional id", prod(mustBuild(t, biRecords(1, "txn"),
			batch.BuildOptions{Transactional: true, Producer: &batch.ProducerInfo{ID: pid, Epoch: 1, BaseSequence: 0}})), C(kerr.TransactionalIDAuthorizationFailed)),
		codes("batch: 2 MiB batch over max.message.bytes", prod(mustBuild(t, []batch.Record{{Value: make([]byte, 2<<20)}}, batch.BuildOptions{})), C(kerr.MessageTooLarge)),
	)
	for _, codec := range []int16{5, 6, 7} {
		add(codes(fmt.Sprintf("batch: codec bits %d", codec), prod(refreshCRC(edited(good, func(c []byte) {
			binary.BigEndian.PutUint16(c[biOffAttributes:], uint16(codec))
		}))), C(kerr.UnsupportedCompressionType)))
	}
	for _, codec := range []batch.Codec{batch.CodecGzip, batch.CodecSnappy, batch.CodecLZ4, batch.CodecZstd} {
		bt := mustBuild(t, biRecords(2, "cnt"), batch.BuildOptions{Codec: codec})
		add(codes(fmt.Sprintf("batch: record count +1 (%s, checked after decompressing)", codec), prod(refreshCRC(edited(bt, func(c []byte) {
			put32(c, biOffRecordCount, 3)
			put32(c, biOffLastOffsetDelta, 2)
		}))), corrupt))
	}
	add(
		codes("batch: gzip payload damaged (CRC fixed)", prod(refreshCRC(edited(gz, func(c []byte) { c[len(c)-12] ^= 0xff; c[75] ^= 0xff }))), corrupt),
		codes("batch: gzip codec bit on plain records", prod(refreshCRC(edited(good, func(c []byte) { c[biOffAttributes+1] |= byte(batch.CodecGzip) }))), corrupt),
		codes("batch: zstd codec bit on an empty payload", prod(rawBatch(batch.CodecZstd, nil, 1)), corrupt),
		codes("batch: raw snappy block claiming 200 MiB", prod(rawBatch(batch.CodecSnappy, append(binary.AppendUvarint(nil, bombSize), 0, 0), 1)), invalidRecord),
		codes("version: zstd batch in Produce v3 (KIP-110: v7+)", produceReq(3, -1, tVictim, 0, mustBuild(t, biRecords(1, "z"), batch.BuildOptions{Codec: batch.CodecZstd})), C(kerr.UnsupportedCompressionType)),
		codes("version: zstd batch in Produce v6", produceReq(6, -1, tVictim, 0, mustBuild(t, biRecords(1, "z"), batch.BuildOptions{Codec: batch.CodecZstd})), C(kerr.UnsupportedCompressionType)),
	)

	// Compression bombs: one record of 200 MiB of zeros. Refused, and the
	// broker never allocates more than its decompression cap allows.
	for _, codec := range []batch.Codec{batch.CodecGzip, batch.CodecLZ4, batch.CodecZstd, batch.CodecSnappy} {
		bomb := compressionBomb(t, codec)
		// Decompression may allocate up to ~2.6x its cap (a buffer doubling
		// up to the cap), never in proportion to the 200 MiB claimed.
		limit := uint64(batch.DefaultLimits.Allowed(len(bomb) - 61))
		bound := 3*limit + 3*uint64(len(bomb)) + 16<<20
		if codec == batch.CodecSnappy {
			// ~21:1 at best, so 200 MiB needs ~10 MiB: over the default
			// max.message.bytes; on topic big the xerial chunk lengths
			// are summed against the cap before anything is decompressed.
			bound = 3*uint64(len(bomb)) + 16<<20
			c := codes(fmt.Sprintf("bomb: snappy, %d KiB for 200 MiB, default topic", len(bomb)>>10), prod(bomb), C(kerr.MessageTooLarge))
			c.allocMax = bound
			add(c)
			c = codes(fmt.Sprintf("bomb: snappy, %d KiB for 200 MiB, 16 MiB max.message.bytes", len(bomb)>>10), produceReq(9, -1, tBig, 0, bomb), invalidRecord)
			c.allocMax = bound
			c.after = func() error { return emptyTopic(b, tBig) }
			add(c)
			continue
		}
		c := codes(fmt.Sprintf("bomb: %s, %d KiB for 200 MiB", codec, len(bomb)>>10), prod(bomb), invalidRecord)
		c.allocMax = min(bound, bombSize-1)
		add(c)
	}

	// ---- Produce: request-level and routing errors.
	add(
		codes("produce: acks=2", produceReq(9, 2, tVictim, 0, good), C(kerr.InvalidRequiredAcks)),
		codes("produce: acks=-2", produceReq(9, -2, tVictim, 0, good), C(kerr.InvalidRequiredAcks)),
		codes("produce: acks=32767 to an unknown partition", produceReq(9, 32767, tVictim, 7, good), C(kerr.InvalidRequiredAcks)),
		codes("produce: transactional id", func() kmsg.Request { r := prod(good); r.TransactionID = biStr("tx"); return r }(), C(kerr.TransactionalIDAuthorizationFailed)),
		codes("produce: partition -1", produceReq(9, -1, tVictim, -1, good), C(kerr.UnknownTopicOrPartition)),
		codes("produce: partition 1 (one past the last)", produceReq(9, -1, tVictim, 1, good), C(kerr.UnknownTopicOrPartition)),
		codes("produce: partition MaxInt32", produceReq(3, -1, tVictim, math.MaxInt32, good), C(kerr.UnknownTopicOrPartition)),
		codes("produce: partition MinInt32", produceReq(11, -1, tVictim, math.MinInt32, good), C(kerr.UnknownTopicOrPartition)),
		codes("produce: unknown topic", produceReq(9, -1, "no-such-topic", 0, good), C(kerr.UnknownTopicOrPartition)),
		codes("produce: topic name with '/'", produceReq(9, -1, "../victim", 0, good), C(kerr.UnknownTopicOrPartition)),
		codes("produce: empty topic name", produceReq(9, -1, "", 0, good), C(kerr.UnknownTopicOrPartition)),
	)
	{
		r := prod(good)
		r.Topics[0].Partitions = append(r.Topics[0].Partitions, r.Topics[0].Partitions[0])
		r.Topics[0].Partitions[0].Records = edited(good, func(c []byte) { c[biOffCRC] ^= 1 })
		r.Topics[0].Partitions[1].Partition = 3
		add(codes("produce: corrupt batch and unknown partition in one request", r, corrupt, C(kerr.UnknownTopicOrPartition)))
	}
	// acks=0: a refused produce closes the connection, as Kafka does, since
	// there is no response to carry the error.
	add(
		closed("produce acks=0: corrupt batch closes the connection", encodeReq(produceReq(9, 0, tVictim, 0, edited(good, func(c []byte) { c[biOffCRC] ^= 1 })))),
		closed("produce acks=0: unknown partition closes the connection", encodeReq(produceReq(9, 0, tVictim, 9, good))),
		closed("produce acks=0: transactional id closes the connection", encodeReq(func() kmsg.Request {
			r := produceReq(9, 0, tVictim, 0, good)
			r.TransactionID = biStr("tx")
			return r
		}())),
	)

	// ---- Idempotent producer sequence checks against the stored batch
	// (producer pid, epoch 1, sequences 0-2).
	idem := func(epoch int16, seq int32, id int64) []byte {
		return mustBuild(t, biRecords(3, "idem"), batch.BuildOptions{Producer: &batch.ProducerInfo{ID: id, Epoch: epoch, BaseSequence: seq}})
	}
	idemProd := func(bt []byte) *kmsg.ProduceRequest { return produceReq(9, -1, tIdem, 0, bt) }
	idemHW := func() error {
		if hw := b.reg.get(tIdem).parts[0].Partition().HighWatermark(); hw != 3 {
			return fmt.Errorf("topic %s has %d records, want 3", tIdem, hw)
		}
		return nil
	}
	add(
		withAfter(codes("idempotent: sequence gap (7 after 2)", idemProd(idem(1, 7, pid)), C(kerr.OutOfOrderSequenceNumber)), idemHW),
		withAfter(codes("idempotent: overlapping retry (1-3 after 0-2)", idemProd(idem(1, 1, pid)), C(kerr.OutOfOrderSequenceNumber)), idemHW),
		withAfter(codes("idempotent: old epoch", idemProd(idem(0, 3, pid)), C(kerr.InvalidProducerEpoch)), idemHW),
		withAfter(codes("idempotent: new epoch not starting at 0", idemProd(idem(2, 5, pid)), C(kerr.OutOfOrderSequenceNumber)), idemHW),
		withAfter(codes("idempotent: unknown producer id mid-sequence", idemProd(idem(1, 3, pid+1000)), C(kerr.UnknownProducerID)), idemHW),
		withAfter(withCheck(codes("idempotent: duplicate of the stored batch is answered, not stored", idemProd(idemBatch), 0), func(r kmsg.Response) error {
			if off := r.(*kmsg.ProduceResponse).Topics[0].Partitions[0].BaseOffset; off != 0 {
				return fmt.Errorf("duplicate answered with base offset %d, want the original 0", off)
			}
			return nil
		}), idemHW),
	)

	// ---- Fetch.
	none := [16]byte{}
	fc := func(name string, r *kmsg.FetchRequest, want ...int16) badCase { return codes(name, r, want...) }
	oor := C(kerr.OffsetOutOfRange)
	unk := C(kerr.UnknownTopicOrPartition)
	hw0 := int64(9) // topic good partition 0 holds 3+4+2 records
	add(
		fc("fetch: partition -1", fetchReq(11, tGood, none, fetchPart{-1, 0}), 0, unk),
		fc("fetch: partition MaxInt32", fetchReq(4, tGood, none, fetchPart{math.MaxInt32, 0}), 0, unk),
		fc("fetch: partition MinInt32", fetchReq(12, tGood, none, fetchPart{math.MinInt32, 0}), 0, unk),
		fc("fetch: unknown topic", fetchReq(12, "no-such-topic", none, fetchPart{0, 0}), 0, unk),
		fc("fetch: invalid topic name", fetchReq(12, "a/b", none, fetchPart{0, 0}), 0, unk),
		fc("fetch v13: unknown topic id", fetchReq(13, "", [16]byte{1, 2, 3}, fetchPart{0, 0}), 0, C(kerr.UnknownTopicID)),
		fc("fetch v16: known topic id, partition 5", fetchReq(16, "", goodID, fetchPart{5, 0}), 0, unk),
		fc("fetch: offset -1", fetchReq(11, tGood, none, fetchPart{0, -1}), 0, oor),
		fc("fetch: offset MinInt64", fetchReq(11, tGood, none, fetchPart{0, math.MinInt64}), 0, oor),
		fc("fetch: offset MaxInt64", fetchReq(11, tGood, none, fetchPart{0, math.MaxInt64}), 0, oor),
		fc("fetch: offset one past the high watermark", fetchReq(7, tGood, none, fetchPart{0, hw0 + 1}), 0, oor),
		fc("fetch: offset below the log start", fetchReq(11, tTrimmed, none, fetchPart{0, 1}), 0, oor),
		withCheck(fc("fetch: a good and a bad partition answer at once", fetchReq(11, tGood, none, fetchPart{0, 0}, fetchPart{9, 0}), 0, 0, unk), func(r kmsg.Response) error {
			if len(r.(*kmsg.FetchResponse).Topics[0].Partitions[0].RecordBatches) == 0 {
				return errors.New("the good partition returned no records")
			}
			return nil
		}),
		withCheck(fc("fetch: offset at the high watermark is empty, not an error", fetchReq(11, tGood, none, fetchPart{0, hw0}), 0, 0), func(r kmsg.Response) error {
			if p := r.(*kmsg.FetchResponse).Topics[0].Partitions[0]; len(p.RecordBatches) != 0 || p.HighWatermark != hw0 {
				return fmt.Errorf("%d bytes, high watermark %d", len(p.RecordBatches), p.HighWatermark)
			}
			return nil
		}),
		fc("fetch: nonzero session id", func() *kmsg.FetchRequest {
			r := fetchReq(11, tGood, none, fetchPart{0, 0})
			r.SessionID, r.SessionEpoch = 42, 1
			return r
		}(), C(kerr.FetchSessionIDNotFound)),
		fc("fetch: session id -1", func() *kmsg.FetchRequest {
			r := fetchReq(7, tGood, none, fetchPart{0, 0})
			r.SessionID = -1
			return r
		}(), C(kerr.FetchSessionIDNotFound)),
		withCheck(fc("fetch: negative max wait, huge min bytes answers at once", func() *kmsg.FetchRequest {
			r := fetchReq(11, tGood, none, fetchPart{0, hw0})
			r.MaxWaitMillis, r.MinBytes = -1, math.MaxInt32
			return r
		}(), 0, 0), nil),
		withCheck(fc("fetch: negative partition max bytes still returns one batch", func() *kmsg.FetchRequest {
			r := fetchReq(11, tGood, none, fetchPart{0, 0})
			r.Topics[0].Partitions[0].PartitionMaxBytes = -1
			return r
		}(), 0, 0), func(r kmsg.Response) error {
			if len(r.(*kmsg.FetchResponse).Topics[0].Partitions[0].RecordBatches) == 0 {
				return errors.New("no batch returned")
			}
			return nil
		}),
	)

	// ---- ListOffsets.
	add(
		codes("list offsets: partition -1", listOffsetsReq(7, tGood, -1, -1), unk),
		codes("list offsets: partition MaxInt32", listOffsetsReq(1, tGood, math.MaxInt32, -2), unk),
		codes("list offsets: unknown topic", listOffsetsReq(8, "no-such-topic", 0, -1), unk),
		codes("list offsets: timestamp -7", listOffsetsReq(8, tGood, 0, -7), C(kerr.InvalidRequest)),
		codes("list offsets: timestamp MinInt64", listOffsetsReq(5, tGood, 0, math.MinInt64), C(kerr.InvalidRequest)),
		withCheck(codes("list offsets v8: -4 (earliest local) is the log start", listOffsetsReq(8, tTrimmed, 0, -4), 0), wantOffset(3)),
		withCheck(codes("list offsets: timestamp after every record", listOffsetsReq(4, tGood, 0, math.MaxInt64), 0), wantOffset(-1)),
	)

	// ---- DeleteRecords (topic trimmed: offsets [3, 5)).
	add(
		codes("delete records: beyond the high watermark", deleteRecordsReq(2, tTrimmed, 0, 6), oor),
		codes("delete records: offset MaxInt64", deleteRecordsReq(1, tTrimmed, 0, math.MaxInt64), oor),
		codes("delete records: offset -2", deleteRecordsReq(0, tTrimmed, 0, -2), oor),
		codes("delete records: offset MinInt64", deleteRecordsReq(2, tTrimmed, 0, math.MinInt64), oor),
		codes("delete records: partition -1", deleteRecordsReq(2, tTrimmed, -1, 0), unk),
		codes("delete records: partition MaxInt32", deleteRecordsReq(2, tTrimmed, math.MaxInt32, 0), unk),
		codes("delete records: unknown topic", deleteRecordsReq(2, "no-such-topic", 0, 0), unk),
		withCheck(codes("delete records: below the low watermark is a no-op", deleteRecordsReq(2, tTrimmed, 0, 1), 0), func(r kmsg.Response) error {
			if lw := r.(*kmsg.DeleteRecordsResponse).Topics[0].Partitions[0].LowWatermark; lw != 3 {
				return fmt.Errorf("low watermark %d, want 3", lw)
			}
			return nil
		}),
	)

	// ---- CreateTopics (v7 unless noted). Names are never created.
	invTopic, invParts, invRF, invCfg := C(kerr.InvalidTopicException), C(kerr.InvalidPartitions), C(kerr.InvalidReplicationFactor), C(kerr.InvalidConfig)
	ct := func(name string, topic kmsg.CreateTopicsRequestTopic, want int16) badCase {
		return codes("create topics: "+name, createTopicReq(7, false, topic), want)
	}
	for _, n := range []struct{ why, name string }{
		{"empty name", ""}, {"name '.'", "."}, {"name '..'", ".."}, {"250 characters", strings.Repeat("a", 250)},
		{"name with '/'", "a/b"}, {"name with a space", "a b"}, {"unicode name", "tópico"}, {"name with NUL", "a\x00b"},
		{"name '../../etc'", "../../etc"}, {"name with a newline", "a\nb"},
	} {
		add(ct(n.why, newTopic(n.name, 1, 1), invTopic))
	}
	add(
		ct("0 partitions", newTopic("p0", 0, 1), invParts),
		ct("-5 partitions", newTopic("p-5", -5, 1), invParts),
		ct("100001 partitions", newTopic("p100001", 100001, 1), invParts),
		ct("MaxInt32 partitions", newTopic("pmax", math.MaxInt32, 1), invParts),
		ct("replication factor 0", newTopic("rf0", 1, 0), invRF),
		ct("replication factor 3 on one node", newTopic("rf3", 1, 3), invRF),
		ct("replication factor -2", newTopic("rfm2", 1, -2), invRF),
		ct("unknown config", newTopic("cfg1", 1, 1, kv("retention.mss", biStr("1"))), invCfg),
		ct("bad config value", newTopic("cfg2", 1, 1, kv("retention.ms", biStr("soon"))), invCfg),
		ct("null config value", newTopic("cfg3", 1, 1, kv("retention.ms", nil)), invCfg),
		ct("segment.bytes below the minimum", newTopic("cfg4", 1, 1, kv("segment.bytes", biStr("10"))), invCfg),
		ct("max.message.bytes -1", newTopic("cfg5", 1, 1, kv("max.message.bytes", biStr("-1"))), invCfg),
		ct("cleanup.policy=archive (no such policy)", newTopic("cfg6", 1, 1, kv("cleanup.policy", biStr("archive"))), invCfg),
		ct("retention.ms overflowing int64", newTopic("cfg7", 1, 1, kv("retention.ms", biStr("99999999999999999999"))), invCfg),
		ct("existing topic", newTopic(tGood, 1, 1), C(kerr.TopicAlreadyExists)),
		codes("create topics: validate-only existing topic", createTopicReq(7, true, newTopic(tGood, 1, 1)), C(kerr.TopicAlreadyExists)),
		codes("create topics: duplicate name in one request", createTopicReq(7, false, newTopic("dup", 1, 1), newTopic("dup", 1, 1)), C(kerr.InvalidRequest), C(kerr.InvalidRequest)),
		codes("create topics v2: bad and good (validate only) in one request", createTopicReq(2, true, newTopic("ok-validate", 1, 1), newTopic("bad name", 1, 1)), 0, invTopic),
		codes("create topics: 249 characters, validate only", createTopicReq(5, true, newTopic(strings.Repeat("b", 249), 1, 1)), 0),
	)
	assign := func(name string, parts ...[]int32) kmsg.CreateTopicsRequestTopic {
		t := newTopic(name, -1, -1)
		for i, reps := range parts {
			a := kmsg.NewCreateTopicsRequestTopicReplicaAssignment()
			a.Partition, a.Replicas = int32(i), reps
			t.ReplicaAssignment = append(t.ReplicaAssignment, a)
		}
		return t
	}
	add(
		ct("replica assignment on broker 7", assign("ra1", []int32{7}), C(kerr.InvalidReplicaAssignment)),
		ct("replica assignment with two replicas", assign("ra2", []int32{1, 1}), C(kerr.InvalidReplicaAssignment)),
		ct("replica assignment with a partition count too", func() kmsg.CreateTopicsRequestTopic {
			t := assign("ra3", []int32{1})
			t.NumPartitions = 1
			return t
		}(), C(kerr.InvalidRequest)),
		ct("replica assignment for partition 5 only", func() kmsg.CreateTopicsRequestTopic {
			t := assign("ra4", []int32{1})
			t.ReplicaAssignment[0].Partition = 5
			return t
		}(), C(kerr.InvalidReplicaAssignment)),
		ct("replica assignment for partition 0 twice", func() kmsg.CreateTopicsRequestTopic {
			t := assign("ra5", []int32{1}, []int32{1})
			t.ReplicaAssignment[1].Partition = 0
			return t
		}(), C(kerr.InvalidReplicaAssignment)),
	)
	// A 249-character name is legal; creating and deleting it must leave no
	// directory behind (its tombstone name must fit NAME_MAX).
	long := strings.Repeat("c", 249)
	add(withAfter(codes("create topics: 249 characters is legal", createTopicReq(7, false, newTopic(long, 2, 1)), 0), func() error {
		dt := kmsg.NewPtrDeleteTopicsRequest()
		dt.SetVersion(4)
		dt.TopicNames = []string{long}
		resp, err := h.roundTrip(dt)
		if err != nil {
			return err
		}
		if c := errorCodes(resp); !reflect.DeepEqual(c, []int16{0}) {
			return fmt.Errorf("deleting it: codes %v", c)
		}
		ents, _ := os.ReadDir(filepath.Join(b.cfg.DataDir, "topics"))
		for _, e := range ents {
			if strings.Contains(e.Name(), long) || strings.HasSuffix(e.Name(), ".deleted") {
				return fmt.Errorf("directory %s left behind after deleting the topic", e.Name())
			}
		}
		return nil
	}))

	// ---- CreatePartitions (topic good has 2).
	add(
		codes("create partitions: shrink 2 to 1", createPartitionsReq(tGood, 1, false), invParts),
		codes("create partitions: same count", createPartitionsReq(tGood, 2, false), invParts),
		codes("create partitions: -1", createPartitionsReq(tGood, -1, false), invParts),
		codes("create partitions: 10001", createPartitionsReq(tGood, 10001, false), invParts),
		codes("create partitions: shrink, validate only", createPartitionsReq(tGood, 0, true), invParts),
		codes("create partitions: unknown topic", createPartitionsReq("no-such-topic", 3, false), unk),
	)

	// ---- DescribeConfigs.
	add(
		codes("describe configs: unknown resource type 99", describeConfigsReq(99, tGood), C(kerr.InvalidRequest)),
		codes("describe configs: resource type 0 (unknown)", describeConfigsReq(0, tGood), C(kerr.InvalidRequest)),
		codes("describe configs: group resource with an empty group id", describeConfigsReq(kmsg.ConfigResourceTypeGroupConfig, ""), C(kerr.InvalidGroupID)),
		codes("describe configs: client metrics resource (not supported)", describeConfigsReq(kmsg.ConfigResourceType(16), "x"), C(kerr.InvalidRequest)),
		codes("alter configs: unknown group config", alterConfigsReq(kmsg.ConfigResourceTypeGroupConfig, "g", kmsg.IncrementalAlterConfigOpSet, "no.such.config", biStr("1")), C(kerr.InvalidConfig)),
		codes("alter configs: APPEND to a group config", alterConfigsReq(kmsg.ConfigResourceTypeGroupConfig, "g", kmsg.IncrementalAlterConfigOpAppend, "share.key.ordering", biStr("true")), C(kerr.InvalidConfig)),
		codes("alter configs: share.delivery.count.limit=0", alterConfigsReq(kmsg.ConfigResourceTypeGroupConfig, "g", kmsg.IncrementalAlterConfigOpSet, "share.delivery.count.limit", biStr("0")), C(kerr.InvalidConfig)),
		codes("describe configs: broker logger resource", describeConfigsReq(kmsg.ConfigResourceTypeBrokerLogger, "1"), C(kerr.InvalidRequest)),
		codes("describe configs: unknown topic", describeConfigsReq(kmsg.ConfigResourceTypeTopic, "no-such-topic"), unk),
		codes("describe configs: invalid topic name", describeConfigsReq(kmsg.ConfigResourceTypeTopic, "a/b"), invTopic),
		codes("describe configs: another broker", describeConfigsReq(kmsg.ConfigResourceTypeBroker, "2"), C(kerr.InvalidRequest)),
		codes("describe configs: broker id not a number", describeConfigsReq(kmsg.ConfigResourceTypeBroker, "one"), C(kerr.InvalidRequest)),
	)

	// ---- IncrementalAlterConfigs (topic cfg; its overrides must stay empty).
	set := kmsg.IncrementalAlterConfigOpSet
	tt := kmsg.ConfigResourceTypeTopic
	add(
		codes("alter configs: operation 7", alterConfigsReq(tt, tCfg, 7, "retention.ms", biStr("1000")), C(kerr.InvalidRequest)),
		codes("alter configs: operation -1", alterConfigsReq(tt, tCfg, -1, "retention.ms", biStr("1000")), C(kerr.InvalidRequest)),
		codes("alter configs: unknown config", alterConfigsReq(tt, tCfg, set, "retention.mss", biStr("1000")), invCfg),
		codes("alter configs: SET with a null value", alterConfigsReq(tt, tCfg, set, "retention.ms", nil), invCfg),
		codes("alter configs: bad value", alterConfigsReq(tt, tCfg, set, "retention.ms", biStr("-5")), invCfg),
		codes("alter configs: cleanup.policy bogus", alterConfigsReq(tt, tCfg, set, "cleanup.policy", biStr("bogus")), invCfg),
		codes("alter configs: APPEND to a non-list config", alterConfigsReq(tt, tCfg, kmsg.IncrementalAlterConfigOpAppend, "retention.ms", biStr("1")), invCfg),
		codes("alter configs: APPEND archive to cleanup.policy", alterConfigsReq(tt, tCfg, kmsg.IncrementalAlterConfigOpAppend, "cleanup.policy", biStr("archive")), invCfg),
		codes("alter configs: unknown topic", alterConfigsReq(tt, "no-such-topic", set, "retention.ms", biStr("1000")), unk),
		codes("alter configs: invalid topic name", alterConfigsReq(tt, "a b", set, "retention.ms", biStr("1000")), invTopic),
		codes("alter configs: broker resource (static)", alterConfigsReq(kmsg.ConfigResourceTypeBroker, "1", set, "log.retention.ms", biStr("1")), C(kerr.InvalidRequest)),
		codes("alter configs: resource type 99", alterConfigsReq(99, tCfg, set, "retention.ms", biStr("1")), C(kerr.InvalidRequest)),
	)

	// ---- Metadata, DeleteTopics, InitProducerId, DescribeCluster. A
	// MetadataResponse ends with a top-level error code (a v13 field; zero
	// at older versions), hence the trailing 0.
	add(
		codes("metadata: empty topic name with auto-create", metadataReq(9, true, biStr("")), invTopic, 0),
		codes("metadata: name '..' with auto-create", metadataReq(12, true, biStr("..")), invTopic, 0),
		codes("metadata: 250 characters with auto-create", metadataReq(4, true, biStr(strings.Repeat("m", 250))), invTopic, 0),
		codes("metadata: unicode name with auto-create", metadataReq(1, false, biStr("tópico")), invTopic, 0),
		codes("metadata: unknown topic without auto-create", metadataReq(12, false, biStr("no-such-topic")), unk, 0),
		codes("metadata v12: unknown topic id", func() kmsg.Request {
			r := metadataReq(12, false)
			mt := kmsg.NewMetadataRequestTopic()
			mt.TopicID = [16]byte{9, 9, 9}
			r.Topics = append(r.Topics, mt)
			return r
		}(), C(kerr.UnknownTopicID), 0),
	)
	dtReq := func(v int16, names []string, id [16]byte) kmsg.Request {
		r := kmsg.NewPtrDeleteTopicsRequest()
		r.SetVersion(v)
		r.TimeoutMillis = 5000
		if v < 6 {
			r.TopicNames = names
		} else {
			t := kmsg.NewDeleteTopicsRequestTopic()
			t.TopicID = id
			r.Topics = append(r.Topics, t)
		}
		return r
	}
	add(
		codes("delete topics: unknown topic", dtReq(4, []string{"no-such-topic"}, none), unk),
		codes("delete topics: invalid name", dtReq(1, []string{"a/../b"}, none), unk),
		codes("delete topics v6: unknown topic id", dtReq(6, nil, [16]byte{7}), C(kerr.UnknownTopicID)),
	)
	ip := func(txn *string, id int64, epoch int16) kmsg.Request {
		r := kmsg.NewPtrInitProducerIDRequest()
		r.SetVersion(4)
		r.TransactionalID, r.ProducerID, r.ProducerEpoch, r.TransactionTimeoutMillis = txn, id, epoch, 60000
		return r
	}
	add(
		codes("init producer id: transactional id", ip(biStr("txn-1"), -1, -1), C(kerr.TransactionalIDAuthorizationFailed)),
		withCheck(codes("init producer id: exhausted epoch gets a new id", ip(nil, pid, math.MaxInt16), 0), func(r kmsg.Response) error {
			if rr := r.(*kmsg.InitProducerIDResponse); rr.ProducerID == pid || rr.ProducerID < 0 || rr.ProducerEpoch != 0 {
				return fmt.Errorf("got id %d epoch %d, want a new id at epoch 0", rr.ProducerID, rr.ProducerEpoch)
			}
			return nil
		}),
	)
	dc := func(v int16, endpoint int8) kmsg.Request {
		r := kmsg.NewPtrDescribeClusterRequest()
		r.SetVersion(v)
		r.EndpointType = endpoint
		return r
	}
	add(
		codes("describe cluster: controller endpoint type on a broker", dc(1, 2), C(kerr.MismatchedEndpointType)),
		codes("describe cluster: endpoint type 0", dc(1, 0), C(kerr.UnsupportedEndpointType)),
		codes("describe cluster: endpoint type -1", dc(1, -1), C(kerr.UnsupportedEndpointType)),
		codes("describe cluster: endpoint type 9", dc(1, 9), C(kerr.UnsupportedEndpointType)),
	)
	return cs
}

func withCheck(c badCase, f func(kmsg.Response) error) badCase { c.check = f; return c }
func withAfter(c badCase, f func() error) badCase              { c.after = f; return c }

func wantOffset(off int64) func(kmsg.Response) error {
	return func(r kmsg.Response) error {
		if got := r.(*kmsg.ListOffsetsResponse).Topics[0].Partitions[0].Offset; got != off {
			return fmt.Errorf("offset %d, want %d", got, off)
		}
		return nil
	}
}

func emptyTopic(b *Broker, name string) error {
	if hw := b.reg.get(name).parts[0].Partition().HighWatermark(); hw != 0 {
		return fmt.Errorf("topic %s holds %d records", name, hw)
	}
	return nil
}

// ---------------------------------------------------------------------------
// FuzzBrokerRequest.

// FuzzBrokerRequest sends arbitrary bytes as one request frame to a running
// broker and checks only that it never panics (a panic in any broker
// goroutine kills the fuzzing process) or hangs, and keeps answering
// ApiVersions. One broker serves each fuzzing process.
func FuzzBrokerRequest(f *testing.F) {
	cfg := config.Default()
	cfg.DataDir, cfg.KafkaAddr, cfg.HTTPAddr, cfg.RaftAddr = f.TempDir(), "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0"
	cfg.FetchMaxWaitMax = 50 * time.Millisecond
	cfg.RaftHeartbeatTimeout = 100 * time.Millisecond
	cfg.AutoCreateTopics = false
	b, err := New(cfg, zerolog.Nop())
	if err != nil {
		f.Fatal(err)
	}
	if err := b.Start(); err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { b.Shutdown(context.Background()) })
	waitUntil(f, "broker ready", b.Ready)
	if _, err := b.reg.create("fz", 2, 1, nil, nil, false); err != nil {
		f.Fatal(err)
	}
	waitLeaders(f, b, "fz")
	h := &badHarness{b: b, addr: b.KafkaAddr()}
	probe := encodeReq(apiVersionsReq(3))
	f.Fuzz(func(t *testing.T, in []byte) {
		if len(in) >= 2 {
			switch int16(binary.BigEndian.Uint16(in)) {
			case 19, 37:
				// CreateTopics and CreatePartitions may ask for 10000
				// partitions, each a directory and open files: that
				// measures the disk, not the broker's input handling, and
				// TestBadInput covers their semantics.
				return
			}
		}
		c, err := h.dial()
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		// The frame, then an ApiVersions request on the same connection:
		// responses come in order, so reading up to the probe's answer (or
		// the close) sees whatever the frame caused, without a timeout.
		out := append(sized(in), probe...)
		if _, err := c.Write(out); err != nil && !errors.Is(err, syscall.ECONNRESET) && !errors.Is(err, syscall.EPIPE) {
			t.Fatal(err)
		}
		for {
			fr, err := readRespFrame(c)
			if err != nil {
				if isTimeout(err) {
					t.Fatalf("no response and no close within 10s: %v", err)
				}
				break // closed: a refused frame
			}
			if _, err := decodeResp(apiVersionsReq(3), fr); err == nil {
				break
			}
		}
		if err := h.stillServing(); err != nil {
			t.Fatal(err)
		}
	})
}
