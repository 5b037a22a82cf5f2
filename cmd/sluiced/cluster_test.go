package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// procCluster is three sluiced processes on loopback forming one cluster.
type procCluster struct {
	t      testing.TB
	dirs   [3]string
	kafka  [3]string
	raft   [3]string
	http   [3]string
	cmds   [3]*exec.Cmd
	logs   [3]*os.File
	voters string
	hb     string   // --raft-heartbeat-timeout
	extra  []string // more flags for every broker
}

func newProcCluster(t testing.TB) *procCluster {
	c := &procCluster{t: t, hb: "300ms"}
	var vs []string
	for i := range 3 {
		c.dirs[i] = t.TempDir()
		c.kafka[i], c.raft[i], c.http[i] = freeAddr(t), freeAddr(t), freeAddr(t)
		vs = append(vs, fmt.Sprintf("%d@%s", i+1, c.raft[i]))
	}
	c.voters = strings.Join(vs, ",")
	t.Cleanup(func() {
		for i := range 3 {
			c.kill(i)
		}
		if t.Failed() {
			for i := range 3 {
				b, _ := os.ReadFile(c.logs[i].Name())
				t.Logf("broker %d log (last 6000 bytes):\n%s", i+1, tail(b, 6000))
			}
		}
	})
	return c
}

func tail(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}

// start runs broker i (0-based) and waits until it reports ready.
func (c *procCluster) start(i int) {
	c.t.Helper()
	if c.logs[i] == nil {
		f, err := os.Create(filepath.Join(c.t.TempDir(), fmt.Sprintf("node%d.log", i+1)))
		if err != nil {
			c.t.Fatal(err)
		}
		c.logs[i] = f
	}
	cmd := exec.Command(binary, "--node-id", fmt.Sprint(i+1), "--data-dir", c.dirs[i],
		"--kafka-addr", c.kafka[i], "--raft-addr", c.raft[i], "--http-addr", c.http[i],
		"--controller-voters", c.voters, "--raft-heartbeat-timeout", c.hb,
		"--default-replication-factor", "3", "--log-format", "json")
	cmd.Args = append(cmd.Args, c.extra...)
	cmd.Stdout, cmd.Stderr = c.logs[i], c.logs[i]
	if err := cmd.Start(); err != nil {
		c.t.Fatal(err)
	}
	c.cmds[i] = cmd
}

