package probe

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"time"
)

// ThroughputResult is what one TCP stream carried.
type ThroughputResult struct {
	Bytes    int64
	Duration time.Duration
}

// BitsPerSecond is the goodput the receiver saw.
func (r ThroughputResult) BitsPerSecond() float64 {
	if r.Duration <= 0 {
		return 0
	}
	return float64(r.Bytes) * 8 / r.Duration.Seconds()
}

// Throughput measures one TCP stream from namespace fromNS to a receiver it
// starts in toNS on dst, for d (like `iperf3 -t`), with sockets created in
// their namespaces. The receiver counts bytes from its first to its last
// read, so connection setup does not dilute the rate.
func Throughput(ctx context.Context, fromNS, toNS string, dst netip.AddrPort, d time.Duration) (ThroughputResult, error) {
	ln, err := ListenTCP(toNS, dst.String())
	if err != nil {
		return ThroughputResult{}, err
	}
	defer ln.Close()
	type recv struct {
		res ThroughputResult
		err error
	}
	done := make(chan recv, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			done <- recv{err: err}
			return
		}
		defer c.Close()
		buf := make([]byte, 256<<10)
		var n int64
		var first time.Time
		for {
			k, err := c.Read(buf)
			if k > 0 {
				if first.IsZero() {
					first = time.Now()
				}
				n += int64(k)
			}
			if err != nil {
				if errors.Is(err, io.EOF) {
					err = nil
				}
				done <- recv{ThroughputResult{Bytes: n, Duration: time.Since(first)}, err}
				return
			}
		}
	}()
	c, err := DialTCP(ctx, fromNS, dst.String())
	if err != nil {
		return ThroughputResult{}, err
	}
	buf := make([]byte, 128<<10)
	deadline := time.Now().Add(d)
	_ = c.SetWriteDeadline(deadline)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		if _, err := c.Write(buf); err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				break
			}
			c.Close()
			return ThroughputResult{}, fmt.Errorf("send: %w", err)
		}
	}
	c.CloseWrite()
	select {
	case r := <-done:
		c.Close()
		return r.res, r.err
	case <-ctx.Done():
		c.Close()
		return ThroughputResult{}, ctx.Err()
	}
}
