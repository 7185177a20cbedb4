package statedir

import (
	"errors"
	"fmt"
	"sync"

	"golang.org/x/sys/unix"
)

// ErrLocked says another process holds the lock.
var ErrLocked = errors.New("locked by another process")

// Lock takes the exclusive lock named by the file rel without waiting:
// ErrLocked if another process holds it. The lock dies with the process.
// release gives it up and removes the lock file, so lock files do not
// accumulate.
//
// The protocol makes removing lock files safe; every locker follows it:
//
//  1. Open (or create) rel beneath the directory, never through a link.
//  2. flock(LOCK_EX|LOCK_NB) the open file; if another process holds it,
//     fail with ErrLocked.
//  3. Compare the locked file (fstat) with what rel names now (fstatat):
//     the same device and inode means the lock is ours. Otherwise the file
//     was removed (or replaced) between steps 1 and 2 by a holder that was
//     releasing it: close it and start again at step 1.
//
// Release removes rel while still holding the flock, then closes it. A
// process that opened the old file before the removal gets its flock only
// after that close, and step 3 then sends it back to step 1, to the new
// file at rel. So only a holder of a flock on the file rel names at that
// moment ever passes step 3: two processes never both hold "the" lock.
//
// Nothing else may remove a lock file: one removed under its holder by
// anything but the holder's release no longer excludes the next locker,
// as with any lock file. The directory holding rel must exist.
func (d *Dir) Lock(rel string) (release func(), err error) {
	release, err = d.lock(rel)
	if err != nil {
		return nil, d.fail("lock", rel, err)
	}
	return release, nil
}

// maxLockTries bounds step 3's retries: each retry means another process
// released the lock at that moment, which cannot go on for long.
const maxLockTries = 100

func (d *Dir) lock(rel string) (func(), error) {
	pfd, base, done, err := d.parent(rel)
	if err != nil {
		return nil, err
	}
	// Release removes base from this directory, possibly after the caller
	// closed d: hold a descriptor of our own.
	dirfd, err := unix.FcntlInt(uintptr(pfd), unix.F_DUPFD_CLOEXEC, 0)
	done()
	if err != nil {
		return nil, err
	}
	keep := false
	defer func() {
		if !keep {
			unix.Close(dirfd)
		}
	}()
	for range maxLockTries {
		fd, err := openat(dirfd, base, unix.O_RDWR|unix.O_CREAT|unix.O_NONBLOCK|unix.O_NOCTTY, 0o600)
		if err != nil {
			return nil, explain(dirfd, base, err)
		}
		var held, now unix.Stat_t
		err = unix.Fstat(fd, &held)
		if err == nil {
			err = checkFile(&held)
		}
		if err != nil {
			unix.Close(fd)
			return nil, err
		}
		if testHookLockOpened != nil {
			testHookLockOpened()
		}
		if err := flock(fd, unix.LOCK_EX|unix.LOCK_NB); err != nil {
			unix.Close(fd)
			if errors.Is(err, unix.EWOULDBLOCK) {
				return nil, ErrLocked
			}
			return nil, err
		}
		err = unix.Fstatat(dirfd, base, &now, unix.AT_SYMLINK_NOFOLLOW)
		if err == nil && now.Dev == held.Dev && now.Ino == held.Ino {
			keep = true
			var once sync.Once
			return func() { once.Do(func() { unlock(dirfd, base, fd) }) }, nil
		}
		unix.Close(fd) // a released file: try the one at rel now
		if err != nil && !errors.Is(err, unix.ENOENT) {
			return nil, err
		}
	}
	return nil, fmt.Errorf("the lock file keeps being replaced (%d tries)", maxLockTries)
}

// testHookLockOpened runs between steps 1 and 2, in tests.
var testHookLockOpened func()

// unlock releases a lock as the protocol says: remove the lock file while
// holding it (only if it is still ours), then let go.
func unlock(dirfd int, base string, fd int) {
	var held, now unix.Stat_t
	if unix.Fstat(fd, &held) == nil && unix.Fstatat(dirfd, base, &now, unix.AT_SYMLINK_NOFOLLOW) == nil &&
		now.Dev == held.Dev && now.Ino == held.Ino {
		_ = unix.Unlinkat(dirfd, base, 0)
	}
	unix.Close(fd)
	unix.Close(dirfd)
}

func flock(fd, how int) error {
	for {
		err := unix.Flock(fd, how)
		if !errors.Is(err, unix.EINTR) {
			return err
		}
	}
}
