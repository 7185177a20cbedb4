// Package ipipd is a userspace IPIP datapath (IP protocol 4, RFC 2003) that
// stands in for the kernel's tunl0 device where the ipip module is missing.
//
// It behaves like Calico's IPIP mode on a kernel tunl0: the node's routing
// table decides everything. A route `<pod subnet> via <node IP> dev tunl0
// onlink` sends matching packets into a TUN device named tunl0; the datapath
// reads them, finds the same route in its copy of the kernel's tunl0 routes
// and sends the packet inside an outer IPv4 header, protocol 4, to the
// route's gateway through a raw socket. Packets of protocol 4 arriving for
// the node come up a raw IPPROTO_IPIP socket; the datapath checks that
// the sender is a tunnel peer, strips the outer header and writes the inner
// packet into tunl0, where the kernel routes it on as if it had arrived on a
// real tunnel device.
//
// Outer headers match the kernel's fallback tunnel tunl0 (`ip -d link show
// tunl0`: "ipip any remote any local any ttl inherit nopmtudisc"):
// ip_tunnel_xmit with those parameters copies the inner TTL (ttl inherit),
// sets TOS 0 plus the inner ECN bits (INET_ECN_encapsulate, CE sent as
// ECT(0)), copies DF from the inner packet (nopmtudisc, so only the inner DF
// counts), takes the source address the routing table picks for the gateway
// (local any) and uses the route's gateway as destination (remote any: the
// NBMA case, rt_nexthop). On receive, ECN is decapsulated as
// INET_ECN_decapsulate does (RFC 6040): outer CE marks an ECT inner packet CE
// and drops a not-ECT one. The outer IP ID comes from a per-queue counter
// (the kernel hashes one per destination); neither matters to a receiver.
//
// Performance: the TUN queues are opened with IFF_VNET_HDR and TSO offload,
// so a TCP sender hands the datapath 64 KiB super-packets that it segments
// itself (like the kernel's GSO would, checksums included) and sends with one
// sendmmsg on a socket of its own, kept out of Go's poller. On receive IPIP
// is steered from the underlay veth to a veth pair where the kernel's GRO
// merges it (gro.go; nothing else the node receives is touched), so a TCP
// stream comes up the raw socket as 64 KiB super-packets that go to TUN whole;
// segments that still arrive one by one are checked and coalesced into one
// super-packet per TUN write (like GRO). Nothing is allocated per packet.
// What remains is the kernel's per-packet cost of MTU-sized raw sends, which
// the wire format demands.
//
// Setting a node up, in its namespace, as Calico does with a real tunl0:
//
//	ip tuntap add dev tunl0 mode tun multi_queue
//	ip link set tunl0 mtu <underlay MTU - 20> up
//	ip addr add <address from the node's pod block>/32 dev tunl0
//	ip route add <remote pod subnet> via <remote node IP> dev tunl0 onlink
//	sysctl net.ipv6.conf.tunl0.disable_ipv6=1
//
// (Unlike the kernel's tunl0, a TUN device gets an IPv6 link-local address
// and sends router solicitations into itself; they are dropped as NotIPv4.)
//
// then Run (or Open and Serve) on a thread in that namespace. Routes may be
// added and removed at any time; the datapath follows them.
package ipipd

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// Config describes the datapath of one node.
type Config struct {
	// Device is the existing TUN device to serve, normally "tunl0". It must
	// be in tun mode without packet information (ip tuntap add dev tunl0
	// mode tun [multi_queue]); Open never creates it.
	Device string
	// Queues is how many TUN queues to attach when the device is multi_queue,
	// each served by its own goroutine; 0 means one per CPU, at most 4.
	// A device created without multi_queue gets exactly one.
	Queues int
	// Table is the routing table whose tunl0 routes are followed; 0 means
	// the main table, where Calico installs them.
	Table int
	// NoOffload reads and writes one plain packet per TUN syscall instead of
	// using virtio_net_hdr offloads (TSO super-packets in, coalesced TCP
	// out). Slower; for comparison and for kernels without IFF_VNET_HDR.
	NoOffload bool
	// AcceptAnyPeer decapsulates IPIP from any source, like a bare kernel
	// tunl0; by default only tunnel peers (route gateways) are accepted, like
	// Calico's "drop IPIP packets from non-Calico hosts" rule.
	AcceptAnyPeer bool
	// NoGRO leaves the underlay device's receive path alone. By default
	// IPIP arriving on the veth the tunnel peers are reached through is
	// steered (a tc program) to a veth pair of its own where the kernel's
	// GRO merges it, so TCP arrives as super-packets; other traffic and the
	// wire are unaffected (gro.go). Implied by NoOffload, which cannot write
	// super-packets to TUN.
	NoGRO bool
	// RecvBuffer is the raw socket's receive buffer in bytes; 0 means 32 MiB.
	// A small buffer overflows under load, and the sender sees loss.
	RecvBuffer int
	// StatsFile, if set, is where Serve writes Stats as JSON every second
	// and when it stops (WriteStatsFile), for other processes to read
	// (ReadStatsFile).
	StatsFile string
	// Logf, if set, receives notes about choices made at start-up (queue
	// count, offloads) and route table changes.
	Logf func(format string, args ...any)
}

