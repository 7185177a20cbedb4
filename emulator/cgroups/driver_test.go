package cgroups

import (
	"strings"
	"testing"
)

func TestV1MountOptions(t *testing.T) {
	procCgroups := []byte(`#subsys_name	hierarchy	num_cgroups	enabled
cpuset	3	1	1
cpu	1	1	1
cpuacct	1	1	1
memory	0	1	1
pids	8	1	1
hugetlb	0	1	0
`)
	for c, want := range map[string]string{"cpu": "cpu,cpuacct", "memory": "memory", "pids": "pids"} {
		got, err := v1MountOptions(procCgroups, c)
		if err != nil || strings.Join(got, ",") != want {
			t.Errorf("v1MountOptions(%s) = %v, %v; want %s", c, got, err, want)
		}
	}
	if _, err := v1MountOptions(procCgroups, "hugetlb"); err == nil {
		t.Errorf("a disabled controller was accepted")
	}
}

func TestParseMountLine(t *testing.T) {
	m, ok := parseMountLine(`35 25 0:30 / /sys/fs/cgroup/cpu\040x rw,relatime shared:9 - cgroup cgroup rw,cpu,cpuacct`)
	if !ok || m.point != "/sys/fs/cgroup/cpu x" || m.fstype != "cgroup" || strings.Join(m.opts, ",") != "rw,cpu,cpuacct" || m.root != "/" {
		t.Errorf("parseMountLine = %+v, %v", m, ok)
	}
	m, ok = parseMountLine(`30 25 0:26 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw,nsdelegate`)
	if !ok || m.fstype != "cgroup2" || m.point != "/sys/fs/cgroup" {
		t.Errorf("parseMountLine = %+v, %v", m, ok)
	}
}
