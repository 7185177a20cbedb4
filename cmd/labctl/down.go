package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"
	"go.yaml.in/yaml/v3"
)

func newDownCmd(g *globals) *cobra.Command {
	var all bool
	cmd := &cobra.Command{
		Use:   "down NAME|FILE",
		Short: "Remove a lab and everything it created",
		Long: `Remove a lab: its namespaces are deleted in one burst, which removes every
device, address and route inside them. Works after a crash halfway through up
or a lost state file too. --all removes every lab and every leftover namespace
labctl recorded as its own; namespaces labctl did not create are never touched.`,
		Args: func(cmd *cobra.Command, args []string) error {
			if all && len(args) > 0 {
				return usageError{"give either a lab name or --all, not both"}
			}
			if !all && len(args) != 1 {
				return usageError{"down needs a lab name or topology file (or --all)"}
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			if os.Geteuid() != 0 {
				return notRootError{"down"}
			}
			m := g.manager()
			if all {
				names, err := m.DownAll()
				for _, n := range names {
					fmt.Fprintf(cmd.OutOrStdout(), "lab %q is down\n", n)
				}
				if len(names) == 0 && err == nil {
					fmt.Fprintln(cmd.OutOrStdout(), "no labs to remove")
				}
				return err
			}
			name := labNameOf(args[0])
			if err := m.Down(name); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "lab %q is down\n", name)
			return nil
		},
	}
	cmd.Flags().BoolVar(&all, "all", false, "remove every lab and leftover labctl created")
	return cmd
}

// labNameOf accepts a lab name or a topology file. The file need not be
// valid: taking a broken lab down must still work after its file was edited.
func labNameOf(arg string) string {
	if !strings.HasSuffix(arg, ".yaml") && !strings.HasSuffix(arg, ".yml") {
		if _, err := os.Stat(arg); err != nil || !strings.ContainsRune(arg, '/') {
			return arg
		}
	}
	if data, err := os.ReadFile(arg); err == nil {
		var doc struct {
			Name string `yaml:"name"`
		}
		if yaml.Unmarshal(data, &doc) == nil && doc.Name != "" {
			return doc.Name
		}
	}
	return strings.TrimSuffix(filepath.Base(arg), filepath.Ext(arg))
}
