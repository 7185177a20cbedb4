package probe

import (
	"context"
	"errors"
	"net/netip"
	"syscall"
	"testing"
	"time"
)

func TestCheckUDP(t *testing.T) {
	lab := newLab(t)
	tests := []struct {
		name     string
		from, to string
		dst, src netip.Addr
	}{
		{"across the router", lab.a, lab.b, addrB, addrA},
		{"router address of the far side", lab.a, lab.r, addrRB, addrA},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
			defer cancel()
			dst := netip.AddrPortFrom(tt.dst, uint16(5300+i))
			got, err := CheckUDP(ctx, tt.from, tt.to, dst)
			if err != nil {
				t.Fatalf("CheckUDP() error = %v", err)
			}
			if got.Seen.Addr() != tt.src || got.Seen != got.Local || got.Target != dst {
				t.Fatalf("CheckUDP() = %+v, want %s seen without NAT at %s", got, tt.src, dst)
			}
		})
	}
}

func TestUDPSockets(t *testing.T) {
	lab := newLab(t)
	srv, err := ListenUDP(lab.b, addrB.String()+":0")
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	c, err := DialUDP(lab.a, srv.LocalAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	if err := srv.SetReadDeadline(time.Now().Add(5 * time.Second)); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 16)
	n, from, err := srv.ReadFromUDPAddrPort(buf)
	if err != nil {
		t.Fatal(err)
	}
	if string(buf[:n]) != "hello" || from.Addr().Unmap() != addrA {
		t.Fatalf("server read %q from %s, want \"hello\" from %s", buf[:n], from, addrA)
	}
}

func TestCheckUDPNothingThere(t *testing.T) {
	lab := newLab(t)
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	// Listening in r while sending to b: b answers port unreachable.
	if _, err := CheckUDP(ctx, lab.a, lab.r, netip.AddrPortFrom(addrB, 5399)); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("CheckUDP() to a namespace the address is not in: error = %v, want ECONNREFUSED", err)
	}
}
