package spec

import (
	"fmt"
	"net/netip"

	"go.yaml.in/yaml/v3"
)

// This file holds the rules that mirror what the kernel or the container
// runtime would refuse, or silently get wrong, once `up` runs: `validate`
// passing must mean `up` cannot fail on the input itself.

// reservedRange is IPv4 space no lab network may use.
type reservedRange struct {
	p    netip.Prefix
	name string
	why  string
}

var reservedRanges = []reservedRange{
	{netip.MustParsePrefix("0.0.0.0/8"), `"this network" space (0.0.0.0/8)`, "it only ever means the host itself as a source"},
	{netip.MustParsePrefix("127.0.0.0/8"), "loopback space (127.0.0.0/8)", "every namespace delivers it to itself, so each \"remote\" pod would answer from its own loopback"},
	{netip.MustParsePrefix("169.254.0.0/16"), "link-local space (169.254.0.0/16)", "routers never forward it, and Calico's pod gateway 169.254.1.1 lives there"},
	{netip.MustParsePrefix("224.0.0.0/4"), "multicast space (224.0.0.0/4)", "the kernel refuses a unicast route via a multicast gateway"},
	{netip.MustParsePrefix("240.0.0.0/4"), "reserved class E space (240.0.0.0/4, with the broadcast address 255.255.255.255)", "it is not routable unicast space"},
}

// reserved explains why a lab network cannot be p, or returns "".
func reserved(p netip.Prefix) string {
	for _, r := range reservedRanges {
		if r.p.Overlaps(p) {
			if r.p.Contains(p.Addr()) && p.Bits() >= r.p.Bits() {
				return fmt.Sprintf("%s is %s: %s", p, r.name, r.why)
			}
			return fmt.Sprintf("%s includes %s: %s", p, r.name, r.why)
		}
	}
	return ""
}

// checkReserved reports a lab network in reserved space.
func (v *validator) checkReserved(n *yaml.Node, path string, p netip.Prefix, ok *bool) {
	if !*ok || n == nil {
		return // invalid (already reported) or the default
	}
	if msg := reserved(p); msg != "" {
		v.addf(n, path, "%s", msg)
		*ok = false
	}
}
