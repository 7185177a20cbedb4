package workload

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/labctl/labctl/emulator/clusterdns"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/")

// The textbook's namespace exploration inside a pod: PID 1 is the
// supervisor (pause) and `ls -l /proc/1/ns` shows the namespaces the
// containers are in, /proc lists the pod's processes only, the hostname is
// the pod's and `hostname -i` its IP, through the pod's own /etc/hosts;
// /etc/resolv.conf names the cluster DNS. Containers with a root
// filesystem and commands run by exec see the same. The host's files,
// mounts and namespaces are untouched.
func TestPodSandbox(t *testing.T) {
	n := newNet(t, 1)
	hostBefore := hostState(t)
	// Registered before the pod starts, so it runs after the pod stopped.
	t.Cleanup(func() { hostBefore.check(t) })

	root := makeRootFS(t)
	report := named(testCmd("nsreport", EnvVar{"WLTEST_SLEEP", "1"}), "report")
	rooted := Container{Name: "rooted", Command: []string{"/wltest"}, RootFS: root,
		Env: []EnvVar{{"WLTEST_ROLE", "nsreport"}, {"WLTEST_SLEEP", "1"}}}
	shim, spec := startPodWith(t, n, 0, "pod-ns", func(s *PodSpec) { s.ClusterDNS = "10.96.0.10" }, report, rooted)

	reports := map[string]nsReport{}
	for _, name := range []string{"report", "rooted"} {
		waitStatus(t, spec.StateDir, 5*time.Second, name+"'s report", func(PodStatus) bool {
			b, _ := os.ReadFile(LogPath(spec.StateDir, name))
			return bytes.Contains(b, []byte("}\n"))
		})
		var r nsReport
		if err := json.Unmarshal([]byte(readLog(t, spec.StateDir, name)), &r); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		reports[name] = r
	}

	// The pod's files, as the kubelet writes them.
	hosts := clusterdns.Hosts(clusterdns.HostsFile{PodIPs: []netip.Addr{netip.MustParseAddr(n.ips[0])}, Hostname: "pod-ns"})
	resolv := clusterdns.ResolvConf("", netip.MustParseAddr("10.96.0.10"), "")
	golden(t, "pod-hosts.golden", hosts)
	golden(t, "pod-resolv.conf.golden", resolv)

	self := hostNamespaces(t)
	for name, r := range reports {
		if r.Hostname != "pod-ns" || r.Hosts != hosts || r.ResolvConf != resolv {
			t.Errorf("%s: hostname %q, /etc/hosts:\n%s/etc/resolv.conf:\n%s", name, r.Hostname, r.Hosts, r.ResolvConf)
		}
		if !strings.HasPrefix(r.Procs[1], "labctl-shim "+n.lab+"/pod-ns") {
			t.Errorf("%s: PID 1 is %q, want the supervisor", name, r.Procs[1])
		}
		for pid, cmd := range r.Procs {
			if !strings.HasPrefix(cmd, "labctl-") && !strings.HasPrefix(cmd, testBinary()) && !strings.HasPrefix(cmd, "/wltest") {
				t.Errorf("%s: /proc lists %d %q, which is not the pod's", name, pid, cmd)
			}
		}
		for _, k := range nsKinds {
			same := r.Self[k] == r.Init[k]
			if want := !(name == "rooted" && k == "mnt"); same != want {
				t.Errorf("%s: %s namespace %s, PID 1's %s: shared = %v, want %v", name, k, r.Self[k], r.Init[k], same, want)
			}
			if r.Self[k] == self[k] {
				t.Errorf("%s: in the host's %s namespace %s", name, k, self[k])
			}
		}
	}
	if st, _ := ReadStatus(spec.StateDir); st.Shim.PID != shim.PID || container(st, "report").PID == reports["report"].PID {
		t.Errorf("status: supervisor %d (want the host's PID %d), report %d (its PID in the pod: %d)",
			st.Shim.PID, shim.PID, container(st, "report").PID, reports["report"].PID)
	}

	// exec joins the container, the sandbox exec the pod: the same
	// namespaces and files.
	for _, tc := range []struct {
		name string
		opts ExecOptions
		want map[string]string
	}{
		{"exec report", ExecOptions{Container: "report", Argv: []string{testBinary()}}, reports["report"].Self},
		{"exec rooted", ExecOptions{Container: "rooted", Argv: []string{"/wltest"}}, reports["rooted"].Self},
		{"exec pod", ExecOptions{Sandbox: true, Argv: []string{testBinary()}}, reports["report"].Init},
	} {
		tc.opts.StateDir = spec.StateDir
		tc.opts.Env = []string{"WLTEST_ROLE=nsreport", "WLTEST_SLEEP="}
		out, errOut, code := execIn(t, tc.opts)
		var r nsReport
		if err := json.Unmarshal([]byte(out), &r); code != 0 || err != nil {
			t.Errorf("%s: exit %d, %v, stderr %q", tc.name, code, err, errOut)
			continue
		}
		for _, k := range nsKinds {
			if r.Self[k] != tc.want[k] {
				t.Errorf("%s: %s namespace %s, want %s", tc.name, k, r.Self[k], tc.want[k])
			}
		}
		if r.Hostname != "pod-ns" || r.Hosts != hosts || r.ResolvConf != resolv || r.Procs[r.PID] == "" || r.PID > 100 {
			t.Errorf("%s: hostname %q, PID %d (%q in its /proc), /etc/hosts:\n%s", tc.name, r.Hostname, r.PID, r.Procs[r.PID], r.Hosts)
		}
	}

	// The textbook's commands, with the host's tools.
	if _, err := exec.LookPath("hostname"); err == nil {
		out, errOut, code := execIn(t, ExecOptions{StateDir: spec.StateDir, Container: "report", Argv: []string{"hostname", "-i"}})
		if code != 0 || strings.TrimSpace(out) != n.ips[0] {
			t.Errorf("hostname -i: exit %d, %q (stderr %q), want %s", code, out, errOut, n.ips[0])
		}
	}
	out, errOut, code := execIn(t, ExecOptions{StateDir: spec.StateDir, Container: "report", Argv: []string{"ls", "-l", "/proc/1/ns"}})
	for _, k := range nsKinds {
		if code != 0 || !strings.Contains(out, k+" -> '"+reports["report"].Self[k]+"'") && !strings.Contains(out, k+" -> "+reports["report"].Self[k]) {
			t.Errorf("ls -l /proc/1/ns: exit %d (stderr %q) lacks %s -> %s:\n%s", code, errOut, k, reports["report"].Self[k], out)
		}
	}

	// /dev/shm is the pod's, shared by its containers, not the host's.
	shmFile := "/dev/shm/" + n.lab
	out, errOut, code = execIn(t, ExecOptions{StateDir: spec.StateDir, Container: "report", Argv: []string{testBinary()},
		Env: []string{"WLTEST_ROLE=writefile", "WLTEST_FILE=" + shmFile, "WLTEST_DATA=shared"}})
	if code != 0 {
		t.Errorf("write %s: exit %d, %s%s", shmFile, code, out, errOut)
	}
	out, errOut, code = execIn(t, ExecOptions{StateDir: spec.StateDir, Container: "rooted", Argv: []string{"/wltest"},
		Env: []string{"WLTEST_ROLE=readfile", "WLTEST_FILE=" + shmFile}})
	if code != 0 || out != "shared" {
		t.Errorf("read %s in the root filesystem: exit %d, %q, stderr %q", shmFile, code, out, errOut)
	}
	if _, err := os.Stat(shmFile); err == nil {
		t.Errorf("%s of the pod is on the host", shmFile)
	}
}

