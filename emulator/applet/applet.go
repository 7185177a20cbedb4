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
//   - in a container with a root filesystem: the image's own tools first;
//     where the image has none, the labctl binary bind-mounted read-only
//     into the container (emulator/workload puts it at /dev/.labctl, last
//     on the container's PATH). Only a statically linked labctl runs in
//     any image (StaticallyLinked); a dynamically linked one serves no
//     applets there.
//
// Each applet is a package of its own (curl, ping) with a Main; this
// package registers them. A new applet is one more line in init and Names.
package applet

import (
	"debug/elf"
	"fmt"
	"io"
	"os"
	"os/exec"
	"slices"
	"strings"

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

// StaticallyLinked returns nil when the binary at exe runs in any root
// filesystem: it names no ELF interpreter (the dynamic loader), as a Go
// binary built with CGO_ENABLED=0 does (static PIE included). Otherwise
// the error says what it would need from the host: a dynamically linked
// labctl cannot run in an image without the host's C library at the same
// paths.
func StaticallyLinked(exe string) error {
	r, err := os.Open(exe)
	if err != nil {
		return err
	}
	defer r.Close()
	f, err := elf.NewFile(r)
	if err != nil {
		return fmt.Errorf("%s is not an ELF executable: %w", exe, err)
	}
	for _, p := range f.Progs {
		if p.Type != elf.PT_INTERP {
			continue
		}
		interp, err := io.ReadAll(io.LimitReader(p.Open(), 4096))
		if err != nil {
			return fmt.Errorf("read %s: ELF interpreter: %w", exe, err)
		}
		return fmt.Errorf("%s is dynamically linked: it needs the host's loader %s and shared libraries (CGO_ENABLED=0 builds a static one)", exe, strings.TrimRight(string(interp), "\x00"))
	}
	return nil
}
