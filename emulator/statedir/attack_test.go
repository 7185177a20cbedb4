package statedir

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/labctl/labctl/internal/nstest"
)

// The attacks of issue 8 item 4, by an unprivileged user (uid 65534) who
// owns the state directory, or can write it, and plants links to root's
// files in it.

// victims are root's files (and a directory) the attacker points links at;
// check fails the test if any of them changed.
type victims struct {
	dir   string
	files map[string][]byte // path -> content
}

func newVictims(t *testing.T) *victims {
	v := &victims{dir: t.TempDir(), files: map[string][]byte{}}
	for _, name := range []string{"record", "lock", "status", "netns", "dir/pod.json"} {
		p := filepath.Join(v.dir, name)
		must(t, os.MkdirAll(filepath.Dir(p), 0o755))
		content := []byte("root's " + name + "\n")
		must(t, os.WriteFile(p, content, 0o644))
		v.files[p] = content
	}
	return v
}

func (v *victims) path(name string) string { return filepath.Join(v.dir, name) }

func (v *victims) check(t *testing.T) {
	t.Helper()
	for p, want := range v.files {
		fi, err := os.Lstat(p)
		if err != nil {
			t.Errorf("victim %s: %v", p, err)
			continue
		}
		got, _ := os.ReadFile(p)
		st := fi.Sys().(*syscall.Stat_t)
		if !bytes.Equal(got, want) || fi.Mode() != 0o644 || st.Uid != 0 {
			t.Errorf("victim %s changed: %q, mode %v, uid %d; want %q, 0644, root's", p, got, fi.Mode(), st.Uid, want)
		}
	}
}

// asNobody runs a shell script as uid 65534.
func asNobody(t *testing.T, script string) {
	t.Helper()
	cmd := exec.Command("/bin/sh", "-ec", script)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nobody, Gid: nobody, NoSetGroups: true}}
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("as uid %d: %s: %v: %s", nobody, script, err, out)
	}
}

// publicDir is a directory like /tmp (root's, sticky, writable by all) in
// which the attacker can make its own.
func publicDir(t *testing.T) string {
	dir, err := os.MkdirTemp("", nstest.Prefix("sd"))
	must(t, err)
	t.Cleanup(func() { os.RemoveAll(dir) })
	must(t, syscall.Chmod(dir, 0o1777))
	return dir
}

// plant makes the attacker fill state with links to the victims, as issue
// 8 found: lab records, locks, pod status, ownership records, and a pod
// directory that is a link, plus a forged record.
func plant(t *testing.T, state string, v *victims) {
	asNobody(t, fmt.Sprintf(`
S=%q
mkdir -p "$S/labs" "$S/locks" "$S/pods/lab/p" "$S/netns"
ln -s %q "$S/labs/x.json"
ln -s %q "$S/locks/x.lock"
ln -s %q "$S/pods/lab/p/_status.json"
ln -s %q "$S/netns/x"
ln -s %q "$S/pods/lab/q"
printf '{"name":"y","pods":{"p":{"pid":1}}}' > "$S/labs/y.json"
`, state, v.path("record"), v.path("lock"), v.path("status"), v.path("netns"), v.path("dir")))
}

func TestAttackOwnedStateDirIsRefused(t *testing.T) {
	nstest.NeedRoot(t)
	v := newVictims(t)
	state := filepath.Join(publicDir(t), "state")
	asNobody(t, "mkdir "+state) // the attacker got there first
	plant(t, state, v)

	for _, path := range []string{state, filepath.Join(state, "labs"), filepath.Join(state, "pods", "lab", "p")} {
		for name, open := range map[string]func(string) (*Dir, error){"Open": Open, "OpenExisting": OpenExisting} {
			d, err := open(path)
			if err == nil {
				d.Close()
				t.Errorf("%s(%s) accepted a directory owned by uid %d", name, path, nobody)
				continue
			}
			if !errors.Is(err, ErrUnsafe) || !strings.Contains(err.Error(), fmt.Sprintf("%q is owned by uid 65534", state)) {
				t.Errorf("%s(%s): %v; want it refused, naming %s and its owner", name, path, err, state)
			}
		}
	}
	v.check(t)
}

func TestAttackWritableStateDirIsRefused(t *testing.T) {
	nstest.NeedRoot(t)
	v := newVictims(t)
	state := mkdir(t, filepath.Join(publicDir(t), "state"), 0o777, 0) // root's, but anyone may write
	plant(t, state, v)
	d, err := Open(state)
	if err == nil {
		d.Close()
		t.Fatal("Open accepted a state directory writable by others")
	}
	if !errors.Is(err, ErrUnsafe) || !strings.Contains(err.Error(), "is writable by group or others (mode 0777)") {
		t.Errorf("Open: %v; want it refused as writable by others", err)
	}
	v.check(t)
}

