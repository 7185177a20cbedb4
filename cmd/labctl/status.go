package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/labctl/labctl/emulator/lab"
	"github.com/labctl/labctl/emulator/plan"
	"github.com/labctl/labctl/emulator/spec"
)

// apiVersion versions labctl's machine-readable output (status -o json).
const apiVersion = "labctl.dev/v1"

// labDoc is one lab in status -o json: lab.Status with the kind, version
// and the network it was built with.
type labDoc struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	*lab.Status
	Network *networkDoc `json:"network,omitempty"`
	Links   []linkDoc   `json:"links,omitempty"`
}

// labListDoc is status -o json without a lab name.
type labListDoc struct {
	APIVersion string   `json:"apiVersion"`
	Kind       string   `json:"kind"`
	Items      []labDoc `json:"items"`
}

type networkDoc struct {
	Underlay    string         `json:"underlay"`
	ClusterCIDR string         `json:"clusterCIDR"`
	ServiceCIDR string         `json:"serviceCIDR"`
	MTU         int            `json:"mtu"`
	PodMTU      int            `json:"podMTU"`
	Backend     spec.Backend   `json:"backend"`
	Backends    []spec.Backend `json:"backends"`
}

type linkDoc struct {
	Nodes   [2]string    `json:"nodes"`
	Backend spec.Backend `json:"backend"`
}

func newLabDoc(s *lab.Status) labDoc {
	d := labDoc{APIVersion: apiVersion, Kind: "Lab", Status: s}
	if t := s.Topology; t != nil {
		d.Network = &networkDoc{
			Underlay: t.Network.Underlay.String(), ClusterCIDR: t.Network.ClusterCIDR.String(),
			ServiceCIDR: t.Network.ServiceCIDR.String(), MTU: t.Network.MTU, PodMTU: t.PodMTU(),
			Backend: t.Network.Backend, Backends: t.Backends(),
		}
		for _, l := range t.Links {
			d.Links = append(d.Links, linkDoc{Nodes: l.Nodes, Backend: l.Backend})
		}
	}
	return d
}

type statusOptions struct {
	io      Streams
	manager lab.Manager
	lab     string // "" for every lab
	output  string
}

func newStatusCmd(g *globals) *cobra.Command {
	o := &statusOptions{io: g.io}
	cmd := &cobra.Command{
		Use:   "status [NAME|FILE]",
		Short: "Show labs: nodes, pods, IPs, namespace names and interfaces",
		Example: `  labctl status
  labctl status two-node
  labctl status two-node -o json | jq '.namespaces[] | {name, ip}'`,
		Args: rangeArgs(0, 1, "at most one lab name or topology file"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 1 {
				o.lab = args[0]
			}
			o.manager = g.manager()
			return runStatus(o)
		},
	}
	cmd.Flags().StringVarP(&o.output, "output", "o", "table", "output format: table or json")
	return cmd
}

func runStatus(o *statusOptions) error {
	if o.output != "table" && o.output != "json" {
		return usageErrorf("unknown output format %q (use table or json)", o.output)
	}
	opt := lab.StatusOptions{Live: true}
	var all []*lab.Status
	if o.lab != "" {
		name, err := labNameOf(o.lab)
		if err != nil {
			return err
		}
		s, err := o.manager.Status(name, opt)
		if err != nil {
			return err
		}
		all = []*lab.Status{s}
	} else {
		var err error
		if all, err = o.manager.StatusAll(opt); err != nil {
			return err
		}
	}
	if o.output == "json" {
		enc := json.NewEncoder(o.io.Out)
		enc.SetIndent("", "  ")
		if o.lab != "" {
			return enc.Encode(newLabDoc(all[0]))
		}
		list := labListDoc{APIVersion: apiVersion, Kind: "LabList", Items: []labDoc{}}
		for _, s := range all {
			list.Items = append(list.Items, newLabDoc(s))
		}
		return enc.Encode(list)
	}
	if len(all) == 0 {
		fmt.Fprintln(o.io.Out, "no labs are up (labctl up FILE brings one up)")
		return nil
	}
	for i, s := range all {
		if i > 0 {
			fmt.Fprintln(o.io.Out)
		}
		writeStatusTable(o.io.Out, s, time.Now())
	}
	return nil
}

