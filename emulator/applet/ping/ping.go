package ping

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"os"
	"os/signal"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

const (
	icmpEchoReply     = 0
	icmpDestUnreach   = 3
	icmpSourceQuench  = 4
	icmpRedirect      = 5
	icmpEcho          = 8
	icmpTimeExceeded  = 11
	icmpParameterProb = 12

	minInterval = 10  // ms: iputils' MININTERVAL, the shortest wait it schedules
	maxIPLen    = 60  // longest IP header
	maxICMPLen  = 76  // longest ICMP header with a quoted packet
	timevalLen  = 16  // struct timeval on 64-bit Linux, at the start of the payload
	clockTicks  = 100 // sysconf(_SC_CLK_TCK) on Linux, iputils' HZ
	version     = "ping (labctl applet), modelled on ping from iputils 20221126"
)

// Main runs ping with args (without the program name) and returns its exit
// code as iputils does: 0 when replies came (with -w: as many as -c asked),
// 1 when none did (with -w: fewer than -c) or for a bad number, 2 for other
// errors.
func Main(args []string) int {
	o, err := parseArgs(args)
	if err != nil {
		return report(err)
	}
	switch {
	case o.showUsage:
		fmt.Fprint(os.Stderr, usageText)
		return 2
	case o.version:
		fmt.Println(version)
		return 0
	}
	p, err := newPinger(o, os.Stdout)
	if err != nil {
		return report(err)
	}
	defer p.close()
	return p.run()
}

func report(err error) int {
	var e *exitError
	if !errors.As(err, &e) {
		e = &exitError{code: 2, msg: err.Error()}
	}
	warn("%s", e.msg)
	if e.usage {
		fmt.Fprint(os.Stderr, usageText)
	}
	return e.code
}

// warn prints as glibc's error(3) does for iputils: the program's name as
// it was called ("ping", or "/usr/bin/ping"), a colon and the text.
func warn(format string, a ...any) {
	name := "ping"
	if len(os.Args) > 0 && os.Args[0] != "" {
		name = os.Args[0]
	}
	fmt.Fprintf(os.Stderr, name+": "+format+"\n", a...)
}

const usageText = `
Usage
  ping [options] <destination>

Options (labctl's ping applet; iputils ping's others are refused):
  <destination>      dns name or ip address
  -c <count>         stop after <count> replies
  -D                 print timestamps
  -h                 print help and exit
  -I <interface>     either interface name or address
  -i <interval>      seconds between sending each packet
  -M <pmtud opt>     define mtu discovery, can be one of <do|dont|want>
  -n                 no dns name resolution
  -q                 quiet output
  -s <size>          use <size> as number of data bytes to be sent
  -t <ttl>           define time to live
  -V                 print version and exit
  -w <deadline>      reply wait <deadline> in seconds
  -W <timeout>       time to wait for response

IPv4 options:
  -4                 use IPv4

For more details see ping(8).
`

// stats are the counts the statistics block prints.
type stats struct {
	ntransmitted, nreceived, nrepeats, nerrors int64
	tmin, tmax, tsum                           int64 // µs
	tsum2                                      float64
	rtt                                        int64 // 8 × the moving average, µs
	pipesize                                   int   // most echoes ever in flight at once
	timing                                     bool  // the payload has room for a send time
}

// pinger is one run: iputils' ping_rts, the state its main loop keeps.
type pinger struct {
	o         *options
	out       io.Writer
	fd        int // the raw ICMP socket
	wake      int // eventfd the signal handler writes to
	signals   chan os.Signal
	sigDone   chan struct{} // closed when onSignals returns
	whereto   [4]byte
	hostname  string
	source    [4]byte
	ident     uint16 // as it appears on the wire (big-endian read)
	outpack   []byte // ICMP header and payload of the next echo
	multicast bool
	interval  int // ms
	packet    []byte

	stats
	acked uint16
	rcvd  [65536 / 64]uint64 // which sequence numbers were answered

	startTime, curTime time.Time
	tokens             int64
	oomCount           int
	exitAt             time.Time // the alarm: -w's deadline, or the wait after the last echo
	exitScheduled      bool
	exiting, snapshot  atomic.Bool
}

