// Package trace follows one probe through a lab, namespace by namespace:
// `labctl trace` and the TUI's trace action are thin layers over it.
//
// Run opens a capture in every namespace it is given (one socket with a
// small ring each, on all of a namespace's interfaces), reads the
// namespaces' nftables counters, sends one probe with package probe (an
// ICMP echo, a TCP SYN or a UDP datagram), waits for its answer or the
// timeout, and reads the counters again. That is a Recording. Analyze then
// finds the probe and its answer among everything captured and says, per
// namespace they crossed, what happened to them:
//
//   - which packets are the probe: the same packet wherever it was seen,
//     matched by what no router, tunnel or NAT changes (the IP
//     identification, TCP sequence numbers, ICMP sequence and data, the
//     start of the payload), so a packet whose addresses a service's DNAT
//     or a masquerade rewrote is still followed;
//   - the answer: the packet answering it at any point of its way (addresses
//     reversed, TCP acknowledging the SYN), or an ICMP error quoting it;
//   - per namespace (a Hop): the interfaces it came in and left by, its TTL,
//     whether a bridge switched it or the namespace routed it, the route
//     that sent it on (asked afterwards, as `ip route get DST from SRC iif
//     IIF` would), the tunnel it was put into or taken out of (VXLAN with
//     its VNI and port, IPIP) and the addresses that changed (NAT);
//   - where a packet that did not arrive was last seen and the likely
//     reason (a Stop): no route (the lookup fails, or an ICMP "network
//     unreachable" came back), DF and MTU (larger than the next link's MTU
//     with DF set, or "fragmentation needed" came back), a neighbour that
//     never answered ARP (requests without replies, a FAILED or INCOMPLETE
//     neighbour entry), a drop rule (an nftables rule that drops or rejects
//     and whose counter grew, a reject's ICMP error, a chain whose policy
//     drops), a TUN device whose userspace datapath did not send it on.
//
// A Recording encodes as JSON and replays without a lab (Recording.Replay
// answers the kernel questions from what it recorded): the golden tests of
// this package render journeys recorded from real labs that way.
//
// # The JSON shape
//
// Journey encodes as `labctl trace -o json` prints it (the CLI adds
// "apiVersion": "labctl.dev/v1" and "kind": "Trace"). Addresses are
// strings, durations strings such as "183µs", times RFC 3339:
//
//	{
//	  "lab": "two-node",
//	  "from": {"name": "pod1a", "namespace": "two-node-pod1a", "ip": "192.168.1.10"},
//	  "to": {"name": "pod2", "ip": "192.168.2.20", "port": 80},  // port for TCP and UDP probes
//	  "probe": {"protocol": "icmp|tcp|udp", "port": 80, "size": 56, "dontFragment": true},
//	  "sent": "2025-01-01T10:00:00.000000001Z",
//	  "timeout": "1s",
//	  "answer": {
//	    "kind": "reply|refused|error|none|not-sent",
//	    "summary": "echo reply from 192.168.2.20 in 0.183 ms",
//	    "from": "192.168.2.20", "rtt": "183µs"
//	  },
//	  "request": {                      // the probe's journey (a Path)
//	    "packet": "IP 192.168.1.10 > 192.168.2.20: ICMP echo request, id 7, seq 1, length 64",
//	    "arrived": true,
//	    "hops": [{                      // one per namespace crossed, in order
//	      "place": "node1", "role": "node", "namespace": "two-node-node1",
//	      "action": "sent|routed|switched|delivered|stopped|left",
//	      "in": "veth-pod1a", "out": "eth0",   // interfaces; absent where it started or ended
//	      "sightings": [{                // every interface it was seen on here, in order
//	        "time": "...", "at": "12µs", // at: since the request was first seen
//	        "interface": "eth0", "direction": "in|out", "type": "In|Out|P|B|M",
//	        "srcMAC": "...", "dstMAC": "...",   // the outermost frame's
//	        "src": "192.168.1.10", "dst": "192.168.2.20", "srcPort": 0, "dstPort": 0,
//	        "ttl": 63, "ipID": 4321, "length": 84, "wire": 98, "df": false,
//	        "outer": {"kind": "vxlan|ipip", "src": "...", "dst": "...", "vni": 1, "srcPort": 0, "dstPort": 8472},
//	        "line": "node1:eth0 Out IP ..."   // as labctl capture prints it
//	      }],
//	      "bridge": "br0",              // for "switched"
//	      "route": {"dst": "192.168.2.0/24", "type": "unicast|local|blackhole|...",
//	                "via": "10.30.45.200", "dev": "eth0", "src": "", "onlink": false,
//	                "iif": "br0", "error": "network is unreachable"},
//	      "outerRoute": {...},          // the route of the tunnel's outer packet
//	      "encapsulated": {"kind": "vxlan", "device": "flannel.1", "src": "...", "dst": "...", "vni": 1, "dstPort": 8472},
//	      "decapsulated": {...},
//	      "nat": [{"kind": "dnat|snat", "from": "10.96.0.10:80", "to": "10.244.2.5:8080"}]
//	    }],
//	    "stop": {                       // only when it did not arrive
//	      "place": "node1", "namespace": "two-node-node1", "interface": "br0",
//	      "reason": "no-route|mtu|drop-rule|neighbour|no-answer|ttl|not-sent|lost|unknown|not-seen|unreachable",
//	      "detail": "node1 has no route to 192.168.2.20 (network is unreachable)",
//	      "evidence": ["ip route get 192.168.2.20 iif br0 in two-node-node1: network is unreachable"]
//	    }
//	  },
//	  "reply": {...},                   // the answer's journey, the same shape; absent without one
//	  "captured": {"namespaces": 6, "packets": 20, "dropped": 0}
//	}
package trace