// Datapath is an attached, not yet serving datapath. Open it on a thread in
// the node's network namespace; Serve it from anywhere.
type Datapath struct {
	cfg     Config
	ifindex int
	table   uint32

	tun    *tunDevice
	raw    *os.File // IPPROTO_IPIP socket: receives all protocol-4 packets
	sendFD int      // IPPROTO_RAW socket the encapsulated packets leave by; never polled
	rtnl   *nlClient
	events *os.File

	mtu     atomic.Int32             // the TUN device's
	egress  atomic.Pointer[mtuTable] // MTUs of the node's routes; with mtu, what GRO super-packets are cut to
	rx      *rxOffload               // receive offload of the underlay device, if any
	queues  int                      // TUN queues attached, kept for Stats after Close
	offload bool                     // TSO reads and coalesced writes in use

	routes   atomic.Pointer[routeTable]
	ctr      counters
	stopping atomic.Bool
	started  atomic.Bool
	closed   atomic.Bool

	closeOnce sync.Once
	closeErr  error
}

const (
	ifOperDown           = 2 // IF_OPER_DOWN, include/uapi/linux/if.h
	ifOperLowerLayerDown = 3 // IF_OPER_LOWERLAYERDOWN
	defaultRecvBuffer    = 32 << 20
	sendBuffer           = 4 << 20
)

// Run attaches to cfg.Device and serves it until ctx is cancelled (then it
// returns nil) or something fatal happens, such as the device vanishing.
// It must be called on a thread in the node's network namespace, because the
// sockets and TUN queues it opens belong to the namespace they are opened in.
func Run(ctx context.Context, cfg Config) error {
	d, err := Open(cfg)
	if err != nil {
		return err
	}
	return d.Serve(ctx)
}

// Open attaches to the TUN device, opens the raw IPIP socket and the route
// netlink sockets, and loads the tunl0 routes, all in the calling thread's
// network namespace. Nothing is served until Serve.
func Open(cfg Config) (_ *Datapath, err error) {
	if cfg.Device == "" {
		return nil, errors.New("ipip datapath: no device named")
	}
	if len(cfg.Device) >= unix.IFNAMSIZ {
		return nil, fmt.Errorf("ipip datapath: device name %q is longer than %d bytes", cfg.Device, unix.IFNAMSIZ-1)
	}
	if cfg.Queues <= 0 {
		cfg.Queues = min(runtime.NumCPU(), 4)
	}
	if cfg.RecvBuffer <= 0 {
		cfg.RecvBuffer = defaultRecvBuffer
	}
	d := &Datapath{cfg: cfg, sendFD: -1, table: unix.RT_TABLE_MAIN}
	if cfg.Table > 0 {
		d.table = uint32(cfg.Table)
	}
	defer func() {
		if err != nil {
			d.Close()
			err = fmt.Errorf("ipip datapath on %q: %w", cfg.Device, err)
		}
	}()
	if d.ifindex, err = ifIndex(cfg.Device); err != nil {
		return nil, err
	}
	// Subscribe before the first dump, so no change slips between them.
	if d.events, err = openRouteEvents(); err != nil {
		return nil, err
	}
	if d.rtnl, err = openRTNL(); err != nil {
		return nil, err
	}
	if d.tun, err = attachTUN(cfg.Device, cfg.Queues, !cfg.NoOffload); err != nil {
		return nil, err
	}
	if d.raw, err = openRawIPIP(cfg.RecvBuffer, d.logf); err != nil {
		return nil, err
	}
	if d.sendFD, err = openRawSend(); err != nil {
		return nil, err
	}
	d.queues, d.offload = len(d.tun.fds), d.tun.tso
	if _, err = d.reloadRoutes(); err != nil {
		return nil, err
	}
	if !cfg.NoGRO && d.tun.vnet {
		d.enableOffload()
	}
	d.waitCarrier()
	d.logf("ipip datapath on %s: %d queue(s) (multi_queue %v), offload %v, receive offload on %v, %d route(s)",
		cfg.Device, len(d.tun.fds), d.tun.multi, d.tun.tso, d.groDevices(), len(d.routes.Load().routes))
	return d, nil
}

