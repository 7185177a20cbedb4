package kubeproxy

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
)

// EndpointHits is what one endpoint chain counted: the first packets of
// the connections (and UDP flows) kube-proxy's rules sent to the endpoint
// on this node. Later packets of a connection follow conntrack and do not
// pass the NAT chains again.
type EndpointHits struct {
	ServicePort string // "namespace/name" or "namespace/name:port-name"
	Protocol    Protocol
	Endpoint    netip.AddrPort
	Chain       string // the endpoint chain, as `nft list ruleset` shows it
	Packets     uint64 // connections, for TCP; flows, for UDP
	Bytes       uint64
}

// Counters reads the per-endpoint counters of kube-proxy's table in the
// network namespace at nsPath, sorted by service port and endpoint. A
// namespace without the table has none.
func Counters(nsPath string) ([]EndpointHits, error) {
	c, closeNS, err := dial(nsPath, 1)
	if err != nil {
		return nil, fmt.Errorf("read endpoint counters: %w", err)
	}
	defer closeNS()
	table := &nftables.Table{Name: KubeProxyTable, Family: nftables.TableFamilyIPv4}
	chains, err := c.ListChainsOfTableFamily(nftables.TableFamilyIPv4)
	if err != nil {
		return nil, fmt.Errorf("read endpoint counters in %s: list chains: %w", nsPath, err)
	}
	var out []EndpointHits
	for _, ch := range chains {
		if ch.Table.Name != KubeProxyTable {
			continue
		}
		svc, proto, ep, ok := EndpointOf(ch.Name)
		if !ok {
			continue
		}
		rules, err := c.GetRules(table, ch)
		if err != nil {
			return nil, fmt.Errorf("read endpoint counters in %s: chain %q: %w", nsPath, ch.Name, err)
		}
		h := EndpointHits{ServicePort: svc, Protocol: proto, Endpoint: ep, Chain: ch.Name}
		for _, r := range rules {
			for _, e := range r.Exprs {
				if cnt, ok := e.(*expr.Counter); ok {
					h.Packets += cnt.Packets
					h.Bytes += cnt.Bytes
				}
			}
		}
		out = append(out, h)
	}
	slices.SortFunc(out, func(a, b EndpointHits) int {
		if c := strings.Compare(a.ServicePort, b.ServicePort); c != 0 {
			return c
		}
		if c := strings.Compare(string(a.Protocol), string(b.Protocol)); c != 0 {
			return c
		}
		return a.Endpoint.Compare(b.Endpoint)
	})
	return out, nil
}
