package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

func decode[T any](t *testing.T, s string) T {
	t.Helper()
	var v T
	dec := json.NewDecoder(strings.NewReader(s))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("not the JSON shape %T: %v\n%s", v, err, s)
	}
	return v
}

// The root help documents the exit codes and the address precedence, and
// every command and flag has help text.
func TestHelp(t *testing.T) {
	out := ok(t, "--help")
	for _, want := range []string{"Exit codes:", "4  not found", "5  conflict", "6  unavailable", "SLUICE_BROKERS",
		"sluicectl.yaml", "cluster", "topic", "partition", "group", "produce", "consume", "completion"} {
		if !strings.Contains(out, want) {
			t.Errorf("--help lacks %q:\n%s", want, out)
		}
	}
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		if c.Short == "" {
			t.Errorf("%q has no short help", c.CommandPath())
		}
		c.LocalFlags().VisitAll(func(f *pflag.Flag) {
			if strings.TrimSpace(f.Usage) == "" {
				t.Errorf("%s --%s has no help text", c.CommandPath(), f.Name)
			}
		})
		for _, s := range c.Commands() {
			walk(s)
		}
	}
	a := &app{}
	root := a.newRoot()
	root.InitDefaultCompletionCmd()
	walk(root)
	if got := ok(t, "topic"); !strings.Contains(got, "Available Commands") {
		t.Errorf("bare topic prints no help:\n%s", got)
	}
}

// Bad command lines exit 2 and say what is wrong.
func TestUsageErrors(t *testing.T) {
	for _, tc := range []struct {
		want string
		args []string
	}{
		{"unknown command", []string{"bogus"}},
		{"unknown command", []string{"topic", "bogus"}},
		{"unknown flag", []string{"topic", "list", "--bogus"}},
		{"accepts 1 arg", []string{"topic", "describe"}},
		{"accepts 2 arg", []string{"partition", "move", "t"}},
		{"--replicas: required", []string{"partition", "move", "t", "0"}},
		{"--replicas", []string{"partition", "move", "t", "0", "--replicas", "a,b"}},
		{"partition \"x\"", []string{"partition", "move", "t", "x", "--replicas", "1"}},
		{"--to: required", []string{"partition", "transfer-leadership", "t", "0"}},
		{"exactly one of", []string{"group", "reset-offsets", "g", "--topic", "t"}},
		{"exactly one of", []string{"group", "reset-offsets", "g", "--topic", "t", "--to-earliest", "--to-latest"}},
		{"--topic: required", []string{"group", "reset-offsets", "g", "--to-earliest"}},
		{"RFC 3339", []string{"group", "reset-offsets", "g", "--topic", "t", "--to-datetime", "yesterday"}},
		{"nothing to change", []string{"topic", "alter", "t"}},
		{"key=value", []string{"topic", "create", "t", "--config", "novalue"}},
		{"-o/--offset", []string{"consume", "t", "-o", "middle"}},
		{"--format", []string{"consume", "t", "-f", "%x"}},
		{"-e and --partitions", []string{"consume", "t", "-g", "g", "-e"}},
		{"--acks", []string{"produce", "t", "--acks", "some"}},
		{"broker address", []string{"topic", "list", "--brokers", "nohostport"}},
		{"--timeout", []string{"topic", "list", "--timeout", "0s"}},
	} {
		r := sctl(t, "", tc.args...)
		if r.code != exitUsage || !strings.Contains(r.stderr, tc.want) {
			t.Errorf("%v: exit %d, stderr %q; want exit 2 mentioning %q", tc.args, r.code, r.stderr, tc.want)
		}
	}
}

