// Package nstest is what tests that build their own network namespaces
// share: unique names, the root requirement, namespaces that remove
// themselves, and a TestMain that fails the run when a test left a
// namespace, a goroutine or a file descriptor behind.
//
// Tests name everything <kind>test-<pid>-<random>, so parallel test
// binaries never collide and each finds exactly its own leftovers. They
// only ever delete namespaces they created.
package nstest

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/labctl/labctl/emulator/netns"
)

// Prefix is the start of every name a test binary of this kind creates.
func Prefix(kind string) string { return fmt.Sprintf("%stest-%d-", kind, os.Getpid()) }

// Unique is prefix followed by random hex: a name no other test uses.
func Unique(prefix string) string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return prefix + hex.EncodeToString(b[:])
}

// NeedRoot skips t unless it runs as root with iproute2's ip on PATH and
// every one of files present; with LABCTL_REQUIRE_ROOT=1 (as in CI) a
// skip is a failure instead.
func NeedRoot(t testing.TB, files ...string) {
	t.Helper()
	why := ""
	if os.Geteuid() != 0 {
		why = "needs root to create network namespaces"
	} else if _, err := exec.LookPath("ip"); err != nil {
		why = "needs iproute2 (ip) to build the test lab"
	}
	for _, f := range files {
		if _, err := os.Stat(f); why == "" && err != nil {
			why = "needs " + f
		}
	}
	if why == "" {
		return
	}
	if os.Getenv("LABCTL_REQUIRE_ROOT") == "1" {
		t.Fatal(why + " (LABCTL_REQUIRE_ROOT=1)")
	}
	t.Skip(why)
}

// AddNamespace creates the named network namespace with lo up and deletes
// it when the test ends, unless the test deleted it already.
func AddNamespace(t testing.TB, name string) string {
	t.Helper()
	IP(t, "netns", "add", name)
	t.Cleanup(func() {
		if _, err := os.Stat(netns.Path(name)); err != nil {
			return
		}
		if out, err := exec.Command("ip", "netns", "del", name).CombinedOutput(); err != nil {
			t.Errorf("ip netns del %s: %v: %s", name, err, out)
		}
	})
	IP(t, "-n", name, "link", "set", "lo", "up")
	return name
}

// IP runs iproute2's ip and fails the test if it fails.
func IP(t testing.TB, args ...string) {
	t.Helper()
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
	}
}

// Main runs the tests and exits. Namespaces whose names start with prefix
// are the tests' own; any left is a leak. Goroutines and descriptors get a
// few seconds to wind down (sockets close asynchronously).
func Main(m *testing.M, prefix string) {
	// The runtime's network poller keeps two descriptors (epoll and an
	// eventfd) from its first use for the life of the process: start it
	// before counting, so they are not taken for a test's leak.
	if r, w, err := os.Pipe(); err == nil {
		_ = r.SetReadDeadline(time.Now())
		r.Close()
		w.Close()
	}
	goroutines, fds := runtime.NumGoroutine(), OpenFDs()
	code := m.Run()
	if code == 0 {
		code = check(prefix, goroutines, fds)
	}
	os.Exit(code)
}

func check(prefix string, goroutines, fds int) int {
	entries, _ := os.ReadDir(netns.Dir)
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), prefix) {
			fmt.Fprintf(os.Stderr, "leak: namespace %q left behind\n", e.Name())
			return 1
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > goroutines || OpenFDs() > fds {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			fmt.Fprintf(os.Stderr, "leak: %d goroutines (was %d), %d open files (was %d): %s\n%s\n",
				runtime.NumGoroutine(), goroutines, OpenFDs(), fds, strings.Join(fdTargets(), " "), buf[:runtime.Stack(buf, true)])
			return 1
		}
		time.Sleep(20 * time.Millisecond)
	}
	return 0
}

// OpenFDs counts the process's open file descriptors.
func OpenFDs() int {
	entries, _ := os.ReadDir("/proc/self/fd")
	return len(entries)
}

// fdTargets names what each open descriptor is, such as "socket:[1234]".
func fdTargets() []string {
	entries, _ := os.ReadDir("/proc/self/fd")
	var out []string
	for _, e := range entries {
		target, _ := os.Readlink("/proc/self/fd/" + e.Name())
		out = append(out, e.Name()+"="+target)
	}
	return out
}
