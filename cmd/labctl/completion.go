package main

import (
	"fmt"
	"slices"

	"github.com/spf13/cobra"

	"github.com/labctl/labctl/emulator/lab"
	"github.com/labctl/labctl/emulator/plan"
)

func newCompletionCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "completion bash|zsh|fish",
		Short: "Print a shell completion script (lab, node, pod and container names, flags, -o values)",
		Long: `Print the completion script of a shell. Once installed, Tab completes
commands, flags, -o values, and the names of the labs, nodes, pods and
containers that are up (read from the state directory; no root needed where
it is readable).`,
		Example: `  # bash (needs the bash-completion package), for every new shell:
  labctl completion bash | sudo tee /etc/bash_completion.d/labctl > /dev/null
  # or just this shell:
  source <(labctl completion bash)

  # zsh, with compinit enabled:
  labctl completion zsh > "${fpath[1]}/_labctl"

  # fish:
  labctl completion fish > ~/.config/fish/completions/labctl.fish`,
		ValidArgs: []string{"bash", "zsh", "fish"},
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) != 1 || !slices.Contains(cmd.ValidArgs, args[0]) {
				return usageErrorf("completion takes one shell: bash, zsh or fish (see labctl completion --help)")
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			root, out := cmd.Root(), g.io.Out
			switch args[0] {
			case "bash":
				return root.GenBashCompletionV2(out, true)
			case "zsh":
				return root.GenZshCompletion(out)
			}
			return root.GenFishCompletion(out, true)
		},
	}
}

// completer offers the names of what is up, read through lab.Manager: it
// never needs root, and on any error it offers nothing rather than fail
// the shell.
type completer struct{ g *globals }

type completeFunc = func(cmd *cobra.Command, args []string, toComplete string) ([]string, cobra.ShellCompDirective)

const noFiles = cobra.ShellCompDirectiveNoFileComp

func (c completer) records() []*lab.Record {
	recs, _, err := c.g.manager().List()
	if err != nil {
		return nil
	}
	return recs
}

// labNames lists the labs that are up, each with a description.
func (c completer) labNames() []string {
	var names []string
	for _, r := range c.records() {
		names = append(names, fmt.Sprintf("%s\tlab, %s", r.Name, r.Phase))
	}
	return names
}

// labs completes lab names; where none are up, topology files.
func (c completer) labs(cmd *cobra.Command, args []string, toComplete string) ([]string, cobra.ShellCompDirective) {
	if len(args) > 0 {
		return nil, noFiles
	}
	if names := c.labNames(); len(names) > 0 {
		return names, noFiles
	}
	return yamlFiles(cmd, args, toComplete)
}

func yamlFiles(_ *cobra.Command, args []string, _ string) ([]string, cobra.ShellCompDirective) {
	if len(args) > 0 {
		return nil, noFiles
	}
	return []string{"yaml", "yml"}, cobra.ShellCompDirectiveFilterFileExt
}

// objects lists the nodes and pods of one lab ("" for every lab), with
// the underlay if asked, or only pods that run containers.
func (c completer) objects(labName string, underlay, containersOnly bool) []string {
	var out []string
	for _, r := range c.records() {
		if labName != "" && r.Name != labName {
			continue
		}
		for _, ns := range r.Namespaces {
			switch {
			case ns.Role == plan.RoleUnderlay:
				if underlay && !containersOnly {
					out = append(out, fmt.Sprintf("underlay\tthe underlay of lab %s", r.Name))
				}
			case containersOnly && r.Pods[ns.Object].PID == 0:
			case ns.Role == plan.RolePod:
				p, _ := r.Topology.Pod(ns.Object)
				out = append(out, fmt.Sprintf("%s\tpod on %s, lab %s", ns.Object, p.Node, r.Name))
			default:
				out = append(out, fmt.Sprintf("%s\t%s, lab %s", ns.Object, ns.Role, r.Name))
			}
		}
	}
	return out
}

// statusArgs: a lab, then one of its nodes, pods or the underlay.
func (c completer) statusArgs(cmd *cobra.Command, args []string, toComplete string) ([]string, cobra.ShellCompDirective) {
	switch len(args) {
	case 0:
		return c.labs(cmd, args, toComplete)
	case 1:
		name, err := labNameOf(args[0])
		if err != nil {
			return nil, noFiles
		}
		return c.objects(name, true, false), noFiles
	}
	return nil, noFiles
}

// target completes exec's and logs' first argument, in the lab --lab names
// if given; after it, exec's command completes as files do.
func (c completer) target(containersOnly bool) completeFunc {
	return func(cmd *cobra.Command, args []string, toComplete string) ([]string, cobra.ShellCompDirective) {
		if len(args) > 0 {
			if containersOnly {
				return nil, noFiles
			}
			return nil, cobra.ShellCompDirectiveDefault
		}
		labName, _ := cmd.Flags().GetString("lab")
		return c.objects(labName, false, containersOnly), noFiles
	}
}

// containers completes -c with the containers of the pod given.
func (c completer) containers(cmd *cobra.Command, args []string, toComplete string) ([]string, cobra.ShellCompDirective) {
	if len(args) == 0 {
		return nil, noFiles
	}
	labName, _ := cmd.Flags().GetString("lab")
	t, err := c.g.manager().Resolve(labName, args[0], "")
	if err != nil {
		return nil, noFiles
	}
	var out []string
	for _, name := range t.Containers {
		out = append(out, name+"\tcontainer of pod "+t.Name)
	}
	return out, noFiles
}

func fixed(values ...string) completeFunc {
	return func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
		return values, noFiles
	}
}

// registerCompletions attaches the completion functions to the commands
// of the tree.
func registerCompletions(g *globals, root *cobra.Command) {
	c := completer{g}
	_ = root.RegisterFlagCompletionFunc("state-dir", func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
		return nil, cobra.ShellCompDirectiveFilterDirs
	})
	for _, cmd := range root.Commands() {
		name := cmd.Name()
		if cmd.Flags().Lookup("lab") != nil {
			_ = cmd.RegisterFlagCompletionFunc("lab", func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
				return c.labNames(), noFiles
			})
		}
		if cmd.Flags().Lookup("container") != nil {
			_ = cmd.RegisterFlagCompletionFunc("container", c.containers)
		}
		switch name {
		case "up", "validate":
			cmd.ValidArgsFunction = yamlFiles
		case "down":
			cmd.ValidArgsFunction = c.labs
		case "status":
			cmd.ValidArgsFunction = c.statusArgs
			_ = cmd.RegisterFlagCompletionFunc("output", fixed(outputFormats...))
		case "exec":
			cmd.ValidArgsFunction = c.target(false)
		case "conntrack":
			cmd.ValidArgsFunction = c.target(false)
			_ = cmd.RegisterFlagCompletionFunc("output", fixed(outTable, outJSON, outYAML))
			_ = cmd.RegisterFlagCompletionFunc("proto", fixed("tcp", "udp", "icmp"))
		case "logs":
			cmd.ValidArgsFunction = c.target(true)
		case "version":
			cmd.ValidArgsFunction = fixed()
			_ = cmd.RegisterFlagCompletionFunc("output", fixed(outTable, outJSON, outYAML))
		}
	}
}
