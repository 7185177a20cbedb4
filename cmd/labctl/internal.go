package main

import (
	"context"
	"fmt"
	"log"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"

	"github.com/labctl/labctl/emulator/ipipd"
	"github.com/labctl/labctl/emulator/netns"
)

// newInternalCmd holds the helper processes labctl starts for a lab; people
// do not run them by hand.
func newInternalCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "internal", Hidden: true, Short: "processes labctl runs for its labs"}
	cmd.AddCommand(newIPIPDatapathCmd())
	return cmd
}

func newIPIPDatapathCmd() *cobra.Command {
	var device, netnsName, statsFile string
	cmd := &cobra.Command{
		Use:   "ipip-datapath --device tunl0 --netns NAME [--stats FILE]",
		Short: "serve a TUN device as an IPIP tunnel (started by labctl up inside a node)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			log.SetPrefix(fmt.Sprintf("ipip-datapath %s: ", netnsName))
			log.SetFlags(log.LstdFlags | log.Lmicroseconds)
			// labctl up waits for one line on fd 3: "ok" or why not.
			ready := os.NewFile(3, "ready")
			d, err := ipipd.Open(ipipd.Config{Device: device, StatsFile: statsFile, Logf: log.Printf})
			if err != nil {
				if ready != nil {
					fmt.Fprintln(ready, err.Error())
				}
				return err
			}
			if ready != nil {
				fmt.Fprintln(ready, "ok")
				ready.Close()
			}
			ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
			defer stop()
			ctx, cancel := context.WithCancel(ctx)
			defer cancel()
			if netnsName != "" {
				go exitWithNamespace(ctx, cancel, netnsName)
			}
			log.Printf("serving %s", device)
			err = d.Serve(ctx)
			log.Printf("stopped: %+v", d.Stats())
			return err
		},
	}
	cmd.Flags().StringVar(&device, "device", "tunl0", "the TUN device to serve")
	cmd.Flags().StringVar(&netnsName, "netns", "", "exit when this named namespace (ours) is deleted")
	cmd.Flags().StringVar(&statsFile, "stats", "", "write the counters to this JSON file every second and at exit")
	return cmd
}

// exitWithNamespace cancels when the lab's name for our namespace goes away
// (labctl down, or down --all after a lost record): a process inside a
// namespace keeps it alive, so it must not outlive its lab.
func exitWithNamespace(ctx context.Context, cancel context.CancelFunc, name string) {
	var self unix.Stat_t
	if err := unix.Stat("/proc/self/ns/net", &self); err != nil {
		return
	}
	t := time.NewTicker(500 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			var st unix.Stat_t
			if err := unix.Stat(netns.Path(name), &st); err != nil || st.Ino != self.Ino || st.Dev != self.Dev {
				log.Printf("namespace %s is gone; exiting", name)
				cancel()
				return
			}
		}
	}
}
