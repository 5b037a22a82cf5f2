package client

import (
	"fmt"
	"testing"
)

// A fetch's records are split into lanes by partition and key, each in
// offset order; keyless records run alone.
func TestLanesOf(t *testing.T) {
	rec := func(p int32, key string, off int64) *Record {
		r := &Record{Topic: "t", Partition: p, Offset: off}
		if key != "" {
			r.Key = []byte(key)
		}
		return r
	}
	rs := []*Record{rec(0, "a", 1), rec(0, "b", 2), rec(0, "", 3), rec(0, "a", 4), rec(1, "a", 5), rec(0, "", 6), rec(0, "b", 7)}
	var got []string
	for _, l := range lanesOf(rs) {
		s := ""
		for _, r := range l {
			s += fmt.Sprint(r.Offset)
		}
		got = append(got, s)
	}
	if fmt.Sprint(got) != "[14 27 3 5 6]" {
		t.Fatalf("lanes %v, want [14 27 3 5 6]", got)
	}
}
