// Package applet makes the labctl binary usable as curl and ping, so that
// lab exercises need neither on the host: a link named after an applet
// that points at the labctl binary runs the applet (helper.Main chooses it
// by argv[0]). The host's own tool wins wherever it is installed, the
// applet serves where it is not:
//
//   - `labctl exec NODE|POD -- ping` (no container): the host's ping on
//     PATH, else the applet (Program);
//   - in a container without a root filesystem: its PATH lists the host's
//     directories first and the pod's applet links last, so again the
//     host's tool if installed, else the applet;
//   - in a container with a root filesystem: the image's own tools.
//
// Each applet is a package of its own (curl, ping) with a Main; this
// package registers them. A new applet is one more line in init and Names.
package applet

import (
	"os/exec"
	"slices"

	"github.com/labctl/labctl/emulator/applet/curl"
	"github.com/labctl/labctl/emulator/applet/ping"
	"github.com/labctl/labctl/emulator/helper"
)

func init() {
	helper.RegisterApplet("curl", curl.Main)
	helper.RegisterApplet("ping", ping.Main)
}

// Names lists the applets: the names of the links that run them.
func Names() []string { return []string{"curl", "ping"} }

// Program is what `labctl exec` runs for the command name outside
// containers: the host's program when PATH has it, else, for an applet's
// name, the labctl executable (run it with argv[0] = name to get the
// applet). Any other name gets exec.LookPath's error (exec.ErrNotFound).
func Program(name string, executable func() (string, error)) (string, error) {
	path, err := exec.LookPath(name)
	if err == nil || !slices.Contains(Names(), name) {
		return path, err
	}
	exe, xerr := executable()
	if xerr != nil {
		return "", err
	}
	return exe, nil
}
