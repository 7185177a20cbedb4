package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"text/tabwriter"
	"time"

	"golang.org/x/sys/unix"

	"github.com/labctl/labctl/emulator/netns"
	"github.com/labctl/labctl/emulator/plan"
	"github.com/labctl/labctl/emulator/probe"
	"github.com/labctl/labctl/emulator/spec"
)

// tuiRate is the packet rate the TUI must keep showing (issue 13 item 6).
const tuiRate = 10000

// Targets for the TUI at tuiRate: it must leave most of a core to the
// lab it watches, and answer a key at once.
const (
	tuiCPUTarget = 0.5 // of one CPU
	tuiKeyTarget = 100 * time.Millisecond
)

// tuiCase is one row of the TUI table: labctl tui on a terminal of 80×24,
// capturing pod c's eth0, while pod a sends UDP to c at rate packets a
// second.
type tuiCase struct {
	name   string
	rate   int
	paused bool

	sent    uint64          // datagrams pod a sent
	seen    float64         // what the TUI's status line counted, a second
	drops   uint64          // what the kernel dropped, as the status line says
	seconds float64         // the interval measured
	cpu     float64         // the TUI's CPU time over the interval, in CPUs
	keys    []time.Duration // key press to the screen changing
	out     int64           // bytes the TUI wrote to its terminal
	err     error
}

// tui measures labctl tui's CPU use while it shows a stream of packets: a
// terminal of its own (a pseudo-terminal, 80×24, TERM=xterm-256color, as
// a student's), the process's CPU time from /proc over d per row.
func (b *bench) tui(ctx context.Context, d time.Duration) ([]*tuiCase, int64, error) {
	cases := []*tuiCase{
		{name: "idle (no traffic)"},
		{name: "10k packets/s, following", rate: tuiRate},
		{name: "10k packets/s, paused", rate: tuiRate, paused: true},
	}
	name := namePrefix(b.pid) + "tui"
	path := filepath.Join(b.tmp, name+".yaml")
	data := tputLab(name, "host-gw")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		return cases, 0, err
	}
	if out, err := b.labctlRun(ctx, "up", path); err != nil {
		return cases, 0, fmt.Errorf("up: %v: %s", err, out)
	}
	defer b.labctlRun(context.Background(), "down", name)
	topo, err := spec.Parse("", data)
	if err != nil {
		return cases, 0, err
	}
	c, _ := topo.Pod("c")
	dst := netip.AddrPortFrom(c.IP, 9999)
	ns := func(object string) string { return netns.Path(plan.NamespaceName(name, object)) }
	sink, err := probe.ListenUDP(ns("c"), dst.String())
	if err != nil {
		return cases, 0, err
	}
	defer sink.Close()
	go func() {
		buf := make([]byte, 2048)
		for {
			if _, err := sink.Read(buf); err != nil {
				return
			}
		}
	}()

	t, err := startTerminal(b.labctl, 80, 24, "--state-dir", b.stateDir, "tui", name, "c:eth0")
	if err != nil {
		return cases, 0, err
	}
	defer t.close()
	if _, err := t.waitFor(ctx, 15*time.Second, regexp.MustCompile(`capturing on 1 interface`)); err != nil {
		return cases, 0, fmt.Errorf("the TUI did not start capturing: %w", err)
	}
	for _, c := range cases {
		if ctx.Err() != nil {
			c.err = ctx.Err()
			continue
		}
		fmt.Fprintf(os.Stderr, "labbench: tui, %s (%s)\n", c.name, d)
		c.err = b.tuiOne(ctx, t, c, ns("a"), dst, d)
	}
	rss := t.peakRSS()
	t.keys("q")
	return cases, rss, t.wait(10 * time.Second)
}

