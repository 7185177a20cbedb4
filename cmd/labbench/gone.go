package main

// When is a deleted network namespace really gone?
//
// `ip netns del` and `labctl down` only drop the reference the bind mount
// under /run/netns holds. The kernel frees the namespace later: the last
// put_net queues net_cleanup_work on the ordered "netns" workqueue, and one
// run of cleanup_net takes every namespace queued so far, unregisters all
// their devices (veth pairs, bridges, with their addresses, routes and
// neighbours), runs every per-namespace exit, waits for RCU and frees them.
// That tail is often longer than the delete itself.
//
// Two things make "really gone" hard to see from user space:
//
//   - A gone namespace leaves nothing to look at: no name, process or file.
//     Any handle we kept on it (an nsfs fd, a socket, a sysfs mount made
//     inside it) would keep it alive, which is exactly what must not happen.
//   - The last put is not always the delete's. A netlink socket that labctl
//     or `ip -n` opened inside the namespace holds a reference until an RCU
//     grace period after it is closed, so for a lab deleted right after it
//     was built the final put (and the cleanup) can come tens of
//     milliseconds after the deleting process has exited. Watching only the
//     cleanup work after `down` returns is therefore not enough.
//
// So we combine two exact kernel signals, neither of which holds a
// reference to a lab namespace:
//
//  1. Which cleanup run took each namespace. The benchmark keeps its own
//     anonymous watch namespace (alive only through its netlink sockets,
//     never named under /run/netns) and, after up, gives every lab
//     namespace an nsid there (RTM_NEWNSID with the namespace's fd, closed
//     at once). An nsid is a plain idr entry without a reference. At the
//     start of the cleanup_net run that frees a namespace, unhash_nsid
//     removes its nsid from every live namespace and multicasts RTM_DELNSID
//     to their RTNLGRP_NSID listeners, so the watch namespace learns the
//     moment each lab namespace enters cleanup.
//  2. When that run ended. The workqueue tracepoints workqueue_execute_start
//     and workqueue_execute_end, opened as system-wide perf events filtered
//     in the kernel to the function cleanup_net (address from
//     /proc/kallsyms), give the start and end of every run with
//     CLOCK_MONOTONIC timestamps. perf events belong to their file
//     descriptors and vanish with them; the tracefs mount needed to look up
//     the tracepoint IDs is made in a private mount namespace on a thread
//     that dies afterwards. No host state changes.
//
// A namespace is gone at the end of the run that was executing when its
// RTM_DELNSID arrived; the lab is gone when its last namespace is. Other
// namespaces freed on the host at the same time do not confuse this. If our
// reader were delayed past the end of that run and another run had already
// started, we would charge the later run's end: the error can only make the
// result later, never earlier.

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// goneWatcher tells when namespaces the benchmark deleted were freed.
type goneWatcher struct {
	trace *cleanupTrace
	nsid  *nsidWatch
}

func openGoneWatcher() (*goneWatcher, error) {
	t, err := openCleanupTrace()
	if err != nil {
		return nil, fmt.Errorf("trace cleanup_net: %w", err)
	}
	n, err := openNsidWatch()
	if err != nil {
		t.Close()
		return nil, fmt.Errorf("watch namespace: %w", err)
	}
	return &goneWatcher{trace: t, nsid: n}, nil
}

func (g *goneWatcher) Close() {
	g.trace.Close()
	g.nsid.Close()
}

// tracking is a set of namespaces whose end we wait for.
type tracking struct {
	ids []int32
}

// track gives each named namespace an nsid in the watch namespace. Call it
// when they exist, before deleting them.
func (g *goneWatcher) track(names []string) (*tracking, error) {
	ids, err := g.nsid.assign(names)
	if err != nil {
		return nil, err
	}
	return &tracking{ids: ids}, nil
}

