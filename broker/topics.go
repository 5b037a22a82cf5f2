package broker

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/rs/zerolog"
	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/sluicemq/sluice/log/vfs"
	"github.com/sluicemq/sluice/partition"
)

// maxPartitions bounds a topic's partition count; each is a directory and
// open files, so an unbounded request is a denial of service.
const maxPartitions = 10000

// producerIDBlock is how many producer ids are reserved per metadata write.
const producerIDBlock = 1000

type topicMeta struct {
	Name       string            `json:"name"`
	ID         string            `json:"id"`
	Partitions int32             `json:"partitions"`
	Configs    map[string]string `json:"configs,omitempty"`
}

// metadataFile is <data_dir>/metadata.json: the node's identity and its
// topics, replaced atomically on every change.
type metadataFile struct {
	Version        int         `json:"version"`
	ClusterID      string      `json:"cluster_id"`
	NodeID         int32       `json:"node_id"`
	NextProducerID int64       `json:"next_producer_id"`
	Topics         []topicMeta `json:"topics"`
}

// topic is immutable once published in the registry: changes replace it,
// so handlers may read a *topic they looked up without holding the lock.
type topic struct {
	name      string
	id        [16]byte
	overrides map[string]string
	parts     []*partition.Partition
}

// partition returns partition i, or nil when t is nil (an unknown topic)
// or i is out of range, so handlers need one check.
func (t *topic) partition(i int32) *partition.Partition {
	if t == nil || i < 0 || int(i) >= len(t.parts) {
		return nil
	}
	return t.parts[i]
}

// registry holds the topics of a single node and persists their metadata.
type registry struct {
	dir      string // data dir
	defaults map[string]string
	popts    partition.Options
	lg       zerolog.Logger

	mu     sync.RWMutex
	meta   metadataFile // Topics is rebuilt on save
	topics map[string]*topic
	ids    map[[16]byte]*topic

	pidMu   sync.Mutex
	nextPID int64 // next id to hand out; meta.NextProducerID is the block end
}

func (r *registry) path() string { return filepath.Join(r.dir, "metadata.json") }

func (r *registry) partDir(name string, i int32) string {
	return filepath.Join(r.dir, "topics", fmt.Sprintf("%s-%d", name, i))
}

// openRegistry loads metadata.json (creating it on a fresh directory),
// refuses a directory that belongs to another node, and opens every partition.
func openRegistry(dir string, nodeID int32, clusterID string, defaults map[string]string, popts partition.Options, lg zerolog.Logger) (*registry, error) {
	r := &registry{dir: dir, defaults: defaults, popts: popts, lg: lg, topics: map[string]*topic{}, ids: map[[16]byte]*topic{}}
	if err := os.MkdirAll(filepath.Join(dir, "topics"), 0o755); err != nil {
		return nil, err
	}
	b, err := vfs.ReadFile(vfs.OS{}, r.path(), 64<<20)
	switch {
	case errors.Is(err, os.ErrNotExist):
		if clusterID == "" {
			clusterID = newClusterID()
		}
		r.meta = metadataFile{Version: 1, ClusterID: clusterID, NodeID: nodeID, NextProducerID: 0}
		if err := r.save(); err != nil {
			return nil, err
		}
	case err != nil:
		return nil, err
	default:
		if err := json.Unmarshal(b, &r.meta); err != nil {
			return nil, fmt.Errorf("broker: %s is damaged: %w", r.path(), err)
		}
		if r.meta.NodeID != nodeID {
			return nil, fmt.Errorf("broker: data directory %s belongs to node %d, this is node %d: refusing to use it", dir, r.meta.NodeID, nodeID)
		}
		if clusterID != "" && r.meta.ClusterID != clusterID {
			return nil, fmt.Errorf("broker: data directory %s belongs to cluster %q, configured %q: refusing to use it", dir, r.meta.ClusterID, clusterID)
		}
	}
	r.nextPID = r.meta.NextProducerID
	for _, tm := range r.meta.Topics {
		id, err := parseTopicID(tm.ID)
		if err != nil {
			r.close()
			return nil, fmt.Errorf("broker: topic %s: %w", tm.Name, err)
		}
		t := &topic{name: tm.Name, id: id, overrides: tm.Configs}
		if err := r.openPartitions(t, 0, tm.Partitions); err != nil {
			r.close()
			return nil, err
		}
		r.topics[t.name], r.ids[id] = t, t
	}
	r.removeLeftovers()
	return r, nil
}

