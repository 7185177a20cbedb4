package capture

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/gopacket/gopacket/layers"
	"golang.org/x/sys/unix"

	"github.com/labctl/labctl/emulator/netns"
	"github.com/labctl/labctl/internal/nstest"
)

// Test namespaces are named capturetest-<pid>-<random>-<role>, so TestMain
// can tell its own leftovers from anyone else's. Every address is in
// 10.124.0.0/16 and lives only on links between these namespaces: nothing
// touches the host's namespace and no packet can leave the lab.
var nsPrefix = nstest.Prefix("capture")

func TestMain(m *testing.M) { nstest.Main(m, nsPrefix) }

// lab names the namespaces of one test; roles map to namespace names.
type lab struct {
	t    *testing.T
	base string
}

func newLab(t *testing.T) *lab {
	t.Helper()
	nstest.NeedRoot(t)
	return &lab{t: t, base: nstest.Unique(nsPrefix)}
}

// ns creates the namespace for role, with lo up, and returns its name.
func (l *lab) ns(role string) string {
	l.t.Helper()
	return nstest.AddNamespace(l.t, l.base+"-"+role)
}

// veth links namespace a's interface ifA to b's ifB, addresses them (an
// empty address leaves that side unaddressed, for bridge ports) and brings
// both up.
func (l *lab) veth(a, ifA, addrA, b, ifB, addrB string) {
	l.t.Helper()
	nstest.IP(l.t, "-n", a, "link", "add", ifA, "type", "veth", "peer", "name", ifB, "netns", b)
	for _, side := range [][3]string{{a, ifA, addrA}, {b, ifB, addrB}} {
		if side[2] != "" {
			nstest.IP(l.t, "-n", side[0], "addr", "add", side[2], "dev", side[1])
		}
		nstest.IP(l.t, "-n", side[0], "link", "set", side[1], "up")
	}
}

func nsPath(name string) string { return netns.Path(name) }

// open starts a capture that the test closes on the way out.
func open(t *testing.T, ns, device string, opts Options) *Capture {
	t.Helper()
	c, err := Open(nsPath(ns), device, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := c.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return c
}

func timeout(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// inNS runs fn with a fresh socket created inside the namespace and closes
// the socket afterwards. Tests generate their traffic this way: no ping
// binary is needed and nothing is sent from the host's namespace.
func inNS(t *testing.T, ns string, domain, typ, proto int, fn func(fd int) error) {
	t.Helper()
	err := netns.Do(nsPath(ns), func() error {
		fd, err := unix.Socket(domain, typ|unix.SOCK_CLOEXEC, proto)
		if err != nil {
			return fmt.Errorf("socket: %w", err)
		}
		defer unix.Close(fd)
		return fn(fd)
	})
	if err != nil {
		t.Fatalf("in %s: %v", ns, err)
	}
}

// sendEcho sends one ICMP echo request with 56 bytes of data, as ping does.
func sendEcho(t *testing.T, ns string, dst string, id, seq uint16) {
	t.Helper()
	msg := serialize(t, echo(ICMPEchoRequest, id, seq), payload(56))
	inNS(t, ns, unix.AF_INET, unix.SOCK_RAW, unix.IPPROTO_ICMP, func(fd int) error {
		return unix.Sendto(fd, msg, 0, sockaddr4(dst, 0))
	})
}

func sendUDP(t *testing.T, ns string, dst string, port int, data []byte) {
	t.Helper()
	inNS(t, ns, unix.AF_INET, unix.SOCK_DGRAM, 0, func(fd int) error {
		return unix.Sendto(fd, data, 0, sockaddr4(dst, port))
	})
}

// sendIPIP hands an inner IPv4 packet to a raw IPPROTO_IPIP socket: the
// kernel adds an outer header with protocol 4, which is IPIP on the wire
// even where the kernel has no ipip module.
func sendIPIP(t *testing.T, ns string, dst string, inner []byte) {
	t.Helper()
	inNS(t, ns, unix.AF_INET, unix.SOCK_RAW, unix.IPPROTO_IPIP, func(fd int) error {
		return unix.Sendto(fd, inner, 0, sockaddr4(dst, 0))
	})
}

// sendFrame puts a whole Ethernet frame on an interface.
func sendFrame(t *testing.T, ns, ifname string, frame []byte) {
	t.Helper()
	inNS(t, ns, unix.AF_PACKET, unix.SOCK_RAW, 0, func(fd int) error {
		ifi, err := net.InterfaceByName(ifname)
		if err != nil {
			return err
		}
		return unix.Sendto(fd, frame, 0, &unix.SockaddrLinklayer{Ifindex: ifi.Index})
	})
}

func mac(t *testing.T, ns, ifname string) net.HardwareAddr {
	t.Helper()
	var hw net.HardwareAddr
	if err := netns.Do(nsPath(ns), func() error {
		ifi, err := net.InterfaceByName(ifname)
		if err != nil {
			return err
		}
		hw = ifi.HardwareAddr
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return hw
}

func sockaddr4(addr string, port int) *unix.SockaddrInet4 {
	return &unix.SockaddrInet4{Addr: netip.MustParseAddr(addr).As4(), Port: port}
}

// udpFrame is an Ethernet frame carrying a UDP datagram, for sendFrame.
func udpFrame(t *testing.T, src, dst net.HardwareAddr, from, to string, sport, dport uint16) []byte {
	return serialize(t, ethernet(src, dst, layers.EthernetTypeIPv4),
		ipv4(from, to, layers.IPProtocolUDP), udp(sport, dport), payload(8))
}
