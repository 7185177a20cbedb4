package e2e

// The attacks and faults of issue 8 ("Safe by construction"), each as
// described there: hostile names, namespace inode reuse, two labs racing
// for one namespace name, lost state, broken records, degraded labs,
// processes started by exec, SIGHUP during up.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/labctl/labctl/emulator/lab"
	"github.com/labctl/labctl/emulator/netns"
	"github.com/labctl/labctl/emulator/plan"
	"github.com/labctl/labctl/emulator/spec"
)

// cli runs labctl with a state directory.
type cli struct {
	t     *testing.T
	bin   string
	state string
}

func newCLI(t *testing.T) cli {
	return cli{t: t, bin: buildLabctl(t), state: filepath.Join(t.TempDir(), "state")}
}

func (c cli) run(args ...string) (string, int) {
	c.t.Helper()
	return run(c.t, c.bin, append([]string{"--state-dir", c.state}, args...)...)
}

// must runs labctl and fails the test unless it exits 0.
func (c cli) must(args ...string) string {
	c.t.Helper()
	out, code := c.run(args...)
	if code != 0 {
		c.t.Fatalf("labctl %s: exit %d:\n%s", strings.Join(args, " "), code, out)
	}
	return out
}

// up brings a shipped topology up under a unique name and removes it when
// the test ends (down --all of the test's own state directory); edits
// change the copy first.
func (c cli) up(file, prefix string, edits ...func(t *testing.T, path string)) (path, name string) {
	c.t.Helper()
	path, name = copyTopology(c.t, file, prefix)
	for _, edit := range edits {
		edit(c.t, path)
	}
	c.t.Cleanup(func() {
		c.run("down", "--all")
		assertNoNamespaces(c.t, name)
		assertNoCgroups(c.t, name)
	})
	c.must("up", path)
	return path, name
}

// labProcesses lists the PIDs status reports for a lab: supervisors,
// containers and IPIP datapaths.
func (c cli) labProcesses(name string) []int {
	c.t.Helper()
	out := c.must("status", name, "-o", "json")
	var doc struct {
		Namespaces []struct {
			Pod *struct {
				Shim struct {
					PID int `json:"pid"`
				} `json:"shim"`
				Containers []struct {
					PID int `json:"pid"`
				} `json:"containers"`
			} `json:"pod"`
		} `json:"namespaces"`
		Datapaths []struct {
			PID int `json:"pid"`
		} `json:"datapaths"`
	}
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		c.t.Fatalf("status -o json: %v:\n%s", err, out)
	}
	var pids []int
	for _, ns := range doc.Namespaces {
		if ns.Pod == nil {
			continue
		}
		pids = append(pids, ns.Pod.Shim.PID)
		for _, ctr := range ns.Pod.Containers {
			if ctr.PID > 0 {
				pids = append(pids, ctr.PID)
			}
		}
	}
	for _, d := range doc.Datapaths {
		if d.PID > 0 {
			pids = append(pids, d.PID)
		}
	}
	return pids
}

// alive reports whether a process exists and is not a zombie.
func alive(pid int) bool {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	i := strings.LastIndexByte(string(data), ')')
	return i > 0 && i+2 < len(data) && data[i+2] != 'Z'
}

func assertGone(t *testing.T, pids []int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for _, pid := range pids {
		for alive(pid) && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		if alive(pid) {
			t.Errorf("process %d survived down", pid)
		}
	}
}

// assertNoCgroups checks that no cgroup of the lab is left.
func assertNoCgroups(t *testing.T, name string) {
	t.Helper()
	left, _ := filepath.Glob("/sys/fs/cgroup/*/labctl/" + name)
	more, _ := filepath.Glob("/sys/fs/cgroup/labctl/" + name)
	if left = append(left, more...); len(left) > 0 {
		t.Errorf("cgroups left behind: %v", left)
	}
}

