package ipipd

import (
	"context"
	"encoding/binary"
	"errors"
	"net/netip"
	"os/exec"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/labctl/labctl/emulator/netns"
	"github.com/labctl/labctl/emulator/probe"
	"github.com/labctl/labctl/internal/nstest"
)

func ping(t *testing.T, ns string, dst netip.Addr, o probe.PingOptions) probe.PingResult {
	t.Helper()
	if o.Timeout == 0 {
		o.Timeout = 500 * time.Millisecond
	}
	res, err := probe.Ping(context.Background(), ns, dst, o)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func mustPing(t *testing.T, ns string, dst netip.Addr) {
	t.Helper()
	if err := ping(t, ns, dst, probe.PingOptions{Count: 3}).Err(); err != nil {
		t.Fatal(err)
	}
}

func TestPingAndTCPBothWays(t *testing.T) {
	l := newLab(t, labOptions{})
	l.startBoth(Config{})
	mustPing(t, l.pod1, pod2IP)
	mustPing(t, l.pod2, pod1IP)
	// The node itself reaches remote pods from its tunl0 address, as with
	// Calico.
	mustPing(t, l.node1, pod2IP)
	// A 1452-byte ICMP payload makes a 1480-byte packet: exactly tunl0's MTU.
	if err := ping(t, l.pod1, pod2IP, probe.PingOptions{Size: 1452, DontFragment: true}).Err(); err != nil {
		t.Errorf("full-sized packet: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, c := range []struct{ from, to string }{{l.pod1, l.pod2}, {l.pod2, l.pod1}} {
		dst := pod2IP
		if c.to == l.pod1 {
			dst = pod1IP
		}
		if _, err := probe.CheckTCP(ctx, c.from, c.to, netip.AddrPortFrom(dst, 8080)); err != nil {
			t.Errorf("tcp to %s: %v", dst, err)
		}
	}
	// A few MiB through TCP exercise segmentation and coalescing with real
	// checksums; any corruption would stall or fail the stream.
	_, n := stream(t, l.pod2, l.pod1, pod1IP, 300*time.Millisecond)
	if n == 0 {
		t.Error("no bytes streamed pod2 -> pod1")
	}
	s1, s2 := l.dp1.Stats(), l.dp2.Stats()
	for _, s := range []Stats{s1, s2} {
		if s.EncapPackets == 0 || s.DecapPackets == 0 {
			t.Errorf("%+v: expected traffic both ways", s)
		}
		if s.Drops != (Drops{}) {
			t.Errorf("drops: %+v", s.Drops)
		}
	}
}

// capture opens an AF_PACKET socket on dev in ns that sees all frames.
func capture(t *testing.T, ns, dev string) int {
	t.Helper()
	fd := -1
	err := netns.Do(ns, func() error {
		idx, err := ifIndex(dev)
		if err != nil {
			return err
		}
		// ETH_P_ALL: outgoing frames reach only catch-all taps
		// (dev_queue_xmit_nit).
		proto := int(htons(unix.ETH_P_ALL))
		fd, err = unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, proto)
		if err != nil {
			return err
		}
		return unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: uint16(proto), Ifindex: idx})
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	tv := unix.NsecToTimeval(int64(100 * time.Millisecond))
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		t.Fatal(err)
	}
	return fd
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// captured returns the IPv4 packets (Ethernet header stripped) read from fd
// until the deadline.
func captured(fd int, until time.Time) [][]byte {
	var out [][]byte
	buf := make([]byte, 1<<16)
	for time.Now().Before(until) {
		n, _, err := unix.Recvfrom(fd, buf, 0)
		if err != nil || n < 14+20 || buf[12] != 0x08 || buf[13] != 0x00 {
			continue
		}
		out = append(out, slices.Clone(buf[14:n]))
	}
	return out
}

func ip4(b []byte) netip.Addr { return netip.AddrFrom4([4]byte(b[:4])) }

// TestWire checks, on the underlay veth, that the tunnel puts real IPIP on
// the wire with the outer header the kernel's tunl0 would build: protocol 4
// between the node IPs, TTL inherited from the inner packet, DF copied, ECN
// carried.
func TestWire(t *testing.T) {
	l := newLab(t, labOptions{})
	l.startBoth(Config{})
	fd := capture(t, l.node2, "eth0")
	for _, df := range []bool{true, false} {
		// pod1 sends with TTL 50; node1 forwards it into tunl0 with 49.
		if err := ping(t, l.pod1, pod2IP, probe.PingOptions{TTL: 50, DontFragment: df}).Err(); err != nil {
			t.Fatal(err)
		}
		var sawReq, sawReply bool
		for _, p := range captured(fd, time.Now().Add(300*time.Millisecond)) {
			if p[9] != unix.IPPROTO_IPIP {
				continue
			}
			in := p[20:]
			src, dst, isrc, idst := ip4(p[12:]), ip4(p[16:]), ip4(in[12:]), ip4(in[16:])
			switch {
			case src == node1IP && dst == node2IP && isrc == pod1IP && idst == pod2IP:
				sawReq = true
				if p[8] != 49 || in[8] != 49 {
					t.Errorf("request: outer TTL %d, inner TTL %d; want both 49 (ttl inherit)", p[8], in[8])
				}
				if got := p[6]&ipDF != 0; got != df {
					t.Errorf("request: outer DF %v, inner DF %v; want it copied", got, df)
				}
			case src == node2IP && dst == node1IP && isrc == pod2IP && idst == pod1IP:
				sawReply = true
			default:
				t.Errorf("unexpected IPIP packet %s -> %s carrying %s -> %s", src, dst, isrc, idst)
			}
			if binary.BigEndian.Uint16(p[2:4]) != uint16(len(p)) || ipHeaderChecksum(p[:20]) != binary.BigEndian.Uint16(p[10:12]) {
				t.Errorf("bad outer length or checksum: % x", p[:20])
			}
			if in[9] != unix.IPPROTO_ICMP {
				t.Errorf("inner protocol %d, want ICMP", in[9])
			}
		}
		if !sawReq || !sawReply {
			t.Errorf("DF %v: saw request %v, reply %v on the underlay", df, sawReq, sawReply)
		}
	}
}

// TestWireTCP checks every IPIP packet of a TCP stream on the underlay: no
// larger than the underlay MTU, lengths consistent, inner checksums complete
// (segmentation and checksum offload happened before the wire, not after).
// It captures on node1, where the data leave for the wire (node2's eth0
// shows the same packets: GRO merges them behind it, on tunl0-gro).
func TestWireTCP(t *testing.T) {
	l := newLab(t, labOptions{})
	l.startBoth(Config{})
	fd := capture(t, l.node1, "eth0")
	_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 64<<20)
	type result struct{ data, acks, bad int }
	done := make(chan result, 1)
	stop := make(chan struct{})
	go func() {
		var r result
		buf := make([]byte, 1<<16)
		for {
			select {
			case <-stop:
				done <- r
				return
			default:
			}
			n, _, err := unix.Recvfrom(fd, buf, 0)
			if err != nil || n < 14+40 || buf[12] != 0x08 || buf[13] != 0 || buf[14+9] != unix.IPPROTO_IPIP {
				continue
			}
			p := buf[14:n]
			in := p[20:]
			ok := len(p) <= 1500 && int(binary.BigEndian.Uint16(p[2:4])) == len(p) &&
				int(binary.BigEndian.Uint16(in[2:4])) == len(in) && in[9] == unix.IPPROTO_TCP && validTCP(in)
			switch {
			case !ok:
				if r.bad == 0 {
					t.Errorf("bad IPIP packet on the wire: % x", p[:min(len(p), 80)])
				}
				r.bad++
			case ip4(in[12:]) == pod1IP:
				r.data++
			default:
				r.acks++
			}
		}
	}()
	_, n := stream(t, l.pod1, l.pod2, pod2IP, 300*time.Millisecond)
	close(stop)
	r := <-done
	t.Logf("streamed %d MiB; captured %d data and %d ack packets, %d bad", n>>20, r.data, r.acks, r.bad)
	if r.data == 0 || r.acks == 0 {
		t.Error("captured no TCP over IPIP")
	}
	if s := l.dp2.Stats(); len(s.GRO) > 0 && s.GROPackets == 0 {
		t.Errorf("node2 received no GRO super-packets (GRO on %v)", s.GRO)
	}
}

