package graph

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/labctl/labctl/emulator/lab"
	"github.com/labctl/labctl/emulator/spec"
	"github.com/labctl/labctl/internal/golden"
)

// shipped lists the topologies under topologies/, by name.
func shipped(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("..", "..", "topologies", "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no shipped topologies: %v", err)
	}
	var names []string
	for _, f := range files {
		names = append(names, strings.TrimSuffix(filepath.Base(f), ".yaml"))
	}
	return names
}

func load(t *testing.T, name string) *spec.Topology {
	t.Helper()
	topo, err := spec.Load(filepath.Join("..", "..", "topologies", name+".yaml"))
	if err != nil {
		t.Fatal(err)
	}
	return topo
}

// forms are the three renderings, by the extension of their golden files.
var forms = []struct {
	ext    string
	render func(*Graph) string
}{
	{"txt", (*Graph).Text},
	{"mmd", (*Graph).Mermaid},
	{"dot", (*Graph).Dot},
}

// The pictures are the product: every shipped topology in every form is
// pinned by a golden file (go test -update rewrites them).
func TestGolden(t *testing.T) {
	for _, name := range shipped(t) {
		g := FromTopology(load(t, name))
		for _, f := range forms {
			t.Run(name+"."+f.ext, func(t *testing.T) {
				golden.Check(t, filepath.Join("testdata", name+"."+f.ext+".golden"), []byte(f.render(g)))
			})
		}
	}
}

// The TUI's topology pane shows the text form in an 80-column terminal.
func TestTextFits80Columns(t *testing.T) {
	for _, name := range shipped(t) {
		for i, line := range strings.Split(FromTopology(load(t, name)).Text(), "\n") {
			if n := utf8.RuneCountInString(line); n > 80 {
				t.Errorf("%s line %d is %d columns: %q", name, i+1, n, line)
			}
		}
	}
}

func TestPairs(t *testing.T) {
	topo := load(t, "three-node-mixed")
	g := FromTopology(topo)
	want := map[[2]string]spec.Backend{
		{"node1", "node2"}: spec.BackendHostGW,
		{"node1", "node3"}: spec.BackendIPIP,
		{"node2", "node3"}: spec.BackendVXLAN,
	}
	if len(g.Pairs) != len(want) {
		t.Fatalf("pairs %+v, want %d", g.Pairs, len(want))
	}
	for _, p := range g.Pairs {
		if want[[2]string{p.A, p.B}] != p.Backend || !p.Link {
			t.Errorf("pair %s-%s: %s (link %v), want %s from a link", p.A, p.B, p.Backend, p.Link, want[[2]string{p.A, p.B}])
		}
	}
	// Each node has exactly the devices its pairs need, as plan builds.
	devices := map[string][]string{"node1": {"tunl0"}, "node2": {"flannel.1"}, "node3": {"flannel.1", "tunl0"}}
	for _, n := range g.Nodes {
		var got []string
		for _, tn := range n.Tunnels {
			got = append(got, tn.Device)
		}
		if strings.Join(got, ",") != strings.Join(devices[n.Name], ",") {
			t.Errorf("%s has tunnels %v, want %v", n.Name, got, devices[n.Name])
		}
	}
}

// A large lab lists only the pairs links name and counts the others.
func TestManyNodes(t *testing.T) {
	var b strings.Builder
	b.WriteString("name: big\nnetwork: {backend: host-gw}\nnodes:\n")
	for i := range MaxListedNodes + 2 {
		b.WriteString("  - name: n" + string(rune('a'+i)) + "\n")
	}
	b.WriteString("links:\n  - nodes: [na, nb]\n    backend: vxlan\n")
	topo, err := spec.Parse("big.yaml", []byte(b.String()))
	if err != nil {
		t.Fatal(err)
	}
	g := FromTopology(topo)
	n := MaxListedNodes + 2
	if len(g.Pairs) != 1 || g.Pairs[0].Backend != spec.BackendVXLAN {
		t.Errorf("pairs %+v, want the one link", g.Pairs)
	}
	if g.Others == nil || g.Others.Count != n*(n-1)/2-1 || g.Others.Backend != spec.BackendHostGW {
		t.Errorf("others %+v, want %d host-gw", g.Others, n*(n-1)/2-1)
	}
	if !strings.Contains(g.Text(), "44 other pairs  host-gw") {
		t.Errorf("text does not count the other pairs:\n%s", g.Text())
	}
}

// A running lab's graph says what is missing and what serves tunl0.
func TestFromStatus(t *testing.T) {
	topo := load(t, "two-node-ipip")
	st := &lab.Status{
		Name:     topo.Name,
		Topology: topo,
		Namespaces: []lab.NamespaceStatus{
			{Namespace: "two-node-ipip-underlay", State: "ours"},
			{Namespace: "two-node-ipip-node1", State: "ours"},
			{Namespace: "two-node-ipip-node2", State: "ours"},
			{Namespace: "two-node-ipip-pod1a", State: "ours"},
			{Namespace: "two-node-ipip-pod1b", State: "missing"},
			{Namespace: "two-node-ipip-pod2", State: "ours"},
		},
		Datapaths: []lab.DatapathStatus{
			{Node: "node1", Kind: "userspace", Running: true},
			{Node: "node2", Kind: "userspace", Running: false},
		},
	}
	g, err := FromStatus(st)
	if err != nil {
		t.Fatal(err)
	}
	golden.Check(t, filepath.Join("testdata", "live-two-node-ipip.txt.golden"), []byte(g.Text()))
	if _, err := FromStatus(&lab.Status{Name: "x", Error: "record unreadable"}); err == nil {
		t.Error("a status without topology was drawn")
	}
}