// golden compares got with testdata/name (rewritten with -update).
func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if got != string(want) {
		t.Errorf("%s differs:\n got:\n%s\nwant:\n%s", name, got, want)
	}
}

// hostNamespaces are this test process's namespaces, the host's.
func hostNamespaces(t *testing.T) map[string]string {
	t.Helper()
	m := map[string]string{}
	for _, k := range nsKinds {
		l, err := os.Readlink("/proc/self/ns/" + k)
		if err != nil {
			t.Fatal(err)
		}
		m[k] = l
	}
	return m
}

// hostSnapshot is what a pod must not change on the host: its /etc/hosts
// and /etc/resolv.conf (content and inode), its mounts but the namespace
// mounts other tests make and remove meanwhile, its hostname.
type hostSnapshot struct {
	files    map[string]string
	mounts   map[string]bool
	hostname string
}

func hostState(t *testing.T) hostSnapshot {
	t.Helper()
	s := hostSnapshot{files: map[string]string{}, mounts: map[string]bool{}}
	for _, f := range []string{"/etc/hosts", "/etc/resolv.conf"} {
		b, err := os.ReadFile(f)
		fi, serr := os.Stat(f)
		if err == nil && serr == nil {
			s.files[f] = fmt.Sprintf("%q %v %v", b, fi.ModTime(), fi.Sys())
		}
	}
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) > 4 && !strings.HasPrefix(f[4], "/run/netns/") {
			s.mounts[strings.Join(f[3:], " ")] = true
		}
	}
	s.hostname, _ = os.Hostname()
	return s
}

func (before hostSnapshot) check(t *testing.T) {
	t.Helper()
	after := hostState(t)
	for f, v := range before.files {
		if after.files[f] != v {
			t.Errorf("the host's %s changed: %s, was %s", f, after.files[f], v)
		}
	}
	for m := range after.mounts {
		if !before.mounts[m] {
			t.Errorf("a mount appeared on the host: %s", m)
		}
	}
	if after.hostname != before.hostname {
		t.Errorf("the host's hostname changed to %q", after.hostname)
	}
}

// An external host's containers get the sandbox's namespaces, but not the
// kubelet's files: /etc/hosts and /etc/resolv.conf are the host's.
func TestExternalHostSandbox(t *testing.T) {
	n := newNet(t, 1)
	_, spec := startPodWith(t, n, 0, "vm-ns", func(s *PodSpec) { s.External, s.ClusterDNS = true, "10.96.0.10" },
		named(testCmd("nsreport", EnvVar{"WLTEST_SLEEP", "1"}), "report"))
	out, errOut, code := execIn(t, ExecOptions{StateDir: spec.StateDir, Argv: []string{testBinary()}, Env: []string{"WLTEST_ROLE=nsreport", "WLTEST_SLEEP="}})
	var r nsReport
	if err := json.Unmarshal([]byte(out), &r); code != 0 || err != nil {
		t.Fatalf("exit %d, %v, stderr %q", code, err, errOut)
	}
	hosts, _ := os.ReadFile("/etc/hosts")
	resolv, _ := os.ReadFile("/etc/resolv.conf")
	if r.Hosts != string(hosts) || r.ResolvConf != string(resolv) {
		t.Errorf("an external host's files are not the host's:\n%s\n%s", r.Hosts, r.ResolvConf)
	}
	if r.Hostname != "vm-ns" || !strings.HasPrefix(r.Procs[1], "labctl-shim ") || r.Self["pid"] != r.Init["pid"] {
		t.Errorf("hostname %q, PID 1 %q, pid namespace %s (PID 1's %s)", r.Hostname, r.Procs[1], r.Self["pid"], r.Init["pid"])
	}
}
