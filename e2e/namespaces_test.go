package e2e

import (
	"bytes"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/labctl/labctl/emulator/clusterdns"
)

// The textbook's namespace exploration, through labctl: nodes have their
// own hostnames, a pod's PID 1 is its supervisor (the pause container) and
// holds the namespaces its containers are in, `hostname -i` answers the pod
// IP from the pod's own /etc/hosts, ps lists the pod's processes only, and
// the scenario grader's commands see the same. The host's files and
// hostname are untouched, and down leaves no namespace, process or mount.
func TestNamespaceExploration(t *testing.T) {
	requireRoot(t)
	t.Parallel()
	c := newCLI(t)
	before := hostView(t)
	path, name := c.up("two-node.yaml", "tns")
	in := func(args ...string) string {
		t.Helper()
		return c.must(append([]string{"exec", "--lab", name}, args...)...)
	}

	for _, node := range []string{"node1", "node2"} {
		if got := in(node, "--", "hostname"); got != node+"\n" {
			t.Errorf("hostname of %s: %q", node, got)
		}
	}
	hosts := clusterdns.Hosts(clusterdns.HostsFile{PodIPs: []netip.Addr{netip.MustParseAddr("192.168.1.10")}, Hostname: "pod1a"})
	resolv := clusterdns.ResolvConf("", netip.MustParseAddr("10.96.0.10"), "")
	for _, ctr := range []string{"curl-client", "web-server"} {
		if got := in("pod1a", "-c", ctr, "--", "hostname"); got != "pod1a\n" {
			t.Errorf("hostname in %s: %q", ctr, got)
		}
		if got := in("pod1a", "-c", ctr, "--", "hostname", "-i"); got != "192.168.1.10\n" {
			t.Errorf("hostname -i in %s: %q", ctr, got)
		}
		if got := in("pod1a", "-c", ctr, "--", "cat", "/etc/hosts"); got != hosts {
			t.Errorf("/etc/hosts in %s:\n%s", ctr, got)
		}
		if got := in("pod1a", "-c", ctr, "--", "cat", "/etc/resolv.conf"); got != resolv {
			t.Errorf("/etc/resolv.conf in %s:\n%s", ctr, got)
		}
	}
	if got := in("pod2", "--", "hostname", "-i"); got != "192.168.2.20\n" {
		t.Errorf("hostname -i in pod2: %q", got)
	}

	// `ls -l /proc/1/ns` shows the namespaces the container is in.
	ls := in("pod1a", "-c", "web-server", "--", "ls", "-l", "/proc/1/ns")
	for _, kind := range []string{"net", "uts", "ipc", "pid", "mnt"} {
		own := strings.TrimSpace(in("pod1a", "-c", "web-server", "--", "readlink", "/proc/self/ns/"+kind))
		host, _ := os.Readlink("/proc/self/ns/" + kind)
		if !strings.Contains(ls, kind+" -> "+own) && !strings.Contains(ls, kind+" -> '"+own+"'") {
			t.Errorf("ls -l /proc/1/ns lacks the container's %s namespace %s:\n%s", kind, own, ls)
		}
		if own == host {
			t.Errorf("the container is in the host's %s namespace %s", kind, own)
		}
	}

	// ps lists the pod's processes: PID 1 the supervisor, the two
	// containers, ps itself.
	ps := in("pod1a", "--", "ps", "-e", "-o", "pid=,args=")
	lines := strings.Split(strings.TrimSpace(ps), "\n")
	if len(lines) != 4 || !strings.HasPrefix(strings.TrimSpace(lines[0]), "1 labctl-shim "+name+"/pod1a") {
		t.Errorf("ps in pod1a:\n%s", ps)
	}

	// lsns on the host: a UTS namespace per node, held by labctl-node.
	if _, err := exec.LookPath("lsns"); err == nil {
		b, err := exec.Command("lsns", "-t", "uts", "-o", "PID,COMMAND", "-n").CombinedOutput()
		out := string(b)
		for _, node := range []string{"node1", "node2"} {
			if err != nil || !strings.Contains(out, "labctl-node "+name+"/"+node) {
				t.Errorf("lsns -t uts lacks %s's holder (%v):\n%s", node, err, out)
			}
		}
	}

	// The grader's commands (lab.Exec) run where labctl exec runs them.
	scen := filepath.Join(t.TempDir(), "ns.yaml")
	if err := os.WriteFile(scen, fmt.Appendf(nil, nsScenario, path), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, code := c.run("grade", "--lab", name, scen); code != 0 {
		t.Errorf("grade: exit %d:\n%s", code, out)
	}

	// A hostname holder that dies degrades the lab: exec says so and runs
	// with the host's hostname; up --repair starts it again.
	holder := processTitled(t, "labctl-node "+name+"/node1")
	if holder <= 0 {
		t.Fatal("node1's hostname holder is not running")
	}
	if err := syscall.Kill(holder, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(5 * time.Second); processTitled(t, "labctl-node "+name+"/node1") != 0; {
		if time.Now().After(deadline) {
			t.Fatal("the killed hostname holder is still there")
		}
		time.Sleep(10 * time.Millisecond)
	}
	out, code := c.run("exec", "--lab", name, "node1", "--", "hostname")
	if code != 0 || !strings.Contains(out, before.hostname+"\n") || !strings.Contains(out, "hostname holder of node \"node1\"") {
		t.Errorf("exec in a node whose hostname holder died: exit %d:\n%s", code, out)
	}
	if out, code := c.run("up", path); code != 5 || !strings.Contains(out, "degraded") {
		t.Errorf("up of the degraded lab: exit %d:\n%s", code, out)
	}
	if out := c.must("up", "--repair", path); !strings.Contains(out, `hostname holders of nodes "node1"`) {
		t.Errorf("up --repair:\n%s", out)
	}
	if got := in("node1", "--", "hostname"); got != "node1\n" {
		t.Errorf("hostname of node1 after the repair: %q", got)
	}

	c.must("down", name)
	assertNoNamespaces(t, name)
	before.check(t, name)
}

// processTitled returns the PID of the process whose command line is
// title (its arguments joined by spaces, as ps shows them), or 0.
func processTitled(t *testing.T, title string) int {
	t.Helper()
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, _ := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if string(bytes.ReplaceAll(bytes.TrimRight(b, "\x00"), []byte{0}, []byte{' '})) == title {
			return pid
		}
	}
	return 0
}

// nsScenario checks hostnames from a node, a pod and a container; %s is
// the topology.
const nsScenario = `title: namespaces
topology: %s
sections:
  - name: names
    checks:
      - id: node
        title: node1 is node1
        command: {in: node1, run: [hostname], stdoutMatches: "^node1\n$"}
      - id: pod
        title: pod1a's address, from its own /etc/hosts
        command: {in: pod1a, run: [hostname, -i], stdoutMatches: "^192.168.1.10\n$"}
      - id: pid1
        title: the pod's PID 1 is its supervisor
        command: {in: pod1a, run: [cat, /proc/1/cmdline], stdoutContains: labctl-shim}
      - id: container
        title: a container is pod2
        command: {in: pod2, container: web-server, run: [hostname], stdoutMatches: "^pod2\n$"}
`

// hostFiles is what a lab must leave as it found it on the host.
type hostFiles struct {
	hostname string
	files    map[string][]byte
}

func hostView(t *testing.T) hostFiles {
	t.Helper()
	s := hostFiles{files: map[string][]byte{}}
	s.hostname, _ = os.Hostname()
	for _, f := range []string{"/etc/hosts", "/etc/resolv.conf"} {
		s.files[f], _ = os.ReadFile(f)
	}
	return s
}

// check compares the host with the snapshot, and looks for anything of
// the lab (by name) in the host's mounts and processes.
func (s hostFiles) check(t *testing.T, name string) {
	t.Helper()
	now := hostView(t)
	if now.hostname != s.hostname {
		t.Errorf("the host's hostname changed from %q to %q", s.hostname, now.hostname)
	}
	for f, b := range s.files {
		if !bytes.Equal(now.files[f], b) {
			t.Errorf("the host's %s changed:\n%s", f, now.files[f])
		}
	}
	if b, _ := os.ReadFile("/proc/self/mountinfo"); bytes.Contains(b, []byte(name)) {
		t.Errorf("a mount of lab %s is left on the host", name)
	}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		if b, _ := os.ReadFile("/proc/" + e.Name() + "/cmdline"); bytes.Contains(b, []byte(name+"/")) {
			t.Errorf("process %s %q of lab %s is left", e.Name(), bytes.ReplaceAll(b, []byte{0}, []byte{' '}), name)
		}
	}
}
