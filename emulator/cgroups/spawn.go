package cgroups

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"github.com/labctl/labctl/emulator/netns"
)

// BornIn says whether a process can be born in its cgroups, forked from a
// thread that joined them first (JoinThread, Spawner). On cgroup v1 it
// can; on v2 the process joins after it started (clone3's
// CLONE_INTO_CGROUP would do it there).
func (d Driver) BornIn() bool { return d.Name == V1 }

// Moving a whole process into a cgroup (writing its PID to cgroup.procs)
// takes a global lock for writing that stalls every fork and thread
// creation on the machine until an RCU grace period has passed; with a
// hundred pods starting at once that lock was the largest cost of a
// container start. A thread can move just itself (0 to a v1 hierarchy's
// tasks file) without that lock, and a child is born in the cgroups of the
// thread that forks it. So on cgroup v1 processes are forked from a thread
// that stepped into their cgroups first.

// JoinThread moves the calling OS thread, and only it, into dirs.
func JoinThread(dirs []string) error {
	for _, dir := range dirs {
		if err := os.WriteFile(filepath.Join(dir, "tasks"), []byte("0"), 0o644); err != nil {
			return fmt.Errorf("join cgroup %s: %w", dir, err)
		}
	}
	return nil
}

// Spawner forks processes, each into its own cgroups (cgroup v1), from one
// OS thread kept for the life of the process that made it: the thread steps
// into the child's cgroups, forks, and steps back into home. A pod's
// supervisor forks its containers through one: containers use Pdeathsig,
// which fires when the thread that forked them ends, and this one ends only
// with the supervisor.
type Spawner struct {
	home []string
	reqs chan spawnRequest
}

type spawnRequest struct {
	dirs  []string
	spawn func() error
	done  chan error
}

// NewSpawner starts a spawner whose thread lives in the cgroups home.
func NewSpawner(home []string) *Spawner {
	sp := &Spawner{home: home, reqs: make(chan spawnRequest)}
	// The thread must outlive every child: it serves the spawner forever.
	go netns.OnThrowawayThread(func() {
		for req := range sp.reqs {
			err := JoinThread(req.dirs)
			if err == nil {
				err = req.spawn()
			}
			if herr := JoinThread(sp.home); herr != nil {
				// Still in the container's cgroups: they could not be
				// removed. Report it with the fork's outcome.
				err = errors.Join(err, fmt.Errorf("back to the spawner's own cgroups: %w", herr))
			}
			req.done <- err
		}
	})
	return sp
}

// SpawnIn runs spawn on the spawner's thread, inside dirs.
func (sp *Spawner) SpawnIn(dirs []string, spawn func() error) error {
	done := make(chan error, 1)
	sp.reqs <- spawnRequest{dirs: dirs, spawn: spawn, done: done}
	return <-done
}

// Move moves the whole process pid into each of dirs (cgroup.procs). See
// above for why hot paths prefer forking from a thread that joined them.
func Move(pid int, dirs ...string) error {
	for _, dir := range dirs {
		if err := os.WriteFile(filepath.Join(dir, "cgroup.procs"), []byte(strconv.Itoa(pid)), 0o644); err != nil {
			return fmt.Errorf("join cgroup %s: %w", dir, err)
		}
	}
	return nil
}