func TestECN(t *testing.T) {
	tests := []struct{ inner, outer, decap byte }{
		{0, 0, 0}, {1, 1, 1}, {2, 2, 2}, {3, 2, 3}, // encapsulate: CE leaves as ECT(0)
	}
	e := &encapper{}
	for _, tc := range tests {
		inner := make([]byte, 20)
		inner[0], inner[1], inner[8] = 0x45, 0xb8|tc.inner, 7
		h := make([]byte, 20)
		e.outerHeader(h, inner, 0x0a4d0002)
		if h[1] != tc.outer || h[8] != 7 || h[9] != 4 {
			t.Errorf("inner ECN %d: outer TOS %#x TTL %d proto %d", tc.inner, h[1], h[8], h[9])
		}
	}
	// Decapsulation with outer CE: ECT inner becomes CE with a fixed
	// checksum, not-ECT inner is dropped.
	for _, innerECN := range []byte{0, 1, 2, 3} {
		x := &decapper{d: &Datapath{cfg: Config{AcceptAnyPeer: true}}}
		x.bufs[0] = make([]byte, 40)
		b := x.bufs[0]
		copy(b, []byte{0x45, 3, 0, 40, 0, 0, 0, 0, 64, 4})
		in := b[20:]
		copy(in, []byte{0x45, innerECN, 0, 20, 0, 0, 0x40, 0, 64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2})
		binary.BigEndian.PutUint16(in[10:12], ipHeaderChecksum(in))
		ok := x.strip(&routeTable{}, 0, 40)
		if ok != (innerECN != 0) {
			t.Errorf("inner ECN %d under outer CE: delivered %v", innerECN, ok)
		}
		if ok && (in[1]&3 != 3 || ipHeaderChecksum(in) != binary.BigEndian.Uint16(in[10:12])) {
			t.Errorf("inner ECN %d: after decapsulation TOS %#x, checksum ok %v", innerECN, in[1], ipHeaderChecksum(in) == binary.BigEndian.Uint16(in[10:12]))
		}
	}
}

