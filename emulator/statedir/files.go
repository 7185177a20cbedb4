package statedir

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// resolve is how every name beneath the directory is opened: never above
// the directory, never through a link of any kind.
const resolve = unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS

// noOpenat2 is set once the kernel said it has no openat2 (before 5.6).
// Every name passed to openat is one component, so openat with O_NOFOLLOW
// then does the same.
var noOpenat2 atomic.Bool

// openat opens one component name beneath dirfd without following a link.
func openat(dirfd int, name string, flags int, mode uint32) (int, error) {
	flags |= unix.O_CLOEXEC
	if flags&unix.O_CREAT == 0 {
		mode = 0 // openat2 refuses a mode it would not use
	}
	for {
		var fd int
		var err error
		if !noOpenat2.Load() {
			fd, err = unix.Openat2(dirfd, name, &unix.OpenHow{Flags: uint64(flags), Mode: uint64(mode), Resolve: resolve})
			if errors.Is(err, unix.ENOSYS) {
				noOpenat2.Store(true)
				continue
			}
		} else {
			fd, err = unix.Openat(dirfd, name, flags|unix.O_NOFOLLOW, mode)
		}
		if errors.Is(err, unix.EINTR) {
			continue
		}
		return fd, err
	}
}

// names splits rel into its components; "." has none.
func names(rel string) ([]string, error) {
	if !fs.ValidPath(rel) {
		return nil, fmt.Errorf("%q is not a relative path without \".\" and \"..\" elements", rel)
	}
	if rel == "." {
		return nil, nil
	}
	return strings.Split(rel, "/"), nil
}

// explain turns the errors a link causes (ELOOP from RESOLVE_NO_SYMLINKS or
// O_NOFOLLOW, ENOTDIR for O_DIRECTORY) into a refusal that says so.
func explain(dirfd int, name string, err error) error {
	if errors.Is(err, unix.ELOOP) || errors.Is(err, unix.ENOTDIR) || errors.Is(err, unix.EXDEV) {
		var st unix.Stat_t
		if unix.Fstatat(dirfd, name, &st, unix.AT_SYMLINK_NOFOLLOW) == nil && st.Mode&unix.S_IFMT == unix.S_IFLNK {
			return errSymlink
		}
	}
	return err
}

// openDir opens the directory at the components parts beneath d, checking
// each on the way, and creating missing ones with perm when create is set.
// With no components it returns d's own descriptor (own is false).
func (d *Dir) openDir(parts []string, create bool, perm uint32) (fd int, own bool, err error) {
	if d.fd < 0 {
		return -1, false, errors.New("state directory is closed")
	}
	fd = d.fd
	for i, name := range parts {
		next, err := openat(fd, name, unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW, 0)
		if errors.Is(err, unix.ENOENT) && create {
			if err := unix.Mkdirat(fd, name, perm); err != nil && !errors.Is(err, unix.EEXIST) {
				closeOwn(fd, i > 0)
				return -1, false, fmt.Errorf("create %q: %w", d.Join(strings.Join(parts[:i+1], "/")), err)
			}
			next, err = openat(fd, name, unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW, 0)
		}
		if err != nil {
			err = explain(fd, name, err)
			closeOwn(fd, i > 0)
			return -1, false, fmt.Errorf("%q: %w", d.Join(strings.Join(parts[:i+1], "/")), err)
		}
		closeOwn(fd, i > 0)
		fd = next
		var st unix.Stat_t
		if err := unix.Fstat(fd, &st); err != nil {
			unix.Close(fd)
			return -1, false, err
		}
		if err := checkDir(d.Join(strings.Join(parts[:i+1], "/")), &st, false); err != nil {
			unix.Close(fd)
			return -1, false, err
		}
	}
	return fd, len(parts) > 0, nil
}

func closeOwn(fd int, own bool) {
	if own {
		unix.Close(fd)
	}
}

