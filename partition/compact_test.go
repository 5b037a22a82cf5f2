package partition

import (
	"errors"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/sluicemq/sluice/log/batch"
)

// TestCompactedTopicRefusesKeylessRecords: a topic whose policy includes
// compact refuses a batch holding any record without a key with
// INVALID_RECORD, as Kafka does, compressed or not; delete alone takes it.
func TestCompactedTopicRefusesKeylessRecords(t *testing.T) {
	mixed := []batch.Record{{Key: []byte("k"), Value: []byte("v")}, {Value: []byte("no key")}}
	for _, tc := range []struct {
		policy CleanupPolicy
		codec  batch.Codec
		want   error
	}{
		{CleanupCompact, batch.CodecNone, kerr.InvalidRecord},
		{CleanupCompactDelete, batch.CodecZstd, kerr.InvalidRecord},
		{CleanupCompact, batch.CodecLZ4, kerr.InvalidRecord},
		{CleanupDelete, batch.CodecNone, nil},
	} {
		cfg := defaultConfig()
		cfg.CleanupPolicy = tc.policy
		f := newFixture(t, cfg)
		b, err := batch.Build(mixed, batch.BuildOptions{Codec: tc.codec})
		if err != nil {
			t.Fatal(err)
		}
		_, err = f.produce(b)
		if !errors.Is(err, tc.want) || (tc.want == nil) != (err == nil) {
			t.Fatalf("policy %d, %v: err %v, want %v", tc.policy, tc.codec, err, tc.want)
		}
		if kerr.InvalidRecord.Code != 87 {
			t.Fatalf("INVALID_RECORD is %d", kerr.InvalidRecord.Code)
		}
		// Keyed records are taken.
		keyed, _ := batch.Build(mixed[:1], batch.BuildOptions{Codec: tc.codec})
		if _, err := f.produce(keyed); err != nil {
			t.Fatalf("keyed batch: %v", err)
		}
		f.p.Close()
	}
}

// TestPartitionCompact: Compact cleans committed records by the topic's
// settings; compact alone never deletes by retention, and delete alone
// never compacts.
func TestPartitionCompact(t *testing.T) {
	cfg := defaultConfig()
	cfg.SegmentAge = time.Millisecond
	cfg.Retention.MaxAge = time.Hour
	cfg.CleanupPolicy = CleanupCompact
	cfg.DeleteRetention = time.Hour
	f := newFixture(t, cfg)
	defer func() { f.p.Close() }()
	for i, k := range []string{"a", "b", "a", "z"} {
		f.now = f.now.Add(time.Second) // each batch its own segment
		b, _ := batch.Build([]batch.Record{{Key: []byte(k), Value: []byte{byte(i)}}}, batch.BuildOptions{BaseTimestamp: f.now.UnixMilli()})
		if _, err := f.produce(b); err != nil {
			t.Fatal(err)
		}
	}
	f.now = f.now.Add(48 * time.Hour)
	if cut := f.p.RetentionCut(); cut != 0 {
		t.Fatalf("compact alone cut retention at %d", cut)
	}
	st, err := f.p.Compact(f.now)
	if err != nil || st.RecordsRemoved != 1 || st.SegmentsRewritten != 1 {
		t.Fatalf("compact: %+v, %v", st, err)
	}
	res, err := f.p.Fetch(0, 1<<20)
	if err != nil || len(res.Batches) != 4 {
		t.Fatalf("fetch: %d batches, %v", len(res.Batches), err)
	}
	if h, _ := batch.ParseHeader(res.Batches[0]); h.RecordCount != 0 || h.BaseOffset != 0 {
		t.Fatalf("first batch: %+v", h)
	}

	cfg.CleanupPolicy = CleanupCompactDelete
	if err := f.p.SetConfig(cfg); err != nil {
		t.Fatal(err)
	}
	if cut := f.p.RetentionCut(); cut != 3 {
		t.Fatalf("compact,delete: retention cut %d, want 3", cut)
	}
	cfg.CleanupPolicy = CleanupDelete
	if err := f.p.SetConfig(cfg); err != nil {
		t.Fatal(err)
	}
	if st, err := f.p.Compact(f.now); err != nil || st.Ran {
		t.Fatalf("delete alone compacted: %+v, %v", st, err)
	}
}