// enableOffload sets up receive offload (gro.go) for the device the
// tunnel peers are reached through, the node's one underlay veth. Peers
// behind another device, then or later, do without: setting up needs the
// namespace of Open's thread, and one pair serves one device.
func (d *Datapath) enableOffload() {
	seen := map[int]bool{d.ifindex: true}
	for _, r := range d.routes.Load().routes {
		if !r.Gateway.IsValid() {
			continue
		}
		oif, err := d.rtnl.routeDevice(binary.BigEndian.Uint32(r.Gateway.AsSlice()))
		if err != nil || oif == 0 || seen[oif] {
			continue
		}
		seen[oif] = true
		if d.rx != nil {
			d.logf("ipip datapath on %s: no receive offload for peers behind ifindex %d: it serves %s only", d.cfg.Device, oif, d.rx.under)
			continue
		}
		rx, err := enableOffload(d.cfg.Device, oif)
		if err != nil {
			d.logf("ipip datapath on %s: no receive offload: %v", d.cfg.Device, err)
			continue
		}
		d.rx = rx
	}
}

func (d *Datapath) groDevices() []string {
	if d.rx == nil {
		return nil
	}
	return []string{d.rx.under}
}

// waitCarrier waits, briefly, for the kernel to notice that the TUN device
// has a reader. Attaching the first queue turns the carrier on, but the
// qdisc is only activated later by the linkwatch worker (linkwatch_do_dev:
// operstate first, then dev_activate); until then the device silently drops
// what is routed to it, so a ping right after start-up would get lost.
func (d *Datapath) waitCarrier() {
	for deadline := time.Now().Add(2 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		l, err := d.rtnl.link(d.ifindex)
		if err != nil || l.flags&unix.IFF_UP == 0 || l.oper != ifOperDown && l.oper != ifOperLowerLayerDown {
			return
		}
	}
	d.logf("ipip datapath on %s: carrier still down after attaching", d.cfg.Device)
}

func (d *Datapath) logf(format string, args ...any) {
	if d.cfg.Logf != nil {
		d.cfg.Logf(format, args...)
	}
}

// openRawIPIP opens the socket IPIP packets arrive on: it gets every IPv4
// packet of protocol 4 delivered to this namespace, outer header included
// (raw(7)). With no ipip module there is no other handler, and as long as a
// raw socket takes them the kernel does not answer with ICMP
// protocol-unreachable. Only one is opened, because every IPPROTO_IPIP raw
// socket gets its own copy of each received packet.
func openRawIPIP(rcvbuf int, logf func(string, ...any)) (*os.File, error) {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_RAW|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, unix.IPPROTO_IPIP)
	if err != nil {
		return nil, fmt.Errorf("open raw IPIP socket: %w", err)
	}
	// SO_RCVBUFFORCE ignores net.core.rmem_max (which caps SO_RCVBUF at a
	// few hundred KiB by default), so bursts do not overflow the queue.
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, rcvbuf); err != nil {
		logf("raw IPIP socket: SO_RCVBUFFORCE: %v; falling back to SO_RCVBUF", err)
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, rcvbuf); err != nil {
			unix.Close(fd)
			return nil, fmt.Errorf("raw IPIP socket: set receive buffer: %w", err)
		}
	}
	return os.NewFile(uintptr(fd), "raw-ipip"), nil
}

