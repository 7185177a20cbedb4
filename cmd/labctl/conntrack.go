package main

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/labctl/labctl/emulator/conntrack"
	"github.com/labctl/labctl/emulator/lab"
)

type conntrackOptions struct {
	io      Streams
	manager lab.Manager
	lab     string
	target  string
	output  string
	proto   string
	dst     string
	nat     bool
}

func newConntrackCmd(g *globals) *cobra.Command {
	o := &conntrackOptions{io: g.io}
	cmd := &cobra.Command{
		Use:   "conntrack NODE|POD [--lab NAME] [flags]",
		Short: "List a node's connection tracking table, where services' NAT shows",
		Long: `List the connection tracking entries of a node (or pod), read over netlink,
as conntrack -L prints them inside the node's namespace.

Each entry has two tuples: the original, as the first packet's sender wrote
it, and the reply, as the answer must look. Where they are not mirror images
the kernel rewrote addresses: a connection to a ClusterIP shows the service
address in the original and the endpoint that kube-proxy's DNAT chose in the
reply; masquerading shows as a reply addressed to the node instead of the pod.
The entries of a connection live on the node where it entered the service
(the client pod's node).

-o json and -o yaml print one document (kind ConntrackList) with dnat and snat
marked on each entry. Needs root.`,
		Example: `  sudo labctl conntrack node-2
  sudo labctl conntrack node-0 --dst 10.96.0.2        # connections to the ClusterIP
  sudo labctl conntrack node-1 --nat -p tcp -o json`,
		Args: exactArgs(1, "one node or pod"),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.target = args[0]
			o.manager = g.manager()
			return runConntrack(o)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.lab, "lab", "", "the lab to look in when several are up")
	f.StringVarP(&o.output, "output", "o", outTable, "output format: table, json or yaml")
	f.StringVarP(&o.proto, "proto", "p", "", "only this protocol: tcp, udp or icmp")
	f.StringVarP(&o.dst, "dst", "d", "", "only entries whose original destination is this address")
	f.BoolVar(&o.nat, "nat", false, "only entries whose addresses the kernel rewrote (DNAT or SNAT)")
	return cmd
}

func runConntrack(o *conntrackOptions) error {
	if !slices.Contains([]string{outTable, outJSON, outYAML}, o.output) {
		return usageErrorf("unknown output format %q (use table, json or yaml)", o.output)
	}
	if o.proto != "" && !slices.Contains([]string{"tcp", "udp", "icmp"}, o.proto) {
		return usageErrorf("--proto %q: use tcp, udp or icmp", o.proto)
	}
	var dst netip.Addr
	if o.dst != "" {
		var err error
		if dst, err = netip.ParseAddr(o.dst); err != nil {
			return usageErrorf("--dst %q is not an IP address", o.dst)
		}
	}
	t, flows, err := o.manager.Conntrack(o.lab, o.target)
	if err != nil {
		return err
	}
	flows = slices.DeleteFunc(flows, func(f conntrack.Flow) bool {
		return o.proto != "" && f.Protocol != o.proto ||
			dst.IsValid() && f.Original.Dst != dst ||
			o.nat && !f.DestinationNAT() && !f.SourceNAT()
	})
	if o.output != outTable {
		return writeDoc(o.io.Out, o.output, newConntrackDoc(t, flows))
	}
	for _, f := range flows {
		fmt.Fprintln(o.io.Out, f.String())
	}
	// conntrack -L says how many, on its standard error.
	entries := "entries"
	if len(flows) == 1 {
		entries = "entry"
	}
	fmt.Fprintf(o.io.ErrOut, "%d flow %s shown (%s %q of lab %q, namespace %s).\n", len(flows), entries, t.Role, t.Name, t.Lab, t.Namespace)
	return nil
}

// conntrackDoc is conntrack -o json: the entries of one namespace.
type conntrackDoc struct {
	APIVersion string         `json:"apiVersion"`
	Kind       string         `json:"kind"`
	Lab        string         `json:"lab"`
	Object     string         `json:"object"` // node/NAME or pod/NAME
	Namespace  string         `json:"namespace"`
	Items      []conntrackRow `json:"items"`
}

type conntrackRow struct {
	Protocol       string      `json:"protocol"`
	State          string      `json:"state,omitempty"`
	TimeoutSeconds int64       `json:"timeoutSeconds"`
	Original       tupleDoc    `json:"original"`
	Reply          tupleDoc    `json:"reply"`
	SeenReply      bool        `json:"seenReply"`
	Assured        bool        `json:"assured"`
	Mark           uint32      `json:"mark"`
	DNAT           bool        `json:"dnat"`
	SNAT           bool        `json:"snat"`
	ICMP           *icmpDocRow `json:"icmp,omitempty"`
}

type tupleDoc struct {
	Src     string `json:"src"`
	Dst     string `json:"dst"`
	SrcPort uint16 `json:"sport,omitempty"`
	DstPort uint16 `json:"dport,omitempty"`
}

type icmpDocRow struct {
	Type uint8  `json:"type"`
	Code uint8  `json:"code"`
	ID   uint16 `json:"id"`
}

func newConntrackDoc(t lab.Target, flows []conntrack.Flow) conntrackDoc {
	d := conntrackDoc{APIVersion: apiVersion, Kind: "ConntrackList", Lab: t.Lab, Object: objectName(t.Role, t.Name),
		Namespace: t.Namespace, Items: []conntrackRow{}}
	tuple := func(x conntrack.Tuple) tupleDoc {
		return tupleDoc{Src: x.Src.String(), Dst: x.Dst.String(), SrcPort: x.SrcPort, DstPort: x.DstPort}
	}
	for _, f := range flows {
		r := conntrackRow{
			Protocol: f.Protocol, State: f.State, TimeoutSeconds: int64(f.Timeout.Seconds()),
			Original: tuple(f.Original), Reply: tuple(f.Reply), SeenReply: f.SeenReply, Assured: f.Assured,
			Mark: f.Mark, DNAT: f.DestinationNAT(), SNAT: f.SourceNAT(),
		}
		if strings.HasPrefix(f.Protocol, "icmp") {
			r.ICMP = &icmpDocRow{Type: f.Original.ICMPType, Code: f.Original.ICMPCode, ID: f.Original.ICMPID}
		}
		d.Items = append(d.Items, r)
	}
	return d
}
