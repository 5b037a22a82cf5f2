package batch

import (
	"fmt"
)

// Record is one record of a batch. Key, Value and header values alias the
// batch bytes (or the buffer they were decompressed into): they stay valid
// as long as the caller keeps them, but change if the batch bytes are
// modified. They are capacity-limited, so appending to them copies.
type Record struct {
	// Attributes is the record attributes byte; Kafka defines no bits yet.
	Attributes int8
	// TimestampDelta is the record timestamp minus the batch
	// BaseTimestamp (see Header.RecordTimestamp).
	TimestampDelta int64
	// OffsetDelta is the record offset minus the batch BaseOffset (see
	// Header.RecordOffset).
	OffsetDelta int32
	// Key is the record key, nil for a null key (distinct from empty).
	Key []byte
	// Value is the record value, nil for a null value (a tombstone).
	Value []byte
	// Headers are the record headers, in wire order.
	Headers []RecordHeader
}

// RecordHeader is one key/value header of a record. Kafka header keys are
// non-null strings; values may be null.
type RecordHeader struct {
	// Key is the header key.
	Key string
	// Value is the header value, nil for null.
	Value []byte
}

// minRecordBody is the smallest possible record body after the length:
// attributes, and one byte each for timestampDelta, offsetDelta, keyLength,
// valueLength and headerCount.
const minRecordBody = 6

// Records calls fn for every record of the batch b (exactly one whole
// batch), decompressing it first within limits if needed. It checks the
// framing (length, magic, header fields, exact record count, record
// structure, increasing offset deltas within lastOffsetDelta) but not the
// CRC: call Validate first on untrusted bytes. It never panics, whatever b
// holds. An error returned by fn stops the iteration and is returned as is.
func Records(b []byte, limits Limits, fn func(Record) error) error {
	h, err := parseBatch(b)
	if err != nil {
		return err
	}
	data := b[HeaderSize:]
	if c := h.Codec(); c != CodecNone {
		if data, err = Decompress(c, data, limits); err != nil {
			return err
		}
	}
	return walkRecords(data, &h, false, fn)
}

// parseBatch parses and sanity-checks the header of b and checks that b is
// exactly one batch long.
func parseBatch(b []byte) (Header, error) {
	h, err := ParseHeader(b)
	if err != nil {
		return h, err
	}
	if n := int64(h.BatchLength) + LengthFieldEnd; n != int64(len(b)) {
		return h, fmt.Errorf("%w: batchLength says %d bytes, have %d", ErrLengthMismatch, n, len(b))
	}
	return h, nil
}

// walkRecords parses exactly h.RecordCount records filling data. With
// strict, record i must have offsetDelta i; otherwise offset deltas must
// increase and stay within [0, lastOffsetDelta] (compacted batches). fn may
// be nil to check structure only, in which case nothing is allocated.
func walkRecords(data []byte, h *Header, strict bool, fn func(Record) error) error {
	var rec Record
	prev := int64(-1)
	for i := int32(0); i < h.RecordCount; i++ {
		if len(data) == 0 {
			return fmt.Errorf("%w: recordCount is %d but the records end after %d", ErrRecordCount, h.RecordCount, i)
		}
		n, err := parseRecord(data, &rec, fn != nil)
		if err != nil {
			return fmt.Errorf("%w (record %d)", err, i)
		}
		if strict {
			if rec.OffsetDelta != i {
				return fmt.Errorf("%w: record %d has offsetDelta %d", ErrBadOffsetDelta, i, rec.OffsetDelta)
			}
		} else if int64(rec.OffsetDelta) <= prev || rec.OffsetDelta > h.LastOffsetDelta {
			return fmt.Errorf("%w: record %d has offsetDelta %d after %d (lastOffsetDelta %d)",
				ErrBadOffsetDelta, i, rec.OffsetDelta, prev, h.LastOffsetDelta)
		}
		prev = int64(rec.OffsetDelta)
		data = data[n:]
		if fn != nil {
			if err := fn(rec); err != nil {
				return err
			}
		}
	}
	if len(data) != 0 {
		return fmt.Errorf("%w: %d bytes follow the last of %d records", ErrRecordCount, len(data), h.RecordCount)
	}
	return nil
}

