package cgroups

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Owned reports whether dir is a cgroup labctl made: on a cgroup
// filesystem, below a "labctl" directory. Kill, Remove and RemovePod check
// it first: directories come from records (a pod's cgroups), and a damaged
// record must not make labctl empty directories elsewhere.
func Owned(dir string) bool {
	if !filepath.IsAbs(dir) || !slices.Contains(strings.Split(filepath.Clean(dir), "/"), Root) {
		return false
	}
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return false
	}
	return st.Type == unix.CGROUP_SUPER_MAGIC || st.Type == unix.CGROUP2_SUPER_MAGIC
}

// Procs lists the processes in dir and every cgroup below it.
func Procs(dir string) []int {
	var pids []int
	_ = filepath.WalkDir(dir, func(path string, e fs.DirEntry, err error) error {
		if err != nil || !e.IsDir() {
			return nil
		}
		pids = append(pids, readProcsFile(filepath.Join(path, "cgroup.procs"))...)
		return nil
	})
	return pids
}

func readProcsFile(file string) []int {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil
	}
	var pids []int
	for _, f := range bytes.Fields(b) {
		if pid, err := strconv.Atoi(string(f)); err == nil {
			pids = append(pids, pid)
		}
	}
	return pids
}

// Kill SIGKILLs every process in dir and below and waits until they
// are gone or the timeout passes; it returns the PIDs still there.
//
// cgroup v2's cgroup.kill does it atomically. Otherwise each process is
// pinned with a pidfd and killed only if the cgroup still lists its PID
// after that, so a PID reused in the meantime by someone else's process is
// never hit (a new process can only appear in our cgroup by being forked from
// one of ours).
func Kill(dir string, timeout time.Duration) []int {
	if !Owned(dir) {
		return nil
	}
	deadline := time.Now().Add(timeout)
	for {
		if err := writeExisting(filepath.Join(dir, "cgroup.kill"), "1"); err != nil {
			killListed(dir)
		}
		left := Procs(dir)
		if len(left) == 0 || time.Now().After(deadline) {
			return left
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// writeExisting writes a file that must exist: cgroup.kill is missing on
// cgroup v1 and before Linux 5.14, and must not be created then.
func writeExisting(file, value string) error {
	f, err := os.OpenFile(file, os.O_WRONLY|os.O_TRUNC, 0)
	if err != nil {
		return err
	}
	_, err = f.WriteString(value)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

func killListed(dir string) {
	_ = filepath.WalkDir(dir, func(path string, e fs.DirEntry, err error) error {
		if err != nil || !e.IsDir() {
			return nil
		}
		procs := filepath.Join(path, "cgroup.procs")
		fds := map[int]int{}
		for _, pid := range readProcsFile(procs) {
			if fd, err := unix.PidfdOpen(pid, 0); err == nil {
				fds[pid] = fd
			}
		}
		for _, pid := range readProcsFile(procs) {
			if fd, ok := fds[pid]; ok {
				_ = unix.PidfdSendSignal(fd, unix.SIGKILL, nil, 0)
			}
		}
		for _, fd := range fds {
			unix.Close(fd)
		}
		return nil
	})
}

// Remove removes dir and the cgroups below it, deepest first. The
// kernel refuses while a process is inside; a process that just died may
// need a moment to leave, so busy directories are retried briefly.
func Remove(dir string) error {
	if !Owned(dir) {
		return nil
	}
	var dirs []string
	err := filepath.WalkDir(dir, func(path string, e fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if e.IsDir() {
			dirs = append(dirs, path)
		}
		return nil
	})
	if err != nil {
		return err
	}
	for i := len(dirs) - 1; i >= 0; i-- {
		var err error
		for try := 0; try < 200; try++ {
			if err = unix.Rmdir(dirs[i]); err == nil || errors.Is(err, unix.ENOENT) {
				err = nil
				break
			}
			if !errors.Is(err, unix.EBUSY) {
				break
			}
			time.Sleep(5 * time.Millisecond)
		}
		if err != nil {
			return fmt.Errorf("remove cgroup %s: %w", dirs[i], err)
		}
	}
	return nil
}

// RemovePod removes a pod's cgroup dir (see Remove), and its lab's
// directory once its last pod is gone; failing to remove that because
// another pod is still there is the normal case.
func RemovePod(dir string) error {
	if err := Remove(dir); err != nil {
		return err
	}
	if lab := filepath.Dir(dir); Owned(lab) && filepath.Base(lab) != Root {
		_ = unix.Rmdir(lab)
	}
	return nil
}

// Labs lists the labs that have cgroups.
func (d Driver) Labs() ([]string, error) {
	var labs []string
	for _, h := range d.Hierarchies() {
		entries, err := os.ReadDir(filepath.Join(h, Root))
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
		for _, e := range entries {
			if e.IsDir() && !slices.Contains(labs, e.Name()) {
				labs = append(labs, e.Name())
			}
		}
	}
	slices.Sort(labs)
	return labs, nil
}