// Even a directory that passes (the attacker's tree, later taken over by
// root) never leads root through a planted link.
func TestAttackPlantedLinksAreNeverFollowed(t *testing.T) {
	nstest.NeedRoot(t)
	for _, fallback := range []bool{false, true} {
		t.Run(fmt.Sprintf("openat2=%v", !fallback), func(t *testing.T) {
			if fallback {
				noOpenat2.Store(true)
				defer noOpenat2.Store(false)
			}
			plantedLinks(t)
		})
	}
}

func plantedLinks(t *testing.T) {
	v := newVictims(t)
	state := filepath.Join(publicDir(t), "state")
	asNobody(t, "mkdir "+state)
	plant(t, state, v)
	// Root takes the directories over; the links and the forged record
	// stay the attacker's.
	must(t, filepath.WalkDir(state, func(p string, e fs.DirEntry, err error) error {
		if err == nil && e.IsDir() {
			err = os.Lchown(p, 0, 0)
		}
		return err
	}))
	d, err := Open(state)
	if err != nil {
		t.Fatalf("Open after root took the directories over: %v", err)
	}
	defer d.Close()

	refused := func(what string, err error, why string) {
		t.Helper()
		if err == nil {
			t.Errorf("%s: succeeded; want refused: %s", what, why)
		} else if !errors.Is(err, ErrUnsafe) || !strings.Contains(err.Error(), why) {
			t.Errorf("%s: %v; want refused: %s", what, err, why)
		}
	}
	const link = "is a symbolic link"
	b, err := d.ReadFile("labs/x.json", 1<<20)
	refused("read a planted link", err, link)
	if bytes.Contains(b, []byte("root's")) {
		t.Errorf("read the victim through a planted link: %q", b)
	}
	_, err = d.ReadFile("labs/y.json", 1<<20)
	refused("read a forged record", err, "is owned by uid 65534")
	_, err = d.OpenFile("pods/lab/p/_status.json", os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	refused("append to a planted link", err, link)
	_, err = d.OpenFile("pods/lab/p/_status.json", os.O_WRONLY|os.O_TRUNC, 0)
	refused("truncate a planted link", err, link)
	_, err = d.Lock("locks/x.lock")
	refused("lock a planted link", err, link)
	_, err = d.Stat("netns/x")
	refused("stat a planted link", err, link)
	_, err = d.Sub("pods/lab/q")
	refused("enter a linked directory", err, link)
	_, err = d.ReadDir("pods/lab/q")
	refused("list a linked directory", err, link)
	refused("create beneath a linked directory", d.MkdirAll("pods/lab/q/r", 0o755), link)
	refused("write beneath a linked directory", d.WriteFile("pods/lab/q/pod.json", []byte("x"), 0o644), link)
	_, err = d.OpenFile("pods/lab/q/pod.json", os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	refused("open beneath a linked directory", err, link)
	_, err = d.Readlink("pods/lab/q/pod.json")
	refused("read a link beneath a linked directory", err, link)
	v.check(t)

	// Operations that replace or remove a name act on the link itself.
	must(t, d.WriteFile("labs/x.json", []byte("{}"), 0o644))
	if fi, err := os.Lstat(filepath.Join(state, "labs", "x.json")); err != nil || !fi.Mode().IsRegular() {
		t.Errorf("after WriteFile, labs/x.json is %v, %v; want the link replaced by a file", fi, err)
	}
	must(t, d.Symlink("/proc/self/exe", "locks/x.lock"))
	if target, err := d.Readlink("locks/x.lock"); err != nil || target != "/proc/self/exe" {
		t.Errorf("Readlink after Symlink: %q, %v", target, err)
	}
	if err := d.CreateFile("netns/x", []byte("claim"), 0o644); !errors.Is(err, fs.ErrExist) {
		t.Errorf("CreateFile over a planted link: %v; want fs.ErrExist", err)
	}
	if fi, err := d.Lstat("netns/x"); err != nil || fi.Mode()&fs.ModeSymlink == 0 {
		t.Errorf("Lstat(netns/x) = %v, %v; want the link itself", fi, err)
	}
	must(t, d.Remove("netns/x"))
	must(t, d.RemoveAll("pods"))
	if _, err := os.Lstat(filepath.Join(state, "pods")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("pods after RemoveAll: %v", err)
	}
	v.check(t)
}