// openRawSend opens the socket encapsulated packets are sent on. An
// IPPROTO_RAW socket implies IP_HDRINCL and receives nothing (raw(7)): each
// packet carries its own outer TTL, TOS, DF and protocol 4 as
// ip_tunnel_xmit would set them, and the kernel still fills in the source
// address (from routing), the total length, the checksum and, when zero,
// the ID (raw_send_hdrinc).
//
// It is kept apart from the receiving socket, and away from Go's poller,
// for speed: every sent packet, once freed by the underlay, calls the
// socket's sk_write_space, and on a socket registered with epoll for
// EPOLLOUT that is a wake-up of the poller thread per packet, for nothing.
func openRawSend() (int, error) {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_RAW|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, unix.IPPROTO_RAW)
	if err != nil {
		return -1, fmt.Errorf("open raw sending socket: %w", err)
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, sendBuffer); err != nil {
		_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUF, sendBuffer)
	}
	return fd, nil
}

// Serve runs the datapath until ctx is cancelled, returning nil, or until a
// fatal error, which it returns. Either way every file descriptor is closed
// and every goroutine it started has ended when it returns.
func (d *Datapath) Serve(ctx context.Context) error {
	if d.closed.Load() {
		return fmt.Errorf("ipip datapath on %q: already closed", d.cfg.Device)
	}
	if !d.started.CompareAndSwap(false, true) {
		return fmt.Errorf("ipip datapath on %q: already served", d.cfg.Device)
	}
	loops := []func() error{d.decapLoop, d.routeLoop}
	for q := range d.tun.queues {
		loops = append(loops, func() error { return d.encapLoop(q) })
	}
	errc := make(chan error, len(loops))
	var wg sync.WaitGroup
	statsCtx, stopStats := context.WithCancel(context.Background())
	if d.cfg.StatsFile != "" {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d.writeStatsLoop(statsCtx)
		}()
	}
	for _, loop := range loops {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := loop(); err != nil {
				errc <- err
			}
		}()
	}
	var err error
	select {
	case <-ctx.Done():
	case err = <-errc:
	}
	d.stop()
	stopStats()
	wg.Wait()
	d.Close()
	if d.cfg.StatsFile != "" {
		if werr := WriteStatsFile(d.cfg.StatsFile, d.Stats()); werr != nil {
			d.logf("ipip datapath on %s: %v", d.cfg.Device, werr)
		}
	}
	if err != nil {
		return fmt.Errorf("ipip datapath on %q: %w", d.cfg.Device, err)
	}
	return nil
}

// stop wakes every loop: a read deadline in the past fails pending and
// future poller waits at once. Closing the files instead would let the fd
// numbers be reused while loops still issue raw syscalls on them.
func (d *Datapath) stop() {
	d.stopping.Store(true)
	past := time.Unix(1, 0)
	for _, q := range d.tun.queues {
		_ = q.SetReadDeadline(past)
	}
	_ = d.raw.SetReadDeadline(past)
	_ = d.events.SetReadDeadline(past)
}

// Close releases everything Open acquired. Serve calls it; call it yourself
// only for a Datapath you never serve.
func (d *Datapath) Close() error {
	d.closeOnce.Do(func() {
		d.closed.Store(true)
		var errs []error
		if d.tun != nil {
			errs = append(errs, d.tun.release())
		}
		if d.raw != nil {
			errs = append(errs, d.raw.Close())
		}
		if d.sendFD >= 0 {
			errs = append(errs, unix.Close(d.sendFD))
		}
		if d.events != nil {
			errs = append(errs, d.events.Close())
		}
		if d.rtnl != nil {
			errs = append(errs, d.rtnl.Close())
		}
		if d.rx != nil {
			d.rx.close()
		}
		d.closeErr = errors.Join(errs...)
	})
	return d.closeErr
}