// Addresses: flag over environment over file over defaults.
func TestConfigPrecedence(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("XDG_CONFIG_HOME", dir)
	view := func(args ...string) settings {
		t.Helper()
		return decode[settings](t, ok(t, append([]string{"config", "view", "--json"}, args...)...))
	}
	t.Setenv(envBrokers, "")
	t.Setenv(envAdminURL, "")
	if s := view(); s.BrokersFrom != "default" || s.Brokers[0] != defaultBrokers || s.AdminURLs[0] != defaultAdminURL || s.ConfigFile != "" {
		t.Fatalf("defaults: %+v", s)
	}
	file := filepath.Join(dir, "sluice", "sluicectl.yaml")
	if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(file, []byte("brokers: [file-1:9092, file-2:9092]\nadmin_url: http://file:9644\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if s := view(); s.BrokersFrom != "file "+file || fmt.Sprint(s.Brokers) != "[file-1:9092 file-2:9092]" || s.AdminURLs[0] != "http://file:9644" {
		t.Fatalf("file: %+v", s)
	}
	t.Setenv(envBrokers, "env:9092")
	if s := view(); s.BrokersFrom != "env SLUICE_BROKERS" || s.Brokers[0] != "env:9092" || s.AdminURLsFrom != "file "+file {
		t.Fatalf("env over file: %+v", s)
	}
	if s := view("--brokers", "flag:9092,flag2:9092"); s.BrokersFrom != "flag --brokers" || fmt.Sprint(s.Brokers) != "[flag:9092 flag2:9092]" {
		t.Fatalf("flag over env: %+v", s)
	}
	other := filepath.Join(dir, "other.yaml")
	if err := os.WriteFile(other, []byte("brokers: other:9092\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv(envBrokers, "")
	if s := view("--config", other); s.Brokers[0] != "other:9092" || s.ConfigFile != other || s.AdminURLsFrom != "default" {
		t.Fatalf("--config: %+v", s)
	}
	if got := ok(t, "config", "view", "--config", other); !strings.Contains(got, "SETTING") || !strings.Contains(got, "other:9092") {
		t.Fatalf("config view table:\n%s", got)
	}
	fails(t, exitUsage, "no such file", "config", "view", "--config", filepath.Join(dir, "missing.yaml"))
	if err := os.WriteFile(other, []byte("bootstrap: x\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	fails(t, exitUsage, "want keys brokers and admin_url", "config", "view", "--config", other)

	// Live: a dead address in a lower layer does not matter.
	if err := os.WriteFile(file, []byte("brokers: 127.0.0.1:1\nadmin_url: 127.0.0.1:1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	fails(t, exitUnavailable, "set --brokers or SLUICE_BROKERS", "topic", "list")
	t.Setenv(envBrokers, brokerAddr)
	ok(t, "topic", "list")
	t.Setenv(envBrokers, "127.0.0.1:1")
	ok(t, "topic", "list", "--brokers", brokerAddr)
}

// A broker that cannot be reached exits 6 and says which setting to fix.
func TestUnreachable(t *testing.T) {
	start := time.Now()
	fails(t, exitUnavailable, "cannot reach 127.0.0.1:1: is the broker running? set --brokers or SLUICE_BROKERS", "topic", "list", "--brokers", "127.0.0.1:1")
	fails(t, exitUnavailable, "cannot reach the admin API at 127.0.0.1:1: is the broker running? set --admin-url or SLUICE_ADMIN_URL",
		"cluster", "status", "--admin-url", "127.0.0.1:1")
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("took %v to notice refused connections", d)
	}
}

// topic create, list, describe, alter and delete: tables, JSON, exit codes.
func TestTopicCommands(t *testing.T) {
	topic := uniq(t, "t")
	if out := ok(t, "topic", "create", topic, "-p", "3", "-c", "retention.ms=3600000", "--config", "cleanup.policy=compact"); out != "created topic "+topic+" (3 partitions, replication factor 1)\n" {
		t.Fatalf("create: %q", out)
	}
	fails(t, exitConflict, "already exists", "topic", "create", topic)

	out := ok(t, "topic", "list")
	rows := fields(out)
	if fmt.Sprint(rows[0]) != "[NAME PARTITIONS REPLICAS ID]" {
		t.Fatalf("list header: %v", rows[0])
	}
	if !slices.ContainsFunc(rows, func(r []string) bool { return r[0] == topic && r[1] == "3" && r[2] == "1" }) {
		t.Fatalf("list lacks %s:\n%s", topic, out)
	}
	list := decode[struct {
		Topics []topicRow `json:"topics"`
	}](t, ok(t, "topic", "list", "--json"))
	if !slices.ContainsFunc(list.Topics, func(r topicRow) bool {
		return r.Name == topic && r.Partitions == 3 && r.ReplicationFactor == 1 && r.ID != "" && !r.Internal
	}) {
		t.Fatalf("list --json lacks %s: %+v", topic, list)
	}

	out = ok(t, "topic", "describe", topic)
	for _, want := range []string{"NAME                " + topic, "PARTITIONS          3", "CONFIG          VALUE    SOURCE",
		"cleanup.policy  compact  topic", "retention.ms    3600000  topic", "PARTITION  LEADER  EPOCH  REPLICAS  ISR"} {
		if !strings.Contains(out, want) {
			t.Errorf("describe lacks %q:\n%s", want, out)
		}
	}
	if out := ok(t, "topic", "describe", topic, "--all-configs"); !strings.Contains(out, "max.message.bytes") {
		t.Errorf("describe --all-configs lacks defaults:\n%s", out)
	}
	d := decode[topicDescription](t, ok(t, "topic", "describe", topic, "--json"))
	if d.Name != topic || len(d.Partitions) != 3 || len(d.Configs) != 2 || d.Partitions[2].Partition != 2 ||
		fmt.Sprint(d.Partitions[0].Replicas) != "[1]" || d.Configs[0].Name != "cleanup.policy" || d.Configs[0].Source != "topic" {
		t.Fatalf("describe --json: %+v", d)
	}

	out = ok(t, "topic", "alter", topic, "--set", "retention.ms=1000", "--delete", "cleanup.policy", "--partitions", "4")
	if out != "set retention.ms=1000\ndeleted cleanup.policy (back to its default)\npartitions 3 -> 4\n" {
		t.Fatalf("alter: %q", out)
	}
	d = decode[topicDescription](t, ok(t, "topic", "describe", topic, "--json"))
	if len(d.Partitions) != 4 || len(d.Configs) != 1 || d.Configs[0].Name != "retention.ms" || d.Configs[0].Value != "1000" {
		t.Fatalf("after alter: %+v", d)
	}
	fails(t, exitUsage, "partitions can be added, not removed", "topic", "alter", topic, "-p", "2")
	fails(t, exitUsage, "", "topic", "alter", topic, "--set", "no.such.config=1")

	missing := uniq(t, "missing")
	fails(t, exitNotFound, fmt.Sprintf("topic %q does not exist", missing), "topic", "describe", missing)
	fails(t, exitNotFound, "does not exist", "topic", "alter", missing, "--set", "retention.ms=1")
	fails(t, exitNotFound, "does not exist", "topic", "delete", topic, missing)
	if got := ok(t, "topic", "delete", topic, "--json"); !strings.Contains(got, `"deleted"`) {
		t.Fatalf("delete --json: %s", got)
	}
	waitFor(t, "topic gone", func() bool { return sctl(t, "", "topic", "describe", topic).code == exitNotFound })
}

// produce lines with keys and headers, then read them back every way
// consume offers.
func TestProduceConsumeRoundTrip(t *testing.T) {
	topic := uniq(t, "t")
	ok(t, "topic", "create", topic, "-p", "2")
	before := time.Now().Add(-time.Second).UTC()
	r := sctl(t, "user-1:one\nuser-2:two\nuser-1:three\nno key here\n", "produce", topic, "-K", ":", "-H", "src=test", "-H", "n=1", "-z", "zstd", "--json")
	if r.code != exitOK {
		t.Fatalf("produce: exit %d: %s", r.code, r.stderr)
	}
	sum := decode[produceSummary](t, r.stdout)
	if sum.Topic != topic || sum.Produced != 4 || sum.Failed != 0 || len(sum.Partitions) == 0 {
		t.Fatalf("produce summary %+v", sum)
	}
	r = sctl(t, "five\n\nseven", "produce", topic, "--acks", "leader")
	if r.code != exitOK || !strings.HasPrefix(r.stderr, "produced 3 records to "+topic) {
		t.Fatalf("produce --acks leader: exit %d: %s", r.code, r.stderr)
	}

	// Everything, with a template: keys, headers, both partitions.
	out := ok(t, "consume", topic, "-e", "-f", `%k=%v [%h]\n`)
	got := lines(out)
	slices.Sort(got)
	want := []string{"= []", "=five []", "=no key here [src=test,n=1]", "=seven []", "user-1=one [src=test,n=1]", "user-1=three [src=test,n=1]", "user-2=two [src=test,n=1]"}
	if !slices.Equal(got, want) {
		t.Fatalf("consume -e with a template, sorted: %q, want %q", got, want)
	}
	// user-1's records share a partition, in order.
	js := lines(ok(t, "consume", topic, "-e", "--json"))
	var recs []recordJSON
	for _, l := range js {
		recs = append(recs, decode[recordJSON](t, l))
	}
	var p1 []string
	part := int32(-1)
	for _, rec := range recs {
		if rec.Key != nil && *rec.Key == "user-1" {
			p1 = append(p1, *rec.Value)
			if part >= 0 && rec.Partition != part {
				t.Fatalf("user-1 in two partitions: %+v", recs)
			}
			part = rec.Partition
		}
		if rec.Topic != topic || rec.Timestamp.Before(before) || rec.Value == nil {
			t.Fatalf("record %+v", rec)
		}
	}
	if fmt.Sprint(p1) != "[one three]" {
		t.Fatalf("user-1's records: %v", p1)
	}
	if len(recs) != 7 {
		t.Fatalf("consume --json: %d records", len(recs))
	}

	// -n stops early with exit 0; -o and --partitions pick the start.
	if out := ok(t, "consume", topic, "-n", "2"); len(lines(out)) != 2 {
		t.Fatalf("-n 2:\n%s", out)
	}
	if out := ok(t, "consume", topic, "--partitions", fmt.Sprint(part), "-o", "1", "-e", "-f", `%p/%o\n`); !strings.HasPrefix(out, fmt.Sprintf("%d/1\n", part)) || strings.Contains(out, "/0\n") {
		t.Fatalf("-o 1 on partition %d:\n%s", part, out)
	}
	if out := ok(t, "consume", topic, "--from-time", time.Now().Add(time.Hour).Format(time.RFC3339), "-e"); out != "" {
		t.Fatalf("--from-time in the future printed:\n%s", out)
	}
	if out := ok(t, "consume", topic, "-o", "end", "-e"); out != "" {
		t.Fatalf("-o end -e printed:\n%s", out)
	}
	fails(t, exitNotFound, "does not exist", "consume", uniq(t, "missing"), "-e")
	fails(t, exitNotFound, "create it with", "produce", uniq(t, "missing"))

	// Following: a record produced after the start arrives and -n 1 ends it.
	done := make(chan result, 1)
	go func() { done <- sctlCtx(context.Background(), "", "consume", topic, "-o", "end", "-n", "1") }()
	deadline := time.After(30 * time.Second)
	for i := 0; ; i++ {
		if r := sctl(t, fmt.Sprintf("late-%d\n", i), "produce", topic); r.code != exitOK {
			t.Fatal(r.stderr)
		}
		select {
		case r := <-done:
			if r.code != exitOK || !strings.HasPrefix(r.stdout, "late-") {
				t.Fatalf("follow: exit %d %q %s", r.code, r.stdout, r.stderr)
			}
			goto interrupt
		case <-time.After(300 * time.Millisecond):
		case <-deadline:
			t.Fatal("follow did not see a new record")
		}
	}
interrupt:
	// Ctrl-C (a cancelled context) ends a follow with exit 0.
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	if r := sctlCtx(ctx, "", "consume", topic, "-o", "end"); r.code != exitOK {
		t.Fatalf("interrupted follow: exit %d: %s", r.code, r.stderr)
	}
}
