// Package netns holds labctl's network namespace primitives: where named
// namespaces live, entering one on a locked OS thread, throwaway threads,
// opening a named namespace without following symlinks, what a namespace
// says about itself (its cookie and labctl's marker), the ownership records
// that prove which namespaces labctl created, and the processes living in
// them. It knows nothing of topologies or plans, so the packages that work
// inside namespaces (probe, capture, workload) need only this one; the plan
// applier (package kernel) builds on it.
//
// A namespace belongs to an OS thread. Everything here that enters one does
// it on a goroutine pinned with runtime.LockOSThread, and never hands back
// to the runtime a thread that failed to return home.
package netns

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"sync"
	"syscall"

	vnetns "github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// Dir is where named network namespaces live, the same place `ip netns`
// uses, so students can `ip netns exec` into any lab namespace.
const Dir = "/run/netns"

// Path returns the bind-mount path of a named network namespace.
func Path(name string) string { return Dir + "/" + name }

// Handle is an open network namespace (a file descriptor of nsfs), the
// same type as vishvananda/netns's, so handles pass freely between the two.
type Handle = vnetns.NsHandle

// none is the handle of no namespace.
func none() Handle { return vnetns.None() }

// Do runs fn on an OS thread that has joined the network namespace at path.
// Sockets fn creates belong to that namespace and stay usable from any
// goroutine afterwards. Goroutines that fn starts do NOT run in the namespace.
//
// The work happens on a throwaway goroutine pinned to its thread; if the
// thread cannot return to its original namespace it is left locked, so the Go
// runtime retires it instead of reusing a thread in the wrong namespace.
func Do(path string, fn func() error) error {
	target, err := vnetns.GetFromPath(path)
	if err != nil {
		return fmt.Errorf("open namespace %q: %w", path, err)
	}
	defer target.Close()
	return DoHandle(target, fn)
}

// DoHandle is Do for an already open namespace handle.
func DoHandle(target Handle, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		origin, err := vnetns.Get()
		if err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("remember current namespace: %w", err)
			return
		}
		defer origin.Close()
		if err := vnetns.Set(target); err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("enter namespace: %w", err)
			return
		}
		ferr := fn()
		if err := vnetns.Set(origin); err != nil {
			// Stay locked: the thread dies with this goroutine.
			errc <- fmt.Errorf("return from namespace: %w", err)
			return
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}

// OnThrowawayThread runs fn on a locked OS thread that is never the
// process's main thread and never serves other goroutines afterwards: it
// ends when fn returns. fn may change its thread in ways nothing else must
// inherit (its cgroups, say, before forking a child from it). The main
// thread is dodged because Go cannot end it, and because in cgroup v1 it
// stands for the whole process in cgroup.procs.
func OnThrowawayThread(fn func()) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		runtime.LockOSThread()
		if unix.Gettid() == unix.Getpid() {
			// Hold the main thread so that the next goroutine cannot
			// land on it, try again from there, and give it back.
			OnThrowawayThread(fn)
			runtime.UnlockOSThread()
			return
		}
		fn() // the thread stays locked: it ends with this goroutine
	}()
	<-done
}

// DoThrowaway is Do on a throwaway thread (see OnThrowawayThread): fn runs
// in the network namespace at path, and the thread is not brought back.
func DoThrowaway(path string, fn func() error) error {
	target, err := vnetns.GetFromPath(path)
	if err != nil {
		return fmt.Errorf("open namespace %q: %w", path, err)
	}
	defer target.Close()
	OnThrowawayThread(func() {
		if err = vnetns.Set(target); err != nil {
			err = fmt.Errorf("enter namespace: %w", err)
			return
		}
		err = fn()
	})
	return err
}

var dirOnce struct {
	sync.Once
	err error
}

// EnsureDir prepares /run/netns the way `ip netns add` does: a shared
// mount point, so namespace mounts made here propagate to other mount
// namespaces and unmounts reach them too. It does the work once per
// process; later calls report the first call's result.
func EnsureDir() error {
	dirOnce.Do(func() {
		if err := os.MkdirAll(Dir, 0o755); err != nil {
			dirOnce.err = err
			return
		}
		err := unix.Mount("", Dir, "none", unix.MS_SHARED|unix.MS_REC, "")
		if errors.Is(err, unix.EINVAL) { // not a mount point yet
			if err = unix.Mount(Dir, Dir, "none", unix.MS_BIND|unix.MS_REC, ""); err == nil {
				err = unix.Mount("", Dir, "none", unix.MS_SHARED|unix.MS_REC, "")
			}
		}
		if err != nil {
			dirOnce.err = fmt.Errorf("prepare %s: %w", Dir, err)
		}
	})
	return dirOnce.err
}

// Exec replaces the current process with argv running in the network
// namespace at path, so stdin, stdout, the terminal and the exit code are
// the command's own. It returns only on failure.
func Exec(path string, argv []string) error {
	prog, err := exec.LookPath(argv[0])
	if err != nil {
		return err
	}
	return ExecProgram(path, prog, argv)
}

// ExecProgram is Exec for a program already found: prog runs with argv
// (whose argv[0] may name something else, as for labctl's applets).
func ExecProgram(path, prog string, argv []string) error {
	h, err := vnetns.GetFromPath(path)
	if err != nil {
		return fmt.Errorf("open namespace %q: %w", path, err)
	}
	// The new program inherits the namespaces of the thread that calls
	// execve; pin it and never unlock it (the process is replaced anyway).
	runtime.LockOSThread()
	if err := vnetns.Set(h); err != nil {
		return fmt.Errorf("enter namespace %q: %w", path, err)
	}
	err = syscall.Exec(prog, argv, os.Environ())
	return fmt.Errorf("exec %s: %w", argv[0], err)
}
