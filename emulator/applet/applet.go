// Package applet makes the labctl binary usable as curl and ping inside
// containers, so that lab exercises need neither on the host: a link named
// after an applet that points at the labctl binary runs the applet
// (helper.Main chooses it by argv[0]). Pod supervisors put such links first
// in the PATH of builtin containers (client: `labctl exec pod1a -c client
// -- curl 192.168.2.20`) and last in others'.
//
// Each applet is a package of its own (curl, ping) with a Main; this
// package registers them. A new applet is one more line in init and Names.
package applet

import (
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
