package main

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

// Groups: made by consume --group, then list, describe, lag, reset-offsets
// (refused with exit 5 while a member runs, dry run, real) and delete.
func TestGroupCommands(t *testing.T) {
	topic, group := uniq(t, "t"), uniq(t, "g")
	ok(t, "topic", "create", topic, "-p", "1")
	if r := sctl(t, "a\nb\nc\nd\ne\n", "produce", topic); r.code != exitOK {
		t.Fatal(r.stderr)
	}
	if out := ok(t, "consume", topic, "--group", group, "-n", "3"); out != "a\nb\nc\n" {
		t.Fatalf("consume --group -n 3: %q", out)
	}
	// The third record is committed, the rest are not: the group resumes at d.
	if out := ok(t, "consume", topic, "--group", group, "-n", "1"); out != "d\n" {
		t.Fatalf("second consume --group: %q", out)
	}

	out := ok(t, "group", "list")
	if rows := fields(out); fmt.Sprint(rows[0]) != "[NAME STATE TYPE COORDINATOR]" ||
		!slices.ContainsFunc(rows, func(r []string) bool { return fmt.Sprint(r) == fmt.Sprintf("[%s Empty consumer 1]", group) }) {
		t.Fatalf("group list:\n%s", out)
	}
	gl := decode[struct {
		Groups []groupRow `json:"groups"`
	}](t, ok(t, "group", "list", "--json"))
	if !slices.Contains(gl.Groups, groupRow{Name: group, State: "Empty", ProtocolType: "consumer", Coordinator: 1}) {
		t.Fatalf("group list --json: %+v", gl)
	}

	out = ok(t, "group", "describe", group)
	for _, want := range []string{"GROUP        " + group, "STATE        Empty", "MEMBERS      0", "TOTAL LAG    1",
		"TOPIC", "COMMITTED", fmt.Sprintf("%s  0          4          5    1", topic)} {
		if !strings.Contains(out, want) {
			t.Errorf("group describe lacks %q:\n%s", want, out)
		}
	}
	gd := decode[groupDescription](t, ok(t, "group", "describe", group, "--json"))
	if gd.Group != group || gd.TotalLag != 1 || len(gd.Members) != 0 || len(gd.Offsets) != 1 || gd.Offsets[0] != (groupOffset{topic, 0, 4, 0, 5, 1, ""}) {
		t.Fatalf("group describe --json: %+v", gd)
	}

	out = ok(t, "group", "lag", group)
	rows := fields(out)
	if fmt.Sprint(rows[0]) != "[TOPIC PARTITION COMMITTED LOG-START END LAG LAG-SECONDS]" || fmt.Sprint(rows[1][:6]) != fmt.Sprintf("[%s 0 4 0 5 1]", topic) ||
		rows[2][0] != "TOTAL" || rows[2][5] != "1" {
		t.Fatalf("group lag:\n%s", out)
	}
	lag := decode[groupLag](t, ok(t, "group", "lag", group, "--json"))
	if lag.Group != group || len(lag.Partitions) != 1 || lag.Partitions[0].LagRecords != 1 || lag.Partitions[0].HighWatermark != 5 ||
		lag.Totals.LagRecords != 1 || lag.Partitions[0].LagSeconds <= 0 {
		t.Fatalf("group lag --json: %+v", lag)
	}

	// While a member runs: reset and delete are refused with exit 5; a dry
	// run works and says so.
	ctx, stop := context.WithCancel(context.Background())
	member := make(chan result, 1)
	go func() { member <- sctlCtx(ctx, "", "consume", topic, "--group", group) }()
	waitFor(t, "a member in "+group, func() bool {
		d := decode[groupDescription](t, ok(t, "group", "describe", group, "--json"))
		return len(d.Members) == 1 && d.State == "Stable"
	})
	if out := ok(t, "group", "describe", group); !strings.Contains(out, "CLIENT-ID") || !strings.Contains(out, "sluicectl") || !strings.Contains(out, topic+":0") {
		t.Errorf("describe with a member:\n%s", out)
	}
	fails(t, exitConflict, "has 1 active members", "group", "reset-offsets", group, "--topic", topic, "--to-earliest")
	fails(t, exitConflict, "active members; stop its consumers first", "group", "delete", group)
	r := sctl(t, "", "group", "reset-offsets", group, "--topic", topic, "--to-earliest", "--dry-run")
	if r.code != exitOK || !strings.Contains(r.stderr, "would be refused") || !strings.Contains(r.stdout, "dry run: nothing was committed") {
		t.Fatalf("dry run on a live group: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	stop()
	if r := <-member; r.code != exitOK || r.stdout != "e\n" {
		t.Fatalf("interrupted group consume: exit %d %q %s", r.code, r.stdout, r.stderr)
	}
	waitFor(t, "the group empty", func() bool {
		return decode[groupDescription](t, ok(t, "group", "describe", group, "--json")).State == "Empty"
	})

	res := decode[resetResult](t, ok(t, "group", "reset-offsets", group, "--topic", topic, "--to-offset", "2", "--dry-run", "--json"))
	if !res.DryRun || res.To != "offset" || len(res.Partitions) != 1 || res.Partitions[0] != (resetPartRow{0, 5, 2, false}) {
		t.Fatalf("dry run --json: %+v", res)
	}
	out = ok(t, "group", "reset-offsets", group, "--topic", topic, "--to-offset", "99")
	if rows := fields(out); fmt.Sprint(rows[0]) != "[TOPIC PARTITION OLD-OFFSET NEW-OFFSET NOTE]" || fmt.Sprint(rows[1]) != fmt.Sprintf("[%s 0 5 5 clamped to the log]", topic) {
		t.Fatalf("reset --to-offset 99:\n%s", out)
	}
	res = decode[resetResult](t, ok(t, "group", "reset-offsets", group, "-t", topic, "--to-earliest", "--partitions", "0", "--json"))
	if res.DryRun || res.Partitions[0] != (resetPartRow{0, 5, 0, false}) {
		t.Fatalf("reset --to-earliest: %+v", res)
	}
	res = decode[resetResult](t, ok(t, "group", "reset-offsets", group, "-t", topic, "--to-datetime", time.Now().Add(time.Hour).Format(time.RFC3339), "--json"))
	if res.To != "timestamp" || res.Partitions[0] != (resetPartRow{0, 0, 5, false}) {
		t.Fatalf("reset --to-datetime in the future: %+v", res)
	}
	res = decode[resetResult](t, ok(t, "group", "reset-offsets", group, "-t", topic, "--to-latest", "--json"))
	if res.To != "latest" || res.Partitions[0].NewOffset != 5 {
		t.Fatalf("reset --to-latest: %+v", res)
	}
	fails(t, exitNotFound, "has no partition 7", "group", "reset-offsets", group, "-t", topic, "--to-earliest", "--partitions", "7")
	fails(t, exitNotFound, "does not exist", "group", "reset-offsets", group, "-t", uniq(t, "missing"), "--to-earliest")

	if out := ok(t, "group", "delete", group); out != "deleted group "+group+"\n" {
		t.Fatalf("delete: %q", out)
	}
	fails(t, exitNotFound, fmt.Sprintf("group %q does not exist", group), "group", "describe", group)
	fails(t, exitNotFound, "unknown group", "group", "lag", group)
	fails(t, exitNotFound, "does not exist", "group", "delete", group)
}