func newPinger(o *options, out io.Writer) (*pinger, error) {
	p := &pinger{o: o, out: out, fd: -1, wake: -1, interval: int(o.interval / time.Millisecond)}
	p.tmin = math.MaxInt64
	if err := p.resolve(); err != nil {
		return nil, err
	}
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.IPPROTO_ICMP)
	if err != nil {
		return nil, fail(2, "socket: %s", errText(err))
	}
	p.fd = fd
	if err := p.setup(); err != nil {
		p.close()
		return nil, err
	}
	return p, nil
}

// resolve finds the destination as ping4_run does: an IPv4 address in any
// inet_aton form is taken as is (and nothing is looked up for replies),
// a name through the resolver (/etc/hosts, then DNS), which also gives
// the name the header and statistics print.
func (p *pinger) resolve() error {
	p.hostname = p.o.target
	if a, ok := inetAton(p.o.target); ok {
		p.whereto = a
		p.o.numeric = true
		return nil
	}
	ips, err := net.DefaultResolver.LookupIP(context.Background(), "ip4", p.o.target)
	if err != nil || len(ips) == 0 {
		return fail(2, "%s: %s", p.o.target, gaiText(err))
	}
	copy(p.whereto[:], ips[0].To4())
	// iputils names the destination by getaddrinfo's canonical name: the
	// first name of its /etc/hosts line, or where DNS's CNAMEs lead.
	if cname, err := net.DefaultResolver.LookupCNAME(context.Background(), p.o.target); err == nil && cname != "" {
		p.hostname = trimDot(cname)
	}
	return nil
}

func (p *pinger) setup() error {
	if p.o.source != "" {
		p.source, _ = inetAton(p.o.source)
	} else if err := p.findSource(); err != nil {
		return err
	}
	if p.o.device != "" && p.o.source != "" {
		if err := p.bindToDevice(p.fd); err != nil {
			return err
		}
	}
	if p.whereto == [4]byte{} {
		p.whereto = p.source
	}
	if p.whereto[0] >= 224 && p.whereto[0] < 240 {
		p.multicast = true
		if p.o.pmtudisc < 0 {
			p.o.pmtudisc = pmtuDo
		}
	}
	// Without -M the socket keeps the kernel's default (IP_PMTUDISC_WANT
	// unless net.ipv4.ip_no_pmtu_disc): DF set on every echo that fits the
	// path MTU, larger ones fragmented here. That is what iputils sends.
	if p.o.pmtudisc >= 0 {
		if err := unix.SetsockoptInt(p.fd, unix.IPPROTO_IP, unix.IP_MTU_DISCOVER, p.o.pmtudisc); err != nil {
			return fail(2, "IP_MTU_DISCOVER: %s", errText(err))
		}
	}
	if p.o.source != "" {
		if err := unix.Bind(p.fd, &unix.SockaddrInet4{Addr: p.source}); err != nil {
			return fail(2, "bind: %s", errText(err))
		}
	}
	filter := ^uint32(1<<icmpSourceQuench | 1<<icmpDestUnreach | 1<<icmpTimeExceeded |
		1<<icmpParameterProb | 1<<icmpRedirect | 1<<icmpEchoReply)
	if err := unix.SetsockoptInt(p.fd, unix.SOL_RAW, unix.ICMP_FILTER, int(int32(filter))); err != nil {
		warn("WARNING: setsockopt(ICMP_FILTER): %s", errText(err))
	}
	// ICMP errors about our echoes arrive on the error queue, with the
	// router that sent them: that is where "From X icmp_seq=N" comes from.
	if err := unix.SetsockoptInt(p.fd, unix.IPPROTO_IP, unix.IP_RECVERR, 1); err != nil {
		warn("WARNING: your kernel is veeery old. No problems.")
	}
	hold := p.o.datalen + 8
	hold += ((hold + 511) / 512) * (20 + 16 + 64 + 160)
	_ = unix.SetsockoptInt(p.fd, unix.SOL_SOCKET, unix.SO_SNDBUF, hold)
	_ = unix.SetsockoptInt(p.fd, unix.SOL_SOCKET, unix.SO_RCVBUF, max(hold, 65536))
	if p.o.ttlSet {
		if err := unix.SetsockoptInt(p.fd, unix.IPPROTO_IP, unix.IP_MULTICAST_TTL, p.o.ttl); err != nil {
			return fail(2, "cannot set multicast time-to-live: %s", errText(err))
		}
		if err := unix.SetsockoptInt(p.fd, unix.IPPROTO_IP, unix.IP_TTL, p.o.ttl); err != nil {
			return fail(2, "cannot set unicast time-to-live: %s", errText(err))
		}
	}
	p.timing = p.o.datalen >= timevalLen
	p.packet = make([]byte, p.o.datalen+maxIPLen+maxICMPLen)
	_ = unix.SetsockoptInt(p.fd, unix.SOL_SOCKET, unix.SO_TIMESTAMP, 1)
	sndtimeo := unix.Timeval{Sec: 1}
	if p.interval < 1000 {
		sndtimeo = unix.NsecToTimeval(int64(schint(p.interval)) * int64(time.Millisecond))
	}
	_ = unix.SetsockoptTimeval(p.fd, unix.SOL_SOCKET, unix.SO_SNDTIMEO, &sndtimeo)

	p.outpack = make([]byte, 8+p.o.datalen)
	for i := range p.o.datalen {
		p.outpack[8+i] = byte(i)
	}
	var id [2]byte
	_, _ = rand.Read(id[:])
	p.ident = binary.BigEndian.Uint16(id[:])
	p.installFilter()

	wake, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		return fail(2, "eventfd: %s", errText(err))
	}
	p.wake = wake
	p.signals, p.sigDone = make(chan os.Signal, 4), make(chan struct{})
	signal.Notify(p.signals, unix.SIGINT, unix.SIGALRM, unix.SIGQUIT)
	go p.onSignals()

	p.printHeader()
	p.startTime = time.Now()
	if p.o.deadline > 0 {
		p.exitAt = p.startTime.Add(p.o.deadline)
	}
	return nil
}

