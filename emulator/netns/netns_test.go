package netns_test

import (
	"bufio"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/labctl/labctl/emulator/netns"
	"github.com/labctl/labctl/internal/nstest"
)

var prefix = nstest.Prefix("netns")

func TestMain(m *testing.M) { nstest.Main(m, prefix) }

// socketCookie is the cookie of the namespace the calling thread is in.
func socketCookie() (uint64, error) {
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return 0, err
	}
	defer unix.Close(fd)
	return netns.SocketCookie(fd)
}

// newNamespace makes a namespace for the test and opens it; both go when
// the test ends.
func newNamespace(t *testing.T) (string, netns.Handle) {
	t.Helper()
	nstest.NeedRoot(t)
	ns := nstest.AddNamespace(t, nstest.Unique(prefix))
	h, err := netns.Open(netns.Path(ns))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	return ns, h
}

// Do, DoHandle and DoThrowaway run their function inside the namespace (a
// socket made there is the namespace's), and the caller's threads are left
// where they were.
func TestDoEntersTheNamespace(t *testing.T) {
	ns, h := newNamespace(t)
	want, err := netns.Cookie(h)
	if err != nil {
		t.Fatal(err)
	}
	home, err := socketCookie()
	if err != nil {
		t.Fatal(err)
	}
	if home == want {
		t.Fatal("the test namespace has the test's own cookie")
	}
	enter := map[string]func(fn func() error) error{
		"Do":          func(fn func() error) error { return netns.Do(netns.Path(ns), fn) },
		"DoHandle":    func(fn func() error) error { return netns.DoHandle(h, fn) },
		"DoThrowaway": func(fn func() error) error { return netns.DoThrowaway(netns.Path(ns), fn) },
	}
	for name, do := range enter {
		var got uint64
		if err := do(func() (err error) { got, err = socketCookie(); return err }); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if got != want {
			t.Errorf("%s ran in namespace %d, want %d", name, got, want)
		}
		fail := errors.New("fn failed")
		if err := do(func() error { return fail }); err != fail {
			t.Errorf("%s returned %v, want fn's error", name, err)
		}
		// Threads that went in and came back serve other goroutines
		// again: many calls later, this goroutine is still at home.
		for range 20 {
			_ = do(func() error { return nil })
		}
		if c, _ := socketCookie(); c != home {
			t.Fatalf("after %s the caller is in namespace %d, not at home (%d)", name, c, home)
		}
	}
	if err := netns.Do(netns.Path(nstest.Unique(prefix)), func() error { return nil }); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Do in a missing namespace: %v, want not exist", err)
	}
}

// A throwaway thread is never the main thread and never runs anything else
// afterwards.
func TestOnThrowawayThread(t *testing.T) {
	seen := map[int]bool{}
	for range 50 {
		var tid int
		netns.OnThrowawayThread(func() { tid = unix.Gettid() })
		if tid == unix.Getpid() {
			t.Fatal("fn ran on the main thread")
		}
		if seen[tid] {
			t.Fatalf("thread %d served two throwaway functions", tid)
		}
		seen[tid] = true
	}
}

// Open accepts only a mounted namespace at the path itself: not a symlink
// to one, not a plain file.
func TestOpen(t *testing.T) {
	nstest.NeedRoot(t)
	ns := nstest.AddNamespace(t, nstest.Unique(prefix))
	h, err := netns.Open(netns.Path(ns))
	if err != nil {
		t.Fatalf("Open of a namespace: %v", err)
	}
	h.Close()
	dir := t.TempDir()
	link := filepath.Join(dir, "link")
	if err := os.Symlink(netns.Path(ns), link); err != nil {
		t.Fatal(err)
	}
	plain := filepath.Join(dir, "plain")
	if err := os.WriteFile(plain, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		path string
		want error
	}{
		{link, syscall.ELOOP},
		{plain, netns.ErrNotNamespace},
		{filepath.Join(dir, "missing"), fs.ErrNotExist},
	}
	for _, tt := range tests {
		h, err := netns.Open(tt.path)
		if !errors.Is(err, tt.want) {
			t.Errorf("Open(%s) = %v, want %v", tt.path, err, tt.want)
		}
		if h.IsOpen() {
			t.Errorf("Open(%s) returned an open handle with its error", tt.path)
			h.Close()
		}
	}
}

