package e2e

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/labctl/labctl/emulator/lab"
	"github.com/labctl/labctl/emulator/plan"
	"github.com/labctl/labctl/emulator/spec"
)

var labctlBin struct {
	once sync.Once
	path string
	err  error
	dir  string
}

func TestMain(m *testing.M) {
	code := m.Run()
	if labctlBin.dir != "" {
		os.RemoveAll(labctlBin.dir)
	}
	os.Exit(code)
}

// buildLabctl builds the CLI once per test binary, or returns the binary
// LABCTL_E2E_BINARY names (to run the suite against another build).
func buildLabctl(t *testing.T) string {
	t.Helper()
	if bin := os.Getenv("LABCTL_E2E_BINARY"); bin != "" {
		return bin
	}
	labctlBin.once.Do(func() {
		dir, err := os.MkdirTemp("", "labctl-e2e-")
		if err != nil {
			labctlBin.err = err
			return
		}
		labctlBin.dir = dir
		labctlBin.path = filepath.Join(dir, "labctl")
		// Built as the README and the Makefile build it: static.
		cmd := exec.Command("go", "build", "-o", labctlBin.path, "../cmd/labctl")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		out, err := cmd.CombinedOutput()
		if err != nil {
			labctlBin.err = errors.New(string(out))
		}
	})
	if labctlBin.err != nil {
		t.Fatalf("build labctl: %v", labctlBin.err)
	}
	return labctlBin.path
}

// run runs a command and returns its combined output and exit code.
func run(t *testing.T, bin string, args ...string) (string, int) {
	t.Helper()
	return runWithInput(t, "", bin, args...)
}

func runWithInput(t *testing.T, stdin, bin string, args ...string) (string, int) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Stdin = strings.NewReader(stdin)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	var exit *exec.ExitError
	switch {
	case err == nil:
		return out.String(), 0
	case errors.As(err, &exit):
		return out.String(), exit.ExitCode()
	}
	t.Fatalf("run %s %v: %v", bin, args, err)
	return "", -1
}

func TestCLIWalkthrough(t *testing.T) {
	requireRoot(t)
	t.Parallel()
	bin := buildLabctl(t)
	state := t.TempDir()
	path, name := copyTopology(t, "two-node.yaml", "tcli")
	t.Cleanup(func() {
		run(t, bin, "--state-dir", state, "down", name)
		assertNoNamespaces(t, name)
	})

	out, code := run(t, bin, "--state-dir", state, "up", path)
	if code != 0 || !strings.Contains(out, "is up") {
		t.Fatalf("up: exit %d: %s", code, out)
	}
	out, code = run(t, bin, "--state-dir", state, "up", path)
	if code != 0 || !strings.Contains(out, "already up") {
		t.Errorf("second up: exit %d: %s", code, out)
	}

	// exec: output, exit code and stdin are the command's own.
	out, code = run(t, bin, "--state-dir", state, "exec", "pod1a", "--", "ip", "route")
	if code != 0 || !strings.Contains(out, "default via 192.168.1.1 dev eth0") {
		t.Errorf("exec ip route: exit %d: %s", code, out)
	}
	if _, code = run(t, bin, "--state-dir", state, "exec", "pod2", "--", "sh", "-c", "exit 7"); code != 7 {
		t.Errorf("exec exit code = %d, want 7", code)
	}
	out, _ = runWithInput(t, "hello from stdin\n", bin, "--state-dir", state, "exec", "node1", "--", "cat")
	if out != "hello from stdin\n" {
		t.Errorf("exec stdin pass-through: got %q", out)
	}
	out, code = run(t, bin, "--state-dir", state, "exec", "nosuchpod", "--", "true")
	if code != 4 || !strings.Contains(out, "pod1a") {
		t.Errorf("exec unknown pod: exit %d: %s (want 4 and a list of known names)", code, out)
	}

	// status: table and JSON show namespaces and live interfaces.
	out, code = run(t, bin, "--state-dir", state, "status", name)
	if code != 0 || !strings.Contains(out, plan.NamespaceName(name, "pod1a")) || !strings.Contains(out, "192.168.1.1/24") {
		t.Errorf("status: exit %d:\n%s", code, out)
	}
	out, code = run(t, bin, "--state-dir", state, "status", name, "-o", "json")
	var st struct {
		APIVersion string
		Kind       string
		Name       string
		Namespaces []struct {
			Namespace  string
			Role       string
			IP         string
			Present    bool
			Interfaces []struct{ Name string }
		}
	}
	if err := json.Unmarshal([]byte(out), &st); err != nil || code != 0 {
		t.Fatalf("status -o json: exit %d, %v:\n%s", code, err, out)
	}
	if st.APIVersion != "labctl.dev/v1" || st.Kind != "Lab" || st.Name != name || len(st.Namespaces) != 6 {
		t.Fatalf("status json: %+v", st)
	}
	for _, ns := range st.Namespaces {
		if !ns.Present || len(ns.Interfaces) == 0 {
			t.Errorf("status json: namespace %s present=%v interfaces=%v", ns.Namespace, ns.Present, ns.Interfaces)
		}
	}

	out, code = run(t, bin, "--state-dir", state, "down", path)
	if code != 0 || !strings.Contains(out, "is down") {
		t.Errorf("down by file: exit %d: %s", code, out)
	}
	assertNoNamespaces(t, name)
	if _, code = run(t, bin, "--state-dir", state, "down", name); code != 4 {
		t.Errorf("down of a lab that is not up: exit %d, want 4", code)
	}
}