// parent opens the directory holding rel's last component and returns it
// with that component; done closes what parent opened.
func (d *Dir) parent(rel string) (dirfd int, base string, done func(), err error) {
	parts, err := names(rel)
	if err == nil && len(parts) == 0 {
		err = errors.New("needs a name, not \".\"")
	}
	if err != nil {
		return -1, "", nil, err
	}
	fd, own, err := d.openDir(parts[:len(parts)-1], false, 0)
	if err != nil {
		return -1, "", nil, err
	}
	return fd, parts[len(parts)-1], func() { closeOwn(fd, own) }, nil
}

// fail wraps err with the operation and the path it was about.
func (d *Dir) fail(op, rel string, err error) error {
	// Errors from openDir already name the directory that failed; say
	// which operation it was for.
	return fmt.Errorf("%s %q: %w", op, d.Join(rel), err)
}

// OpenFile opens the regular file rel with flag (os.O_RDONLY, or
// os.O_WRONLY|os.O_APPEND|os.O_CREATE for a log, ...) and, when it
// creates the file, perm. A link is refused, as is a file that is not
// regular, not root's or writable by group or others; perm must not let
// others write. O_TRUNC truncates only a file that passed these checks.
func (d *Dir) OpenFile(rel string, flag int, perm fs.FileMode) (*os.File, error) {
	fd, err := d.openFile(rel, flag, perm)
	if err != nil {
		return nil, d.fail("open", rel, err)
	}
	return os.NewFile(uintptr(fd), d.Join(rel)), nil
}

func (d *Dir) openFile(rel string, flag int, perm fs.FileMode) (int, error) {
	if flag&os.O_CREATE != 0 && perm&0o022 != 0 {
		return -1, fmt.Errorf("mode %04o would let others write it", perm)
	}
	dirfd, base, done, err := d.parent(rel)
	if err != nil {
		return -1, err
	}
	defer done()
	// O_NONBLOCK: opening a named pipe must fail the check below, not
	// wait for a writer.
	fd, err := openat(dirfd, base, (flag|unix.O_NONBLOCK|unix.O_NOCTTY)&^unix.O_TRUNC, uint32(perm.Perm()))
	if err != nil {
		return -1, explain(dirfd, base, err)
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return -1, err
	}
	if err := checkFile(&st); err != nil {
		unix.Close(fd)
		return -1, err
	}
	if flag&unix.O_NONBLOCK == 0 {
		if _, err := unix.FcntlInt(uintptr(fd), unix.F_SETFL, flag&(unix.O_APPEND|unix.O_DIRECT|unix.O_NOATIME)); err != nil {
			unix.Close(fd)
			return -1, err
		}
	}
	if flag&unix.O_TRUNC != 0 && st.Size > 0 {
		if err := unix.Ftruncate(fd, 0); err != nil {
			unix.Close(fd)
			return -1, err
		}
	}
	return fd, nil
}

// ReadFile returns the content of the regular file rel, refusing one larger
// than maxBytes (ErrTooLarge) and everything OpenFile refuses.
func (d *Dir) ReadFile(rel string, maxBytes int64) ([]byte, error) {
	fd, err := d.openFile(rel, os.O_RDONLY, 0)
	if err != nil {
		return nil, d.fail("read", rel, err)
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return nil, d.fail("read", rel, err)
	}
	if st.Size > maxBytes {
		return nil, d.fail("read", rel, fmt.Errorf("%w: %d bytes, more than %d", ErrTooLarge, st.Size, maxBytes))
	}
	// The file may grow while it is read: read up to one byte past the
	// bound to notice.
	buf := make([]byte, st.Size+1)
	n := 0
	for {
		if n == len(buf) {
			if int64(n) > maxBytes {
				return nil, d.fail("read", rel, fmt.Errorf("%w: more than %d bytes", ErrTooLarge, maxBytes))
			}
			buf = append(buf, make([]byte, min(int64(len(buf)), maxBytes+1-int64(n)))...)
		}
		m, err := unix.Read(fd, buf[n:])
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return nil, d.fail("read", rel, err)
		}
		if m == 0 {
			return buf[:n], nil
		}
		n += m
	}
}

