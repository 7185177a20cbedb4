package kernel

import (
	"fmt"
	"runtime"

	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// NetnsDir is where named network namespaces live, the same place `ip netns`
// uses, so students can `ip netns exec` into any lab namespace.
const NetnsDir = "/run/netns"

// NamespacePath returns the bind-mount path of a named network namespace.
func NamespacePath(name string) string { return NetnsDir + "/" + name }

// Do runs fn on an OS thread that has joined the network namespace at path.
// Sockets fn creates belong to that namespace and stay usable from any
// goroutine afterwards. Goroutines that fn starts do NOT run in the namespace.
//
// The work happens on a throwaway goroutine pinned to its thread; if the
// thread cannot return to its original namespace it is left locked, so the Go
// runtime retires it instead of reusing a thread in the wrong namespace.
func Do(path string, fn func() error) error {
	target, err := netns.GetFromPath(path)
	if err != nil {
		return fmt.Errorf("open namespace %q: %w", path, err)
	}
	defer target.Close()
	return DoHandle(target, fn)
}

// DoHandle is Do for an already open namespace handle.
func DoHandle(target netns.NsHandle, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		origin, err := netns.Get()
		if err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("remember current namespace: %w", err)
			return
		}
		defer origin.Close()
		if err := netns.Set(target); err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("enter namespace: %w", err)
			return
		}
		ferr := fn()
		if err := netns.Set(origin); err != nil {
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
	target, err := netns.GetFromPath(path)
	if err != nil {
		return fmt.Errorf("open namespace %q: %w", path, err)
	}
	defer target.Close()
	OnThrowawayThread(func() {
		if err = netns.Set(target); err != nil {
			err = fmt.Errorf("enter namespace: %w", err)
			return
		}
		err = fn()
	})
	return err
}
