package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/labctl/labctl/emulator/spec"
)

type validateOptions struct {
	io   Streams
	file string
}

func newValidateCmd(g *globals) *cobra.Command {
	o := &validateOptions{io: g.io}
	return &cobra.Command{
		Use:   "validate FILE",
		Short: "Check a topology or scenario file and report every problem at once (no root needed)",
		Example: `  labctl validate topologies/two-node.yaml
  labctl validate my-lab.yaml || echo "fix the problems listed above"`,
		Args: exactArgs(1, "one topology or scenario file"),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.file = args[0]
			return runValidate(o)
		},
	}
}

func runValidate(o *validateOptions) error {
	if isScenario(o.file) {
		return validateScenario(o.io.Out, o.file)
	}
	t, err := spec.Load(o.file)
	if err != nil {
		return err
	}
	printWarnings(o.io.ErrOut, t) // services.go
	pods := len(t.Pods())
	fmt.Fprintf(o.io.Out, "%s: lab %q is valid: %d %s, %d %s%s%s, backend %s\n",
		o.file, t.Name, len(t.Nodes), plural(len(t.Nodes), "node"), pods, plural(pods, "pod"), servicesText(t), externalsPhrase(t), backendSummary(t))
	return nil
}
