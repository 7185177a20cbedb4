package clusterdns

import (
	"context"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/labctl/labctl/emulator/netns"
	"github.com/labctl/labctl/emulator/probe"
	"github.com/labctl/labctl/internal/nstest"
)

var nsPrefix = nstest.Prefix("clusterdns")

func TestMain(m *testing.M) { nstest.Main(m, nsPrefix) }

// dnsIP is where the test's server listens: kube-dns's address, put on the
// loopback device of a namespace the test creates.
var dnsIP = netip.MustParseAddr("10.96.0.10")

// startServer serves labModel on UDP and TCP port 53 in a new namespace and
// returns the namespace's name and the server; both end with the test.
func startServer(t *testing.T) (string, *Server) {
	t.Helper()
	nstest.NeedRoot(t)
	ns := nstest.AddNamespace(t, nstest.Unique(nsPrefix)+"-dns")
	nstest.IP(t, "-n", ns, "addr", "add", dnsIP.String()+"/32", "dev", "lo")
	s, err := NewServer(labModel)
	if err != nil {
		t.Fatal(err)
	}
	pc, err := probe.ListenUDP(netns.Path(ns), ":53")
	if err != nil {
		t.Fatal(err)
	}
	ln, err := probe.ListenTCP(netns.Path(ns), ":53")
	if err != nil {
		pc.Close()
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, pc, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return ns, s
}

// exchange asks the server over net ("udp" or "tcp") from inside ns with
// miekg/dns's client, on a socket made in the namespace.
func exchange(t *testing.T, ns, network, name string, qtype uint16) *dns.Msg {
	t.Helper()
	addr := netip.AddrPortFrom(dnsIP, 53).String()
	var co *dns.Conn
	switch network {
	case "udp":
		c, err := probe.DialUDP(netns.Path(ns), addr)
		if err != nil {
			t.Fatal(err)
		}
		co = &dns.Conn{Conn: c}
	default:
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		c, err := probe.DialTCP(ctx, netns.Path(ns), addr)
		if err != nil {
			t.Fatal(err)
		}
		co = &dns.Conn{Conn: c}
	}
	defer co.Close()
	q := new(dns.Msg)
	q.SetQuestion(name, qtype)
	client := &dns.Client{Net: network, Timeout: 2 * time.Second}
	m, _, err := client.ExchangeWithConn(q, co)
	if err != nil {
		t.Fatalf("%s %s over %s: %v", name, dns.TypeToString[qtype], network, err)
	}
	return m
}

// TestServeUDPAndTCP asks the served model over both transports, reloads
// it live, and stops the server cleanly.
func TestServeUDPAndTCP(t *testing.T) {
	ns, s := startServer(t)
	for _, network := range []string{"udp", "tcp"} {
		m := exchange(t, ns, network, "kube-svc-1.default.svc.cluster.local.", dns.TypeA)
		if rrs(m.Answer) != "kube-svc-1.default.svc.cluster.local. A 10.96.0.2" || !m.Authoritative {
			t.Errorf("%s: %s", network, m)
		}
		m = exchange(t, ns, network, "_http._tcp.kube-svc-1.default.svc.cluster.local.", dns.TypeSRV)
		if len(m.Answer) != 1 || len(m.Extra) != 1 {
			t.Errorf("%s SRV: %s", network, m)
		}
		if m := exchange(t, ns, network, "example.com.", dns.TypeA); m.Rcode != dns.RcodeRefused {
			t.Errorf("%s example.com: %s", network, dns.RcodeToString[m.Rcode])
		}
	}
	reloaded := labModel
	reloaded.Services = append([]Service{{Name: "new-svc", ClusterIP: netip.MustParseAddr("10.96.0.44"), Ports: []Port{{Port: 80}}}}, labModel.Services[1:]...)
	if err := s.Reload(reloaded); err != nil {
		t.Fatal(err)
	}
	if m := exchange(t, ns, "udp", "new-svc.default.svc.cluster.local.", dns.TypeA); len(m.Answer) != 1 {
		t.Errorf("after reload: %s", m)
	}
	if m := exchange(t, ns, "udp", "kube-svc-1.default.svc.cluster.local.", dns.TypeA); m.Rcode != dns.RcodeNameError {
		t.Errorf("a removed service still answers: %s", m)
	}
}

// TestServeStopsOnFailure: a listener that fails ends Serve with its error.
func TestServeStopsOnFailure(t *testing.T) {
	s, err := NewServer(labModel)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Serve(context.Background(), nil, nil); err == nil {
		t.Error("Serve with nothing to serve on worked")
	}
	nstest.NeedRoot(t)
	ns := nstest.AddNamespace(t, nstest.Unique(nsPrefix)+"-fail")
	ln, err := probe.ListenTCP(netns.Path(ns), "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln.Close() // closed before serving: accept fails at once
	done := make(chan error, 1)
	go func() { done <- s.Serve(context.Background(), nil, ln) }()
	select {
	case err := <-done:
		if err == nil {
			t.Error("Serve on a closed listener returned no error")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve on a closed listener did not return")
	}
}

// tool runs a command inside ns and returns its output.
func tool(t *testing.T, ns string, args ...string) string {
	t.Helper()
	out, err := exec.Command("ip", append([]string{"netns", "exec", ns}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v: %s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// needTools skips without dig and nslookup (apt: dnsutils), or fails with
// LABCTL_REQUIRE_ROOT=1.
func needTools(t *testing.T) {
	t.Helper()
	for _, name := range []string{"dig", "nslookup", "unshare"} {
		if _, err := exec.LookPath(name); err != nil {
			if os.Getenv("LABCTL_REQUIRE_ROOT") == "1" {
				t.Fatalf("needs %s (apt: dnsutils) (LABCTL_REQUIRE_ROOT=1)", name)
			}
			t.Skipf("needs %s (apt: dnsutils)", name)
		}
	}
}

// TestDigAndNslookup asks with the real tools and gets what the server's
// own tests expect.
func TestDigAndNslookup(t *testing.T) {
	needTools(t)
	ns, _ := startServer(t)
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"kube-svc-1.default.svc.cluster.local", "A"}, "10.96.0.2"},
		{[]string{"_dns._udp.kube-dns.kube-system.svc.cluster.local", "SRV"}, "0 100 53 kube-dns.kube-system.svc.cluster.local."},
		{[]string{"10-244-1-2.default.pod.cluster.local", "A"}, "10.244.1.2"},
		{[]string{"-x", "10.96.0.2"}, "kube-svc-1.default.svc.cluster.local."},
		{[]string{"dns-version.cluster.local", "TXT"}, `"1.1.0"`},
		{[]string{"+tcp", "web.shop.svc.cluster.local", "A"}, "10.96.0.3"},
	} {
		out := tool(t, ns, append([]string{"dig", "@" + dnsIP.String(), "+short", "+tries=1", "+time=2"}, c.args...)...)
		if strings.TrimSpace(out) != c.want {
			t.Errorf("dig %s: %q, want %q", strings.Join(c.args, " "), out, c.want)
		}
	}
	for name, status := range map[string]string{
		"nothing.default.svc.cluster.local":    "status: NXDOMAIN",
		"example.com":                          "status: REFUSED",
		"kube-svc-1.default.svc.cluster.local": "flags: qr aa rd",
	} {
		out := tool(t, ns, "dig", "@"+dnsIP.String(), "+tries=1", "+time=2", name)
		if !strings.Contains(out, status) {
			t.Errorf("dig %s lacks %q:\n%s", name, status, out)
		}
	}
	out := tool(t, ns, "nslookup", "kube-dns.kube-system.svc.cluster.local", dnsIP.String())
	if !strings.Contains(out, "Address: 10.96.0.10") || !strings.Contains(out, "Name:\tkube-dns.kube-system.svc.cluster.local") {
		t.Errorf("nslookup:\n%s", out)
	}
}

// TestShortNamesThroughResolvConf resolves short names the way a pod does:
// with the resolv.conf ResolvConf writes, the resolver's search list and
// ndots:5 turn "kube-svc-1" into kube-svc-1.default.svc.cluster.local and
// "web.shop" into web.shop.svc.cluster.local. The file is bind-mounted over
// /etc/resolv.conf in a private mount namespace, so the host's stays as it is.
func TestShortNamesThroughResolvConf(t *testing.T) {
	needTools(t)
	ns, _ := startServer(t)
	conf := filepath.Join(t.TempDir(), "resolv.conf")
	if err := os.WriteFile(conf, []byte(ResolvConf("default", dnsIP, "")), 0o644); err != nil {
		t.Fatal(err)
	}
	inPod := func(cmd string) string {
		t.Helper()
		script := "mount --bind " + conf + " /etc/resolv.conf && exec ip netns exec " + ns + " " + cmd
		out, err := exec.Command("unshare", "--mount", "--propagation", "private", "sh", "-c", script).CombinedOutput()
		if err != nil {
			t.Fatalf("%s: %v: %s", cmd, err, out)
		}
		return string(out)
	}
	for name, want := range map[string]string{"kube-svc-1": "10.96.0.2", "web.shop": "10.96.0.3", "kube-dns.kube-system": "10.96.0.10"} {
		if out := inPod("nslookup " + name); !strings.Contains(out, "Address: "+want) {
			t.Errorf("nslookup %s:\n%s", name, out)
		}
		if out := inPod("dig +search +short +tries=1 +time=2 " + name); strings.TrimSpace(out) != want {
			t.Errorf("dig +search %s: %q, want %s", name, out, want)
		}
	}
	if out, err := exec.Command("unshare", "--mount", "--propagation", "private", "sh", "-c",
		"mount --bind "+conf+" /etc/resolv.conf && exec ip netns exec "+ns+" getent hosts kube-svc-1").CombinedOutput(); err != nil || !strings.HasPrefix(string(out), "10.96.0.2") {
		t.Errorf("getent hosts kube-svc-1 (the C library's resolver): %v: %s", err, out)
	}
}