// Lab names from the command line or a topology's name: never become
// paths outside the state directory (issue 8, item 1).
func TestHostileLabNames(t *testing.T) {
	requireRoot(t)
	t.Parallel()
	c := newCLI(t)
	// A directory and a file beside it that a traversal from
	// <state>/pods/<name> and <state>/labs/<name>.json would reach.
	root := filepath.Dir(c.state)
	victim := filepath.Join(root, "victim")
	if err := os.MkdirAll(filepath.Join(victim, "d"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"d/keep", "d.json"} {
		if err := os.WriteFile(filepath.Join(victim, f), []byte("keep"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	hostile := writeTopology(t, "name: ../../victim/d\nnodes: [{name: n1}]\n")

	_, name := c.up("two-node.yaml", "thn")
	pids := c.labProcesses(name)

	for _, args := range [][]string{
		{"down", hostile},
		{"down", "../../victim/d"},
		{"down", "../labs/" + name},
		{"status", "../labs/" + name},
		{"status", hostile},
		{"exec", "--lab", "../labs/" + name, "pod1a", "--", "true"},
		{"logs", "--lab", "../labs/" + name, "pod1a", "-c", "web-server"},
		{"up", hostile},
	} {
		out, code := c.run(args...)
		if code != 2 && code != 3 {
			t.Errorf("labctl %s: exit %d, want 2 (bad command line) or 3 (invalid topology):\n%s", strings.Join(args, " "), code, out)
		}
	}
	for _, f := range []string{"d/keep", "d.json"} {
		if data, err := os.ReadFile(filepath.Join(victim, f)); err != nil || string(data) != "keep" {
			t.Errorf("%s outside the state directory was changed: %q, %v", f, data, err)
		}
	}
	for _, pid := range pids {
		if !alive(pid) {
			t.Errorf("process %d of lab %q was stopped by a command that named another lab", pid, name)
		}
	}
	if _, err := os.Stat(filepath.Join(c.state, "labs", name+".json")); err != nil {
		t.Errorf("the lab's record was removed: %v", err)
	}
}

// A namespace deleted behind labctl's back and made again under the same
// name (the kernel reuses its inode number) is left alone by down: it is
// not the lab's (issue 8, item 2).
func TestDownLeavesRecreatedNamespace(t *testing.T) {
	requireRoot(t)
	t.Parallel()
	c := newCLI(t)
	_, name := c.up("three-node.yaml", "tir")
	ns := plan.NamespaceName(name, "C")
	path := netns.Path(ns)
	var orig unix.Stat_t
	if err := unix.Stat(path, &orig); err != nil {
		t.Fatal(err)
	}
	// Recreate until the newcomer has the old inode number, as it did in
	// the attack (usually at once: the kernel hands out the lowest free).
	reused := false
	for i := 0; i < 50 && !reused; i++ {
		if out, err := exec.Command("ip", "netns", "del", ns).CombinedOutput(); err != nil {
			t.Fatalf("ip netns del: %v: %s", err, out)
		}
		if out, err := exec.Command("ip", "netns", "add", ns).CombinedOutput(); err != nil {
			t.Fatalf("ip netns add: %v: %s", err, out)
		}
		var st unix.Stat_t
		reused = unix.Stat(path, &st) == nil && st.Ino == orig.Ino && st.Dev == orig.Dev
	}
	t.Cleanup(func() { exec.Command("ip", "netns", "del", ns).Run() })
	t.Logf("inode reused: %v", reused)

	out := c.must("down", name)
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("down deleted the namespace someone else made under %q (%v):\n%s", ns, err, out)
	}
	if !strings.Contains(out, ns) {
		t.Errorf("down does not say it left %q alone:\n%s", ns, out)
	}
	if id, err := netns.IdentifyPath(path); err != nil || id.Marked {
		t.Errorf("the newcomer's identity: %+v, %v (want no labctl marker)", id, err)
	}
}

// Two labs whose namespace names collide, brought up at the same moment:
// exactly one gets the name, and the loser's rollback never removes the
// winner's claim, so the winner can always be taken down whole (item 3).
func TestConcurrentNameCollision(t *testing.T) {
	requireRoot(t)
	t.Parallel()
	m := newManager(t)
	for round := 0; round < 20; round++ {
		a := uniqueName("tcol")
		b := a + "-b"
		// Lab a with node "b-c" and lab a-b with node "c" both need the
		// namespace "a-b-c".
		topoA, err := spec.Parse("a.yaml", []byte("name: "+a+"\nnodes:\n  - name: b-c\n    pods: [{name: pa}]\n"))
		if err != nil {
			t.Fatal(err)
		}
		topoB, err := spec.Parse("b.yaml", []byte("name: "+b+"\nnodes:\n  - name: c\n    pods: [{name: pb}]\n"))
		if err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		errs := make([]error, 2)
		for i, topo := range []*spec.Topology{topoA, topoB} {
			wg.Go(func() { _, errs[i] = m.Up(context.Background(), topo, lab.UpOptions{}) })
		}
		wg.Wait()
		winners := 0
		for i, name := range []string{a, b} {
			if errs[i] != nil {
				continue
			}
			winners++
			rec, err := m.Ownership().Get(a + "-b-c")
			if err != nil || rec.Lab != name {
				t.Errorf("round %d: lab %q won but the claim on %q is %+v, %v", round, name, a+"-b-c", rec, err)
			}
		}
		if winners != 1 {
			t.Errorf("round %d: %d labs came up (errors %v), want exactly one", round, winners, errs)
		}
		for _, name := range []string{a, b} {
			if _, err := m.Down(name); err != nil && !errors.Is(err, lab.ErrNotFound) {
				t.Errorf("round %d: down %q: %v", round, name, err)
			}
		}
		if left := labNamespaces(t, a); len(left) > 0 {
			t.Fatalf("round %d: namespaces orphaned: %v", round, left)
		}
	}
}

// Lost state: with the state directory deleted, or only its ownership
// records, down finds the lab's namespaces by their markers and removes
// them with every process and cgroup; up works again afterwards (item 5).
func TestDownAfterLostState(t *testing.T) {
	requireRoot(t)
	t.Parallel()
	for _, lose := range []string{"everything", "netns", "labs and netns"} {
		t.Run(lose, func(t *testing.T) {
			t.Parallel()
			c := newCLI(t)
			path, name := c.up("two-node.yaml", "tls")
			pids := c.labProcesses(name)
			if len(pids) == 0 {
				t.Fatal("the lab runs no processes")
			}
			switch lose {
			case "everything":
				os.RemoveAll(c.state)
			case "netns":
				os.RemoveAll(filepath.Join(c.state, "netns"))
			default:
				os.RemoveAll(filepath.Join(c.state, "netns"))
				os.RemoveAll(filepath.Join(c.state, "labs"))
			}
			out := c.must("down", name)
			if !strings.Contains(out, "removed 6 namespaces") {
				t.Errorf("down does not say it removed the 6 namespaces:\n%s", out)
			}
			if !strings.Contains(out, "marker") {
				t.Errorf("down does not say it found namespaces by their marker:\n%s", out)
			}
			assertNoNamespaces(t, name)
			assertGone(t, pids)
			assertNoCgroups(t, name)
			c.must("up", path)
			c.must("down", name)
		})
	}
	t.Run("down --all", func(t *testing.T) {
		t.Parallel()
		c := newCLI(t)
		_, name := c.up("two-node.yaml", "tla")
		pids := c.labProcesses(name)
		os.RemoveAll(c.state)
		out := c.must("down", "--all")
		if !strings.Contains(out, name) {
			t.Errorf("down --all does not name the lab:\n%s", out)
		}
		assertNoNamespaces(t, name)
		assertGone(t, pids)
		assertNoCgroups(t, name)
	})
}

// A broken or truncated record is reported and skipped; it never hides the
// other labs nor makes status fail, and down still removes its lab (item 7).
func TestBrokenRecords(t *testing.T) {
	requireRoot(t)
	t.Parallel()
	c := newCLI(t)
	_, good := c.up("two-node.yaml", "tbg")
	for _, breakIt := range []string{"no topology", "truncated", "old version", "other name"} {
		t.Run(breakIt, func(t *testing.T) {
			_, bad := c.up("three-node.yaml", "tbb")
			file := filepath.Join(c.state, "labs", bad+".json")
			data, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			var rec map[string]any
			if err := json.Unmarshal(data, &rec); err != nil {
				t.Fatal(err)
			}
			switch breakIt {
			case "no topology":
				delete(rec, "topology")
				data, _ = json.Marshal(rec)
			case "truncated":
				data = data[:len(data)/2]
			case "old version":
				delete(rec, "version")
				data, _ = json.Marshal(rec)
			case "other name":
				rec["name"] = good
				data, _ = json.Marshal(rec)
			}
			if err := os.WriteFile(file, data, 0o644); err != nil {
				t.Fatal(err)
			}
			out := c.must("status")
			if !regexp.MustCompile(`(?m)^`+good+` +up `).MatchString(out) || !regexp.MustCompile(`(?m)^`+bad+` +unknown `).MatchString(out) ||
				!strings.Contains(out, "unusable lab record") {
				t.Errorf("status with a broken record:\n%s", out)
			}
			out = c.must("status", "-o", "json")
			if !strings.Contains(out, `"name": "`+good+`"`) || !strings.Contains(out, `"error"`) {
				t.Errorf("status -o json with a broken record:\n%s", out)
			}
			c.must("down", bad)
			assertNoNamespaces(t, bad)
		})
	}
}

// A lab that lost a namespace, a supervisor or its IPIP datapath is
// reported degraded, never "already up", and up --repair restores it
// (item 8).
func TestDegradedLabRepair(t *testing.T) {
	requireRoot(t)
	t.Parallel()
	tests := []struct {
		name, file string
		breakIt    func(t *testing.T, c cli, lab string)
		want       string // in the degraded report
		userspace  bool   // ask for the userspace IPIP datapath
	}{
		{"pod namespace deleted (an interrupted down)", "two-node.yaml", func(t *testing.T, c cli, lab string) {
			delNetns(t, plan.NamespaceName(lab, "pod2"))
		}, `pod "pod2"`, false},
		{"node namespace deleted", "two-node.yaml", func(t *testing.T, c cli, lab string) {
			delNetns(t, plan.NamespaceName(lab, "node1"))
		}, `node "node1"`, false},
		{"every namespace deleted", "two-node.yaml", func(t *testing.T, c cli, lab string) {
			for _, ns := range labNamespaces(t, lab) {
				delNetns(t, ns)
			}
		}, "underlay", false},
		{"supervisor killed", "two-node.yaml", func(t *testing.T, c cli, lab string) {
			rec := loadRecord(t, c, lab)
			killAndWait(t, rec.Pods["pod1a"].PID)
		}, "supervisor of pod \"pod1a\"", false},
		{"ipip datapath killed", "two-node-ipip.yaml", func(t *testing.T, c cli, lab string) {
			rec := loadRecord(t, c, lab)
			killAndWait(t, rec.Datapaths["node2"].Process.PID)
		}, "IPIP datapath of node \"node2\"", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := newCLI(t)
			var edits []func(*testing.T, string)
			if tt.userspace {
				edits = append(edits, userspaceIPIP)
			}
			path, name := c.up(tt.file, "tdg", edits...)
			tt.breakIt(t, c, name)
			out, code := c.run("up", path)
			if code != 5 || !strings.Contains(out, "degraded") || !strings.Contains(out, tt.want) {
				t.Errorf("up of the broken lab: exit %d, want 5 and a degraded report naming %s:\n%s", code, tt.want, out)
			}
			out = c.must("status", name)
			if !strings.Contains(out, "DEGRADED") {
				t.Errorf("status does not report the lab degraded:\n%s", out)
			}
			out = c.must("up", "--repair", path)
			if !strings.Contains(out, "repaired") {
				t.Errorf("up --repair:\n%s", out)
			}
			out = c.must("status", name)
			if strings.Contains(out, "DEGRADED") {
				t.Errorf("status after repair:\n%s", out)
			}
			m := lab.Manager{StateDir: c.state}
			rec, err := m.Load(name)
			if err != nil {
				t.Fatal(err)
			}
			checkNetworkModel(t, rec.Topology)
			if len(rec.Pods) > 0 {
				// The textbook's check: curl-client in pod1a reaches pod2.
				out = c.must("exec", "pod1a", "-c", "curl-client", "--", "curl", "-s", "192.168.2.20")
				if !strings.Contains(out, "192.168.2.20") {
					t.Errorf("curl pod1a -> pod2 after repair:\n%s", out)
				}
			}
			out = c.must("up", path)
			if !strings.Contains(out, "already up") {
				t.Errorf("up after repair:\n%s", out)
			}
		})
	}
}

func delNetns(t *testing.T, ns string) {
	t.Helper()
	if out, err := exec.Command("ip", "netns", "del", ns).CombinedOutput(); err != nil {
		t.Fatalf("ip netns del %s: %v: %s", ns, err, out)
	}
}

func loadRecord(t *testing.T, c cli, name string) *lab.Record {
	t.Helper()
	rec, err := lab.Manager{StateDir: c.state}.Load(name)
	if err != nil {
		t.Fatal(err)
	}
	return rec
}

func killAndWait(t *testing.T, pid int) {
	t.Helper()
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for alive(pid) && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
}

// Processes started with labctl exec in a node or a pod end with down; they
// no longer keep the deleted namespaces alive (item 9).
func TestDownEndsExecProcesses(t *testing.T) {
	requireRoot(t)
	t.Parallel()
	c := newCLI(t)
	_, name := c.up("two-node.yaml", "tex")
	var pids []int
	var cmds []*exec.Cmd
	for _, target := range [][]string{{"node1"}, {"pod2"}, {"pod1a", "-c", "curl-client"}} {
		args := append([]string{"--state-dir", c.state, "exec"}, target...)
		cmd := exec.Command(c.bin, append(args, "--", "sleep", "600")...)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		cmds = append(cmds, cmd)
		pids = append(pids, cmd.Process.Pid)
	}
	t.Cleanup(func() {
		for _, cmd := range cmds {
			cmd.Process.Kill()
			cmd.Wait()
		}
	})
	// exec replaces labctl with the command: wait until each is sleep.
	deadline := time.Now().Add(5 * time.Second)
	for _, pid := range pids {
		for time.Now().Before(deadline) {
			if comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid)); strings.TrimSpace(string(comm)) == "sleep" {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	out := c.must("down", name)
	done := make(chan struct{})
	go func() {
		for _, cmd := range cmds {
			cmd.Wait()
		}
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Errorf("processes started by exec survived down:\n%s", out)
	}
}

// SIGHUP (a closed terminal) during up rolls back like Ctrl-C, and nothing
// piles up in the state directory: no lock, log, temporary or ownership
// file is left (item 10).
func TestSIGHUPDuringUpRollsBack(t *testing.T) {
	requireRoot(t)
	t.Parallel()
	c := newCLI(t)
	name := uniqueName("thup")
	path := writeTopology(t, bigTopology(name, 5, 300))
	t.Cleanup(func() {
		c.run("down", "--all")
		assertNoNamespaces(t, name)
	})
	caught := false
	for attempt := 0; attempt < 5 && !caught; attempt++ {
		cmd := exec.Command(c.bin, "--state-dir", c.state, "up", "--workers", "1", path)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(20 * time.Second)
		for len(labNamespaces(t, name)) < 20 && time.Now().Before(deadline) {
			time.Sleep(time.Millisecond)
		}
		n := len(labNamespaces(t, name))
		cmd.Process.Signal(syscall.SIGHUP)
		err := cmd.Wait()
		caught = n > 0 && n < 1+5+300
		if caught && err == nil {
			t.Fatal("up exited 0 after SIGHUP")
		}
	}
	if !caught {
		t.Fatal("could not catch up halfway in 5 attempts")
	}
	assertNoNamespaces(t, name)
	var left []string
	filepath.Walk(c.state, func(p string, info os.FileInfo, err error) error {
		if err == nil && !info.IsDir() {
			left = append(left, p)
		}
		return nil
	})
	if len(left) > 0 {
		t.Errorf("files left in the state directory after an interrupted up: %v", left)
	}
}

// A record naming a process that is not the lab's (a forged or stale PID
// with its true start time) never gets it signalled: down only stops
// processes proven to live in the lab's namespaces or cgroups (item 4).
func TestDownSparesProcessNotTheLabs(t *testing.T) {
	requireRoot(t)
	t.Parallel()
	c := newCLI(t)
	_, name := c.up("two-node.yaml", "tfp")
	victim := exec.Command("sleep", "600")
	if err := victim.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { victim.Process.Kill(); victim.Wait() })
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", victim.Process.Pid))
	if err != nil {
		t.Fatal(err)
	}
	fields := strings.Fields(string(data)[strings.LastIndexByte(string(data), ')')+2:])
	start := fields[19]

	file := filepath.Join(c.state, "labs", name+".json")
	raw, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var rec map[string]any
	if err := json.Unmarshal(raw, &rec); err != nil {
		t.Fatal(err)
	}
	pods := rec["pods"].(map[string]any)
	forged := pods["pod1a"].(map[string]any)
	real := int(forged["pid"].(float64))
	forged["pid"] = victim.Process.Pid
	forged["startTime"] = json.Number(start)
	raw, _ = json.Marshal(rec)
	if err := os.WriteFile(file, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	out := c.must("down", name)
	if !alive(victim.Process.Pid) {
		t.Fatalf("down killed process %d, which a forged record named:\n%s", victim.Process.Pid, out)
	}
	if !strings.Contains(out, "left alone") {
		t.Errorf("down does not say it left the forged process alone:\n%s", out)
	}
	assertGone(t, []int{real}) // the real supervisor lived in the lab's namespace
	assertNoNamespaces(t, name)
}

// A relative --state-dir works like the absolute one, containers included:
// helper processes keep paths into it whatever their working directory.
func TestRelativeStateDir(t *testing.T) {
	requireRoot(t)
	t.Parallel()
	bin := buildLabctl(t)
	dir := t.TempDir()
	path, name := copyTopology(t, "two-node.yaml", "trs")
	labctl := func(args ...string) (string, int) {
		cmd := exec.Command(bin, append([]string{"--state-dir", "rel/state"}, args...)...)
		cmd.Dir = dir
		out, err := cmd.CombinedOutput()
		code := 0
		var exit *exec.ExitError
		if errors.As(err, &exit) {
			code = exit.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		return string(out), code
	}
	t.Cleanup(func() {
		labctl("down", "--all")
		assertNoNamespaces(t, name)
	})
	if out, code := labctl("up", path); code != 0 {
		t.Fatalf("up with a relative state dir: exit %d:\n%s", code, out)
	}
	out, code := labctl("exec", "pod1a", "-c", "curl-client", "--", "curl", "-s", "192.168.2.20")
	if code != 0 || !strings.Contains(out, "192.168.2.20") {
		t.Errorf("curl from a container: exit %d:\n%s", code, out)
	}
	if out, code := labctl("logs", "pod2", "-c", "web-server"); code != 0 || !strings.Contains(out, "GET /") {
		t.Errorf("logs: exit %d:\n%s", code, out)
	}
	if out, code := labctl("down", name); code != 0 {
		t.Errorf("down: exit %d:\n%s", code, out)
	}
	if _, err := os.Stat(filepath.Join(dir, "rel", "state", "labs")); err != nil {
		t.Errorf("the state is not where --state-dir said: %v", err)
	}
}

// What only the host can know (a program that is not there) is refused
// before anything is created, with the YAML path it concerns.
func TestHostCheckBeforeUp(t *testing.T) {
	requireRoot(t)
	t.Parallel()
	c := newCLI(t)
	name := uniqueName("thc")
	path := writeTopology(t, "name: "+name+"\nnodes:\n  - name: n1\n    pods:\n      - name: p1\n        containers: [{name: app, command: [/nonexistent/app]}]\n")
	out, code := c.run("up", path)
	if code != 1 || !strings.Contains(out, "nodes[0].pods[0].containers[0].command") || !strings.Contains(out, "nothing was created") {
		t.Errorf("up: exit %d, want 1 and the host problem with its YAML path:\n%s", code, out)
	}
	assertNoNamespaces(t, name)
	var left []string
	filepath.Walk(c.state, func(p string, info os.FileInfo, err error) error {
		if err == nil && !info.IsDir() {
			left = append(left, p)
		}
		return nil
	})
	if len(left) > 0 {
		t.Errorf("files left in the state directory: %v", left)
	}
}

// A state directory another user could change is refused, and links
// planted in an accepted one are never followed: root's up and down never
// write, remove or lock through them (item 4).
func TestHostileStateDir(t *testing.T) {
	requireRoot(t)
	t.Parallel()
	bin := buildLabctl(t)
	path, name := copyTopology(t, "two-node.yaml", "tsd")

	// Directories an unprivileged user controls.
	for _, tt := range []struct {
		what  string
		setup func(dir string)
	}{
		{"owned by nobody", func(dir string) { os.Chown(dir, 65534, 65534) }},
		{"writable by others", func(dir string) { os.Chmod(dir, 0o777) }},
		{"parent owned by nobody", func(dir string) { os.Chown(filepath.Dir(dir), 65534, 65534) }},
	} {
		t.Run(tt.what, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "parent", "state")
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			tt.setup(dir)
			out, code := run(t, bin, "--state-dir", dir, "up", path)
			if code == 0 || !strings.Contains(out, "state directory") {
				t.Errorf("up with a state directory %s: exit %d:\n%s", tt.what, code, out)
			}
			assertNoNamespaces(t, name)
			if entries, _ := os.ReadDir(dir); len(entries) > 0 {
				t.Errorf("up wrote into the refused state directory: %v", entries)
			}
		})
	}

	t.Run("planted links", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "state")
		victims := t.TempDir()
		for _, d := range []string{"labs", "locks", "logs", "pods", "netns"} {
			os.MkdirAll(filepath.Join(dir, d), 0o755)
		}
		plant := func(link, victim string) {
			if err := os.WriteFile(filepath.Join(victims, victim), []byte("victim"), 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink(filepath.Join(victims, victim), filepath.Join(dir, link)); err != nil {
				t.Fatal(err)
			}
		}
		plant("labs/"+name+".json", "record")
		plant("locks/"+name+".lock", "lock")
		plant("netns/"+name+"-node1", "ownership")
		os.MkdirAll(filepath.Join(victims, "podsdir", "keep"), 0o755)
		os.Symlink(filepath.Join(victims, "podsdir"), filepath.Join(dir, "pods", name))
		t.Cleanup(func() {
			run(t, bin, "--state-dir", dir, "down", "--all")
			assertNoNamespaces(t, name)
		})
		// First with every link, then without the lock's, then without the
		// record's too, so that up gets as far as the ownership records.
		for round := 0; round < 3; round++ {
			out, code := run(t, bin, "--state-dir", dir, "up", path)
			t.Logf("up with planted links (round %d): exit %d:\n%s", round, code, out)
			if code == 0 {
				out, code = run(t, bin, "--state-dir", dir, "down", name)
				t.Logf("down: exit %d:\n%s", code, out)
			}
			if round == 0 {
				os.Remove(filepath.Join(dir, "locks", name+".lock"))
			} else {
				os.Remove(filepath.Join(dir, "labs", name+".json"))
			}
		}
		for _, v := range []string{"record", "lock", "ownership"} {
			if data, err := os.ReadFile(filepath.Join(victims, v)); err != nil || string(data) != "victim" {
				t.Errorf("the file a planted link pointed at (%s) was changed: %q, %v", v, data, err)
			}
		}
		if _, err := os.Stat(filepath.Join(victims, "podsdir", "keep")); err != nil {
			t.Errorf("the directory a planted link pointed at was changed: %v", err)
		}
	})
}