var tmpSeq atomic.Uint64

// tmpName is a name beside base that no other writer uses: hidden, with
// this process's ID and a counter.
func tmpName(base string) string {
	return "." + base + "." + strconv.Itoa(os.Getpid()) + "-" + strconv.FormatUint(tmpSeq.Add(1), 10) + ".tmp"
}

// WriteFile replaces rel with a file holding data, atomically: readers see
// the old content or the new, never a part. It writes a new file beside it
// and renames it over rel, so a link at rel is replaced, never followed;
// on failure the new file is removed. perm must not let others write; the
// umask applies. Nothing is synced: the state directory lives on /run.
func (d *Dir) WriteFile(rel string, data []byte, perm fs.FileMode) error {
	if err := d.writeFile(rel, data, perm, false); err != nil {
		return d.fail("write", rel, err)
	}
	return nil
}

// CreateFile creates rel holding data, atomically and only if nothing (not
// even a link) is at rel: an error satisfying errors.Is(err, fs.ErrExist)
// otherwise. Readers never see it empty or partial. This is how a claim on
// a name is made: of several processes creating the same rel at once,
// exactly one succeeds. On failure nothing is left behind.
func (d *Dir) CreateFile(rel string, data []byte, perm fs.FileMode) error {
	if err := d.writeFile(rel, data, perm, true); err != nil {
		return d.fail("create", rel, err)
	}
	return nil
}

// writeFile writes a new file beside rel and moves it to rel: renamed over
// whatever is there, or, exclusive, only where nothing is.
func (d *Dir) writeFile(rel string, data []byte, perm fs.FileMode, exclusive bool) error {
	if perm&0o022 != 0 {
		return fmt.Errorf("mode %04o would let others write it", perm)
	}
	dirfd, base, done, err := d.parent(rel)
	if err != nil {
		return err
	}
	defer done()
	var tmp string
	var fd int
	for range 100 {
		tmp = tmpName(base)
		fd, err = openat(dirfd, tmp, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL, uint32(perm.Perm()))
		if !errors.Is(err, unix.EEXIST) {
			break
		}
	}
	if err != nil {
		return err
	}
	err = writeAll(fd, data)
	if cerr := unix.Close(fd); err == nil {
		err = cerr
	}
	linked := false // the new file is at base and still at tmp
	switch {
	case err != nil:
	case !exclusive:
		err = unix.Renameat(dirfd, tmp, dirfd, base)
	default:
		err = unix.Renameat2(dirfd, tmp, dirfd, base, unix.RENAME_NOREPLACE)
		if errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOSYS) {
			// A file system without RENAME_NOREPLACE: link(2) also
			// refuses an existing name.
			err = unix.Linkat(dirfd, tmp, dirfd, base, 0)
			linked = err == nil
		}
	}
	if err != nil || linked {
		_ = unix.Unlinkat(dirfd, tmp, 0)
	}
	return err
}

func writeAll(fd int, data []byte) error {
	for len(data) > 0 {
		n, err := unix.Write(fd, data)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return err
		}
		data = data[n:]
	}
	return nil
}

// MkdirAll creates the directory rel and any missing parents with perm
// (which must not let others write), and checks every one of them.
func (d *Dir) MkdirAll(rel string, perm fs.FileMode) error {
	if perm&0o022 != 0 {
		return d.fail("create directory", rel, fmt.Errorf("mode %04o would let others write it", perm))
	}
	parts, err := names(rel)
	if err != nil {
		return d.fail("create directory", rel, err)
	}
	fd, own, err := d.openDir(parts, true, uint32(perm.Perm()))
	if err != nil {
		return d.fail("create directory", rel, err)
	}
	closeOwn(fd, own)
	return nil
}