func (b *bench) tuiOne(ctx context.Context, t *terminal, c *tuiCase, from string, dst netip.AddrPort, d time.Duration) error {
	if c.paused {
		t.keys("p")
		if _, err := t.waitFor(ctx, 5*time.Second, regexp.MustCompile(`PAUSED`)); err != nil {
			return err
		}
		defer t.keys("p")
	}
	traffic, cancel := context.WithCancel(ctx)
	defer cancel()
	var sent atomic.Uint64
	errs := make(chan error, 1)
	if c.rate > 0 {
		go func() { errs <- pacedUDP(traffic, from, dst, c.rate, &sent) }()
		// Let the rate settle before measuring.
		time.Sleep(time.Second)
	}
	sent0 := sent.Load()
	seen0, _ := t.seen()
	seenAt0 := time.Now()
	cpu0, err := t.cpuTime()
	if err != nil {
		return err
	}
	out0, start := t.written(), time.Now()
	// Keys while it runs: the packet list and the topology in turn, each
	// press timed until the screen shows the pane.
	panes := []struct {
		key  string
		mark *regexp.Regexp
	}{{"1", regexp.MustCompile(`ADDRESSES`)}, {"2", regexp.MustCompile(`display filter:`)}}
	for i := 0; time.Since(start) < d; i++ {
		p := panes[i%2]
		if c.paused {
			break // the paused view is the packet list; no key needed
		}
		at := t.written()
		pressed := time.Now()
		t.keys(p.key)
		if _, err := t.waitForAfter(ctx, at, 5*time.Second, p.mark); err != nil {
			return fmt.Errorf("key %s: %w", p.key, err)
		}
		c.keys = append(c.keys, time.Since(pressed))
		time.Sleep(min(time.Second, time.Until(start.Add(d))))
	}
	for time.Since(start) < d {
		time.Sleep(time.Until(start.Add(d)))
	}
	cpu1, err := t.cpuTime()
	if err != nil {
		return err
	}
	c.seconds = time.Since(start).Seconds()
	c.sent = sent.Load() - sent0
	c.out = t.written() - out0
	// Back on the packet list, where the counts are.
	if !c.paused {
		t.keys("2")
	}
	time.Sleep(300 * time.Millisecond)
	seen1, _ := t.seen()
	seenAt1 := time.Now()
	cancel()
	if c.rate > 0 {
		if err := <-errs; err != nil && !errors.Is(err, context.Canceled) {
			return err
		}
	}
	c.cpu = (cpu1 - cpu0).Seconds() / c.seconds
	c.seen = float64(seen1-seen0) / seenAt1.Sub(seenAt0).Seconds()
	c.drops = t.kernelDrops()
	return nil
}

// pacedUDP sends small datagrams at rate a second until ctx ends, in
// bursts of what is due every millisecond, counting them in sent.
func pacedUDP(ctx context.Context, from string, dst netip.AddrPort, rate int, sent *atomic.Uint64) error {
	conn, err := probe.DialUDP(from, dst.String())
	if err != nil {
		return err
	}
	defer conn.Close()
	msg := make([]byte, 32)
	start, n := time.Now(), uint64(0)
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
		due := uint64(time.Since(start).Seconds() * float64(rate))
		for n < due {
			if _, err := conn.Write(msg); err != nil && !isBusy(err) {
				return fmt.Errorf("send: %w", err)
			}
			n++
			sent.Store(n)
		}
	}
}

func reportTUI(w io.Writer, cases []*tuiCase, rss int64, err error, d time.Duration) {
	fmt.Fprintf(w, "\nlabbench: labctl tui on an 80x24 terminal, capturing pod c's eth0 (host-gw lab) while pod a sends it UDP\n")
	fmt.Fprintf(w, "datagrams at a paced rate, %s per row; CPU is the labctl tui process's user+system time over the row,\n", d)
	fmt.Fprintf(w, "from /proc (issue 13 item 6); keys are 1 and 2 pressed in turn, timed until the screen shows the pane\n\n")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "load\tsent/s\tTUI counted/s\tkernel drops\tTUI CPU\ttarget\tok\tkey → screen, median (max)\tterminal output")
	for _, c := range cases {
		if c.err != nil {
			fmt.Fprintf(tw, "%s\t-\t-\t-\t-\t-\tERROR %v\t-\t-\n", c.name, c.err)
			continue
		}
		target, ok := "-", ""
		if c.rate > 0 {
			target = fmt.Sprintf("≤ %.0f%%", tuiCPUTarget*100)
			ok = verdict(c.cpu <= tuiCPUTarget && (len(c.keys) == 0 || median(c.keys) <= tuiKeyTarget))
		}
		keys := "-"
		if len(c.keys) > 0 {
			keys = medMax(c.keys)
		}
		fmt.Fprintf(tw, "%s\t%.0f\t%.0f\t%d\t%.1f%%\t%s\t%s\t%s\t%.1f KB/s\n", c.name, float64(c.sent)/c.seconds, c.seen, c.drops,
			c.cpu*100, target, ok, keys, float64(c.out)/c.seconds/1000)
	}
	tw.Flush()
	if rss > 0 {
		fmt.Fprintf(w, "\nThe TUI's peak resident memory: %.1f MiB (it keeps at most 10000 packets of at most 2 KiB).\n", mib(rss))
	}
	if err != nil {
		fmt.Fprintf(w, "labbench: tui: %v\n", err)
	}
}

