package replication

import (
	"fmt"

	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
)

var _ raft.StableStore = (*GroupStable)(nil)

// StableDB is a broker's raft StableStore database: one raft-boltdb file
// holding the current term and vote of every raft group on the broker.
// Those values change only at elections, so a single file serves hundreds
// of groups without one bolt database (file, mmap, fsync) per group. It
// never holds partition data: the segment logs are the raft logs.
type StableDB struct {
	db *raftboltdb.BoltStore
}

// OpenStableDB opens (or creates) the database at path.
func OpenStableDB(path string) (*StableDB, error) {
	db, err := raftboltdb.New(raftboltdb.Options{Path: path})
	if err != nil {
		return nil, fmt.Errorf("replication: open stable store %s: %w", path, err)
	}
	return &StableDB{db: db}, nil
}

// Group returns the StableStore of one raft group. Keys are prefixed by
// the group's id, which must not contain a NUL byte.
func (s *StableDB) Group(id string) *GroupStable {
	return &GroupStable{db: s.db, prefix: id + "\x00"}
}

// Close closes the database.
func (s *StableDB) Close() error { return s.db.Close() }

// GroupStable is one group's view of a StableDB. A missing key answers
// raftboltdb.ErrKeyNotFound, whose text is exactly "not found", the only
// error raft.NewRaft accepts for a key never written.
type GroupStable struct {
	db     *raftboltdb.BoltStore
	prefix string
}

func (g *GroupStable) key(k []byte) []byte { return append([]byte(g.prefix), k...) }

// Set stores val under key.
func (g *GroupStable) Set(key, val []byte) error { return g.db.Set(g.key(key), val) }

// Get returns the value under key.
func (g *GroupStable) Get(key []byte) ([]byte, error) { return g.db.Get(g.key(key)) }

// SetUint64 stores val under key.
func (g *GroupStable) SetUint64(key []byte, val uint64) error {
	return g.db.SetUint64(g.key(key), val)
}

// GetUint64 returns the value under key.
func (g *GroupStable) GetUint64(key []byte) (uint64, error) { return g.db.GetUint64(g.key(key)) }