// wait returns the CLOCK_MONOTONIC time at which the last tracked namespace
// was freed.
func (g *goneWatcher) wait(ctx context.Context, t *tracking, timeout time.Duration) (int64, error) {
	deadline := time.Now().Add(timeout)
	for {
		if err := ctx.Err(); err != nil {
			return 0, err
		}
		entered, err := g.nsid.entered(t.ids)
		if err != nil {
			return 0, err
		}
		if entered != nil {
			// Samples are written within microseconds of their
			// timestamp; reading after the slack sees every run start
			// that precedes the notifications.
			time.Sleep(writeSlack)
			g.trace.drain()
			var last int64
			complete := true
			for _, at := range entered {
				end, ok := g.trace.endOfRunAt(at)
				if !ok {
					complete = false
					break
				}
				last = max(last, end)
			}
			if complete {
				if g.trace.lost {
					return 0, errors.New("perf samples of cleanup_net were lost")
				}
				g.nsid.forget(t.ids)
				g.trace.forgetBefore(last)
				return last, nil
			}
		}
		if time.Now().After(deadline) {
			return 0, fmt.Errorf("namespaces not freed after %s", timeout)
		}
		g.trace.poll(10 * time.Millisecond)
	}
}

// writeSlack is how long after its timestamp a perf sample may still be
// being written to its ring.
const writeSlack = time.Millisecond

// nsidWatch is the benchmark's own anonymous network namespace with two
// netlink sockets: req assigns nsids, mon receives RTM_DELNSID.
type nsidWatch struct {
	req, mon int
	seq      uint32
	next     int32

	mu       sync.Mutex
	gone     map[int32]int64 // nsid -> CLOCK_MONOTONIC time its RTM_DELNSID arrived
	overflow bool
	closed   atomic.Bool
	done     chan struct{}
}

func openNsidWatch() (*nsidWatch, error) {
	type result struct {
		req, mon int
		err      error
	}
	ch := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		home, err := unix.Open(fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid()), unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			runtime.UnlockOSThread()
			ch <- result{err: err}
			return
		}
		defer unix.Close(home)
		var r result
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			ch <- result{err: fmt.Errorf("unshare: %w", err)}
			return
		}
		// Sockets belong to the namespace they are created in and keep
		// it alive; nothing else refers to it.
		r.req, r.err = netlinkSocket(0)
		if r.err == nil {
			r.mon, r.err = netlinkSocket(unix.RTNLGRP_NSID)
		}
		if err := unix.Setns(home, unix.CLONE_NEWNET); err != nil {
			// Stay locked: the thread dies with this goroutine.
			ch <- result{err: fmt.Errorf("return to own namespace: %w", err)}
			return
		}
		runtime.UnlockOSThread()
		ch <- r
	}()
	r := <-ch
	if r.err != nil {
		if r.req > 0 {
			unix.Close(r.req)
		}
		return nil, r.err
	}
	w := &nsidWatch{req: r.req, mon: r.mon, gone: map[int32]int64{}, done: make(chan struct{})}
	go w.receive()
	return w, nil
}

func netlinkSocket(group int) (int, error) {
	s, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_ROUTE)
	if err != nil {
		return -1, err
	}
	fail := func(err error) (int, error) {
		unix.Close(s)
		return -1, err
	}
	if err := unix.Bind(s, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return fail(err)
	}
	// A 1000-pod lab sends ~1000 notifications in one burst; a lost one
	// would spoil the measurement. Root may exceed rmem_max for its own
	// socket without touching any sysctl.
	if err := unix.SetsockoptInt(s, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 32<<20); err != nil {
		_ = unix.SetsockoptInt(s, unix.SOL_SOCKET, unix.SO_RCVBUF, 32<<20)
	}
	if group != 0 {
		if err := unix.SetsockoptInt(s, unix.SOL_NETLINK, unix.NETLINK_ADD_MEMBERSHIP, group); err != nil {
			return fail(err)
		}
		// Wake up now and then so Close can stop the reader.
		tv := unix.NsecToTimeval(int64(100 * time.Millisecond))
		if err := unix.SetsockoptTimeval(s, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
			return fail(err)
		}
	}
	return s, nil
}

func (w *nsidWatch) Close() {
	w.closed.Store(true)
	<-w.done
	unix.Close(w.req)
	unix.Close(w.mon)
}

