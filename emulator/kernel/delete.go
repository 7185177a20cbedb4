package kernel

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"runtime"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/labctl/labctl/emulator/netns"
)

// DeleteNamespaces removes the named namespaces labctl created, in one
// burst: unmount and unlink each name, and let the kernel tear down every
// device, address and route inside them as it frees the namespaces. A name
// that now refers to anything but the recorded namespace is left alone.
// Proving each namespace means entering it, so several are checked at once.
// left lists the names that now belong to someone else and were left alone.
func DeleteNamespaces(owner netns.Ownership, recs []netns.OwnedNamespace) (left []string, err error) {
	errs := make([]error, len(recs))
	next := make(chan int)
	var wg sync.WaitGroup
	for range min(2*runtime.NumCPU(), len(recs)) {
		wg.Go(func() {
			for i := range next {
				if err := deleteNamespace(owner, recs[i]); err != nil {
					errs[i] = fmt.Errorf("namespace %q: %w", recs[i].Name, err)
				}
			}
		})
	}
	for i := range recs {
		next <- i
	}
	close(next)
	wg.Wait()
	for i, err := range errs {
		if errors.Is(err, ErrForeign) {
			left = append(left, recs[i].Name)
			errs[i] = nil
		}
	}
	return left, errors.Join(errs...)
}

// ErrForeign reports a name that no longer refers to labctl's namespace.
var ErrForeign = errors.New("the name now belongs to a namespace labctl did not create; left alone")

func deleteNamespace(owner netns.Ownership, rec netns.OwnedNamespace) error {
	path := netns.Path(rec.Name)
	h, st := rec.Open()
	switch st {
	case netns.Ours:
		h.Close()
		if err := unix.Unmount(path, unix.MNT_DETACH|unix.UMOUNT_NOFOLLOW); err != nil && !errors.Is(err, unix.EINVAL) {
			return fmt.Errorf("unmount: %w", err)
		}
		fallthrough
	case netns.Unmounted:
		if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	case netns.Foreign:
		_ = owner.Release(rec.Name, rec.LabID)
		return ErrForeign
	}
	return owner.Release(rec.Name, rec.LabID)
}

// DeleteLinks deletes devices of a namespace by name (those that do not
// exist are skipped): a repair removes the node end of a veth whose pod
// namespace was deleted but is still kept alive by a process.
func DeleteLinks(namespace string, names []string) error {
	var c *rtnl
	if err := netns.Do(netns.Path(namespace), func() (err error) { c, err = openRTNL(); return err }); err != nil {
		return err
	}
	defer c.Close()
	for _, n := range names {
		if err := c.delLink(n); err != nil {
			return fmt.Errorf("namespace %q: %w", namespace, err)
		}
	}
	return nil
}
