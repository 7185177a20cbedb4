package main

import (
	"fmt"
	"github.com/labctl/labctl/internal/golden"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/labctl/labctl/emulator/grade"
	"github.com/labctl/labctl/emulator/scenario"
)

// The scenario exit codes of the README's table, from the error types.
func TestScenarioExitCodes(t *testing.T) {
	for _, tt := range []struct {
		name string
		err  error
		want int
	}{
		{"checks failed", checksFailedError{failed: 2, points: 3, max: 9}, 7},
		{"checks could not run", checksFailedError{errors: 1}, 7},
		{"invalid scenario", invalidScenarioError{&scenario.InvalidError{Problems: []scenario.Problem{{Msg: "x"}}}}, 3},
		{"unreadable scenario", invalidScenarioError{fmt.Errorf("read scenario: %w: %w", scenario.ErrUnreadable, os.ErrNotExist)}, 3},
		{"a setup step failed", fmt.Errorf("run %q: %w", "x", grade.ErrSetup), 1},
	} {
		if got := exitCode(tt.err); got != tt.want {
			t.Errorf("%s: exitCode = %d, want %d", tt.name, got, tt.want)
		}
	}
}

// run --dry-run changes nothing and prints, for a seed and a lab name,
// the lab's script, the faults as commands and the checks: a script bash
// reads.
func TestRunDryRun(t *testing.T) {
	out, stderr, code := runCLI(t, "run", "--dry-run", "--seed", "2", "--lab", "alice", "../../scenarios/break-fix-missing-route.yaml")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	golden.Check(t, filepath.Join("testdata", "run-dry-run.golden"), []byte(out))
	if !strings.Contains(out, "ip -n alice-node1 route del 192.168.2.0/24") && !strings.Contains(out, "ip -n alice-node2 route del 192.168.1.0/24") {
		t.Error("the fault is not in the script")
	}
	if bash, err := exec.LookPath("bash"); err == nil {
		if msg, err := exec.Command(bash, "-n", "-c", out).CombinedOutput(); err != nil {
			t.Errorf("bash -n: %v: %s", err, msg)
		}
	}
	// The same seed, the same faults; the other variant for another seed.
	again, _, _ := runCLI(t, "run", "--dry-run", "--seed", "2", "--lab", "alice", "../../scenarios/break-fix-missing-route.yaml")
	other, _, _ := runCLI(t, "run", "--dry-run", "--seed", "1", "--lab", "alice", "../../scenarios/break-fix-missing-route.yaml")
	if again != out || other == out {
		t.Error("seed 2 twice gave different scripts, or seed 1 the same as seed 2")
	}
}

// An invalid scenario is reported as one, every problem at once, exit 3.
func TestRunInvalidScenario(t *testing.T) {
	for _, cmd := range []string{"run", "grade"} {
		_, stderr, code := runCLI(t, cmd, "../../emulator/scenario/testdata/invalid/faults.yaml")
		if code != 3 || !strings.Contains(stderr, "labctl: the scenario is invalid (19 problems)") ||
			!strings.Contains(stderr, "faults.yaml:14:25: faults[4].sysctl.key:") {
			t.Errorf("%s: exit %d:\n%s", cmd, code, stderr)
		}
	}
	_, stderr, code := runCLI(t, "run", "no-such-scenario.yaml")
	if code != 3 || !strings.Contains(stderr, "unreadable scenario file") {
		t.Errorf("missing scenario: exit %d: %s", code, stderr)
	}
}

func TestRunUsage(t *testing.T) {
	for _, args := range [][]string{
		{"run"},
		{"run", "a.yaml", "b.yaml"},
		{"run", "-o", "yaml", "../../scenarios/two-node-basics.yaml"},
		{"grade"},
		{"grade", "-o", "xml", "../../scenarios/two-node-basics.yaml"},
		{"run", "--dry-run", "--lab", "../x", "../../scenarios/two-node-basics.yaml"},
	} {
		if _, stderr, code := runCLI(t, args...); code != 2 {
			t.Errorf("%v: exit %d, want 2: %s", args, code, stderr)
		}
	}
}

// validate takes scenarios as well as topologies, told apart by their
// keys, misspelt ones included.
func TestValidateScenario(t *testing.T) {
	out, stderr, code := runCLI(t, "validate", "../../scenarios/break-fix-ip-forward.yaml")
	if code != 0 || !strings.Contains(out, `scenario "Break-fix: IP forwarding is off" is valid: lab "two-node", 6 checks in 2 sections, 11 points, 1 fault (2 variants for a seed to pick)`) {
		t.Errorf("exit %d: %s%s", code, out, stderr)
	}
	_, stderr, code = runCLI(t, "validate", "../../emulator/scenario/testdata/invalid/top.yaml")
	if code != 3 || !strings.Contains(stderr, `did you mean "title"?`) || !strings.Contains(stderr, "the scenario is invalid (5 problems)") {
		t.Errorf("a scenario with misspelt keys: exit %d: %s", code, stderr)
	}
	out, _, code = runCLI(t, "validate", "../../topologies/two-node.yaml")
	if code != 0 || !strings.Contains(out, `lab "two-node" is valid`) {
		t.Errorf("a topology: exit %d: %s", code, out)
	}
}
