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
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/labctl/labctl/emulator/netns"
	"github.com/labctl/labctl/emulator/probe"
	"github.com/labctl/labctl/internal/nstest"
)

// devState is what receive offload could change on a device.
type devState struct {
	exists bool
	xdp    bool       // an XDP program is attached
	tcx    int        // programs attached at TCX ingress
	gro    bool       // ETHTOOL_GGRO
	tso    bool       // ETHTOOL_GTSO
	napis  []napiConf // with their threaded and gro_flush_timeout settings
}

// readDev reads the state of dev in node's namespace.
func readDev(t *testing.T, l *lab, node, dev string) devState {
	t.Helper()
	var s devState
	out, err := exec.Command("ip", "-n", l.names[node], "link", "show", dev).CombinedOutput()
	if err != nil {
		if strings.Contains(string(out), "does not exist") {
			return s
		}
		t.Fatalf("ip link show %s: %v: %s", dev, err, out)
	}
	s.exists = true
	s.xdp = strings.Contains(string(out), "prog/xdp")
	err = netns.Do(nsPath(l, node), func() error {
		idx, err := ifIndex(dev)
		if err != nil {
			return err
		}
		if s.tcx, err = tcxIngressPrograms(idx); err != nil {
			return err
		}
		o := &rxOffload{groName: dev, groIdx: idx}
		if o.sock, err = unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0); err != nil {
			return err
		}
		defer unix.Close(o.sock)
		on, err := ethtoolValue(o.sock, dev, unix.ETHTOOL_GGRO, 0)
		if err != nil {
			return err
		}
		s.gro = on != 0
		if on, err = ethtoolValue(o.sock, dev, unix.ETHTOOL_GTSO, 0); err != nil {
			return err
		}
		s.tso = on != 0
		if o.genl, err = openNetlink(unix.NETLINK_GENERIC, "generic"); err != nil {
			return err
		}
		defer o.genl.Close()
		if o.family, err = o.genl.genlFamily("netdev"); err != nil {
			return err
		}
		s.napis, err = o.napis()
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// tcxIngressPrograms counts the programs attached to the TCX ingress of
// the device ifindex in the calling thread's namespace (BPF_PROG_QUERY).
func tcxIngressPrograms(ifindex int) (int, error) {
	attr := struct {
		targetIfindex, attachType, queryFlags, attachFlags uint32
		progIDs                                            uint64
		progCnt                                            uint32
		_                                                  [36]byte
	}{targetIfindex: uint32(ifindex), attachType: unix.BPF_TCX_INGRESS}
	_, err := bpf(unix.BPF_PROG_QUERY, unsafe.Pointer(&attr), unsafe.Sizeof(attr))
	if err != nil {
		return 0, fmt.Errorf("query TCX ingress programs: %w", err)
	}
	return int(attr.progCnt), nil
}

func nsPath(l *lab, node string) string { return netns.Path(l.names[node]) }

// sameUnderlay compares what receive offload must leave alone on eth0.
func sameUnderlay(a, b devState) bool {
	if a.xdp != b.xdp || a.gro != b.gro || a.tso != b.tso || len(a.napis) != len(b.napis) {
		return false
	}
	for i := range a.napis {
		if a.napis[i].threaded != b.napis[i].threaded || a.napis[i].timeout != b.napis[i].timeout {
			return false
		}
	}
	return true
}

// TestReceiveOffload streams through a node with receive offload and
// checks that eth0 is left as it was (no XDP, GRO and NAPIs unchanged, only
// the steering program attached), that IPIP took the pair and the kernel's
// GRO merged the stream, that every byte arrived intact and in order (a
// super-packet goes to TUN with its checksum left partial, so the pod's TCP
// would not notice a mistake), that other traffic passed the program and
// was counted, and that stopping the datapath removes program and pair.
func TestReceiveOffload(t *testing.T) {
	l := newLab(t, labOptions{})
	before := readDev(t, l, "node2", "eth0")
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
	case len(s.GRO) != 1 || s.GRO[0] != "eth0" || s.Steering == nil || s.Steering.Device != "eth0" || s.Steering.Target != "tunl0-gro":
		t.Fatalf("receive offload on %v, steering %+v; want eth0 to tunl0-gro", s.GRO, s.Steering)
	}
	if on := readDev(t, l, "node2", "eth0"); !sameUnderlay(on, before) || on.tcx != before.tcx+1 {
		t.Errorf("eth0 while serving: %+v, before: %+v; want it as it was, with one TCX program more", on, before)
	}
	if rx := readDev(t, l, "node2", "tunl0-rx"); !rx.exists || rx.tso || rx.xdp || rx.tcx != 0 {
		t.Errorf("tunl0-rx: %+v, want it with TSO off and no programs", rx)
	}
	gro := readDev(t, l, "node2", "tunl0-gro")
	if !gro.exists || !gro.gro || len(gro.napis) == 0 || gro.xdp {
		t.Errorf("tunl0-gro: %+v, want GRO, NAPIs and no XDP", gro)
	}
	for _, n := range gro.napis {
		if !n.hasConf || n.threaded != 1 || n.timeout != uint64(groFlushTimeout) {
			t.Errorf("napi %+v, want threaded with a %v flush timeout", n, groFlushTimeout)
		}
	}

	n, err := streamChecked(l.pod1, l.pod2, netip.AddrPortFrom(pod2IP, 5201), 500*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	mustPing(t, l.pod1, pod2IP)
	mustPing(t, l.node1, node2IP) // not IPIP: passes the program
	s := dp2.Stats()
	t.Logf("streamed %d MiB: %d packets in %d super-packets, %d TUN writes; steering %+v", n>>20, s.DecapPackets, s.GROPackets, s.TUNWrites, *s.Steering)
	if s.GROPackets == 0 || s.DecapPackets < 4*s.GROPackets {
		t.Errorf("%d super-packets for %d packets: GRO hardly merged", s.GROPackets, s.DecapPackets)
	}
	if s.Drops != (Drops{}) {
		t.Errorf("drops: %+v", s.Drops)
	}
	if st := s.Steering; st.SteeredPackets < s.DecapPackets/2 || st.SteeredBytes < uint64(n) || st.PassedPackets < 3 {
		t.Errorf("steering counted %+v for %d decapsulated packets (%d bytes) and 3 pings on the underlay", *st, s.DecapPackets, n)
	}

	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if after := readDev(t, l, "node2", "eth0"); !sameUnderlay(after, before) || after.tcx != before.tcx {
		t.Errorf("eth0 after stop: %+v, before: %+v", after, before)
	}
	for _, dev := range []string{"tunl0-rx", "tunl0-gro"} {
		if readDev(t, l, "node2", dev).exists {
			t.Errorf("%s is left after stop", dev)
		}
	}
	if st := dp2.Stats().Steering; st == nil || st.SteeredPackets < s.Steering.SteeredPackets {
		t.Errorf("steering counts after stop: %+v, want the last ones kept", st)
	}
}

// TestNoGRO checks that Config.NoGRO, and NoOffload, leave eth0 alone.
func TestNoGRO(t *testing.T) {
	for _, cfg := range []Config{{NoGRO: true}, {NoOffload: true}} {
		l := newLab(t, labOptions{})
		before := readDev(t, l, "node2", "eth0")
		l.startBoth(cfg)
		if s := l.dp2.Stats(); len(s.GRO) != 0 || s.Steering != nil {
			t.Errorf("%+v: receive offload on %v, steering %+v", cfg, s.GRO, s.Steering)
		}
		if s := readDev(t, l, "node2", "eth0"); !sameUnderlay(s, before) || s.tcx != 0 {
			t.Errorf("%+v: eth0 %+v, want it untouched", cfg, s)
		}
		if readDev(t, l, "node2", "tunl0-gro").exists {
			t.Errorf("%+v: tunl0-gro exists", cfg)
		}
		mustPing(t, l.pod1, pod2IP)
	}
}

// TestOffloadLeftovers: a pair a dead datapath left behind (marked by its
// alias) is replaced; a device of the same name that is not the
// datapath's is left alone, and the datapath does without offload.
func TestOffloadLeftovers(t *testing.T) {
	for _, ours := range []bool{true, false} {
		t.Run(fmt.Sprintf("ours-%v", ours), func(t *testing.T) {
			l := newLab(t, labOptions{})
			n2 := l.names["node2"]
			nstest.IP(t, "-n", n2, "link", "add", "tunl0-rx", "type", "veth", "peer", "name", "tunl0-gro")
			alias := "someone else's"
			if ours {
				alias = offloadAlias + "tunl0"
			}
			for _, dev := range []string{"tunl0-rx", "tunl0-gro"} {
				nstest.IP(t, "-n", n2, "link", "set", dev, "alias", alias)
			}
			l.startBoth(Config{})
			s := l.dp2.Stats()
			if ours != (len(s.GRO) == 1) {
				t.Errorf("receive offload on %v", s.GRO)
			}
			out, err := exec.Command("ip", "-n", n2, "-d", "link", "show", "tunl0-gro").CombinedOutput()
			if err != nil {
				t.Fatalf("%v: %s", err, out)
			}
			if !strings.Contains(string(out), "alias "+alias) {
				t.Errorf("tunl0-gro: %s", out)
			}
			mustPing(t, l.pod1, pod2IP)
		})
	}
}

// TestOffloadPairDeleted: when someone deletes the pair, the datapath
// detaches the program, so IPIP takes the normal path again.
func TestOffloadPairDeleted(t *testing.T) {
	l := newLab(t, labOptions{})
	l.startBoth(Config{})
	if len(l.dp2.Stats().GRO) == 0 {
		t.Skip("this kernel gives eth0 no receive offload (the log says why)")
	}
	mustPing(t, l.pod1, pod2IP)
	nstest.IP(t, "-n", l.names["node2"], "link", "del", "tunl0-gro")
	deadline := time.Now().Add(2 * time.Second)
	for readDev(t, l, "node2", "eth0").tcx != 0 {
		if time.Now().After(deadline) {
			t.Fatal("the steering program is still attached to eth0")
		}
		time.Sleep(10 * time.Millisecond)
	}
	mustPing(t, l.pod1, pod2IP)
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
