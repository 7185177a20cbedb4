package probe

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// ListenTCP listens on addr, "ip:port" or ":port" for every IPv4 address, in
// the namespace at nsPath; port 0 picks a free port (see Addr). Accepted
// connections belong to that namespace too.
func ListenTCP(nsPath, addr string) (*net.TCPListener, error) {
	ap, err := parseAddrPort(addr, true)
	if err != nil {
		return nil, fmt.Errorf("listen tcp %q: %w", addr, err)
	}
	ln, err := listenTCP(nsPath, ap)
	if err != nil {
		return nil, fmt.Errorf("listen tcp %s: %w", ap, err)
	}
	return ln, nil
}

func listenTCP(nsPath string, ap netip.AddrPort) (*net.TCPListener, error) {
	fd, sa, err := socketIn(nsPath, unix.SOCK_STREAM, 0, ap)
	if err != nil {
		return nil, err
	}
	f := os.NewFile(uintptr(fd), "tcp")
	defer f.Close() // net.FileListener works on a duplicate
	// As net.Listen does, so a port stays reusable while old connections linger in TIME_WAIT.
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1); err != nil {
		return nil, os.NewSyscallError("setsockopt", err)
	}
	if err := bindRetry(fd, sa); err != nil {
		return nil, os.NewSyscallError("bind", err)
	}
	if err := unix.Listen(fd, 4096); err != nil {
		return nil, os.NewSyscallError("listen", err)
	}
	ln, err := net.FileListener(f)
	if err != nil {
		return nil, err
	}
	return ln.(*net.TCPListener), nil
}

