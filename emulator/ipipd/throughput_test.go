package ipipd

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	"github.com/labctl/labctl/emulator/probe"
)

// The measurement is one stream for 5 s on an idle machine:
//
//	go test -run TestThroughput -ipipd.stream=5s -v ./emulator/ipipd
//
// By default the test streams briefly: enough to push a few hundred MiB
// through segmentation and coalescing, quick enough for `make test`.
var streamFor = flag.Duration("ipipd.stream", time.Second, "how long TestThroughput streams per mode")

// TestThroughput measures one TCP stream from pod1 to pod2 through both
// datapaths and logs Gbit/s, with and without TUN offloads and receive GRO. It asserts
// nothing about the speed (timings are never asserted in unit tests), only
// that the stream arrives.
func TestThroughput(t *testing.T) {
	if testing.Short() {
		t.Skip("streams for seconds")
	}
	for _, tc := range []struct {
		name string
		cfg  Config
	}{
		{"offload", Config{}},
		{"offload-nogro", Config{NoGRO: true}},
		{"plain", Config{NoOffload: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := newLab(t, labOptions{})
			l.startBoth(tc.cfg)
			gbps, bytes := stream(t, l.pod1, l.pod2, pod2IP, *streamFor)
			if bytes == 0 {
				t.Fatal("nothing arrived")
			}
			s1, s2 := l.dp1.Stats(), l.dp2.Stats()
			t.Logf("%s: one TCP stream pod1 -> pod2 for %v: %.2f Gbit/s (%d MiB)", tc.name, *streamFor, gbps, bytes>>20)
			t.Logf("node1: encap %d pkts in %d TUN reads, %d sendmmsg; decap %d pkts in %d recvmmsg, %d TUN writes; drops %+v",
				s1.EncapPackets, s1.TUNReads, s1.SendCalls, s1.DecapPackets, s1.RecvCalls, s1.TUNWrites, s1.Drops)
			t.Logf("node2: encap %d pkts in %d TUN reads, %d sendmmsg; decap %d pkts in %d recvmmsg, %d TUN writes; drops %+v",
				s2.EncapPackets, s2.TUNReads, s2.SendCalls, s2.DecapPackets, s2.RecvCalls, s2.TUNWrites, s2.Drops)
		})
	}
}

// stream sends one TCP stream from the namespace fromNS to dst:5201 in
// toNS for d and returns the goodput the receiver saw.
func stream(t testing.TB, fromNS, toNS string, dst netip.Addr, d time.Duration) (gbps float64, n int64) {
	t.Helper()
	gbps, n, err := streamOn(fromNS, toNS, netip.AddrPortFrom(dst, 5201), d)
	if err != nil {
		t.Fatal(err)
	}
	return gbps, n
}

// streamOn is stream to any port, safe to call from any goroutine.
func streamOn(fromNS, toNS string, dst netip.AddrPort, d time.Duration) (gbps float64, n int64, err error) {
	ln, err := probe.ListenTCP(toNS, fmt.Sprintf(":%d", dst.Port()))
	if err != nil {
		return 0, 0, err
	}
	defer ln.Close()
	var received atomic.Int64
	var start, end atomic.Int64
	done := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			done <- err
			return
		}
		defer c.Close()
		buf := make([]byte, 1<<20)
		for {
			k, err := c.Read(buf)
			if k > 0 && received.Add(int64(k)) == int64(k) {
				start.Store(time.Now().UnixNano())
			}
			if err != nil {
				end.Store(time.Now().UnixNano())
				if err == io.EOF {
					err = nil
				}
				done <- err
				return
			}
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := probe.DialTCP(ctx, fromNS, dst.String())
	if err != nil {
		return 0, 0, err
	}
	buf := make([]byte, 256<<10)
	stop := time.Now().Add(d)
	for time.Now().Before(stop) {
		if _, err := c.Write(buf); err != nil {
			c.Close()
			return 0, 0, fmt.Errorf("write: %w", err)
		}
	}
	c.Close()
	select {
	case err := <-done:
		if err != nil {
			return 0, 0, fmt.Errorf("receive: %w", err)
		}
	case <-time.After(10 * time.Second):
		return 0, 0, errors.New("receiver did not finish")
	}
	n = received.Load()
	secs := float64(end.Load()-start.Load()) / 1e9
	return float64(n) * 8 / secs / 1e9, n, nil
}

// BenchmarkTCPStream reports the Gbit/s of one TCP stream pod1 -> pod2,
// streaming one second per iteration.
func BenchmarkTCPStream(b *testing.B) {
	for _, tc := range []struct {
		name string
		cfg  Config
	}{
		{"offload", Config{}},
		{"offload-nogro", Config{NoGRO: true}},
		{"plain", Config{NoOffload: true}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			l := newLab(b, labOptions{})
			l.startBoth(tc.cfg)
			var sum float64
			n := 0
			for b.Loop() {
				gbps, _ := stream(b, l.pod1, l.pod2, pod2IP, time.Second)
				sum += gbps
				n++
			}
			b.ReportMetric(sum/float64(n), "Gbit/s")
		})
	}
}
