package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"
	"go.yaml.in/yaml/v3"

	"github.com/labctl/labctl/emulator/lab"
	"github.com/labctl/labctl/emulator/spec"
)

type downOptions struct {
	io             Streams
	manager        lab.Manager
	target         string // a lab name or topology file
	all            bool
	ignoreNotFound bool
}

func newDownCmd(g *globals) *cobra.Command {
	o := &downOptions{io: g.io}
	cmd := &cobra.Command{
		Use:   "down (NAME|FILE | --all) [flags]",
		Short: "Remove a lab and everything it created",
		Long: `Remove a lab: every process living in its namespaces is ended (pod
supervisors and containers, helper processes, shells started with labctl exec),
its cgroups are removed and its namespaces are deleted in one burst, which
removes every device, address and route inside them. Works after a crash
halfway through up, and with the lab's records or the whole state directory
lost: labctl then finds the lab's namespaces by the marker it left inside each.
--all removes every lab of the state directory. Namespaces labctl did not
create for the lab are never touched.`,
		Example: `  sudo labctl down two-node
  sudo labctl down topologies/two-node.yaml
  sudo labctl down --ignore-not-found two-node   # in scripts: fine if it is not up
  sudo labctl down --all`,
		Args: func(cmd *cobra.Command, args []string) error {
			if o.all && len(args) > 0 {
				return usageErrorf("give either a lab name or --all, not both")
			}
			if !o.all && len(args) != 1 {
				return usageErrorf("down takes one lab name or topology file, or --all (see labctl down --help)")
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 1 {
				o.target = args[0]
			}
			o.manager = g.manager()
			return runDown(o)
		},
	}
	cmd.Flags().BoolVar(&o.all, "all", false, "remove every lab and leftover labctl created")
	cmd.Flags().BoolVar(&o.ignoreNotFound, "ignore-not-found", false, "succeed when the lab is not up")
	return cmd
}

func runDown(o *downOptions) error {
	if os.Geteuid() != 0 {
		return notRootError{"down"}
	}
	out := o.io.Out
	if o.all {
		removed, err := o.manager.DownAll()
		for _, r := range removed {
			printRemoval(out, r)
		}
		if len(removed) == 0 && err == nil {
			fmt.Fprintln(out, "no labs to remove")
		}
		return err
	}
	name, err := labNameOf(o.target)
	if err != nil {
		return err
	}
	r, err := o.manager.Down(name)
	if errors.Is(err, lab.ErrNotFound) && o.ignoreNotFound {
		fmt.Fprintf(out, "lab %q is not up; nothing to remove\n", name)
		return nil
	}
	if err != nil {
		return err
	}
	printRemoval(out, r)
	return nil
}

// printRemoval says what down removed, and what it found without records.
func printRemoval(w io.Writer, r lab.Removal) {
	fmt.Fprintf(w, "lab %q is down: removed %d %s", r.Lab, len(r.Namespaces), plural(len(r.Namespaces), "namespace"))
	if r.Processes > 0 {
		fmt.Fprintf(w, " and ended %d %s", r.Processes, plural(r.Processes, "process"))
	}
	fmt.Fprintln(w)
	if len(r.Recovered) > 0 {
		fmt.Fprintf(w, "  found by their labctl marker (their records were lost): %s\n", strings.Join(r.Recovered, ", "))
	}
	for _, s := range r.Skipped {
		fmt.Fprintf(w, "  %s\n", s)
	}
	if len(r.Left) > 0 {
		fmt.Fprintf(w, "  left alone (now held by namespaces labctl did not create): %s\n", strings.Join(r.Left, ", "))
	}
}

// labNameOf accepts a lab name or a topology file. The file need not be
// valid: taking a broken lab down must still work after its file was
// edited. Whatever the name comes from, it is checked before it is used:
// it becomes part of paths under the state directory.
func labNameOf(arg string) (string, error) {
	name := arg
	fi, err := os.Stat(arg)
	isFile := err == nil && fi.Mode().IsRegular() && strings.ContainsRune(arg, '/')
	if strings.HasSuffix(arg, ".yaml") || strings.HasSuffix(arg, ".yml") || isFile {
		name = strings.TrimSuffix(filepath.Base(arg), filepath.Ext(arg))
		if data, err := readTopologyName(arg); err == nil && data != "" {
			name = data
		}
	}
	if err := spec.CheckName(name); err != nil {
		return "", usageErrorf("%q does not name a lab: lab %v", arg, err)
	}
	return name, nil
}

// readTopologyName reads the name: of a topology file, a bounded read of a
// regular file only.
func readTopologyName(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
		return "", fmt.Errorf("%s is not a regular file", path)
	}
	data, err := io.ReadAll(io.LimitReader(f, 4<<20))
	if err != nil {
		return "", err
	}
	var doc struct {
		Name string `yaml:"name"`
	}
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return "", err
	}
	return doc.Name, nil
}
