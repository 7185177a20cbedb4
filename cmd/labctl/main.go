// Command labctl builds Kubernetes pod networks out of real kernel objects
// (network namespaces, veth pairs, bridges, routes) from one topology file.
// This package is CLI wiring only: one options struct and one run function
// per command, with its streams injected; the work happens in emulator/,
// mostly through the emulator/lab facade.
package main

import (
	"context"
	"os"

	"github.com/labctl/labctl/emulator/workload"
)

func main() {
	// The same binary is also each pod's supervisor, container init, the
	// builtin servers and the curl/ping applets; those never reach the CLI.
	if code, handled := workload.Main(); handled {
		os.Exit(code)
	}
	os.Exit(run(context.Background(), os.Args[1:], Streams{In: os.Stdin, Out: os.Stdout, ErrOut: os.Stderr}, os.Getenv))
}