// terminal is a program running on a pseudo-terminal of its own, its
// output read and kept.
type terminal struct {
	cmd  *exec.Cmd
	ptmx *os.File
	done chan error

	mu  sync.Mutex
	out bytes.Buffer
	n   int64
}

func startTerminal(exe string, w, h int, args ...string) (*terminal, error) {
	ptmx, pts, err := openPTY(w, h)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(exe, args...)
	cmd.Env = append(os.Environ(), "TERM=xterm-256color")
	cmd.Stdin, cmd.Stdout, cmd.Stderr = pts, pts, pts
	// Its own session with the terminal as its controlling one, as a
	// shell would start it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
	if err := cmd.Start(); err != nil {
		ptmx.Close()
		pts.Close()
		return nil, err
	}
	pts.Close()
	t := &terminal{cmd: cmd, ptmx: ptmx, done: make(chan error, 1)}
	go func() { t.done <- cmd.Wait() }()
	go t.read()
	return t, nil
}

// openPTY opens a pseudo-terminal pair of w×h.
func openPTY(w, h int) (ptmx, pts *os.File, err error) {
	ptmx, err = os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY|syscall.O_CLOEXEC, 0)
	if err != nil {
		return nil, nil, err
	}
	fd := int(ptmx.Fd())
	if err := unix.IoctlSetPointerInt(fd, unix.TIOCSPTLCK, 0); err != nil {
		ptmx.Close()
		return nil, nil, fmt.Errorf("unlockpt: %w", err)
	}
	n, err := unix.IoctlGetUint32(fd, unix.TIOCGPTN)
	if err != nil {
		ptmx.Close()
		return nil, nil, fmt.Errorf("ptsname: %w", err)
	}
	pts, err = os.OpenFile("/dev/pts/"+strconv.Itoa(int(n)), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		ptmx.Close()
		return nil, nil, err
	}
	if err := unix.IoctlSetWinsize(int(pts.Fd()), unix.TIOCSWINSZ, &unix.Winsize{Row: uint16(h), Col: uint16(w)}); err != nil {
		ptmx.Close()
		pts.Close()
		return nil, nil, fmt.Errorf("window size: %w", err)
	}
	return ptmx, pts, nil
}

// Questions a program may ask its terminal, and a dark terminal's answers:
// bubbletea v1 (through lipgloss and termenv) asks for the background
// colour when it starts and waits seconds for a terminal that does not
// answer, reading the keys typed meanwhile. labctl keeps it from asking
// (tui/internal/quietinit); the harness answers anyway, as a terminal
// would, so that the measurement never hangs on it.
var terminalAnswers = []struct{ question, answer string }{
	{"\x1b]11;?", "\x1b]11;rgb:1c1c/1c1c/1c1c\x1b\\"},
	{"\x1b[6n", "\x1b[1;1R"},
}

