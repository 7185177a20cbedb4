package probe

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// PingOptions tune Ping; the zero value sends one 56-byte echo and waits a
// second for it.
type PingOptions struct {
	Count    int           // echoes to send; default 1
	Interval time.Duration // between sends; default 10ms, since lab links are local
	Timeout  time.Duration // how long each echo waits for its answer; default 1s
	Size     int           // ICMP payload bytes, as ping -s; default 56 (84-byte packets)
	// DontFragment sets DF and forbids local fragmentation (IP_PMTUDISC_DO),
	// so an echo too large for the path fails with an MTU instead of being
	// split. Without it echoes go out without DF and may be fragmented.
	DontFragment bool
	TTL          int        // IP TTL of the requests; default: the namespace's default (64)
	Source       netip.Addr // source address to send from; default: chosen by routing
}

// PingResult is the outcome of every echo Ping sent.
type PingResult struct {
	Dst netip.Addr
	// ID is the ICMP identifier of the echoes, so that a capture can tell
	// them from other pings' (labctl trace follows them this way).
	ID       uint16
	Sent     int // echo requests the kernel accepted
	Received int // echoes answered by an echo reply
	// Duplicates counts extra replies to an echo already answered, as a
	// switching loop or a broadcast address produces.
	Duplicates int
	Echoes     []Echo // one per echo attempted, in sequence order
}

// Echo is the fate of one echo request.
type Echo struct {
	Seq  int
	From netip.Addr    // who answered: the replying host, or the router that sent an ICMP error
	TTL  int           // TTL of the answer as it arrived: 64 minus the hops taken, for Linux hosts
	RTT  time.Duration // from sending to the answer
	// Err is nil for an echo reply. Otherwise it is an *ICMPError, a
	// *SendError, an error wrapping ErrNoReply, or the context's error when
	// Ping was interrupted while the echo waited.
	Err error
}

// ErrNoReply says an echo got no answer within its timeout.
var ErrNoReply = errors.New("no reply")

// SendError says the namespace's own kernel refused to send an echo: there
// is no route, a firewall rule rejected it, or it is larger than the path
// MTU and DontFragment was set.
type SendError struct {
	Err error // the errno from sendto, such as syscall.EMSGSIZE
	MTU int   // the path MTU the kernel enforced, set with EMSGSIZE when known
}

func (e *SendError) Error() string {
	if e.MTU > 0 {
		return fmt.Sprintf("send: %v (path mtu %d)", e.Err, e.MTU)
	}
	return "send: " + e.Err.Error()
}

func (e *SendError) Unwrap() error { return e.Err }

// MTU reports the MTU named by an echo's error: the next-hop MTU of a
// "fragmentation needed" message or the path MTU the local kernel enforced.
func MTU(err error) (int, bool) {
	var ie *ICMPError
	if errors.As(err, &ie) && ie.MTU > 0 {
		return ie.MTU, true
	}
	var se *SendError
	if errors.As(err, &se) && se.MTU > 0 {
		return se.MTU, true
	}
	return 0, false
}

// RTTs lists the round-trip times of the answered echoes.
func (r PingResult) RTTs() []time.Duration {
	var rtts []time.Duration
	for _, e := range r.Echoes {
		if e.Err == nil {
			rtts = append(rtts, e.RTT)
		}
	}
	return rtts
}

// Err is nil when every echo got a reply; otherwise it says how many did not
// and why the first of them failed. Like ping's exit status, Received > 0 is
// the looser test.
func (r PingResult) Err() error {
	var first *Echo
	failed := 0
	for i := range r.Echoes {
		if r.Echoes[i].Err != nil {
			failed++
			if first == nil {
				first = &r.Echoes[i]
			}
		}
	}
	if first == nil {
		if len(r.Echoes) == 0 {
			return fmt.Errorf("ping %s: no echo sent", r.Dst)
		}
		return nil
	}
	return fmt.Errorf("ping %s: %d of %d echoes unanswered: echo %d: %w", r.Dst, failed, len(r.Echoes), first.Seq, first.Err)
}

// echoIDs hands out ICMP identifiers: a raw socket sees every ICMP packet of
// its namespace, and distinct ids keep concurrent pings from counting each
// other's replies. The random start keeps apart other processes doing the
// same. It is drawn on first use, not at program start: every labctl
// process (each pod supervisor and builtin server among them) would pay for
// it otherwise.
var echoIDs struct {
	seed sync.Once
	next atomic.Uint32
}

