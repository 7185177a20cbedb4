// Package statedir is the only way labctl touches files under its state
// directory (/run/labctl, --state-dir or LABCTL_STATE_DIR). labctl runs as
// root, and what it finds there decides which namespaces it deletes and
// which processes it signals, so the directory must be one nobody else can
// change, and nothing in it may lead root's file operations elsewhere.
//
// # Which directories are accepted
//
// Open walks the path from / one component at a time, each opened relative
// to the one before without following symbolic links, and accepts it only
// when every directory on the way is owned by root and not writable by
// group or others. An ancestor writable by others is accepted when it has
// the sticky bit, as /tmp and /dev/shm do: there only an entry's owner (or
// root) can rename or remove it, so root's entry in it stays root's. This
// is the rule OpenSSH's secure-path check applies to a key's directories.
//
// A symbolic link on the way (/var/run -> /run on many hosts) is followed
// only when root owns it: it then sits in a directory that passed the check
// (or the walk would have stopped before), so only root could have made it
// or could change it. A link owned by another user, such as one planted in
// /tmp, is refused. Path names the directory the walk arrived at, with
// every link resolved.
//
// When labctl does not run as root (tests, `labctl validate`), the caller's
// own user is trusted as well as root.
//
// # Operations beneath it
//
// The accepted directory is held open (an O_PATH descriptor) and every
// later operation resolves beneath that descriptor, one component at a
// time, with openat2(RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS|RESOLVE_NO_MAGICLINKS)
// (plain openat with O_NOFOLLOW on kernels before 5.6, which is the same for
// a single component). A symbolic link is never followed: reading, opening,
// locking or entering one is refused; Remove, RemoveAll, WriteFile and
// Symlink act on the link itself. Every directory an operation passes
// through and every file it reads or opens must also be root's and not
// writable by group or others, and files must be regular. Names must be
// slash-separated relative paths without "." or ".." elements
// (fs.ValidPath).
//
// Errors name the path and the reason; errors.Is(err, ErrUnsafe) tells a
// refusal on the grounds above from an ordinary failure such as a missing
// file (errors.Is(err, fs.ErrNotExist)).
package statedir

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// ErrUnsafe says a path was refused because someone other than root could
// change it, or because it is a symbolic link.
var ErrUnsafe = errors.New("unsafe")

// ErrTooLarge says a file is larger than the caller's bound.
var ErrTooLarge = errors.New("file too large")

// UnsafeError is a refused path: what is wrong with it and how to fix it.
// Path is empty when the operation's error already names it.
type UnsafeError struct {
	Path   string
	Reason string
	Fix    string
}

func (e *UnsafeError) Error() string {
	s := e.Reason
	if e.Path != "" {
		s = fmt.Sprintf("%q %s", e.Path, e.Reason)
	}
	if e.Fix != "" {
		s += "; " + e.Fix
	}
	return s
}

// Is makes errors.Is(err, ErrUnsafe) true.
func (e *UnsafeError) Is(target error) bool { return target == ErrUnsafe }

// Dir is an accepted state directory (or a subdirectory of one), held open.
// Its methods may be called from several goroutines at once, but not
// concurrently with Close.
type Dir struct {
	fd   int    // O_PATH, a directory that passed the checks
	path string // absolute, links resolved: for messages
}

// Open returns the state directory at path, creating it (and missing
// ancestors, mode 0755) when it does not exist. A relative path is made
// absolute. It refuses a directory that anyone but root can change (see the
// package documentation), naming the offending path and the fix.
func Open(path string) (*Dir, error) { return open(path, true) }

// OpenExisting is Open without creating anything: a missing directory is an
// error satisfying errors.Is(err, fs.ErrNotExist). Readers use it, so that
// looking at a lab never creates its directories.
func OpenExisting(path string) (*Dir, error) { return open(path, false) }

func open(path string, create bool) (*Dir, error) {
	if path == "" {
		return nil, errors.New("state directory: empty path")
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("state directory %q: %w", path, err)
	}
	fd, real, err := walk(abs, create)
	if err != nil {
		return nil, fmt.Errorf("state directory %q: %w", abs, err)
	}
	return &Dir{fd: fd, path: real}, nil
}

// Path is the directory's absolute path, for messages and for handing to
// another process (which opens it with Open again).
func (d *Dir) Path() string { return d.path }

// Join is the absolute path of rel beneath the directory, for messages.
func (d *Dir) Join(rel string) string { return filepath.Join(d.path, rel) }

