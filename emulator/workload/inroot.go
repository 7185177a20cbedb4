package workload

import (
	"errors"
	"fmt"
	"strings"

	"golang.org/x/sys/unix"
)

// A root filesystem is the user's directory on the host, and an image's
// links in it are the image's: `etc -> /tmp/x` or `proc -> ../../..`
// mean the image's /tmp/x and its own root, never the host's. labctl,
// as root, prepares the container's mount points in it before the
// container runs, so each of those paths is resolved by the kernel inside
// the root (openat2 with RESOLVE_IN_ROOT), as the container itself will
// resolve it, and each mount targets the descriptor that resolution
// returned, never a path that a link swapped in meanwhile could redirect
// (runc does the same with securejoin and openat2).

// inRoot is a root filesystem held open: fd is an O_PATH descriptor of its
// top directory.
type inRoot struct{ fd int }

// maxLinks bounds the links followed while creating a mount point, as the
// kernel bounds a lookup's (MAXSYMLINKS).
const maxLinks = 40

// open resolves p (a path as the container sees it) inside the root and
// returns an O_PATH descriptor of what it names, with flags added
// (O_DIRECTORY, say).
func (r inRoot) open(p string, flags uint64) (int, error) {
	if p == "" {
		p = "."
	}
	fd, err := unix.Openat2(r.fd, p, &unix.OpenHow{
		Flags:   flags | unix.O_PATH | unix.O_CLOEXEC,
		Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS,
	})
	if errors.Is(err, unix.ENOSYS) {
		return -1, errors.New("keeping paths inside a root filesystem needs openat2 (Linux 5.6 or later)")
	}
	return fd, err
}

// mountPoint returns an O_PATH descriptor of the mount point at p (an
// absolute path as the container sees it): a directory when dir is set,
// else anything but a directory. What is missing is created, directories
// 0755 and an empty file 0644, as container runtimes create their mount
// points: along the image's links too (a dangling /etc/resolv.conf ->
// ../run/systemd/resolve/stub-resolv.conf gets that file), as far as they
// lead inside the root, which is always.
func (r inRoot) mountPoint(p string, dir bool) (int, error) {
	fd, err := r.resolveOrCreate(p, dir)
	if err != nil {
		return -1, fmt.Errorf("mount point %s: %w", p, err)
	}
	var st, top unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("mount point %s: %w", p, err)
	}
	switch isDir := st.Mode&unix.S_IFMT == unix.S_IFDIR; {
	case dir && !isDir:
		err = unix.ENOTDIR
	case !dir && isDir:
		err = unix.EISDIR
	case dir && unix.Fstat(r.fd, &top) == nil && st.Dev == top.Dev && st.Ino == top.Ino:
		// A link to / in the image: mounting over the root would hide it.
		err = errors.New("is the root filesystem itself")
	}
	if err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("mount point %s: %w", p, err)
	}
	return fd, nil
}

func (r inRoot) resolveOrCreate(p string, dir bool) (int, error) {
	var flags uint64
	if dir {
		flags = unix.O_DIRECTORY
	}
	links := 0
	// Each round creates one missing component or follows one dangling
	// link; the bound only stops a directory that someone keeps emptying.
	for range 4096 {
		fd, err := r.open(p, flags)
		if !errors.Is(err, unix.ENOENT) {
			return fd, err
		}
		var followed bool
		if p, followed, err = r.createFirst(p, dir); err != nil {
			return -1, err
		}
		if followed {
			if links++; links > maxLinks {
				return -1, unix.ELOOP
			}
		}
	}
	return -1, unix.ELOOP
}

// createFirst creates the first missing component of p inside the root,
// or, when that is a dangling link, returns p with the link replaced by
// its target (followed), to be created in turn. The path is never
// cleaned lexically: ".." means what the kernel makes of it after links.
func (r inRoot) createFirst(p string, dir bool) (next string, followed bool, err error) {
	var parts []string
	for _, c := range strings.Split(p, "/") {
		if c != "" && c != "." {
			parts = append(parts, c)
		}
	}
	for i, name := range parts {
		prefix := "/" + strings.Join(parts[:i+1], "/")
		fd, err := r.open(prefix, 0)
		if err == nil {
			unix.Close(fd)
			continue
		}
		if !errors.Is(err, unix.ENOENT) {
			return "", false, fmt.Errorf("%s: %w", prefix, err)
		}
		parent, err := r.open("/"+strings.Join(parts[:i], "/"), unix.O_DIRECTORY)
		if err != nil {
			return "", false, fmt.Errorf("%s: %w", prefix, err)
		}
		defer unix.Close(parent)
		buf := make([]byte, unix.PathMax)
		if n, err := unix.Readlinkat(parent, name, buf); err == nil {
			target := string(buf[:n])
			base := parts[:i]
			if strings.HasPrefix(target, "/") {
				base = nil // the root's /, RESOLVE_IN_ROOT sees to that
			}
			next := append(append(append([]string{""}, base...), target), parts[i+1:]...)
			return strings.Join(next, "/"), true, nil
		}
		if i < len(parts)-1 || dir {
			err = unix.Mkdirat(parent, name, 0o755)
		} else {
			var w int
			w, err = unix.Openat(parent, name, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o644)
			if err == nil {
				unix.Close(w)
			}
		}
		// EEXIST: someone else created it meanwhile; resolve it again.
		if err != nil && !errors.Is(err, unix.EEXIST) {
			return "", false, fmt.Errorf("create %s: %w", prefix, err)
		}
		return p, false, nil
	}
	// Everything exists now: created meanwhile.
	return p, false, nil
}
