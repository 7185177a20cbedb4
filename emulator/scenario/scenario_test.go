package scenario

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/labctl/labctl/emulator/plan"
	"github.com/labctl/labctl/internal/golden"
)

// Every testdata/invalid/*.yaml holds a family of mistakes; the whole
// report, every problem at once and each at its file:line:col, is golden.
func TestInvalidScenarios(t *testing.T) {
	files, err := filepath.Glob("testdata/invalid/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no test inputs: %v", err)
	}
	for _, file := range files {
		name := strings.TrimSuffix(filepath.Base(file), ".yaml")
		t.Run(name, func(t *testing.T) {
			s, err := Load(file)
			var inv *InvalidError
			if !errors.As(err, &inv) {
				t.Fatalf("Load = %v, %v; want an *InvalidError", s, err)
			}
			if s != nil {
				t.Error("Load returned a scenario along with its problems")
			}
			for _, p := range inv.Problems {
				if p.File == "" || p.Line == 0 && name != "topology-missing" {
					t.Errorf("problem without a place: %s", p.Error())
				}
				if p.Msg == "" || p.Msg[0] >= 'A' && p.Msg[0] <= 'Z' {
					t.Errorf("problem message %q: messages are lowercase", p.Msg)
				}
			}
			golden.Check(t, strings.TrimSuffix(file, ".yaml")+".golden", []byte(err.Error()+"\n"))
		})
	}
}

// A scenario using every key reads back as written: the golden file is
// the validated model, its checks, and its faults planned for a lab.
func TestEveryField(t *testing.T) {
	s, err := Load("testdata/valid/every-field.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "title %q\ndescription %q\ntopology %s (lab %s)\nmax points %d\n", s.Title, s.Description, s.TopologyFile, s.Topology.Name, s.MaxPoints())
	for _, st := range s.Setup {
		data, _ := json.Marshal(st)
		fmt.Fprintf(&b, "setup %s\n", data)
	}
	for _, f := range s.Faults {
		for i, v := range f.Variants {
			fmt.Fprintf(&b, "fault %s[%d] line %d: %s\n", f.ID, i, f.Line, v)
			for _, op := range v.Ops("alice") {
				fmt.Fprintf(&b, "  %s\n", op.Describe())
			}
		}
	}
	for _, c := range s.Checks() {
		data, err := json.MarshalIndent(c, "", "  ")
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&b, "check %s\n", data)
	}
	golden.Check(t, "testdata/valid/every-field.golden", []byte(b.String()))
}

// Every shipped scenario validates, says what it teaches in a comment
// header, and names an instructor solution when it injects faults.
func TestShippedScenarios(t *testing.T) {
	files, err := filepath.Glob("../../scenarios/*.yaml")
	if err != nil || len(files) < 8 {
		t.Fatalf("shipped scenarios: %v, %v", files, err)
	}
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			s, err := Load(file)
			if err != nil {
				t.Fatal(err)
			}
			data, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(string(data), "# ") || !strings.Contains(string(data), "teaches") {
				t.Error("no comment header saying what it teaches")
			}
			for _, c := range s.Checks() {
				if c.Hint == "" {
					t.Errorf("check %s has no hint", c.ID)
				}
			}
			if len(s.Faults) > 0 {
				sol := filepath.Join(filepath.Dir(file), "solutions", strings.TrimSuffix(filepath.Base(file), ".yaml")+".sh")
				if _, err := os.Stat(sol); err != nil {
					t.Errorf("faults but no instructor solution: %v", err)
				}
				if !strings.Contains(string(data), "solutions/"+filepath.Base(sol)) {
					t.Errorf("the header does not name its solution %s", filepath.Base(sol))
				}
			}
		})
	}
}

// The same seed picks the same variants; over many seeds every variant
// of a fault comes up, and a fault's pick does not depend on the others.
func TestChoose(t *testing.T) {
	s, err := Load("testdata/valid/every-field.yaml")
	if err != nil {
		t.Fatal(err)
	}
	seen := map[int]bool{}
	for seed := int64(0); seed < 50; seed++ {
		a, b := s.Choose(seed), s.Choose(seed)
		for i := range a {
			if a[i].Variant != b[i].Variant {
				t.Fatalf("seed %d: fault %d picks %d, then %d", seed, i, a[i].Variant, b[i].Variant)
			}
		}
		seen[a[0].Variant] = true
		alone := &Scenario{Faults: s.Faults[:1]}
		if got := alone.Choose(seed)[0].Variant; got != a[0].Variant {
			t.Errorf("seed %d: fault %s picks %d alone, %d among others", seed, s.Faults[0].ID, got, a[0].Variant)
		}
	}
	if len(seen) != len(s.Faults[0].Variants) {
		t.Errorf("50 seeds picked variants %v of %d", seen, len(s.Faults[0].Variants))
	}
	// Pinned: changing the pick would hand students other labs for the
	// seeds they were given.
	var picks []int
	for seed := range int64(6) {
		picks = append(picks, pick(seed, "missing-route", 2))
	}
	if got := fmt.Sprint(picks); got != "[0 1 0 1 0 1]" {
		t.Errorf("picks for seeds 0..5 = %s; changing them changes every student's lab", got)
	}
}

// FaultOps plans the chosen variants for the lab named at run time, each
// in that lab's namespaces.
func TestFaultOps(t *testing.T) {
	s, err := Load("testdata/valid/every-field.yaml")
	if err != nil {
		t.Fatal(err)
	}
	ops := FaultOps("bob", s.Choose(1))
	if len(ops) != len(s.Faults) {
		t.Fatalf("%d ops for %d faults", len(ops), len(s.Faults))
	}
	for _, op := range ops {
		if !strings.HasPrefix(op.Where(), "bob-") {
			t.Errorf("%s planned from %q, not one of lab bob's namespaces", op.Describe(), op.Where())
		}
	}
	if sc, ok := ops[len(ops)-1].(plan.StopContainer); !ok || sc.Lab != "bob" || sc.Pod != "pod1a" || sc.Container != "web-server" {
		t.Errorf("last op = %#v", ops[len(ops)-1])
	}
}

// A scenario file is bounded like a topology file; a missing one is
// unreadable, not invalid.
func TestLoadFiles(t *testing.T) {
	dir := t.TempDir()
	big := filepath.Join(dir, "big.yaml")
	if err := os.WriteFile(big, []byte(strings.Repeat("#", MaxFileSize+1)), 0o644); err != nil {
		t.Fatal(err)
	}
	var inv *InvalidError
	if _, err := Load(big); !errors.As(err, &inv) || !strings.Contains(err.Error(), "a scenario may be at most 1 MiB") {
		t.Errorf("Load(big) = %v", err)
	}
	if _, err := Load(filepath.Join(dir, "missing.yaml")); !errors.Is(err, ErrUnreadable) {
		t.Errorf("Load(missing) = %v, want ErrUnreadable", err)
	}
}
