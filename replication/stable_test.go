package replication

import (
	"path/filepath"
	"testing"

	"github.com/hashicorp/raft"
)

// Groups sharing one database must not see each other's term or vote, and
// a key never written must answer the exact error raft.NewRaft accepts.
func TestStableDBGroups(t *testing.T) {
	path := filepath.Join(t.TempDir(), "raft.db")
	db, err := OpenStableDB(path)
	if err != nil {
		t.Fatal(err)
	}
	a, b := db.Group("t/a/0"), db.Group("t/a/1")
	if err := a.SetUint64([]byte("CurrentTerm"), 7); err != nil {
		t.Fatal(err)
	}
	if err := a.Set([]byte("LastVoteCand"), []byte("node-2")); err != nil {
		t.Fatal(err)
	}
	if _, err := b.GetUint64([]byte("CurrentTerm")); err == nil || err.Error() != "not found" {
		t.Fatalf("unwritten key in another group: err %v, want exactly \"not found\"", err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	db, err = OpenStableDB(path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	a = db.Group("t/a/0")
	if v, err := a.GetUint64([]byte("CurrentTerm")); err != nil || v != 7 {
		t.Fatalf("term after reopen: %d, %v; want 7", v, err)
	}
	if v, err := a.Get([]byte("LastVoteCand")); err != nil || string(v) != "node-2" {
		t.Fatalf("vote after reopen: %q, %v", v, err)
	}
	// raft.NewRaft reads the stable store; a fresh group must pass that.
	var _ raft.StableStore = db.Group("fresh")
}