func nextEchoID() uint16 {
	echoIDs.seed.Do(func() {
		var b [2]byte
		_, _ = rand.Read(b[:]) // never fails on Linux
		echoIDs.next.Store(uint32(b[0])<<8 | uint32(b[1]))
	})
	return uint16(echoIDs.next.Add(1))
}

// Ping sends ICMP echo requests to dst from the namespace at nsPath and waits
// for the answers. The error is for a ping that could not run or was
// interrupted (then with the echoes so far); echoes that failed are reported
// in the result, see PingResult.Err.
func Ping(ctx context.Context, nsPath string, dst netip.Addr, opts PingOptions) (PingResult, error) {
	dst = dst.Unmap()
	res := PingResult{Dst: dst}
	if err := opts.defaults(dst); err != nil {
		return res, fmt.Errorf("ping %s: %w", dst, err)
	}
	s, err := openPinger(nsPath, dst, opts)
	if err != nil {
		return res, fmt.Errorf("ping %s: %w", dst, err)
	}
	defer s.close()
	res.ID = s.id
	err = s.run(ctx, &res)
	if err != nil {
		err = fmt.Errorf("ping %s: %w", dst, err)
	}
	return res, err
}

func (o *PingOptions) defaults(dst netip.Addr) error {
	if !dst.Is4() {
		return errors.New("only IPv4 destinations are supported")
	}
	if o.Source.IsValid() {
		o.Source = o.Source.Unmap()
		if !o.Source.Is4() {
			return fmt.Errorf("source %s is not an IPv4 address", o.Source)
		}
	}
	if o.Count == 0 {
		o.Count = 1
	}
	if o.Interval == 0 {
		o.Interval = 10 * time.Millisecond
	}
	if o.Timeout == 0 {
		o.Timeout = time.Second
	}
	if o.Size == 0 {
		o.Size = 56
	}
	switch {
	case o.Count < 0 || o.Count > 0xffff:
		// Sequence numbers are 16 bits; a wrap would mix up old and new echoes.
		return fmt.Errorf("count %d is outside 1..65535", o.Count)
	case o.Interval < 0 || o.Timeout < 0:
		return errors.New("interval and timeout must not be negative")
	case o.Size < 0 || o.Size > 0xffff-28:
		return fmt.Errorf("size %d is outside 0..%d", o.Size, 0xffff-28)
	case o.TTL < 0 || o.TTL > 255:
		return fmt.Errorf("ttl %d is outside 1..255", o.TTL)
	}
	return nil
}

type pinger struct {
	opts   PingOptions
	dst    netip.Addr
	f      *os.File
	rc     syscall.RawConn
	mtuFD  int // UDP socket connected to dst, to ask the kernel the path MTU; -1 without DF
	mtuTo  unix.Sockaddr
	id     uint16
	cookie [8]byte
}

func openPinger(nsPath string, dst netip.Addr, opts PingOptions) (*pinger, error) {
	s := &pinger{opts: opts, dst: dst, mtuFD: -1, id: nextEchoID()}
	_, _ = rand.Read(s.cookie[:])
	fd, _, err := socketIn(nsPath, unix.SOCK_RAW, unix.IPPROTO_ICMP, netip.AddrPortFrom(dst, 0))
	if err != nil {
		return nil, err
	}
	s.f = os.NewFile(uintptr(fd), "icmp")
	if err := s.setup(fd); err != nil {
		s.close()
		return nil, err
	}
	if opts.DontFragment {
		// IP_MTU only works on a connected socket, and connecting the raw
		// socket would hide ICMP errors from routers, whose source is not dst.
		ufd, sa, err := socketIn(nsPath, unix.SOCK_DGRAM, 0, netip.AddrPortFrom(dst, 9))
		if err != nil {
			s.close()
			return nil, err
		}
		s.mtuFD, s.mtuTo = ufd, sa
		if err := s.bindSource(ufd); err != nil {
			s.close()
			return nil, err
		}
		if err := unix.Connect(ufd, sa); err != nil {
			// No route: the echoes themselves will fail and say so.
			unix.Close(ufd)
			s.mtuFD = -1
		}
	}
	return s, nil
}

