package probe

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// ListenUDP binds a UDP socket to addr, "ip:port" or ":port" for every IPv4
// address, in the namespace at nsPath.
func ListenUDP(nsPath, addr string) (*net.UDPConn, error) {
	ap, err := parseAddrPort(addr, true)
	if err != nil {
		return nil, fmt.Errorf("listen udp %q: %w", addr, err)
	}
	c, err := udpSocket(nsPath, ap, unix.Bind, "bind")
	if err != nil {
		return nil, fmt.Errorf("listen udp %s: %w", ap, err)
	}
	return c, nil
}

// DialUDP makes a UDP socket in the namespace at nsPath connected to addr,
// "ip:port". Connecting sends nothing; it only fixes the peer, so reads see
// only its datagrams and ICMP port unreachable shows up as ECONNREFUSED.
func DialUDP(nsPath, addr string) (*net.UDPConn, error) {
	ap, err := parseAddrPort(addr, false)
	if err != nil {
		return nil, fmt.Errorf("dial udp %q: %w", addr, err)
	}
	c, err := udpSocket(nsPath, ap, unix.Connect, "connect")
	if err != nil {
		return nil, fmt.Errorf("dial udp %s: %w", ap, err)
	}
	return c, nil
}

func udpSocket(nsPath string, ap netip.AddrPort, op func(int, unix.Sockaddr) error, name string) (*net.UDPConn, error) {
	fd, sa, err := socketIn(nsPath, unix.SOCK_DGRAM, 0, ap)
	if err != nil {
		return nil, err
	}
	f := os.NewFile(uintptr(fd), "udp")
	defer f.Close() // net.FileConn works on a duplicate
	if err := op(fd, sa); err != nil {
		return nil, os.NewSyscallError(name, err)
	}
	c, err := net.FileConn(f)
	if err != nil {
		return nil, err
	}
	return c.(*net.UDPConn), nil
}

// CheckUDP is CheckTCP for UDP: it listens in toNS on dst's port, sends a
// random datagram from fromNS to dst and waits for it to come back. Lost
// datagrams are sent again, with growing pauses, until ctx ends, so give ctx
// a deadline.
func CheckUDP(ctx context.Context, fromNS, toNS string, dst netip.AddrPort) (ConnCheck, error) {
	dst = netip.AddrPortFrom(dst.Addr().Unmap(), dst.Port())
	cc, err := checkUDP(ctx, fromNS, toNS, dst)
	if err != nil {
		return ConnCheck{}, fmt.Errorf("check udp %s: %w", dst, err)
	}
	return cc, nil
}

func checkUDP(ctx context.Context, fromNS, toNS string, dst netip.AddrPort) (ConnCheck, error) {
	hello := newHello()
	srv, err := udpSocket(toNS, wildcard(dst), unix.Bind, "bind")
	if err != nil {
		return ConnCheck{}, fmt.Errorf("listen: %w", err)
	}
	defer srv.Close()
	if err := recvPktinfo(srv, dst.Addr().Is6()); err != nil {
		return ConnCheck{}, fmt.Errorf("listen: %w", err)
	}

	sctx, stop := context.WithCancel(ctx)
	defer stop()
	done := make(chan ConnCheck, 1)
	go func() { done <- echoDatagrams(sctx, srv, hello) }()

	local, err := sendHello(ctx, fromNS, dst, hello)
	stop()
	seen := <-done
	if err != nil {
		return ConnCheck{}, err
	}
	if !seen.Seen.IsValid() {
		return ConnCheck{}, errors.New("answered by a listener outside the target namespace")
	}
	seen.Local = local
	return seen, nil
}

// recvPktinfo asks for each datagram's destination address: a wildcard
// socket otherwise cannot tell Target, nor answer from the address the
// client wrote to.
func recvPktinfo(c *net.UDPConn, v6 bool) error {
	rc, err := c.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	err = rc.Control(func(fd uintptr) {
		if v6 {
			serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_IPV6, unix.IPV6_RECVPKTINFO, 1)
		} else {
			serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_PKTINFO, 1)
		}
	})
	if err != nil {
		return err
	}
	return os.NewSyscallError("setsockopt", serr)
}