// findSource asks the kernel which source address it would use, with a UDP
// socket connected towards the destination, as iputils does; a missing
// route fails here ("connect: Network is unreachable").
func (p *pinger) findSource() error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fail(2, "socket: %s", errText(err))
	}
	defer unix.Close(fd)
	if p.o.device != "" {
		if err := p.bindToDevice(fd); err != nil {
			return err
		}
		if err := p.bindToDevice(p.fd); err != nil {
			return err
		}
	}
	if err := unix.Connect(fd, &unix.SockaddrInet4{Port: 1025, Addr: p.whereto}); err != nil {
		if errors.Is(err, unix.EACCES) {
			return fail(2, "Do you want to ping broadcast? Then -b. If not, check your local firewall rules")
		}
		return fail(2, "connect: %s", errText(err))
	}
	sa, err := unix.Getsockname(fd)
	if err != nil {
		return fail(2, "getsockname: %s", errText(err))
	}
	p.source = sa.(*unix.SockaddrInet4).Addr
	if p.o.device != "" && !deviceHas(p.o.device, p.source) {
		warn("Warning: source address might be selected on device other than: %s", p.o.device)
	}
	return nil
}

func (p *pinger) bindToDevice(fd int) error {
	if err := unix.SetsockoptString(fd, unix.SOL_SOCKET, unix.SO_BINDTODEVICE, p.o.device); err != nil {
		return fail(2, "SO_BINDTODEVICE %s: %s", p.o.device, errText(err))
	}
	return nil
}

func deviceHas(device string, addr [4]byte) bool {
	ifi, err := net.InterfaceByName(device)
	if err != nil {
		return false
	}
	addrs, _ := ifi.Addrs()
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && n.IP.To4() != nil && [4]byte(n.IP.To4()) == addr {
			return true
		}
	}
	return false
}

// installFilter drops echo replies that carry another ping's id in the
// kernel, as iputils does once it has seen one (here from the start: the
// same filter, fewer wakeups).
func (p *pinger) installFilter() {
	ret := func(k uint32) unix.SockFilter { return unix.SockFilter{Code: unix.BPF_RET | unix.BPF_K, K: k} }
	prog := []unix.SockFilter{
		{Code: unix.BPF_LDX | unix.BPF_B | unix.BPF_MSH},                                   // X = IP header length
		{Code: unix.BPF_LD | unix.BPF_H | unix.BPF_IND, K: 4},                              // A = echo id
		{Code: unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K, K: uint32(p.ident), Jt: 0, Jf: 1}, // ours?
		ret(0xffffffff),
		{Code: unix.BPF_LD | unix.BPF_B | unix.BPF_IND},                                  // A = ICMP type
		{Code: unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K, K: icmpEchoReply, Jt: 1, Jf: 0}, // an echo reply?
		ret(0xfffffff),
		ret(0),
	}
	fprog := unix.SockFprog{Len: uint16(len(prog)), Filter: &prog[0]}
	if err := unix.SetsockoptSockFprog(p.fd, unix.SOL_SOCKET, unix.SO_ATTACH_FILTER, &fprog); err != nil {
		warn("WARNING: failed to install socket filter: %s", errText(err))
	}
}

