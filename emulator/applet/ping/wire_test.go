package ping

import (
	"context"
	"encoding/binary"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/labctl/labctl/emulator/applet/internal/applettest"
	"github.com/labctl/labctl/emulator/capture"
	"github.com/labctl/labctl/emulator/netns"
	"github.com/labctl/labctl/internal/nstest"
)

// echoOnWire is what one echo request from a looks like at r.
type echoOnWire struct {
	id, seq  uint16
	df, mf   bool
	length   int // IP total length
	fragment bool
}

func (e echoOnWire) String() string {
	if e.fragment {
		return fmt.Sprintf("fragment len %d df %v mf %v", e.length, e.df, e.mf)
	}
	return fmt.Sprintf("echo seq %d len %d df %v mf %v", e.seq, e.length, e.df, e.mf)
}

// wire runs prog with args in a fresh network and returns the echo
// requests r received from a, with the payload of the first whole one.
func wire(t *testing.T, prog string, args ...string) ([]echoOnWire, []byte) {
	t.Helper()
	n := newRoute(t)
	c, err := capture.Open(netns.Path(n.r), "r0", capture.Options{Direction: capture.In})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	res := runIn(t, n.a, prog, args...)
	if res.Code > 1 {
		t.Fatalf("%s %q: exit %d: %s", prog, args, res.Code, res.Stderr)
	}
	var echoes []echoOnWire
	var payload []byte
	// The capture is drained once it stays quiet for a while.
	next := func(quiet time.Duration) (capture.Packet, error) {
		ctx, cancel := context.WithTimeout(context.Background(), quiet)
		defer cancel()
		return c.Next(ctx)
	}
	for p, err := next(time.Second); err == nil; p, err = next(300 * time.Millisecond) {
		if p.IPv4 == nil {
			continue
		}
		e := echoOnWire{df: p.IPv4.DF, mf: p.IPv4.MF, length: int(p.IPv4.Length), fragment: p.IPv4.FragOff != 0}
		if !e.fragment {
			if p.ICMP == nil || p.ICMP.Type != capture.ICMPEchoRequest {
				continue
			}
			e.id, e.seq = p.ICMP.ID, p.ICMP.Seq
			if payload == nil && !p.IPv4.MF {
				off := 14 + int(p.IPv4.HdrLen) + 8
				payload = p.Data[off:min(len(p.Data), off+int(p.IPv4.Length)-int(p.IPv4.HdrLen)-8)]
			}
		}
		echoes = append(echoes, e)
	}
	return echoes, payload
}

// On the wire the applet's echoes are iputils': one ICMP id for the run,
// sequence numbers from 1, DF as the kernel's default sets it (on what
// fits the path MTU, fragments without it once r reported a smaller MTU;
// -M do and -M dont as asked), and iputils' payload: the send time, then
// bytes counting up from 0x10.
func TestWire(t *testing.T) {
	nstest.NeedRoot(t)
	applet := applettest.Link(t, "ping")
	tests := []struct {
		args []string
		want []string
	}{
		{[]string{"-c3", "-i0.2", "10.99.2.2"}, []string{
			"echo seq 1 len 84 df true mf false", "echo seq 2 len 84 df true mf false", "echo seq 3 len 84 df true mf false"}},
		{[]string{"-c2", "-i0.2", "-M", "dont", "10.99.2.2"}, []string{
			"echo seq 1 len 84 df false mf false", "echo seq 2 len 84 df false mf false"}},
		// r answers the first with "frag needed (mtu 1400)"; the kernel
		// then fragments the second itself, without DF.
		{[]string{"-c2", "-i0.3", "-s", "1472", "10.99.2.2"}, []string{
			"echo seq 1 len 1500 df true mf false", "echo seq 2 len 1396 df false mf true", "fragment len 124 df false mf false"}},
		// With -M do the second never leaves: a local error.
		{[]string{"-c2", "-i0.3", "-M", "do", "-s", "1472", "10.99.2.2"}, []string{
			"echo seq 1 len 1500 df true mf false"}},
		{[]string{"-c2", "-i0.2", "-t", "1", "-s", "100", "10.99.2.2"}, []string{
			"echo seq 1 len 128 df true mf false", "echo seq 2 len 128 df true mf false"}},
	}
	real := realPing(t)
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			t.Parallel()
			echoes, payload := wire(t, applet, tt.args...)
			var got []string
			for _, e := range echoes {
				got = append(got, e.String())
				if !e.fragment && e.id != echoes[0].id {
					t.Errorf("echo seq %d has id %d, the first had %d: one id per run", e.seq, e.id, echoes[0].id)
				}
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("applet on the wire:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
			checkPayload(t, payload)
			realEchoes, _ := wire(t, real, tt.args...)
			var want []string
			for _, e := range realEchoes {
				want = append(want, e.String())
			}
			if !slices.Equal(got, want) {
				t.Errorf("applet on the wire:\n%s\niputils:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
			}
		})
	}
}

// checkPayload checks an echo's payload is iputils': the send time (a
// struct timeval), then each byte its own offset.
func checkPayload(t *testing.T, payload []byte) {
	t.Helper()
	if len(payload) < timevalLen {
		t.Fatalf("no whole echo with a payload captured: %d bytes", len(payload))
	}
	sent := time.Unix(int64(binary.NativeEndian.Uint64(payload)), 0)
	if d := time.Since(sent); d < 0 || d > time.Minute {
		t.Errorf("payload starts with %v, not the send time", sent)
	}
	for i := timevalLen; i < len(payload); i++ {
		if payload[i] != byte(i) {
			t.Errorf("payload byte %d is %#x, want %#x as iputils", i, payload[i], byte(i))
			return
		}
	}
}