func TestValidateExitCodes(t *testing.T) {
	bin := buildLabctl(t)
	out, code := run(t, bin, "validate", "../topologies/two-node.yaml")
	if code != 0 || !strings.Contains(out, "is valid") {
		t.Errorf("validate two-node: exit %d: %s", code, out)
	}
	bad := writeTopology(t, "name: x\nnetwork:\n  mtu: 10\nnodes:\n  - name: a/b\n")
	out, code = run(t, bin, "validate", bad)
	if code != 3 {
		t.Errorf("validate invalid: exit %d, want 3: %s", code, out)
	}
	for _, want := range []string{bad + ":3:3: network.mtu", bad + ":5:5: nodes[0].name", "2 problems"} {
		if !strings.Contains(out, want) {
			t.Errorf("validate output lacks %q:\n%s", want, out)
		}
	}
	if _, code = run(t, bin, "validate"); code != 2 {
		t.Errorf("validate without a file: exit %d, want 2", code)
	}
}

// The --dry-run script, run by bash, builds a lab that passes the same
// checks as labctl's own.
func TestDryRunScriptBuildsSameLab(t *testing.T) {
	requireRoot(t)
	t.Parallel()
	if _, err := exec.LookPath("ip"); err != nil {
		t.Fatal("the dry-run test needs iproute2 (apt-get install iproute2)")
	}
	if _, err := exec.LookPath("nft"); err != nil {
		t.Fatal("the dry-run test needs nftables (apt-get install nftables): scripts load the nodes' masquerade table with nft")
	}
	bin := buildLabctl(t)
	files := []string{"two-node.yaml", "three-node.yaml", "two-node-vxlan.yaml", "three-node-vxlan-l2.yaml", "calico-vxlan.yaml", "calico-no-encap.yaml", "tutorial-host-gw.yaml", "tutorial.yaml"}
	// The script builds IPIP with the kernel's ipip device; where the
	// kernel has none (labctl serves tunl0 from userspace there) the
	// script cannot run, and that part is a listed skip (.ci/skips).
	if lab.KernelHasModule("ipip") {
		files = append(files, "two-node-ipip.yaml", "three-node-mixed.yaml", "calico-ipip.yaml")
	} else {
		t.Run("ipip", func(t *testing.T) { t.Skip("the kernel has no ipip module: the script's ipip device cannot be made") })
	}
	for _, file := range files {
		path, name := copyTopology(t, file, "tdry")
		script, code := run(t, bin, "up", "--dry-run", path)
		if code != 0 {
			t.Fatalf("dry-run: exit %d: %s", code, script)
		}
		topo, err := spec.Load(path)
		if err != nil {
			t.Fatal(err)
		}
		p, _ := plan.Compile(topo)
		t.Cleanup(func() {
			for _, ns := range p.Namespaces {
				exec.Command("ip", "netns", "del", ns.Name).Run()
			}
			assertNoNamespaces(t, name)
		})
		cmd := exec.Command("bash", "-s")
		cmd.Stdin = strings.NewReader(script)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("bash dry-run script: %v\n%s", err, out)
		}
		checkNetworkModel(t, topo)
		// The objects are the same too, down to ports and MACs.
		if topo.Calico() {
			checkCalicoObjects(t, topo)
		} else {
			checkBridgeObjects(t, topo)
		}
		// Outside the cluster: the router, the external hosts, the
		// nodes' masquerade loaded by nft.
		checkOutside(t, topo)
	}
}