func (c *procCluster) waitReady(i int) {
	c.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := http.Get("http://" + c.http[i] + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	c.t.Fatalf("broker %d not ready after 30s", i+1)
}

// kill sends SIGKILL: a crash, nothing flushed or closed.
func (c *procCluster) kill(i int) {
	if cmd := c.cmds[i]; cmd != nil {
		cmd.Process.Kill()
		cmd.Wait()
		c.cmds[i] = nil
	}
}

func (c *procCluster) stop(i int) {
	c.t.Helper()
	if cmd := c.cmds[i]; cmd != nil {
		cmd.Process.Signal(syscall.SIGTERM)
		if err := cmd.Wait(); err != nil {
			c.t.Errorf("broker %d exited with %v after SIGTERM", i+1, err)
		}
		c.cmds[i] = nil
	}
}

func (c *procCluster) seeds() []string { return c.kafka[:] }

// leaderOf asks the cluster which broker (0-based) leads topic/p.
func leaderOf(t testing.TB, adm *kadm.Client, topic string, p int32) int {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		md, err := adm.Metadata(ctx, topic)
		cancel()
		if err == nil {
			if pd, ok := md.Topics[topic].Partitions[p]; ok && pd.Leader >= 1 {
				return int(pd.Leader) - 1
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("no leader for %s/%d", topic, p)
	return -1
}

// The cluster scenario with real processes: an RF=3 topic keeps
// taking idempotent acks=all produces while the leader of a partition is
// killed with SIGKILL and restarted; every acknowledged record is then
// read back exactly once and in order per key, and again after all three
// brokers are restarted.
func TestClusterSurvivesLeaderKill(t *testing.T) {
	c := newProcCluster(t)
	for i := range 3 {
		c.start(i)
	}
	for i := range 3 {
		c.waitReady(i)
	}
	admCl, err := kgo.NewClient(kgo.SeedBrokers(c.seeds()...))
	if err != nil {
		t.Fatal(err)
	}
	defer admCl.Close()
	adm := kadm.NewClient(admCl)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	const topic, parts = "signups", 3
	resp, err := adm.CreateTopic(ctx, parts, 3, nil, topic)
	if err != nil || resp.Err != nil {
		t.Fatalf("create topic: %v %v", err, resp.Err)
	}
	victim := leaderOf(t, adm, topic, 0)

	prod, err := kgo.NewClient(kgo.SeedBrokers(c.seeds()...), kgo.DefaultProduceTopic(topic),
		kgo.RequiredAcks(kgo.AllISRAcks()), kgo.RecordRetries(1<<30), kgo.RecordDeliveryTimeout(2*time.Minute),
		kgo.ProducerLinger(0), kgo.RetryBackoffFn(func(int) time.Duration { return 50 * time.Millisecond }))
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()

	const keys, perKey = 12, 150
	var mu sync.Mutex
	acked := map[string]bool{}
	var failed []error
	var wg sync.WaitGroup
	produce := func(from, to int) {
		for i := from; i < to; i++ {
			for k := range keys {
				v := fmt.Sprintf("k%02d:%05d", k, i)
				wg.Add(1)
				prod.Produce(ctx, &kgo.Record{Key: []byte(fmt.Sprintf("k%02d", k)), Value: []byte(v)}, func(r *kgo.Record, err error) {
					defer wg.Done()
					mu.Lock()
					defer mu.Unlock()
					if err != nil {
						failed = append(failed, err)
						return
					}
					acked[v] = true
				})
			}
			time.Sleep(time.Millisecond)
		}
	}
	// The first third is acknowledged before the kill, so the producer has
	// its id: an InitProducerId cut by the kill fails the records franz-go
	// holds for it (its "broker closed the connection" is not retried),
	// which is the client's choice, not the cluster losing anything.
	produce(0, perKey/3)
	wg.Wait()
	produce(perKey/3, perKey/2) // in flight during the kill
	killedAt := time.Now()
	c.kill(victim)
	produce(perKey/2, 2*perKey/3)
	c.start(victim)
	produce(2*perKey/3, perKey)
	wg.Wait()
	c.waitReady(victim)
	t.Logf("leader %d of %s/0 killed; %d records acknowledged %.1fs later", victim+1, topic, len(acked), time.Since(killedAt).Seconds())
	if len(failed) > 0 {
		t.Fatalf("%d produces failed, first: %v", len(failed), failed[0])
	}
	if len(acked) != keys*perKey {
		t.Fatalf("%d of %d records acknowledged", len(acked), keys*perKey)
	}
	checkReadBack(t, ctx, c.seeds(), topic, acked, keys)

	// Every broker restarted: everything is still there.
	for i := range 3 {
		c.stop(i)
	}
	for i := range 3 {
		c.start(i)
	}
	for i := range 3 {
		c.waitReady(i)
	}
	checkReadBack(t, ctx, c.seeds(), topic, acked, keys)
}

// checkReadBack consumes topic from the start and checks that every
// acknowledged record is there exactly once and keys keep their order.
func checkReadBack(t *testing.T, ctx context.Context, seeds []string, topic string, acked map[string]bool, keys int) {
	t.Helper()
	cons, err := kgo.NewClient(kgo.SeedBrokers(seeds...), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxWait(200*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer cons.Close()
	seen := map[string]int{}
	last := map[string]string{}
	for n := 0; n < len(acked); {
		fs := cons.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("read %d of %d records", n, len(acked))
		}
		fs.EachError(func(topic string, p int32, err error) { t.Logf("fetch %s/%d: %v", topic, p, err) })
		fs.EachRecord(func(r *kgo.Record) {
			v := string(r.Value)
			seen[v]++
			n++
			k := string(r.Key)
			if v <= last[k] {
				t.Errorf("key %s: %s after %s", k, v, last[k])
			}
			last[k] = v
		})
	}
	for v := range acked {
		if seen[v] != 1 {
			t.Errorf("acknowledged record %s read %d times", v, seen[v])
		}
	}
	if len(seen) != len(acked) {
		t.Errorf("read %d distinct records, %d acknowledged", len(seen), len(acked))
	}
}
