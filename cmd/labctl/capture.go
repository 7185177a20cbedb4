package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/gopacket/gopacket/layers"
	"github.com/spf13/cobra"

	"github.com/labctl/labctl/emulator/capture"
	"github.com/labctl/labctl/emulator/lab"
	"github.com/labctl/labctl/emulator/netns"
	"github.com/labctl/labctl/emulator/quantity"
	"github.com/labctl/labctl/emulator/spec"
)

type captureOptions struct {
	io       Streams
	manager  lab.Manager
	lab      string
	targets  []string
	write    string
	count    int
	duration time.Duration
	filter   string
	print    bool
	snaplen  int
	buffer   string
	plain    bool
}

func newCaptureCmd(g *globals) *cobra.Command {
	o := &captureOptions{io: g.io}
	cmd := &cobra.Command{
		Use: "capture LAB TARGET[:IFACE]... [flags]",
		Example: `  sudo labctl capture two-node-vxlan node1:eth0 pod2:eth0 -w lab.pcapng
  sudo labctl capture two-node-vxlan underlay -f 'udp port 8472 and inner icmp'
  sudo labctl capture two-node '*' -c 20
  sudo labctl capture two-node node1 --duration 10s -w - | tshark -r -`,
		Short: "Capture packets on interfaces of a lab's nodes, pods, external hosts and underlay, like tcpdump",
		Long: `Capture packets on any interfaces of a lab at once and print them one per
line, as tcpdump -n does, after where they were seen; VXLAN (UDP 8472 and 4789,
and the lab's own port) and IPIP packets show what they carry. Packets from all
interfaces come out in the order they were seen. -w writes them to a pcapng
file, one interface record per place ("node1:eth0"), for Wireshark, tshark,
capinfos and tcpdump.

A TARGET is a node, a pod, an external host, "router" or "underlay"; NODE:IFACE
picks one interface, a bare name or NAME:* all of its interfaces but lo, and
"*" (quoted) every interface of the lab ("*:eth0": every eth0).

The filter is tcpdump's language: host, net, port, portrange, proto, ip, ip6,
arp, tcp, udp, icmp, src/dst, and/or/not, parentheses. It sees the outer
headers, as tcpdump does; "inner" looks inside VXLAN and IPIP instead:

  labctl capture two-node-vxlan underlay -f 'inner host 192.168.2.20'
  labctl capture two-node node1:eth0 pod2:eth0 -w lab.pcapng -c 100
  labctl capture two-node '*' -f 'icmp or arp' --duration 10s

Ctrl-C stops: the file is complete, and the counts say how many packets were
captured and how many the kernel had to drop.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) < 2 {
				return usageErrorf("capture needs a lab and at least one target: labctl capture LAB NODE[:IFACE]... (or '*' for every interface)")
			}
			o.lab, o.targets, o.manager = args[0], args[1:], g.manager()
			return runCapture(cmd.Context(), o)
		},
	}
	f := cmd.Flags()
	f.StringVarP(&o.write, "write", "w", "", "write the packets to this pcapng file (- for standard output), instead of printing them")
	f.IntVarP(&o.count, "count", "c", 0, "stop after this many packets")
	f.DurationVar(&o.duration, "duration", 0, "stop after this long (e.g. 10s)")
	f.StringVarP(&o.filter, "filter", "f", "", "keep only packets matching this tcpdump-style expression")
	f.BoolVar(&o.print, "print", false, "print the packets also while writing them with -w")
	f.IntVarP(&o.snaplen, "snapshot-length", "s", 0, "keep at most this many bytes of each packet (default: whole packets)")
	f.StringVarP(&o.buffer, "buffer-size", "B", "", "kernel buffer per interface, e.g. 64Mi (default: 64Mi, less when capturing on many)")
	f.BoolVar(&o.plain, "plain-socket", false, "read with a plain socket instead of a memory-mapped ring (slower; for comparison)")
	_ = f.MarkHidden("plain-socket")
	return cmd
}

func runCapture(ctx context.Context, o *captureOptions) error {
	switch {
	case o.count < 0:
		return usageErrorf("--count must not be negative")
	case o.duration < 0:
		return usageErrorf("--duration must not be negative")
	case o.snaplen < 0:
		return usageErrorf("--snapshot-length must not be negative")
	case o.print && o.write == "":
		return usageErrorf("--print goes with -w: without -w packets are printed anyway")
	case o.print && o.write == "-":
		return usageErrorf("--print cannot share standard output with -w -")
	}
	opts := capture.Options{Snaplen: o.snaplen, PlainSocket: o.plain}
	if o.buffer != "" {
		n, err := quantity.ParseMemory(o.buffer)
		if err != nil || n < 1<<20 || n > 4<<30 {
			return usageErrorf("--buffer-size %q: give 1Mi to 4Gi (e.g. 64Mi)", o.buffer)
		}
		opts.BufferSize = int(n)
	}
	if o.filter != "" {
		expr, err := capture.ParseExpr(o.filter)
		if err != nil {
			return usageErrorf("%v", err)
		}
		opts.Expr = expr
	}
	name, err := labNameOf(o.lab)
	if err != nil {
		return err
	}
	found, err := resolveCapture(o.manager, name, o.targets)
	if err != nil {
		return err
	}
	if os.Geteuid() != 0 {
		return notRootError{"capture"}
	}
	opts.VXLANPorts = found.vxlanPorts
	printing := o.write == "" || o.print
	opts.SkipDecode = !printing

	group, err := capture.Start(found.targets, opts)
	if err != nil {
		return fmt.Errorf("capture %q: %w", name, err)
	}
	defer group.Close()

	stderr, stdout := o.io.ErrOut, o.io.Out
	var pw *capture.PcapngWriter
	var file io.WriteCloser
	if o.write != "" {
		if o.write == "-" {
			file = nopCloser{stdout}
		} else if file, err = os.Create(o.write); err != nil {
			return fmt.Errorf("capture %q: %w", name, err)
		}
		pw = capture.NewPcapngWriter(bufio.NewWriterSize(file, 1<<20))
		pw.FakeEthernet = true // one link type for the whole file, so tcpdump reads it
		for _, c := range group.Captures() {
			if err := pw.Declare(c); err != nil {
				file.Close()
				return fmt.Errorf("capture %q: %s: %w", name, o.write, err)
			}
		}
	}
	snap := o.snaplen
	if snap == 0 {
		snap = capture.DefaultSnaplen
	}
	fmt.Fprintf(stderr, "labctl: listening on %s, snapshot length %d bytes\n", group.Describe(), snap)
	for _, c := range group.Captures() {
		if c.LinkType() == layers.LinkTypeRaw && pw != nil {
			fmt.Fprintf(stderr, "labctl: %s carries bare IP packets: the file gives them a made-up Ethernet header (zero MACs) so that tcpdump reads it\n", c.Where())
		}
	}

	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	defer stop()
	if o.duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, o.duration)
		defer cancel()
	}
	gone := watchNamespaces(ctx, found.namespaces)

	start := time.Now()
	out := bufio.NewWriter(stdout)
	var captured int
	var stopped string
	var werr error
	packets := group.Packets()
loop:
	for {
		select {
		case batch, ok := <-packets:
			if !ok {
				break loop
			}
			for _, p := range batch {
				if o.count > 0 && captured == o.count {
					break
				}
				captured++
				if printing {
					fmt.Fprintf(out, "%s %s\n", p.Time.Format("15:04:05.000000"), p.String())
				}
				if pw != nil && werr == nil {
					werr = pw.WritePacket(p)
				}
			}
			if printing {
				if err := out.Flush(); err != nil && werr == nil {
					werr = fmt.Errorf("standard output: %w", err)
				}
			}
			if pw != nil && werr == nil {
				werr = pw.Flush() // a reader at the other end of a pipe sees packets as they come
			}
			if werr != nil || (o.count > 0 && captured >= o.count) {
				group.Close()
				break loop
			}
		case <-ctx.Done():
			ctx = context.Background() // ends nothing more; the group drains
			group.Stop()
		case ns := <-gone:
			stopped = fmt.Sprintf("namespace %q went away (was the lab taken down?): stopped", filepath.Base(ns))
			gone = nil
			group.Stop()
		}
	}
	end := time.Now()
	group.Close()
	st := group.Stats()
	if pw != nil && werr == nil {
		for i, c := range group.Captures() {
			if werr = pw.WriteStats(c, st.Captures[i], start, end); werr != nil {
				break
			}
		}
		if werr == nil {
			werr = pw.Flush()
		}
	}
	if file != nil {
		if err := file.Close(); err != nil && werr == nil {
			werr = err
		}
	}
	if stopped != "" {
		fmt.Fprintln(stderr, "labctl: "+stopped)
	}
	reportCapture(stderr, group, st, captured, o, found)
	if werr != nil {
		return fmt.Errorf("capture %q: %s: %w", name, o.write, werr)
	}
	if err := group.Err(); err != nil {
		return fmt.Errorf("capture %q: %w", name, err)
	}
	return nil
}

// reportCapture says how it went, as tcpdump does when it stops.
func reportCapture(w io.Writer, group *capture.Group, st capture.GroupStats, captured int, o *captureOptions, found captureLab) {
	fmt.Fprintf(w, "%d %s captured, %d dropped by kernel\n", captured, plural(captured, "packet"), st.Dropped)
	for i, c := range group.Captures() {
		if s := st.Captures[i]; s.Dropped > 0 {
			fmt.Fprintf(w, "  %s: %d dropped by kernel (its buffer filled %d %s; -B gives it more)\n",
				c.Where(), s.Dropped, s.Freezes, plural(int(s.Freezes), "time"))
		}
	}
	if st.Late > 0 {
		fmt.Fprintf(w, "%d %s reached labctl after packets stamped later (a busy machine); the order of those is approximate\n",
			st.Late, plural(int(st.Late), "packet"))
	}
	if o.write != "" && o.write != "-" && found.vxlan && len(found.vxlanPorts) > 0 && found.vxlanPorts[0] != 4789 {
		port := found.vxlanPorts[0]
		fmt.Fprintf(w, "Wireshark decodes VXLAN on port 4789 only; for this lab's %d: wireshark -d udp.port==%d,vxlan %s (tshark takes -d too)\n", port, port, o.write)
	}
}

type nopCloser struct{ io.Writer }

func (nopCloser) Close() error { return nil }

// captureLab is what capture needs to know of a lab.
type captureLab struct {
	targets    []capture.Target
	namespaces []string // names under /run/netns, to notice the lab going away
	vxlanPorts []uint16 // the lab's VXLAN port
	vxlan      bool     // some node pair uses VXLAN
}

// resolveCapture turns TARGET[:IFACE] arguments into capture targets, from
// the lab's record: nodes, pods, external hosts, the router and the
// underlay by name, "*" for all.
func resolveCapture(m lab.Manager, name string, args []string) (captureLab, error) {
	var out captureLab
	rec, err := m.Load(name)
	if err != nil {
		return out, err
	}
	if t := rec.Topology; t != nil {
		if t.Network.VXLAN.Port != 0 {
			out.vxlanPorts = []uint16{uint16(t.Network.VXLAN.Port)}
		}
		out.vxlan = slices.Contains(t.Backends(), spec.BackendVXLAN)
	}
	type place struct{ label, ns string }
	var places []place
	byLabel := map[string]place{}
	for _, ns := range rec.Namespaces {
		label := ns.Object
		if label == "" {
			label = "underlay"
		}
		p := place{label, netns.Path(ns.Name)}
		places = append(places, p)
		byLabel[label] = p
	}
	known := func() string {
		var names []string
		for _, p := range places {
			names = append(names, p.label)
		}
		return strings.Join(names, ", ")
	}
	seenNS := map[string]bool{}
	add := func(p place, iface string) {
		out.targets = append(out.targets, capture.Target{Label: p.label, Namespace: p.ns, Interface: iface})
		if !seenNS[p.ns] {
			seenNS[p.ns] = true
			out.namespaces = append(out.namespaces, p.ns)
		}
	}
	for _, arg := range args {
		who, iface, _ := strings.Cut(arg, ":")
		if iface == "*" {
			iface = ""
		}
		if iface != "" {
			if err := checkIfaceName(iface); err != nil {
				return out, usageErrorf("target %q: %v", arg, err)
			}
		}
		if who == "*" {
			for _, p := range places {
				if iface != "" && !hasInterface(p.ns, iface) {
					continue // "*:eth0": the places that have one
				}
				add(p, iface)
			}
			continue
		}
		p, ok := byLabel[who]
		if !ok {
			return out, fmt.Errorf("lab %q has no node, pod or external host %q (it has: %s): %w", name, who, known(), lab.ErrNotFound)
		}
		if iface != "" {
			ifs, err := capture.Interfaces(p.ns)
			if err != nil {
				return out, fmt.Errorf("target %q: %w", arg, err)
			}
			var names []string
			for _, ifi := range ifs {
				names = append(names, ifi.Name)
			}
			if !slices.Contains(names, iface) {
				slices.Sort(names)
				return out, fmt.Errorf("%s has no interface %q (it has: %s): %w", who, iface, strings.Join(names, ", "), lab.ErrNotFound)
			}
		}
		add(p, iface)
	}
	if len(out.targets) == 0 {
		return out, fmt.Errorf("no interface of lab %q matches %s: %w", name, strings.Join(args, " "), lab.ErrNotFound)
	}
	return out, nil
}

func hasInterface(ns, iface string) bool {
	ifs, err := capture.Interfaces(ns)
	return err == nil && slices.ContainsFunc(ifs, func(i capture.Interface) bool { return i.Name == iface })
}

// checkIfaceName refuses what cannot be a Linux interface name.
func checkIfaceName(s string) error {
	if len(s) > 15 || strings.ContainsAny(s, "/: \t\n") || s == "." || s == ".." {
		return errors.New("not an interface name (at most 15 characters, no '/', ':' or blanks)")
	}
	return nil
}

// watchNamespaces reports a namespace whose name disappears from /run/netns
// while capturing: a capture's sockets keep a deleted namespace alive, so
// without this a capture would go on, silently, after labctl down.
func watchNamespaces(ctx context.Context, paths []string) <-chan string {
	ch := make(chan string, 1)
	go func() {
		t := time.NewTicker(500 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				for _, p := range paths {
					if _, err := os.Stat(p); errors.Is(err, os.ErrNotExist) {
						ch <- p
						return
					}
				}
			}
		}
	}()
	return ch
}
