package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/labctl/labctl/emulator/lab"
	"github.com/labctl/labctl/emulator/trace"
)

type traceOptions struct {
	io      Streams
	manager lab.Manager
	lab     string
	from    string
	to      string
	icmp    bool
	tcp     uint16
	udp     uint16
	size    int
	df      bool
	timeout time.Duration
	output  string
}

// traceDoc is trace -o json: the journey with the kind and version.
type traceDoc struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	*trace.Journey
}

func newTraceCmd(g *globals) *cobra.Command {
	o := &traceOptions{io: g.io}
	cmd := &cobra.Command{
		Use:   "trace LAB FROM TO [--icmp | --tcp PORT | --udp PORT] [-o table|wide|json]",
		Short: "Send one packet between two places of a lab and show its journey, hop by hop",
		Long: `Send one probe from a pod, node or external host (FROM) to an address, pod,
node or external host (TO) while capturing on every interface of the lab, then
print where the packet went, one line per namespace it crossed: the interfaces
it came in and went out by, its TTL, and what happened there (the route that
sent it on, the bridge that switched it, the tunnel it entered or left,
addresses NAT rewrote); then the answer's way back. A traceroute that knows
the lab.

When the packet never arrives, trace says where it was last seen and the
likely reason: no route, too large for the next link with DF set, a neighbour
that never answered ARP, an nftables rule that dropped it.

The probe is an ICMP echo (the default, like ping), a TCP SYN to a port (an
answer is a SYN-ACK, or a RST when nothing listens), or a UDP datagram to a
port. Routes are looked up after the probe, as "ip route get" would.
trace exits 0 when the probe reached its destination (answered, or refused
there), 1 when it did not.

  -o table   one line per hop (the default)
  -o wide    with each hop's addresses and MAC addresses
  -o json    the whole journey, every sighting of every packet`,
		Example: `  labctl trace two-node pod1a pod2
  labctl trace two-node-vxlan pod1a 192.168.2.20 --tcp 80
  labctl trace two-node node1 pod2 --udp 53 -o json
  labctl trace two-node pod1a pod2 --size 1472 --df     # does a full-size packet fit?`,
		Args: exactArgs(3, "a lab, where to send from and where to: labctl trace LAB FROM TO"),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.manager = g.manager()
			o.lab, o.from, o.to = args[0], args[1], args[2]
			f := cmd.Flags()
			kinds := 0
			for _, k := range []string{"icmp", "tcp", "udp"} {
				if f.Changed(k) {
					kinds++
				}
			}
			switch {
			case kinds > 1:
				return usageErrorf("give one of --icmp, --tcp PORT and --udp PORT")
			case f.Changed("tcp") && o.tcp == 0 || f.Changed("udp") && o.udp == 0:
				return usageErrorf("--tcp and --udp take a port from 1 to 65535")
			}
			return runTrace(cmd.Context(), o)
		},
	}
	f := cmd.Flags()
	f.BoolVar(&o.icmp, "icmp", false, "send an ICMP echo request (the default)")
	f.Uint16Var(&o.tcp, "tcp", 0, "send a TCP SYN to `PORT`")
	f.Uint16Var(&o.udp, "udp", 0, "send a UDP datagram to `PORT`")
	f.IntVarP(&o.size, "size", "s", 0, "ICMP or UDP payload `BYTES` (default 56 for ICMP, as ping; 32 for UDP)")
	f.BoolVar(&o.df, "df", false, "set don't-fragment on the ICMP probe (as ping -M do)")
	f.DurationVar(&o.timeout, "timeout", trace.DefaultTimeout, "how long to wait for the answer")
	f.StringVarP(&o.output, "output", "o", "table", "table, wide or json")
	return cmd
}

func runTrace(ctx context.Context, o *traceOptions) error {
	p := trace.Probe{Protocol: trace.ICMP, Size: o.size, DontFragment: o.df}
	switch {
	case o.tcp != 0:
		p.Protocol, p.Port = trace.TCP, o.tcp
	case o.udp != 0:
		p.Protocol, p.Port = trace.UDP, o.udp
	}
	switch {
	case o.output != "table" && o.output != "wide" && o.output != "json":
		return usageErrorf("-o %q: give table, wide or json", o.output)
	case o.timeout <= 0:
		return usageErrorf("--timeout must be positive")
	case o.size < 0 || o.size > 65507:
		return usageErrorf("--size %d: give 0 to 65507 bytes", o.size)
	case p.Protocol == trace.TCP && o.size != 0:
		return usageErrorf("--size goes with --icmp or --udp: a TCP probe is a bare SYN")
	case p.Protocol != trace.ICMP && o.df:
		return usageErrorf("--df goes with --icmp: TCP and UDP set don't-fragment anyway")
	}
	name, err := labNameOf(o.lab)
	if err != nil {
		return err
	}
	st, err := o.manager.Status(name, lab.StatusOptions{})
	if err != nil {
		return err
	}
	req, err := trace.ForLab(st, o.from, o.to, p)
	if err != nil {
		return err
	}
	req.Timeout = trace.Duration(o.timeout)
	if err := req.Check(); err != nil {
		return usageErrorf("%v", err)
	}
	if os.Geteuid() != 0 {
		return notRootError{"trace"}
	}
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	defer stop()
	j, err := trace.Run(ctx, req)
	if err != nil {
		return fmt.Errorf("trace %q: %w", name, err)
	}
	if err := writeJourney(o.io.Out, j, o.output); err != nil {
		return err
	}
	// As ping does, exit 1 when the probe got no answer from its
	// destination: the journey printed says why.
	if !j.Request.Arrived {
		return exitStatus{code: exitFailure, quiet: true}
	}
	return nil
}

func writeJourney(w io.Writer, j *trace.Journey, output string) error {
	if output == "json" {
		enc := json.NewEncoder(w)
		enc.SetEscapeHTML(false) // packet lines hold ">"
		enc.SetIndent("", "  ")
		return enc.Encode(traceDoc{APIVersion: apiVersion, Kind: "Trace", Journey: j})
	}
	_, err := io.WriteString(w, j.Text(output == "wide"))
	return err
}
