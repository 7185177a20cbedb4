package probe

import (
	"context"
	"errors"
	"net/netip"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

func TestPingRefusesBadOptions(t *testing.T) {
	tests := []struct {
		name string
		dst  netip.Addr
		opts PingOptions
		want string
	}{
		{"ipv6", netip.MustParseAddr("fd00::1"), PingOptions{}, "only IPv4"},
		{"negative count", addrB, PingOptions{Count: -1}, "count -1"},
		{"count wraps sequence", addrB, PingOptions{Count: 70000}, "count 70000"},
		{"huge size", addrB, PingOptions{Size: 70000}, "size 70000"},
		{"ttl", addrB, PingOptions{TTL: 256}, "ttl 256"},
		{"ipv6 source", addrB, PingOptions{Source: netip.MustParseAddr("fd00::2")}, "not an IPv4"},
		{"no namespace", addrB, PingOptions{}, `open namespace "/nonexistent/probe"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Ping(t.Context(), "/nonexistent/probe", tt.dst, tt.opts)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Ping() error = %v, want one containing %q", err, tt.want)
			}
		})
	}
}

func TestPing(t *testing.T) {
	lab := newLab(t)
	tests := []struct {
		name string
		ns   string
		dst  netip.Addr
		opts PingOptions
		from netip.Addr // answering host
		ttl  int        // TTL the answers arrive with
	}{
		{"neighbour", lab.a, addrRA, PingOptions{Count: 3}, addrRA, 64},
		{"through a router", lab.a, addrB, PingOptions{Count: 3}, addrB, 63},
		{"own address", lab.a, addrA, PingOptions{}, addrA, 64},
		{"from a source address", lab.b, addrA, PingOptions{Source: addrB}, addrA, 63},
		{"fragmented without DF", lab.a, addrB, PingOptions{Size: 3000}, addrB, 63},
		{"largest DF echo the link takes", lab.a, addrRA, PingOptions{Size: 1400 - 28, DontFragment: true}, addrRA, 64},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := Ping(t.Context(), tt.ns, tt.dst, tt.opts)
			if err != nil {
				t.Fatalf("Ping() error = %v", err)
			}
			if err := res.Err(); err != nil {
				t.Fatalf("result: %v", err)
			}
			want := max(tt.opts.Count, 1)
			if res.Sent != want || res.Received != want || res.Duplicates != 0 || len(res.Echoes) != want {
				t.Fatalf("sent %d received %d duplicates %d echoes %d, want %d, %d, 0, %d",
					res.Sent, res.Received, res.Duplicates, len(res.Echoes), want, want, want)
			}
			for i, e := range res.Echoes {
				if e.Seq != i+1 || e.From != tt.from || e.TTL != tt.ttl || e.RTT <= 0 {
					t.Errorf("echo %d = %+v, want seq %d from %s ttl %d and an RTT", i, e, i+1, tt.from, tt.ttl)
				}
			}
			if got := len(res.RTTs()); got != want {
				t.Errorf("RTTs() has %d entries, want %d", got, want)
			}
		})
	}
}

func TestPingFailures(t *testing.T) {
	lab := newLab(t)
	tests := []struct {
		name  string
		ns    string
		dst   netip.Addr
		opts  PingOptions
		check func(t *testing.T, e Echo)
	}{
		{
			name: "nobody has the address",
			ns:   lab.a, dst: silent,
			opts: PingOptions{Count: 2, Timeout: 200 * time.Millisecond},
			check: func(t *testing.T, e Echo) {
				if !errors.Is(e.Err, ErrNoReply) {
					t.Errorf("echo %d error = %v, want ErrNoReply", e.Seq, e.Err)
				}
			},
		},
		{
			name: "DF echo larger than the link",
			ns:   lab.a, dst: addrRA,
			opts: PingOptions{Size: 1400 - 28 + 1, DontFragment: true},
			check: func(t *testing.T, e Echo) {
				var se *SendError
				if !errors.As(e.Err, &se) || !errors.Is(e.Err, syscall.EMSGSIZE) || se.MTU != 1400 {
					t.Errorf("echo error = %v, want a SendError: message too long with path mtu 1400", e.Err)
				}
			},
		},
		{
			name: "TTL runs out at the router",
			ns:   lab.a, dst: addrB,
			opts: PingOptions{TTL: 1},
			check: func(t *testing.T, e Echo) {
				var ie *ICMPError
				if !errors.As(e.Err, &ie) || ie.Type != icmpTimeExceeded || ie.From != addrRA || e.From != addrRA {
					t.Errorf("echo = %+v, want time exceeded from %s", e, addrRA)
				}
			},
		},
		{
			name: "no route",
			ns:   lab.r, dst: netip.MustParseAddr("10.124.0.1"),
			opts: PingOptions{},
			check: func(t *testing.T, e Echo) {
				if !errors.Is(e.Err, syscall.ENETUNREACH) {
					t.Errorf("echo error = %v, want network unreachable", e.Err)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// A hung ping would end here instead of at its own timeout.
			ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
			defer cancel()
			res, err := Ping(ctx, tt.ns, tt.dst, tt.opts)
			if err != nil {
				t.Fatalf("Ping() error = %v", err)
			}
			if res.Received != 0 || len(res.Echoes) != max(tt.opts.Count, 1) {
				t.Fatalf("received %d of %d echoes, want none of %d", res.Received, len(res.Echoes), max(tt.opts.Count, 1))
			}
			if res.Err() == nil {
				t.Error("result Err() = nil, want an error")
			}
			for _, e := range res.Echoes {
				tt.check(t, e)
			}
		})
	}
}

func TestPingBadSource(t *testing.T) {
	lab := newLab(t)
	_, err := Ping(t.Context(), lab.a, addrRA, PingOptions{Source: addrB})
	if !errors.Is(err, syscall.EADDRNOTAVAIL) {
		t.Fatalf("Ping() from an address of another namespace: error = %v, want EADDRNOTAVAIL", err)
	}
}

// A router that cannot forward a DF echo says so with its next-hop MTU;
// the sender's kernel then remembers that path MTU and refuses the next one.
func TestPingFragmentationNeeded(t *testing.T) {
	lab := newLab(t)
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	// A generous timeout: on a loaded machine the router's answer can take
	// longer than the default second.
	res, err := Ping(ctx, lab.a, addrB, PingOptions{Count: 2, Size: 1300 - 28 + 1, DontFragment: true, Timeout: 3 * time.Second})
	if err != nil {
		t.Fatalf("Ping() error = %v", err)
	}
	if res.Received != 0 || len(res.Echoes) != 2 {
		t.Fatalf("received %d of %d echoes, want none of 2", res.Received, len(res.Echoes))
	}
	var ie *ICMPError
	if first := res.Echoes[0]; !errors.As(first.Err, &ie) || ie.Code != icmpFragNeededCode || ie.From != addrRA {
		t.Errorf("echo 1 error = %v, want fragmentation needed from %s", first.Err, addrRA)
	}
	for _, e := range res.Echoes {
		if mtu, ok := MTU(e.Err); !ok || mtu != 1300 || !errors.Is(e.Err, syscall.EMSGSIZE) {
			t.Errorf("echo %d error = %v, want EMSGSIZE with mtu 1300", e.Seq, e.Err)
		}
	}
}

// A raw ICMP socket sees every echo reply of its namespace: each ping must
// count only its own.
func TestPingParallel(t *testing.T) {
	lab := newLab(t)
	type job struct {
		dst  netip.Addr
		want int
	}
	var jobs []job
	for range 6 {
		jobs = append(jobs, job{addrB, 20}, job{addrRA, 20}, job{silent, 0})
	}
	results := make([]PingResult, len(jobs))
	errs := make([]error, len(jobs))
	var wg sync.WaitGroup
	for i, j := range jobs {
		wg.Go(func() {
			results[i], errs[i] = Ping(t.Context(), lab.a, j.dst, PingOptions{Count: 20, Interval: time.Millisecond, Timeout: 500 * time.Millisecond})
		})
	}
	wg.Wait()
	for i, j := range jobs {
		res := results[i]
		if errs[i] != nil {
			t.Errorf("ping %d to %s: %v", i, j.dst, errs[i])
			continue
		}
		if res.Sent != 20 || res.Received != j.want || res.Duplicates != 0 {
			t.Errorf("ping %d to %s: sent %d received %d duplicates %d, want 20, %d, 0",
				i, j.dst, res.Sent, res.Received, res.Duplicates, j.want)
		}
		for _, e := range res.Echoes {
			if e.Err == nil && e.From != j.dst {
				t.Errorf("ping %d to %s: echo %d answered by %s", i, j.dst, e.Seq, e.From)
			}
		}
	}
}

func TestPingCancel(t *testing.T) {
	lab := newLab(t)
	ctx, cancel := context.WithCancel(t.Context())
	type outcome struct {
		res PingResult
		err error
	}
	done := make(chan outcome, 1)
	go func() {
		res, err := Ping(ctx, lab.a, silent, PingOptions{Count: 1000, Interval: 10 * time.Millisecond})
		done <- outcome{res, err}
	}()
	time.Sleep(100 * time.Millisecond)
	cancel()
	var o outcome
	select {
	case o = <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Ping() still running 5s after its context was canceled")
	}
	if !errors.Is(o.err, context.Canceled) {
		t.Fatalf("Ping() error = %v, want context.Canceled", o.err)
	}
	if n := len(o.res.Echoes); n == 0 || n == 1000 || o.res.Sent != n {
		t.Fatalf("got %d echoes, %d sent; want some but not all sent", n, o.res.Sent)
	}
	if last := o.res.Echoes[len(o.res.Echoes)-1]; !errors.Is(last.Err, context.Canceled) {
		t.Errorf("last echo error = %v, want context.Canceled", last.Err)
	}

	// Already canceled: nothing is sent.
	res, err := Ping(ctx, lab.a, addrRA, PingOptions{})
	if !errors.Is(err, context.Canceled) || res.Sent != 0 {
		t.Errorf("Ping() with a canceled context: sent %d, error %v; want 0 and context.Canceled", res.Sent, err)
	}
}
