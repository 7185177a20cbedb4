package cgroups

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// This machine has no cgroup v2 controllers, so the v2 paths run here
// against a directory that imitates a cgroup2 mount: the files they read
// and write are plain files. It checks which files get which values, not
// the kernel's reaction.
func TestV2Layout(t *testing.T) {
	root := t.TempDir()
	d := Driver{Name: V2, Unified: root}
	pod := filepath.Join(root, Root, "lab", "pod")
	for _, dir := range []string{root, filepath.Join(root, Root), filepath.Join(root, Root, "lab"), pod} {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "cgroup.subtree_control"), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// The root already has the controllers on: it must not be written.
	if err := os.WriteFile(filepath.Join(root, "cgroup.subtree_control"), []byte("cpu io memory pids\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	pc, err := d.CreatePod("lab", "pod")
	if err != nil {
		t.Fatal(err)
	}
	if len(pc.dirs) != 1 || pc.dirs[0] != pod || d.PodDirs("lab", "pod")[0] != pod {
		t.Fatalf("pod cgroups %v, want [%s]", pc.dirs, pod)
	}
	for dir, want := range map[string]string{
		root:                             "cpu io memory pids\n",
		filepath.Join(root, Root):        "+cpu +memory",
		filepath.Join(root, Root, "lab"): "+cpu +memory",
		pod:                              "+cpu +memory",
	} {
		b, _ := os.ReadFile(filepath.Join(dir, "cgroup.subtree_control"))
		if string(b) != want {
			t.Errorf("%s/cgroup.subtree_control = %q, want %q", dir, b, want)
		}
	}
	podSet, err := pc.Limit([]Resources{
		{CPURequestMilli: 100, CPULimitMilli: 200},
		{CPULimitMilli: 300}, // requests its limit
	})
	if err != nil {
		t.Fatal(err)
	}
	// shares 409 (400m) -> weight 16; quota of 500m.
	if want := []Setting{{"cpu.weight", "16"}, {"cpu.max", "50000 100000"}}; !equalSettings(podSet, want) {
		t.Errorf("pod settings %v, want %v", podSet, want)
	}
	if b, _ := os.ReadFile(filepath.Join(pod, "cpu.max")); string(b) != "50000 100000" {
		t.Errorf("pod cpu.max = %q", b)
	}
	dirs, wrote, err := pc.Container("web-server", Resources{CPURequestMilli: 100, CPULimitMilli: 200, MemoryRequest: 100 << 20, MemoryLimit: 200 << 20})
	if err != nil {
		t.Fatal(err)
	}
	ctr := filepath.Join(pod, "web-server")
	if len(dirs) != 1 || dirs[0] != ctr || len(wrote) != 6 {
		t.Fatalf("container cgroups %v, wrote %v", dirs, wrote)
	}
	for file, want := range map[string]string{
		"cpu.weight": "4", "cpu.max": "20000 100000", "memory.low": "104857600", "memory.max": "209715200",
	} {
		if b, _ := os.ReadFile(filepath.Join(ctr, file)); string(b) != want {
			t.Errorf("%s = %q, want %q", file, b, want)
		}
	}
	if err := os.WriteFile(filepath.Join(ctr, "memory.events"), []byte("low 0\nhigh 0\nmax 9\noom 2\noom_kill 2\noom_group_kill 1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if n := d.OOMKills(dirs); n != 2 {
		t.Errorf("oomKills = %d, want 2", n)
	}
	if err := pc.Join("web-server", 42); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(ctr, "cgroup.procs")); string(b) != "42" {
		t.Errorf("cgroup.procs = %q", b)
	}
}

func TestV1Layout(t *testing.T) {
	cpu, mem := t.TempDir(), t.TempDir()
	d := Driver{Name: V1, CPU: cpu, Memory: mem}
	pc, err := d.CreatePod("lab", "pod")
	if err != nil {
		t.Fatal(err)
	}
	// One container without a CPU limit: the pod has no quota, only shares.
	podSet, err := pc.Limit([]Resources{{CPURequestMilli: 250}, {}})
	if err != nil {
		t.Fatal(err)
	}
	if want := []Setting{{"cpu.shares", "256"}}; !equalSettings(podSet, want) {
		t.Errorf("pod settings %v, want %v", podSet, want)
	}
	dirs, _, err := pc.Container("c", Resources{CPULimitMilli: 200, MemoryLimit: 1 << 30})
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{filepath.Join(cpu, "labctl/lab/pod/c"), filepath.Join(mem, "labctl/lab/pod/c")}; strings.Join(dirs, " ") != strings.Join(want, " ") {
		t.Fatalf("dirs %v, want %v", dirs, want)
	}
	for file, dir := range map[string]string{
		"cpu.shares": dirs[0], "cpu.cfs_quota_us": dirs[0], "memory.limit_in_bytes": dirs[1], "memory.soft_limit_in_bytes": dirs[1],
	} {
		if _, err := os.Stat(filepath.Join(dir, file)); err != nil {
			t.Errorf("%s not written in %s", file, dir)
		}
	}
	if err := os.WriteFile(filepath.Join(dirs[1], "memory.oom_control"), []byte("oom_kill_disable 0\nunder_oom 0\noom_kill 3\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if n := d.OOMKills(dirs); n != 3 {
		t.Errorf("oomKills = %d, want 3", n)
	}
	// Co-mounted controllers share one directory per pod.
	same := Driver{Name: V1, CPU: cpu, Memory: cpu}
	if got := same.PodDirs("l", "p"); len(got) != 1 {
		t.Errorf("co-mounted hierarchies: %v", got)
	}
}

func TestDriverString(t *testing.T) {
	for _, tc := range []struct {
		d    Driver
		want string
	}{
		{Driver{Name: V2, Unified: "/sys/fs/cgroup"}, "cgroup v2 (/sys/fs/cgroup)"},
		{Driver{Name: V1, CPU: "/a", Memory: "/b", Note: "v2: x"}, "cgroup v1 (cpu: /a, memory: /b); v2: x"},
		{Driver{Name: None}, "no cgroups: resource limits are not enforced"},
	} {
		if got := tc.d.String(); got != tc.want {
			t.Errorf("String() = %q, want %q", got, tc.want)
		}
	}
	if _, err := Detect("v3"); err == nil || !strings.Contains(err.Error(), `cgroup driver "v3" is not auto, v2, v1 or none`) {
		t.Errorf("Detect(v3): %v", err)
	}
}
