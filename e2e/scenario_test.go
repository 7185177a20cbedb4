package e2e

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/labctl/labctl/emulator/report"
	"github.com/labctl/labctl/emulator/scenario"
)

// scenarioCLI runs the real labctl binary with a private state directory.
type scenarioCLI struct {
	bin, state string
}

func newScenarioCLI(t *testing.T) scenarioCLI {
	t.Helper()
	return scenarioCLI{bin: buildLabctl(t), state: filepath.Join(t.TempDir(), "state")}
}

// run returns stdout, stderr and the exit code.
func (c scenarioCLI) run(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	cmd := exec.Command(c.bin, append([]string{"--state-dir", c.state}, args...)...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	var exit *exec.ExitError
	switch {
	case err == nil:
		return out.String(), errOut.String(), 0
	case errors.As(err, &exit):
		return out.String(), errOut.String(), exit.ExitCode()
	}
	t.Fatalf("labctl %v: %v", args, err)
	return "", "", -1
}

// result runs labctl with -o json and decodes the result.
func (c scenarioCLI) result(t *testing.T, wantCode int, args ...string) *report.Result {
	t.Helper()
	out, errOut, code := c.run(t, append(args, "-o", "json")...)
	if code != wantCode {
		t.Fatalf("labctl %v: exit %d, want %d\n%s%s", args, code, wantCode, out, errOut)
	}
	var r report.Result
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("labctl %v: %v\n%s", args, err, out)
	}
	return &r
}

// downAtEnd takes the lab down when the test ends, and checks nothing of
// it is left.
func (c scenarioCLI) downAtEnd(t *testing.T, labName string) {
	t.Cleanup(func() {
		if out, errOut, code := c.run(t, "down", "--ignore-not-found", labName); code != 0 {
			t.Errorf("down %s: exit %d: %s%s", labName, code, out, errOut)
		}
		assertNoNamespaces(t, labName)
	})
}

func shippedScenario(name string) string { return filepath.Join("..", "scenarios", name+".yaml") }

// failing lists the checks that did not pass, sorted.
func failing(r *report.Result) []string {
	var ids []string
	for _, c := range r.Checks() {
		if c.Status != report.Pass {
			ids = append(ids, c.ID)
		}
	}
	slices.Sort(ids)
	return ids
}

// Every shipped scenario without faults passes end to end on a fresh lab
// (up, checks, down), scoring every point, and leaves nothing behind.
func TestShippedScenariosPass(t *testing.T) {
	requireRoot(t)
	files, err := filepath.Glob(filepath.Join("..", "scenarios", "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no shipped scenarios: %v", err)
	}
	c := newScenarioCLI(t)
	ran := 0
	for _, file := range files {
		s, err := scenario.Load(file)
		if err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		if len(s.Faults) > 0 {
			continue // break-fix exercises: TestBreakFixExercises
		}
		ran++
		t.Run(filepath.Base(file), func(t *testing.T) {
			t.Parallel()
			labName := uniqueName("sc")
			c.downAtEnd(t, labName)
			r := c.result(t, 0, "run", "--lab", labName, file)
			if !r.OK() || r.Points != r.MaxPoints || r.Points != s.MaxPoints() || len(r.Checks()) != len(s.Checks()) {
				t.Errorf("%d/%d points, failing %v", r.Points, r.MaxPoints, failing(r))
			}
			assertNoNamespaces(t, labName)
		})
	}
	if ran < 5 {
		t.Errorf("only %d shipped scenarios without faults", ran)
	}
}