// echoDatagrams returns every hello to its sender, from the address it was
// sent to (a connected client drops answers from any other), until ctx ends.
// Resent hellos are answered again since earlier answers may be lost. It
// reports what the first hello showed.
func echoDatagrams(ctx context.Context, c *net.UDPConn, hello []byte) ConnCheck {
	cancel := newCanceler(ctx, c)
	defer cancel.close()
	var first ConnCheck
	buf := make([]byte, len(hello)+1)
	oob := make([]byte, 128)
	for {
		n, oobn, _, from, err := c.ReadMsgUDPAddrPort(buf, oob)
		if err != nil {
			if ctx.Err() != nil || !isTransient(err) {
				return first
			}
			continue
		}
		if string(buf[:n]) != string(hello) {
			continue
		}
		to, ok := pktinfoDst(oob[:oobn])
		if !ok {
			continue
		}
		from = netip.AddrPortFrom(from.Addr().Unmap(), from.Port())
		if !first.Seen.IsValid() {
			first = ConnCheck{Seen: from, Target: netip.AddrPortFrom(to, addrPort(c.LocalAddr()).Port())}
		}
		_, _, _ = c.WriteMsgUDPAddrPort(hello, pktinfoSrc(to), from) // lost answers are resent on the next hello
	}
}

// isTransient tells errors a UDP socket reports for ICMP about earlier
// datagrams, which say nothing about the next one.
func isTransient(err error) bool {
	return errors.Is(err, unix.ECONNREFUSED) || errors.Is(err, unix.EHOSTUNREACH) ||
		errors.Is(err, unix.ENETUNREACH) || errors.Is(err, unix.EMSGSIZE)
}

func pktinfoDst(oob []byte) (netip.Addr, bool) {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return netip.Addr{}, false
	}
	for _, m := range msgs {
		switch {
		case m.Header.Level == unix.IPPROTO_IP && m.Header.Type == unix.IP_PKTINFO && len(m.Data) >= unix.SizeofInet4Pktinfo:
			return netip.AddrFrom4([4]byte(m.Data[8:12])), true // Inet4Pktinfo.Addr, the header's destination
		case m.Header.Level == unix.IPPROTO_IPV6 && m.Header.Type == unix.IPV6_PKTINFO && len(m.Data) >= unix.SizeofInet6Pktinfo:
			return netip.AddrFrom16([16]byte(m.Data[0:16])).Unmap(), true
		}
	}
	return netip.Addr{}, false
}

func pktinfoSrc(a netip.Addr) []byte {
	if a.Is4() {
		return unix.PktInfo4(&unix.Inet4Pktinfo{Spec_dst: a.As4()})
	}
	return unix.PktInfo6(&unix.Inet6Pktinfo{Addr: a.As16()})
}

func sendHello(ctx context.Context, fromNS string, dst netip.AddrPort, hello []byte) (netip.AddrPort, error) {
	c, err := udpSocket(fromNS, dst, unix.Connect, "connect")
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("dial: %w", err)
	}
	defer c.Close()
	cancel := newCanceler(ctx, c)
	defer cancel.close()
	buf := make([]byte, len(hello)+1)
	wait := 50 * time.Millisecond
	for {
		if _, err := c.Write(hello); err != nil && !isTransient(err) {
			if ctx.Err() != nil {
				return netip.AddrPort{}, ctx.Err()
			}
			return netip.AddrPort{}, fmt.Errorf("send: %w", err)
		}
		if err := cancel.setReadDeadline(time.Now().Add(wait)); err != nil {
			return netip.AddrPort{}, err
		}
		for {
			n, err := c.Read(buf)
			if err == nil && string(buf[:n]) == string(hello) {
				return addrPort(c.LocalAddr()), nil
			}
			if err == nil {
				continue
			}
			if ctx.Err() != nil {
				return netip.AddrPort{}, ctx.Err()
			}
			if errors.Is(err, os.ErrDeadlineExceeded) {
				break
			}
			// Port unreachable: the datagram reached a namespace with nothing on the port.
			return netip.AddrPort{}, fmt.Errorf("receive: %w", err)
		}
		wait = min(2*wait, time.Second)
	}
}
