package workload

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/labctl/labctl/emulator/cgroups"
	"github.com/labctl/labctl/emulator/helper"
	"github.com/labctl/labctl/emulator/netns"
	"github.com/labctl/labctl/emulator/process"
	"github.com/labctl/labctl/internal/nstest"
)

// The test binary is also the labctl binary of these tests: StartPod
// re-executes it as supervisor, container init, builtins and applets, and
// containers run it with WLTEST_ROLE set to play a test program.

// Everything a test creates is named wltest-<pid>-<random>: namespaces, lab
// names (and so cgroups). TestMain checks that none is left.
var testPrefix = nstest.Prefix("wl")

func TestMain(m *testing.M) {
	if code, ok := helper.Main(); ok {
		os.Exit(code)
	}
	if role := os.Getenv("WLTEST_ROLE"); role != "" {
		os.Exit(testRole(role))
	}
	code := m.Run()
	if code == 0 {
		code = checkLeftovers()
	}
	os.Exit(code)
}

// checkLeftovers fails the run if a namespace or cgroup of this run exists.
func checkLeftovers() int {
	entries, _ := os.ReadDir(netns.Dir)
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), testPrefix) {
			fmt.Fprintf(os.Stderr, "leak: namespace %s left behind\n", e.Name())
			return 1
		}
	}
	// Supervisors and containers carry "<lab>/<pod>" in their titles.
	procs, _ := os.ReadDir("/proc")
	for _, p := range procs {
		if _, err := strconv.Atoi(p.Name()); err != nil {
			continue
		}
		b, _ := os.ReadFile("/proc/" + p.Name() + "/cmdline")
		if strings.HasPrefix(string(b), "labctl-") && strings.Contains(string(b), testPrefix) {
			fmt.Fprintf(os.Stderr, "leak: process %s %q left behind\n", p.Name(), strings.ReplaceAll(string(b), "\x00", " "))
			return 1
		}
	}
	if d, err := cgroups.Detect(cgroups.Auto); err == nil {
		for _, h := range d.Hierarchies() {
			entries, _ := os.ReadDir(filepath.Join(h, cgroups.Root))
			for _, e := range entries {
				if strings.HasPrefix(e.Name(), testPrefix) {
					fmt.Fprintf(os.Stderr, "leak: cgroup %s left behind\n", filepath.Join(h, cgroups.Root, e.Name()))
					return 1
				}
			}
		}
	}
	return 0
}

// testRole plays a program for a container.
func testRole(role string) int {
	switch role {
	case "sleep":
		sleepForever()
	case "busy":
		//lint:ignore SA5002 the test needs a container that burns CPU
		for {
		}
	case "exit":
		ms, _ := strconv.Atoi(os.Getenv("WLTEST_DELAY_MS"))
		time.Sleep(time.Duration(ms) * time.Millisecond)
		code, _ := strconv.Atoi(os.Getenv("WLTEST_CODE"))
		fmt.Printf("exiting with %d\n", code)
		return code
	case "alloc":
		// Touch memory a MiB at a time until the OOM killer stops us.
		var hold [][]byte
		for i := 1; i <= 1024; i++ {
			b := make([]byte, 1<<20)
			for j := range b {
				b[j] = byte(j)
			}
			hold = append(hold, b)
			if i%16 == 0 {
				fmt.Printf("allocated %d MiB\n", i)
			}
		}
		runtime.KeepAlive(hold)
		fmt.Println("allocated 1 GiB without being stopped")
		return 0
	case "report":
		host, _ := os.Hostname()
		wd, _ := os.Getwd()
		fmt.Printf("hostname=%s\ncwd=%s\n", host, wd)
		for _, k := range []string{"FOO", "REF", "POD_IP", "POD_NAME", "HOSTNAME", "PATH", "EXTRA"} {
			fmt.Printf("%s=%s\n", k, os.Getenv(k))
		}
		entries, _ := os.ReadDir("/")
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		fmt.Printf("root=%s\n", strings.Join(names, ","))
		for _, kv := range os.Environ() {
			if strings.HasPrefix(kv, "LABCTL_") {
				fmt.Printf("leaked=%s\n", kv)
			}
		}
		if b, err := os.ReadFile("/proc/self/cgroup"); err == nil {
			fmt.Printf("cgroup=%s\n", strings.ReplaceAll(strings.TrimSpace(string(b)), "\n", ";"))
		}
		if os.Getenv("WLTEST_SLEEP") != "" {
			sleepForever()
		}
		return 0
	case "readfile":
		b, err := os.ReadFile(os.Getenv("WLTEST_FILE"))
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		os.Stdout.Write(b)
		return 0
	case "writefile":
		if err := os.WriteFile(os.Getenv("WLTEST_FILE"), []byte(os.Getenv("WLTEST_DATA")), 0o644); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		return 0
	case "which":
		// Where the PATH leads, as a shell's `command -v` says.
		for _, name := range strings.Fields(os.Getenv("WLTEST_NAMES")) {
			p, err := exec.LookPath(name)
			if err != nil {
				fmt.Fprintln(os.Stderr, err)
				return 1
			}
			fmt.Printf("%s=%s\n", name, p)
		}
		return 0
	case "args":
		// An image's program: a script whose interpreter is this binary.
		fmt.Printf("args=%s\n", strings.Join(os.Args, " "))
		return 0
	case "nsreport":
		b, _ := json.Marshal(readNSReport())
		fmt.Println(string(b))
		if os.Getenv("WLTEST_SLEEP") != "" {
			sleepForever()
		}
		return 0
	case "stubborn":
		// Ignores SIGTERM, and leaves behind a grandchild that escaped its
		// process group, as a daemon does.
		signal.Ignore(syscall.SIGTERM)
		if os.Getenv("WLTEST_CHILD") == "" {
			cmd := exec.Command("/proc/self/exe")
			cmd.Env = append(os.Environ(), "WLTEST_CHILD=1")
			cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
			if err := cmd.Start(); err != nil {
				fmt.Println("start child:", err)
				return 1
			}
			id, _ := process.Of(cmd.Process.Pid)
			fmt.Printf("child=%d start=%d\n", cmd.Process.Pid, id.StartTime)
		}
		sleepForever()
	case "startpod":
		// `labctl up` in miniature: start a pod, print its Shim, exit.
		var spec PodSpec
		if err := json.Unmarshal([]byte(os.Getenv("WLTEST_SPEC")), &spec); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 98
		}
		shim, err := StartPod(context.Background(), spec, testOptions())
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		b, _ := json.Marshal(shim)
		fmt.Println(string(b))
		return 0
	}
	fmt.Fprintf(os.Stderr, "unknown WLTEST_ROLE %q\n", role)
	return 2
}