// Each break-fix exercise, for each variant a seed can pick: the broken lab
// fails exactly the checks it should (grading it again, which changes
// nothing, fails the same ones), the instructor solution repairs it with
// ordinary commands, and grading the repaired lab passes every check. The
// JUnit and Classroom outputs say the same.
func TestBreakFixExercises(t *testing.T) {
	requireRoot(t)
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("the instructor solutions use ip (iproute2)")
	}
	tests := []struct {
		name    string
		variant int
		failing []string
	}{
		{"break-fix-missing-route", 0, []string{"http-across", "pod1a-to-pod2", "pod2-to-pod1b", "route-node1"}},
		{"break-fix-missing-route", 1, []string{"http-across", "pod1a-to-pod2", "pod2-to-pod1b", "route-node2"}},
		{"break-fix-ip-forward", 0, []string{"pingall-pods", "pod1a-to-pod2", "pod2-to-pod1b"}},
		{"break-fix-ip-forward", 1, []string{"pingall-pods", "pod1a-to-pod2", "pod2-to-pod1b"}},
		{"break-fix-vxlan-mtu", 0, []string{"full-size-back", "full-size-node-packet", "full-size-pod-packet"}},
	}
	c := newScenarioCLI(t)
	// Each case spends most of its time waiting out the retry windows of
	// the checks that fail, so all run at once, beyond -parallel's limit
	// of one per CPU: t.Run may be called from several goroutines.
	var wg sync.WaitGroup
	defer wg.Wait()
	for _, tt := range tests {
		wg.Go(func() {
			t.Run(fmt.Sprintf("%s/variant-%d", tt.name, tt.variant), func(t *testing.T) {
				file := shippedScenario(tt.name)
				s, err := scenario.Load(file)
				if err != nil {
					t.Fatal(err)
				}
				seed := int64(-1)
				for i := int64(0); i < 100 && seed < 0; i++ {
					if s.Choose(i)[0].Variant == tt.variant {
						seed = i
					}
				}
				if seed < 0 {
					t.Fatalf("no seed picks variant %d", tt.variant)
				}
				labName := uniqueName("bf")
				c.downAtEnd(t, labName)
				dir := t.TempDir()
				junit, classroom := filepath.Join(dir, "junit.xml"), filepath.Join(dir, "github-output")

				broken := c.result(t, 7, "run", "--keep", "--seed", fmt.Sprint(seed), "--lab", labName,
					"--junit", junit, "--classroom", classroom, file)
				if got := failing(broken); !slices.Equal(got, tt.failing) {
					t.Errorf("broken lab fails %v, want exactly %v", got, tt.failing)
				}
				if len(broken.Faults) != len(s.Faults) {
					t.Errorf("faults %v", broken.Faults)
				}
				checkJUnit(t, junit, len(tt.failing))
				checkClassroom(t, classroom, broken)

				again := c.result(t, 7, "grade", "--lab", labName, file)
				if got := failing(again); !slices.Equal(got, tt.failing) {
					t.Errorf("grading the broken lab again fails %v, want %v", got, tt.failing)
				}

				solution := filepath.Join("..", "scenarios", "solutions", tt.name+".sh")
				cmd := exec.Command("sh", solution, labName)
				cmd.Env = append(os.Environ(), "LABCTL="+c.bin+" --state-dir "+c.state)
				if out, err := cmd.CombinedOutput(); err != nil {
					t.Fatalf("%s: %v\n%s", solution, err, out)
				}
				fixed := c.result(t, 0, "grade", "--lab", labName, file)
				if !fixed.OK() || fixed.Points != fixed.MaxPoints || fixed.Mode != "grade" {
					t.Errorf("repaired lab: %d/%d points, failing %v", fixed.Points, fixed.MaxPoints, failing(fixed))
				}
			})
		})
	}
}

func checkJUnit(t *testing.T, path string, failures int) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Failures int `xml:"failures,attr"`
		Errors   int `xml:"errors,attr"`
		Tests    int `xml:"tests,attr"`
	}
	if err := xml.Unmarshal(data, &doc); err != nil {
		t.Fatalf("junit: %v", err)
	}
	if doc.Failures != failures || doc.Errors != 0 {
		t.Errorf("junit: %d failures, %d errors; want %d failures", doc.Failures, doc.Errors, failures)
	}
}