// receive records when each RTM_DELNSID arrives. It runs all the time so
// the arrival time is close to the send time even while the benchmark waits
// for a child process.
func (w *nsidWatch) receive() {
	defer close(w.done)
	buf := make([]byte, 64<<10)
	for !w.closed.Load() {
		n, _, err := unix.Recvfrom(w.mon, buf, 0)
		now := monoNow()
		switch {
		case errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR):
			continue
		case errors.Is(err, unix.ENOBUFS):
			w.mu.Lock()
			w.overflow = true
			w.mu.Unlock()
			continue
		case err != nil:
			return
		}
		msgs, err := syscall.ParseNetlinkMessage(buf[:n])
		if err != nil {
			continue
		}
		for _, m := range msgs {
			if m.Header.Type != unix.RTM_DELNSID {
				continue
			}
			if id, ok := nsidAttr(m.Data); ok {
				w.mu.Lock()
				w.gone[id] = now
				w.mu.Unlock()
			}
		}
	}
}

// nsidAttr finds NETNSA_NSID after the 4-byte (aligned) rtgenmsg header.
func nsidAttr(data []byte) (int32, bool) {
	if len(data) < 4 {
		return 0, false
	}
	for b := data[4:]; len(b) >= unix.SizeofRtAttr; {
		size := int(binary.LittleEndian.Uint16(b[0:2]))
		typ := binary.LittleEndian.Uint16(b[2:4])
		if size < unix.SizeofRtAttr || size > len(b) {
			return 0, false
		}
		if typ == unix.NETNSA_NSID && size >= unix.SizeofRtAttr+4 {
			return int32(binary.LittleEndian.Uint32(b[4:8])), true
		}
		b = b[min((size+3)&^3, len(b)):]
	}
	return 0, false
}

// assign gives each named namespace a fresh nsid in the watch namespace.
// Each namespace fd is open only for the duration of its request.
func (w *nsidWatch) assign(names []string) ([]int32, error) {
	const chunk = 100 // fds open at once, and acks that fit the socket
	var ids []int32
	for start := 0; start < len(names); start += chunk {
		end := min(start+chunk, len(names))
		var fds []int
		closeAll := func() {
			for _, fd := range fds {
				unix.Close(fd)
			}
		}
		var buf []byte
		first := w.seq + 1
		for _, name := range names[start:end] {
			fd, err := unix.Open("/run/netns/"+name, unix.O_RDONLY|unix.O_CLOEXEC, 0)
			if err != nil {
				closeAll()
				return nil, fmt.Errorf("open namespace %q: %w", name, err)
			}
			fds = append(fds, fd)
			w.next++
			w.seq++
			ids = append(ids, w.next)
			buf = appendNewNsid(buf, w.seq, w.next, fd)
		}
		err := w.request(buf, first, w.seq)
		closeAll()
		if err != nil {
			return nil, fmt.Errorf("assign nsids: %w", err)
		}
	}
	return ids, nil
}

func appendNewNsid(b []byte, seq uint32, id int32, fd int) []byte {
	const size = unix.SizeofNlMsghdr + 4 + 8 + 8 // header, rtgenmsg, two u32 attributes
	b = binary.LittleEndian.AppendUint32(b, size)
	b = binary.LittleEndian.AppendUint16(b, unix.RTM_NEWNSID)
	b = binary.LittleEndian.AppendUint16(b, unix.NLM_F_REQUEST|unix.NLM_F_ACK)
	b = binary.LittleEndian.AppendUint32(b, seq)
	b = binary.LittleEndian.AppendUint32(b, 0)
	b = append(b, unix.AF_UNSPEC, 0, 0, 0)
	b = binary.LittleEndian.AppendUint16(b, 8)
	b = binary.LittleEndian.AppendUint16(b, unix.NETNSA_NSID)
	b = binary.LittleEndian.AppendUint32(b, uint32(id))
	b = binary.LittleEndian.AppendUint16(b, 8)
	b = binary.LittleEndian.AppendUint16(b, unix.NETNSA_FD)
	return binary.LittleEndian.AppendUint32(b, uint32(fd))
}

