package capture

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gopacket/gopacket/layers"

	"github.com/labctl/labctl/emulator/netns"
)

// Target is one place to capture: an interface of a network namespace, or
// all of them.
type Target struct {
	// Label names the namespace for people: the node or pod it is
	// ("node1", "pod2", "underlay"). Lines start with it ("node1:eth0
	// In ...") and recordings name their interfaces after it.
	Label string
	// Namespace is the namespace's path, such as
	// netns.Path("two-node-node1").
	Namespace string
	// Interface is the device, or "" for every device the namespace has
	// when capturing starts, except lo.
	Interface string
}

func (t Target) String() string {
	dev := t.Interface
	if dev == "" {
		dev = "*"
	}
	if t.Label == "" {
		return dev
	}
	return t.Label + ":" + dev
}

// Interface describes a network device of a namespace.
type Interface struct {
	Name     string
	Index    int
	LinkType layers.LinkType // Ethernet, or Raw for bare-IP devices (TUN, IPIP)
	Up       bool
}

// Interfaces lists the devices of the namespace at nsPath, in index order.
func Interfaces(nsPath string) ([]Interface, error) {
	var out []Interface
	err := netns.Do(nsPath, func() error {
		ifs, err := net.Interfaces()
		if err != nil {
			return fmt.Errorf("list interfaces: %w", err)
		}
		for _, ifi := range ifs {
			link := layers.LinkTypeEthernet
			if len(ifi.HardwareAddr) != 6 {
				link = layers.LinkTypeRaw // TUN has no address, tunl0 an IPv4 one
			}
			out = append(out, Interface{Name: ifi.Name, Index: ifi.Index, LinkType: link, Up: ifi.Flags&net.FlagUp != 0})
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("interfaces of %q: %w", nsPath, err)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Index < out[j].Index })
	return out, nil
}

// Ring sizes for a group: each capture gets an equal share of the budget,
// within these bounds, unless Options.BufferSize says otherwise.
const (
	groupRingBudget = 256 << 20
	groupRingMin    = 8 << 20
)

// Group captures on many interfaces of many namespaces at once and delivers
// their packets merged in timestamp order, in batches, on one channel: the
// request as it leaves a pod, crosses the node, enters the tunnel on the
// underlay and arrives, one after the other, whatever the interfaces.
//
// Every capture has its own ring in the kernel and its own reader, which
// decodes its packets; a merger holds them and lets a packet go once no
// capture can still hand over an earlier one. When the consumer stops
// reading, the readers stop too and the rings fill; when a ring is full the
// kernel drops its packets and counts them (Stats). Memory in this process
// stays bounded either way.
type Group struct {
	caps []*Capture
	out  chan []Packet
	in   chan batch

	stopOnce  sync.Once
	stopping  chan struct{} // Stop: deliver what was captured, then end
	closeOnce sync.Once
	closing   chan struct{} // Close: end now
	stopAt    time.Time     // when Stop was called
	mergerEnd chan struct{}
	readers   sync.WaitGroup

	stale atomic.Int64 // nanoseconds: see baseStaleness

	mu        sync.Mutex
	err       error
	final     []Stats // the captures' counts, taken before their sockets close
	delivered uint64
	late      uint64 // packets delivered after a later one
}

// batch is what a capture's reader hands the merger: one ring block's
// packets, sorted by time, or the news that the reader ended.
type batch struct {
	src  int
	pkts []Packet
	end  bool
}

// heldPerCapture bounds what the merger holds while it waits for every
// capture to catch up: this much per capture, at least heldMin in all,
// counting each packet's bytes and packetOverhead for the Packet and its
// decoding. Past it the merger lets its oldest packets go without waiting:
// order gives way (GroupStats.Late) so that the rings never fill because of
// it. At 100 ms of waiting that happens above about a gigabit per second.
const (
	heldPerCapture = 16 << 20
	heldMin        = 64 << 20
	packetOverhead = 512
)

func size(pkts []Packet) int {
	n := 0
	for _, p := range pkts {
		n += len(p.Data) + packetOverhead
	}
	return n
}

// maxBatch bounds a delivered batch.
const maxBatch = 4096

// Start opens a capture on every target, with opts for each (their Label
// comes from the target, Record is not used), and starts merging. A target
// without an interface becomes one capture per device of its namespace
// (lo left out). The zero BufferSize gives each capture an equal share of
// 256 MiB, between 8 MiB and DefaultRingSize. When any target cannot be
// opened, nothing is left open and the error names the target.
func Start(targets []Target, opts Options) (*Group, error) {
	if len(targets) == 0 {
		return nil, errors.New("capture: no interfaces to capture on")
	}
	opts.Record = nil
	var expanded []Target
	seen := map[string]bool{}
	for _, t := range targets {
		names := []string{t.Interface}
		if t.Interface == "" {
			ifs, err := Interfaces(t.Namespace)
			if err != nil {
				return nil, fmt.Errorf("capture on %s: %w", t, err)
			}
			names = names[:0]
			for _, ifi := range ifs {
				if ifi.Name != "lo" {
					names = append(names, ifi.Name)
				}
			}
			if len(names) == 0 {
				return nil, fmt.Errorf("capture on %s: the namespace has no interface besides lo", t)
			}
		}
		for _, name := range names {
			key := t.Namespace + "\x00" + name
			if seen[key] {
				continue // named twice, or once and again through a wildcard
			}
			seen[key] = true
			expanded = append(expanded, Target{Label: t.Label, Namespace: t.Namespace, Interface: name})
		}
	}
	if opts.BufferSize <= 0 && !opts.PlainSocket {
		opts.BufferSize = min(max(groupRingBudget/len(expanded), groupRingMin), DefaultRingSize)
	}
	g := &Group{
		out:       make(chan []Packet, 8),
		in:        make(chan batch, 64*len(expanded)),
		stopping:  make(chan struct{}),
		closing:   make(chan struct{}),
		mergerEnd: make(chan struct{}),
	}
	for _, t := range expanded {
		o := opts
		o.Label = t.Label
		c, err := Open(t.Namespace, t.Interface, o)
		if err != nil {
			for _, c := range g.caps {
				c.Close()
			}
			return nil, fmt.Errorf("capture on %s: %w", t, err)
		}
		g.caps = append(g.caps, c)
	}
	g.final = make([]Stats, len(g.caps))
	g.stale.Store(int64(baseStaleness))
	for i := range g.caps {
		g.readers.Add(1)
		go g.read(i)
	}
	go g.merge()
	return g, nil
}

// Captures returns the group's captures, one per interface, in the order
// of the targets. Use them for their names and Stats; reading from them
// would take packets from the group.
func (g *Group) Captures() []*Capture { return g.caps }

// Packets delivers the captured packets in timestamp order, in batches of
// those that became ready together. It is closed after Stop once every
// packet captured until then is delivered, after Close at once, or when a
// capture fails (Err says why).
func (g *Group) Packets() <-chan []Packet { return g.out }

// Stop ends capturing. Packets captured until now are still delivered,
// which takes a few milliseconds; then Packets is closed.
func (g *Group) Stop() {
	g.stopOnce.Do(func() {
		g.mu.Lock()
		g.stopAt = time.Now()
		g.mu.Unlock()
		close(g.stopping)
	})
}

// Close stops at once and releases every socket and ring. Packets not yet
// delivered are lost. It returns the first error a capture met.
func (g *Group) Close() error {
	g.Stop()
	g.closeOnce.Do(func() {
		close(g.closing)
		g.readers.Wait()
		<-g.mergerEnd
		for i, c := range g.caps {
			if st, err := c.Stats(); err == nil {
				g.mu.Lock()
				g.final[i] = st
				g.mu.Unlock()
			}
			c.Close()
		}
	})
	return g.Err()
}

// Err returns the error that ended the group early, nil when it ended by
// Stop or Close.
func (g *Group) Err() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.err
}

