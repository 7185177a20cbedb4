// Command labctl builds Kubernetes pod networks out of real kernel objects
// (network namespaces, veth pairs, bridges, routes) from one topology file.
// This package is CLI wiring only: one options struct and one run function
// per command, with its streams injected; the work happens in emulator/,
// mostly through the emulator/lab facade.
package main

import (
	"context"
	"os"

	"github.com/labctl/labctl/emulator/helper"
)

func main() {
	// The same binary is also labctl's helper processes (each pod's
	// supervisor, container init and so the builtin servers, the IPIP
	// datapath) and the curl/ping applets; those never reach the CLI. The
	// packages that start them register them (emulator/helper).
	if code, handled := helper.Main(); handled {
		os.Exit(code)
	}
	os.Exit(run(context.Background(), os.Args[1:], Streams{In: os.Stdin, Out: os.Stdout, ErrOut: os.Stderr}, os.Getenv))
}