// removeLeftovers deletes directories of deleted topics (a crash can leave
// them between the metadata write and the removal).
func (r *registry) removeLeftovers() {
	entries, _ := os.ReadDir(filepath.Join(r.dir, "topics"))
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".deleted") {
			os.RemoveAll(filepath.Join(r.dir, "topics", e.Name()))
			continue
		}
		// "<topic>-<partition>"; topic names may themselves contain '-'.
		cut := strings.LastIndexByte(e.Name(), '-')
		name := e.Name()[:max(cut, 0)]
		n, err := strconv.Atoi(e.Name()[cut+1:])
		if t := r.topics[name]; cut < 0 || err != nil || t == nil || n >= len(t.parts) {
			r.lg.Warn().Str("dir", e.Name()).Msg("directory belongs to no known topic partition; leaving it alone")
		}
	}
}

func (r *registry) openPartitions(t *topic, from, to int32) error {
	cfg := partitionConfig(effectiveConfigs(r.defaults, t.overrides))
	for i := from; i < to; i++ {
		p, err := partition.Open(r.partDir(t.name, i), t.name, i, cfg, r.popts)
		if err != nil {
			return fmt.Errorf("broker: open %s-%d: %w", t.name, i, err)
		}
		t.parts = append(t.parts, p)
	}
	return nil
}

// save writes metadata.json; the caller holds mu (or is the only user).
func (r *registry) save() error {
	r.meta.Topics = r.meta.Topics[:0]
	names := make([]string, 0, len(r.topics))
	for n := range r.topics {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		t := r.topics[n]
		r.meta.Topics = append(r.meta.Topics, topicMeta{Name: n, ID: hex.EncodeToString(t.id[:]), Partitions: int32(len(t.parts)), Configs: t.overrides})
	}
	b, err := json.MarshalIndent(r.meta, "", "  ")
	if err != nil {
		return err
	}
	return vfs.WriteFileAtomic(vfs.OS{}, r.path(), b)
}

func (r *registry) get(name string) *topic {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.topics[name]
}

func (r *registry) getByID(id [16]byte) *topic {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.ids[id]
}

