// Package kubeproxy builds what kube-proxy's nftables mode (Kubernetes
// 1.31 and later, pkg/proxy/nftables) and flannel's ip-masq write into a
// node, so that a lab's services work the way a cluster's do and read the
// same with `nft list ruleset`.
//
// Rules turns a plain model (the node, its services and their endpoints)
// into a Ruleset. The same Ruleset renders two ways: Script is input for
// `nft -f` (what a dry run prints), and Program sends it to the kernel
// over netlink inside a node's network namespace, with messages marshalled
// by github.com/google/nftables, no nft binary needed: one batch (one
// transaction) that replaces the node's tables, or, into a namespace that
// has none yet, a few transactions of some eighty services each, several
// times faster for large rulesets (the kernel binds each service's
// anonymous numgen map by walking its whole transaction). Both give the
// same `nft list ruleset`, and Listing predicts it.
//
// What a node gets, in table ip kube-proxy:
//
//   - base chains at kube-proxy's hooks and priorities: filter chains
//     before DNAT (dstnat-10) and at filter priority, nat chains at dstnat
//     and srcnat;
//   - the services chain looking up `ip daddr . meta l4proto . th dport`
//     in the service-ips verdict map, and NodePorts, on any local address
//     (`fib daddr type local`) or on the addresses of nodeport-ips, in
//     service-nodeports;
//   - per service port a chain service-<hash>-<ns>/<name>/<proto>/<port>
//     that masquerades traffic from outside the pod network and picks an
//     endpoint with `numgen random mod N vmap`, with ClientIP affinity
//     first sending a client back to the endpoint whose affinity set holds
//     it; local-... with the node's own endpoints for Local policy;
//     external-... where NodePort traffic enters (Cluster masquerades it,
//     Local keeps the client's address);
//   - per endpoint a chain endpoint-<hash>-...__<ip>/<port> that marks the
//     endpoint's own traffic for masquerade (hairpin), updates its
//     affinity set, counts, and DNATs;
//   - masquerading on mark 0x4000, fully random; services without
//     endpoints rejected through no-endpoint-services and
//     no-endpoint-nodeports, Local NodePorts without a local endpoint
//     dropped, unused ports of a cluster IP rejected and unallocated
//     cluster IPs dropped.
//
// and, when the node masquerades pod traffic to the outside, flannel's
// table ip flannel-ipv4: chain postrtg masquerades traffic from the
// cluster CIDR to anywhere else, never pod to pod, and chain forward
// accepts pod traffic.
//
// Where labctl differs from the real thing, on purpose:
//
//   - each endpoint chain's DNAT rule has a counter, so that students (and
//     Counters) can see which endpoint served how many connections;
//   - the table has no comment, and reject-chain none, because
//     google/nftables v0.3.0 cannot write a table's or chain's comment;
//   - objects come in a fixed order (services sorted by namespace and
//     name, endpoints by address), where kube-proxy's follows a Go map;
//   - re-programming replaces the tables in one transaction instead of
//     patching them, so counters and affinity sets start from zero;
//   - over netlink, numgen's number is turned big-endian before its map
//     lookup and the map's keys are big-endian, since google/nftables marks
//     every anonymous set's key so: `nft list ruleset` prints the rule the
//     same, `nft --debug=netlink` shows one byteorder expression more.
//
// Programming needs the node namespace set up as a node is: ip_forward;
// bridge netfilter on (net.bridge.bridge-nf-call-iptables, per namespace):
// a client pod and an endpoint on one bridge talk across it, and only
// with bridge netfilter does the endpoint's bridged reply pass the
// conntrack that turns its source back into the service address; bridge
// ports in hairpin mode: with bridge netfilter on, an endpoint reaching
// itself through its service is DNATed while its frame is bridged, and
// the bridge must send the frame back out of the port it came in by
// (without bridge netfilter it would be routed and need no hairpin, but
// then the same-node replies above fail); and a route covering the
// service CIDR (a default route), or a packet to a cluster IP that is
// not DNATed fails routing before the filter chains can reject it.
package kubeproxy
