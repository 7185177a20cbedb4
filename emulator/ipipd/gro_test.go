package ipipd

import (
	"context"
	"fmt"
	"io"
	"net/netip"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/labctl/labctl/emulator/netns"
	"github.com/labctl/labctl/emulator/probe"
	"github.com/labctl/labctl/internal/nstest"
)

// underlayState is what receive offload changes on a node's eth0.
type underlayState struct {
	xdp   bool       // an XDP program is attached
	gro   bool       // ETHTOOL_GGRO
	napis []napiConf // with their threaded and gro_flush_timeout settings
}

func readUnderlay(t *testing.T, l *lab, node string) underlayState {
	t.Helper()
	var s underlayState
	out, err := exec.Command("ip", "-n", l.names[node], "link", "show", "eth0").CombinedOutput()
	if err != nil {
		t.Fatalf("ip link show: %v: %s", err, out)
	}
	s.xdp = strings.Contains(string(out), "prog/xdp")
	err = netns.Do(nsPath(l, node), func() error {
		idx, err := ifIndex("eth0")
		if err != nil {
			return err
		}
		g := &groDevice{name: "eth0", ifindex: idx}
		if g.sock, err = unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0); err != nil {
			return err
		}
		defer unix.Close(g.sock)
		on, err := ethtoolValue(g.sock, "eth0", unix.ETHTOOL_GGRO, 0)
		if err != nil {
			return err
		}
		s.gro = on != 0
		if g.genl, err = openNetlink(unix.NETLINK_GENERIC, "generic"); err != nil {
			return err
		}
		defer g.genl.Close()
		if g.family, err = g.genl.genlFamily("netdev"); err != nil {
			return err
		}
		s.napis, err = g.napis()
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func nsPath(l *lab, node string) string { return netns.Path(l.names[node]) }

func setGRO(t *testing.T, l *lab, node string, on bool) {
	t.Helper()
	v := "off"
	if on {
		v = "on"
	}
	err := netns.Do(nsPath(l, node), func() error {
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		var val uint32
		if on {
			val = 1
		}
		_, err = ethtoolValue(fd, "eth0", unix.ETHTOOL_SGRO, val)
		return err
	})
	if err != nil {
		t.Fatalf("gro %s on %s: %v", v, node, err)
	}
}

// TestGRO streams through a node whose eth0 gets receive offload and checks
// that the kernel's GRO merged the stream, that every byte arrived intact
// and in order (a super-packet goes to TUN with its checksum left partial,
// so the pod's TCP would not notice a mistake), and that stopping the
// datapath leaves eth0 as it was.
func TestGRO(t *testing.T) {
	for _, groBefore := range []bool{false, true} {
		t.Run(fmt.Sprintf("gro-before-%v", groBefore), func(t *testing.T) {
			l := newLab(t, labOptions{})
			if groBefore {
				setGRO(t, l, "node2", true)
			}
			before := readUnderlay(t, l, "node2")
			l.dp1 = l.start(l.node1, Config{})
			var dp2 *Datapath
			if err := netns.Do(l.node2, func() error {
				var err error
				dp2, err = Open(Config{Device: "tunl0", Logf: t.Logf})
				return err
			}); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- dp2.Serve(ctx) }()
			stopped := false
			stop := func() error {
				if stopped {
					return nil
				}
				stopped = true
				cancel()
				return <-done
			}
			defer stop()

			switch s := dp2.Stats(); {
			case len(s.GRO) == 0:
				t.Skip("this kernel gives eth0 no receive offload (the log says why)")
			case len(s.GRO) != 1 || s.GRO[0] != "eth0":
				t.Fatalf("receive offload on %v, want [eth0]", s.GRO)
			}
			on := readUnderlay(t, l, "node2")
			if !on.xdp || !on.gro || len(on.napis) == 0 {
				t.Fatalf("eth0 while serving: %+v, want XDP, GRO and NAPIs", on)
			}
			for _, n := range on.napis {
				if !n.hasConf || n.threaded != 1 || n.timeout != uint64(groFlushTimeout) {
					t.Errorf("napi %+v, want threaded with a %v flush timeout", n, groFlushTimeout)
				}
			}

			n, err := streamChecked(l.pod1, l.pod2, netip.AddrPortFrom(pod2IP, 5201), 500*time.Millisecond)
			if err != nil {
				t.Fatal(err)
			}
			mustPing(t, l.pod1, pod2IP)
			s := dp2.Stats()
			t.Logf("streamed %d MiB: %d packets in %d super-packets, %d TUN writes", n>>20, s.DecapPackets, s.GROPackets, s.TUNWrites)
			if s.GROPackets == 0 || s.DecapPackets < 4*s.GROPackets {
				t.Errorf("%d super-packets for %d packets: GRO hardly merged", s.GROPackets, s.DecapPackets)
			}
			if s.Drops != (Drops{}) {
				t.Errorf("drops: %+v", s.Drops)
			}

			if err := stop(); err != nil {
				t.Fatal(err)
			}
			after := readUnderlay(t, l, "node2")
			if after.xdp || after.gro != before.gro || len(after.napis) != len(before.napis) {
				t.Errorf("eth0 after stop: %+v, before: %+v", after, before)
			}
			for i := range min(len(after.napis), len(before.napis)) {
				if a, b := after.napis[i], before.napis[i]; a.threaded != b.threaded || a.timeout != b.timeout {
					t.Errorf("napi after stop %+v, before %+v", a, b)
				}
			}
		})
	}
}

// TestNoGRO checks that Config.NoGRO, and NoOffload, leave eth0 alone.
func TestNoGRO(t *testing.T) {
	for _, cfg := range []Config{{NoGRO: true}, {NoOffload: true}} {
		l := newLab(t, labOptions{})
		l.startBoth(cfg)
		if s := l.dp2.Stats(); len(s.GRO) != 0 {
			t.Errorf("%+v: receive offload on %v", cfg, s.GRO)
		}
		if s := readUnderlay(t, l, "node2"); s.xdp || s.gro {
			t.Errorf("%+v: eth0 %+v, want it untouched", cfg, s)
		}
		mustPing(t, l.pod1, pod2IP)
	}
}

// streamChecked sends a stream whose every byte is a function of its
// offset for d and checks each byte the receiver gets.
func streamChecked(fromNS, toNS string, dst netip.AddrPort, d time.Duration) (int64, error) {
	ln, err := probe.ListenTCP(toNS, fmt.Sprintf(":%d", dst.Port()))
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	type result struct {
		n   int64
		err error
	}
	done := make(chan result, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			done <- result{err: err}
			return
		}
		defer c.Close()
		var pos int64
		buf := make([]byte, 1<<20)
		for {
			k, err := c.Read(buf)
			for i, b := range buf[:k] {
				if want := patternByte(pos + int64(i)); b != want {
					done <- result{pos, fmt.Errorf("byte %d is %#x, want %#x", pos+int64(i), b, want)}
					return
				}
			}
			pos += int64(k)
			if err == io.EOF {
				done <- result{pos, nil}
				return
			}
			if err != nil {
				done <- result{pos, err}
				return
			}
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := probe.DialTCP(ctx, fromNS, dst.String())
	if err != nil {
		return 0, err
	}
	buf := make([]byte, 256<<10)
	var pos int64
	for stop := time.Now().Add(d); time.Now().Before(stop); {
		for i := range buf {
			buf[i] = patternByte(pos + int64(i))
		}
		if _, err := c.Write(buf); err != nil {
			c.Close()
			return 0, err
		}
		pos += int64(len(buf))
	}
	c.Close()
	select {
	case r := <-done:
		if r.err == nil && r.n != pos {
			r.err = fmt.Errorf("received %d bytes of %d", r.n, pos)
		}
		return r.n, r.err
	case <-time.After(10 * time.Second):
		return 0, fmt.Errorf("receiver did not finish")
	}
}

// patternByte gives every 8-byte word of the stream a different value, so a
// payload copied to the wrong place, twice or not at all shows.
func patternByte(off int64) byte {
	x := uint64(off/8) * 0x9e3779b97f4a7c15
	return byte(x >> (8 * (off % 8)))
}

// TestGROSmallerPodMTU has pod2's side of the network at MTU 1450 under a
// tunl0 of 1480, as in a lab mixing VXLAN and IPIP: pod1 then sends
// 1450-byte segments, and the super-packets node2 receives must be cut no
// larger again, or node2 could not forward them to pod2 (DF set): it would
// answer "fragmentation needed" and the stream would crawl on
// retransmissions.
func TestGROSmallerPodMTU(t *testing.T) {
	l := newLab(t, labOptions{})
	nstest.IP(l.t, "-n", l.names["node2"], "link", "set", "vpod", "mtu", "1450")
	nstest.IP(l.t, "-n", l.names["pod2"], "link", "set", "eth0", "mtu", "1450")
	l.startBoth(Config{})
	if len(l.dp2.Stats().GRO) == 0 {
		t.Skip("this kernel gives eth0 no receive offload (the log says why)")
	}
	for _, dir := range []struct {
		from, to string
		dst      netip.Addr
		port     uint16
	}{{l.pod1, l.pod2, pod2IP, 5201}, {l.pod2, l.pod1, pod1IP, 5202}} {
		n, err := streamChecked(dir.from, dir.to, netip.AddrPortFrom(dir.dst, dir.port), 300*time.Millisecond)
		if err != nil {
			t.Fatalf("to %s: %v", dir.dst, err)
		}
		if n < 8<<20 {
			t.Errorf("to %s: only %d KiB in 300ms", dir.dst, n>>10)
		}
	}
	if s := l.dp2.Stats(); s.GROPackets == 0 {
		t.Error("node2 received no super-packets")
	}
	if n := snmpCounter(t, l.names["node2"], "Ip", "FragFails"); n != 0 {
		t.Errorf("node2 could not forward %d packets for their size", n)
	}
}

// snmpCounter reads a counter of /proc/net/snmp in the named namespace.
func snmpCounter(t *testing.T, ns, group, name string) int {
	t.Helper()
	out, err := exec.Command("ip", "netns", "exec", ns, "cat", "/proc/net/snmp").CombinedOutput()
	if err != nil {
		t.Fatalf("read /proc/net/snmp: %v: %s", err, out)
	}
	lines := strings.Split(string(out), "\n")
	for i := 0; i+1 < len(lines); i++ {
		names, values := strings.Fields(lines[i]), strings.Fields(lines[i+1])
		if len(names) == 0 || names[0] != group+":" || len(values) != len(names) || values[0] != group+":" {
			continue
		}
		for j, n := range names {
			if n == name {
				v, err := strconv.Atoi(values[j])
				if err != nil {
					t.Fatal(err)
				}
				return v
			}
		}
	}
	t.Fatalf("no %s %s in /proc/net/snmp", group, name)
	return 0
}
