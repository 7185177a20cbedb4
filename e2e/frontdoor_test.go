package e2e

import (
	"encoding/json"
	"fmt"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
	"golang.org/x/sys/unix"

	"github.com/labctl/labctl/emulator/kernel"
	"github.com/labctl/labctl/emulator/plan"
)

// statusLabs brings up two labs under one private state directory: the
// textbook's (pods with containers, host-gw) and a VXLAN one.
func statusLabs(t *testing.T) (c cli, withPods, vxlan string) {
	t.Helper()
	c = newCLI(t)
	_, withPods = c.up("two-node.yaml", "tsp")
	_, vxlan = c.up("two-node-vxlan.yaml", "tsv")
	return c, withPods, vxlan
}

// stdout runs labctl and returns its standard output alone, failing the
// test on a non-zero exit.
func (c cli) stdout(args ...string) string {
	c.t.Helper()
	cmd := exec.Command(c.bin, append([]string{"--state-dir", c.state}, args...)...)
	var errOut strings.Builder
	cmd.Stderr = &errOut
	out, err := cmd.Output()
	if err != nil {
		c.t.Fatalf("labctl %s: %v: %s%s", strings.Join(args, " "), err, out, errOut.String())
	}
	return string(out)
}

// yamlAsJSON parses YAML and returns it as compact JSON, to compare with
// the JSON form.
func yamlAsJSON(t *testing.T, text string) string {
	t.Helper()
	var v any
	if err := yaml.Unmarshal([]byte(text), &v); err != nil {
		t.Fatalf("not YAML: %v\n%s", err, text)
	}
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func compactJSON(t *testing.T, text string) string {
	t.Helper()
	var v any
	if err := json.Unmarshal([]byte(text), &v); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, text)
	}
	b, _ := json.Marshal(v)
	return string(b)
}

// checkYAMLIsJSON runs a status form as json and yaml: one document.
func checkYAMLIsJSON(t *testing.T, c cli, args ...string) string {
	t.Helper()
	j := c.stdout(append(args, "-o", "json")...)
	y := c.stdout(append(args, "-o", "yaml")...)
	// Live values (ages, neighbour states) may move between the two
	// reads; the kind and names may not.
	for _, field := range []string{"apiVersion", "kind", "name", "lab"} {
		re := regexp.MustCompile(`"` + field + `":"[^"]*"`)
		if a, b := re.FindString(compactJSON(t, j)), re.FindString(yamlAsJSON(t, y)); a != b {
			t.Errorf("status %s: json has %s, yaml %s", strings.Join(args, " "), a, b)
		}
	}
	return j
}

// status without a name: one line per lab in every form.
func TestStatusListForms(t *testing.T) {
	requireRoot(t)
	t.Parallel()
	c, pods, vx := statusLabs(t)
	out := c.stdout("status")
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(`(?m)^NAME +PHASE +BACKEND +NODES +PODS +AGE$`),
		regexp.MustCompile(`(?m)^` + pods + ` +up +host-gw +2 +3 +\d+s$`),
		regexp.MustCompile(`(?m)^` + vx + ` +up +vxlan +2 +3 +\d+s$`),
	} {
		if !want.MatchString(out) {
			t.Errorf("status: no line matching %s:\n%s", want, out)
		}
	}
	out = c.stdout("status", "-o", "wide")
	if !regexp.MustCompile(`(?m)^` + pods + ` +up +host-gw +2 +3 +\d+s +6/6 +6 +/\S+\.yaml$`).MatchString(out) {
		t.Errorf("status -o wide: no line with 6/6 containers ready, 6 namespaces and the file:\n%s", out)
	}
	var list struct {
		Kind  string
		Items []struct{ Name, Phase string }
	}
	if err := json.Unmarshal([]byte(checkYAMLIsJSON(t, c, "status")), &list); err != nil || list.Kind != "LabList" || len(list.Items) != 2 {
		t.Errorf("status -o json: %+v, %v", list, err)
	}
	names := strings.Fields(c.stdout("status", "-o", "name"))
	if want := []string{"lab/" + pods, "lab/" + vx}; !slices.Equal(names, want) {
		t.Errorf("status -o name = %q, want %q", names, want)
	}
}

