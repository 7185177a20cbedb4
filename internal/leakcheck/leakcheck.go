// Package leakcheck is the TestMain of packages whose tests build network
// namespaces: after the tests pass it fails the run when one of them left a
// namespace, a goroutine or a file descriptor behind.
package leakcheck

import (
	"fmt"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/labctl/labctl/emulator/kernel"
)

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
	entries, _ := os.ReadDir(kernel.NetnsDir)
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
