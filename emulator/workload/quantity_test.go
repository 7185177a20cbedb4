package workload

import (
	"strings"
	"testing"
)

// The textbook's table: request 100m / 100Mi, limit 200m / 200Mi.
func TestCgroupSettings(t *testing.T) {
	r := Resources{CPURequestMilli: 100, CPULimitMilli: 200, MemoryRequest: 100 << 20, MemoryLimit: 200 << 20}
	v2 := CgroupDriver{Name: CgroupV2}.settings(r)
	wantV2 := []CgroupSetting{
		{"cpu.weight", "4"}, // shares 102 -> 1 + (100*9999)/262142
		{"cpu.max", "20000 100000"},
		{"memory.low", "104857600"},
		{"memory.max", "209715200"},
		{"memory.swap.max", "0"},
		{"memory.oom.group", "1"},
	}
	if !equalSettings(v2, wantV2) {
		t.Errorf("v2 settings = %v, want %v", v2, wantV2)
	}
	v1 := CgroupDriver{Name: CgroupV1}.settings(r)
	wantV1 := []CgroupSetting{
		{"cpu.shares", "102"},
		{"cpu.cfs_period_us", "100000"},
		{"cpu.cfs_quota_us", "20000"},
		{"memory.limit_in_bytes", "209715200"},
		{"memory.memsw.limit_in_bytes", "209715200"},
		{"memory.soft_limit_in_bytes", "104857600"},
	}
	if !equalSettings(v1, wantV1) {
		t.Errorf("v1 settings = %v, want %v", v1, wantV1)
	}
	// A limit alone requests the limit; nothing at all is BestEffort.
	limitOnly := CgroupDriver{Name: CgroupV1}.settings(Resources{CPULimitMilli: 500})
	if limitOnly[0] != (CgroupSetting{"cpu.shares", "512"}) {
		t.Errorf("limit-only shares = %v, want 512", limitOnly[0])
	}
	if got := (CgroupDriver{Name: CgroupV1}).settings(Resources{}); !equalSettings(got, []CgroupSetting{{"cpu.shares", "2"}}) {
		t.Errorf("best effort = %v", got)
	}
	for _, tc := range []struct{ milli, shares, weight, quota int64 }{
		{0, 2, 1, 1000},
		{1, 2, 1, 1000}, // quota floor of 1ms
		{250, 256, 10, 25000},
		{1000, 1024, 39, 100000},
		{4000, 4096, 157, 400000},
		{1000000, 262144, 10000, 100000000},
	} {
		if s := cpuShares(tc.milli); s != tc.shares {
			t.Errorf("cpuShares(%d) = %d, want %d", tc.milli, s, tc.shares)
		}
		if w := cpuWeight(cpuShares(tc.milli)); w != tc.weight {
			t.Errorf("cpuWeight(%d) = %d, want %d", cpuShares(tc.milli), w, tc.weight)
		}
		if q := cpuQuota(tc.milli); q != tc.quota {
			t.Errorf("cpuQuota(%d) = %d, want %d", tc.milli, q, tc.quota)
		}
	}
}

func equalSettings(a, b []CgroupSetting) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

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

func TestSpecCheck(t *testing.T) {
	p := PodSpec{
		Lab: "lab", Pod: "pod", Namespace: "/run/netns/x", StateDir: "/tmp/x", PodIP: "10.0.0.300",
		RestartPolicy: "Sometimes",
		Containers: []Container{
			{Name: "Web", Builtin: "nginx"},
			{Name: "a", Args: []string{"x"}},
			{Name: "a", Command: []string{"sleep"}, Env: []EnvVar{{"1X", ""}}, WorkingDir: "tmp",
				Resources: Resources{CPURequestMilli: 300, CPULimitMilli: 200, MemoryRequest: 2, MemoryLimit: 1}},
			{Name: "b", Builtin: BuiltinWebServer, Command: []string{"x"}, Ports: []Port{{ContainerPort: 70000, Protocol: "SCTP"}}},
		},
	}
	err := p.check()
	if err == nil {
		t.Fatal("check accepted a bad spec")
	}
	for _, want := range []string{
		`pod IP "10.0.0.300" is not an IP address`,
		`restart policy "Sometimes" is not Always, OnFailure or Never`,
		`container "Web": name must be a DNS label`,
		`container "Web": unknown builtin "nginx"`,
		`container "a": args without a command`,
		`container "a": name used twice`,
		`container "a": env name "1X" is not a valid variable name`,
		`container "a": working directory "tmp" is not an absolute path`,
		`container "a": cpu request 300m is above the limit 200m`,
		`container "a": memory request 2 is above the limit 1`,
		`container "b": builtin "web-server" takes no command or args`,
		`container "b": port 70000 is not between 1 and 65535`,
		`container "b": port 70000: protocol "SCTP" is not TCP or UDP`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
}

func TestEnviron(t *testing.T) {
	p := PodSpec{Pod: "pod1a", PodIP: "192.168.1.10"}
	c := Container{Name: "c", Command: []string{"x"}, Env: []EnvVar{
		{"A", "1"}, {"B", "$(A)-$(POD_IP)-$(NOPE)-$$(A)"}, {"HOME", "/home/x"},
	}}
	env := strings.Join(p.environ(&c, "/state/bin"), "\n")
	for _, want := range []string{
		"PATH=" + defaultPath + ":/state/bin", // host tools first for commands
		"HOSTNAME=pod1a", "POD_IP=192.168.1.10", "A=1",
		"B=1-192.168.1.10-$(NOPE)-$(A)", "HOME=/home/x",
	} {
		if !strings.Contains(env+"\n", want+"\n") {
			t.Errorf("environment lacks %q:\n%s", want, env)
		}
	}
	web := Container{Name: "w", Builtin: BuiltinClient}
	if got := p.environ(&web, "/state/bin")[0]; got != "PATH=/state/bin:"+defaultPath {
		t.Errorf("builtin PATH = %s, want the applets first", got)
	}
}

func TestCurlArgs(t *testing.T) {
	o, err := parseCurlArgs([]string{"-sSv", "-ofile", "-X", "PUT", "--data", "x=1", "-H", "A: b", "-m", "1.5", "--connect-timeout=2", "127.0.0.1:80", "http://10.0.0.1/x"})
	if err != nil {
		t.Fatal(err)
	}
	if !o.silent || !o.showError || !o.verbose || o.output != "file" || o.method != "PUT" || o.data != "x=1" ||
		len(o.headers) != 1 || o.maxTime.Seconds() != 1.5 || o.connectTimeout.Seconds() != 2 || len(o.urls) != 2 {
		t.Errorf("parsed %+v", o)
	}
	for _, bad := range [][]string{{}, {"-Z", "x"}, {"--frobnicate", "x"}, {"x", "-o"}, {"-m", "soon", "x"}} {
		if _, err := parseCurlArgs(bad); err == nil {
			t.Errorf("parseCurlArgs(%q) accepted", bad)
		}
	}
}
