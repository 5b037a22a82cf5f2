package broker

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicemq/sluice/broker/config"
	"github.com/sluicemq/sluice/log/vfs"
)

// TestDebugFSRoutesNeedTheFlag: without --debug-fault-fs the routes do
// not exist and partition logs use the OS.
func TestDebugFSRoutesNeedTheFlag(t *testing.T) {
	b := startBroker(t, t.TempDir())
	for _, r := range []struct{ method, path string }{
		{"GET", "/debug/fs"}, {"POST", "/debug/fs/stall"}, {"POST", "/debug/fs/resume"},
		{"POST", "/debug/fs/fail"}, {"POST", "/debug/fs/heal"},
	} {
		req, _ := http.NewRequest(r.method, "http://"+b.HTTPAddr()+r.path, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound {
			t.Errorf("%s %s without the flag: %d, want 404", r.method, r.path, resp.StatusCode)
		}
	}
	if b.debugFS.partitionFS() != nil {
		t.Error("partition logs on a fault filesystem without the flag")
	}
}

// TestDebugFSStallAndFail: with --debug-fault-fs, a stalled disk holds
// produce requests until it resumes, and a failed fsync fails the
// partition's log closed, for good (fsyncgate), however the disk heals.
func TestDebugFSStallAndFail(t *testing.T) {
	dir := t.TempDir()
	b := startBroker(t, dir, func(c *config.Config) { c.DebugFaultFS = true })
	createTopic(t, b, "disk", 1, nil)
	cl := newClient(t, b, kgo.DefaultProduceTopic("disk"), kgo.RecordRetries(0), kgo.RequestRetries(0))
	produce := func(d time.Duration) error {
		c, cancel := context.WithTimeout(context.Background(), d)
		defer cancel()
		return cl.ProduceSync(c, &kgo.Record{Value: []byte("v")}).FirstErr()
	}
	if err := produce(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	var st vfs.FaultStats
	if code, raw := call(t, b, "GET", "/debug/fs", nil, &st); code != http.StatusOK || st.Syncs == 0 || st.Files == 0 {
		t.Fatalf("GET /debug/fs: %d %s", code, raw)
	}

	if code, raw := call(t, b, "POST", "/debug/fs/stall", nil, &st); code != http.StatusOK || !st.Stalled {
		t.Fatalf("stall: %d %s", code, raw)
	}
	done := make(chan error, 1)
	go func() { done <- produce(20 * time.Second) }()
	select {
	case err := <-done:
		t.Fatalf("produce returned %v on a stalled disk", err)
	case <-time.After(500 * time.Millisecond):
	}
	if code, raw := call(t, b, "POST", "/debug/fs/resume", nil, &st); code != http.StatusOK || st.Stalled {
		t.Fatalf("resume: %d %s", code, raw)
	}
	if err := <-done; err != nil {
		t.Fatalf("produce after resume: %v", err)
	}

	if code, raw := call(t, b, "POST", "/debug/fs/fail", nil, &st); code != http.StatusOK || !st.FailSyncs {
		t.Fatalf("fail: %d %s", code, raw)
	}
	if err := produce(3 * time.Second); err == nil {
		t.Fatal("produce succeeded on a failing disk")
	}
	// The failed log takes its replica out of service: closed, not
	// reopened by this process.
	waitUntil(t, "the replica closed after the failed fsync", func() bool {
		b.reg.mu.Lock()
		defer b.reg.mu.Unlock()
		return countFailed(b, failedIO) == 1 && len(b.reg.replicas) == 0
	})
	if code, raw := call(t, b, "POST", "/debug/fs/heal", nil, &st); code != http.StatusOK || st.FailSyncs || st.FailedSyncs == 0 {
		t.Fatalf("heal: %d %s", code, raw)
	}
	if err := produce(3 * time.Second); err == nil {
		t.Fatal("produce succeeded after the disk healed: the failed log must stay closed until a restart")
	}

	// A restart reopens the log from the disk: the acknowledged records
	// are there and the partition takes writes again.
	cl.Close()
	b.Shutdown(context.Background())
	b = startBroker(t, dir, func(c *config.Config) { c.DebugFaultFS = true })
	cl = newClient(t, b, kgo.DefaultProduceTopic("disk"), kgo.ConsumeTopics("disk"),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err := produce(10 * time.Second); err != nil {
		t.Fatalf("produce after the restart: %v", err)
	}
	c, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var offsets []int64
	for len(offsets) < 3 && c.Err() == nil {
		cl.PollFetches(c).EachRecord(func(r *kgo.Record) { offsets = append(offsets, r.Offset) })
	}
	if len(offsets) != 3 || offsets[0] != 0 || offsets[1] != 1 || offsets[2] != 2 {
		t.Fatalf("after the restart the log holds offsets %v, want the 2 acknowledged and the new one", offsets)
	}
}

// TestFailedDiskTakesReplicaOutOfRaft: a leader whose fsync fails closes
// its replica, so it stops campaigning; the other two elect a leader and
// take writes; the failed broker does not reopen it after its disk heals,
// only after a restart, and then catches up.
func TestFailedDiskTakesReplicaOutOfRaft(t *testing.T) {
	d := newRF3Cluster(t, "disk", nil, func(c *config.Config) { c.DebugFaultFS = true })
	bs, produce, leader := d.bs, d.produce, d.leader
	produce(20)
	victim := leader()
	if code, raw := call(t, victim, "POST", "/debug/fs/fail", nil, nil); code != http.StatusOK {
		t.Fatalf("fail: %d %s", code, raw)
	}
	produce(20) // retried until a healthy leader takes them
	if ld := leader(); ld == victim {
		t.Fatal("the broker with the failed disk leads")
	}
	waitUntil(t, "the failed replica closed", func() bool {
		victim.reg.mu.Lock()
		defer victim.reg.mu.Unlock()
		return countFailed(victim, failedIO) == 1
	})
	if code, raw := call(t, victim, "POST", "/debug/fs/heal", nil, nil); code != http.StatusOK {
		t.Fatalf("heal: %d %s", code, raw)
	}
	produce(10)
	if localPart(victim, "disk") != nil {
		t.Fatal("the failed replica was reopened without a restart")
	}
	id, cfg := victim.cfg.NodeID, victim.cfg
	victim.Shutdown(context.Background())
	back := runBroker(t, cfg)
	bs[id] = back
	var rep replica
	waitUntil(t, "the replica reopened by the restart", func() bool { rep = localPart(back, "disk"); return rep != nil })
	waitUntil(t, "the reopened replica caught up", func() bool { return rep.Partition().HighWatermark() == int64(len(d.acked)) })
}

// TestStalledLeaderDiskHandsOver: a leader whose disk stalls stops
// replicating (its heartbeats would otherwise keep the followers from
// electing anyone while it waits on fsync), so the other two elect a
// leader and take writes while the stall lasts; when the disk resumes the
// old leader follows and catches up.
func TestStalledLeaderDiskHandsOver(t *testing.T) {
	// A produce sent to the stalled leader hangs until the request
	// times out; a short timeout makes the client retry on the new one.
	d := newRF3Cluster(t, "stall", nil, func(c *config.Config) { c.DebugFaultFS = true },
		kgo.ProduceRequestTimeout(2*time.Second))
	produce := d.produce
	victim := d.leader()
	produce(10)
	if code, raw := call(t, victim, "POST", "/debug/fs/stall", nil, nil); code != http.StatusOK {
		t.Fatalf("stall: %d %s", code, raw)
	}
	// The stall lasts until the records below are acknowledged: by
	// another leader, since the stalled one cannot fsync.
	produce(10)
	if rep := localPart(victim, "stall"); rep != nil && rep.Ready() {
		t.Fatal("the stalled broker still leads after others acknowledged writes")
	}
	if code, raw := call(t, victim, "POST", "/debug/fs/resume", nil, nil); code != http.StatusOK {
		t.Fatalf("resume: %d %s", code, raw)
	}
	produce(5)
	rep := localPart(victim, "stall")
	waitUntil(t, "the once stalled replica caught up", func() bool { return rep.Partition().HighWatermark() == int64(len(d.acked)) })
}

// countFailed counts b's replicas not open for reason f (b.reg.mu held).
func countFailed(b *Broker, f failure) int {
	n := 0
	for _, g := range b.reg.failed {
		if g == f {
			n++
		}
	}
	return n
}
