package kernel

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// Ownership is labctl's record of the namespaces it created, one small file
// per namespace under Dir. A record is written after the namespace exists
// (its inode is known) but before it is given a name under /run/netns, so
// even a crash at any instant leaves nothing named that labctl cannot prove
// is its own. Cleanup deletes a namespace only when the name still points at
// the recorded inode: a namespace someone else created under the same name
// later is never touched.
type Ownership struct {
	Dir string
}

// OwnedNamespace is one ownership record.
type OwnedNamespace struct {
	Name  string `json:"name"`
	Lab   string `json:"lab"`
	LabID string `json:"labID"`
	Dev   uint64 `json:"dev"`
	Ino   uint64 `json:"ino"`
}

func (o Ownership) path(name string) string { return filepath.Join(o.Dir, name) }

func (o Ownership) write(rec OwnedNamespace) error {
	data, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	if err := os.WriteFile(o.path(rec.Name), data, 0o644); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			if err := os.MkdirAll(o.Dir, 0o755); err != nil {
				return fmt.Errorf("create ownership directory: %w", err)
			}
			return os.WriteFile(o.path(rec.Name), data, 0o644)
		}
		return err
	}
	return nil
}

func (o Ownership) forget(name string) error {
	err := os.Remove(o.path(name))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return err
}

// List returns every ownership record, optionally only those of one lab ID.
func (o Ownership) List() ([]OwnedNamespace, error) {
	entries, err := os.ReadDir(o.Dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var recs []OwnedNamespace
	for _, e := range entries {
		if e.IsDir() || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		data, err := os.ReadFile(o.path(e.Name()))
		if err != nil {
			continue // raced with a concurrent delete
		}
		var rec OwnedNamespace
		if json.Unmarshal(data, &rec) != nil || rec.Name != e.Name() {
			continue // not ours to interpret
		}
		recs = append(recs, rec)
	}
	return recs, nil
}

// NamespaceState says what is at a recorded namespace's name now.
type NamespaceState int

const (
	// Gone: nothing is at the name any more.
	Gone NamespaceState = iota
	// Ours: the name is the namespace labctl created.
	Ours
	// Unmounted: the name is the empty file labctl created as a mount
	// point, with no namespace on it (a crash between the two steps).
	Unmounted
	// Foreign: something else now holds the name.
	Foreign
)

// State compares the name's current target with the record.
func (rec OwnedNamespace) State() NamespaceState {
	var st unix.Stat_t
	if err := unix.Stat(NamespacePath(rec.Name), &st); err != nil {
		return Gone
	}
	if st.Dev == rec.Dev && st.Ino == rec.Ino {
		return Ours
	}
	var parent unix.Stat_t
	if unix.Stat(NetnsDir, &parent) == nil && st.Dev == parent.Dev && st.Size == 0 && st.Mode&unix.S_IFMT == unix.S_IFREG {
		// A plain empty file on the /run/netns file system, not a
		// mounted namespace: the mount point of an interrupted create.
		return Unmounted
	}
	return Foreign
}