func (g *Group) fail(err error) {
	g.mu.Lock()
	if g.err == nil {
		g.err = err
	}
	g.mu.Unlock()
	g.Stop()
}

// GroupStats counts a group's packets: each capture's, and what the merger
// delivered.
type GroupStats struct {
	Captures []Stats // in the order of Captures()
	// Delivered counts packets sent on Packets.
	Delivered uint64
	// Late counts packets delivered after one stamped later, because
	// their capture handed them over later than it could be waited for.
	Late uint64
	// Dropped and Freezes add up the captures' counts.
	Dropped, Freezes uint64
}

// Stats returns the counts so far, final once Close returned.
func (g *Group) Stats() GroupStats {
	var st GroupStats
	for i, c := range g.caps {
		s, err := c.Stats()
		g.mu.Lock()
		if err == nil {
			g.final[i] = s
		}
		s = g.final[i]
		g.mu.Unlock()
		st.Captures = append(st.Captures, s)
		st.Dropped += s.Dropped
		st.Freezes += s.Freezes
	}
	g.mu.Lock()
	st.Delivered, st.Late = g.delivered, g.late
	g.mu.Unlock()
	return st
}

// read is capture i's reader: it takes the capture's packets block by
// block, sorts each block by time and hands it to the merger.
func (g *Group) read(i int) {
	defer g.readers.Done()
	c := g.caps[i]
	// Reading ends a little after Stop, so that a packet sitting in a
	// block the kernel has not handed over yet still comes out.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-g.stopping:
			wait := time.Until(g.stoppedAt().Add(ringHold + g.staleness()))
			select {
			case <-time.After(wait):
			case <-g.closing:
			case <-ctx.Done():
			}
			cancel()
		case <-ctx.Done():
		}
	}()
	wait := true
	for {
		rctx := ctx
		if !wait {
			rctx = context.Background() // the last look, after Stop
		}
		c.readMu.Lock()
		pkts, done, err := c.take(rctx, wait)
		if err != nil {
			c.readMu.Unlock()
			if errors.Is(err, context.Canceled) && wait {
				wait = false // take what is ready, then end
				continue
			}
			if !errors.Is(err, ErrClosed) && !errors.Is(err, context.Canceled) {
				g.fail(fmt.Errorf("capture on %s: %w", c.Where(), err))
			}
			break
		}
		if len(pkts) == 0 { // nothing ready after Stop
			done()
			c.readMu.Unlock()
			break
		}
		slices.SortStableFunc(pkts, func(a, b Packet) int { return a.Time.Compare(b.Time) })
		if !wait && pkts[0].Time.After(g.stoppedAt()) {
			// Traffic goes on after Stop: the rings never run dry, and
			// what they hold now came after it.
			done()
			c.readMu.Unlock()
			break
		}
		g.noteStale(time.Since(pkts[0].Time))
		select {
		case g.in <- batch{src: i, pkts: pkts}:
		case <-g.closing:
			done()
			c.readMu.Unlock()
			return
		}
		c.count(len(pkts))
		done()
		c.readMu.Unlock()
	}
	select {
	case g.in <- batch{src: i, end: true}:
	case <-g.closing:
	}
}