// request sends a batch of requests and reads one ack per sequence number.
func (w *nsidWatch) request(buf []byte, first, last uint32) error {
	if err := unix.Sendto(w.req, buf, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return err
	}
	rb := make([]byte, 64<<10)
	var errs []error
	for acked := first; acked <= last; {
		n, _, err := unix.Recvfrom(w.req, rb, 0)
		if err != nil {
			return err
		}
		msgs, err := syscall.ParseNetlinkMessage(rb[:n])
		if err != nil {
			return err
		}
		for _, m := range msgs {
			if m.Header.Type != unix.NLMSG_ERROR || m.Header.Seq < first || m.Header.Seq > last {
				continue
			}
			if len(m.Data) >= 4 {
				if code := int32(binary.LittleEndian.Uint32(m.Data)); code != 0 {
					errs = append(errs, syscall.Errno(-code))
				}
			}
			acked = m.Header.Seq + 1
		}
	}
	return errors.Join(errs...)
}

// entered returns when each id's RTM_DELNSID arrived, or nil while some
// have not.
func (w *nsidWatch) entered(ids []int32) ([]int64, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.overflow {
		return nil, errors.New("lost RTM_DELNSID notifications (receive buffer overflow)")
	}
	at := make([]int64, 0, len(ids))
	for _, id := range ids {
		t, ok := w.gone[id]
		if !ok {
			return nil, nil
		}
		at = append(at, t)
	}
	return at, nil
}

func (w *nsidWatch) forget(ids []int32) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, id := range ids {
		delete(w.gone, id)
	}
}

// cleanupTrace records the start and end of every cleanup_net run.
type cleanupTrace struct {
	rings  []*perfRing
	ids    map[uint16]bool // tracepoint id -> is the end event
	fn     uint64          // address of cleanup_net
	starts []int64         // CLOCK_MONOTONIC ns, sorted
	ends   []int64
	lost   bool
}

// Tracepoint fields of workqueue_execute_{start,end} (see
// events/workqueue/*/format): common_type is the first u16, function the
// u64 at offset 16.
const (
	rawTypeOff     = 0
	rawFunctionOff = 16
)

const ringPages = 16 // per CPU; a filtered sample is ~56 bytes

type perfRing struct {
	fds  []int
	mem  []byte
	meta *unix.PerfEventMmapPage
	data []byte
}

// openCleanupTrace needs root (or CAP_PERFMON), tracepoints and
// /proc/kallsyms addresses.
func openCleanupTrace() (*cleanupTrace, error) {
	fn, err := kallsym("cleanup_net")
	if err != nil {
		return nil, err
	}
	ids, err := tracepointIDs("workqueue", []string{"workqueue_execute_start", "workqueue_execute_end"})
	if err != nil {
		return nil, err
	}
	cpus, err := onlineCPUs()
	if err != nil {
		return nil, err
	}
	t := &cleanupTrace{fn: fn, ids: map[uint16]bool{uint16(ids[0]): false, uint16(ids[1]): true}}
	filter := append([]byte(fmt.Sprintf("function == 0x%x", fn)), 0)
	for _, cpu := range cpus {
		r := &perfRing{}
		t.rings = append(t.rings, r)
		for _, id := range ids {
			attr := unix.PerfEventAttr{
				Type:        unix.PERF_TYPE_TRACEPOINT,
				Size:        uint32(unsafe.Sizeof(unix.PerfEventAttr{})),
				Config:      id,
				Sample:      1, // every event
				Sample_type: unix.PERF_SAMPLE_TIME | unix.PERF_SAMPLE_RAW,
				Bits:        unix.PerfBitDisabled | unix.PerfBitUseClockID,
				Clockid:     unix.CLOCK_MONOTONIC,
				Wakeup:      1,
			}
			fd, err := unix.PerfEventOpen(&attr, -1, cpu, -1, unix.PERF_FLAG_FD_CLOEXEC)
			if err != nil {
				t.Close()
				return nil, fmt.Errorf("perf_event_open tracepoint %d on cpu %d: %w", id, cpu, err)
			}
			r.fds = append(r.fds, fd)
			// Without the filter every work item on the machine would
			// be sampled; the function is still checked below.
			_, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.PERF_EVENT_IOC_SET_FILTER, uintptr(unsafe.Pointer(&filter[0])))
			if errno != 0 {
				t.Close()
				return nil, fmt.Errorf("filter tracepoint on cleanup_net: %w", errno)
			}
			if len(r.fds) == 1 {
				size := (1 + ringPages) * os.Getpagesize()
				mem, err := unix.Mmap(fd, 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
				if err != nil {
					t.Close()
					return nil, fmt.Errorf("mmap perf ring: %w", err)
				}
				r.mem = mem
				r.meta = (*unix.PerfEventMmapPage)(unsafe.Pointer(&mem[0]))
				r.data = mem[os.Getpagesize():]
			} else if err := unix.IoctlSetInt(fd, unix.PERF_EVENT_IOC_SET_OUTPUT, r.fds[0]); err != nil {
				t.Close()
				return nil, fmt.Errorf("share perf ring: %w", err)
			}
		}
	}
	runtime.KeepAlive(filter)
	for _, r := range t.rings {
		for _, fd := range r.fds {
			if err := unix.IoctlSetInt(fd, unix.PERF_EVENT_IOC_ENABLE, 0); err != nil {
				t.Close()
				return nil, fmt.Errorf("enable perf event: %w", err)
			}
		}
	}
	return t, nil
}