// writeStatusTable renders one lab for people; now makes its age
// reproducible in golden tests.
func writeStatusTable(w io.Writer, s *lab.Status, now time.Time) {
	if s.Error != "" {
		fmt.Fprintf(w, "Lab %s  (record unusable)\n  %s\n  `labctl down %s` removes what is left of it\n", s.Name, s.Error, s.Name)
		return
	}
	t := s.Topology
	fmt.Fprintf(w, "Lab %s  (%s, %s, up %s)\n", s.Name, backendSummary(t), s.Phase, roundAge(now.Sub(s.CreatedAt)))
	if len(s.Problems) > 0 {
		fmt.Fprintf(w, "  DEGRADED: `labctl up --repair %s` restores it:\n", dash(s.File))
		for _, p := range s.Problems {
			fmt.Fprintf(w, "    %s\n", p)
		}
	}
	if s.File != "" {
		fmt.Fprintf(w, "  file %s\n", s.File)
	}
	nw := t.Network
	fmt.Fprintf(w, "  underlay %s  cluster %s  services %s  mtu %d (pods %d)\n", nw.Underlay, nw.ClusterCIDR, nw.ServiceCIDR, nw.MTU, t.PodMTU())
	if len(t.Links) > 0 {
		var links []string
		for _, l := range t.Links {
			links = append(links, fmt.Sprintf("%s-%s %s", l.Nodes[0], l.Nodes[1], l.Backend))
		}
		fmt.Fprintf(w, "  links %s\n", strings.Join(links, ", "))
	}
	if s.Unverified {
		fmt.Fprintln(w, "  (not root: namespaces checked by name only; run as root to see interfaces)")
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ROLE\tNAME\tNODE\tIP\tNAMESPACE\tINTERFACES\tCONTAINERS")
	for _, ns := range s.Namespaces {
		ifs := describeInterfaces(ns)
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", ns.Role, dash(ns.Name), dash(ns.Node), dash(ns.IP), ns.Namespace, ifs, describeContainers(ns))
	}
	tw.Flush()
	if len(s.Datapaths) > 0 {
		fmt.Fprintln(w, "\nIPIP datapaths:")
		tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		for _, d := range s.Datapaths {
			state := "kernel device"
			if d.Kind == "userspace" {
				state = fmt.Sprintf("labctl process %d running", d.PID)
				if !d.Running {
					state = fmt.Sprintf("DEAD: process %d is gone; pods across this node's ipip links are cut off (log: %s)", d.PID, d.Log)
				}
			}
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t(%s)\n", d.Node, d.Device, d.Kind, state, d.Reason)
		}
		tw.Flush()
	}
}

// backendSummary names the backend, or each backend in use when links mix them.
func backendSummary(t *spec.Topology) string {
	used := t.Backends()
	if len(used) == 1 {
		b := string(used[0])
		if used[0] == spec.BackendVXLAN {
			b += " (" + string(t.Network.VXLAN.Mode) + ")"
		}
		return b
	}
	names := make([]string, len(used))
	for i, b := range used {
		names[i] = string(b)
	}
	return strings.Join(names[:len(names)-1], ", ") + " and " + names[len(names)-1] + " per link"
}

func describeInterfaces(ns lab.NamespaceStatus) string {
	switch {
	case ns.State == "foreign":
		return "FOREIGN (the name now belongs to another namespace)"
	case !ns.Present:
		return "MISSING (namespace is gone)"
	case ns.InspectError != "":
		return "error: " + ns.InspectError
	}
	if ns.Interfaces == nil {
		return "(run as root to see interfaces)"
	}
	var parts []string
	for _, i := range ns.Interfaces {
		if i.Name == "lo" {
			continue
		}
		if ns.Role == plan.RoleUnderlay && i.Kind == "veth" {
			continue // summarised on the bridge
		}
		if ns.Role == plan.RoleNode && i.Master != "" {
			continue // pod veths are summarised on the bridge
		}
		p := i.Name
		if len(i.Addresses) > 0 {
			p += " " + strings.Join(i.Addresses, ",")
		}
		if i.Kind == "bridge" {
			n := 0
			for _, port := range ns.Interfaces {
				if port.Master == i.Name {
					n++
				}
			}
			p += fmt.Sprintf(" [bridge, %d %s]", n, plural(n, "port"))
		}
		if i.State != "up" {
			p += " (down)"
		}
		parts = append(parts, p)
	}
	return strings.Join(parts, "; ")
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func roundAge(d time.Duration) time.Duration {
	if d < time.Minute {
		return d.Round(time.Second)
	}
	return d.Round(time.Minute)
}

func describeContainers(ns lab.NamespaceStatus) string {
	if ns.Pod == nil {
		return "-"
	}
	var parts []string
	for _, c := range ns.Pod.Containers {
		parts = append(parts, c.Name+" "+c.Summary())
	}
	return strings.Join(parts, "; ")
}