// sendIPIP sends a hand-built IPIP packet, as a kernel ipip peer would build
// it, from the namespace ns: outer src -> 10.77.0.2, carrying UDP from pod1
// to pod2:port.
func sendIPIP(t *testing.T, ns string, src netip.Addr, port uint16, payload string) {
	t.Helper()
	udp := make([]byte, 8+len(payload))
	binary.BigEndian.PutUint16(udp[0:2], 40000)
	binary.BigEndian.PutUint16(udp[2:4], port)
	binary.BigEndian.PutUint16(udp[4:6], uint16(len(udp)))
	copy(udp[8:], payload) // checksum 0: none, legal for UDP over IPv4
	inner := append([]byte{0x45, 0, 0, 0, 0, 1, 0x40, 0, 63, unix.IPPROTO_UDP, 0, 0}, pod1IP.AsSlice()...)
	inner = append(append(inner, pod2IP.AsSlice()...), udp...)
	binary.BigEndian.PutUint16(inner[2:4], uint16(len(inner)))
	binary.BigEndian.PutUint16(inner[10:12], ipHeaderChecksum(inner[:20]))
	outer := append([]byte{0x45, 0, 0, 0, 0x12, 0x34, 0x40, 0, 63, unix.IPPROTO_IPIP, 0, 0}, src.AsSlice()...)
	outer = append(append(outer, node2IP.AsSlice()...), inner...)
	binary.BigEndian.PutUint16(outer[2:4], uint16(len(outer)))
	binary.BigEndian.PutUint16(outer[10:12], ipHeaderChecksum(outer[:20]))
	err := netns.Do(ns, func() error {
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.IPPROTO_RAW)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		return unix.Sendto(fd, outer, 0, &unix.SockaddrInet4{Addr: node2IP.As4()})
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestPeers sends hand-made IPIP, built like a kernel ipip peer would, to
// node2: from its tunnel peer it is decapsulated and delivered, from any
// other source it is dropped.
func TestPeers(t *testing.T) {
	l := newLab(t, labOptions{})
	l.startBoth(Config{})
	c, err := probe.ListenUDP(l.pod2, ":9999")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	read := func() (string, bool) {
		buf := make([]byte, 100)
		_ = c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
		n, _, err := c.ReadFrom(buf)
		return string(buf[:n]), err == nil
	}
	sendIPIP(t, l.node1, netip.MustParseAddr("10.77.0.9"), 9999, "stranger")
	if got, ok := read(); ok {
		t.Errorf("pod2 received %q from an unknown tunnel peer", got)
	}
	if s := l.dp2.Stats(); s.Drops.UnknownPeer != 1 || s.DecapPackets != 0 {
		t.Errorf("after a packet from 10.77.0.9: %d unknown-peer drops, %d decapsulated; want 1, 0", s.Drops.UnknownPeer, s.DecapPackets)
	}
	sendIPIP(t, l.node1, node1IP, 9999, "peer")
	if got, ok := read(); got != "peer" {
		t.Errorf("from the tunnel peer: pod2 received %q (%v), want \"peer\"", got, ok)
	}
}

func TestPeersAcceptAny(t *testing.T) {
	l := newLab(t, labOptions{})
	l.startBoth(Config{AcceptAnyPeer: true})
	c, err := probe.ListenUDP(l.pod2, ":9999")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	sendIPIP(t, l.node1, netip.MustParseAddr("10.77.0.9"), 9999, "stranger")
	buf := make([]byte, 100)
	_ = c.SetReadDeadline(time.Now().Add(time.Second))
	if n, _, err := c.ReadFrom(buf); err != nil || string(buf[:n]) != "stranger" {
		t.Errorf("AcceptAnyPeer: got %q, %v", buf[:n], err)
	}
}

// waitRoutes waits until d follows the kernel's tunl0 routes to want.
func waitRoutes(t *testing.T, d *Datapath, want ...string) {
	t.Helper()
	var got []string
	for deadline := time.Now().Add(2 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		got = got[:0]
		for _, r := range d.Stats().Routes {
			s := r.Dst.String()
			if r.Gateway.IsValid() {
				s += " via " + r.Gateway.String()
			}
			if r.Loop {
				s += " loop"
			}
			got = append(got, s)
		}
		if slices.Equal(got, want) {
			return
		}
	}
	t.Fatalf("routes %q, want %q", got, want)
}

func TestRoutesFollowKernel(t *testing.T) {
	l := newLab(t, labOptions{noRoutes: true})
	l.startBoth(Config{})
	n1 := l.names["node1"]
	if res := ping(t, l.pod1, pod2IP, probe.PingOptions{}); res.Received != 0 {
		t.Fatal("ping answered before node1 has a route")
	}
	nstest.IP(l.t, "-n", n1, "route", "add", "10.78.2.0/24", "via", "10.77.0.2", "dev", "tunl0", "onlink")
	waitRoutes(t, l.dp1, "10.78.2.0/24 via 10.77.0.2")
	mustPing(t, l.pod1, pod2IP)

	// Moving the route to another gateway moves the traffic: 10.77.0.3
	// does not exist, so nothing answers.
	nstest.IP(l.t, "-n", n1, "route", "replace", "10.78.2.0/24", "via", "10.77.0.3", "dev", "tunl0", "onlink")
	waitRoutes(t, l.dp1, "10.78.2.0/24 via 10.77.0.3")
	if res := ping(t, l.pod1, pod2IP, probe.PingOptions{}); res.Received != 0 {
		t.Error("ping answered through a gateway that does not exist")
	}
	nstest.IP(l.t, "-n", n1, "route", "replace", "10.78.2.0/24", "via", "10.77.0.2", "dev", "tunl0", "onlink")
	waitRoutes(t, l.dp1, "10.78.2.0/24 via 10.77.0.2")
	mustPing(t, l.pod1, pod2IP)

	// A more specific route wins, as in the kernel.
	nstest.IP(l.t, "-n", n1, "route", "add", "10.78.2.2/32", "via", "10.77.0.3", "dev", "tunl0", "onlink")
	waitRoutes(t, l.dp1, "10.78.2.0/24 via 10.77.0.2", "10.78.2.2/32 via 10.77.0.3")
	if res := ping(t, l.pod1, pod2IP, probe.PingOptions{}); res.Received != 0 {
		t.Error("the /32 route was not preferred")
	}
	nstest.IP(l.t, "-n", n1, "route", "del", "10.78.2.2/32")

	// A packet the kernel sends into tunl0 by a route we do not follow
	// (another table, via a rule) has no tunl0 route of ours: dropped.
	nstest.IP(l.t, "-n", n1, "rule", "add", "to", "10.78.9.0/24", "table", "100")
	nstest.IP(l.t, "-n", n1, "route", "add", "10.78.9.0/24", "via", "10.77.0.2", "dev", "tunl0", "onlink", "table", "100")
	before := l.dp1.Stats().Drops.NoRoute
	ping(t, l.node1, netip.MustParseAddr("10.78.9.9"), probe.PingOptions{Timeout: 100 * time.Millisecond})
	if got := l.dp1.Stats().Drops.NoRoute; got != before+1 {
		t.Errorf("no-route drops %d, want %d", got, before+1)
	}

	// A gateway that is itself behind tunl0 would loop: the kernel drops
	// such packets, so do we.
	nstest.IP(l.t, "-n", n1, "route", "add", "10.78.5.0/24", "via", "10.78.2.254", "dev", "tunl0", "onlink")
	waitRoutes(t, l.dp1, "10.78.2.0/24 via 10.77.0.2", "10.78.5.0/24 via 10.78.2.254 loop")
	ping(t, l.node1, netip.MustParseAddr("10.78.5.1"), probe.PingOptions{Timeout: 100 * time.Millisecond})
	if got := l.dp1.Stats().Drops.Loop; got != 1 {
		t.Errorf("loop drops %d, want 1", got)
	}
	nstest.IP(l.t, "-n", n1, "route", "del", "10.78.5.0/24")

	nstest.IP(l.t, "-n", n1, "route", "del", "10.78.2.0/24")
	waitRoutes(t, l.dp1)
	if res := ping(t, l.pod1, pod2IP, probe.PingOptions{}); res.Received != 0 {
		t.Error("ping answered after the route was deleted")
	}
}

// Calico's routes as BIRD installs them, proto bird and onlink via the
// peer node, with a blackhole block beside them (Calico's own block):
// the datapath follows the route and ignores the blackhole, as it does
// the protocol.
func TestCalicoRoutes(t *testing.T) {
	l := newLab(t, labOptions{noRoutes: true})
	l.startBoth(Config{})
	n1 := l.names["node1"]
	nstest.IP(l.t, "-n", n1, "route", "add", "blackhole", "10.78.3.0/26", "proto", "bird")
	nstest.IP(l.t, "-n", n1, "route", "add", "10.78.2.0/24", "via", "10.77.0.2", "dev", "tunl0", "proto", "bird", "onlink")
	waitRoutes(t, l.dp1, "10.78.2.0/24 via 10.77.0.2")
	mustPing(t, l.pod1, pod2IP)
}

func TestSingleQueueDevice(t *testing.T) {
	l := newLab(t, labOptions{singleQueue: true})
	l.startBoth(Config{Queues: 4})
	if q := l.dp1.Stats().Queues; q != 1 {
		t.Errorf("queues %d on a device without multi_queue, want 1", q)
	}
	mustPing(t, l.pod1, pod2IP)
	if _, n := stream(t, l.pod1, l.pod2, pod2IP, 200*time.Millisecond); n == 0 {
		t.Error("no bytes streamed")
	}
}

func TestMultiQueue(t *testing.T) {
	l := newLab(t, labOptions{})
	l.startBoth(Config{Queues: 3})
	if q := l.dp1.Stats().Queues; q != 3 {
		t.Errorf("queues %d, want 3", q)
	}
	mustPing(t, l.pod1, pod2IP)
	// Parallel flows both ways spread over the queues, whose goroutines
	// share the raw socket.
	errs := make(chan error, 6)
	for i := range 6 {
		go func() {
			from, to, dst := l.pod1, l.pod2, pod2IP
			if i%2 == 1 {
				from, to, dst = l.pod2, l.pod1, pod1IP
			}
			_, n, err := streamOn(from, to, netip.AddrPortFrom(dst, uint16(5300+i)), 300*time.Millisecond)
			if err == nil && n == 0 {
				err = errors.New("nothing arrived")
			}
			errs <- err
		}()
	}
	for range 6 {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
	if d := l.dp1.Stats().Drops; d != (Drops{}) {
		t.Errorf("drops: %+v", d)
	}
}

// TestServeStops checks that cancelling the context stops the datapath
// promptly, with every goroutine ended and every descriptor closed, and that
// the device is left as it was found.
func TestServeStops(t *testing.T) {
	l := newLab(t, labOptions{})
	goroutines, fds := runtime.NumGoroutine(), nstest.OpenFDs()
	var d *Datapath
	if err := netns.Do(l.node1, func() error {
		var err error
		d, err = Open(Config{Device: "tunl0"})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Serve(ctx) }()
	time.Sleep(50 * time.Millisecond)
	if err := d.Serve(ctx); err == nil || !strings.Contains(err.Error(), "already") {
		t.Errorf("second Serve: %v", err)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("serve after cancel: %v", err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("serve did not stop within 2s of cancel")
	}
	for deadline := time.Now().Add(2 * time.Second); runtime.NumGoroutine() > goroutines || nstest.OpenFDs() > fds; {
		if time.Now().After(deadline) {
			t.Fatalf("after stop: %d goroutines (was %d), %d fds (was %d)", runtime.NumGoroutine(), goroutines, nstest.OpenFDs(), fds)
		}
		time.Sleep(10 * time.Millisecond)
	}
	// A new datapath attaches again.
	var d2 *Datapath
	if err := netns.Do(l.node1, func() error {
		var err error
		d2, err = Open(Config{Device: "tunl0"})
		return err
	}); err != nil {
		t.Fatalf("reattach: %v", err)
	}
	d2.Close()
}

func TestDeviceVanishes(t *testing.T) {
	l := newLab(t, labOptions{})
	var d *Datapath
	if err := netns.Do(l.node1, func() error {
		var err error
		d, err = Open(Config{Device: "tunl0"})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- d.Serve(context.Background()) }()
	nstest.IP(l.t, "-n", l.names["node1"], "link", "del", "tunl0")
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), `ipip datapath on "tunl0": device vanished`) || !errors.Is(err, unix.EBADFD) {
			t.Errorf("serve: %v, want the device to have vanished", err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("serve did not notice the device vanishing")
	}
}

func TestOpenErrors(t *testing.T) {
	l := newLab(t, labOptions{})
	n1 := l.names["node1"]
	nstest.IP(l.t, "-n", n1, "tuntap", "add", "dev", "tap0", "mode", "tap")
	for _, tc := range []struct{ dev, want string }{
		{"nosuch0", `find device "nosuch0": no such device`},
		{"tap0", `device "tap0" is not a TUN device`},
		{"eth0", `device "eth0" is not a TUN device`},
		{"", "no device named"},
		{"much-too-long-name", "longer than 15 bytes"},
	} {
		err := netns.Do(l.node1, func() error {
			d, err := Open(Config{Device: tc.dev})
			if err == nil {
				d.Close()
			}
			return err
		})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("open %q: %v, want %q", tc.dev, err, tc.want)
		}
	}
	// Open must never create the device it was asked for.
	if err := exec.Command("ip", "-n", n1, "link", "show", "nosuch0").Run(); err == nil {
		t.Error("open created nosuch0")
	}
}
