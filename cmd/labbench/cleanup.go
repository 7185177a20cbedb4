package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

const netnsDir = "/run/netns"

// sweep removes whatever the benchmark may have left behind after a failure
// or an interrupt: first through labctl (its private state directory holds
// only the benchmark's labs), then every name under /run/netns that starts
// with this process's unique prefix. Names without the prefix are never
// touched. It returns the names it had to remove itself.
func sweep(labctl, stateDir string, pid int) ([]string, error) {
	var errs []error
	if labctl != "" && stateDir != "" {
		if _, err := os.Stat(filepath.Join(stateDir, "netns")); err == nil {
			cmd := exec.Command(labctl, "--state-dir", stateDir, "down", "--all")
			cmd.WaitDelay = time.Minute
			if out, err := cmd.CombinedOutput(); err != nil {
				errs = append(errs, fmt.Errorf("labctl down --all: %v: %s", err, strings.TrimSpace(string(out))))
			}
		}
	}
	left, err := ownNamespaces(pid)
	if err != nil {
		return nil, errors.Join(append(errs, err)...)
	}
	if err := deleteNamespaces(left); err != nil {
		errs = append(errs, err)
	}
	return left, errors.Join(errs...)
}

// ownNamespaces lists the names under /run/netns this process created.
func ownNamespaces(pid int) ([]string, error) {
	entries, err := os.ReadDir(netnsDir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	prefix := namePrefix(pid)
	var names []string
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), prefix) {
			names = append(names, e.Name())
		}
	}
	return names, nil
}

// deleteNamespaces does what `ip netns del` does: detach the bind mount and
// remove the mount point. The kernel frees each namespace once nothing else
// refers to it.
func deleteNamespaces(names []string) error {
	var errs []error
	for _, name := range names {
		path := filepath.Join(netnsDir, name)
		if err := unix.Unmount(path, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
			errs = append(errs, fmt.Errorf("unmount %s: %w", path, err))
			continue
		}
		if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// present returns those of names that exist under /run/netns.
func present(names []string) []string {
	var found []string
	for _, n := range names {
		if _, err := os.Lstat(filepath.Join(netnsDir, n)); err == nil {
			found = append(found, n)
		}
	}
	return found
}