// list returns the topics sorted by name.
func (r *registry) list() []*topic {
	r.mu.RLock()
	defer r.mu.RUnlock()
	out := make([]*topic, 0, len(r.topics))
	for _, t := range r.topics {
		out = append(out, t)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	return out
}

// topicError is a Kafka error with a message for the response.
type topicError struct {
	code *kerr.Error
	msg  string
}

func (e *topicError) Error() string { return e.code.Message + ": " + e.msg }
func (e *topicError) Unwrap() error { return e.code }

func terr(code *kerr.Error, format string, args ...any) error {
	return &topicError{code: code, msg: fmt.Sprintf(format, args...)}
}

// create makes a topic. With validateOnly it only checks.
func (r *registry) create(name string, partitions int32, overrides map[string]string, validateOnly bool) (*topic, error) {
	if err := validTopicName(name); err != nil {
		return nil, terr(kerr.InvalidTopicException, "%v", err)
	}
	if partitions < 1 || partitions > maxPartitions {
		return nil, terr(kerr.InvalidPartitions, "%d partitions; must be 1 to %d", partitions, maxPartitions)
	}
	overrides, err := validateTopicConfigs(overrides)
	if err != nil {
		return nil, terr(kerr.InvalidConfig, "%v", err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.topics[name]; ok {
		return nil, terr(kerr.TopicAlreadyExists, "topic %q already exists", name)
	}
	if validateOnly {
		return &topic{name: name, overrides: overrides}, nil
	}
	t := &topic{name: name, overrides: overrides}
	if _, err := rand.Read(t.id[:]); err != nil {
		return nil, err
	}
	for i := int32(0); i < partitions; i++ {
		os.RemoveAll(r.partDir(name, i)) // leftovers of an interrupted create
	}
	if err := r.openPartitions(t, 0, partitions); err != nil {
		closeParts(t.parts)
		return nil, terr(kerr.KafkaStorageError, "%v", err)
	}
	r.topics[name], r.ids[t.id] = t, t
	if err := r.save(); err != nil {
		delete(r.topics, name)
		delete(r.ids, t.id)
		closeParts(t.parts)
		return nil, terr(kerr.KafkaStorageError, "%v", err)
	}
	r.lg.Info().Str("topic", name).Int32("partitions", partitions).Msg("topic created")
	return t, nil
}

func closeParts(ps []*partition.Partition) {
	for _, p := range ps {
		p.Close()
	}
}

// delete removes a topic: the metadata first (so a crash never resurrects
// half a topic), then its files.
func (r *registry) delete(t *topic) error {
	r.mu.Lock()
	if r.topics[t.name] != t {
		r.mu.Unlock()
		return terr(kerr.UnknownTopicOrPartition, "topic %q does not exist", t.name)
	}
	delete(r.topics, t.name)
	delete(r.ids, t.id)
	err := r.save()
	r.mu.Unlock()
	if err != nil {
		return terr(kerr.KafkaStorageError, "%v", err)
	}
	for i, p := range t.parts {
		p.Close()
		dir := r.partDir(t.name, int32(i))
		// Named by topic id, not dir plus a suffix: for a 249-character
		// topic name that exceeded NAME_MAX (255), the rename failed and
		// the deleted topic's data stayed on disk.
		gone := filepath.Join(r.dir, "topics", hex.EncodeToString(t.id[:])+"-"+strconv.Itoa(i)+".deleted")
		if err := os.Rename(dir, gone); err != nil {
			r.lg.Error().Err(err).Str("dir", dir).Msg("deleted topic: cannot remove its partition directory")
			continue
		}
		os.RemoveAll(gone)
	}
	r.lg.Info().Str("topic", t.name).Msg("topic deleted")
	return nil
}

// addPartitions grows a topic to count partitions.
func (r *registry) addPartitions(t *topic, count int32, validateOnly bool) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if t = r.topics[t.name]; t == nil { // the caller's copy may be stale
		return terr(kerr.UnknownTopicOrPartition, "topic does not exist")
	}
	have := int32(len(t.parts))
	switch {
	case count <= have:
		return terr(kerr.InvalidPartitions, "topic %q has %d partitions; the new count %d must be larger", t.name, have, count)
	case count > maxPartitions:
		return terr(kerr.InvalidPartitions, "%d partitions; the limit is %d", count, maxPartitions)
	case validateOnly:
		return nil
	}
	// Readers see the parts slice grow only after every new partition opened.
	nt := &topic{name: t.name, id: t.id, overrides: t.overrides, parts: append([]*partition.Partition(nil), t.parts...)}
	if err := r.openPartitions(nt, have, count); err != nil {
		closeParts(nt.parts[have:])
		return terr(kerr.KafkaStorageError, "%v", err)
	}
	r.topics[t.name], r.ids[t.id] = nt, nt
	if err := r.save(); err != nil {
		return terr(kerr.KafkaStorageError, "%v", err)
	}
	return nil
}

// setOverrides replaces a topic's config overrides and applies them.
func (r *registry) setOverrides(t *topic, overrides map[string]string, validateOnly bool) error {
	overrides, err := validateTopicConfigs(overrides)
	if err != nil {
		return terr(kerr.InvalidConfig, "%v", err)
	}
	if validateOnly {
		return nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	cur := r.topics[t.name]
	if cur == nil {
		return terr(kerr.UnknownTopicOrPartition, "topic %q does not exist", t.name)
	}
	cfg := partitionConfig(effectiveConfigs(r.defaults, overrides))
	for _, p := range cur.parts {
		if err := p.SetConfig(cfg); err != nil {
			return terr(kerr.InvalidConfig, "%v", err)
		}
	}
	// A topic is never changed in place (handlers read it without the
	// lock): swap in a new one.
	nt := &topic{name: cur.name, id: cur.id, overrides: overrides, parts: cur.parts}
	r.topics[nt.name], r.ids[nt.id] = nt, nt
	if err := r.save(); err != nil {
		return terr(kerr.KafkaStorageError, "%v", err)
	}
	return nil
}

// allocProducerID hands out a new producer id, reserving ids in blocks so
// metadata.json is written once per block; a restart skips the rest of a
// block, never reuses an id.
func (r *registry) allocProducerID() (int64, error) {
	r.pidMu.Lock()
	defer r.pidMu.Unlock()
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.nextPID >= r.meta.NextProducerID {
		r.meta.NextProducerID = r.nextPID + producerIDBlock
		if err := r.save(); err != nil {
			return 0, err
		}
	}
	id := r.nextPID
	r.nextPID++
	return id, nil
}

func (r *registry) close() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, t := range r.topics {
		for _, p := range t.parts {
			if err := p.Close(); err != nil {
				r.lg.Error().Err(err).Str("topic", t.name).Int32("partition", p.Index()).Msg("close partition")
			}
		}
	}
}

func parseTopicID(s string) ([16]byte, error) {
	var id [16]byte
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != 16 {
		return id, fmt.Errorf("bad topic id %q", s)
	}
	copy(id[:], b)
	return id, nil
}

// newClusterID is 16 random bytes in URL-safe base64 without padding, the
// shape of Kafka's cluster ids.
func newClusterID() string {
	var b [16]byte
	rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}