func (p *pinger) printHeader() {
	s := fmt.Sprintf("PING %s (%s) ", p.hostname, ip4(p.whereto))
	if p.o.device != "" || p.o.source != "" {
		s += fmt.Sprintf("from %s %s: ", ip4(p.source), p.o.device)
	}
	s += fmt.Sprintf("%d(%d) bytes of data.\n", p.o.datalen, p.o.datalen+8+20)
	p.print(s)
}

// onSignals turns SIGINT and SIGALRM into the end of the run and SIGQUIT
// into a status line, waking the main loop.
func (p *pinger) onSignals() {
	defer close(p.sigDone)
	for sig := range p.signals {
		if sig == unix.SIGQUIT {
			p.snapshot.Store(true)
		} else {
			p.exiting.Store(true)
		}
		var one [8]byte
		binary.NativeEndian.PutUint64(one[:], 1)
		_, _ = unix.Write(p.wake, one[:])
	}
}

func (p *pinger) close() {
	if p.signals != nil {
		signal.Stop(p.signals)
		close(p.signals)
		<-p.sigDone // it writes to wake until then
	}
	if p.fd >= 0 {
		unix.Close(p.fd)
	}
	if p.wake >= 0 {
		unix.Close(p.wake)
	}
}

// run is iputils' main_loop: send on schedule, read what arrives, stop
// when -c replies (or errors) are in, at the deadline, after the final
// wait, or when interrupted.
func (p *pinger) run() int {
	for {
		if p.isExiting() {
			break
		}
		if p.o.count > 0 && p.nreceived+p.nerrors >= p.o.count {
			break
		}
		if p.o.deadline > 0 && p.nerrors > 0 {
			break
		}
		if p.snapshot.Swap(false) {
			p.status()
		}
		var next int
		for {
			next = p.scheduleExit(p.pinger())
			if next > 0 {
				break
			}
		}
		revents := p.wait(next)
		if revents == 0 {
			continue
		}
		recvError := revents&unix.POLLERR != 0
		// Packets that are not ours need no more: the filter that would
		// shed them is installed from the start.
		for {
			n, from, at, err := p.recv()
			if err != nil {
				if (err == unix.EAGAIN && !recvError) || err == unix.EINTR {
					break
				}
				recvError = false
				if r, errno := p.receiveErrorMsg(err); r == 0 && errno != nil {
					warn("recvmsg: %s", errText(errno))
					break
				}
			} else {
				p.parseReply(p.packet[:n], from, at)
			}
			if p.inFlight() == 0 {
				break
			}
		}
	}
	return p.finish()
}

func (p *pinger) isExiting() bool {
	if !p.exitAt.IsZero() && !time.Now().Before(p.exitAt) {
		p.exiting.Store(true)
	}
	return p.exiting.Load()
}

// wait polls the socket for what iputils' main loop would wait: the time
// to the next echo when that is shorter than the interval, else one
// interval (its receive timeout), cut short by the alarm and signals. It
// returns the socket's events, 0 if none.
func (p *pinger) wait(next int) int16 {
	timeout := next
	switch {
	case next >= schint(p.interval):
		timeout = schint(p.interval)
	case next <= 1000/clockTicks:
		// Too short to sleep for: a short nap if a reply is due, else
		// just a look at the socket.
		timeout = 0
		if p.inFlight() > 0 {
			timeout = minInterval
		}
	}
	if !p.exitAt.IsZero() {
		left := int((time.Until(p.exitAt) + time.Millisecond - 1) / time.Millisecond)
		timeout = max(min(timeout, left), 0)
	}
	fds := []unix.PollFd{{Fd: int32(p.fd), Events: unix.POLLIN}, {Fd: int32(p.wake), Events: unix.POLLIN}}
	n, err := unix.Poll(fds, timeout)
	if fds[1].Revents != 0 {
		var b [8]byte
		_, _ = unix.Read(p.wake, b[:])
	}
	if err != nil || n < 1 {
		return 0
	}
	return fds[0].Revents & (unix.POLLIN | unix.POLLERR)
}

