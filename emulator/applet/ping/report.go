package ping

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// gatherStatistics counts one echo reply and returns its line, as iputils'
// gather_statistics: complete is false when the caller still ends the line
// (the usual case), true when the line is whole or, with -q, empty.
func (p *pinger) gatherStatistics(icp []byte, seq uint16, ttl int, at time.Time, from [4]byte, wrongSource bool) (line string, complete bool) {
	cc := len(icp)
	p.nreceived++
	p.acknowledge(seq)
	var triptime int64
	if p.timing && cc >= 8+timevalLen {
		sent := time.Unix(int64(binary.NativeEndian.Uint64(icp[8:])), int64(binary.NativeEndian.Uint64(icp[16:]))*1000)
		triptime = at.Sub(sent).Microseconds()
		if triptime < 0 {
			fmt.Fprintf(os.Stderr, "ping: Warning: time of day goes back (%dus), taking countermeasures\n", triptime)
			triptime = max(time.Since(sent).Microseconds(), 0)
		}
		p.tsum += triptime
		p.tsum2 += float64(triptime) * float64(triptime)
		p.tmin = min(p.tmin, triptime)
		p.tmax = max(p.tmax, triptime)
		if p.rtt == 0 {
			p.rtt = triptime * 8
		} else {
			p.rtt += triptime - p.rtt/8
		}
	}
	dup := false
	if p.rcvdTest(seq) {
		p.nrepeats++
		p.nreceived--
		dup = true
	} else {
		p.rcvdSet(seq)
	}
	if p.o.quiet {
		return "", true
	}
	var b strings.Builder
	b.WriteString(p.timestamp())
	fmt.Fprintf(&b, "%d bytes from %s: icmp_seq=%d ttl=%d", cc, p.prAddr(from), seq, ttl)
	if cc < p.o.datalen+8 {
		b.WriteString(" (truncated)\n")
		return b.String(), true
	}
	if p.timing {
		b.WriteString(" time=" + rttText(triptime) + " ms")
	}
	if dup && !p.multicast {
		b.WriteString(" (DUP!)")
	}
	if wrongSource {
		b.WriteString(" (DIFFERENT ADDRESS!)")
	}
	// The payload must come back as sent, after the send time.
	for i := timevalLen; i < p.o.datalen; i++ {
		if got, want := icp[8+i], p.outpack[8+i]; got != want {
			fmt.Fprintf(&b, "\nwrong data byte #%d should be 0x%x but was 0x%x", i, want, got)
			for j := timevalLen; j < p.o.datalen; j++ {
				if j%32 == timevalLen {
					fmt.Fprintf(&b, "\n#%d\t", j)
				}
				fmt.Fprintf(&b, "%x ", icp[8+j])
			}
			break
		}
	}
	return b.String(), false
}

// rttText prints a round trip in µs with as many decimals as iputils.
func rttText(t int64) string {
	switch {
	case t >= 100000-50:
		return fmt.Sprintf("%d", (t+500)/1000)
	case t >= 10000-5:
		return fmt.Sprintf("%d.%01d", (t+50)/1000, ((t+50)%1000)/100)
	case t >= 1000:
		return fmt.Sprintf("%d.%02d", (t+5)/1000, ((t+5)%1000)/10)
	}
	return fmt.Sprintf("%d.%03d", t/1000, t%1000)
}

// finish prints the statistics and returns the exit code (iputils' finish).
func (p *pinger) finish() int {
	var span time.Duration
	if !p.curTime.IsZero() {
		span = p.curTime.Sub(p.startTime)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "\n--- %s ping statistics ---\n", p.hostname)
	fmt.Fprintf(&b, "%d packets transmitted, %d received", p.ntransmitted, p.nreceived)
	if p.nrepeats > 0 {
		fmt.Fprintf(&b, ", +%d duplicates", p.nrepeats)
	}
	if p.nerrors > 0 {
		fmt.Fprintf(&b, ", +%d errors", p.nerrors)
	}
	if p.ntransmitted > 0 {
		loss := float32(float64(p.ntransmitted-p.nreceived) * 100.0 / float64(p.ntransmitted))
		fmt.Fprintf(&b, ", %s%% packet loss, time %dms", cFormatG(float64(loss)), (span.Nanoseconds()+500000)/1000000)
	}
	b.WriteString("\n")
	comma := ""
	if p.nreceived > 0 && p.timing {
		total := p.nreceived + p.nrepeats
		tmavg := p.tsum / total
		var tmvar int64
		if p.tsum < math.MaxInt32 {
			// iputils' order of operations, to round as it does.
			tmvar = int64((p.tsum2 - float64((p.tsum*p.tsum)/total)) / float64(total))
		} else {
			tmvar = int64(p.tsum2/float64(total)) - tmavg*tmavg
		}
		tmdev := llsqrt(tmvar)
		fmt.Fprintf(&b, "rtt min/avg/max/mdev = %d.%03d/%d.%03d/%d.%03d/%d.%03d ms",
			p.tmin/1000, p.tmin%1000, tmavg/1000, tmavg%1000, p.tmax/1000, p.tmax%1000, tmdev/1000, tmdev%1000)
		comma = ", "
	}
	if p.pipesize > 1 {
		fmt.Fprintf(&b, "%spipe %d", comma, p.pipesize)
		comma = ", "
	}
	if p.nreceived > 0 && p.interval == 0 && p.ntransmitted > 1 {
		ipg := span.Microseconds() / (p.ntransmitted - 1)
		fmt.Fprintf(&b, "%sipg/ewma %d.%03d/%d.%03d ms", comma, ipg/1000, ipg%1000, p.rtt/8000, (p.rtt/8)%1000)
	}
	b.WriteString("\n")
	p.print(b.String())
	if p.nreceived == 0 || (p.o.deadline > 0 && p.nreceived < p.o.count) {
		return 1
	}
	return 0
}

