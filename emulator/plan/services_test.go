package plan

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/labctl/labctl/emulator/spec"
)

// serviceOpsOf lists the operations a node unit gets for services, as
// one line each: their descriptions as messages.
func serviceOpsOf(t *testing.T, doc string) map[string][]string {
	t.Helper()
	topo, err := spec.Parse("lab.yaml", []byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	p, err := Compile(topo)
	if err != nil {
		t.Fatal(err)
	}
	nodes := map[string]bool{}
	for _, ns := range p.Namespaces {
		nodes[ns.Name] = ns.Role == RoleNode
	}
	out := map[string][]string{}
	for _, s := range p.Stages {
		for _, u := range s.Units {
			if !nodes[u.Namespace] {
				continue
			}
			for _, op := range u.Ops {
				switch o := op.(type) {
				case ProgramRuleset:
					out[u.Namespace] = append(out[u.Namespace], "rules "+o.Ruleset.Node)
				case SetSysctl:
					if strings.Contains(o.Describe().String(), "bridge-nf") {
						out[u.Namespace] = append(out[u.Namespace], o.Describe().String())
					}
				case AddRoute:
					if !o.Dst.IsValid() {
						out[u.Namespace] = append(out[u.Namespace], o.Describe().String())
					}
				}
			}
		}
	}
	return out
}

// A node gets kube-proxy's rules, bridge netfilter and a default route
// only in a lab with services; a Calico node needs no bridge netfilter and
// has its default route already.
func TestServiceOps(t *testing.T) {
	for _, tc := range []struct {
		name, doc string
		want      map[string][]string
	}{
		{"no services", "name: s\nnodes: [{name: n1, pods: [{name: p1}]}]\n", map[string][]string{}},
		{"bridge", "name: s\nnodes: [{name: n1, pods: [{name: p1, labels: {app: a}}]}]\nservices: [{name: a, selector: {app: a}, ports: [{port: 80}]}]\n",
			map[string][]string{"s-n1": {
				`ip netns exec "s-n1" sysctl -qw net.bridge.bridge-nf-call-iptables=1`,
				`ip -n "s-n1" route add default via 172.18.0.1 dev "eth0"`,
				"rules n1",
			}}},
		{"calico", "name: s\nnetwork: {cni: calico}\nnodes: [{name: n1, pods: [{name: p1}]}]\nservices: [{name: a, endpoints: [p1], ports: [{port: 80}]}]\n",
			map[string][]string{"s-n1": {`ip -n "s-n1" route add default via 172.18.0.1 dev "eth0"`, "rules n1"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := serviceOpsOf(t, tc.doc)
			if len(got) != len(tc.want) {
				t.Fatalf("got %q, want %q", got, tc.want)
			}
			for ns, want := range tc.want {
				if strings.Join(got[ns], "\n") != strings.Join(want, "\n") {
					t.Errorf("%s:\n got %q\nwant %q", ns, got[ns], want)
				}
			}
		})
	}
}

// The ruleset's description is an nft here-document in the script, and
// the bare command in messages; bash reads the script's form.
func TestProgramRulesetDescription(t *testing.T) {
	p := compileFile(t, "../../topologies/three-node-service.yaml")
	var op ProgramRuleset
	for _, o := range p.Ops() {
		if r, ok := o.(ProgramRuleset); ok {
			op = r
			break
		}
	}
	d := op.Describe()
	if got, want := d.String(), `ip netns exec "three-node-service-node-0" nft -f -`; got != want {
		t.Errorf("message %q, want %q", got, want)
	}
	script := d.Script()
	if !strings.Contains(script, "nft -f - <<'EOF'\n# kube-proxy (nftables mode)") || !strings.HasSuffix(script, "}\nEOF\n") {
		t.Errorf("the script is not a here-document of the ruleset:\n%s", script)
	}
	if !strings.Contains(script, "10.96.0.2 . tcp . 8080 : goto service-") {
		t.Errorf("the ruleset lacks the service:\n%s", script)
	}
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Skip("needs bash")
	}
	if out, err := exec.Command(bash, "-n", "-c", script).CombinedOutput(); err != nil {
		t.Errorf("bash -n: %v: %s", err, out)
	}
}