// pinger sends the next echo if it is due and returns the ms until the
// one after, as iputils' pinger does with its token bucket (preload 1).
func (p *pinger) pinger() int {
	if p.exiting.Load() || (p.o.count > 0 && p.ntransmitted >= p.o.count && p.o.deadline == 0) {
		return 1000
	}
	interval := int64(p.interval)
	now := time.Now()
	if p.curTime.IsZero() {
		p.curTime = now
		p.tokens = 0
	} else {
		ntokens := now.Sub(p.curTime).Milliseconds()
		if interval == 0 && ntokens < minInterval && p.inFlight() >= 1 {
			return int(minInterval - ntokens)
		}
		ntokens += p.tokens
		ntokens = min(ntokens, interval)
		if ntokens < interval {
			return int(interval - ntokens)
		}
		p.curTime = now
		p.tokens = ntokens - interval
	}
	for {
		err := p.sendProbe()
		if err == nil {
			p.oomCount = 0
			p.advanceNtransmitted()
			return int(interval - p.tokens)
		}
		local := 0
		switch {
		case errors.Is(err, unix.ENOBUFS) || errors.Is(err, unix.ENOMEM):
			// The device queue is full: not sent; slow down, and give up
			// only after the linger time, as iputils does.
			p.tokens = 0
			nores := min(schint(p.interval/2), 500)
			p.oomCount++
			if p.oomCount*nores < int(p.o.linger/time.Millisecond) {
				return nores
			}
		case errors.Is(err, unix.EAGAIN):
			p.tokens += interval
			return minInterval
		default:
			r, errno := p.receiveErrorMsg(err)
			if r <= 0 && errno == nil {
				continue // not our error after all: send again
			}
			if r > 0 {
				err = errno
			} else {
				local = r
			}
		}
		// A hard local error: counted as sent, as iputils does.
		p.advanceNtransmitted()
		if local == 0 && !p.o.quiet {
			warn("sendmsg: %s", errText(err))
		}
		p.tokens = 0
		return schint(p.interval)
	}
}

func (p *pinger) sendProbe() error {
	icp := p.outpack
	seq := uint16(p.ntransmitted + 1)
	icp[0], icp[1] = icmpEcho, 0
	icp[2], icp[3] = 0, 0
	binary.BigEndian.PutUint16(icp[4:], p.ident)
	binary.BigEndian.PutUint16(icp[6:], seq)
	p.rcvdClear(seq)
	if p.timing {
		tv := unix.NsecToTimeval(time.Now().UnixNano())
		binary.NativeEndian.PutUint64(icp[8:], uint64(tv.Sec))
		binary.NativeEndian.PutUint64(icp[16:], uint64(tv.Usec))
	}
	binary.BigEndian.PutUint16(icp[2:], inCksum(icp))
	return unix.Sendto(p.fd, icp, 0, &unix.SockaddrInet4{Addr: p.whereto})
}

// scheduleExit arms the final wait once the last echo is out (-c without
// -w): twice the longest RTT but at least the interval when replies came,
// the linger time (-W) when none did.
func (p *pinger) scheduleExit(next int) int {
	if p.o.count == 0 || p.ntransmitted < p.o.count || p.o.deadline > 0 || p.exitScheduled {
		return next
	}
	p.exitScheduled = true
	var waittime int64 // µs
	if p.nreceived > 0 {
		waittime = max(2*p.tmax, 1000*int64(p.interval))
	} else {
		waittime = int64(p.o.linger/time.Millisecond) * 1000
	}
	if next < 0 || int64(next) < waittime/1000 {
		next = int(waittime / 1000)
	}
	p.exitAt = time.Now().Add(time.Duration(waittime) * time.Microsecond)
	return next
}

// recv reads one packet without waiting: its length, sender and the
// kernel's receive time.
func (p *pinger) recv() (int, [4]byte, time.Time, error) {
	oob := make([]byte, 128)
	n, oobn, _, sa, err := unix.Recvmsg(p.fd, p.packet, oob, unix.MSG_DONTWAIT)
	if err != nil {
		return 0, [4]byte{}, time.Time{}, err
	}
	at := time.Time{}
	if cmsgs, err := unix.ParseSocketControlMessage(oob[:oobn]); err == nil {
		for _, c := range cmsgs {
			if c.Header.Level == unix.SOL_SOCKET && c.Header.Type == unix.SCM_TIMESTAMP && len(c.Data) >= timevalLen {
				sec := int64(binary.NativeEndian.Uint64(c.Data))
				usec := int64(binary.NativeEndian.Uint64(c.Data[8:]))
				at = time.Unix(sec, usec*1000)
			}
		}
	}
	if at.IsZero() {
		at = time.Now()
	}
	var from [4]byte
	if in4, ok := sa.(*unix.SockaddrInet4); ok {
		from = in4.Addr
	}
	return n, from, at, nil
}

