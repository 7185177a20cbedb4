package kernel

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"sync"

	"golang.org/x/sys/unix"
)

var netnsDirOnce struct {
	sync.Once
	err error
}

// ensureNetnsDir prepares /run/netns the way `ip netns add` does: a shared
// mount point, so namespace mounts made here propagate to other mount
// namespaces and unmounts reach them too.
func ensureNetnsDir() error {
	netnsDirOnce.Do(func() {
		if err := os.MkdirAll(NetnsDir, 0o755); err != nil {
			netnsDirOnce.err = err
			return
		}
		err := unix.Mount("", NetnsDir, "none", unix.MS_SHARED|unix.MS_REC, "")
		if errors.Is(err, unix.EINVAL) { // not a mount point yet
			if err = unix.Mount(NetnsDir, NetnsDir, "none", unix.MS_BIND|unix.MS_REC, ""); err == nil {
				err = unix.Mount("", NetnsDir, "none", unix.MS_SHARED|unix.MS_REC, "")
			}
		}
		if err != nil {
			netnsDirOnce.err = fmt.Errorf("prepare %s: %w", NetnsDir, err)
		}
	})
	return netnsDirOnce.err
}

// DeleteNamespaces removes the named namespaces labctl created, in one
// burst: unmount and unlink each name, and let the kernel tear down every
// device, address and route inside them as it frees the namespaces. A name
// that now refers to anything but the recorded namespace is left alone.
func DeleteNamespaces(owner Ownership, recs []OwnedNamespace) error {
	var errs []error
	for _, rec := range recs {
		if err := deleteNamespace(owner, rec); err != nil {
			errs = append(errs, fmt.Errorf("namespace %q: %w", rec.Name, err))
		}
	}
	return errors.Join(errs...)
}

// ErrForeign reports a name that no longer refers to labctl's namespace.
var ErrForeign = errors.New("the name now belongs to a namespace labctl did not create; left alone")

func deleteNamespace(owner Ownership, rec OwnedNamespace) error {
	path := NamespacePath(rec.Name)
	switch rec.State() {
	case Ours:
		if err := unix.Unmount(path, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) {
			return fmt.Errorf("unmount: %w", err)
		}
		fallthrough
	case Unmounted:
		if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	case Foreign:
		_ = owner.forget(rec.Name)
		return ErrForeign
	}
	return owner.forget(rec.Name)
}