// checkClassroom reads the GitHub Actions outputs labctl appended: the
// base64 result the autograding reporter decodes, and the points.
func checkClassroom(t *testing.T, path string, r *report.Result) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var result []byte
	points := ""
	for line := range strings.Lines(string(data)) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "result="); ok {
			if result, err = base64.StdEncoding.DecodeString(v); err != nil {
				t.Fatal(err)
			}
		}
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "points="); ok {
			points = v
		}
	}
	var c report.ClassroomResult
	if err := json.Unmarshal(result, &c); err != nil {
		t.Fatalf("classroom result: %v", err)
	}
	score := 0
	for _, tc := range c.Tests {
		score += tc.Score
	}
	if c.Status != report.Fail || c.MaxScore != r.MaxPoints || score != r.Points || points != fmt.Sprintf("%d/%d", r.Points, r.MaxPoints) {
		t.Errorf("classroom: status %s, %d/%d, points %q; want %d/%d", c.Status, score, c.MaxScore, points, r.Points, r.MaxPoints)
	}
}

// The same scenario run 20 times on a fresh lab reads the same every time
// (timings and attempt counts aside).
func TestScenarioDeterminism(t *testing.T) {
	requireRoot(t)
	c := newScenarioCLI(t)
	labName := uniqueName("det")
	c.downAtEnd(t, labName)
	var first []byte
	for i := range 20 {
		r := c.result(t, 0, "run", "--lab", labName, shippedScenario("two-node-basics"))
		got, err := json.MarshalIndent(r.Stable(), "", "  ")
		if err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			first = got
			continue
		}
		if !bytes.Equal(got, first) {
			t.Fatalf("run %d differs from the first:\n%s\nfirst:\n%s", i+1, got, first)
		}
	}
}

// grade checks only a lab that is up with the scenario's topology: no lab
// is exit 4, a lab with another topology exit 5, and grading changes
// nothing (the lab stays up, graded twice the same).
func TestGradeWhatIsUp(t *testing.T) {
	requireRoot(t)
	c := newScenarioCLI(t)
	labName := uniqueName("gr")
	c.downAtEnd(t, labName)
	if _, errOut, code := c.run(t, "grade", "--lab", labName, shippedScenario("two-node-basics")); code != 4 {
		t.Errorf("grade without a lab: exit %d: %s", code, errOut)
	}
	path, _ := copyTopology(t, "two-node.yaml", "unused")
	if out, errOut, code := c.run(t, "up", "--name", labName, path); code != 0 {
		t.Fatalf("up --name: exit %d: %s%s", code, out, errOut)
	}
	if _, errOut, code := c.run(t, "grade", "--lab", labName, shippedScenario("tutorial-pod-network")); code != 5 {
		t.Errorf("grade against another topology: exit %d: %s", code, errOut)
	}
	a := c.result(t, 0, "grade", "--lab", labName, shippedScenario("two-node-basics"))
	b := c.result(t, 0, "grade", "--lab", labName, shippedScenario("two-node-basics"))
	if a.Mode != "grade" || !a.OK() || !b.OK() {
		t.Errorf("grade: %+v, %+v", a, b)
	}
	if _, errOut, code := c.run(t, "run", "--lab", labName, shippedScenario("two-node-basics")); code != 5 {
		t.Errorf("run on a lab that is up: exit %d: %s", code, errOut)
	}
}

// A class at once: one scenario, a lab per student, all up and graded at
// the same time, each passing (the bench does 30).
func TestClassAtOnce(t *testing.T) {
	requireRoot(t)
	c := newScenarioCLI(t)
	const students = 6
	var wg sync.WaitGroup
	results := make([]*report.Result, students)
	codes := make([]int, students)
	outs := make([]string, students)
	for i := range students {
		labName := uniqueName(fmt.Sprintf("cl%d", i))
		c.downAtEnd(t, labName)
		wg.Go(func() {
			out, errOut, code := c.run(t, "run", "--keep", "--lab", labName, "-o", "json", shippedScenario("two-node-basics"))
			codes[i], outs[i] = code, out+errOut
			var r report.Result
			if json.Unmarshal([]byte(out), &r) == nil {
				results[i] = &r
			}
		})
	}
	wg.Wait()
	for i := range students {
		if codes[i] != 0 || results[i] == nil || !results[i].OK() {
			t.Errorf("student %d: exit %d:\n%s", i, codes[i], outs[i])
		}
	}
}