// Close releases the directory. Locks taken through it stay held until
// released.
func (d *Dir) Close() error {
	if d.fd < 0 {
		return nil
	}
	err := unix.Close(d.fd)
	d.fd = -1
	return err
}

// trustedUID is whoever may own the state directory and what is in it:
// root, and the caller itself when it is not root.
func trustedUID(uid uint32) bool { return uid == 0 || int(uid) == os.Geteuid() }

func ownerName() string {
	if os.Geteuid() == 0 {
		return "root"
	}
	return fmt.Sprintf("root or uid %d", os.Geteuid())
}

// checkDir accepts a directory on the path to the state directory (ancestor:
// a sticky directory writable by others is fine) or the state directory and
// what is below it (not ancestor: nobody but root may write it).
func checkDir(path string, st *unix.Stat_t, ancestor bool) error {
	if st.Mode&unix.S_IFMT != unix.S_IFDIR {
		return fmt.Errorf("%q is not a directory", path)
	}
	if !trustedUID(st.Uid) {
		return &UnsafeError{Path: path, Reason: fmt.Sprintf("is owned by uid %d, not %s", st.Uid, ownerName()),
			Fix: "labctl trusts a state directory only when nobody else can change it or a directory above it; remove it or choose another state directory (--state-dir)"}
	}
	if st.Mode&0o022 != 0 && !(ancestor && st.Mode&unix.S_ISVTX != 0) {
		return &UnsafeError{Path: path, Reason: fmt.Sprintf("is writable by group or others (mode %04o)", st.Mode&0o7777),
			Fix: fmt.Sprintf("run `chmod go-w %s` or choose another state directory (--state-dir)", path)}
	}
	return nil
}

// checkFile accepts a file beneath the state directory: regular, root's,
// not writable by group or others.
func checkFile(st *unix.Stat_t) error {
	if t := st.Mode & unix.S_IFMT; t != unix.S_IFREG {
		return &UnsafeError{Reason: "is not a regular file (" + typeName(t) + ")",
			Fix: "labctl keeps only regular files in its state directory; remove it"}
	}
	if !trustedUID(st.Uid) {
		return &UnsafeError{Reason: fmt.Sprintf("is owned by uid %d, not %s", st.Uid, ownerName()),
			Fix: "labctl trusts only its own files in its state directory; remove it"}
	}
	if st.Mode&0o022 != 0 {
		return &UnsafeError{Reason: fmt.Sprintf("is writable by group or others (mode %04o)", st.Mode&0o7777),
			Fix: "labctl trusts only files nobody else can change; remove it"}
	}
	return nil
}

func typeName(t uint32) string {
	switch t {
	case unix.S_IFDIR:
		return "a directory"
	case unix.S_IFLNK:
		return "a symbolic link"
	case unix.S_IFIFO:
		return "a named pipe"
	case unix.S_IFSOCK:
		return "a socket"
	case unix.S_IFCHR:
		return "a character device"
	case unix.S_IFBLK:
		return "a block device"
	}
	return "a regular file"
}

var errSymlink = &UnsafeError{Reason: "is a symbolic link",
	Fix: "labctl never follows symbolic links in its state directory; remove it"}

// maxLinks bounds the symbolic links Open follows, as the kernel's 40.
const maxLinks = 40

