package main

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluicemq/sluice/client"
)

// runWorker runs a share-group worker from the client package until
// stop is called or the test ends.
func runWorker(t *testing.T, group, topic string, h client.WorkerHandler) (stop func()) {
	t.Helper()
	c, err := client.New(client.Brokers(brokerAddr))
	if err != nil {
		t.Fatal(err)
	}
	w, err := client.NewWorker(c, group, topic, h)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- w.Run(context.Background()) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			_ = w.Stop(ctx)
			<-done
			c.Close()
		})
	}
	t.Cleanup(stop)
	return stop
}

// Share groups and dead letters end to end through sluicectl: configure a
// group (and refuse bad values with exit 2), run a worker that rejects the
// poison message, list and describe the group, list and show the dead
// letter, redrive it (dry run first, then for real, then again: nothing
// left), with tables, JSON and exit codes.
func TestShareGroupAndDLQCommands(t *testing.T) {
	topic, group := uniq(t, "signups"), uniq(t, "mailers")
	dlq := topic + ".dlq"
	ok(t, "topic", "create", topic, "-p", "1")

	out := ok(t, "share-group", "config", group, "--set", "share.auto.offset.reset=earliest", "--set", "share.dead.letter.topic="+dlq)
	if out != "set share.auto.offset.reset=earliest\nset share.dead.letter.topic="+dlq+"\n" {
		t.Fatalf("share-group config --set: %q", out)
	}
	out = ok(t, "share-group", "config", group)
	rows := fields(out)
	if fmt.Sprint(rows[0]) != "[CONFIG VALUE SOURCE]" || !slices.ContainsFunc(rows, func(r []string) bool { return fmt.Sprint(r) == "[share.auto.offset.reset earliest group]" }) ||
		!slices.ContainsFunc(rows, func(r []string) bool { return fmt.Sprint(r) == "[share.delivery.count.limit 5 default]" }) {
		t.Fatalf("share-group config:\n%s", out)
	}
	cfg := decode[shareGroupConfig](t, ok(t, "share-group", "config", group, "--delete", "share.auto.offset.reset", "--json"))
	if cfg.Group != group || len(cfg.Set) != 0 || fmt.Sprint(cfg.Deleted) != "[share.auto.offset.reset]" ||
		!slices.Contains(cfg.Configs, configEntryRow{"share.auto.offset.reset", "latest", "default"}) {
		t.Fatalf("share-group config --delete --json: %+v", cfg)
	}
	ok(t, "share-group", "config", group, "--set", "share.auto.offset.reset=earliest")
	fails(t, exitUsage, "share.delivery.count.limit", "share-group", "config", group, "--set", "share.delivery.count.limit=1")
	fails(t, exitUsage, "share.bogus", "share-group", "config", group, "--set", "share.bogus=1")
	fails(t, exitUsage, "both set and deleted", "share-group", "config", group, "--set", "a=1", "--delete", "a")
	fails(t, exitUsage, "want key=value", "share-group", "config", group, "--set", "novalue")

	if r := sctl(t, "user-1:hello\npoison:bad address\nuser-2:welcome\n", "produce", topic, "-K", ":", "-H", "trace=t1"); r.code != exitOK {
		t.Fatal(r.stderr)
	}
	var mu sync.Mutex
	accepted := map[string]bool{}
	runWorker(t, group, topic, func(_ context.Context, r *client.Record) error {
		mu.Lock()
		defer mu.Unlock()
		if _, ok := headerOf(r, client.HeaderRedrivenFrom); ok {
			accepted["redriven"] = true // the mailbox exists now
			return nil
		}
		if string(r.Key) == "poison" {
			return client.Reject("no such mailbox")
		}
		accepted[string(r.Key)] = true
		return nil
	})
	waitFor(t, "the dead letter", func() bool {
		r := sctl(t, "", "dlq", "list", dlq, "--json")
		return r.code == exitOK && strings.Contains(r.stdout, `"source_topic"`)
	})

	out = ok(t, "share-group", "list")
	if rows := fields(out); fmt.Sprint(rows[0]) != "[NAME STATE COORDINATOR]" ||
		!slices.ContainsFunc(rows, func(r []string) bool { return fmt.Sprint(r) == fmt.Sprintf("[%s Stable 1]", group) }) {
		t.Fatalf("share-group list:\n%s", out)
	}
	sl := decode[struct {
		ShareGroups []shareGroupRow `json:"share_groups"`
	}](t, ok(t, "share-group", "list", "--json"))
	if !slices.Contains(sl.ShareGroups, shareGroupRow{group, "Stable", 1}) {
		t.Fatalf("share-group list --json: %+v", sl)
	}
	out = ok(t, "share-group", "describe", group)
	for _, want := range []string{"GROUP        " + group, "STATE        Stable", "MEMBERS      1", "MEMBER", "SUBSCRIBED", topic + ":0"} {
		if !strings.Contains(out, want) {
			t.Errorf("share-group describe lacks %q:\n%s", want, out)
		}
	}
	sd := decode[shareGroupDescription](t, ok(t, "share-group", "describe", group, "--json"))
	if sd.Group != group || sd.State != "Stable" || len(sd.Members) != 1 || fmt.Sprint(sd.Members[0].Assigned[topic]) != "[0]" ||
		fmt.Sprint(sd.Members[0].Subscribed) != fmt.Sprintf("[%s]", topic) {
		t.Fatalf("share-group describe --json: %+v", sd)
	}
	fails(t, exitNotFound, "share-group list", "share-group", "describe", uniq(t, "nobody"))

	out = ok(t, "dlq", "list", dlq)
	rows = fields(out)
	if fmt.Sprint(rows[0]) != "[PARTITION OFFSET SOURCE DELIVERIES REASON GROUP AGE ERROR]" || len(rows) != 2 ||
		fmt.Sprint(rows[1][:6]) != fmt.Sprintf("[0 0 %s/0/1 1 rejected %s]", topic, group) || strings.Join(rows[1][7:], " ") != "no such mailbox" {
		t.Fatalf("dlq list:\n%s", out)
	}
	dl := decode[struct {
		Topic       string          `json:"topic"`
		DeadLetters []deadLetterRow `json:"dead_letters"`
		Total       int64           `json:"total"`
	}](t, ok(t, "dlq", "list", dlq, "--json"))
	if dl.Topic != dlq || dl.Total != 1 || len(dl.DeadLetters) != 1 {
		t.Fatalf("dlq list --json: %+v", dl)
	}
	if d := dl.DeadLetters[0]; d.SourceTopic != topic || d.SourceOffset != 1 || d.Reason != "rejected" || d.Group != group ||
		d.DeliveryCount != 1 || *d.Key != "poison" || d.SourceTimestamp == nil || d.AgeSeconds < 0 || d.Error != "no such mailbox" {
		t.Fatalf("dlq list --json record: %+v", d)
	}
	if r := sctl(t, "", "dlq", "list", dlq, "-n", "0"); r.code != exitOK || strings.Contains(r.stderr, "showing") {
		t.Fatalf("dlq list -n 0: %+v", r)
	}

	out = ok(t, "dlq", "show", dlq, "0")
	for _, want := range []string{"SOURCE         " + topic + "/0/1", "REASON         rejected", "ERROR          no such mailbox", "KEY            poison",
		"HEADER         trace=t1", "HEADER         sluice.dlq.group=" + group, "VALUE          bad address"} {
		if !strings.Contains(out, want) {
			t.Errorf("dlq show lacks %q:\n%s", want, out)
		}
	}
	ds := decode[deadLetterShow](t, ok(t, "dlq", "show", dlq, "0", "--json"))
	if ds.Topic != dlq || *ds.Value != "bad address" || ds.Headers[0] != (headerJSON{"trace", "t1"}) || ds.Reason != "rejected" {
		t.Fatalf("dlq show --json: %+v", ds)
	}
	fails(t, exitNotFound, "no record at offset 7", "dlq", "show", dlq, "7")
	fails(t, exitUsage, "offset \"x\"", "dlq", "show", dlq, "x")
	fails(t, exitNotFound, "does not exist", "dlq", "list", uniq(t, "missing"))

	// Redrive: a dry run changes nothing; the real one copies and commits;
	// a re-run finds nothing left.
	r := sctl(t, "", "dlq", "redrive", dlq, "--dry-run")
	if r.code != exitOK || !strings.HasPrefix(r.stdout, fmt.Sprintf("would copy 1 dead letters from %s (%s: 1); not dead letters 0; 0 left\n", dlq, topic)) ||
		!strings.Contains(r.stdout, "dry run: nothing was copied or committed") {
		t.Fatalf("redrive --dry-run: %+v", r)
	}
	res := decode[client.RedriveResult](t, ok(t, "dlq", "redrive", dlq, "--dry-run", "--json"))
	if !res.DryRun || res.Copied != 1 || res.Group != "sluice-redrive-"+dlq || len(res.Partitions) != 1 || res.Partitions[0] != (client.RedrivePartition{Partition: 0, From: 0, Next: 1, End: 1}) {
		t.Fatalf("redrive --dry-run --json: %+v", res)
	}
	mu.Lock()
	if accepted["redriven"] {
		t.Fatal("a dry run redrove")
	}
	mu.Unlock()
	r = sctl(t, "", "dlq", "redrive", dlq, "--rate", "100", "--limit", "5")
	if r.code != exitOK || !strings.HasPrefix(r.stdout, "copied 1 dead letters") || !strings.Contains(r.stdout, "progress committed for group sluice-redrive-"+dlq) ||
		!strings.Contains(r.stderr, "copied 1 so far") {
		t.Fatalf("redrive: %+v", r)
	}
	waitFor(t, "the redriven message handled", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return accepted["redriven"]
	})
	res = decode[client.RedriveResult](t, ok(t, "dlq", "redrive", dlq, "--json"))
	if res.DryRun || res.Copied != 0 || res.Remaining != 0 || res.Partitions[0].From != 1 {
		t.Fatalf("second redrive: %+v", res)
	}
	fails(t, exitUsage, "--rate -1", "dlq", "redrive", dlq, "--rate", "-1")
	fails(t, exitUsage, "--limit -2", "dlq", "redrive", dlq, "--limit", "-2")
	fails(t, exitNotFound, "does not exist", "dlq", "redrive", uniq(t, "missing"))
}

