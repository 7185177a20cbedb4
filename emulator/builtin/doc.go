// Package builtin holds the workloads compiled into the labctl binary, so
// a lab runs without anything installed on the host: web-server (the
// textbook's python HTTP server, answer for answer), echo-server (TCP and
// UDP echo), client (a place to `labctl exec` into) and dns (the lab's
// cluster DNS, as CoreDNS answers it, run by the coredns pod). Container init
// (emulator/workload) runs one in its own process with Run; every
// container of a lab is a copy of the labctl binary, so a builtin keeps its
// memory small (no net/http server, a low GC target) and adds nothing to
// the binary's package initialisation.
//
//	err := builtin.Run(ctx, builtin.WebServer, builtin.Config{Port: 80, PodIP: ip}, serving)
//	builtin.WebBody(ip, "/path")  // the web server's answer, for checks
//
// A new builtin is one entry in the builtins table and a function with
// Run's shape.
package builtin
