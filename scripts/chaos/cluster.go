package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Broker is one sluiced process the harness runs.
type Broker struct {
	ID       int
	Dir      string
	Kafka    string // Kafka listener
	HTTP     string // health, metrics, admin
	RaftReal string // where sluiced binds its raft listener
	RaftAdv  string // its proxy: what every other broker dials

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{}
	paused bool
	starts int
}

// Cluster is the brokers, their proxies and the fault state of their links.
type Cluster struct {
	bin     string
	root    string
	hb      string
	extra   []string
	Brokers []*Broker
	Net     *Net
	proxies []*Proxy
	logf    func(format string, args ...any)
	http    *http.Client
	admin   *http.Client // admin API requests, which may wait for the controller
}

// freeAddr reserves a free loopback port and releases it for the caller.
func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// NewCluster lays out n brokers under root and starts their proxies.
func NewCluster(bin, root string, n int, hb string, extra []string, logf func(string, ...any)) (*Cluster, error) {
	c := &Cluster{bin: bin, root: root, hb: hb, extra: extra, Net: NewNet(), logf: logf,
		http: &http.Client{Timeout: 2 * time.Second}, admin: &http.Client{Timeout: 30 * time.Second}}
	// The kernel may offer a just-released port again: no address twice.
	used := map[string]bool{}
	for i := 1; i <= n; i++ {
		b := &Broker{ID: i, Dir: filepath.Join(root, fmt.Sprintf("node%d", i))}
		for _, p := range []*string{&b.Kafka, &b.HTTP, &b.RaftReal, &b.RaftAdv} {
			for *p == "" || used[*p] {
				a, err := freeAddr()
				if err != nil {
					return nil, err
				}
				*p = a
			}
			used[*p] = true
		}
		if err := os.MkdirAll(b.Dir, 0o755); err != nil {
			return nil, err
		}
		c.Brokers = append(c.Brokers, b)
	}
	nodeOf := func(addr string) int {
		for _, b := range c.Brokers {
			if b.RaftAdv == addr {
				return b.ID
			}
		}
		return 0
	}
	for _, b := range c.Brokers {
		p, err := NewProxy(c.Net, b.ID, b.RaftAdv, b.RaftReal, nodeOf)
		if err != nil {
			c.Close()
			return nil, err
		}
		c.proxies = append(c.proxies, p)
	}
	return c, nil
}

func (c *Cluster) voters() string {
	var vs []string
	for _, b := range c.Brokers {
		if b.ID <= 5 && len(vs) < voterCount(len(c.Brokers)) {
			vs = append(vs, fmt.Sprintf("%d@%s", b.ID, b.RaftAdv))
		}
	}
	return strings.Join(vs, ",")
}

// voterCount is the controller voter count for n brokers: 1, 3 or 5.
func voterCount(n int) int {
	switch {
	case n >= 5:
		return 5
	case n >= 3:
		return 3
	default:
		return 1
	}
}

// Seeds are the Kafka addresses of every broker.
func (c *Cluster) Seeds() []string {
	var s []string
	for _, b := range c.Brokers {
		s = append(s, b.Kafka)
	}
	return s
}

// Broker returns broker id (1-based).
func (c *Cluster) Broker(id int) *Broker { return c.Brokers[id-1] }