// checkKinds exercises at run time what the shipped scenarios do not: a
// setup step, TCP and UDP against the builtin servers, isolation checks
// (expect: fail), a command's exit code and stderr, an RTT bound, and the
// stopContainer fault with restartPolicy Always, which the pod's
// supervisor repairs by itself within the check's retry window.
const checkKinds = `title: Every kind of check at run time
topology:
  name: kinds
  network: {underlay: 10.31.0.0/24, clusterCIDR: 10.32.0.0/16, backend: host-gw}
  nodes:
    - name: n1
      pods:
        - name: client
          containers: [{name: sh, builtin: client}]
    - name: n2
      pods:
        - name: server
          containers:
            - {name: web, builtin: web-server}
            - {name: echo, builtin: echo-server}
setup:
  - name: the client reaches the server before anything else
    command: {in: client, container: sh, run: [curl, -s, "http://10.32.1.2/"]}
faults:
  - stopContainer: {pod: server, container: web}
sections:
  - name: kinds
    checks:
      - id: web-back
        hint: the supervisor restarts a stopped container after its back-off
        retry: 10s
        http: {from: client, to: server, path: /back, bodyContains: "Request path: /back"}
      - id: tcp
        hint: x
        tcp: {from: client, to: server, port: 80}
      - id: udp
        hint: x
        udp: {from: n1, to: server, port: 7, payload: hello}
      - id: closed-port
        hint: x
        expect: fail
        timeout: 500ms
        tcp: {from: client, to: server, port: 81}
      - id: no-such-host
        hint: x
        expect: fail
        timeout: 300ms
        ping: {from: client, to: 10.32.9.9, count: 1}
      - id: rtt
        hint: x
        ping: {from: client, to: server, maxRTT: 1s}
      - id: command-fails
        hint: x
        command: {in: client, container: sh, run: [curl, -s, "http://10.32.1.2:81/"], exitCode: 7}
      - id: route
        hint: x
        route: {in: client, to: server, via: 10.32.0.1, dev: eth0, src: client}
`

func TestCheckKindsAtRunTime(t *testing.T) {
	requireRoot(t)
	c := newScenarioCLI(t)
	dir := t.TempDir()
	file := filepath.Join(dir, "kinds.yaml")
	if err := os.WriteFile(file, []byte(checkKinds), 0o644); err != nil {
		t.Fatal(err)
	}
	labName := uniqueName("kd")
	c.downAtEnd(t, labName)
	r := c.result(t, 0, "run", "--lab", labName, file)
	if !r.OK() {
		t.Errorf("failing %v", failing(r))
		for _, ch := range r.Checks() {
			t.Logf("%s: %s: %s", ch.ID, ch.Status, ch.Observed)
		}
	}

	// A setup step that never succeeds stops the run (exit 1), and the
	// lab goes all the same.
	broken := strings.Replace(checkKinds, `run: [curl, -s, "http://10.32.1.2/"]`, `run: [curl, -s, "http://10.32.1.2:81/"]`, 1)
	if err := os.WriteFile(file, []byte(broken), 0o644); err != nil {
		t.Fatal(err)
	}
	_, errOut, code := c.run(t, "run", "--lab", labName, file)
	if code != 1 || !strings.Contains(errOut, "setup step the client reaches the server before anything else (line 17): exit 7") {
		t.Errorf("failing setup: exit %d: %s", code, errOut)
	}
	assertNoNamespaces(t, labName)
}
