package spec

// What one host can hold. Validation refuses a lab beyond these before it
// allocates anything per node pair, with a message at the YAML that asks
// for too much: a typo or a hostile file must not get as far as the kernel,
// and must not drive labctl itself out of memory while planning.
const (
	// MaxNodes is the most nodes a lab can have: every node's eth0 is a
	// port of the underlay bridge, and a Linux bridge takes at most 1023
	// ports (BR_MAX_PORTS is 1024 and port 0 is reserved; the 1024th
	// `ip link set ... master` fails with "exchange full").
	MaxNodes = 1023

	// MaxBridgePorts is the most ports a Linux bridge takes, and so the
	// most pods a node's bridge can hold (one fewer when bridged VXLAN
	// makes its device a port too).
	MaxBridgePorts = 1023

	// MaxNamespaces caps a lab's network namespaces: its underlay, nodes
	// and pods. A namespace with its loopback, veth pair and bridge costs
	// the kernel about 0.4 MB (measured on Linux 6.18: 300 namespaces,
	// 115 MB), so 10000 are 4 GB before the first route or process: more
	// than a teaching host has to spare.
	MaxNamespaces = 10000

	// MaxContainersPerPod: every container is a process of its own under
	// the pod's supervisor, with its cgroups and log; Kubernetes sets no
	// hard limit, but a pod of more than a hundred is a typo.
	MaxContainersPerPod = 100

	// MaxContainers caps a lab's containers: each is at least one process,
	// and the kernel's default pid_max (32768) is shared with the rest of
	// the host and with the pods' supervisors.
	MaxContainers = 20000

	// MaxReplicas keeps a typo from asking for thousands of namespaces in
	// one deployment; MaxNamespaces bounds them all together.
	MaxReplicas = 5000
)