// Start runs broker id on its data directory.
func (c *Cluster) Start(id int) error {
	b := c.Broker(id)
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.cmd != nil {
		return nil
	}
	lf, err := os.OpenFile(filepath.Join(c.root, fmt.Sprintf("node%d.log", id)), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	rf := min(3, len(c.Brokers))
	args := []string{"--node-id", fmt.Sprint(id), "--data-dir", b.Dir,
		"--kafka-addr", b.Kafka, "--http-addr", b.HTTP,
		"--raft-addr", b.RaftReal, "--advertised-raft-addr", b.RaftAdv,
		"--controller-voters", c.voters(), "--raft-heartbeat-timeout", c.hb,
		"--default-replication-factor", fmt.Sprint(rf), "--auto-create-topics=false",
		"--log-format", "json"}
	args = append(args, c.extra...)
	cmd := exec.Command(c.bin, args...)
	cmd.Stdout, cmd.Stderr = lf, lf
	cmd.SysProcAttr = procAttr()
	if err := cmd.Start(); err != nil {
		lf.Close()
		return err
	}
	b.cmd, b.paused, b.exited = cmd, false, make(chan struct{})
	b.starts++
	exited := b.exited
	go func() {
		_ = cmd.Wait()
		lf.Close()
		close(exited)
	}()
	c.logf("broker %d started: pid %d", id, cmd.Process.Pid)
	return nil
}

// PID of broker id, 0 when it is not running.
func (b *Broker) PID() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.cmd == nil {
		return 0
	}
	return b.cmd.Process.Pid
}

// Running reports whether the process runs (paused or not).
func (b *Broker) Running() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.cmd == nil {
		return false
	}
	select {
	case <-b.exited:
		return false
	default:
		return true
	}
}

// Paused reports whether the process is stopped by SIGSTOP.
func (b *Broker) Paused() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.paused
}

// Kill sends SIGKILL to broker id and waits for it to exit.
func (c *Cluster) Kill(id int) {
	b := c.Broker(id)
	b.mu.Lock()
	cmd, exited := b.cmd, b.exited
	b.cmd, b.paused = nil, false
	b.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Kill()
	<-exited
	c.logf("broker %d killed: pid %d", id, cmd.Process.Pid)
}

// Stop sends SIGTERM (SIGCONT first if paused), waiting up to d before SIGKILL.
func (c *Cluster) Stop(id int, d time.Duration) {
	b := c.Broker(id)
	b.mu.Lock()
	cmd, exited, paused := b.cmd, b.exited, b.paused
	b.cmd, b.paused = nil, false
	b.mu.Unlock()
	if cmd == nil {
		return
	}
	if paused {
		_ = cmd.Process.Signal(syscall.SIGCONT)
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-exited:
	case <-time.After(d):
		_ = cmd.Process.Kill()
		<-exited
	}
}

// Pause sends SIGSTOP; Resume SIGCONT.
func (c *Cluster) Pause(id int) {
	b := c.Broker(id)
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.cmd != nil && !b.paused {
		_ = b.cmd.Process.Signal(syscall.SIGSTOP)
		b.paused = true
	}
}

// Resume sends SIGCONT to a paused broker.
func (c *Cluster) Resume(id int) {
	b := c.Broker(id)
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.cmd != nil && b.paused {
		_ = b.cmd.Process.Signal(syscall.SIGCONT)
		b.paused = false
	}
}

