package main

import (
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/labctl/labctl/emulator/graph"
	"github.com/labctl/labctl/emulator/lab"
	"github.com/labctl/labctl/emulator/spec"
)

type graphOptions struct {
	io      Streams
	manager lab.Manager
	target  string // a topology file or a lab's name
	output  string
}

func newGraphCmd(g *globals) *cobra.Command {
	o := &graphOptions{io: g.io}
	cmd := &cobra.Command{
		Use:   "graph FILE|LAB [-o text|mermaid|dot]",
		Short: "Draw a lab: nodes, pods, bridges, the underlay and the backend of every node pair",
		Long: `Draw a lab with its addresses: every node with its eth0 on the underlay switch,
its pod bridge and tunnel devices, every pod on its bridge, and the backend
between every two nodes (host-gw, vxlan with its VNI and port, ipip).

From a topology file it needs no root and nothing running; from a lab that is
up it also marks what is missing and says which IPIP datapath serves tunl0.

  -o text      for the terminal (the default; fits 80 columns)
  -o mermaid   a Mermaid flowchart: paste it into Markdown between
               ` + "```mermaid" + ` fences (GitHub and GitLab draw it)
  -o dot       for Graphviz: labctl graph two-node -o dot | dot -Tsvg > lab.svg`,
		Example: `  labctl graph topologies/three-node-mixed.yaml
  labctl graph topologies/two-node-vxlan.yaml -o mermaid
  labctl graph two-node -o dot | dot -Tpng > two-node.png`,
		Args: exactArgs(1, "a topology file or the name of a lab that is up"),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.manager, o.target = g.manager(), args[0]
			return runGraph(o)
		},
	}
	cmd.Flags().StringVarP(&o.output, "output", "o", "text", "text, mermaid or dot")
	return cmd
}

func runGraph(o *graphOptions) error {
	var render func(*graph.Graph) string
	switch o.output {
	case "text":
		render = (*graph.Graph).Text
	case "mermaid":
		render = (*graph.Graph).Mermaid
	case "dot":
		render = (*graph.Graph).Dot
	default:
		return usageErrorf("-o %q: give text, mermaid or dot", o.output)
	}
	g, err := loadGraph(o.manager, o.target)
	if err != nil {
		return err
	}
	_, err = io.WriteString(o.io.Out, render(g))
	return err
}

// loadGraph draws a topology file, or the lab of that name when the
// argument does not look like a file.
func loadGraph(m lab.Manager, target string) (*graph.Graph, error) {
	if isTopologyFile(target) {
		t, err := spec.Load(target)
		if err != nil {
			return nil, err
		}
		return graph.FromTopology(t), nil
	}
	name, err := labNameOf(target)
	if err != nil {
		return nil, err
	}
	st, err := m.Status(name, lab.StatusOptions{})
	if err != nil {
		return nil, err
	}
	return graph.FromStatus(st)
}

// isTopologyFile tells a file argument from a lab name the way down and
// status do: a YAML name, or a path to a regular file.
func isTopologyFile(arg string) bool {
	if strings.HasSuffix(arg, ".yaml") || strings.HasSuffix(arg, ".yml") {
		return true
	}
	fi, err := os.Stat(arg)
	return err == nil && fi.Mode().IsRegular() && strings.ContainsRune(arg, '/')
}
