package archtest

import (
	"fmt"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/labctl/labctl/"

// rules: each package, with its tests, must not depend on any of these
// (directly or through others). "*" forbids every package of the module.
var rules = []struct {
	pkg    string
	forbid []string
}{
	{"emulator/netns", []string{"*"}},
	{"emulator/probe", []string{"emulator/spec", "emulator/plan", "emulator/kernel", "emulator/lab"}},
	{"emulator/capture", []string{"emulator/spec", "emulator/plan", "emulator/kernel", "emulator/lab"}},
	{"emulator/workload", []string{"emulator/spec", "emulator/plan", "emulator/kernel", "emulator/lab"}},
	// Reports are rendered from values alone; a scenario is read without
	// touching a lab; the grader is a front end's library, not theirs.
	{"emulator/report", []string{"emulator/spec", "emulator/plan", "emulator/kernel", "emulator/netns", "emulator/lab", "emulator/probe", "emulator/capture", "emulator/workload", "emulator/scenario", "emulator/grade"}},
	{"emulator/scenario", []string{"emulator/kernel", "emulator/lab", "emulator/probe", "emulator/capture", "emulator/workload", "emulator/grade", "emulator/report"}},
	{"emulator/grade", []string{"cmd/labctl", "cmd/labbench", "tui"}},
	// The TUI is a front end beside the CLI: it reads labs through lab,
	// capture, trace and grade, never through the CLI's package.
	{"tui", []string{"cmd/labctl", "cmd/labbench"}},
}

func TestDependencies(t *testing.T) {
	for _, r := range rules {
		t.Run(r.pkg, func(t *testing.T) {
			graph := imports(t, module+r.pkg)
			for pkg := range graph {
				name, ok := strings.CutPrefix(pkg, module)
				if !ok || name == r.pkg || name == "internal/nstest" {
					continue
				}
				if slices.Contains(r.forbid, "*") || slices.Contains(r.forbid, name) {
					t.Errorf("%s depends on %s: %s", r.pkg, name, strings.Join(path(graph, module+r.pkg, pkg), " -> "))
				}
			}
		})
	}
}

// imports returns the import graph below pkg and its tests, as `go list`
// sees it, with test variants ("p [p.test]") folded into their package.
func imports(t *testing.T, pkg string) map[string][]string {
	t.Helper()
	// go test puts its own go first on PATH.
	out, err := exec.Command("go", "list", "-deps", "-test", "-f", "{{.ImportPath}}{{range .Imports}} {{.}}{{end}}", pkg).Output()
	if err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			err = fmt.Errorf("%w: %s", err, ee.Stderr)
		}
		t.Fatalf("go list: %v", err)
	}
	graph := map[string][]string{}
	for line := range strings.Lines(string(out)) {
		fields := strings.Fields(stripVariants(line))
		if len(fields) == 0 {
			continue
		}
		from := strings.TrimSuffix(strings.TrimSuffix(fields[0], ".test"), "_test")
		graph[from] = append(graph[from], fields[1:]...)
	}
	return graph
}

// stripVariants drops the " [p.test]" that names a test variant.
func stripVariants(s string) string {
	var b strings.Builder
	depth := 0
	for _, r := range s {
		switch {
		case r == '[':
			depth++
		case r == ']':
			depth--
		case depth == 0:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// path is the shortest chain of imports from one package to another.
func path(graph map[string][]string, from, to string) []string {
	prev := map[string]string{from: ""}
	queue := []string{from}
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		if p == to {
			var chain []string
			for ; p != ""; p = prev[p] {
				chain = append(chain, strings.TrimPrefix(p, module))
			}
			slices.Reverse(chain)
			return chain
		}
		for _, q := range graph[p] {
			if _, seen := prev[q]; !seen {
				prev[q] = p
				queue = append(queue, q)
			}
		}
	}
	return []string{strings.TrimPrefix(from, module), "...", strings.TrimPrefix(to, module)}
}
