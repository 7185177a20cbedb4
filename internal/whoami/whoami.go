// Package whoami is the test server that services tests serve from pod
// namespaces: it answers each connection with who it is and whom it saw,
// so a test reads which endpoint a connection reached and whether NAT
// rewrote the client's address on its way.
package whoami

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/labctl/labctl/emulator/probe"
)

// Answer is what a Serve server said: who it is and whom it saw, so a
// test reads which endpoint served a connection and whether NAT rewrote
// the client's address on the way.
type Answer struct {
	Who  string
	Seen netip.Addr
}

// Serve answers every TCP connection to tcpPort and every UDP datagram
// to udpPort in the namespace at nsPath with "<who> <address the client
// came from>", until the test ends.
func Serve(t testing.TB, nsPath, who string, tcpPort, udpPort int) {
	t.Helper()
	ln, err := probe.ListenTCP(nsPath, fmt.Sprintf(":%d", tcpPort))
	if err != nil {
		t.Fatal(err)
	}
	uc, err := probe.ListenUDP(nsPath, fmt.Sprintf(":%d", udpPort))
	if err != nil {
		ln.Close()
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			fmt.Fprintf(c, "%s %s\n", who, c.RemoteAddr().(*net.TCPAddr).AddrPort().Addr().Unmap())
			c.Close()
		}
	})
	wg.Go(func() {
		buf := make([]byte, 64)
		for {
			_, from, err := uc.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			_, _ = uc.WriteToUDPAddrPort(fmt.Appendf(nil, "%s %s\n", who, from.Addr().Unmap()), from)
		}
	})
	t.Cleanup(func() { ln.Close(); uc.Close(); wg.Wait() })
}

// Ask connects (proto "tcp") or sends one datagram from a fresh socket
// ("udp": a new source port, so a new conntrack entry each time) from the
// namespace at nsPath to a Serve server, and reads its answer.
func Ask(nsPath, proto, to string, timeout time.Duration) (Answer, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var c net.Conn
	if proto == "udp" {
		uc, err := probe.DialUDP(nsPath, to)
		if err != nil {
			return Answer{}, err
		}
		c = uc
	} else {
		tc, err := probe.DialTCP(ctx, nsPath, to)
		if err != nil {
			return Answer{}, err
		}
		c = tc
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(timeout))
	if proto == "udp" {
		if _, err := c.Write([]byte("hello\n")); err != nil {
			return Answer{}, err
		}
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return Answer{}, err
	}
	who, seen, ok := strings.Cut(strings.TrimSpace(line), " ")
	if !ok {
		return Answer{}, fmt.Errorf("unexpected answer %q", line)
	}
	ip, err := netip.ParseAddr(seen)
	return Answer{who, ip}, err
}
