package ping

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"time"

	"golang.org/x/sys/unix"

	"github.com/labctl/labctl/emulator/probe"
)

// Main runs ping with args (without the program name) and returns its exit
// code: 0 when a reply came, 1 when none did, 2 on bad usage or an error.
func Main(args []string) int {
	fs := flag.NewFlagSet("ping", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	count := fs.Int("c", 0, "stop after this many echoes (default: until interrupted)")
	interval := fs.Float64("i", 1, "seconds between echoes")
	wait := fs.Float64("W", 1, "seconds to wait for each reply")
	size := fs.Int("s", 56, "payload bytes")
	ttl := fs.Int("t", 0, "IP time to live")
	quiet := fs.Bool("q", false, "print only the summary")
	deadline := fs.Float64("w", 0, "stop after this many seconds")
	if err := fs.Parse(args); err != nil || fs.NArg() != 1 {
		fmt.Fprintln(os.Stderr, "usage: ping [-c count] [-i interval] [-W timeout] [-w deadline] [-s size] [-t ttl] [-q] destination")
		return 2
	}
	host := fs.Arg(0)
	dst, err := netip.ParseAddr(host)
	if err != nil {
		ips, lerr := net.DefaultResolver.LookupNetIP(context.Background(), "ip4", host)
		if lerr != nil || len(ips) == 0 {
			fmt.Fprintf(os.Stderr, "ping: %s: Name or service not known\n", host)
			return 2
		}
		dst = ips[0]
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, unix.SIGTERM)
	defer stop()
	if *deadline > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, seconds(*deadline))
		defer cancel()
	}
	fmt.Printf("PING %s (%s) %d(%d) bytes of data.\n", host, dst, *size, *size+28)
	start := time.Now()
	var sent, received int
	var rtts []time.Duration
	for seq := 1; *count == 0 || seq <= *count; seq++ {
		if seq > 1 {
			select {
			case <-ctx.Done():
			case <-time.After(seconds(*interval)):
			}
		}
		if ctx.Err() != nil {
			break
		}
		res, err := probe.Ping(ctx, "/proc/self/ns/net", dst, probe.PingOptions{
			Count: 1, Timeout: seconds(*wait), Size: *size, TTL: *ttl,
		})
		if err != nil && len(res.Echoes) == 0 {
			if ctx.Err() != nil {
				break
			}
			fmt.Fprintf(os.Stderr, "ping: %v\n", err)
			return 2
		}
		sent++
		e := res.Echoes[0]
		var ie *probe.ICMPError
		switch {
		case e.Err == nil:
			received++
			rtts = append(rtts, e.RTT)
			if !*quiet {
				fmt.Printf("%d bytes from %s: icmp_seq=%d ttl=%d time=%.3f ms\n", *size+8, e.From, seq, e.TTL, ms(e.RTT))
			}
		case errors.As(e.Err, &ie):
			if !*quiet {
				fmt.Printf("From %s icmp_seq=%d %v\n", ie.From, seq, e.Err)
			}
		case errors.Is(e.Err, probe.ErrNoReply), errors.Is(e.Err, context.Canceled), errors.Is(e.Err, context.DeadlineExceeded):
		default:
			if !*quiet {
				fmt.Printf("ping: icmp_seq=%d %v\n", seq, e.Err)
			}
		}
	}
	loss := 0.0
	if sent > 0 {
		loss = 100 * float64(sent-received) / float64(sent)
	}
	fmt.Printf("\n--- %s ping statistics ---\n%d packets transmitted, %d received, %.0f%% packet loss, time %dms\n",
		host, sent, received, loss, time.Since(start).Milliseconds())
	if len(rtts) > 0 {
		lo, hi, sum, sq := math.Inf(1), 0.0, 0.0, 0.0
		for _, r := range rtts {
			v := ms(r)
			lo, hi, sum, sq = math.Min(lo, v), math.Max(hi, v), sum+v, sq+v*v
		}
		avg := sum / float64(len(rtts))
		fmt.Printf("rtt min/avg/max/mdev = %.3f/%.3f/%.3f/%.3f ms\n", lo, avg, hi, math.Sqrt(math.Max(sq/float64(len(rtts))-avg*avg, 0)))
	}
	if received == 0 {
		return 1
	}
	return 0
}

func seconds(f float64) time.Duration { return time.Duration(f * float64(time.Second)) }

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