// Ready reports whether broker id answers /readyz with 200.
func (c *Cluster) Ready(id int) bool {
	resp, err := c.http.Get("http://" + c.Broker(id).HTTP + "/readyz")
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// WaitReady waits until broker id is ready or ctx ends.
func (c *Cluster) WaitReady(ctx context.Context, id int) error {
	for !c.Ready(id) {
		if !c.Broker(id).Running() {
			return fmt.Errorf("broker %d exited; see %s", id, filepath.Join(c.root, fmt.Sprintf("node%d.log", id)))
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("broker %d not ready: %w", id, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
	return nil
}

// Up lists brokers running and not paused.
func (c *Cluster) Up() []int {
	var ids []int
	for _, b := range c.Brokers {
		if b.Running() && !b.Paused() {
			ids = append(ids, b.ID)
		}
	}
	return ids
}

// clusterView is the part of GET /v1/cluster the harness reads.
type clusterView struct {
	Brokers []struct {
		ID       int32 `json:"id"`
		Voter    bool  `json:"voter"` // a controller voter (cannot be decommissioned)
		Draining bool  `json:"draining"`
		Replicas int   `json:"replicas"`
	} `json:"brokers"`
	Topics []struct {
		Name       string `json:"name"`
		ID         string `json:"id"`
		Partitions []struct {
			Partition int32   `json:"partition"`
			Replicas  []int32 `json:"replicas"`
			Target    []int32 `json:"target"` // set while the partition moves
			Leader    int32   `json:"leader"`
		} `json:"partitions"`
	} `json:"topics"`
}

// View asks broker id for its /v1/cluster.
func (c *Cluster) View(ctx context.Context, id int) (*clusterView, error) {
	req, err := http.NewRequestWithContext(ctx, "GET", "http://"+c.Broker(id).HTTP+"/v1/cluster", nil)
	if err != nil {
		return nil, err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("broker %d: /v1/cluster: %s", id, resp.Status)
	}
	var v clusterView
	if err := json.NewDecoder(resp.Body).Decode(&v); err != nil {
		return nil, err
	}
	return &v, nil
}

// Leaders returns, per partition of topic, its leader as the brokers that
// are up see it: a broker naming itself wins (it hosts the replica and
// answers from its raft state), else the most common answer; -1 unknown.
func (c *Cluster) Leaders(ctx context.Context, topic string, parts int) []int {
	self := make([]int, parts)
	votes := make([]map[int]int, parts)
	for p := range self {
		self[p] = -1
		votes[p] = map[int]int{}
	}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, id := range c.Up() {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cctx, cancel := context.WithTimeout(ctx, time.Second)
			defer cancel()
			v, err := c.View(cctx, id)
			if err != nil {
				return
			}
			mu.Lock()
			defer mu.Unlock()
			for _, t := range v.Topics {
				if t.Name != topic {
					continue
				}
				for _, pv := range t.Partitions {
					if int(pv.Partition) >= parts || pv.Leader < 1 {
						continue
					}
					if int(pv.Leader) == id {
						self[pv.Partition] = id
					}
					votes[pv.Partition][int(pv.Leader)]++
				}
			}
		}()
	}
	wg.Wait()
	out := make([]int, parts)
	for p := range out {
		out[p] = self[p]
		if out[p] > 0 {
			continue
		}
		best := 0
		for l, n := range votes[p] {
			if n > best || n == best && l < out[p] {
				out[p], best = l, n
			}
		}
	}
	return out
}

// Replicas returns topic's replica set per partition, from any broker up.
func (c *Cluster) Replicas(ctx context.Context, topic string) (map[int32][]int32, string, error) {
	var last error
	for _, id := range c.Up() {
		v, err := c.View(ctx, id)
		if err != nil {
			last = err
			continue
		}
		for _, t := range v.Topics {
			if t.Name == topic {
				m := map[int32][]int32{}
				for _, pv := range t.Partitions {
					m[pv.Partition] = pv.Replicas
				}
				return m, t.ID, nil
			}
		}
		last = fmt.Errorf("broker %d does not know topic %s", id, topic)
	}
	return nil, "", fmt.Errorf("no broker described the cluster: %v", last)
}

// Close stops every broker (SIGTERM, then SIGKILL after d) and the proxies.
func (c *Cluster) Close() {
	var wg sync.WaitGroup
	for _, b := range c.Brokers {
		wg.Add(1)
		go func() { defer wg.Done(); c.Stop(b.ID, 20*time.Second) }()
	}
	wg.Wait()
	for _, p := range c.proxies {
		p.Close()
	}
}

// KillTogether SIGKILLs every running broker at the same instant (every
// signal is sent before waiting for any exit), like a power loss of the
// whole cluster, and returns their ids.
func (c *Cluster) KillTogether() []int {
	type victim struct {
		id     int
		cmd    *exec.Cmd
		exited chan struct{}
	}
	var vs []victim
	for _, b := range c.Brokers {
		b.mu.Lock()
		if b.cmd != nil {
			vs = append(vs, victim{b.ID, b.cmd, b.exited})
		}
		b.cmd, b.paused = nil, false
		b.mu.Unlock()
	}
	for _, v := range vs {
		_ = v.cmd.Process.Kill()
	}
	var ids []int
	for _, v := range vs {
		<-v.exited
		c.logf("broker %d killed: pid %d", v.id, v.cmd.Process.Pid)
		ids = append(ids, v.id)
	}
	return ids
}

// Disk injects a disk fault into broker id, which must run with
// --debug-fault-fs: action is stall, resume, fail or heal (POST
// /debug/fs/<action>).
func (c *Cluster) Disk(ctx context.Context, id int, action string) error {
	if _, err := c.request(ctx, c.http, id, "POST", "/debug/fs/"+action, nil, nil); err != nil {
		return fmt.Errorf("%w (is it running with --debug-fault-fs?)", err)
	}
	return nil
}

// DiskStats reads broker id's GET /debug/fs: how many bytes of how many
// files its partition logs hold unsynced (what a power loss now drops).
func (c *Cluster) DiskStats(ctx context.Context, id int) (pendingBytes int64, dirtyFiles int, err error) {
	var st struct {
		PendingBytes int64 `json:"pending_bytes"`
		DirtyFiles   int   `json:"dirty_files"`
	}
	if _, err := c.request(ctx, c.http, id, "GET", "/debug/fs", nil, &st); err != nil {
		return 0, 0, err
	}
	return st.PendingBytes, st.DirtyFiles, nil
}

// KillAll SIGKILLs every broker (the harness's emergency exit).
func (c *Cluster) KillAll() {
	for _, b := range c.Brokers {
		c.Kill(b.ID)
	}
}

// Admin sends an admin API request (JSON body in unless nil) to broker id
// and decodes a 2xx answer into out unless nil. It returns the HTTP status
// (0 when there was no answer); a non-2xx answer is an error carrying the
// broker's message.
func (c *Cluster) Admin(ctx context.Context, id int, method, path string, in, out any) (int, error) {
	return c.request(ctx, c.admin, id, method, path, in, out)
}

// request is Admin through client hc (the debug endpoints use the short
// timeout of c.http).
func (c *Cluster) request(ctx context.Context, hc *http.Client, id int, method, path string, in, out any) (int, error) {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return 0, err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://"+c.Broker(id).HTTP+path, body)
	if err != nil {
		return 0, err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return resp.StatusCode, err
	}
	if resp.StatusCode/100 != 2 {
		var e struct {
			Error string `json:"error"`
		}
		_ = json.Unmarshal(b, &e)
		return resp.StatusCode, fmt.Errorf("broker %d: %s %s: %s: %s", id, method, path, resp.Status, e.Error)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			return resp.StatusCode, fmt.Errorf("broker %d: %s %s: %w", id, method, path, err)
		}
	}
	return resp.StatusCode, nil
}

// AnyView asks the brokers up, in turn, for their /v1/cluster.
func (c *Cluster) AnyView(ctx context.Context) (*clusterView, error) {
	var last error = errors.New("no broker is up")
	for _, id := range c.Up() {
		v, err := c.View(ctx, id)
		if err == nil {
			return v, nil
		}
		last = err
	}
	return nil, last
}

// Moving lists the partitions ("topic/partition") of every topic that are
// being moved (have a target), as some broker up sees the controller's
// state.
func (c *Cluster) Moving(ctx context.Context) ([]string, error) {
	v, err := c.AnyView(ctx)
	if err != nil {
		return nil, err
	}
	var ps []string
	for _, t := range v.Topics {
		for _, pv := range t.Partitions {
			if pv.Target != nil {
				ps = append(ps, fmt.Sprintf("%s/%d", t.Name, pv.Partition))
			}
		}
	}
	return ps, nil
}

// WaitMoves waits up to timeout until no partition is moving.
func (c *Cluster) WaitMoves(ctx context.Context, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		ps, err := c.Moving(ctx)
		if err == nil && len(ps) == 0 {
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			if err != nil {
				return fmt.Errorf("moves not known finished after %v: %w", timeout, err)
			}
			return fmt.Errorf("partitions %v still moving after %v", ps, timeout)
		}
		sleep(ctx, 250*time.Millisecond)
	}
}