// parseRecord decodes the record at the start of data into rec and returns
// its encoded size. Only with materialize are header slices and strings
// allocated; otherwise rec.Headers is left nil and the headers are just
// checked. Every length is checked against the bytes present before use.
func parseRecord(data []byte, rec *Record, materialize bool) (int, error) {
	length, n := readVarint(data)
	if n <= 0 {
		return 0, badVarint("record length", n)
	}
	if length < minRecordBody || int64(length) > int64(len(data)-n) {
		return 0, fmt.Errorf("%w: record length %d with %d bytes left", ErrBadRecord, length, len(data)-n)
	}
	body := data[n : n+int(length)]
	rec.Attributes = int8(body[0])
	p := 1
	var k int
	if rec.TimestampDelta, k = readVarlong(body[p:]); k <= 0 {
		return 0, badVarint("timestampDelta", k)
	}
	p += k
	if rec.OffsetDelta, k = readVarint(body[p:]); k <= 0 {
		return 0, badVarint("offsetDelta", k)
	}
	p += k
	var err error
	if rec.Key, p, err = readNullableBytes(body, p, "key"); err != nil {
		return 0, err
	}
	if rec.Value, p, err = readNullableBytes(body, p, "value"); err != nil {
		return 0, err
	}
	count, k := readVarint(body[p:])
	if k <= 0 {
		return 0, badVarint("header count", k)
	}
	p += k
	// Each header takes at least two bytes (two one-byte lengths), which
	// bounds the count by the bytes actually present before allocating.
	if count < 0 || int(count) > (len(body)-p)/2 {
		return 0, fmt.Errorf("%w: header count %d with %d bytes left", ErrBadRecord, count, len(body)-p)
	}
	rec.Headers = nil
	if materialize && count > 0 {
		rec.Headers = make([]RecordHeader, count)
	}
	for j := 0; j < int(count); j++ {
		klen, k := readVarint(body[p:])
		if k <= 0 {
			return 0, badVarint("header key length", k)
		}
		p += k
		if klen < 0 || int(klen) > len(body)-p {
			return 0, fmt.Errorf("%w: header %d key length %d with %d bytes left", ErrBadRecord, j, klen, len(body)-p)
		}
		key := body[p : p+int(klen)]
		p += int(klen)
		var val []byte
		if val, p, err = readNullableBytes(body, p, "header value"); err != nil {
			return 0, err
		}
		if materialize {
			rec.Headers[j] = RecordHeader{Key: string(key), Value: val}
		}
	}
	if p != len(body) {
		return 0, fmt.Errorf("%w: %d unused bytes at the end of the record", ErrBadRecord, len(body)-p)
	}
	return n + int(length), nil
}

// readNullableBytes reads a varint length (-1 for null) and that many bytes
// from body at p, returning the bytes and the new position.
func readNullableBytes(body []byte, p int, what string) ([]byte, int, error) {
	l, k := readVarint(body[p:])
	if k <= 0 {
		return nil, 0, badVarint(what+" length", k)
	}
	p += k
	if l == -1 {
		return nil, p, nil
	}
	if l < -1 || int(l) > len(body)-p {
		return nil, 0, fmt.Errorf("%w: %s length %d with %d bytes left", ErrBadRecord, what, l, len(body)-p)
	}
	end := p + int(l)
	return body[p:end:end], end, nil
}

// badVarint describes a varint read failure (n from readVarint/readVarlong).
func badVarint(what string, n int) error {
	if n == 0 {
		return fmt.Errorf("%w: %s varint truncated", ErrBadRecord, what)
	}
	return fmt.Errorf("%w: %s varint too long", ErrBadRecord, what)
}