// Close releases every perf event; the kernel forgets them.
func (t *cleanupTrace) Close() {
	for _, r := range t.rings {
		if r.mem != nil {
			_ = unix.Munmap(r.mem)
		}
		for _, fd := range r.fds {
			unix.Close(fd)
		}
	}
	t.rings = nil
}

// poll sleeps until a sample arrives or the timeout passes.
func (t *cleanupTrace) poll(timeout time.Duration) {
	pfds := make([]unix.PollFd, len(t.rings))
	for i, r := range t.rings {
		pfds[i] = unix.PollFd{Fd: int32(r.fds[0]), Events: unix.POLLIN}
	}
	_, _ = unix.Poll(pfds, int(timeout/time.Millisecond))
}

// drain reads every sample written so far.
func (t *cleanupTrace) drain() {
	for _, r := range t.rings {
		r.read(t)
	}
	sort.Slice(t.starts, func(i, j int) bool { return t.starts[i] < t.starts[j] })
	sort.Slice(t.ends, func(i, j int) bool { return t.ends[i] < t.ends[j] })
}

func (r *perfRing) read(t *cleanupTrace) {
	head := atomic.LoadUint64(&r.meta.Data_head)
	tail := r.meta.Data_tail
	size := uint64(len(r.data))
	var rec []byte
	for tail < head {
		hdr := r.copyOut(tail, 8, rec[:0])
		typ := binary.LittleEndian.Uint32(hdr[0:4])
		n := uint64(binary.LittleEndian.Uint16(hdr[6:8]))
		if n < 8 || n > size {
			t.lost = true
			tail = head
			break
		}
		rec = r.copyOut(tail, n, rec[:0])
		tail += n
		switch typ {
		case unix.PERF_RECORD_LOST:
			t.lost = true
		case unix.PERF_RECORD_SAMPLE:
			// u64 time, u32 raw size, raw tracepoint record.
			if len(rec) < 20 {
				continue
			}
			at := int64(binary.LittleEndian.Uint64(rec[8:16]))
			raw := rec[20:]
			if rawLen := int(binary.LittleEndian.Uint32(rec[16:20])); rawLen < len(raw) {
				raw = raw[:rawLen]
			}
			if len(raw) < rawFunctionOff+8 || binary.LittleEndian.Uint64(raw[rawFunctionOff:]) != t.fn {
				continue
			}
			isEnd, ok := t.ids[binary.LittleEndian.Uint16(raw[rawTypeOff:])]
			switch {
			case !ok:
			case isEnd:
				t.ends = append(t.ends, at)
			default:
				t.starts = append(t.starts, at)
			}
		}
	}
	atomic.StoreUint64(&r.meta.Data_tail, tail)
}

// copyOut copies n bytes at ring offset off, unwrapping the ring's end.
func (r *perfRing) copyOut(off, n uint64, buf []byte) []byte {
	size := uint64(len(r.data))
	start := off % size
	if start+n <= size {
		return append(buf, r.data[start:start+n]...)
	}
	buf = append(buf, r.data[start:]...)
	return append(buf, r.data[:n-(size-start)]...)
}