func (g *Group) staleness() time.Duration { return time.Duration(g.stale.Load()) }

func (g *Group) stoppedAt() time.Time {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.stopAt
}

// noteStale takes in how old a block's oldest packet was when its reader
// got it: a packet still to come may be about as old, and a quarter more
// leaves room for the next, worse one.
func (g *Group) noteStale(d time.Duration) {
	d = min(d+d/4+5*time.Millisecond, maxStaleness)
	for {
		cur := g.stale.Load()
		if int64(d) <= cur || g.stale.CompareAndSwap(cur, int64(d)) {
			return
		}
	}
}

// decayStale lets the wait shrink again when the machine calms down, by
// half in about three seconds: load comes in waves.
func (g *Group) decayStale() {
	cur := g.stale.Load()
	g.stale.CompareAndSwap(cur, max(int64(baseStaleness), cur-cur/1024))
}

// merge releases packets in timestamp order: a packet goes once no capture
// can still hand over an earlier one. What a capture can still hand over is
// bounded by its queue here, by the first packet of its ring's next ready
// block, and by the clock: the kernel hands a block over within ringHold,
// and a packet reaches its ring up to the measured staleness after the
// stack stamped it.
func (g *Group) merge() {
	defer close(g.mergerEnd)
	defer close(g.out)
	n := len(g.caps)
	queues := make([][]Packet, n) // per capture, sorted by time
	ended := make([]bool, n)
	held, limit := 0, max(heldMin, n*heldPerCapture)
	live := n
	tick := time.NewTicker(ringTimeout * time.Millisecond)
	defer tick.Stop()
	var last time.Time
	for {
		now, stale := time.Now(), g.staleness()
		// bound: nothing earlier can come from a capture's kernel side.
		var bound time.Time
		bounded := false
		for i := range queues {
			if ended[i] {
				continue
			}
			low := now.Add(-ringHold - stale) // a plain socket cannot be looked into
			if r := g.caps[i].ring; r != nil {
				low = r.low(now, stale)
			}
			if !bounded || low.Before(bound) {
				bound, bounded = low, true
			}
		}
		// A k-way merge of the queues up to the bound: the capture with
		// the earliest head gives a run up to the next capture's head.
		var out []Packet
		for {
			first, second := -1, -1
			for i, q := range queues {
				switch {
				case len(q) == 0:
				case first < 0 || q[0].Time.Before(queues[first][0].Time):
					first, second = i, first
				case second < 0 || q[0].Time.Before(queues[second][0].Time):
					second = i
				}
			}
			// Over the memory bound, the oldest go without waiting.
			forced := held > limit
			if first < 0 || (bounded && !forced && queues[first][0].Time.After(bound)) {
				break
			}
			upTo, upToSet := bound, bounded && !forced
			if second >= 0 {
				if h := queues[second][0].Time; !upToSet || h.Before(upTo) {
					upTo, upToSet = h, true
				}
			}
			q := queues[first]
			k := 1
			for k < len(q) && (!upToSet || !q[k].Time.After(upTo)) {
				k++
			}
			out = append(out, q[:k]...)
			queues[first] = q[k:]
			held -= size(q[:k])
		}
		if len(out) > 0 {
			late := 0
			for _, p := range out {
				if p.Time.Before(last) {
					late++
				} else {
					last = p.Time
				}
			}
			g.mu.Lock()
			g.late += uint64(late)
			g.mu.Unlock()
			for len(out) > 0 {
				k := min(len(out), maxBatch)
				select {
				case g.out <- out[:k]:
					g.mu.Lock()
					g.delivered += uint64(k)
					g.mu.Unlock()
				case <-g.closing:
					return
				}
				out = out[k:]
			}
		}
		if live == 0 {
			return
		}
		select {
		case b := <-g.in:
			if b.end {
				ended[b.src] = true
				live--
			} else {
				queues[b.src] = mergeSorted(queues[b.src], b.pkts)
				held += size(b.pkts)
			}
		case <-tick.C:
			g.decayStale()
		case <-g.closing:
			return
		}
	}
}

// mergeSorted merges two time-sorted runs; mostly b simply follows a.
func mergeSorted(a, b []Packet) []Packet {
	if len(a) == 0 || !b[0].Time.Before(a[len(a)-1].Time) {
		return append(a, b...)
	}
	out := make([]Packet, 0, len(a)+len(b))
	for len(a) > 0 && len(b) > 0 {
		if b[0].Time.Before(a[0].Time) {
			out, b = append(out, b[0]), b[1:]
		} else {
			out, a = append(out, a[0]), a[1:]
		}
	}
	return append(append(out, a...), b...)
}

// Describe lists the captures of a group for a "listening on" line:
// "node1:eth0 (Ethernet), node1:tunl0 (raw IP)".
func (g *Group) Describe() string {
	var parts []string
	for _, c := range g.caps {
		kind := "Ethernet"
		if c.link == layers.LinkTypeRaw {
			kind = "raw IP"
		}
		parts = append(parts, fmt.Sprintf("%s (%s)", c.Where(), kind))
	}
	return strings.Join(parts, ", ")
}
