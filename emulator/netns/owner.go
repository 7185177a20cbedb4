package netns

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Ownership is labctl's record of the namespaces it created, one small file
// per namespace name under Dir.
//
// A record is a claim on a name: it is created exclusively (link(2) of a
// finished file, so it is never seen empty or half written) once the new
// namespace exists but before it is given its name under /run/netns, and
// holds the namespace's cookie. Whoever holds the claim on a name is the
// only labctl that may name, or later delete, a namespace of that name. Two
// labs racing for one name (lab "a" with node "b-c", lab "a-b" with node
// "c") thus never both proceed, and the loser's rollback only ever releases
// claims carrying its own lab id. A crash at any instant leaves nothing
// named that labctl cannot prove is its own (an unnamed namespace dies with
// the thread that made it), and a namespace someone else later creates
// under the same name is never touched.
//
// The records are files of a Store: lab keeps them in its state directory
// through emulator/statedir, which never follows a symbolic link and
// refuses files others could change. With no Store, Dir is used as a plain
// directory (tests).
type Ownership struct {
	Store Store
	Dir   string
	// Tag names the state directory in namespace markers (see StateTag).
	Tag string
}

// Store holds ownership records by name.
type Store interface {
	// CreateFile creates a file with its whole content at once, and
	// fails with fs.ErrExist when the name is taken.
	CreateFile(name string, data []byte) error
	// ReadFile reads a file of at most max bytes.
	ReadFile(name string, max int64) ([]byte, error)
	// Remove removes a file (a symbolic link as itself).
	Remove(name string) error
	// Names lists the files.
	Names() ([]string, error)
}

// maxRecord bounds an ownership record.
const maxRecord = 64 << 10

func (o Ownership) store() Store {
	if o.Store != nil {
		return o.Store
	}
	return dirStore(o.Dir)
}

// dirStore keeps records in a plain directory, without following a
// symbolic link at a record's name.
type dirStore string

func (d dirStore) path(name string) string { return filepath.Join(string(d), name) }

func (d dirStore) CreateFile(name string, data []byte) error {
	if err := os.MkdirAll(string(d), 0o755); err != nil {
		return err
	}
	var b [6]byte
	_, _ = rand.Read(b[:])
	tmp := d.path(".tmp-" + hex.EncodeToString(b[:]))
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		// link(2) fails if the name exists, whatever it is: the claim
		// is exclusive and never seen half written.
		err = os.Link(tmp, d.path(name))
	}
	os.Remove(tmp)
	return err
}

func (d dirStore) ReadFile(name string, max int64) ([]byte, error) {
	f, err := os.OpenFile(d.path(name), os.O_RDONLY|unix.O_NOFOLLOW, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data := make([]byte, max+1)
	n, err := f.Read(data)
	if n > int(max) {
		return nil, fmt.Errorf("%s: more than %d bytes", d.path(name), max)
	}
	if err != nil && n == 0 && !errors.Is(err, io.EOF) {
		return nil, err
	}
	return data[:n], nil
}

func (d dirStore) Remove(name string) error { return os.Remove(d.path(name)) }

func (d dirStore) Names() ([]string, error) {
	entries, err := os.ReadDir(string(d))
	var names []string
	for _, e := range entries {
		if e.Type().IsRegular() {
			names = append(names, e.Name())
		}
	}
	return names, err
}

// OwnedNamespace is one ownership record.
type OwnedNamespace struct {
	Name  string `json:"name"`
	Lab   string `json:"lab"`
	LabID string `json:"labID"`
	// Cookie is the namespace's SO_NETNS_COOKIE.
	Cookie uint64 `json:"cookie,omitempty"`
	// Dev and Ino identify namespaces recorded by labctl versions before
	// cookies; they are only trusted for such records.
	Dev uint64 `json:"dev,omitempty"`
	Ino uint64 `json:"ino,omitempty"`
}

// StateTag is the short name of a state directory used in markers: a hash
// of its absolute path, so the same directory always has the same tag
// (also after its files are lost) and two directories never share one.
func StateTag(dir string) string {
	if abs, err := filepath.Abs(dir); err == nil {
		dir = abs
	}
	sum := sha256.Sum256([]byte(filepath.Clean(dir)))
	return hex.EncodeToString(sum[:8])
}

// ErrClaimed says another lab holds the claim on a namespace name.
var ErrClaimed = errors.New("namespace name is claimed by another lab")

// Marker is what namespaces of lab labID get as their marker.
func (o Ownership) Marker(lab, labID string) Marker {
	return Marker{Lab: lab, LabID: labID, State: o.Tag}
}

// Claim creates the record of a namespace not yet named, failing with
// ErrClaimed when any record of that name exists.
func (o Ownership) Claim(rec OwnedNamespace) error {
	data, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	if err := o.store().CreateFile(rec.Name, data); err != nil {
		if errors.Is(err, fs.ErrExist) {
			holder := "unknown"
			if h, err := o.Get(rec.Name); err == nil {
				holder = fmt.Sprintf("lab %q", h.Lab)
			}
			return fmt.Errorf("%q (held by %s): %w", rec.Name, holder, ErrClaimed)
		}
		return fmt.Errorf("claim %q: %w", rec.Name, err)
	}
	return nil
}

// Release removes the record of name if lab labID holds it: what one run
// claimed, only that run (or a down of that lab) releases.
func (o Ownership) Release(name, labID string) error {
	cur, err := o.Get(name)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil || cur.LabID != labID {
		return err
	}
	err = o.store().Remove(name)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return err
}

// Get reads the record of one name.
func (o Ownership) Get(name string) (OwnedNamespace, error) {
	var rec OwnedNamespace
	data, err := o.store().ReadFile(name, maxRecord)
	if err != nil {
		return rec, err
	}
	if err := json.Unmarshal(data, &rec); err != nil || rec.Name != name {
		return rec, fmt.Errorf("ownership record %q is not labctl's", name)
	}
	return rec, nil
}

// List returns every ownership record.
func (o Ownership) List() ([]OwnedNamespace, error) {
	names, err := o.store().Names()
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var recs []OwnedNamespace
	for _, name := range names {
		if strings.HasPrefix(name, ".") {
			continue
		}
		rec, err := o.Get(name)
		if err != nil {
			continue // raced with a delete, or not ours to interpret
		}
		recs = append(recs, rec)
	}
	return recs, nil
}

// CleanTemp removes temporary files a killed labctl left in a plain Dir.
// A write takes microseconds, so a temporary file older than a minute is
// no other run's write in progress. (A Store cleans up after itself.)
func (o Ownership) CleanTemp() {
	if o.Store == nil && o.Dir != "" {
		CleanTemp(o.Dir, time.Minute)
	}
}

// CleanTemp removes the ".tmp-*" files in dir older than age.
func CleanTemp(dir string, age time.Duration) {
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), ".tmp-") || !e.Type().IsRegular() {
			continue
		}
		if fi, err := e.Info(); err == nil && time.Since(fi.ModTime()) > age {
			os.Remove(filepath.Join(dir, e.Name()))
		}
	}
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