// Identify reads the cookie and the marker; the netlink handle it uses is
// the namespace's, as is any NetlinkHandle.
func TestIdentify(t *testing.T) {
	ns, h := newNamespace(t)
	id, err := netns.Identify(h)
	if err != nil || id.Marked || id.Cookie == 0 {
		t.Fatalf("Identify of an unmarked namespace = %+v, %v", id, err)
	}
	var inside uint64
	if err := netns.DoHandle(h, func() (err error) { inside, err = socketCookie(); return err }); err != nil {
		t.Fatal(err)
	}
	if id.Cookie != inside {
		t.Errorf("cookie %d, but a socket made inside says %d", id.Cookie, inside)
	}
	m := netns.Marker{Lab: "l", LabID: "i", State: "s"}
	nstest.IP(t, "-n", ns, "link", "set", "lo", "alias", m.String())
	if id, err = netns.IdentifyPath(netns.Path(ns)); err != nil || !id.Marked || id.Marker != m || id.Cookie != inside {
		t.Errorf("IdentifyPath of a marked namespace = %+v, %v; want %+v with cookie %d", id, err, m, inside)
	}

	// The handle sees the namespace's devices, not the caller's.
	nstest.IP(t, "-n", ns, "link", "add", "probe0", "type", "bridge")
	nh, err := netns.NetlinkHandle(h)
	if err != nil {
		t.Fatal(err)
	}
	defer nh.Close()
	if _, err := nh.LinkByName("probe0"); err != nil {
		t.Errorf("the handle does not see the namespace's device: %v", err)
	}
}

// ProcessesIn finds every process whose network namespace is one of the
// handles', and never this one.
func TestProcessesIn(t *testing.T) {
	nstest.NeedRoot(t)
	ns := nstest.AddNamespace(t, nstest.Unique(prefix))
	other := nstest.AddNamespace(t, nstest.Unique(prefix))
	start := func(name string) *exec.Cmd {
		cmd := exec.Command("ip", "netns", "exec", name, "sleep", "60")
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
		return cmd
	}
	in, out := start(ns), start(other)
	h, err := netns.Open(netns.Path(ns))
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	// ip netns exec becomes sleep (exec): its pid is the sleeper's, once
	// it has entered the namespace.
	var pids []int
	for range 100 {
		if pids, err = netns.ProcessesIn([]netns.Handle{h}); err != nil || len(pids) > 0 {
			break
		}
		syscall.Nanosleep(&syscall.Timespec{Nsec: 10e6}, nil)
	}
	if err != nil || !slices.Equal(pids, []int{in.Process.Pid}) {
		t.Errorf("ProcessesIn = %v, %v; want [%d] (not %d in another namespace)", pids, err, in.Process.Pid, out.Process.Pid)
	}
	if pids, err := netns.ProcessesIn(nil); err != nil || pids != nil {
		t.Errorf("ProcessesIn(nil) = %v, %v", pids, err)
	}
}

// EnsureDir leaves /run/netns a shared mount point, as `ip netns add`
// does, so namespace mounts propagate to other mount namespaces.
func TestEnsureDir(t *testing.T) {
	nstest.NeedRoot(t)
	if err := netns.EnsureDir(); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	shared := false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		// mount ID, parent ID, dev, root, mount point, options, optional fields..., "-"
		if len(fields) > 6 && fields[4] == netns.Dir {
			shared = false // the last mount on the point is the one seen
			for _, opt := range fields[6:] {
				if opt == "-" {
					break
				}
				shared = shared || strings.HasPrefix(opt, "shared:")
			}
		}
	}
	if !shared {
		t.Errorf("%s is not a shared mount point", netns.Dir)
	}
}
