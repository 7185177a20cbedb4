package ipipd

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os/signal"
	"syscall"

	"github.com/labctl/labctl/emulator/helper"
)

// HelperRole is the helper role (see emulator/helper) of the datapath
// process labctl runs in each node whose tunl0 it serves: emulator/lab
// starts it with helper.Start in the node's namespace, with a
// HelperConfig.
const HelperRole = "ipip-datapath"

// HelperConfig configures the datapath process.
type HelperConfig struct {
	Device    string `json:"device"`    // the TUN device to serve, tunl0
	Namespace string `json:"namespace"` // the node's namespace name, for the log
	// StatsFile is where the datapath writes its counters every second
	// and at exit (labctl status reads them); "" writes none.
	StatsFile string `json:"statsFile,omitempty"`
}

func init() { helper.Register(HelperRole, serveHelper) }

// serveHelper serves the device until SIGTERM, SIGINT or the end of the
// node's namespace; its log is the process's stderr.
func serveHelper(ctx context.Context, cfg HelperConfig) int {
	log.SetPrefix(fmt.Sprintf("ipip-datapath %s: ", cfg.Namespace))
	log.SetFlags(log.LstdFlags | log.Lmicroseconds)
	d, err := Open(Config{Device: cfg.Device, StatsFile: cfg.StatsFile, Logf: log.Printf})
	helper.Ready(err)
	if err != nil {
		log.Print(err)
		return 1
	}
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	log.Printf("serving %s", cfg.Device)
	err = d.Serve(ctx)
	if cause := context.Cause(ctx); errors.Is(cause, helper.ErrNamespaceGone) {
		log.Printf("%v; exiting", cause)
	}
	log.Printf("stopped: %+v", d.Stats())
	if err != nil {
		log.Print(err)
		return 1
	}
	return 0
}