// Stats returns a snapshot of the counters and the routes in effect. It is
// safe to call at any time, from any goroutine.
func (d *Datapath) Stats() Stats {
	s := Stats{Time: time.Now(), Device: d.cfg.Device, Queues: d.queues, Offload: d.offload, GRO: d.groDevices()}
	if d.rx != nil {
		st := d.rx.stats()
		s.Steering = &st
	}
	if t := d.routes.Load(); t != nil {
		s.Routes = append([]Route(nil), t.routes...)
	}
	d.ctr.snapshot(&s)
	return s
}

// reloadRoutes replaces the route table with the kernel's current one and
// says whether it changed. It also refreshes the MTUs decap.go cuts GRO
// super-packets to: the TUN device's and the table's.
func (d *Datapath) reloadRoutes() (bool, error) {
	all, err := d.rtnl.dumpRoutes(d.table, d.ifindex)
	if err != nil {
		return false, err
	}
	links, err := d.rtnl.dumpLinkMTUs()
	if err != nil {
		return false, err
	}
	if mtu := links[d.ifindex]; mtu > 0 { // else the device is gone, and the TUN queues say so
		d.mtu.Store(int32(mtu))
	}
	d.egress.Store(buildMTUTable(all, links))
	var krs []kernelRoute
	for _, r := range all {
		if r.oif == d.ifindex {
			krs = append(krs, r)
		}
	}
	loops := map[uint32]bool{}
	for _, r := range krs {
		if r.gw == 0 {
			continue
		}
		if _, seen := loops[r.gw]; seen {
			continue
		}
		oif, err := d.rtnl.routeDevice(r.gw)
		loops[r.gw] = err == nil && oif == d.ifindex
	}
	t := buildTable(krs, loops)
	for _, r := range t.routes {
		if r.Loop {
			d.logf("ipip datapath on %s: route %s via %s: the gateway is itself routed via %s; dropping its packets like the kernel would",
				d.cfg.Device, r.Dst, r.Gateway, d.cfg.Device)
		}
	}
	old := d.routes.Swap(t)
	return old == nil || !slices.Equal(old.routes, t.routes), nil
}

// routeLoop follows route and link events. Any event, or a lost one
// (ENOBUFS), triggers a fresh dump of routes and MTUs and a check of the
// receive offload's NAPI settings: changes are rare, and a dump is always
// right where applying deltas can drift.
func (d *Datapath) routeLoop() error {
	rc, err := d.events.SyscallConn()
	if err != nil {
		return fmt.Errorf("route events: %w", err)
	}
	buf := make([]byte, 1<<16)
	for {
		var rerr error
		got := false
		err := rc.Read(func(fd uintptr) bool {
			for {
				_, _, err := unix.Recvfrom(int(fd), buf, 0)
				switch err {
				case nil, unix.ENOBUFS:
					got = true
					continue
				case unix.EINTR:
					continue
				case unix.EAGAIN:
					return got
				}
				rerr = err
				return true
			}
		})
		if d.stopping.Load() {
			return nil
		}
		if err == nil {
			err = rerr
		}
		if err != nil {
			return fmt.Errorf("read route events: %w", err)
		}
		changed, err := d.reloadRoutes()
		if err != nil {
			return fmt.Errorf("reload routes: %w", err)
		}
		if changed {
			d.logf("ipip datapath on %s: routes changed, now %d", d.cfg.Device, len(d.routes.Load().routes))
		}
		if d.rx != nil {
			if err := d.rx.check(); err != nil {
				d.logf("ipip datapath on %s: receive offload on %s: %v", d.cfg.Device, d.rx.under, err)
			}
		}
	}
}

// tunError names the usual reason a TUN queue fails: the device was deleted
// under us (tun_chr_read_iter and tun_chr_write_iter return EBADFD once the
// queue is detached).
func tunError(op string, q int, err error) error {
	if errors.Is(err, unix.EBADFD) {
		return fmt.Errorf("device vanished (%s queue %d): %w", op, q, err)
	}
	return fmt.Errorf("%s queue %d: %w", op, q, err)
}
