package helper

import (
	"context"
	"errors"
	"fmt"
	"time"

	"golang.org/x/sys/unix"
)

// ErrNamespaceGone is the cause (context.Cause) of a helper's context once
// the network namespace it was started in is gone.
var ErrNamespaceGone = errors.New("network namespace is gone")

// watchInterval is how often a helper looks at its namespace's name: a
// helper ends within about this long after its lab is deleted.
const watchInterval = time.Second

// watchNamespace returns a context that is cancelled with ErrNamespaceGone
// once path no longer refers to the network namespace this process runs in:
// the name was deleted (labctl down, ip netns del) or now names another
// namespace. Namespaces are compared by device and inode, which the kernel
// reuses only after a namespace is freed; the watch holds this process's
// own namespace open, so that cannot happen to it while they are compared.
func watchNamespace(parent context.Context, path string, every time.Duration) context.Context {
	ctx, cancel := context.WithCancelCause(parent)
	own, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		// Without its own namespace to compare with, a helper cannot
		// tell; it must not run unwatched.
		cancel(fmt.Errorf("%w: %s: cannot open this process's namespace: %w", ErrNamespaceGone, path, err))
		return ctx
	}
	go func() {
		defer unix.Close(own)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			if namespaceGone(path, own) {
				cancel(fmt.Errorf("%w: %s", ErrNamespaceGone, path))
				return
			}
		}
	}()
	return ctx
}

// namespaceGone reports whether path no longer refers to the namespace
// open as own. Errors other than a missing path say nothing either way.
func namespaceGone(path string, own int) bool {
	var ours, named unix.Stat_t
	if err := unix.Fstat(own, &ours); err != nil {
		return false
	}
	if err := unix.Stat(path, &named); err != nil {
		return errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENOTDIR)
	}
	return named.Dev != ours.Dev || named.Ino != ours.Ino
}
