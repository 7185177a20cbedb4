package probe

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestAddressParsing(t *testing.T) {
	tests := []struct {
		name string
		call func() error
		want string
	}{
		{"dial a name", func() error { _, err := DialTCP(t.Context(), "/nonexistent", "example.com:80"); return err }, "not an IP address"},
		{"dial without port", func() error { _, err := DialTCP(t.Context(), "/nonexistent", "10.0.0.1"); return err }, "missing port"},
		{"dial without host", func() error { _, err := DialTCP(t.Context(), "/nonexistent", ":80"); return err }, "has no host"},
		{"listen on a bad port", func() error { _, err := ListenTCP("/nonexistent", ":http"); return err }, `port "http"`},
		{"udp dial a name", func() error { _, err := DialUDP("/nonexistent", "dns:53"); return err }, "not an IP address"},
		{"listen in no namespace", func() error { _, err := ListenTCP("/nonexistent", ":80"); return err }, `open namespace "/nonexistent"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.call(); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error = %v, want one containing %q", err, tt.want)
			}
		})
	}
}

func TestCheckTCP(t *testing.T) {
	lab := newLab(t)
	tests := []struct {
		name     string
		from, to string
		dst      netip.Addr
		src      netip.Addr // the dialer's address, which the listener must see
	}{
		{"across the router", lab.a, lab.b, addrB, addrA},
		{"back again", lab.b, lab.a, addrA, addrB},
		{"neighbours", lab.r, lab.b, addrB, addrRB},
		{"router address of the far side", lab.a, lab.r, addrRB, addrA},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
			defer cancel()
			dst := netip.AddrPortFrom(tt.dst, uint16(8080+i))
			got, err := CheckTCP(ctx, tt.from, tt.to, dst)
			if err != nil {
				t.Fatalf("CheckTCP() error = %v", err)
			}
			if got.Seen.Addr() != tt.src || got.Seen != got.Local || got.Target != dst || got.SourceNAT() {
				t.Fatalf("CheckTCP() = %+v, want %s seen without NAT at %s", got, tt.src, dst)
			}
		})
	}
}

func TestCheckTCPFailures(t *testing.T) {
	lab := newLab(t)
	busy, err := ListenTCP(lab.b, ":9000")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()

	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if _, err := CheckTCP(ctx, lab.a, lab.b, netip.AddrPortFrom(addrB, 9000)); !errors.Is(err, syscall.EADDRINUSE) {
		t.Errorf("CheckTCP() on a busy port: error = %v, want EADDRINUSE", err)
	}
	// The listener is in r, so a's connection to b finds nothing there.
	if _, err := CheckTCP(ctx, lab.a, lab.r, netip.AddrPortFrom(addrB, 9001)); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("CheckTCP() to a namespace the address is not in: error = %v, want ECONNREFUSED", err)
	}
	short, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	if _, err := CheckTCP(short, lab.a, lab.b, netip.AddrPortFrom(silent, 9002)); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("CheckTCP() to an address nobody has: error = %v, want context.DeadlineExceeded", err)
	}
}

// Sockets are born in the namespace asked for: a listener can bind an
// address only where the address exists, and the far end sees the right peer.
func TestTCPSocketsLiveInTheirNamespace(t *testing.T) {
	lab := newLab(t)
	if ln, err := ListenTCP(lab.a, addrB.String()+":0"); !errors.Is(err, syscall.EADDRNOTAVAIL) {
		if err == nil {
			ln.Close()
		}
		t.Fatalf("ListenTCP() in a on b's address: error = %v, want EADDRNOTAVAIL", err)
	}
	ln, err := ListenTCP(lab.b, addrB.String()+":0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan string, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			accepted <- err.Error()
			return
		}
		defer c.Close()
		fmt.Fprintf(c, "you are %s", addrPort(c.RemoteAddr()).Addr())
		accepted <- ""
	}()
	c, err := DialTCP(t.Context(), lab.a, ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	got, err := io.ReadAll(c)
	if err != nil {
		t.Fatal(err)
	}
	if msg := <-accepted; msg != "" {
		t.Fatal(msg)
	}
	if want := "you are " + addrA.String(); string(got) != want {
		t.Fatalf("read %q, want %q", got, want)
	}
}

func TestDialTCPFailures(t *testing.T) {
	lab := newLab(t)
	tests := []struct {
		name    string
		addr    string
		timeout time.Duration
		want    error
	}{
		{"nothing listens", addrB.String() + ":81", 5 * time.Second, syscall.ECONNREFUSED},
		{"nobody answers", silent.String() + ":80", 200 * time.Millisecond, context.DeadlineExceeded},
		{"no route", "10.124.0.1:80", 5 * time.Second, syscall.ENETUNREACH},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), tt.timeout)
			defer cancel()
			ns := lab.a
			if tt.name == "no route" {
				ns = lab.r
			}
			c, err := DialTCP(ctx, ns, tt.addr)
			if err == nil {
				c.Close()
			}
			if !errors.Is(err, tt.want) {
				t.Fatalf("DialTCP() error = %v, want %v", err, tt.want)
			}
		})
	}
}