// receiveErrorMsg reads one message of the socket's error queue, as
// iputils' ping4_receive_error_msg: an ICMP error about one of our echoes
// ("From 10.0.0.1 icmp_seq=3 Destination Host Unreachable") or a local
// one ("local error: message too long, mtu=1450"). It returns the number
// of network errors, or minus the number of local ones, and the errno
// iputils would leave behind (cause, nil when the message was someone
// else's).
func (p *pinger) receiveErrorMsg(cause error) (int, error) {
	var icmph [8]byte
	oob := make([]byte, 512)
	n, oobn, _, sa, err := unix.Recvmsg(p.fd, icmph[:], oob, unix.MSG_ERRQUEUE|unix.MSG_DONTWAIT)
	if err != nil {
		if err == unix.EAGAIN || err == unix.EINTR {
			return -1, cause
		}
		return 0, cause
	}
	var e *unix.SockExtendedErr
	var offender [4]byte
	cmsgs, _ := unix.ParseSocketControlMessage(oob[:oobn])
	for _, c := range cmsgs {
		if c.Header.Level == unix.IPPROTO_IP && c.Header.Type == unix.IP_RECVERR && len(c.Data) >= 16 {
			e = &unix.SockExtendedErr{
				Errno:  binary.NativeEndian.Uint32(c.Data),
				Origin: c.Data[4], Type: c.Data[5], Code: c.Data[6],
				Info: binary.NativeEndian.Uint32(c.Data[8:]),
			}
			if len(c.Data) >= 16+8 { // the offender, a sockaddr_in
				copy(offender[:], c.Data[16+4:16+8])
			}
		}
	}
	if e == nil {
		return 0, cause
	}
	switch e.Origin {
	case unix.SO_EE_ORIGIN_LOCAL:
		if p.o.quiet {
			return -1, cause
		}
		if unix.Errno(e.Errno) != unix.EMSGSIZE {
			warn("local error: %s", errText(unix.Errno(e.Errno)))
		} else {
			warn("local error: message too long, mtu=%d", e.Info)
		}
		p.nerrors++
		return -1, cause
	case unix.SO_EE_ORIGIN_ICMP:
		target, _ := sa.(*unix.SockaddrInet4)
		if n < 8 || target == nil || target.Addr != p.whereto || icmph[0] != icmpEcho ||
			binary.BigEndian.Uint16(icmph[4:]) != p.ident {
			return 0, nil // not ours, not an error at all
		}
		seq := binary.BigEndian.Uint16(icmph[6:])
		p.acknowledge(seq)
		// From now on ICMP errors come only this way: the raw socket stops
		// receiving them as packets too.
		filter := ^uint32(1<<icmpSourceQuench | 1<<icmpRedirect | 1<<icmpEchoReply)
		_ = unix.SetsockoptInt(p.fd, unix.SOL_RAW, unix.ICMP_FILTER, int(int32(filter)))
		p.nerrors++
		if p.o.quiet {
			return 1, cause
		}
		p.print(p.timestamp() + fmt.Sprintf("From %s icmp_seq=%d ", p.prAddr(offender), seq) +
			icmpText(int(e.Type), int(e.Code), e.Info, nil))
		return 1, cause
	}
	return 0, cause
}

