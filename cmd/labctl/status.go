package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/labctl/labctl/emulator/ipipd"
	"github.com/labctl/labctl/emulator/kernel"
	"github.com/labctl/labctl/emulator/lab"
	"github.com/labctl/labctl/emulator/plan"
	"github.com/labctl/labctl/emulator/spec"
	"github.com/labctl/labctl/emulator/workload"
)

// labStatus is what status reports for one lab; its JSON form is the
// machine-readable output.
type labStatus struct {
	Name        string            `json:"name"`
	File        string            `json:"file,omitempty"`
	Phase       string            `json:"phase"`
	CreatedAt   time.Time         `json:"createdAt"`
	Backend     string            `json:"backend"`
	Underlay    string            `json:"underlay"`
	ClusterCIDR string            `json:"clusterCIDR"`
	ServiceCIDR string            `json:"serviceCIDR"`
	MTU         int               `json:"mtu"`
	PodMTU      int               `json:"podMTU"`
	Links       []string          `json:"links,omitempty"`
	Namespaces  []namespaceStatus `json:"namespaces"`
	Datapaths   []datapathStatus  `json:"datapaths,omitempty"`
	// Problems say what is missing from a degraded lab.
	Problems []string `json:"problems,omitempty"`
	// Error says why the lab's record cannot be used.
	Error string `json:"error,omitempty"`
}

// datapathStatus says what serves a node's IPIP device, and whether a
// userspace datapath process is still alive.
type datapathStatus struct {
	Node    string `json:"node"`
	Device  string `json:"device"`
	Kind    string `json:"kind"`
	Reason  string `json:"reason"`
	PID     int    `json:"pid,omitempty"`
	Running bool   `json:"running"`
	Log     string `json:"log,omitempty"`
	// Stats are the userspace datapath's counters, as it last wrote them.
	Stats *ipipd.Stats `json:"stats,omitempty"`
}

type namespaceStatus struct {
	Namespace  string              `json:"namespace"`
	Role       string              `json:"role"`
	Name       string              `json:"name,omitempty"`
	Node       string              `json:"node,omitempty"`
	IP         string              `json:"ip,omitempty"`
	PodCIDR    string              `json:"podCIDR,omitempty"`
	Present    bool                `json:"present"`
	Error      string              `json:"error,omitempty"`
	Interfaces []kernel.Interface  `json:"interfaces,omitempty"`
	Routes     []kernel.Route      `json:"routes,omitempty"`
	Pod        *workload.PodStatus `json:"pod,omitempty"`
}

func newStatusCmd(g *globals) *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "status [NAME]",
		Short: "Show labs: nodes, pods, IPs, namespace names and interfaces",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if output != "table" && output != "json" {
				return usageError{fmt.Sprintf("unknown output format %q (use table or json)", output)}
			}
			m := g.manager()
			var recs []*lab.Record
			var bad []lab.BadRecord
			if len(args) == 1 {
				name, err := labNameOf(args[0])
				if err != nil {
					return err
				}
				r, err := m.Load(name)
				if err != nil {
					return err
				}
				recs = []*lab.Record{r}
			} else {
				var err error
				if recs, bad, err = m.List(); err != nil {
					return err
				}
			}
			statuses := make([]labStatus, 0, len(recs)+len(bad))
			for _, r := range recs {
				statuses = append(statuses, collectStatus(m, r))
			}
			for _, b := range bad {
				statuses = append(statuses, labStatus{Name: b.Name, Phase: "unknown", Error: b.Err.Error()})
			}
			if output == "json" {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(statuses)
			}
			if len(statuses) == 0 {
				fmt.Fprintln(cmd.OutOrStdout(), "no labs are up (labctl up FILE brings one up)")
				return nil
			}
			for i, s := range statuses {
				if i > 0 {
					fmt.Fprintln(cmd.OutOrStdout())
				}
				writeStatusTable(cmd.OutOrStdout(), s)
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "table", "output format: table or json")
	return cmd
}

