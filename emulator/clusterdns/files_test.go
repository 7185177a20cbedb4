package clusterdns

import (
	"net/netip"
	"path/filepath"
	"testing"

	"github.com/labctl/labctl/internal/golden"
)

func TestResolvConf(t *testing.T) {
	dnsIP := netip.MustParseAddr("10.96.0.10")
	for _, c := range []struct{ file, namespace, domain string }{
		{"resolv-default.conf", "", ""},
		{"resolv-kube-system.conf", "kube-system", ""},
		{"resolv-lab-domain.conf", "shop", "lab.example"},
	} {
		golden.Check(t, filepath.Join("testdata", c.file), []byte(ResolvConf(c.namespace, dnsIP, c.domain)))
	}
}

func TestHosts(t *testing.T) {
	ip := []netip.Addr{netip.MustParseAddr("10.244.1.2")}
	for _, c := range []struct {
		file string
		h    HostsFile
	}{
		{"hosts-pod", HostsFile{PodIPs: ip, Hostname: "pod1a"}},
		{"hosts-subdomain", HostsFile{PodIPs: ip, Hostname: "web-0", Subdomain: "web", Namespace: "shop"}},
		{"hosts-aliases", HostsFile{PodIPs: ip, Hostname: "curl-client", Aliases: []HostAlias{
			{IP: netip.MustParseAddr("10.130.0.10"), Hostnames: []string{"vm1", "vm1.outside"}},
			{IP: netip.MustParseAddr("127.0.0.1"), Hostnames: []string{"foo.local"}},
		}}},
	} {
		golden.Check(t, filepath.Join("testdata", c.file), []byte(Hosts(c.h)))
	}
}

func TestKubeDNSAddress(t *testing.T) {
	for cidr, want := range map[string]string{
		"10.96.0.0/12": "10.96.0.10", "10.32.0.0/24": "10.32.0.10", "172.20.5.0/28": "172.20.5.10",
		"10.96.0.7/12": "10.96.0.10", // host bits do not move it
	} {
		got, err := KubeDNSAddress(netip.MustParsePrefix(cidr))
		if err != nil || got.String() != want {
			t.Errorf("KubeDNSAddress(%s) = %s, %v; want %s", cidr, got, err, want)
		}
	}
	for _, bad := range []string{"10.0.0.0/29", "fd00::/108"} {
		if _, err := KubeDNSAddress(netip.MustParsePrefix(bad)); err == nil {
			t.Errorf("KubeDNSAddress(%s) worked", bad)
		}
	}
}
