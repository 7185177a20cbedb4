// Package probe sends ICMP echoes, TCP and UDP connections and HTTP requests
// from inside a lab's network namespaces, natively in Go, so no ping or curl
// binary is needed on the host.
//
// Every probe creates its socket inside the namespace (a socket belongs to
// the namespace it was born in) and then uses it from ordinary goroutines.
// Namespaces are given as paths, such as netns.Path("pod1").
package probe

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strconv"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/labctl/labctl/emulator/netns"
)

// socketIn creates a non-blocking socket in the namespace at nsPath and
// builds the socket address for ap there too, because an IPv6 zone names an
// interface of that namespace. Everything else done to the socket afterwards
// acts in its namespace regardless of the calling thread.
func socketIn(nsPath string, sotype, proto int, ap netip.AddrPort) (int, unix.Sockaddr, error) {
	fd := -1
	var sa unix.Sockaddr
	err := netns.Do(nsPath, func() error {
		var err error
		if sa, err = sockaddr(ap); err != nil {
			return err
		}
		family := unix.AF_INET
		if ap.Addr().Is6() {
			family = unix.AF_INET6
		}
		fd, err = unix.Socket(family, sotype|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, proto)
		if err != nil {
			return os.NewSyscallError("socket", err)
		}
		return nil
	})
	return fd, sa, err
}

// sockaddr converts ap; it must run inside the namespace when ap has a zone.
func sockaddr(ap netip.AddrPort) (unix.Sockaddr, error) {
	a := ap.Addr()
	if a.Is4() {
		return &unix.SockaddrInet4{Port: int(ap.Port()), Addr: a.As4()}, nil
	}
	sa := &unix.SockaddrInet6{Port: int(ap.Port()), Addr: a.As16()}
	if zone := a.Zone(); zone != "" {
		if n, err := strconv.ParseUint(zone, 10, 32); err == nil {
			sa.ZoneId = uint32(n)
		} else {
			ifi, err := net.InterfaceByName(zone)
			if err != nil {
				return nil, fmt.Errorf("zone %q: %w", zone, err)
			}
			sa.ZoneId = uint32(ifi.Index)
		}
	}
	return sa, nil
}

// parseAddrPort accepts "ip:port" and, for listeners, ":port" (every IPv4
// address). Names are refused: nothing resolves them inside a lab namespace.
func parseAddrPort(addr string, wildcardOK bool) (netip.AddrPort, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return netip.AddrPort{}, err
	}
	p, err := strconv.ParseUint(port, 10, 16)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("port %q is not a number between 0 and 65535", port)
	}
	if host == "" {
		if !wildcardOK {
			return netip.AddrPort{}, fmt.Errorf("address %q has no host", addr)
		}
		return netip.AddrPortFrom(netip.IPv4Unspecified(), uint16(p)), nil
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("host %q is not an IP address (names are not resolved inside namespaces)", host)
	}
	return netip.AddrPortFrom(ip.Unmap(), uint16(p)), nil
}

// addrPort converts a net.Addr from the standard library, which writes IPv4
// addresses in their IPv6-mapped form.
func addrPort(a net.Addr) netip.AddrPort {
	var ap netip.AddrPort
	switch a := a.(type) {
	case *net.TCPAddr:
		ap = a.AddrPort()
	case *net.UDPAddr:
		ap = a.AddrPort()
	default:
		return netip.AddrPort{}
	}
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
}

// longAgo is a deadline in the past: setting it wakes every blocked call.
var longAgo = time.Unix(1, 0)

type deadliner interface {
	SetDeadline(time.Time) error
	SetReadDeadline(time.Time) error
}

// canceler turns context cancellation into a past deadline on a socket, so
// blocked reads and writes return at once instead of at their own deadline.
// Deadlines set through it never undo a cancellation that won the race.
type canceler struct {
	mu       sync.Mutex
	d        deadliner
	canceled bool
	stop     func() bool
}

func newCanceler(ctx context.Context, d deadliner) *canceler {
	c := &canceler{d: d}
	c.stop = context.AfterFunc(ctx, func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		c.canceled = true
		_ = c.d.SetDeadline(longAgo) // fails only once the socket is closed, when nothing waits
	})
	return c
}

// setReadDeadline leaves writes alone: a read deadline that has passed must
// not fail the next send.
func (c *canceler) setReadDeadline(t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.canceled {
		return nil
	}
	return c.d.SetReadDeadline(t)
}

// close stops watching the context; call it before closing the socket.
func (c *canceler) close() { c.stop() }