// sleepForever blocks, also in a test binary built without cgo, whose
// runtime would end a bare select{} as a deadlock.
func sleepForever() {
	for {
		time.Sleep(time.Hour)
	}
}

func uniqueName() string { return nstest.Unique(testPrefix) }

// alive reports whether the process recorded as pid and start still runs.
func alive(pid int, start uint64) bool { return process.ID{PID: pid, StartTime: start}.Alive() }

func run(t testing.TB, name string, args ...string) {
	t.Helper()
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s %s: %v: %s", name, strings.Join(args, " "), err, out)
	}
}

// testNet is a lab of our own: namespaces joined by veth pairs, on private
// addresses of 10.125.0.0/24 that exist nowhere but between them.
type testNet struct {
	lab   string
	names []string // namespace names
	ips   []string
}

func (n *testNet) path(i int) string { return netns.Path(n.names[i]) }

// newNet creates count namespaces (at most 2 wired) with lo up; with two,
// a veth pair joins them: 10.125.0.1 <-> 10.125.0.2.
func newNet(t testing.TB, count int) *testNet {
	t.Helper()
	nstest.NeedRoot(t)
	n := &testNet{lab: uniqueName()}
	for i := range count {
		name := fmt.Sprintf("%s-%d", n.lab, i)
		nstest.AddNamespace(t, name)
		n.names = append(n.names, name)
		n.ips = append(n.ips, fmt.Sprintf("10.125.0.%d", i+1))
	}
	if count >= 2 {
		run(t, "ip", "-n", n.names[0], "link", "add", "eth0", "type", "veth", "peer", "name", "eth0", "netns", n.names[1])
		for i := range 2 {
			run(t, "ip", "-n", n.names[i], "addr", "add", n.ips[i]+"/24", "dev", "eth0")
			run(t, "ip", "-n", n.names[i], "link", "set", "eth0", "up")
		}
	}
	return n
}

func testOptions() Options {
	return Options{
		Executable: testBinary(),
		Backoff:    Backoff{Initial: Duration(20 * time.Millisecond), Max: Duration(200 * time.Millisecond), Reset: Duration(10 * time.Second)},
	}
}

func testBinary() string {
	exe, err := os.Executable()
	if err != nil {
		panic(err)
	}
	return exe
}

// startPod starts a pod in namespace i of the net and stops it (checking
// that nothing is left) when the test ends.
func startPod(t testing.TB, n *testNet, i int, pod string, ctrs ...Container) (Shim, PodSpec) {
	t.Helper()
	return startPodWith(t, n, i, pod, nil, ctrs...)
}