// status is the line SIGQUIT prints on stderr while ping runs.
func (p *pinger) status() {
	loss := int64(0)
	if p.ntransmitted > 0 {
		loss = (p.ntransmitted - p.nreceived) * 100 / p.ntransmitted
	}
	s := fmt.Sprintf("\r%d/%d packets, %d%% loss", p.nreceived, p.ntransmitted, loss)
	if p.nreceived > 0 && p.timing {
		tavg := p.tsum / (p.nreceived + p.nrepeats)
		s += fmt.Sprintf(", min/avg/ewma/max = %d.%03d/%d.%03d/%d.%03d/%d.%03d ms",
			p.tmin/1000, p.tmin%1000, tavg/1000, tavg%1000, p.rtt/8000, (p.rtt/8)%1000, p.tmax/1000, p.tmax%1000)
	}
	fmt.Fprintln(os.Stderr, s)
}

// llsqrt is iputils' integer square root (Newton's method), which the
// mdev it prints depends on.
func llsqrt(a int64) int64 {
	prev, x := int64(math.MaxInt64), a
	if x > 0 {
		for x < prev {
			prev = x
			x = (x + a/x) / 2
		}
	}
	return x
}

// cFormatG prints f as C's printf("%g") does: six significant digits,
// trailing zeros dropped.
func cFormatG(f float64) string {
	s := strconv.FormatFloat(f, 'g', 6, 64)
	if strings.ContainsAny(s, "e") {
		mant, exp, _ := strings.Cut(s, "e")
		if strings.Contains(mant, ".") {
			mant = strings.TrimRight(strings.TrimRight(mant, "0"), ".")
		}
		sign := exp[0]
		digits := strings.TrimLeft(exp[1:], "0")
		if len(digits) < 2 {
			digits = strings.Repeat("0", 2-len(digits)) + digits
		}
		return mant + "e" + string(sign) + digits
	}
	if strings.Contains(s, ".") {
		s = strings.TrimRight(strings.TrimRight(s, "0"), ".")
	}
	return s
}

var unreachText = [...]string{
	0:  "Destination Net Unreachable",
	1:  "Destination Host Unreachable",
	2:  "Destination Protocol Unreachable",
	3:  "Destination Port Unreachable",
	4:  "", // frag needed: carries the MTU
	5:  "Source Route Failed",
	6:  "Destination Net Unknown",
	7:  "Destination Host Unknown",
	8:  "Source Host Isolated",
	9:  "Destination Net Prohibited",
	10: "Destination Host Prohibited",
	11: "Destination Net Unreachable for Type of Service",
	12: "Destination Host Unreachable for Type of Service",
	13: "Packet filtered",
	14: "Precedence Violation",
	15: "Precedence Cutoff",
}

// icmpText describes an ICMP message as iputils' pr_icmph, newline
// included. info is the error queue's ee_info (the MTU of "frag needed")
// or the message's second word; icp the message itself when it came as a
// packet (a redirect names its gateway there).
func icmpText(typ, code int, info uint32, icp []byte) string {
	switch typ {
	case icmpEchoReply:
		return "Echo Reply\n"
	case icmpDestUnreach:
		switch {
		case code == 4:
			return fmt.Sprintf("Frag needed and DF set (mtu = %d)\n", info)
		case code >= 0 && code < len(unreachText):
			return unreachText[code] + "\n"
		}
		return fmt.Sprintf("Dest Unreachable, Bad Code: %d\n", code)
	case icmpSourceQuench:
		return "Source Quench\n"
	case icmpRedirect:
		names := [...]string{"Redirect Network", "Redirect Host", "Redirect Type of Service and Network", "Redirect Type of Service and Host"}
		s := fmt.Sprintf("Redirect, Bad Code: %d", code)
		if code >= 0 && code < len(names) {
			s = names[code]
		}
		gw := [4]byte{}
		if icp != nil {
			copy(gw[:], icp[4:8])
		} else {
			binary.BigEndian.PutUint32(gw[:], info)
		}
		return s + "(New nexthop: " + ip4(gw) + ")\n"
	case icmpEcho:
		return "Echo Request\n"
	case icmpTimeExceeded:
		switch code {
		case 0:
			return "Time to live exceeded\n"
		case 1:
			return "Frag reassembly time exceeded\n"
		}
		return fmt.Sprintf("Time exceeded, Bad Code: %d\n", code)
	case icmpParameterProb:
		ptr := info
		if icp != nil {
			ptr = binary.BigEndian.Uint32(icp[4:]) >> 24
		}
		return fmt.Sprintf("Parameter problem: pointer = %d\n", ptr)
	case 13:
		return "Timestamp\n"
	case 14:
		return "Timestamp Reply\n"
	case 15:
		return "Information Request\n"
	case 16:
		return "Information Reply\n"
	case 17:
		return "Address Mask Request\n"
	case 18:
		return "Address Mask Reply\n"
	}
	return fmt.Sprintf("Bad ICMP type: %d\n", typ)
}

// errText is strerror(3)'s text for an errno: Go's with glibc's capital.
func errText(err error) string {
	s := err.Error()
	var errno unix.Errno
	if errors.As(err, &errno) {
		s = errno.Error()
	}
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

// gaiText is gai_strerror(3)'s text for a failed name lookup.
func gaiText(err error) string {
	var dnsErr *net.DNSError
	if errors.As(err, &dnsErr) && (dnsErr.IsTemporary || dnsErr.IsTimeout) && !dnsErr.IsNotFound {
		return "Temporary failure in name resolution"
	}
	return "Name or service not known"
}
