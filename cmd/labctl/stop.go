package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/labctl/labctl/emulator/lab"
	"github.com/labctl/labctl/emulator/plan"
)

type stopOptions struct {
	io        Streams
	manager   lab.Manager
	lab       string
	pod       string
	container string
}

func newStopCmd(g *globals) *cobra.Command {
	o := &stopOptions{io: g.io}
	cmd := &cobra.Command{
		Use:   "stop POD -c CONTAINER [--lab NAME]",
		Short: "Stop one container of a pod, as a crash or ctr task kill would",
		Long: `Stop one container of a running pod: SIGTERM, then SIGKILL after the grace
period. The pod's restart policy then decides, as the kubelet's does, whether
the container starts again (Always; OnFailure when it exited with an error) or
stays stopped (Never). It is the "stop a container" fault of break-fix
scenarios, by hand.`,
		Example: `  sudo labctl stop pod2 -c web-server
  sudo labctl status two-node        # CONTAINERS: web-server restarting, or terminated`,
		Args: exactArgs(1, "one pod"),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.pod, o.manager = args[0], g.manager()
			return runStop(o)
		},
	}
	cmd.Flags().StringVar(&o.lab, "lab", "", "the lab to look in when several are up")
	cmd.Flags().StringVarP(&o.container, "container", "c", "", "the container to stop")
	return cmd
}

func runStop(o *stopOptions) error {
	if o.container == "" {
		return usageErrorf("stop needs the container: -c NAME")
	}
	t, err := o.manager.Resolve(o.lab, o.pod, o.container)
	if err != nil {
		return err
	}
	if os.Geteuid() != 0 {
		return notRootError{"stop"}
	}
	if err := o.manager.StopContainer(t.Lab, t.Name, t.Container); err != nil {
		return err
	}
	what := "pod" // or an external host's container
	if t.Role == plan.RoleExternal {
		what = "external host"
	}
	fmt.Fprintf(o.io.Out, "stopped container %q of %s %q (lab %q); its restart policy decides whether it starts again\n", t.Container, what, t.Name, t.Lab)
	return nil
}