func (s *pinger) setup(fd int) error {
	pmtu := unix.IP_PMTUDISC_DONT
	if s.opts.DontFragment {
		pmtu = unix.IP_PMTUDISC_DO
	}
	if err := unix.SetsockoptInt(fd, unix.IPPROTO_IP, unix.IP_MTU_DISCOVER, pmtu); err != nil {
		return fmt.Errorf("set don't fragment: %w", os.NewSyscallError("setsockopt", err))
	}
	if s.opts.TTL > 0 {
		if err := unix.SetsockoptInt(fd, unix.IPPROTO_IP, unix.IP_TTL, s.opts.TTL); err != nil {
			return fmt.Errorf("set ttl: %w", os.NewSyscallError("setsockopt", err))
		}
	}
	if err := s.bindSource(fd); err != nil {
		return err
	}
	prog := echoFilter(s.id)
	fprog := unix.SockFprog{Len: uint16(len(prog)), Filter: &prog[0]}
	if err := unix.SetsockoptSockFprog(fd, unix.SOL_SOCKET, unix.SO_ATTACH_FILTER, &fprog); err != nil {
		return fmt.Errorf("attach echo filter: %w", os.NewSyscallError("setsockopt", err))
	}
	rc, err := s.f.SyscallConn()
	if err != nil {
		return err
	}
	s.rc = rc
	return nil
}

// echoFilter keeps only echo replies carrying id and the ICMP errors that
// may quote our echoes. Without it every raw ICMP socket of the namespace
// queues every ICMP packet, and many parallel pings overflow each other's
// receive buffers. Userspace still checks everything, this only sheds load.
func echoFilter(id uint16) []unix.SockFilter {
	const (
		accept = 0xffffffff
		drop   = 0
	)
	stmt := func(code uint16, k uint32) unix.SockFilter { return unix.SockFilter{Code: code, K: k} }
	jeq := func(k uint32, jt, jf uint8) unix.SockFilter {
		return unix.SockFilter{Code: unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K, K: k, Jt: jt, Jf: jf}
	}
	return []unix.SockFilter{
		stmt(unix.BPF_LDX|unix.BPF_B|unix.BPF_MSH, 0), // X = IP header length
		stmt(unix.BPF_LD|unix.BPF_B|unix.BPF_IND, 0),  // A = ICMP type
		jeq(icmpEchoReply, 5, 0),                      // to "A = echo id"
		jeq(icmpDestUnreach, 2, 0),
		jeq(icmpTimeExceeded, 1, 0),
		jeq(icmpParamProblem, 0, 1),
		stmt(unix.BPF_RET|unix.BPF_K, accept),
		stmt(unix.BPF_RET|unix.BPF_K, drop),
		stmt(unix.BPF_LD|unix.BPF_H|unix.BPF_IND, 4), // A = echo id
		jeq(uint32(id), 0, 1),
		stmt(unix.BPF_RET|unix.BPF_K, accept),
		stmt(unix.BPF_RET|unix.BPF_K, drop),
	}
}

func (s *pinger) bindSource(fd int) error {
	if !s.opts.Source.IsValid() {
		return nil
	}
	if err := unix.Bind(fd, &unix.SockaddrInet4{Addr: s.opts.Source.As4()}); err != nil {
		return fmt.Errorf("source %s: %w", s.opts.Source, os.NewSyscallError("bind", err))
	}
	return nil
}

func (s *pinger) close() {
	if s.mtuFD >= 0 {
		unix.Close(s.mtuFD)
	}
	s.f.Close()
}