// bindRetry binds, waiting up to half a second while the port is in use.
// A listener this process just closed can stay open a moment longer: a
// child another goroutine is forking holds a copy of every descriptor
// until it executes its program, close-on-exec or not. Checks one after
// the other on the same port met exactly that.
func bindRetry(fd int, sa unix.Sockaddr) error {
	deadline := time.Now().Add(500 * time.Millisecond)
	for {
		err := unix.Bind(fd, sa)
		if !errors.Is(err, unix.EADDRINUSE) || time.Now().After(deadline) {
			return err
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// DialTCP connects from the namespace at nsPath to addr, "ip:port".
//
// The socket is made by hand rather than by net.Dialer: the dialer may race
// addresses on goroutines of its own, which would create sockets outside the
// namespace.
func DialTCP(ctx context.Context, nsPath, addr string) (*net.TCPConn, error) {
	ap, err := parseAddrPort(addr, false)
	if err != nil {
		return nil, fmt.Errorf("dial tcp %q: %w", addr, err)
	}
	c, err := dialTCP(ctx, nsPath, ap)
	if err != nil {
		return nil, fmt.Errorf("dial tcp %s: %w", ap, err)
	}
	return c, nil
}

func dialTCP(ctx context.Context, nsPath string, ap netip.AddrPort) (*net.TCPConn, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	fd, sa, err := socketIn(nsPath, unix.SOCK_STREAM, 0, ap)
	if err != nil {
		return nil, err
	}
	cerr := unix.Connect(fd, sa)
	// Wrapped only after connect: registering with the poller first would
	// report the unconnected socket as writable.
	f := os.NewFile(uintptr(fd), "tcp")
	defer f.Close() // net.FileConn works on a duplicate
	switch cerr {
	case nil, unix.EISCONN:
	case unix.EINPROGRESS, unix.EALREADY, unix.EINTR:
		if err := waitConnected(ctx, f); err != nil {
			return nil, err
		}
	default:
		return nil, os.NewSyscallError("connect", cerr)
	}
	c, err := net.FileConn(f)
	if err != nil {
		return nil, err
	}
	return c.(*net.TCPConn), nil
}

// waitConnected waits for a non-blocking connect to finish, the way the net
// package does: writable, then SO_ERROR says how it went.
func waitConnected(ctx context.Context, f *os.File) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	cancel := newCanceler(ctx, f)
	defer cancel.close()
	var cerr error
	err = rc.Write(func(fd uintptr) bool {
		n, err := unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_ERROR)
		if err != nil {
			cerr = os.NewSyscallError("getsockopt", err)
			return true
		}
		switch e := unix.Errno(n); e {
		case unix.EINPROGRESS, unix.EALREADY, unix.EINTR:
			return false
		case 0:
			// Zero also while the handshake is under way; only a peer name proves it done.
			_, err := unix.Getpeername(int(fd))
			return err == nil
		default:
			cerr = os.NewSyscallError("connect", e)
			return true
		}
	})
	if errors.Is(err, os.ErrDeadlineExceeded) && ctx.Err() != nil {
		return ctx.Err()
	}
	if err != nil {
		return err
	}
	return cerr
}

// ConnCheck is what the two ends of a checked connection saw of each other.
// Comparing them shows NAT on the path: with none, Seen equals Local.
type ConnCheck struct {
	Local  netip.AddrPort // the dialing socket's own address: the source before any NAT
	Seen   netip.AddrPort // the peer address the listener saw: the source after any NAT
	Target netip.AddrPort // the listener's address the connection arrived at: the destination after any DNAT
}

// SourceNAT reports whether the source address was rewritten on the way.
func (c ConnCheck) SourceNAT() bool { return c.Local.Addr() != c.Seen.Addr() }

// CheckTCP proves TCP works from namespace fromNS to dst: it listens in toNS
// on dst's port, connects from fromNS to dst, swaps a random line both ways
// and reports the addresses either end saw.
//
// The listener takes every address of toNS, so a check through a service
// address that is DNATed to toNS on the same port arrives too. The port must
// be free in toNS. ctx bounds the whole check: give it a deadline, as a
// blackholed SYN is otherwise retried for minutes.
func CheckTCP(ctx context.Context, fromNS, toNS string, dst netip.AddrPort) (ConnCheck, error) {
	dst = netip.AddrPortFrom(dst.Addr().Unmap(), dst.Port())
	cc, err := checkTCP(ctx, fromNS, toNS, dst)
	if err != nil {
		return ConnCheck{}, fmt.Errorf("check tcp %s: %w", dst, err)
	}
	return cc, nil
}

func checkTCP(ctx context.Context, fromNS, toNS string, dst netip.AddrPort) (ConnCheck, error) {
	hello := newHello()
	ln, err := listenTCP(toNS, wildcard(dst))
	if err != nil {
		return ConnCheck{}, fmt.Errorf("listen: %w", err)
	}
	defer ln.Close()

	sctx, stop := context.WithCancel(ctx)
	defer stop()
	context.AfterFunc(sctx, func() { ln.Close() })
	done := make(chan ConnCheck, 1)
	go func() { done <- serveHello(sctx, ln, hello) }()

	local, err := dialHello(ctx, fromNS, dst, hello)
	stop() // the listener has answered if the dial worked; otherwise this unblocks it
	seen := <-done
	if err != nil {
		return ConnCheck{}, err
	}
	if !seen.Seen.IsValid() {
		// An echo server elsewhere answered: the connection never reached toNS.
		return ConnCheck{}, errors.New("answered by a listener outside the target namespace")
	}
	seen.Local = local
	return seen, nil
}

// wildcard is the any-address of dst's family, at dst's port.
func wildcard(dst netip.AddrPort) netip.AddrPort {
	if dst.Addr().Is6() {
		return netip.AddrPortFrom(netip.IPv6Unspecified(), dst.Port())
	}
	return netip.AddrPortFrom(netip.IPv4Unspecified(), dst.Port())
}

// newHello is the line a check sends; it is random so a stray connection to
// the listener is not taken for ours.
func newHello() []byte {
	var b [16]byte
	_, _ = rand.Read(b[:]) // never fails on Linux
	return []byte("labctl-probe " + hex.EncodeToString(b[:]) + "\n")
}

// serveHello answers the first connection that says hello and reports what
// it saw; it returns the zero value when the context ends first.
func serveHello(ctx context.Context, ln *net.TCPListener, hello []byte) ConnCheck {
	for {
		c, err := ln.AcceptTCP()
		if err != nil {
			return ConnCheck{}
		}
		cc, ok := answerHello(ctx, c, hello)
		if ok {
			return cc
		}
	}
}

func answerHello(ctx context.Context, c *net.TCPConn, hello []byte) (ConnCheck, bool) {
	defer c.Close()
	cancel := newCanceler(ctx, c)
	defer cancel.close()
	buf := make([]byte, len(hello))
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != string(hello) {
		return ConnCheck{}, false
	}
	cc := ConnCheck{Seen: addrPort(c.RemoteAddr()), Target: addrPort(c.LocalAddr())}
	// The dialer only succeeds once it reads this, so cc is reported either way.
	_, _ = c.Write(hello)
	return cc, true
}

func dialHello(ctx context.Context, fromNS string, dst netip.AddrPort, hello []byte) (netip.AddrPort, error) {
	c, err := dialTCP(ctx, fromNS, dst)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("dial: %w", err)
	}
	defer c.Close()
	cancel := newCanceler(ctx, c)
	defer cancel.close()
	fail := func(what string, err error) (netip.AddrPort, error) {
		if ctx.Err() != nil {
			err = ctx.Err()
		}
		return netip.AddrPort{}, fmt.Errorf("%s: %w", what, err)
	}
	if _, err := c.Write(hello); err != nil {
		return fail("send", err)
	}
	buf := make([]byte, len(hello))
	if _, err := io.ReadFull(c, buf); err != nil {
		return fail("receive", err)
	}
	if string(buf) != string(hello) {
		return netip.AddrPort{}, fmt.Errorf("receive: got %q, want the line sent", buf)
	}
	return addrPort(c.LocalAddr()), nil
}
