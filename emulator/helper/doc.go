// Package helper is how the labctl binary runs as its own helper
// processes: each pod's supervisor and its containers' init, the userspace
// IPIP datapath of a node, the container side of `labctl exec`, and the
// capture and service helpers to come. One mechanism serves them all:
//
//   - Role. A helper is the labctl binary started with LABCTL_HELPER_ROLE
//     set in its environment. main() calls Main first, before any CLI
//     parsing; it runs the role's main function and the process exits with
//     its code. A package adds a role with one Register call (in an init
//     function), naming its main and the type of its configuration, which
//     the parent passes as JSON in the environment. Main removes these
//     variables before the role runs, so nothing the helper executes
//     inherits them. An environment variable rather than a hidden
//     subcommand keeps the contract independent of the CLI framework and
//     leaves argv free for a readable process title ("labctl-shim
//     two-node/pod1a"). Without a role, the program name (argv[0]) selects
//     an applet (RegisterApplet): a link named curl to the labctl binary
//     runs the curl applet.
//
//   - Ready. The parent waits for one report on the helper's file
//     descriptor 3: "ok", or the error that keeps it from running (Ready).
//     The pipe closing without a report means the helper exited first; for
//     container init, whose fd 3 is close-on-exec, it means the command was
//     executed.
//
//   - Namespace watch. A helper started in a named network namespace ends
//     when that name no longer refers to the namespace it runs in (the lab
//     was deleted behind labctl's back): the context its main gets is
//     cancelled with ErrNamespaceGone. A process inside a namespace keeps it
//     alive, so no helper may outlive its lab.
//
//   - Start. The parent's one call: fork the helper in a namespace (the
//     child inherits the network namespace of the forking thread), in its
//     own session (Ctrl-C and logout leave it alone), with its output in a
//     log file, optionally born in its cgroups (cgroup v1: forked from a
//     thread that joined them) or in namespaces the forking thread set up
//     (Prepare), then wait for its report with a timeout and the caller's
//     context (unless NoReport). It returns the helper's process.ID; on any
//     failure the helper is stopped.
//
// In a role's package:
//
//	func init() { helper.Register("ipip-datapath", serve) }
//	func serve(ctx context.Context, cfg Config) int {
//		d, err := Open(cfg)
//		helper.Ready(err)
//		...
//	}
//
// In the parent:
//
//	id, err := helper.Start(ctx, helper.Options{Role: "ipip-datapath", Config: cfg,
//		Args: []string{"labctl-ipip-datapath", "lab/node1"}, Namespace: path, Log: logFile})
package helper