// startPodWith is startPod with a change to the spec.
func startPodWith(t testing.TB, n *testNet, i int, pod string, change func(*PodSpec), ctrs ...Container) (Shim, PodSpec) {
	t.Helper()
	spec := PodSpec{
		Lab: n.lab, Pod: pod, Namespace: n.path(i), PodIP: n.ips[i],
		StateDir: filepath.Join(t.TempDir(), pod), Containers: ctrs,
	}
	if change != nil {
		change(&spec)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	shim, err := StartPod(ctx, spec, testOptions())
	if err != nil {
		t.Fatalf("StartPod: %v", err)
	}
	t.Cleanup(func() { stopAndCheck(t, shim, n.path(i)) })
	return shim, spec
}

// stopAndCheck stops a pod and verifies, independently of StopPod's own
// checks, that no process is left in its namespace or cgroups.
func stopAndCheck(t testing.TB, shim Shim, nsPath string) {
	t.Helper()
	if err := StopPod(shim, time.Second); err != nil {
		t.Errorf("StopPod: %v", err)
	}
	if left := PodProcesses(shim); len(left) > 0 {
		t.Errorf("processes %v left after StopPod", left)
	}
	if left := procsInNetns(nsPath); len(left) > 0 {
		t.Errorf("processes %v left in %s", left, nsPath)
	}
	for _, dir := range shim.Cgroups {
		if _, err := os.Stat(dir); err == nil {
			t.Errorf("cgroup %s left after StopPod", dir)
		}
	}
}

// procsInNetns lists the processes whose network namespace is the one at
// nsPath, found by scanning /proc.
func procsInNetns(nsPath string) []int {
	var want unix.Stat_t
	if err := unix.Stat(nsPath, &want); err != nil {
		return nil
	}
	entries, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		var st unix.Stat_t
		if unix.Stat("/proc/"+e.Name()+"/ns/net", &st) == nil && st.Ino == want.Ino && st.Dev == want.Dev {
			if ps, err := process.ReadStat(pid); err == nil && ps.State != 'Z' {
				pids = append(pids, pid)
			}
		}
	}
	return pids
}

// waitStatus polls the pod's status until ok accepts it.
func waitStatus(t testing.TB, stateDir string, timeout time.Duration, what string, ok func(PodStatus) bool) PodStatus {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var st PodStatus
	var err error
	for time.Now().Before(deadline) {
		if st, err = ReadStatus(stateDir); err == nil && ok(st) {
			return st
		}
		time.Sleep(10 * time.Millisecond)
	}
	b, _ := json.MarshalIndent(st, "", "  ")
	t.Fatalf("waiting for %s: not within %v (err %v); status:\n%s", what, timeout, err, b)
	return st
}

func container(st PodStatus, name string) ContainerStatus {
	for _, c := range st.Containers {
		if c.Name == name {
			return c
		}
	}
	return ContainerStatus{}
}

// execIn runs a command in a pod as `labctl exec` does, and returns its
// output and exit code; a command that could not start exits 99 with the
// reason on stderr.
func execIn(t testing.TB, opts ExecOptions) (stdout, stderr string, code int) {
	t.Helper()
	var out, errb strings.Builder
	cmd, err := Command(opts)
	if err == nil {
		cmd.Stdout, cmd.Stderr = &out, &errb
		if err = cmd.Start(); err == nil {
			timer := time.AfterFunc(20*time.Second, func() { _ = cmd.Process.Kill() })
			defer timer.Stop()
			_ = cmd.Wait()
			return out.String(), errb.String(), ExitCode(cmd.ProcessState)
		}
	}
	return out.String(), err.Error(), 99
}

// testCmd is a container command running the test binary in a role.
func testCmd(role string, env ...EnvVar) Container {
	return Container{Command: []string{testBinary()}, Env: append([]EnvVar{{"WLTEST_ROLE", role}}, env...)}
}

func named(c Container, name string) Container {
	c.Name = name
	return c
}

func readLog(t testing.TB, stateDir, container string) string {
	t.Helper()
	b, err := os.ReadFile(LogPath(stateDir, container))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func hasLine(text, line string) bool {
	return slices.Contains(strings.Split(text, "\n"), line)
}

// nsReport is what a process sees of its pod: its namespaces and PID 1's,
// the processes its /proc lists, and the pod's files.
type nsReport struct {
	PID      int               `json:"pid"`
	Hostname string            `json:"hostname"`
	Self     map[string]string `json:"self"` // namespace kind -> "net:[4026...]"
	Init     map[string]string `json:"init"` // the same of /proc/1
	// Procs maps each PID /proc lists to its command line.
	Procs      map[int]string `json:"procs"`
	Hosts      string         `json:"hosts"`
	ResolvConf string         `json:"resolvConf"`
}

var nsKinds = []string{"net", "uts", "ipc", "pid", "mnt"}

func readNSReport() nsReport {
	r := nsReport{PID: os.Getpid(), Self: map[string]string{}, Init: map[string]string{}, Procs: map[int]string{}}
	r.Hostname, _ = os.Hostname()
	for _, k := range nsKinds {
		r.Self[k], _ = os.Readlink("/proc/self/ns/" + k)
		r.Init[k], _ = os.Readlink("/proc/1/ns/" + k)
	}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		if pid, err := strconv.Atoi(e.Name()); err == nil {
			b, _ := os.ReadFile("/proc/" + e.Name() + "/cmdline")
			r.Procs[pid] = strings.TrimSpace(strings.ReplaceAll(string(b), "\x00", " "))
		}
	}
	b, _ := os.ReadFile("/etc/hosts")
	r.Hosts = string(b)
	b, _ = os.ReadFile("/etc/resolv.conf")
	r.ResolvConf = string(b)
	return r
}