// run sends the echoes on schedule and reads answers in one loop: the read
// deadline is whichever comes first, the next send or the oldest echo's
// timeout, so nothing spins and nothing needs a second goroutine.
func (s *pinger) run(ctx context.Context, res *PingResult) error {
	cancel := newCanceler(ctx, s.f)
	defer cancel.close()

	count, timeout := s.opts.Count, s.opts.Timeout
	sent := make([]time.Time, 0, count) // send time per echo; zero when not waiting
	res.Echoes = make([]Echo, 0, count)
	waiting, oldest := 0, 0 // echoes awaiting an answer; lowest index that may be one
	start := time.Now()
	buf := make([]byte, max(2048, 20+60+8+s.opts.Size))

	for {
		now := time.Now()
		for len(res.Echoes) < count && !now.Before(start.Add(time.Duration(len(res.Echoes))*s.opts.Interval)) {
			if err := ctx.Err(); err != nil {
				return s.interrupted(res, sent, err)
			}
			seq := len(res.Echoes) + 1
			res.Echoes = append(res.Echoes, Echo{Seq: seq})
			sent = append(sent, time.Time{})
			t, err := s.send(uint16(seq))
			if err != nil {
				var se *SendError
				if !errors.As(err, &se) {
					return err
				}
				res.Echoes[seq-1].Err = se
				continue
			}
			res.Sent++
			sent[seq-1] = t
			waiting++
			now = time.Now()
		}
		for ; oldest < len(sent) && (sent[oldest].IsZero() || !now.Before(sent[oldest].Add(timeout))); oldest++ {
			if !sent[oldest].IsZero() {
				res.Echoes[oldest].Err = fmt.Errorf("%w within %v", ErrNoReply, timeout)
				sent[oldest] = time.Time{}
				waiting--
			}
		}
		if len(res.Echoes) == count && waiting == 0 {
			return nil
		}

		wake := time.Time{}
		if len(res.Echoes) < count {
			wake = start.Add(time.Duration(len(res.Echoes)) * s.opts.Interval)
		}
		if oldest < len(sent) {
			if t := sent[oldest].Add(timeout); wake.IsZero() || t.Before(wake) {
				wake = t
			}
		}
		if err := cancel.setReadDeadline(wake); err != nil {
			return err
		}
		n, err := s.recv(buf)
		if errors.Is(err, os.ErrDeadlineExceeded) {
			if err := ctx.Err(); err != nil {
				return s.interrupted(res, sent, err)
			}
			continue
		}
		if err != nil {
			return err
		}
		at := time.Now()
		p, ok := parseICMP(buf[:n], s.dst, s.cookie)
		if !ok || p.id != s.id || p.seq == 0 || int(p.seq) > len(res.Echoes) {
			continue
		}
		i := int(p.seq) - 1
		e := &res.Echoes[i]
		if sent[i].IsZero() {
			if p.reply && e.Err == nil {
				res.Duplicates++
			}
			continue // late answers to echoes already given up on are ignored, as ping does
		}
		e.From, e.TTL, e.RTT = p.from, p.ttl, at.Sub(sent[i])
		if p.reply {
			res.Received++
		} else {
			e.Err = p.err
		}
		sent[i] = time.Time{}
		waiting--
	}
}

// interrupted marks the echoes still waiting with the context's error.
func (s *pinger) interrupted(res *PingResult, sent []time.Time, err error) error {
	for i, t := range sent {
		if !t.IsZero() {
			res.Echoes[i].Err = err
		}
	}
	return err
}

// send returns the send time, a *SendError when the kernel refused the echo,
// or another error when the socket is broken.
func (s *pinger) send(seq uint16) (time.Time, error) {
	pkt := echoRequest(s.id, seq, s.cookie, s.opts.Size)
	to := &unix.SockaddrInet4{Addr: s.dst.As4()}
	var t time.Time
	var serr error
	err := s.rc.Write(func(fd uintptr) bool {
		t = time.Now()
		serr = unix.Sendto(int(fd), pkt, 0, to)
		return serr != unix.EAGAIN
	})
	if err != nil {
		return t, err
	}
	if serr != nil {
		se := &SendError{Err: serr}
		if serr == unix.EMSGSIZE {
			se.MTU = s.pathMTU()
		}
		return t, se
	}
	return t, nil
}

// pathMTU asks the kernel for the MTU towards dst, 0 if it cannot say.
// Connecting again looks the route up afresh: the route cached at the first
// connect does not learn a path MTU reported later.
func (s *pinger) pathMTU() int {
	if s.mtuFD < 0 || unix.Connect(s.mtuFD, s.mtuTo) != nil {
		return 0
	}
	mtu, err := unix.GetsockoptInt(s.mtuFD, unix.IPPROTO_IP, unix.IP_MTU)
	if err != nil {
		return 0
	}
	return mtu
}

// recv reads one packet. Errors the kernel derives from ICMP (a frag-needed
// for any raw ICMP socket of the namespace sets EMSGSIZE on ours) are not
// failures of this socket: the ICMP packet itself arrives next and says more.
func (s *pinger) recv(buf []byte) (int, error) {
	var n int
	var rerr error
	err := s.rc.Read(func(fd uintptr) bool {
		for {
			n, _, rerr = unix.Recvfrom(int(fd), buf, 0)
			switch rerr {
			case unix.EAGAIN:
				return false
			case unix.EINTR, unix.EMSGSIZE, unix.EHOSTUNREACH, unix.ENETUNREACH,
				unix.ECONNREFUSED, unix.EPROTO, unix.ENOPROTOOPT, unix.EACCES:
				continue
			}
			return true
		}
	})
	if err != nil {
		return 0, err
	}
	if rerr != nil {
		return 0, os.NewSyscallError("recvfrom", rerr)
	}
	return n, nil
}