// A labctl killed halfway through up leaves namespaces that down still finds,
// and a lost state file does not stop down --all.
func TestDownAfterCrashAndLostState(t *testing.T) {
	requireRoot(t)
	t.Parallel()
	bin := buildLabctl(t)
	state := t.TempDir()
	name := uniqueName("tcr")
	path := writeTopology(t, bigTopology(name, 5, 400))
	t.Cleanup(func() {
		run(t, bin, "--state-dir", state, "down", "--all")
		assertNoNamespaces(t, name)
	})

	crash := func() {
		t.Helper()
		cmd := exec.Command(bin, "--state-dir", state, "up", "--workers", "1", path)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(20 * time.Second)
		for len(labNamespaces(t, name)) < 30 && time.Now().Before(deadline) {
			time.Sleep(time.Millisecond)
		}
		cmd.Process.Signal(syscall.SIGKILL)
		cmd.Wait()
		if n := len(labNamespaces(t, name)); n == 0 || n == 1+5+400 {
			t.Skipf("could not catch up halfway (%d namespaces); machine too fast or too slow", n)
		}
	}

	crash()
	out, code := run(t, bin, "--state-dir", state, "up", path)
	if code != 5 || !strings.Contains(out, "interrupted") {
		t.Errorf("up after crash: exit %d: %s (want 5 and advice to run down)", code, out)
	}
	out, code = run(t, bin, "--state-dir", state, "down", name)
	if code != 0 {
		t.Fatalf("down after crash: exit %d: %s", code, out)
	}
	assertNoNamespaces(t, name)

	crash()
	if err := os.RemoveAll(filepath.Join(state, "labs")); err != nil {
		t.Fatal(err)
	}
	out, code = run(t, bin, "--state-dir", state, "down", "--all")
	if code != 0 || !strings.Contains(out, name) {
		t.Fatalf("down --all after losing the lab record: exit %d: %s", code, out)
	}
	assertNoNamespaces(t, name)
}

// The textbook's pods: from curl-client in each pod, 127.0.0.1:80 and every
// other pod's IP:80 answer with the right pod IP; down leaves no process.
func TestContainersCurlClient(t *testing.T) {
	requireRoot(t)
	t.Parallel()
	bin := buildLabctl(t)
	state := t.TempDir()
	path, name := copyTopology(t, "two-node.yaml", "tcc")
	t.Cleanup(func() {
		run(t, bin, "--state-dir", state, "down", name)
		assertNoNamespaces(t, name)
	})
	out, code := run(t, bin, "--state-dir", state, "up", path)
	if code != 0 {
		t.Fatalf("up: exit %d: %s", code, out)
	}
	// labbench reads this line.
	if !regexp.MustCompile(`network ready in \S+, then 6 containers started in \S+\n`).MatchString(out) {
		t.Errorf("up does not say when the 6 containers had started:\n%s", out)
	}
	topo, err := spec.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, src := range topo.Pods() {
		targets := map[string]string{"127.0.0.1": src.IP.String()}
		for _, dst := range topo.Pods() {
			targets[dst.IP.String()] = dst.IP.String()
		}
		for addr, want := range targets {
			out, code := run(t, bin, "--state-dir", state, "exec", src.Name, "-c", "curl-client", "--", "curl", "-s", "http://"+addr+":80/from-"+src.Name)
			wantBody := "HTTP Server IP address: " + want + "\nRequest path: /from-" + src.Name
			if code != 0 || !strings.Contains(out, wantBody) {
				t.Errorf("curl %s from %s: exit %d, got %q, want %q", addr, src.Name, code, out, wantBody)
			}
		}
	}
	out, _ = run(t, bin, "--state-dir", state, "status", name)
	if strings.Count(out, "web-server Running") != 3 {
		t.Errorf("status does not show three running web servers:\n%s", out)
	}
	out, _ = run(t, bin, "--state-dir", state, "logs", "pod2", "-c", "web-server")
	if !strings.Contains(out, "GET /from-pod1a") {
		t.Errorf("web-server log of pod2 lacks pod1a's request:\n%s", out)
	}
	if out, code := run(t, bin, "--state-dir", state, "down", name); code != 0 {
		t.Fatalf("down: exit %d: %s", code, out)
	}
	if procs := labProcesses(t, name); len(procs) > 0 {
		t.Errorf("processes left after down: %v", procs)
	}
}

