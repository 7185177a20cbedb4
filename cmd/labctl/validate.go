package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/labctl/labctl/emulator/spec"
)

func newValidateCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "validate FILE",
		Short: "Check a topology file and report every problem at once (no root needed)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			t, err := spec.Load(args[0])
			if err != nil {
				return err
			}
			pods := len(t.Pods())
			fmt.Fprintf(cmd.OutOrStdout(), "%s: lab %q is valid: %d %s, %d %s, backend %s\n",
				args[0], t.Name, len(t.Nodes), plural(len(t.Nodes), "node"), pods, plural(pods, "pod"), backendSummary(t))
			return nil
		},
	}
}

func plural(n int, word string) string {
	if n == 1 {
		return word
	}
	return word + "s"
}
