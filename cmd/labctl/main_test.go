package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/labctl/labctl/emulator/lab"
	"github.com/labctl/labctl/emulator/spec"
	"github.com/labctl/labctl/emulator/workload"
)

// runCLI runs labctl in-process with its own state directory.
func runCLI(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var out, errOut bytes.Buffer
	state := filepath.Join(t.TempDir(), "state")
	env := func(string) string { return "" }
	code = run(context.Background(), append([]string{"--state-dir", state}, args...), Streams{In: strings.NewReader(""), Out: &out, ErrOut: &errOut}, env)
	return out.String(), errOut.String(), code
}

// One test per exit code of the README's table, each from the error types
// the code is decided by.
func TestExitCodes(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want int
	}{
		{"success", nil, 0},
		{"the kernel's EINVAL is a runtime failure, not a bad command line",
			fmt.Errorf("up %q: add route: %w", "x", syscall.EINVAL), 1},
		{"any other failure", errors.New("boom"), 1},
		{"usage", usageErrorf("bad"), 2},
		{"invalid lab name", fmt.Errorf("down: %w", lab.ErrInvalidName), 2},
		{"name in several labs", fmt.Errorf("x: %w", lab.ErrAmbiguous), 2},
		{"invalid topology", &spec.InvalidError{Problems: []spec.Problem{{Msg: "x"}}}, 3},
		{"unreadable topology", fmt.Errorf("read topology: %w: %w", spec.ErrUnreadable, os.ErrNotExist), 3},
		{"no such lab", fmt.Errorf("x: %w", lab.ErrNotFound), 4},
		{"no such container", fmt.Errorf("x: %w", workload.ErrNoContainer), 4},
		{"no previous run to show logs of", fmt.Errorf("x: %w", workload.ErrNoPreviousRun), 4},
		{"conflict", fmt.Errorf("x: %w", lab.ErrConflict), 5},
		{"interrupted up", fmt.Errorf("x: %w", lab.ErrIncomplete), 5},
		{"degraded", fmt.Errorf("x: %w", lab.ErrDegraded), 5},
		{"unusable record", fmt.Errorf("x: %w", lab.ErrBadRecord), 5},
		{"needs root", notRootError{"up"}, 6},
		{"exec: cannot run", exitStatus{code: 126}, 126},
		{"exec: command not found in a container", fmt.Errorf("x: %w", workload.ErrCommandNotFound), 127},
		{"exec: command not found on the host", &exec.Error{Name: "nope", Err: exec.ErrNotFound}, 127},
		{"interrupted", fmt.Errorf("up: %w", context.Canceled), 130},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := exitCode(tt.err); got != tt.want {
				t.Errorf("exitCode(%v) = %d, want %d", tt.err, got, tt.want)
			}
		})
	}
}

// Bad command lines exit 2 through the real command tree, whatever cobra
// would have printed.
func TestUsageErrors(t *testing.T) {
	for _, args := range [][]string{
		{"bogus"},
		{"--no-such-flag", "status"},
		{"up"},
		{"up", "a.yaml", "b.yaml"},
		{"status", "-o", "xml"},
		{"status", "a", "b", "c"},
		{"down"},
		{"down", "--all", "x"},
		{"exec"},
		{"exec", "pod1a", "ip", "route"}, // the command must follow --
		{"logs"},
		{"logs", "pod1a", "--tail", "-2"},
		{"logs", "pod1a", "--tail", "many"},
		{"status", "../labs/x"},
		{"validate"},
		{"up", "--workers", "many", "x.yaml"},
		{"conntrack"},
		{"conntrack", "node1", "-o", "wide"},
		{"conntrack", "node1", "-p", "sctp"},
		{"conntrack", "node1", "--dst", "node2"},
	} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			_, stderr, code := runCLI(t, args...)
			if code != 2 || !strings.HasPrefix(stderr, "labctl: ") {
				t.Errorf("exit %d, stderr %q; want 2 and one labctl: line", code, stderr)
			}
		})
	}
}

func TestValidate(t *testing.T) {
	out, _, code := runCLI(t, "validate", "../../topologies/two-node.yaml")
	if code != 0 || out != "../../topologies/two-node.yaml: lab \"two-node\" is valid: 2 nodes, 3 pods, backend host-gw\n" {
		t.Errorf("valid file: exit %d: %q", code, out)
	}
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	os.WriteFile(bad, []byte("name: x\nnodes:\n  - name: n1\n    ip: 300.1.1.1\n"), 0o644)
	_, stderr, code := runCLI(t, "validate", bad)
	if code != 3 || !strings.Contains(stderr, bad+":4:5: nodes[0].ip:") || !strings.HasSuffix(stderr, "labctl: the topology is invalid (1 problem)\n") {
		t.Errorf("invalid file: exit %d:\n%s", code, stderr)
	}
	_, stderr, code = runCLI(t, "validate", filepath.Join(t.TempDir(), "missing.yaml"))
	if code != 3 || !strings.Contains(stderr, "no such file") {
		t.Errorf("missing file: exit %d: %s", code, stderr)
	}
}

func TestDryRun(t *testing.T) {
	out, _, code := runCLI(t, "up", "--dry-run", "../../topologies/two-node.yaml")
	if code != 0 || !strings.HasPrefix(out, "#!/usr/bin/env bash\n") || !strings.Contains(out, "ip netns add two-node-pod1a") {
		t.Errorf("up --dry-run: exit %d:\n%.300s", code, out)
	}
}

func TestStatusWithoutLabs(t *testing.T) {
	out, _, code := runCLI(t, "status")
	if code != 0 || out != "no labs are up (labctl up FILE brings one up)\n" {
		t.Errorf("status: exit %d: %q", code, out)
	}
	out, _, code = runCLI(t, "status", "-o", "json")
	if code != 0 || !strings.Contains(out, `"kind": "LabList"`) || !strings.Contains(out, `"items": []`) {
		t.Errorf("status -o json: exit %d: %s", code, out)
	}
	_, stderr, code := runCLI(t, "status", "nosuchlab")
	if code != 4 {
		t.Errorf("status of a missing lab: exit %d: %s", code, stderr)
	}
	_, stderr, code = runCLI(t, "exec", "pod1a", "--", "true")
	if code != 4 || !strings.Contains(stderr, "no labs are up") {
		t.Errorf("exec without labs: exit %d: %s", code, stderr)
	}
}

func TestLabNameOf(t *testing.T) {
	dir := t.TempDir()
	named := filepath.Join(dir, "file.yaml")
	os.WriteFile(named, []byte("name: inside\nnodes: [{name: n}]\n"), 0o644)
	hostile := filepath.Join(dir, "hostile.yaml")
	os.WriteFile(hostile, []byte("name: ../../etc\n"), 0o644)
	tests := []struct {
		arg, want string
		usage     bool
	}{
		{"two-node", "two-node", false},
		{named, "inside", false},
		{filepath.Join(dir, "gone.yaml"), "gone", false}, // a lab can be taken down after its file is gone
		{hostile, "", true},
		{"../labs/x", "", true},
		{"a b", "", true},
		{"", "", true},
	}
	for _, tt := range tests {
		got, err := labNameOf(tt.arg)
		var usage usageError
		if got != tt.want || errors.As(err, &usage) != tt.usage {
			t.Errorf("labNameOf(%q) = %q, %v; want %q (usage error %v)", tt.arg, got, err, tt.want, tt.usage)
		}
	}
}