// status NAME: the lab's namespaces and pods in every form.
func TestStatusLabForms(t *testing.T) {
	requireRoot(t)
	t.Parallel()
	c, name, _ := statusLabs(t)
	out := c.stdout("status", name)
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(`(?m)^pod +pod1a +node1 +192\.168\.1\.10 +` + plan.NamespaceName(name, "pod1a") + ` +eth0 192\.168\.1\.10/24$`),
		regexp.MustCompile(`(?m)^POD +READY +STATUS +RESTARTS +CONTAINERS$`),
		regexp.MustCompile(`(?m)^pod2 +2/2 +Running +0 +curl-client Running; web-server Running$`),
	} {
		if !want.MatchString(out) {
			t.Errorf("status %s: no line matching %s:\n%s", name, want, out)
		}
	}
	ifs, _, err := kernel.Inspect(plan.NamespaceName(name, "pod1a"))
	if err != nil {
		t.Fatal(err)
	}
	mac := ifs[slices.IndexFunc(ifs, func(i kernel.Interface) bool { return i.Name == "eth0" })].MAC
	out = c.stdout("status", name, "-o", "wide")
	if !strings.Contains(out, "eth0 192.168.1.10/24 "+mac+" mtu 1500") || !regexp.MustCompile(`web-server Running pid \d+`).MatchString(out) ||
		!regexp.MustCompile(`(?m)^node +node1 +- +10\.30\.45\.100 +192\.168\.1\.0/24 +\S+ +ours `).MatchString(out) {
		t.Errorf("status %s -o wide: no MAC %s, pod CIDR, state or container PIDs:\n%s", name, mac, out)
	}
	var doc struct {
		Kind    string
		Network struct{ Backends []string }
		Links   []any
	}
	if err := json.Unmarshal([]byte(checkYAMLIsJSON(t, c, "status", name)), &doc); err != nil || doc.Kind != "Lab" || !slices.Equal(doc.Network.Backends, []string{"host-gw"}) {
		t.Errorf("status %s -o json: %+v, %v", name, doc, err)
	}
	names := strings.Fields(c.stdout("status", name, "-o", "name"))
	want := []string{"underlay/underlay", "node/node1", "pod/pod1a", "pod/pod1b", "node/node2", "pod/pod2"}
	if !slices.Equal(names, want) {
		t.Errorf("status %s -o name = %q, want %q", name, names, want)
	}
}

// ipRoute is a route as `ip -j route show table all` prints it.
type ipRoute struct {
	Type, Dst, Gateway, Dev, Protocol, Scope, Table, Prefsrc string
	Flags                                                    []string
}