func (s NamespaceState) String() string {
	switch s {
	case Gone:
		return "missing"
	case Ours:
		return "ours"
	case Unmounted:
		return "unmounted"
	}
	return "foreign"
}

// Open opens the recorded namespace if the name still refers to it, and
// says what is at the name otherwise. The handle (when state is Ours) pins
// the namespace: while it is open, nothing else can take its place.
func (rec OwnedNamespace) Open() (Handle, NamespaceState) {
	path := Path(rec.Name)
	h, err := Open(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return none(), Gone
	case errors.Is(err, ErrNotNamespace):
		var st, parent unix.Stat_t
		if unix.Lstat(path, &st) == nil && unix.Stat(Dir, &parent) == nil &&
			st.Dev == parent.Dev && st.Size == 0 && st.Mode&unix.S_IFMT == unix.S_IFREG && rec.Cookie != 0 {
			// A plain empty file on the /run/netns file system, not
			// a mounted namespace: the mount point of an interrupted
			// create (labctl records the cookie before making it).
			return none(), Unmounted
		}
		return none(), Foreign
	case err != nil:
		return none(), Foreign
	}
	if rec.proves(h) {
		return h, Ours
	}
	h.Close()
	return none(), Foreign
}

// proves reports whether the open namespace is the recorded one.
func (rec OwnedNamespace) proves(h Handle) bool {
	if rec.Cookie == 0 {
		if rec.Ino == 0 {
			return false
		}
		// A record from before cookies: the inode is all there is.
		var st unix.Stat_t
		return unix.Fstat(int(h), &st) == nil && st.Dev == rec.Dev && st.Ino == rec.Ino
	}
	cookie, err := Cookie(h)
	return err == nil && cookie == rec.Cookie
}

// State compares the name's current target with the record.
func (rec OwnedNamespace) State() NamespaceState {
	h, st := rec.Open()
	if st == Ours {
		h.Close()
	}
	return st
}

// Discover finds namespaces under /run/netns that carry a labctl marker of
// this state directory, among the names match accepts: how `labctl down`
// finds a lab whose records are lost. Namespaces without such a marker are
// only read, never changed.
func (o Ownership) Discover(match func(name string) bool) ([]OwnedNamespace, error) {
	entries, err := os.ReadDir(Dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var found []OwnedNamespace
	for _, e := range entries {
		if !match(e.Name()) {
			continue
		}
		id, err := IdentifyPath(Path(e.Name()))
		if err != nil || !id.Marked || id.Marker.State != o.Tag {
			continue
		}
		found = append(found, OwnedNamespace{Name: e.Name(), Lab: id.Marker.Lab, LabID: id.Marker.LabID, Cookie: id.Cookie})
	}
	return found, nil
}