// walk opens abs (absolute and clean) from / one component at a time,
// checking each directory and following only root's symbolic links, and
// returns the final directory's descriptor and its resolved path.
func walk(abs string, create bool) (int, string, error) {
	type dir struct {
		fd   int
		path string
	}
	root, err := unix.Open("/", unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, "", fmt.Errorf("open /: %w", err)
	}
	stack := []dir{{root, "/"}}
	closeFrom := func(i int) {
		for _, d := range stack[i:] {
			unix.Close(d.fd)
		}
		stack = stack[:i]
	}
	fail := func(err error) (int, string, error) {
		closeFrom(0)
		return -1, "", err
	}
	var st unix.Stat_t
	if err := unix.Fstat(root, &st); err != nil {
		return fail(fmt.Errorf("stat /: %w", err))
	}
	if err := checkDir("/", &st, true); err != nil {
		return fail(err)
	}
	todo := strings.Split(abs, "/")
	links := 0
	for len(todo) > 0 {
		name := todo[0]
		todo = todo[1:]
		top := stack[len(stack)-1]
		switch name {
		case "", ".":
			continue
		case "..":
			if len(stack) > 1 {
				closeFrom(len(stack) - 1)
			}
			continue
		}
		path := filepath.Join(top.path, name)
		fd, err := unix.Openat(top.fd, name, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if errors.Is(err, unix.ENOENT) && create {
			// Made by root with mode 0755: it passes the check below,
			// unless someone else made it first, which the check catches.
			if err := unix.Mkdirat(top.fd, name, 0o755); err != nil && !errors.Is(err, unix.EEXIST) {
				return fail(fmt.Errorf("create %q: %w", path, err))
			}
			fd, err = unix.Openat(top.fd, name, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		}
		if err != nil {
			return fail(fmt.Errorf("%q: %w", path, err))
		}
		if err := unix.Fstat(fd, &st); err != nil {
			unix.Close(fd)
			return fail(fmt.Errorf("stat %q: %w", path, err))
		}
		if st.Mode&unix.S_IFMT == unix.S_IFLNK {
			target, err := readlinkFD(fd)
			unix.Close(fd)
			switch {
			case !trustedUID(st.Uid):
				return fail(&UnsafeError{Path: path, Reason: fmt.Sprintf("is a symbolic link owned by uid %d, not %s", st.Uid, ownerName()),
					Fix: "labctl follows a symbolic link on the way to its state directory only when root owns it; give the real directory"})
			case err != nil:
				return fail(fmt.Errorf("read link %q: %w", path, err))
			case links >= maxLinks:
				return fail(fmt.Errorf("%q: %w", path, unix.ELOOP))
			}
			links++
			if strings.HasPrefix(target, "/") {
				closeFrom(1)
			}
			todo = append(strings.Split(target, "/"), todo...)
			continue
		}
		if err := checkDir(path, &st, true); err != nil {
			unix.Close(fd)
			return fail(err)
		}
		stack = append(stack, dir{fd, path})
	}
	// The state directory itself must not be writable by others, sticky or
	// not. Checked here rather than in the loop: a link's target may end in
	// "..", so the last directory opened need not be the last one left.
	final := stack[len(stack)-1]
	if err := unix.Fstat(final.fd, &st); err != nil {
		return fail(fmt.Errorf("stat %q: %w", final.path, err))
	}
	if err := checkDir(final.path, &st, false); err != nil {
		return fail(err)
	}
	if len(stack) == 1 {
		// The state directory is / itself: keep our own descriptor of it.
		fd, err := unix.FcntlInt(uintptr(root), unix.F_DUPFD_CLOEXEC, 0)
		if err != nil {
			return fail(err)
		}
		closeFrom(0)
		return fd, "/", nil
	}
	stack = stack[:len(stack)-1]
	closeFrom(0)
	return final.fd, final.path, nil
}

// readlinkFD reads the target of the link an O_PATH descriptor names.
func readlinkFD(fd int) (string, error) {
	return readlinkat(fd, "")
}

func readlinkat(dirfd int, name string) (string, error) {
	for size := 256; ; size *= 2 {
		buf := make([]byte, size)
		n, err := unix.Readlinkat(dirfd, name, buf)
		if err != nil {
			return "", err
		}
		if n < size {
			return string(buf[:n]), nil
		}
	}
}

// fileInfo is an fs.FileInfo from a stat; Sys returns *unix.Stat_t.
type fileInfo struct {
	name string
	st   unix.Stat_t
}

func (fi *fileInfo) Name() string       { return fi.name }
func (fi *fileInfo) Size() int64        { return fi.st.Size }
func (fi *fileInfo) IsDir() bool        { return fi.st.Mode&unix.S_IFMT == unix.S_IFDIR }
func (fi *fileInfo) Sys() any           { return &fi.st }
func (fi *fileInfo) ModTime() time.Time { return time.Unix(fi.st.Mtim.Unix()) }

func (fi *fileInfo) Mode() fs.FileMode {
	m := fs.FileMode(fi.st.Mode & 0o777)
	switch fi.st.Mode & unix.S_IFMT {
	case unix.S_IFDIR:
		m |= fs.ModeDir
	case unix.S_IFLNK:
		m |= fs.ModeSymlink
	case unix.S_IFIFO:
		m |= fs.ModeNamedPipe
	case unix.S_IFSOCK:
		m |= fs.ModeSocket
	case unix.S_IFCHR:
		m |= fs.ModeDevice | fs.ModeCharDevice
	case unix.S_IFBLK:
		m |= fs.ModeDevice
	}
	if fi.st.Mode&unix.S_ISUID != 0 {
		m |= fs.ModeSetuid
	}
	if fi.st.Mode&unix.S_ISGID != 0 {
		m |= fs.ModeSetgid
	}
	if fi.st.Mode&unix.S_ISVTX != 0 {
		m |= fs.ModeSticky
	}
	return m
}