// endOfRunAt returns the end of the cleanup_net run that was executing at
// instant at: the first end after the last start before it. Runs never
// overlap (the workqueue is ordered).
func (t *cleanupTrace) endOfRunAt(at int64) (int64, bool) {
	i := sort.Search(len(t.starts), func(i int) bool { return t.starts[i] > at })
	from := at // no start seen (samples lost): the next end is still an upper bound
	if i > 0 {
		from = t.starts[i-1]
	}
	j := sort.Search(len(t.ends), func(j int) bool { return t.ends[j] > from })
	if j == len(t.ends) {
		return 0, false
	}
	return t.ends[j], true
}

// forgetBefore drops history no later wait can need.
func (t *cleanupTrace) forgetBefore(at int64) {
	i := sort.Search(len(t.starts), func(i int) bool { return t.starts[i] >= at })
	t.starts = append(t.starts[:0], t.starts[i:]...)
	j := sort.Search(len(t.ends), func(j int) bool { return t.ends[j] >= at })
	t.ends = append(t.ends[:0], t.ends[j:]...)
}

func monoNow() int64 {
	var ts unix.Timespec
	_ = unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	return ts.Nano()
}

// kallsym returns the address of a kernel text symbol.
func kallsym(name string) (uint64, error) {
	f, err := os.Open("/proc/kallsyms")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) >= 3 && fields[2] == name && (fields[1] == "t" || fields[1] == "T") {
			addr, err := strconv.ParseUint(fields[0], 16, 64)
			if err != nil || addr == 0 {
				return 0, errors.New("/proc/kallsyms hides addresses (kptr_restrict)")
			}
			return addr, nil
		}
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	return 0, fmt.Errorf("kernel symbol %s not found in /proc/kallsyms", name)
}

// tracepointIDs reads perf IDs of tracepoints from tracefs. When tracefs is
// not mounted, it mounts it in a private mount namespace on a throwaway
// thread, so the host's mount table never changes.
func tracepointIDs(system string, names []string) ([]uint64, error) {
	read := func(root string) ([]uint64, error) {
		var ids []uint64
		for _, n := range names {
			data, err := os.ReadFile(root + "/events/" + system + "/" + n + "/id")
			if err != nil {
				return nil, err
			}
			id, err := strconv.ParseUint(strings.TrimSpace(string(data)), 10, 64)
			if err != nil {
				return nil, err
			}
			ids = append(ids, id)
		}
		return ids, nil
	}
	for _, root := range []string{"/sys/kernel/tracing", "/sys/kernel/debug/tracing"} {
		if ids, err := read(root); err == nil {
			return ids, nil
		}
	}
	type result struct {
		ids []uint64
		err error
	}
	ch := make(chan result, 1)
	go func() {
		// Never unlocked: the thread leaves the host's mount namespace
		// and must die with this goroutine rather than run other code.
		runtime.LockOSThread()
		if err := unix.Unshare(unix.CLONE_NEWNS | unix.CLONE_FS); err != nil {
			ch <- result{err: fmt.Errorf("unshare mount namespace: %w", err)}
			return
		}
		// Private first, so the mount below cannot propagate to the host.
		if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
			ch <- result{err: fmt.Errorf("make mounts private: %w", err)}
			return
		}
		const dir = "/sys/kernel/tracing"
		if err := unix.Mount("tracefs", dir, "tracefs", 0, ""); err != nil {
			ch <- result{err: fmt.Errorf("mount tracefs: %w", err)}
			return
		}
		ids, err := read(dir)
		_ = unix.Unmount(dir, unix.MNT_DETACH)
		ch <- result{ids, err}
	}()
	r := <-ch
	return r.ids, r.err
}

func onlineCPUs() ([]int, error) {
	data, err := os.ReadFile("/sys/devices/system/cpu/online")
	if err != nil {
		return nil, err
	}
	var cpus []int
	for _, part := range strings.Split(strings.TrimSpace(string(data)), ",") {
		lo, hi, isRange := strings.Cut(part, "-")
		a, err := strconv.Atoi(lo)
		if err != nil {
			return nil, fmt.Errorf("parse online CPUs %q: %w", data, err)
		}
		b := a
		if isRange {
			if b, err = strconv.Atoi(hi); err != nil {
				return nil, fmt.Errorf("parse online CPUs %q: %w", data, err)
			}
		}
		for c := a; c <= b; c++ {
			cpus = append(cpus, c)
		}
	}
	return cpus, nil
}
