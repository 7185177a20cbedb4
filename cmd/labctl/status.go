package main

import (
	"errors"
	"fmt"
	"strings"
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

// objectDoc is one node, pod, external host, the router or the underlay in
// status LAB OBJECT -o json.
type objectDoc struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	*lab.ObjectStatus
}

type networkDoc struct {
	Underlay    string         `json:"underlay"`
	ClusterCIDR string         `json:"clusterCIDR"`
	ServiceCIDR string         `json:"serviceCIDR"`
	MTU         int            `json:"mtu"`
	PodMTU      int            `json:"podMTU"`
	Backend     spec.Backend   `json:"backend"`
	Backends    []spec.Backend `json:"backends"`
	// Masquerade: pod traffic leaving the cluster takes its node's address.
	Masquerade bool `json:"masquerade,omitempty"`
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
			Backend: t.Network.Backend, Backends: t.Backends(), Masquerade: t.Network.Masquerade,
		}
		for _, l := range t.Links {
			d.Links = append(d.Links, linkDoc{Nodes: l.Nodes, Backend: l.Backend})
		}
	}
	return d
}

func newLabListDoc(all []*lab.Status) labListDoc {
	list := labListDoc{APIVersion: apiVersion, Kind: "LabList", Items: []labDoc{}}
	for _, s := range all {
		list.Items = append(list.Items, newLabDoc(s))
	}
	return list
}

// kindOf is the kind (and, lowercased, the TYPE of -o name) of a lab's
// object.
func kindOf(role string) string {
	switch role {
	case plan.RoleNode:
		return "Node"
	case plan.RolePod:
		return "Pod"
	case plan.RoleUnderlay:
		return "Underlay"
	case plan.RoleRouter:
		return "Router"
	case plan.RoleExternal:
		return "External"
	}
	return role
}

// objectName is an object as -o name prints it: pod/pod1a, as kubectl.
func objectName(role, name string) string { return strings.ToLower(kindOf(role)) + "/" + name }

type statusOptions struct {
	io      Streams
	manager lab.Manager
	lab     string // "" for every lab
	object  string // a node, pod, external host, "router" or "underlay" of lab; "" for the lab
	output  string
	now     func() time.Time
}

func newStatusCmd(g *globals) *cobra.Command {
	o := &statusOptions{io: g.io, now: time.Now}
	cmd := &cobra.Command{
		Use:   "status [NAME|FILE [POD|NODE|EXTERNAL|router|underlay]] [flags]",
		Short: "Show labs, a lab's nodes, pods and external hosts, or one object's interfaces, routes, neighbours and FDB",
		Long: `Show labs, like kubectl get.

Without a name: every lab, one line each (phase, backends, nodes, pods, age).
With a lab: its nodes, pods, external hosts and router with their IPs, namespace
names and interfaces, and its pods' containers with restarts and reasons
(OOMKilled, CrashLoopBackOff) as kubectl get pods shows them (and those of
external hosts that run containers).
With a lab and a pod, node, external host, "router" or "underlay": what that
namespace holds now, read
through netlink: interfaces (MAC, MTU, state, master, addresses), routes (with
protocol, scope, type and flags such as onlink), neighbours and FDB entries
(bridge ports' and VXLAN devices' with their remote VTEP).

-o wide adds columns, -o json and -o yaml print one document (apiVersion
labctl.dev/v1; kinds LabList, Lab, Node, Pod, External, Router, Underlay), -o name prints
TYPE/NAME lines. Reading interfaces needs root.`,
		Example: `  labctl status
  labctl status two-node
  labctl status two-node -o wide
  labctl status two-node node1                  # interfaces, routes, neighbours, FDB
  labctl status two-node pod1a -o yaml
  labctl status two-node -o json | jq '.namespaces[] | {name, ip}'
  for o in $(labctl status two-node -o name); do echo "$o"; done`,
		Args: rangeArgs(0, 2, "at most a lab (name or topology file) and one of its pods, nodes or external hosts"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 {
				o.lab = args[0]
			}
			if len(args) > 1 {
				o.object = args[1]
			}
			o.manager = g.manager()
			return runStatus(o)
		},
	}
	cmd.Flags().StringVarP(&o.output, "output", "o", outTable, "output format: table, wide, json, yaml or name")
	return cmd
}

func runStatus(o *statusOptions) error {
	if err := checkOutput(o.output); err != nil {
		return err
	}
	if o.lab == "" {
		return runStatusAll(o)
	}
	name, err := labNameOf(o.lab)
	if err != nil {
		return err
	}
	if o.object != "" {
		return runStatusObject(o, name)
	}
	// The table, wide and documents show live interfaces; a name list
	// needs none.
	s, err := o.manager.Status(name, lab.StatusOptions{Live: o.output != outName})
	if errors.Is(err, lab.ErrNotFound) {
		// kubectl's habit: `status pod1a` means the pod.
		t, rerr := o.manager.Resolve("", o.lab, "")
		switch {
		case rerr == nil:
			return fmt.Errorf("%w; %s is a %s of lab %q: labctl status %s %s", err, t.Name, t.Role, t.Lab, t.Lab, t.Name)
		case errors.Is(rerr, lab.ErrAmbiguous):
			return fmt.Errorf("%w; %q is a pod, node or external host of several labs: labctl status LAB %s", err, o.lab, o.lab)
		}
	}
	if err != nil {
		return err
	}
	out := o.io.Out
	switch o.output {
	case outJSON, outYAML:
		return writeDoc(out, o.output, newLabDoc(s))
	case outName:
		for _, ns := range s.Namespaces {
			fmt.Fprintln(out, objectName(ns.Role, ns.Name))
		}
		return nil
	}
	writeStatusTable(out, s, o.now(), o.output == outWide)
	return nil
}

func runStatusAll(o *statusOptions) error {
	// Documents carry each lab in full; the list table needs no live
	// reads, only each lab's health.
	docs := o.output == outJSON || o.output == outYAML
	all, err := o.manager.StatusAll(lab.StatusOptions{Live: docs})
	if err != nil {
		return err
	}
	out := o.io.Out
	switch {
	case docs:
		return writeDoc(out, o.output, newLabListDoc(all))
	case o.output == outName:
		for _, s := range all {
			fmt.Fprintf(out, "lab/%s\n", s.Name)
		}
		return nil
	case len(all) == 0:
		fmt.Fprintln(out, "no labs are up (labctl up FILE brings one up)")
		return nil
	}
	writeLabList(out, all, o.now(), o.output == outWide)
	return nil
}

func runStatusObject(o *statusOptions, labName string) error {
	s, err := o.manager.ObjectStatus(labName, o.object)
	if err != nil {
		return err
	}
	out := o.io.Out
	switch o.output {
	case outJSON, outYAML:
		return writeDoc(out, o.output, objectDoc{APIVersion: apiVersion, Kind: kindOf(s.Role), ObjectStatus: s})
	case outName:
		fmt.Fprintln(out, objectName(s.Role, s.Name))
		return nil
	}
	writeObjectTable(out, s, o.now(), o.output == outWide)
	return nil
}