// labProcesses lists processes whose command line names the lab.
func labProcesses(t *testing.T, labName string) []string {
	entries, _ := os.ReadDir("/proc")
	var found []string
	for _, e := range entries {
		data, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		cmd := strings.ReplaceAll(string(data), "\x00", " ")
		if strings.Contains(cmd, labName+"/") || strings.Contains(cmd, labName+"-") {
			found = append(found, e.Name()+": "+cmd)
		}
	}
	return found
}

// Pods start their containers in parallel; when one cannot start, up names
// it, stops every container that did start and removes the whole lab.
func TestContainerStartFailureRollsBack(t *testing.T) {
	requireRoot(t)
	t.Parallel()
	bin := buildLabctl(t)
	state := t.TempDir()
	name := uniqueName("tcf")
	var b strings.Builder
	fmt.Fprintf(&b, "name: %s\nnodes:\n", name)
	for n := range 2 {
		fmt.Fprintf(&b, "  - name: node%d\n    pods:\n", n)
		for p := range 8 {
			fmt.Fprintf(&b, "      - name: web%d-%d\n        containers: [{name: web, builtin: web-server}]\n", n, p)
		}
	}
	// An executable file the kernel cannot run (no ELF header, no #!):
	// the host check before up sees a program there, only execve fails.
	app := filepath.Join(t.TempDir(), "app")
	if err := os.WriteFile(app, []byte("not a program\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(&b, "      - name: broken\n        containers:\n          - {name: web, builtin: web-server}\n          - {name: app, command: [%s]}\n", app)
	path := writeTopology(t, b.String())
	t.Cleanup(func() {
		run(t, bin, "--state-dir", state, "down", name)
		assertNoNamespaces(t, name)
	})

	out, code := run(t, bin, "--state-dir", state, "up", path)
	if code != 1 || !strings.Contains(out, `pod "broken"`) || !strings.Contains(out, `container "app"`) ||
		!strings.Contains(out, app) || !strings.Contains(out, "everything created was removed") {
		t.Errorf("up: exit %d, want 1 and an error naming pod broken, container app and its command:\n%s", code, out)
	}
	assertNoNamespaces(t, name)
	if procs := labProcesses(t, name); len(procs) > 0 {
		t.Errorf("processes left after the failed up: %v", procs)
	}
	if _, err := os.Stat(filepath.Join(state, "pods", name)); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the pods' state is left after the failed up: %v", err)
	}
	if out, code := run(t, bin, "--state-dir", state, "status", name); code != 4 {
		t.Errorf("status after the failed up: exit %d, want 4 (not found):\n%s", code, out)
	}
}

// What a student sees of container lifecycles through the CLI: an OOM kill
// named in status, restart policies honoured, exit codes, logs.
func TestContainerLifecycleViaCLI(t *testing.T) {
	requireRoot(t)
	t.Parallel()
	bin := buildLabctl(t)
	state := t.TempDir()
	name := uniqueName("tlc")
	path := writeTopology(t, fmt.Sprintf(`name: %s
nodes:
  - name: n0
    pods:
      - name: hogs
        restartPolicy: Never
        containers:
          - name: hog
            command: [sh, -c, 'x=$(head -c 200000000 /dev/zero | tr "\0" a); echo survived']
            resources: {limits: {memory: 32Mi}}
          - name: web
            builtin: web-server
      - name: jobs
        containers:
          - name: flaky
            restartPolicy: OnFailure
            command: [sh, -c, 'echo attempt; exit 3']
          - name: once
            restartPolicy: Never
            command: [sh, -c, 'echo finished']
`, name))
	t.Cleanup(func() {
		run(t, bin, "--state-dir", state, "down", name)
		assertNoNamespaces(t, name)
	})
	if out, code := run(t, bin, "--state-dir", state, "up", path); code != 0 {
		t.Fatalf("up: exit %d: %s", code, out)
	}

	type ctr struct {
		Name        string `json:"name"`
		State       string `json:"state"`
		Restarts    int    `json:"restarts"`
		Termination *struct {
			ExitCode int    `json:"exitCode"`
			Reason   string `json:"reason"`
		} `json:"termination"`
	}
	containers := func() map[string]ctr {
		out, code := run(t, bin, "--state-dir", state, "status", name, "-o", "json")
		if code != 0 {
			t.Fatalf("status: exit %d: %s", code, out)
		}
		var doc struct {
			Namespaces []struct {
				Pod *struct {
					Containers []ctr `json:"containers"`
				} `json:"pod"`
			} `json:"namespaces"`
		}
		if err := json.Unmarshal([]byte(out), &doc); err != nil {
			t.Fatalf("status -o json: %v\n%s", err, out)
		}
		all := map[string]ctr{}
		for _, ns := range doc.Namespaces {
			if ns.Pod != nil {
				for _, c := range ns.Pod.Containers {
					all[c.Name] = c
				}
			}
		}
		return all
	}
	settled := func(c map[string]ctr) bool {
		return c["hog"].Termination != nil && c["once"].Termination != nil && c["flaky"].Restarts >= 2
	}
	deadline := time.Now().Add(20 * time.Second)
	got := containers()
	for !settled(got) && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
		got = containers()
	}
	if c := got["hog"]; c.Termination == nil || c.Termination.Reason != "OOMKilled" || c.Termination.ExitCode != 137 || c.Restarts != 0 {
		t.Errorf("hog: %+v, want OOMKilled with exit 137 and no restart (policy Never)", c)
	}
	if c := got["web"]; c.State != "running" {
		t.Errorf("web: %+v, want running next to the OOM-killed hog", c)
	}
	if c := got["flaky"]; c.Restarts < 2 {
		t.Errorf("flaky: %+v, want restarted (OnFailure, exit 3)", c)
	}
	if c := got["once"]; c.Termination == nil || c.Termination.ExitCode != 0 || c.Restarts != 0 {
		t.Errorf("once: %+v, want exit 0 and no restart (policy Never)", c)
	}
	out, _ := run(t, bin, "--state-dir", state, "status", name)
	if !strings.Contains(out, "hog Terminated: OOMKilled (exit 137)") {
		t.Errorf("status table does not show the OOM kill:\n%s", out)
	}
	// As kubectl logs: the current run's output, and --previous the run
	// before (while flaky waits to restart, both are the run that ended).
	for _, args := range [][]string{{"logs", "jobs", "-c", "flaky"}, {"logs", "jobs", "-c", "flaky", "--previous"}} {
		// flaky restarts at most every 5 s; a read that lands in the
		// millisecond a new run starts is asked again.
		out, code := "", 0
		for try := 0; try < 3; try++ {
			if out, code = run(t, bin, append([]string{"--state-dir", state}, args...)...); code == 0 && strings.Count(out, "attempt") == 1 {
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
		if code != 0 || strings.Count(out, "attempt") != 1 {
			t.Errorf("%s: exit %d, want one run's attempt:\n%s", strings.Join(args, " "), code, out)
		}
	}
	if out, code := run(t, bin, "--state-dir", state, "logs", "hogs", "-c", "hog"); code != 0 || strings.Contains(out, "survived") {
		t.Errorf("logs of hog: exit %d, the hog must not have survived:\n%s", code, out)
	}
	if out, code := run(t, bin, "--state-dir", state, "down", name); code != 0 {
		t.Fatalf("down: exit %d: %s", code, out)
	}
	if procs := labProcesses(t, name); len(procs) > 0 {
		t.Errorf("processes left after down: %v", procs)
	}
}
