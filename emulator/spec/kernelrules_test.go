package spec

import (
	"fmt"
	"strings"
	"testing"
)

// containerYAML is a one-pod lab whose container has the given extra keys.
func containerYAML(extra string) []byte {
	return []byte("name: lab\nnodes:\n  - name: n1\n    pods:\n      - name: p1\n        containers:\n          - name: c\n            command: [sleep, \"1000\"]\n" + extra)
}

// The limits on what a container is given are too large for golden files:
// one string past MAX_ARG_STRLEN, and many strings that together overflow
// the one environment string labctl hands to the container's init.
func TestContainerStringLimits(t *testing.T) {
	var many strings.Builder
	many.WriteString("            env:\n")
	for i := range 14 {
		fmt.Fprintf(&many, "              - {name: V%d, value: %s}\n", i, strings.Repeat("x", 10000))
	}
	tests := []struct {
		name, extra, want string
	}{
		{"argument at the limit", "            args: [" + strings.Repeat("a", containerBudget-100) + "]\n", ""},
		{"argument past the limit", "            args: [" + strings.Repeat("a", MaxArgLen+1) + "]\n",
			`lab.yaml:9:20: nodes[0].pods[0].containers[0].args[0]: "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa..." is 131072 bytes; the kernel passes at most 131071 bytes per argument or environment string`},
		{"env value past the limit", "            env: [{name: X, value: " + strings.Repeat("v", MaxArgLen+1) + "}]\n",
			`lab.yaml:9:29: nodes[0].pods[0].containers[0].env[0].value: the value of X is 131072 bytes; the kernel passes at most 131071 bytes per argument or environment string`},
		{"everything together past the budget", many.String(),
			`lab.yaml:7:13: nodes[0].pods[0].containers[0]: the container's command, args, env, workingDir and rootfs take 140109 bytes; labctl hands them to the container in one environment string, and the kernel takes at most 131071 bytes per string (126975 are left for them)`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("lab.yaml", containerYAML(tt.extra))
			if tt.want == "" {
				if err != nil {
					t.Fatalf("Parse: %.300v", err)
				}
				return
			}
			if err == nil || err.Error() != tt.want {
				t.Errorf("Parse = %.400v\nwant    %s", err, tt.want)
			}
		})
	}
}

// MaxCPUMilli must be what the workload package turns into the largest
// quota the kernel accepts: 2^44-1 µs per 100 ms period.
func TestMaxCPUMilli(t *testing.T) {
	quota := int64(MaxCPUMilli) * cfsPeriodUS / 1000
	if quota > 1<<44-1 || quota+cfsPeriodUS/1000 <= 1<<44-1 {
		t.Errorf("MaxCPUMilli %d gives a quota of %d µs; the kernel's largest is %d", int64(MaxCPUMilli), quota, int64(1<<44-1))
	}
}

// A lab named after its file gets the same rules as one named in it.
func TestLabNamedTasksByItsFile(t *testing.T) {
	_, err := Parse("dir/tasks.yaml", []byte("nodes: [{name: n1}]\n"))
	if err == nil || !strings.Contains(err.Error(), `the file name "tasks" cannot serve: every cgroup v1 directory has a file of that name`) {
		t.Errorf("Parse = %v", err)
	}
}

// CalicoVethName gives a pod the veth name Calico gives it in the default
// namespace; the expected names are those of libcalico-go's own tests
// (pod "podA" of namespace "default").
func TestCalicoVethName(t *testing.T) {
	for pod, want := range map[string]string{"podA": "cali7f94ce7c295"} {
		if got := CalicoVethName(pod); got != want {
			t.Errorf("CalicoVethName(%q) = %q, want %q", pod, got, want)
		}
	}
	long := CalicoVethName("a-pod-name-of-sixty-three-characters-which-is-the-most-allowed")
	if len(long) != MaxIfNameLen {
		t.Errorf("CalicoVethName gives %q, %d bytes; want %d", long, len(long), MaxIfNameLen)
	}
}