// status NAME OBJECT: what the namespace holds, in every form, and the
// same as iproute2's own tools read.
func TestStatusObjectForms(t *testing.T) {
	requireRoot(t)
	for _, tool := range []string{"ip", "bridge"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("needs iproute2's %s to cross-check", tool) // .ci/run installs it
		}
	}
	t.Parallel()
	c, pods, vx := statusLabs(t)
	ns := plan.NamespaceName(vx, "node1")
	out := c.stdout("status", vx, "node1")
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(`(?m)^Node node1 of lab ` + vx + `: namespace ` + ns + `, IP 10\.30\.45\.100, pod CIDR 192\.168\.1\.0/24, bridge br0$`),
		regexp.MustCompile(`(?m)^  flannel\.1 +vxlan +up +1450 +0e:fa:0a:1e:2d:64 +- +192\.168\.1\.0/32$`),
		regexp.MustCompile(`(?m)^  192\.168\.2\.0/24 +unicast +192\.168\.2\.0 +flannel\.1 +boot +global +onlink$`),
		regexp.MustCompile(`(?m)^  192\.168\.2\.0 +0e:fa:0a:1e:2d:c8 +flannel\.1 +permanent$`),
		regexp.MustCompile(`(?m)^  0e:fa:0a:1e:2d:c8 +flannel\.1 +- +10\.30\.45\.200 +- +permanent +self$`),
	} {
		if !want.MatchString(out) {
			t.Errorf("status %s node1: no line matching %s:\n%s", vx, want, out)
		}
	}
	out = c.stdout("status", vx, "node1", "-o", "wide")
	if !regexp.MustCompile(`(?m)^  192\.168\.2\.0/24 +unicast +192\.168\.2\.0 +flannel\.1 +boot +global +onlink +main +- +0$`).MatchString(out) {
		t.Errorf("status -o wide: no route table, source and metric:\n%s", out)
	}

	var doc struct {
		Kind       string
		Routes     []kernel.Route
		Neighbours []kernel.Neighbour
		FDB        []kernel.FDBEntry
	}
	if err := json.Unmarshal([]byte(checkYAMLIsJSON(t, c, "status", vx, "node1")), &doc); err != nil || doc.Kind != "Node" {
		t.Fatalf("status -o json: %+v, %v", doc, err)
	}
	// Every route iproute2 lists (but the local table's) is there, alike.
	var ipRoutes []ipRoute
	if err := json.Unmarshal(iproute2(t, "ip", "-n", ns, "-j", "route", "show", "table", "all"), &ipRoutes); err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, r := range ipRoutes {
		if r.Table == "local" {
			continue
		}
		n++
		want := kernel.Route{Dst: r.Dst, Via: r.Gateway, Device: r.Dev, Type: or(r.Type, "unicast"), Protocol: or(r.Protocol, "boot"),
			Scope: or(r.Scope, "global"), Table: or(r.Table, "main"), Src: r.Prefsrc, Flags: r.Flags}
		if !slices.ContainsFunc(doc.Routes, func(got kernel.Route) bool { return fmt.Sprint(got) == fmt.Sprint(want) || routeLike(got, want) }) {
			t.Errorf("ip route has %+v; status -o json:\n%+v", want, doc.Routes)
		}
	}
	if n != len(doc.Routes) {
		t.Errorf("ip route lists %d routes, status %d", n, len(doc.Routes))
	}
	// Permanent neighbours and FDB entries (learned ones age meanwhile).
	var ipNeigh []struct {
		Dst, Dev, Lladdr string
		State            []string
	}
	if err := json.Unmarshal(iproute2(t, "ip", "-n", ns, "-j", "neigh", "show"), &ipNeigh); err != nil {
		t.Fatal(err)
	}
	for _, e := range ipNeigh {
		if !slices.Contains(e.State, "PERMANENT") {
			continue
		}
		if !slices.ContainsFunc(doc.Neighbours, func(n kernel.Neighbour) bool {
			return n.IP == e.Dst && n.Device == e.Dev && n.MAC == e.Lladdr && n.State == "permanent"
		}) {
			t.Errorf("ip neigh has %+v; status:\n%+v", e, doc.Neighbours)
		}
	}
	var fdb []struct {
		Mac, Ifname, Master, Dst, State string
		Vni                             int
		Flags                           []string
	}
	if err := json.Unmarshal(iproute2(t, "bridge", "-n", ns, "-j", "fdb", "show"), &fdb); err != nil {
		t.Fatal(err)
	}
	for _, e := range fdb {
		if e.State != "permanent" {
			continue
		}
		if !slices.ContainsFunc(doc.FDB, func(f kernel.FDBEntry) bool {
			return f.MAC == e.Mac && f.Device == e.Ifname && f.Master == e.Master && f.Dst == e.Dst && f.VNI == e.Vni &&
				f.State == "permanent" && slices.Equal(f.Flags, e.Flags)
		}) {
			t.Errorf("bridge fdb has %+v; status:\n%+v", e, doc.FDB)
		}
	}

	if got := strings.TrimSpace(c.stdout("status", vx, "node1", "-o", "name")); got != "node/node1" {
		t.Errorf("status node1 -o name = %q", got)
	}
	if got := strings.TrimSpace(c.stdout("status", pods, "underlay", "-o", "name")); got != "underlay/underlay" {
		t.Errorf("status underlay -o name = %q", got)
	}
	out = c.stdout("status", pods, "pod2")
	if !regexp.MustCompile(`(?m)^  web-server +Running +0$`).MatchString(out) || !regexp.MustCompile(`(?m)^  default +unicast +192\.168\.2\.1 +eth0 +boot +global +-$`).MatchString(out) {
		t.Errorf("status %s pod2: no containers or default route:\n%s", pods, out)
	}
	// kubectl's habit: a pod named where the lab goes is pointed to.
	if out, code := c.run("status", "pod2"); code != 4 || !strings.Contains(out, "labctl status LAB pod2") {
		t.Errorf("status pod2: exit %d: %s", code, out)
	}
}