// parseReply handles one packet of the raw socket and reports whether it
// was none of ours (ping4_parse_reply).
func (p *pinger) parseReply(buf []byte, from [4]byte, at time.Time) bool {
	if len(buf) < 20 {
		return true
	}
	hlen := int(buf[0]&0x0f) * 4
	if len(buf) < hlen+8 || hlen < 20 {
		return true
	}
	ttl := int(buf[8])
	icp := buf[hlen:]
	switch icp[0] {
	case icmpEchoReply:
		if binary.BigEndian.Uint16(icp[4:]) != p.ident {
			return true
		}
		wrongSource := !p.multicast && from != p.whereto
		line, complete := p.gatherStatistics(icp, binary.BigEndian.Uint16(icp[6:]), ttl, at, from, wrongSource)
		if !complete {
			line += "\n"
		}
		p.print(line)
		return false
	case icmpSourceQuench, icmpRedirect, icmpDestUnreach, icmpTimeExceeded, icmpParameterProb:
		if len(icp) < 8+20+8 {
			return true
		}
		inner := icp[8:]
		ihl := int(inner[0]&0x0f) * 4
		if len(icp) < 8+ihl+8 {
			return true
		}
		icp1 := inner[ihl:]
		if icp1[0] != icmpEcho || [4]byte(inner[16:20]) != p.whereto || binary.BigEndian.Uint16(icp1[4:]) != p.ident {
			return true
		}
		seq := binary.BigEndian.Uint16(icp1[6:])
		if icp[0] != icmpRedirect && icp[0] != icmpSourceQuench {
			// Reported from the error queue, where the kernel put it too.
			p.acknowledge(seq)
			return false
		}
		if p.o.quiet {
			return true
		}
		s := p.timestamp() + fmt.Sprintf("From %s: icmp_seq=%d ", p.prAddr(from), seq)
		if inCksum(icp) != 0 {
			s += "(BAD CHECKSUM)"
		}
		p.print(s + icmpText(int(icp[0]), int(icp[1]), binary.BigEndian.Uint32(icp[4:]), icp))
		return true
	case icmpEcho:
		return true // our own request, when pinging ourselves
	}
	return false
}

func (p *pinger) print(s string) { _, _ = io.WriteString(p.out, s) }

// timestamp is -D's "[seconds.micros] " prefix.
func (p *pinger) timestamp() string {
	if !p.o.stamps {
		return ""
	}
	now := time.Now()
	return fmt.Sprintf("[%d.%06d] ", now.Unix(), now.Nanosecond()/1000)
}

// prAddr names an address as iputils' pr_addr: the number alone with -n
// (or a numeric destination), else "name (number)", the name being the
// number again when the reverse lookup finds none.
func (p *pinger) prAddr(a [4]byte) string {
	s := ip4(a)
	if p.o.numeric || p.exiting.Load() {
		return s
	}
	name := s
	if names, err := net.DefaultResolver.LookupAddr(context.Background(), s); err == nil && len(names) > 0 {
		name = trimDot(names[0])
	}
	return name + " (" + s + ")"
}

func (p *pinger) advanceNtransmitted() {
	p.ntransmitted++
	// Forget what was acknowledged when the 16-bit sequence wraps.
	if uint16(p.ntransmitted)-p.acked > 0x7fff {
		p.acked = uint16(p.ntransmitted) + 1
	}
}

func (p *pinger) acknowledge(seq uint16) {
	diff := uint16(p.ntransmitted) - seq
	if diff <= 0x7fff {
		if int(diff)+1 > p.pipesize {
			p.pipesize = int(diff) + 1
		}
		if int16(seq-p.acked) > 0 || uint16(p.ntransmitted)-p.acked > 0x7fff {
			p.acked = seq
		}
	}
}

func (p *pinger) inFlight() int64 {
	diff := uint16(p.ntransmitted) - p.acked
	if diff <= 0x7fff {
		return int64(diff)
	}
	return p.ntransmitted - p.nreceived - p.nerrors
}

func (p *pinger) rcvdSet(seq uint16)       { p.rcvd[seq/64] |= 1 << (seq % 64) }
func (p *pinger) rcvdClear(seq uint16)     { p.rcvd[seq/64] &^= 1 << (seq % 64) }
func (p *pinger) rcvdTest(seq uint16) bool { return p.rcvd[seq/64]&(1<<(seq%64)) != 0 }

// schint is iputils' SCHINT: no wait shorter than MININTERVAL.
func schint(ms int) int { return max(ms, minInterval) }

// inCksum is the Internet checksum (RFC 1071) of b.
func inCksum(b []byte) uint16 {
	var sum uint32
	n := len(b) &^ 1
	for i := 0; i < n; i += 2 {
		sum += uint32(binary.BigEndian.Uint16(b[i:]))
	}
	if len(b)%2 == 1 {
		sum += uint32(b[len(b)-1]) << 8
	}
	sum = sum>>16 + sum&0xffff
	sum += sum >> 16
	return ^uint16(sum)
}

func ip4(a [4]byte) string { return net.IP(a[:]).String() }

func trimDot(s string) string {
	if len(s) > 1 && s[len(s)-1] == '.' {
		return s[:len(s)-1]
	}
	return s
}