// Sub returns the existing subdirectory rel as a Dir of its own, with the
// same guarantees (every directory on the way checked, nothing followed).
// Close it when done; it does not depend on d staying open.
func (d *Dir) Sub(rel string) (*Dir, error) {
	parts, err := names(rel)
	if err != nil {
		return nil, d.fail("open directory", rel, err)
	}
	fd, own, err := d.openDir(parts, false, 0)
	if err == nil && !own {
		fd, err = unix.FcntlInt(uintptr(d.fd), unix.F_DUPFD_CLOEXEC, 0)
	}
	if err != nil {
		return nil, d.fail("open directory", rel, err)
	}
	return &Dir{fd: fd, path: d.Join(rel)}, nil
}

// Remove removes the file, link or empty directory rel. A link is removed
// itself, never what it points to.
func (d *Dir) Remove(rel string) error {
	dirfd, base, done, err := d.parent(rel)
	if err != nil {
		return d.fail("remove", rel, err)
	}
	defer done()
	err = unix.Unlinkat(dirfd, base, 0)
	if errors.Is(err, unix.EISDIR) {
		err = unix.Unlinkat(dirfd, base, unix.AT_REMOVEDIR)
	}
	if err != nil {
		return d.fail("remove", rel, err)
	}
	return nil
}

// RemoveAll removes rel and everything beneath it; nothing if it does not
// exist. Links are removed themselves, never followed, and it never
// descends into another file system mounted beneath (that is an error).
func (d *Dir) RemoveAll(rel string) error {
	dirfd, base, done, err := d.parent(rel)
	if errors.Is(err, unix.ENOENT) {
		return nil
	}
	if err != nil {
		return d.fail("remove", rel, err)
	}
	defer done()
	var st unix.Stat_t
	if err := unix.Fstat(dirfd, &st); err != nil {
		return d.fail("remove", rel, err)
	}
	if err := removeAll(dirfd, base, d.Join(rel), st.Dev); err != nil {
		return fmt.Errorf("remove %q: %w", d.Join(rel), err)
	}
	return nil
}

// removeAll removes name beneath dirfd and everything beneath it, staying
// on the device dev; path names it in errors.
func removeAll(dirfd int, name, path string, dev uint64) error {
	err := unix.Unlinkat(dirfd, name, 0)
	if err == nil || errors.Is(err, unix.ENOENT) {
		return nil
	}
	if !errors.Is(err, unix.EISDIR) {
		return fmt.Errorf("%q: %w", path, err)
	}
	fd, err := openat(dirfd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW, 0)
	switch {
	case errors.Is(err, unix.ELOOP) || errors.Is(err, unix.ENOTDIR):
		// Replaced by a link or a file since: remove that instead.
		return removeAll(dirfd, name, path, dev)
	case errors.Is(err, unix.ENOENT):
		return nil
	case err != nil:
		return fmt.Errorf("%q: %w", path, err)
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return fmt.Errorf("%q: %w", path, err)
	}
	if st.Dev != dev {
		return fmt.Errorf("%q is a mount point: what is mounted there is not removed", path)
	}
	// A few passes, in case entries appear while it is emptied.
	for range 3 {
		entries, err := readNames(fd)
		if err != nil {
			return fmt.Errorf("%q: %w", path, err)
		}
		if len(entries) == 0 {
			break
		}
		for _, e := range entries {
			if err := removeAll(fd, e, path+"/"+e, dev); err != nil {
				return err
			}
		}
	}
	if err := unix.Unlinkat(dirfd, name, unix.AT_REMOVEDIR); err != nil && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("%q: %w", path, err)
	}
	return nil
}

// readNames reads the names of a directory from its start.
func readNames(fd int) ([]string, error) {
	if _, err := unix.Seek(fd, 0, 0); err != nil {
		return nil, err
	}
	var out []string
	buf := make([]byte, 8192)
	for {
		n, err := unix.Getdents(fd, buf)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return nil, err
		}
		if n <= 0 {
			return out, nil
		}
		_, _, out = unix.ParseDirent(buf[:n], -1, out)
	}
}

