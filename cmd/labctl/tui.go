package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/labctl/labctl/emulator/capture"
	"github.com/labctl/labctl/emulator/lab"
	"github.com/labctl/labctl/emulator/scenario"
	"github.com/labctl/labctl/emulator/spec"
	"github.com/labctl/labctl/tui"
)

type tuiOptions struct {
	io       Streams
	manager  lab.Manager
	scenario string
	filter   string
	keep     int
}

func newTuiCmd(g *globals) *cobra.Command {
	o := &tuiOptions{io: g.io}
	cmd := &cobra.Command{
		Use:   "tui [LAB|FILE] [TARGET[:IFACE]...] [--scenario FILE] [-f EXPR]",
		Short: "Watch a lab live in the terminal: its topology, packets with every header, probes with their trace",
		Long: `Open a terminal view of a lab that is up: its nodes, pods, interfaces, addresses,
backends and containers (1 Topology); the packets crossing the interfaces you
pick, coloured by protocol (2 Packets); every header of one packet, outside and
inside its tunnel (3 Detail); a ping or an HTTP GET between two nodes or pods,
followed by the trace of one more packet of the same kind (4 Probe); and with
--scenario, the scenario's checks graded against the lab, live (5 Scenario).

In the topology pane, space picks an interface (a: all), c captures on the
picked ones. / sets a display filter and f a capture filter, both in tcpdump's
language (host, net, port, proto, tcp, udp, icmp, arp, and/or/not, and "inner"
to look inside VXLAN and IPIP); p pauses the list while packets are still
counted; w saves what the list shows as pcapng. The keys of the moment are
always on the bottom line; ? lists them all.

TARGETs pick interfaces and start capturing right away, as labctl capture
names them (pod1a:eth0, node1 for all of node1's, '*' for the whole lab).
Without LAB the one lab that is up is shown. A topology FILE that is not up
shows its graph only.`,
		Example: `  sudo labctl tui two-node
  sudo labctl tui two-node-vxlan pod1a:eth0 underlay -f 'icmp or udp port 8472'
  sudo labctl tui --scenario scenarios/two-node-basics.yaml
  labctl tui topologies/three-node-mixed.yaml        # the graph of a file, no root needed`,
		RunE: func(cmd *cobra.Command, args []string) error {
			o.manager = g.manager()
			return runTui(cmd.Context(), o, args)
		},
		ValidArgsFunction: completer{g}.labs,
	}
	f := cmd.Flags()
	f.StringVar(&o.scenario, "scenario", "", "grade the lab against this scenario's checks in a pane of its own")
	f.StringVarP(&o.filter, "filter", "f", "", "capture filter in tcpdump's language (f changes it in the TUI)")
	f.IntVar(&o.keep, "keep", tui.DefaultKeep, "packets the list keeps (the oldest go first)")
	return cmd
}

func runTui(ctx context.Context, o *tuiOptions, args []string) error {
	if o.keep < 100 || o.keep > 1_000_000 {
		return usageErrorf("--keep %d: give 100 to 1000000 packets", o.keep)
	}
	opt := tui.Options{Keep: o.keep}
	if o.filter != "" {
		expr, err := capture.ParseExpr(o.filter)
		if err != nil {
			return usageError{err.Error()}
		}
		opt.KernelFilter = expr
	}
	var s *scenario.Scenario
	if o.scenario != "" {
		var err error
		if s, err = loadScenario(o.scenario); err != nil {
			return err
		}
		opt.Scenario = s
	}
	if len(args) > 0 && isTopologyFile(args[0]) {
		if len(args) > 1 || s != nil || o.filter != "" {
			return usageErrorf("a topology file is shown as a graph only: capture targets, --scenario and -f need a lab that is up (sudo labctl up %s)", args[0])
		}
		t, err := spec.Load(args[0])
		if err != nil {
			return err
		}
		if _, err := o.manager.Load(t.Name); err == nil {
			fmt.Fprintf(o.io.ErrOut, "labctl: lab %q is up: showing the file; `sudo labctl tui %s` shows the running lab\n", t.Name, t.Name)
		}
		opt.Topology, opt.File = t, args[0]
		return runTerminal(ctx, o, opt)
	}
	name, err := tuiLabName(o.manager, args, s)
	if err != nil {
		return err
	}
	if _, err := o.manager.Load(name); err != nil {
		return err
	}
	if len(args) > 1 {
		for _, t := range args[1:] {
			who, iface, _ := strings.Cut(t, ":")
			if iface != "" && iface != "*" {
				if err := checkIfaceName(iface); err != nil {
					return usageErrorf("target %q: %v", t, err)
				}
			}
			if who == "" {
				return usageErrorf("target %q: name a node, a pod, underlay or '*'", t)
			}
			if iface == "*" {
				t = who
			}
			opt.Capture = append(opt.Capture, t)
		}
	}
	if os.Geteuid() != 0 {
		return notRootError{"tui"}
	}
	opt.Lab = name
	opt.Backend = tui.Live{Manager: o.manager, Lab: name}
	return runTerminal(ctx, o, opt)
}

// tuiLabName is the lab to show: the one named, the scenario's, or the
// only one that is up.
func tuiLabName(m lab.Manager, args []string, s *scenario.Scenario) (string, error) {
	switch {
	case len(args) > 0:
		return labNameOf(args[0])
	case s != nil:
		return s.Topology.Name, nil
	}
	recs, _, err := m.List()
	if err != nil {
		return "", err
	}
	switch len(recs) {
	case 0:
		return "", fmt.Errorf("no lab is up: bring one up (sudo labctl up FILE), or see a topology file with labctl tui FILE: %w", lab.ErrNotFound)
	case 1:
		return recs[0].Name, nil
	}
	var names []string
	for _, r := range recs {
		names = append(names, r.Name)
	}
	return "", usageErrorf("%d labs are up (%s): name the one to show: labctl tui LAB", len(recs), strings.Join(names, ", "))
}

// runTerminal runs the TUI on the command's terminal.
func runTerminal(ctx context.Context, o *tuiOptions, opt tui.Options) error {
	in, ok := o.io.In.(*os.File)
	if !ok || !isTerminal(in) || !isTerminal(o.io.Out) {
		return usageErrorf("labctl tui needs a terminal for its input and output (for a stream of packets: labctl capture)")
	}
	// Ctrl-C is a key in the TUI's raw mode; a closed terminal or a
	// kill ends it here.
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGTERM, syscall.SIGHUP)
	defer stop()
	return tui.Run(ctx, opt, in, o.io.Out)
}
