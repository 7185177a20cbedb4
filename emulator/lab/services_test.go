package lab

import (
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/labctl/labctl/emulator/spec"
)

func serviceTopology(t *testing.T) *spec.Topology {
	t.Helper()
	topo, err := spec.Load("../../topologies/three-node-service.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return topo
}

// The DNS server's model holds every service with its ports and every pod
// in its Kubernetes namespace, the cluster DNS pod in kube-system.
func TestDNSModel(t *testing.T) {
	m := DNSModel(serviceTopology(t))
	if m.Domain != "cluster.local" || len(m.Services) != 2 {
		t.Fatalf("model %+v", m)
	}
	dns := m.Services[0]
	if dns.Namespace != "kube-system" || dns.Name != "kube-dns" || dns.ClusterIP != netip.MustParseAddr("10.96.0.10") ||
		len(dns.Ports) != 2 || dns.Ports[0].Protocol != "UDP" || dns.Ports[0].Port != 53 {
		t.Errorf("kube-dns %+v", dns)
	}
	if s := m.Services[1]; s.Name != "kube-svc-1" || s.ClusterIP != netip.MustParseAddr("10.96.0.2") || s.Ports[0].Name != "http" {
		t.Errorf("kube-svc-1 %+v", s)
	}
	namespaces := map[string]string{}
	for _, p := range m.Pods {
		namespaces[p.Name] = p.Namespace
	}
	if namespaces["coredns"] != "kube-system" || namespaces["A0"] != "default" || len(m.Pods) != 5 {
		t.Errorf("pods %+v", m.Pods)
	}
}

// Without live reads a status lists the services and endpoints, and no
// hits (nil, not zero: they were not read).
func TestServicesStatusNotLive(t *testing.T) {
	r := &Record{Name: "three-node-service", Topology: serviceTopology(t)}
	ss, problems := Manager{}.servicesStatus(r, false, Health{})
	if len(problems) > 0 || len(ss) != 2 {
		t.Fatalf("services %+v, problems %v", ss, problems)
	}
	eps := ss[1].Ports[0].Endpoints
	if len(eps) != 2 || eps[0].Pod != "A0" || eps[1].Pod != "B" || eps[0].Hits != nil || eps[0].Port != 8080 {
		t.Errorf("kube-svc-1's endpoints %+v", eps)
	}
	if !ss[0].System || ss[0].Ports[1].TargetPort != "53" {
		t.Errorf("kube-dns %+v", ss[0])
	}
}

// The host check asks for br_netfilter where a lab with services has
// bridges, and only there.
func TestHostCheckBridgeNetfilter(t *testing.T) {
	root := t.TempDir()
	withServices := serviceTopology(t)
	check := func(topo *spec.Topology) string {
		var msgs []string
		host{root: root}.checkServices(topo, func(path, format string, args ...any) { msgs = append(msgs, path+": "+format) })
		return strings.Join(msgs, "\n")
	}
	if got := check(withServices); !strings.Contains(got, "br_netfilter") || !strings.HasPrefix(got, "services: ") {
		t.Errorf("without bridge netfilter: %q", got)
	}
	sysctl := filepath.Join(root, "proc/sys/net/bridge/bridge-nf-call-iptables")
	if err := os.MkdirAll(filepath.Dir(sysctl), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(sysctl, []byte("1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if got := check(withServices); got != "" {
		t.Errorf("with bridge netfilter: %q", got)
	}
	os.Remove(sysctl)
	plain, err := spec.Load("../../topologies/three-node.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if got := check(plain); got != "" {
		t.Errorf("a lab without services: %q", got)
	}
}
