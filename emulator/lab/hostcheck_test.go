package lab

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/labctl/labctl/emulator/spec"
)

// fakeHost lays out the kernel files a check reads under a temporary root.
func fakeHost(t *testing.T, files map[string]string) host {
	t.Helper()
	root := t.TempDir()
	for name, content := range files {
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if strings.HasSuffix(name, "/") {
			if err := os.MkdirAll(p, 0o755); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// A statically linked labctl, as `make build` makes it.
	return host{root: root, labctlStatic: func() error { return nil }}
}

// roomy is a host with plenty of everything and no tunnel modules.
func roomy() map[string]string {
	return map[string]string{
		"/proc/meminfo":                     "MemTotal: 25000000 kB\nMemAvailable: 24000000 kB\n",
		"/proc/sys/kernel/pid_max":          "4194304\n",
		"/proc/loadavg":                     "0.00 0.01 0.05 1/200 4567\n",
		"/proc/sys/user/max_net_namespaces": "96369\n",
		"/proc/cgroups":                     "#subsys_name\thierarchy\tnum_cgroups\tenabled\ncpu\t1\t2\t1\nmemory\t4\t1\t1\n",
		"/proc/sys/kernel/osrelease":        "6.18.0\n",
		"/dev/net/tun":                      "",
	}
}

func with(base map[string]string, extra map[string]string) map[string]string {
	m := map[string]string{}
	for k, v := range base {
		m[k] = v
	}
	for k, v := range extra {
		if v == "-" {
			delete(m, k)
			continue
		}
		m[k] = v
	}
	return m
}

func parse(t *testing.T, yaml string) *spec.Topology {
	t.Helper()
	topo, err := spec.Parse("lab.yaml", []byte(yaml))
	if err != nil {
		t.Fatalf("parse: %v", err)
	}
	return topo
}

func TestHostCheck(t *testing.T) {
	rootfs := t.TempDir()
	for _, d := range []string{"bin", "srv"} {
		if err := os.MkdirAll(filepath.Join(rootfs, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(rootfs, "bin", "sh"), []byte("#!"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(rootfs, "bin", "notes"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	notDir := filepath.Join(rootfs, "bin", "notes")
	const twoNodes = "name: lab\nnodes: [{name: n1}, {name: n2}]\n"
	container := func(c string) string {
		return "name: lab\nnodes:\n  - name: n1\n    pods:\n      - name: p1\n        containers:\n          - " + c + "\n"
	}
	tests := []struct {
		name  string
		host  map[string]string
		yaml  string
		wants []string // one substring per expected error, in order
	}{
		{"a plain lab on a roomy host", roomy(), twoNodes, nil},
		{"vxlan without the module", roomy(), "name: lab\nnetwork: {backend: vxlan}\nnodes: [{name: n1}, {name: n2}]\n",
			[]string{"network.backend: the vxlan backend needs the kernel's vxlan module"}},
		{"vxlan with the module built in", with(roomy(), map[string]string{"/sys/module/vxlan/": ""}),
			"name: lab\nnetwork: {backend: vxlan}\nnodes: [{name: n1}, {name: n2}]\n", nil},
		{"vxlan loadable from /lib/modules", with(roomy(), map[string]string{"/lib/modules/6.18.0/modules.dep": "kernel/drivers/net/vxlan/vxlan.ko.xz: kernel/net/ipv4/udp_tunnel.ko.xz\n"}),
			"name: lab\nnetwork: {backend: vxlan}\nnodes: [{name: n1}, {name: n2}]\n", nil},
		{"kernel ipip insisted on without the module", roomy(), "name: lab\nnetwork: {backend: ipip, ipip: {datapath: kernel}}\nnodes: [{name: n1}, {name: n2}]\n",
			[]string{"network.ipip.datapath: datapath kernel needs the kernel's ipip module"}},
		{"userspace tunl0 next to a loaded ipip module", with(roomy(), map[string]string{"/sys/module/ipip/": ""}),
			"name: lab\nnetwork: {backend: ipip, ipip: {datapath: userspace}}\nnodes: [{name: n1}, {name: n2}]\n",
			[]string{"network.ipip.device: the ipip module is loaded, so every namespace already has its own tunl0"}},
		{"userspace ipip without /dev/net/tun", with(roomy(), map[string]string{"/dev/net/tun": "-"}),
			"name: lab\nnetwork: {backend: ipip}\nnodes: [{name: n1}, {name: n2}]\n",
			[]string{"network.ipip.datapath: labctl's userspace IPIP datapath needs /dev/net/tun"}},
		{"a root file system that is not there", roomy(), container("{name: c, command: [sh], rootfs: " + rootfs + "/nowhere}"),
			[]string{"nodes[0].pods[0].containers[0].rootfs: root file system " + rootfs + "/nowhere: no such file or directory"}},
		{"a root file system that is a file", roomy(), container("{name: c, command: [sh], rootfs: " + notDir + "}"),
			[]string{"nodes[0].pods[0].containers[0].rootfs: root file system " + notDir + " is not a directory"}},
		{"a program and working directory in the root file system", roomy(), container("{name: c, command: [sh], workingDir: /srv, rootfs: " + rootfs + "}"), nil},
		{"a program not in the root file system", roomy(), container("{name: c, command: [python3], workingDir: /data, rootfs: " + rootfs + "}"),
			[]string{
				"nodes[0].pods[0].containers[0].workingDir: working directory /data does not exist in " + rootfs,
				`nodes[0].pods[0].containers[0].command: program "python3" is not on the container's PATH (/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin) in ` + rootfs,
			}},
		{"a program on the container's own PATH", roomy(), container("{name: c, command: [sh], env: [{name: PATH, value: /nothing}], rootfs: " + rootfs + "}"),
			[]string{`program "sh" is not on the container's PATH (/nothing)`}},
		{"a path to a file that is not executable", roomy(), container("{name: c, command: [/bin/notes], rootfs: " + rootfs + "}"),
			[]string{"program /bin/notes is not an executable file in " + rootfs}},
		{"labctl's applets are always there", roomy(), container("{name: c, command: [curl, -s, 10.0.0.1], rootfs: " + rootfs + "}"), nil},
		{"a deployment's template is checked once", roomy(),
			"name: lab\nnodes: [{name: n1}]\ndeployments:\n  - name: d\n    replicas: 3\n    template: {containers: [{name: c, command: [no-such-program-here]}]}\n",
			[]string{`deployments[0].template.containers[0].command: program "no-such-program-here" is not on the container's PATH`}},
		{"a memory limit without the memory controller", with(roomy(), map[string]string{"/proc/cgroups": "#subsys_name\thierarchy\tnum_cgroups\tenabled\ncpu\t1\t2\t1\nmemory\t4\t1\t0\n"}),
			container("{name: c, builtin: client, resources: {limits: {cpu: 100m, memory: 64Mi}}}"),
			[]string{"nodes[0].pods[0].containers[0].resources: this host's kernel has no memory cgroup controller"}},
		{"more memory than the host has", with(roomy(), map[string]string{"/proc/meminfo": "MemAvailable: 1024 kB\n"}), twoNodes,
			[]string{"the lab needs about 1 MiB of memory (3 namespaces, 2 routes, 0 neighbour and 0 FDB entries, 0 processes) and this host has 1 MiB available"}},
		{"more processes than pid_max leaves", with(roomy(), map[string]string{"/proc/sys/kernel/pid_max": "201\n"}),
			container("{name: c, builtin: client}"),
			[]string{"the lab starts 2 processes and this host has room for 1 more (kernel.pid_max 201, 200 tasks running)"}},
		{"more namespaces than allowed", with(roomy(), map[string]string{"/proc/sys/user/max_net_namespaces": "2\n"}), twoNodes,
			[]string{"the lab has 3 network namespaces and this host allows 2 (user.max_net_namespaces)"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			errs := fakeHost(t, tt.host).check(parse(t, tt.yaml))
			if len(errs) != len(tt.wants) {
				t.Fatalf("got %d errors %q, want %d", len(errs), errs, len(tt.wants))
			}
			for i, want := range tt.wants {
				if !strings.Contains(errs[i].Error(), want) {
					t.Errorf("error %d = %q\nwant it to contain %q", i, errs[i], want)
				}
			}
		})
	}
}

// ping and curl are labctl's applets where the container's PATH reaches
// them and its image (or the host) has none; in a root filesystem only
// from a statically linked labctl.
func TestHostCheckApplets(t *testing.T) {
	rootfs := t.TempDir()
	if err := os.MkdirAll(filepath.Join(rootfs, "bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(rootfs, "bin", "ping"), []byte("#!"), 0o755); err != nil {
		t.Fatal(err)
	}
	dynamic := func() error { return errors.New("/usr/local/bin/labctl is dynamically linked") }
	container := func(c string) *spec.Topology {
		return parse(t, "name: lab\nnodes:\n  - name: n1\n    pods:\n      - name: p1\n        containers:\n          - "+c+"\n")
	}
	const notOnPath = `nodes[0].pods[0].containers[0].command: program "curl" is not on the container's PATH`
	tests := []struct {
		name   string
		static func() error
		c      string
		want   string // "" for no error
	}{
		{"the applet on the host", dynamic, "{name: c, command: [curl, 10.0.0.1]}", ""},
		{"the applet in a root filesystem", nil, "{name: c, command: [curl, 10.0.0.1], rootfs: " + rootfs + "}", ""},
		{"no applet in a root filesystem from a dynamic labctl", dynamic, "{name: c, command: [curl, 10.0.0.1], rootfs: " + rootfs + "}",
			notOnPath + " (/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin) in " + rootfs +
				", and labctl's own curl cannot serve in a root filesystem: /usr/local/bin/labctl is dynamically linked"},
		{"the image's own ping needs no applet", dynamic, "{name: c, command: [ping, 10.0.0.1], rootfs: " + rootfs + "}", ""},
		{"a PATH that leaves the applets out", nil, "{name: c, command: [curl], env: [{name: PATH, value: /bin}], rootfs: " + rootfs + "}",
			notOnPath + " (/bin) in " + rootfs},
		{"a PATH that extends the default keeps them", nil, "{name: c, command: [curl], env: [{name: PATH, value: '/opt:$(PATH)'}], rootfs: " + rootfs + "}", ""},
		{"a PATH that extends the default finds the image's programs", dynamic, "{name: c, command: [ping], env: [{name: PATH, value: '/opt:$(PATH)'}], rootfs: " + rootfs + "}", ""},
		{"the applets' directory named in a root filesystem", nil, "{name: c, command: [curl], env: [{name: PATH, value: '/bin:/dev/.labctl'}], rootfs: " + rootfs + "}", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := fakeHost(t, roomy())
			if tt.static != nil {
				h.labctlStatic = tt.static
			}
			errs := h.check(container(tt.c))
			switch {
			case tt.want == "" && len(errs) > 0:
				t.Errorf("got %q, want no error", errs)
			case tt.want != "" && (len(errs) != 1 || !strings.Contains(errs[0].Error(), tt.want)):
				t.Errorf("got %q, want one error with %q", errs, tt.want)
			}
		})
	}
}

// The memory wanted does not fit: the estimate is checked against the
// counts of a lab that makes every kind of entry.
func TestEstimateCapacity(t *testing.T) {
	topo := parse(t, "name: lab\nnetwork: {backend: vxlan}\nnodes:\n  - name: n1\n    pods: [{name: p1, containers: [{name: c, builtin: client}]}]\n  - name: n2\n  - name: n3\nlinks:\n  - {nodes: [n1, n3], backend: ipip}\n")
	c := EstimateCapacity(topo)
	want := Capacity{Namespaces: 5, Links: 4, Routes: 7, Neighbours: 4, FDB: 4, Processes: 2}
	c.Bytes = 0
	if c != want {
		t.Errorf("EstimateCapacity = %+v, want %+v", c, want)
	}
}

// On this machine a small lab passes: HostCheck reads the real /proc and
// /sys and finds nothing (the vxlan and bridge modules are here).
func TestHostCheckHere(t *testing.T) {
	topo := parse(t, "name: lab\nnetwork: {backend: host-gw}\nnodes:\n  - name: n1\n    pods: [{name: p1, containers: [{name: c, command: [sh, -c, 'sleep 1'], resources: {limits: {cpu: 100m, memory: 64Mi}}}]}]\n  - name: n2\n")
	if errs := HostCheck(topo); len(errs) > 0 {
		t.Errorf("HostCheck = %q", errs)
	}
}