func collectStatus(m lab.Manager, r *lab.Record) labStatus {
	t := r.Topology
	s := labStatus{
		Name: r.Name, File: r.File, Phase: r.Phase, CreatedAt: r.CreatedAt,
		Underlay:    t.Network.Underlay.String(),
		ClusterCIDR: t.Network.ClusterCIDR.String(), ServiceCIDR: t.Network.ServiceCIDR.String(),
		MTU: t.Network.MTU, PodMTU: t.PodMTU(), Backend: backendSummary(t),
	}
	for _, l := range t.Links {
		s.Links = append(s.Links, fmt.Sprintf("%s-%s %s", l.Nodes[0], l.Nodes[1], l.Backend))
	}
	h := m.Health(r)
	s.Phase, s.Problems = h.Phase, h.Problems
	for _, n := range t.Nodes {
		d, ok := r.Datapaths[n.Name]
		if !ok {
			continue
		}
		ds := datapathStatus{Node: n.Name, Device: d.Device, Kind: d.Kind, Reason: d.Reason, Running: true}
		if d.Process != nil {
			ds.PID, ds.Running, ds.Log = d.Process.PID, d.Process.Alive(), d.Process.Log
			if st, err := ipipd.ReadStatsFile(ipipd.StatsFileFor(d.Process.Log)); err == nil {
				ds.Stats = &st
			}
		}
		s.Datapaths = append(s.Datapaths, ds)
	}
	root := os.Geteuid() == 0
	for _, ns := range r.Namespaces {
		st := namespaceStatus{Namespace: ns.Name, Role: ns.Role, Name: ns.Object}
		switch ns.Role {
		case plan.RoleNode:
			if n, ok := t.Node(ns.Object); ok {
				st.IP, st.PodCIDR = n.IP.String(), n.PodSubnet.String()
			}
		case plan.RolePod:
			if p, ok := t.Pod(ns.Object); ok {
				st.IP, st.Node = p.IP.String(), p.Node
			}
			if _, ok := r.Pods[ns.Object]; ok {
				if ps, err := workload.ReadStatus(m.PodStateDir(r.Name, ns.Object)); err == nil {
					st.Pod = &ps
				}
			}
		case plan.RoleUnderlay:
			st.Name = "underlay"
		}
		if _, err := os.Stat(kernel.NamespacePath(ns.Name)); err == nil {
			st.Present = true
			if root {
				ifs, routes, err := kernel.Inspect(ns.Name)
				if err != nil {
					st.Error = err.Error()
				}
				st.Interfaces, st.Routes = ifs, routes
			}
		}
		s.Namespaces = append(s.Namespaces, st)
	}
	return s
}

func writeStatusTable(w io.Writer, s labStatus) {
	if s.Error != "" {
		fmt.Fprintf(w, "Lab %s  (record unusable)\n  %s\n  `labctl down %s` removes what is left of it\n", s.Name, s.Error, s.Name)
		return
	}
	fmt.Fprintf(w, "Lab %s  (%s, %s, up %s)\n", s.Name, s.Backend, s.Phase, roundAge(time.Since(s.CreatedAt)))
	if len(s.Problems) > 0 {
		fmt.Fprintf(w, "  DEGRADED: `labctl up --repair %s` restores it:\n", dash(s.File))
		for _, p := range s.Problems {
			fmt.Fprintf(w, "    %s\n", p)
		}
	}
	if s.File != "" {
		fmt.Fprintf(w, "  file %s\n", s.File)
	}
	fmt.Fprintf(w, "  underlay %s  cluster %s  services %s  mtu %d (pods %d)\n", s.Underlay, s.ClusterCIDR, s.ServiceCIDR, s.MTU, s.PodMTU)
	if len(s.Links) > 0 {
		fmt.Fprintf(w, "  links %s\n", strings.Join(s.Links, ", "))
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
			if d.Stats != nil {
				fmt.Fprintf(tw, "  \t\t\t%s\n", describeDatapathStats(*d.Stats))
			}
		}
		tw.Flush()
	}
}

// describeDatapathStats is a userspace datapath's counters on one line,
// with those of its steering program on the underlay device.
func describeDatapathStats(s ipipd.Stats) string {
	line := fmt.Sprintf("%d packets out, %d in (%d GRO super-packets), %d dropped", s.EncapPackets, s.DecapPackets, s.GROPackets, s.Drops.Total())
	if st := s.Steering; st != nil {
		line += fmt.Sprintf("; %s program: %d IPIP to %s, %d other passed untouched, %d lost", st.Device, st.SteeredPackets, st.Target, st.PassedPackets, st.Dropped)
	}
	if age := time.Since(s.Time); age > 5*time.Second {
		line += fmt.Sprintf(" (as of %s ago)", roundAge(age))
	}
	return line
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

func describeInterfaces(ns namespaceStatus) string {
	if !ns.Present {
		return "MISSING (namespace is gone)"
	}
	if ns.Error != "" {
		return "error: " + ns.Error
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

func describeContainers(ns namespaceStatus) string {
	if ns.Pod == nil {
		return "-"
	}
	var parts []string
	for _, c := range ns.Pod.Containers {
		parts = append(parts, c.Name+" "+c.Summary())
	}
	return strings.Join(parts, "; ")
}