func headerOf(r *client.Record, key string) (string, bool) {
	for _, h := range r.Headers {
		if h.Key == key {
			return string(h.Value), true
		}
	}
	return "", false
}

// Share-group names complete for describe and config; the queue commands
// are in the root help.
func TestShareGroupCompletionAndHelp(t *testing.T) {
	group, topic := uniq(t, "cg"), uniq(t, "ct")
	ok(t, "topic", "create", topic, "-p", "1")
	runWorker(t, group, topic, func(context.Context, *client.Record) error { return errors.New("unused") })
	waitFor(t, "the share group listed", func() bool {
		return strings.Contains(ok(t, "share-group", "list"), group)
	})
	out := ok(t, "__complete", "share-group", "describe", group[:len(group)-2])
	if !strings.Contains(out, group+"\n") {
		t.Fatalf("completion:\n%s", out)
	}
	help := ok(t, "--help")
	for _, want := range []string{"Queues (share groups):", "share-group", "dlq"} {
		if !strings.Contains(help, want) {
			t.Errorf("--help lacks %q", want)
		}
	}
}

// dlq list keeps a worker's error on one line and cuts it short.
func TestOneLine(t *testing.T) {
	for _, tc := range []struct {
		in    string
		limit int
		want  string
	}{
		{"smtp 451\ttry again\nlater", 0, "smtp 451 try again later"},
		{"", maxErrorColumn, ""},
		{strings.Repeat("é", 70), maxErrorColumn, strings.Repeat("é", 57) + "..."},
		{strings.Repeat("x", maxErrorColumn), maxErrorColumn, strings.Repeat("x", maxErrorColumn)},
	} {
		if got := oneLine(tc.in, tc.limit); got != tc.want {
			t.Errorf("oneLine(%q, %d) = %q, want %q", tc.in, tc.limit, got, tc.want)
		}
	}
}