// ReadDir lists the directory rel ("." for d itself), sorted by name.
// Entries report their type without following links; Info stats them
// through d (keep d open while calling it).
func (d *Dir) ReadDir(rel string) ([]fs.DirEntry, error) {
	parts, err := names(rel)
	if err != nil {
		return nil, d.fail("list", rel, err)
	}
	fd, own, err := d.openDir(parts, false, 0)
	if err != nil {
		return nil, d.fail("list", rel, err)
	}
	// The O_PATH descriptor cannot be read: open the directory itself.
	rfd, err := openat(fd, ".", unix.O_RDONLY|unix.O_DIRECTORY, 0)
	closeOwn(fd, own)
	if err != nil {
		return nil, d.fail("list", rel, err)
	}
	f := os.NewFile(uintptr(rfd), d.Join(rel))
	entries, err := f.ReadDir(-1)
	f.Close()
	if err != nil {
		return nil, d.fail("list", rel, err)
	}
	out := make([]fs.DirEntry, len(entries))
	for i, e := range entries {
		out[i] = dirEntry{e, d, filepath.Join(rel, e.Name())}
	}
	slices.SortFunc(out, func(a, b fs.DirEntry) int { return strings.Compare(a.Name(), b.Name()) })
	return out, nil
}

type dirEntry struct {
	fs.DirEntry
	d   *Dir
	rel string
}

func (e dirEntry) Info() (fs.FileInfo, error) { return e.d.Lstat(e.rel) }

// Lstat describes rel itself, a link included ("." is d).
func (d *Dir) Lstat(rel string) (fs.FileInfo, error) {
	if rel == "." {
		fi := &fileInfo{name: filepath.Base(d.path)}
		if err := unix.Fstat(d.fd, &fi.st); err != nil {
			return nil, d.fail("stat", rel, err)
		}
		return fi, nil
	}
	dirfd, base, done, err := d.parent(rel)
	if err != nil {
		return nil, d.fail("stat", rel, err)
	}
	defer done()
	fi := &fileInfo{name: base}
	if err := unix.Fstatat(dirfd, base, &fi.st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return nil, d.fail("stat", rel, err)
	}
	return fi, nil
}

// Stat is Lstat that refuses a link rather than describing it: nothing
// beneath the directory is ever followed.
func (d *Dir) Stat(rel string) (fs.FileInfo, error) {
	fi, err := d.Lstat(rel)
	if err == nil && fi.Mode()&fs.ModeSymlink != 0 {
		return nil, d.fail("stat", rel, errSymlink)
	}
	return fi, err
}

// Symlink makes rel a link to target, replacing whatever link or file is
// there atomically (a new link beside it, renamed over it): concurrent
// callers making the same link never see it missing. Used for the applet
// links (curl, ping -> the labctl binary); labctl itself never follows
// links in the directory, programs it starts may.
func (d *Dir) Symlink(target, rel string) error {
	dirfd, base, done, err := d.parent(rel)
	if err != nil {
		return d.fail("link", rel, err)
	}
	defer done()
	var tmp string
	for range 100 {
		tmp = tmpName(base)
		err = unix.Symlinkat(target, dirfd, tmp)
		if !errors.Is(err, unix.EEXIST) {
			break
		}
	}
	if err == nil {
		if err = unix.Renameat(dirfd, tmp, dirfd, base); err != nil {
			_ = unix.Unlinkat(dirfd, tmp, 0)
		}
	}
	if err != nil {
		return d.fail("link", rel, err)
	}
	return nil
}

// Readlink returns the target of the link rel.
func (d *Dir) Readlink(rel string) (string, error) {
	dirfd, base, done, err := d.parent(rel)
	if err != nil {
		return "", d.fail("read link", rel, err)
	}
	defer done()
	target, err := readlinkat(dirfd, base)
	if err != nil {
		return "", d.fail("read link", rel, err)
	}
	return target, nil
}