// read keeps the last 256 KiB the program wrote, counts all of it, and
// answers the questions a terminal answers.
func (t *terminal) read() {
	buf := make([]byte, 64<<10)
	for {
		n, err := t.ptmx.Read(buf)
		for _, qa := range terminalAnswers {
			if bytes.Contains(buf[:n], []byte(qa.question)) {
				_, _ = t.ptmx.WriteString(qa.answer)
			}
		}
		t.mu.Lock()
		t.out.Write(buf[:n])
		t.n += int64(n)
		if t.out.Len() > 512<<10 {
			keep := slices.Clone(t.out.Bytes()[t.out.Len()-256<<10:])
			t.out.Reset()
			t.out.Write(keep)
		}
		t.mu.Unlock()
		if err != nil {
			return
		}
	}
}

func (t *terminal) keys(s string) { _, _ = t.ptmx.WriteString(s) }

func (t *terminal) written() int64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.n
}

// waitFor waits until the output so far matches re.
func (t *terminal) waitFor(ctx context.Context, timeout time.Duration, re *regexp.Regexp) (string, error) {
	return t.waitForAfter(ctx, 0, timeout, re)
}

// waitForAfter waits until what was written after the first at bytes
// matches re.
func (t *terminal) waitForAfter(ctx context.Context, at int64, timeout time.Duration, re *regexp.Regexp) (string, error) {
	deadline := time.Now().Add(timeout)
	for {
		t.mu.Lock()
		kept := int64(t.out.Len())
		from := max(at-(t.n-kept), 0)
		var m []byte
		if from < kept {
			m = re.Find(t.out.Bytes()[from:])
		}
		t.mu.Unlock()
		if m != nil {
			return string(m), nil
		}
		select {
		case err := <-t.done:
			t.done <- err
			return "", fmt.Errorf("the program ended (%v) before writing %q", err, re)
		case <-ctx.Done():
			return "", ctx.Err()
		case <-time.After(2 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return "", fmt.Errorf("no %q after %s", re, timeout)
		}
	}
}

var seenCount = regexp.MustCompile(`(\d+) seen`)

// seen is the last packet count the status line showed.
func (t *terminal) seen() (uint64, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	all := seenCount.FindAllSubmatch(t.out.Bytes(), -1)
	if len(all) == 0 {
		return 0, false
	}
	n, err := strconv.ParseUint(string(all[len(all)-1][1]), 10, 64)
	return n, err == nil
}

var dropCount = regexp.MustCompile(`(\d+) dropped by kernel`)

// kernelDrops is the last count of kernel drops the status line showed.
func (t *terminal) kernelDrops() uint64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	all := dropCount.FindAllSubmatch(t.out.Bytes(), -1)
	if len(all) == 0 {
		return 0
	}
	n, _ := strconv.ParseUint(string(all[len(all)-1][1]), 10, 64)
	return n
}

// cpuTime is the process's user and system time so far (/proc/PID/stat).
func (t *terminal) cpuTime() (time.Duration, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", t.cmd.Process.Pid))
	if err != nil {
		return 0, err
	}
	// The command name may hold spaces: fields count from after its ')'.
	s := string(data)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(fields) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: %q", t.cmd.Process.Pid, s)
	}
	utime, _ := strconv.ParseInt(fields[11], 10, 64)
	stime, _ := strconv.ParseInt(fields[12], 10, 64)
	// The kernel counts in USER_HZ ticks, 100 a second on Linux.
	return time.Duration(utime+stime) * (time.Second / 100), nil
}

// peakRSS is the process's peak resident memory (VmHWM).
func (t *terminal) peakRSS() int64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", t.cmd.Process.Pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return kb << 10
		}
	}
	return 0
}

// wait waits for the program to end, killing it (our own child) after
// timeout.
func (t *terminal) wait(timeout time.Duration) error {
	select {
	case err := <-t.done:
		t.done <- err
		return err
	case <-time.After(timeout):
		_ = t.cmd.Process.Kill()
		err := <-t.done
		t.done <- err
		t.mu.Lock()
		tail := t.out.Bytes()[max(t.out.Len()-2000, 0):]
		t.mu.Unlock()
		return fmt.Errorf("it did not quit on q within %s; it wrote last: %q", timeout, tail)
	}
}

func (t *terminal) close() {
	select {
	case err := <-t.done:
		t.done <- err
	default:
		_ = t.cmd.Process.Kill()
		<-t.done
	}
	t.ptmx.Close()
}
