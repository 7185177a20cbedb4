package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/labctl/labctl/emulator/lab"
	"github.com/labctl/labctl/emulator/plan"
	"github.com/labctl/labctl/emulator/workload"
)

// needRoot skips a test that needs root (here: a state directory labctl
// trusts must be root's), unless LABCTL_REQUIRE_ROOT=1 makes it a failure.
func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if os.Getenv("LABCTL_REQUIRE_ROOT") == "1" {
		t.Fatal("this test needs root and LABCTL_REQUIRE_ROOT=1 forbids skipping it")
	}
	t.Skip("needs root (set LABCTL_REQUIRE_ROOT=1 to make this a failure)")
}

// runIn runs labctl in-process against a given state directory.
func runIn(t *testing.T, state string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = run(context.Background(), append([]string{"--state-dir", state}, args...), Streams{In: strings.NewReader(""), Out: &out, ErrOut: &errOut}, func(string) string { return "" })
	return out.String(), errOut.String(), code
}

// recordLab writes the record of a lab that is up, as `up` would, without
// building it: completion reads records only.
func recordLab(t *testing.T, state, file string) {
	t.Helper()
	topo := loadTopology(t, file)
	p, err := plan.Compile(topo)
	if err != nil {
		t.Fatal(err)
	}
	r := lab.Record{Version: lab.RecordVersion, Name: topo.Name, ID: "0123456789abcdef", Digest: lab.Digest(topo), Phase: lab.PhaseUp,
		CreatedAt: time.Now(), Topology: topo, Namespaces: p.Namespaces, Pods: map[string]workload.Shim{}}
	for _, pod := range topo.Pods() {
		if len(pod.Containers) > 0 {
			r.Pods[pod.Name] = workload.Shim{Lab: topo.Name, Pod: pod.Name, PID: 1, StateDir: filepath.Join(state, "pods", topo.Name, pod.Name)}
		}
	}
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(state, "labs"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(state, "labs", topo.Name+".json"), b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// complete asks cobra's hidden __complete command, as the shell scripts
// do, and returns the candidates (without descriptions) and the directive.
func complete(t *testing.T, state string, args ...string) ([]string, string) {
	t.Helper()
	out, stderr, code := runIn(t, state, append([]string{"__complete"}, args...)...)
	if code != 0 {
		t.Fatalf("__complete %v: exit %d: %s", args, code, stderr)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	directive := lines[len(lines)-1]
	var names []string
	for _, l := range lines[:len(lines)-1] {
		name, _, _ := strings.Cut(l, "\t")
		names = append(names, name)
	}
	return names, directive
}

// The shell completes lab, node, pod and container names from the state
// directory, -o values, and topology files where a file is expected.
func TestCompletion(t *testing.T) {
	needRoot(t)
	state := filepath.Join(t.TempDir(), "state")
	recordLab(t, state, "two-node.yaml")
	recordLab(t, state, "two-node-vxlan.yaml")
	const noFiles, yamlOnly = ":4", ":8"
	for _, tt := range []struct {
		args      []string
		want      []string
		directive string
	}{
		{[]string{"status", ""}, []string{"two-node", "two-node-vxlan"}, noFiles},
		{[]string{"status", "two-node", ""}, []string{"underlay", "node1", "pod1a", "pod1b", "node2", "pod2"}, noFiles},
		{[]string{"status", "-o", ""}, []string{"table", "wide", "json", "yaml", "name"}, noFiles},
		{[]string{"down", ""}, []string{"two-node", "two-node-vxlan"}, noFiles},
		{[]string{"exec", "--lab", "two-node", ""}, []string{"node1", "pod1a", "pod1b", "node2", "pod2"}, noFiles},
		{[]string{"exec", "--lab", ""}, []string{"two-node", "two-node-vxlan"}, noFiles},
		{[]string{"exec", "--lab", "two-node", "pod1a", "-c", ""}, []string{"curl-client", "web-server"}, noFiles},
		{[]string{"logs", ""}, []string{"pod1a", "pod1b", "pod2"}, noFiles}, // only two-node's pods run containers
		{[]string{"logs", "--lab", "two-node", "pod2", "-c", ""}, []string{"curl-client", "web-server"}, noFiles},
		{[]string{"up", ""}, []string{"yaml", "yml"}, yamlOnly},
		{[]string{"validate", ""}, []string{"yaml", "yml"}, yamlOnly},
		{[]string{"version", "-o", ""}, []string{"table", "json", "yaml"}, noFiles},
		{[]string{"completion", ""}, []string{"bash", "zsh", "fish"}, noFiles},
	} {
		got, directive := complete(t, state, tt.args...)
		if !slices.Equal(got, tt.want) || directive != tt.directive {
			t.Errorf("complete %q: %q %s; want %q %s", tt.args, got, directive, tt.want, tt.directive)
		}
	}
	// No labs up: down and status offer topology files instead.
	if got, directive := complete(t, filepath.Join(t.TempDir(), "empty"), "down", ""); !slices.Equal(got, []string{"yaml", "yml"}) || directive != yamlOnly {
		t.Errorf("complete down without labs: %q %s", got, directive)
	}
}

// The scripts themselves, one per shell.
func TestCompletionScripts(t *testing.T) {
	for shell, want := range map[string]string{"bash": "__start_labctl", "zsh": "#compdef labctl", "fish": "complete -c labctl"} {
		out, stderr, code := runCLI(t, "completion", shell)
		if code != 0 || !strings.Contains(out, want) {
			t.Errorf("completion %s: exit %d, %s; want a script with %q", shell, code, stderr, want)
		}
	}
}

// `status pod1a`, kubectl's habit, points at the command that shows it.
func TestStatusPointsAtTheObject(t *testing.T) {
	needRoot(t)
	state := filepath.Join(t.TempDir(), "state")
	recordLab(t, state, "two-node.yaml")
	_, stderr, code := runIn(t, state, "status", "pod1a")
	if code != 4 || !strings.Contains(stderr, `pod1a is a pod of lab "two-node": labctl status two-node pod1a`) {
		t.Errorf("status pod1a: exit %d: %s", code, stderr)
	}
	recordLab(t, state, "two-node-vxlan.yaml")
	_, stderr, code = runIn(t, state, "status", "pod1a")
	if code != 4 || !strings.Contains(stderr, "labctl status LAB pod1a") {
		t.Errorf("status pod1a in two labs: exit %d: %s", code, stderr)
	}
}
