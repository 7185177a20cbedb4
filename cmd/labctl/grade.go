package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/labctl/labctl/emulator/grade"
	"github.com/labctl/labctl/emulator/lab"
)

type gradeOptions struct {
	io      Streams
	manager lab.Manager
	file    string
	lab     string
	report  reportOptions
}

func newGradeCmd(g *globals) *cobra.Command {
	o := &gradeOptions{io: g.io}
	cmd := &cobra.Command{
		Use:   "grade SCENARIO [--lab NAME]",
		Short: "Grade a lab that is up against a scenario's checks, changing nothing",
		Long: `Grade a lab that is up (from labctl run --keep, or labctl up) against a
scenario's checks: no setup, no faults, no down; nothing in the lab changes, so
a student can repair it with ordinary tools and grade again as often as they
like. The lab must be up with the scenario's topology.

Exit codes: 0 every check passed, 7 some checks failed, 3 the scenario is
invalid, 4 no such lab, 1 something kept the lab from being graded.`,
		Example: `  sudo labctl grade scenarios/break-fix-missing-route.yaml
  sudo labctl grade --lab alice -o json scenarios/break-fix-missing-route.yaml`,
		Args: exactArgs(1, "one scenario file"),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.file, o.manager = args[0], g.manager()
			return runGrade(cmd.Context(), o)
		},
	}
	cmd.Flags().StringVar(&o.lab, "lab", "", "the lab to grade (default: the topology's name)")
	o.report.flags(cmd)
	return cmd
}

func runGrade(ctx context.Context, o *gradeOptions) error {
	if err := o.report.check(); err != nil {
		return err
	}
	s, err := loadScenario(o.file)
	if err != nil {
		return err
	}
	if os.Geteuid() != 0 {
		return notRootError{"grade"}
	}
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	defer stop()
	res, err := grade.Grade(ctx, o.manager, s, grade.Options{Lab: o.lab})
	if err != nil {
		return err
	}
	return o.report.write(o.io.Out, res)
}