// Graphviz must accept every dot file: a test that only compares text
// would pin a syntax error forever.
func TestDotRenders(t *testing.T) {
	dot, err := exec.LookPath("dot")
	if err != nil {
		t.Skip("needs dot from graphviz (apt-get install graphviz; .ci/run installs it)")
	}
	for _, name := range shipped(t) {
		t.Run(name, func(t *testing.T) {
			cmd := exec.Command(dot, "-Tsvg")
			cmd.Stdin = strings.NewReader(FromTopology(load(t, name)).Dot())
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			out, err := cmd.Output()
			if err != nil || stderr.Len() > 0 {
				t.Fatalf("dot -Tsvg: %v: %s", err, stderr.String())
			}
			if !bytes.Contains(out, []byte("<svg")) {
				t.Fatalf("dot wrote no SVG: %.200s", out)
			}
		})
	}
}

// Mermaid's own parser must accept every diagram. It is JavaScript: the
// test installs mermaid (and jsdom, which it needs outside a browser) from
// the npm registry into a cache directory once, and skips when node, npm
// or the registry is not there (.ci/skips lists why).
func TestMermaidParses(t *testing.T) {
	dir := mermaidChecker(t)
	names := shipped(t)
	var diagrams []string
	for _, name := range names {
		diagrams = append(diagrams, FromTopology(load(t, name)).Mermaid())
	}
	// The checker must be able to fail.
	diagrams = append(diagrams, "flowchart TB\n  a -- -- b (\n")
	results := parseMermaid(t, dir, diagrams)
	for i, name := range names {
		if r := results[i]; r.Error != "" || r.Type != "flowchart-v2" {
			t.Errorf("%s: mermaid reads it as %q: %s\n%s", name, r.Type, r.Error, diagrams[i])
		}
	}
	if results[len(names)].Error == "" {
		t.Error("the checker accepted a broken diagram")
	}
}

const (
	mermaidVersion = "11.12.2"
	jsdomVersion   = "26.1.0"
)

// checkScript parses a diagram from standard input with mermaid.parse,
// which needs a DOM: jsdom gives it one.
const checkScript = `import { JSDOM } from 'jsdom';
const dom = new JSDOM('<!doctype html><html><body></body></html>');
globalThis.window = dom.window;
globalThis.document = dom.window.document;
const { default: mermaid } = await import('mermaid');
import fs from 'fs';
const out = [];
for (const text of JSON.parse(fs.readFileSync(0, 'utf8'))) {
  try {
    const r = await mermaid.parse(text);
    out.push({type: r.diagramType});
  } catch (e) {
    out.push({error: String(e.message)});
  }
}
console.log(JSON.stringify(out));
`

func mermaidChecker(t *testing.T) string {
	t.Helper()
	for _, tool := range []string{"node", "npm"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skip("needs node and npm to run mermaid's parser")
		}
	}
	cache, err := os.UserCacheDir()
	if err != nil {
		cache = os.TempDir()
	}
	dir := filepath.Join(cache, "labctl-test", "mermaid-"+mermaidVersion)
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "mermaid", "package.json")); err != nil {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, "npm", "install", "--silent", "--no-audit", "--no-fund", "--prefix", dir,
			"mermaid@"+mermaidVersion, "jsdom@"+jsdomVersion)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Skip("cannot install mermaid from the npm registry: " + lastLine(string(out), err))
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "check.mjs"), []byte(checkScript), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

type parsed struct {
	Type  string `json:"type"`
	Error string `json:"error"`
}

// parseMermaid runs mermaid.parse on each diagram, in one node process:
// loading mermaid takes most of a second.
func parseMermaid(t *testing.T, dir string, diagrams []string) []parsed {
	t.Helper()
	in, err := json.Marshal(diagrams)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("node", filepath.Join(dir, "check.mjs"))
	cmd.Stdin = bytes.NewReader(in)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("node check.mjs: %v: %s", err, stderr.String())
	}
	var results []parsed
	if err := json.Unmarshal(out, &results); err != nil || len(results) != len(diagrams) {
		t.Fatalf("node check.mjs wrote %q (%v), want %d results", out, err, len(diagrams))
	}
	return results
}

func lastLine(out string, err error) string {
	out = strings.TrimSpace(out)
	if i := strings.LastIndexByte(out, '\n'); i >= 0 {
		out = out[i+1:]
	}
	var ee *exec.ExitError
	if out == "" || !errors.As(err, &ee) {
		return err.Error()
	}
	return out
}
