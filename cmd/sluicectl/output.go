package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
)

// printJSON writes v indented, one document per command.
func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// table writes aligned columns.
type table struct{ tw *tabwriter.Writer }

func newTable(w io.Writer, headers ...string) *table {
	t := &table{tw: tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)}
	if len(headers) > 0 {
		t.row(anys(headers)...)
	}
	return t
}

func anys(ss []string) []any {
	out := make([]any, len(ss))
	for i, s := range ss {
		out[i] = s
	}
	return out
}

func (t *table) row(cols ...any) {
	for i, c := range cols {
		if i > 0 {
			fmt.Fprint(t.tw, "\t")
		}
		s := fmt.Sprint(c)
		if s == "" {
			s = "-"
		}
		fmt.Fprint(t.tw, s)
	}
	fmt.Fprintln(t.tw)
}

func (t *table) flush() error { return t.tw.Flush() }

// ids prints broker ids as 1,2,3.
func ids(v []int32) string {
	s := make([]string, len(v))
	for i, id := range v {
		s[i] = strconv.Itoa(int(id))
	}
	return strings.Join(s, ",")
}

// parseIDs reads 1,2,3.
func parseIDs(flag, s string) ([]int32, error) {
	var out []int32
	for _, f := range splitList(s) {
		n, err := strconv.ParseInt(f, 10, 32)
		if err != nil || n < 0 {
			return nil, usagef("%s %q: want numbers >= 0 separated by commas, e.g. 1,2,3", flag, s)
		}
		out = append(out, int32(n))
	}
	if len(out) == 0 {
		return nil, usagef("%s: want one or more numbers, e.g. 1,2,3", flag)
	}
	return out, nil
}

// parseID reads one broker id or partition number argument.
func parseID(what, s string) (int32, error) {
	n, err := strconv.ParseInt(s, 10, 32)
	if err != nil || n < 0 {
		return 0, usagef("%s %q: want a number >= 0", what, s)
	}
	return int32(n), nil
}

// parseKVs reads repeated k=v flags.
func parseKVs(flag string, kvs []string) (map[string]string, error) {
	out := map[string]string{}
	for _, kv := range kvs {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, usagef("--%s %q: want key=value", flag, kv)
		}
		out[k] = v
	}
	return out, nil
}

// seconds prints a lag in seconds to a tenth: 0.0, 1.5, 3600.2.
func seconds(s float64) string {
	return strconv.FormatFloat(s, 'f', 1, 64)
}
