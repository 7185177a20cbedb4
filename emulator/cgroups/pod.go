package cgroups

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// Pods live in <hierarchy>/labctl/<lab>/<pod>/, with one child cgroup per
// container and one for the pod's supervisor.

// Pod is a pod's directory in each hierarchy.
type Pod struct {
	driver Driver
	dirs   []string
}

// Dirs are the pod's directories, one per hierarchy.
func (pc *Pod) Dirs() []string { return pc.dirs }

// LabDirs returns where a lab's cgroups live (the parents of its pods'),
// whether or not they exist.
func (d Driver) LabDirs(lab string) []string {
	var dirs []string
	for _, h := range d.Hierarchies() {
		dirs = append(dirs, filepath.Join(h, Root, lab))
	}
	return dirs
}

// PodDirs returns where a pod's cgroups live, whether or not they
// exist.
func (d Driver) PodDirs(lab, pod string) []string {
	var dirs []string
	for _, h := range d.Hierarchies() {
		dirs = append(dirs, filepath.Join(h, Root, lab, pod))
	}
	return dirs
}

// CreatePod makes the pod's cgroups. Several pods of one lab may create
// the shared parents at once, and the removal of a sibling (RemovePod) may
// remove the lab directory between two of our mkdirs: both are retried.
func (d Driver) CreatePod(lab, pod string) (*Pod, error) {
	pc := &Pod{driver: d}
	for _, h := range d.Hierarchies() {
		var dir string
		var err error
		for range 5 {
			if dir, err = d.mkdirChain(h, []string{Root, lab, pod}); !errors.Is(err, fs.ErrNotExist) {
				break
			}
		}
		if err != nil {
			return nil, err
		}
		pc.dirs = append(pc.dirs, dir)
	}
	return pc, nil
}

// mkdirChain creates h/a/b/c..., enabling the controllers for the children
// of each level on cgroup v2 (the root's only if they are not yet on).
func (d Driver) mkdirChain(h string, parts []string) (string, error) {
	dir := h
	if d.Name == V2 {
		if err := enableControllers(dir); err != nil {
			return "", err
		}
	}
	for _, p := range parts {
		dir = filepath.Join(dir, p)
		if err := os.Mkdir(dir, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
			return "", fmt.Errorf("create cgroup %s: %w", dir, err)
		}
		if d.Name == V2 {
			if err := enableControllers(dir); err != nil {
				return "", err
			}
		}
	}
	return dir, nil
}

func enableControllers(dir string) error {
	file := filepath.Join(dir, "cgroup.subtree_control")
	b, err := os.ReadFile(file)
	if err != nil {
		return fmt.Errorf("cgroup %s: %w", dir, err)
	}
	on := strings.Fields(string(b))
	if slices.Contains(on, "cpu") && slices.Contains(on, "memory") {
		return nil
	}
	if err := os.WriteFile(file, []byte("+cpu +memory"), 0o644); err != nil {
		return fmt.Errorf("enable cpu and memory controllers in %s: %w", dir, err)
	}
	return nil
}

// Join moves process pid into the child cgroup name of every hierarchy.
func (pc *Pod) Join(name string, pid int) error {
	for _, dir := range pc.dirs {
		if err := Move(pid, filepath.Join(dir, name)); err != nil {
			return err
		}
	}
	return nil
}

// Container creates (or reuses, after a restart) a container's cgroups
// and writes the settings its resources map to; it returns the
// directories, one per hierarchy, and what it wrote.
func (pc *Pod) Container(name string, r Resources) ([]string, []Setting, error) {
	dirs, err := pc.Child(name)
	if err != nil {
		return nil, nil, err
	}
	wrote, err := pc.write(dirs, pc.driver.settings(r))
	return dirs, wrote, err
}

// Child creates the cgroup name below the pod in every hierarchy, without
// settings (the supervisor's own, for one: it must never be starved by a
// BestEffort cpu.shares of 2).
func (pc *Pod) Child(name string) ([]string, error) {
	var dirs []string
	for _, pd := range pc.dirs {
		dir := filepath.Join(pd, name)
		if err := os.Mkdir(dir, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
			return nil, fmt.Errorf("create cgroup %s: %w", dir, err)
		}
		dirs = append(dirs, dir)
	}
	return dirs, nil
}

// Limit writes the pod-level values the kubelet gives a pod cgroup, for
// containers with resources rs:
// cpu.shares (cpu.weight) from the sum of the containers' requests, so
// requests weigh against other pods and not only within the pod, and a CFS
// quota of the sum of the limits when every container has one. The pod's
// memory is not limited: the supervisor lives in the pod cgroup too, and an
// OOM kill at pod level would not be seen as the container's.
func (pc *Pod) Limit(rs []Resources) ([]Setting, error) {
	var sum Resources
	allLimited := true
	for _, r := range rs {
		r = r.effective()
		sum.CPURequestMilli += r.CPURequestMilli
		sum.CPULimitMilli += r.CPULimitMilli
		allLimited = allLimited && r.CPULimitMilli > 0
	}
	if !allLimited {
		sum.CPULimitMilli = 0
	}
	var settings []Setting
	for _, s := range pc.driver.settings(Resources{CPURequestMilli: sum.CPURequestMilli, CPULimitMilli: sum.CPULimitMilli}) {
		if strings.HasPrefix(s.File, "cpu.") {
			settings = append(settings, s)
		}
	}
	return pc.write(pc.dirs, settings)
}

func (pc *Pod) write(dirs []string, settings []Setting) ([]Setting, error) {
	var wrote []Setting
	for _, s := range settings {
		dir := pc.dirFor(dirs, s.File)
		err := os.WriteFile(filepath.Join(dir, s.File), []byte(s.Value), 0o644)
		if err != nil {
			if optionalSetting(s.File) {
				continue
			}
			return nil, fmt.Errorf("cgroup %s: write %s=%s: %w", dir, s.File, s.Value, err)
		}
		wrote = append(wrote, s)
	}
	return wrote, nil
}

// dirFor picks, among a container's directories, the hierarchy that has
// file's controller.
func (pc *Pod) dirFor(dirs []string, file string) string {
	if pc.driver.Name == V1 && strings.HasPrefix(file, "memory.") {
		return dirs[len(dirs)-1] // the memory hierarchy is listed last
	}
	return dirs[0]
}

// OOMKills reads how many processes the kernel's OOM killer has killed in a
// container's cgroup so far.
func (d Driver) OOMKills(dirs []string) uint64 {
	if len(dirs) == 0 {
		return 0
	}
	var file string
	switch d.Name {
	case V2:
		file = filepath.Join(dirs[0], "memory.events")
	case V1:
		file = filepath.Join(dirs[len(dirs)-1], "memory.oom_control")
	default:
		return 0
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "oom_kill "); ok {
			n, _ := strconv.ParseUint(strings.TrimSpace(v), 10, 64)
			return n
		}
	}
	return 0
}