func or(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// routeLike compares the fields iproute2 prints.
func routeLike(a, b kernel.Route) bool {
	return a.Dst == b.Dst && a.Via == b.Via && a.Device == b.Device && a.Type == b.Type && a.Protocol == b.Protocol &&
		a.Scope == b.Scope && a.Table == b.Table && a.Src == b.Src && slices.Equal(a.Flags, b.Flags)
}

func iproute2(t *testing.T, args ...string) []byte {
	t.Helper()
	out, err := exec.Command(args[0], args[1:]...).Output()
	if err != nil {
		t.Fatalf("%s: %v", strings.Join(args, " "), err)
	}
	return out
}

// logs --previous, --tail and --timestamps through the CLI, as kubectl's.
func TestLogsFlags(t *testing.T) {
	requireRoot(t)
	t.Parallel()
	c := newCLI(t)
	name := uniqueName("tlf")
	path := writeTopology(t, fmt.Sprintf(`name: %s
nodes:
  - name: n0
    pods:
      - name: jobs
        containers:
          - name: count
            restartPolicy: OnFailure
            command: [sh, -c, 'n=$(cat /proc/self/stat | cut -d" " -f1); echo "first of $n"; echo "last of $n"; sleep 0.2; exit 3']
          - name: idle
            builtin: client
`, name))
	t.Cleanup(func() {
		c.run("down", name)
		assertNoNamespaces(t, name)
	})
	c.must("up", path)
	deadline := time.Now().Add(20 * time.Second)
	for {
		out := c.stdout("status", name, "-o", "json")
		if regexp.MustCompile(`"restarts": [2-9]`).MatchString(out) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("count never restarted twice:\n%s", out)
		}
		time.Sleep(100 * time.Millisecond)
	}
	// The container keeps restarting: a restart between the two reads
	// below changes which run is the previous one, so they are read
	// again until both saw the same run.
	var prev, tail string
	var lines []string
	for try := 0; try < 10; try++ {
		prev = c.stdout("logs", "jobs", "-c", "count", "--previous")
		lines = strings.Split(strings.TrimSuffix(prev, "\n"), "\n")
		tail = c.stdout("logs", "jobs", "-c", "count", "--previous", "--tail", "1", "--timestamps")
		if len(lines) == 2 && strings.HasSuffix(strings.TrimSuffix(tail, "\n"), " "+lines[1]) {
			break
		}
	}
	if len(lines) != 2 || !strings.HasPrefix(lines[0], "first of ") || lines[1] != "last of "+strings.TrimPrefix(lines[0], "first of ") {
		t.Errorf("logs --previous: %q, want one run's two lines", prev)
	}
	stamp, text, _ := strings.Cut(strings.TrimSuffix(tail, "\n"), " ")
	at, err := time.Parse(time.RFC3339Nano, stamp)
	if err != nil || len(lines) != 2 || text != lines[1] || time.Since(at) > time.Minute || time.Since(at) < 0 {
		t.Errorf("logs --previous --tail 1 --timestamps: %q (%v)", tail, err)
	}
	if out, code := c.run("logs", "jobs", "-c", "idle", "--previous"); code != 4 || !strings.Contains(out, `previous terminated container "idle" not found`) {
		t.Errorf("logs --previous of a container in its first run: exit %d: %s", code, out)
	}
	// -f follows one run and ends with it.
	start := time.Now()
	out := c.stdout("logs", "jobs", "-c", "count", "-f")
	if time.Since(start) > 10*time.Second || strings.Count(out, "first of") > 1 {
		t.Errorf("logs -f: %q after %v; want at most one run and an end", out, time.Since(start))
	}
}

// version and --version from the binary's build info; the host part names
// this kernel.
func TestVersionCLI(t *testing.T) {
	bin := buildLabctl(t)
	out, code := run(t, bin, "--version")
	if code != 0 || !regexp.MustCompile(`^labctl version \S+(, commit [0-9a-f]{40}( \(modified\))?)?, go1\.\d+`).MatchString(out) {
		t.Errorf("--version: exit %d: %q", code, out)
	}
	var doc struct {
		Kind  string
		Build struct{ GoVersion, Platform string }
		Host  struct{ Kernel, IPIP string }
	}
	out, code = run(t, bin, "version", "-o", "json")
	if err := json.Unmarshal([]byte(out), &doc); err != nil || code != 0 {
		t.Fatalf("version -o json: exit %d, %v: %s", code, err, out)
	}
	var u unix.Utsname
	_ = unix.Uname(&u)
	if doc.Kind != "Version" || doc.Host.Kernel != unix.ByteSliceToString(u.Release[:]) || doc.Build.Platform != "linux/amd64" && doc.Build.Platform != "linux/arm64" {
		t.Errorf("version -o json: %+v", doc)
	}
}

// The binary's completion: names from a real lab, and a bash script bash
// accepts.
func TestCompletionCLI(t *testing.T) {
	requireRoot(t)
	t.Parallel()
	c := newCLI(t)
	_, name := c.up("two-node.yaml", "tcp")
	out := c.stdout("__complete", "exec", "--lab", name, "pod1a", "-c", "")
	if !strings.Contains(out, "curl-client\t") || !strings.Contains(out, "web-server\t") || !strings.HasSuffix(out, ":4\n") {
		t.Errorf("complete exec pod1a -c: %q", out)
	}
	out = c.stdout("__complete", "status", name, "")
	if !strings.Contains(out, "node2\t") || !strings.Contains(out, "underlay\t") {
		t.Errorf("complete status %s: %q", name, out)
	}
	if _, err := exec.LookPath("bash"); err == nil {
		script := c.stdout("completion", "bash")
		cmd := exec.Command("bash", "-n")
		cmd.Stdin = strings.NewReader(script)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("bash -n rejects the completion script: %v: %s", err, out)
		}
	}
}
