package kubeproxy

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
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
// namespace without the table has none. It asks for every rule of the
// table in one dump: a node of a thousand services has three thousand
// endpoint chains, and a request per chain took a quarter of a second.
func Counters(nsPath string) ([]EndpointHits, error) {
	rules, err := dumpRules(nsPath, KubeProxyTable)
	if err != nil {
		return nil, fmt.Errorf("read endpoint counters in %s: %w", nsPath, err)
	}
	byChain := map[string]*EndpointHits{}
	var out []EndpointHits
	for _, r := range rules {
		h, seen := byChain[r.chain]
		if !seen {
			svc, proto, ep, ok := EndpointOf(r.chain)
			if !ok {
				byChain[r.chain] = nil
				continue
			}
			out = append(out, EndpointHits{ServicePort: svc, Protocol: proto, Endpoint: ep, Chain: r.chain})
			h = &out[len(out)-1]
			byChain[r.chain] = h
		}
		if h != nil {
			h.Packets += r.packets
			h.Bytes += r.bytes
		}
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

// dumpedRule is what Counters needs of a rule: its chain and what its
// counter expressions counted.
type dumpedRule struct {
	chain          string
	packets, bytes uint64
}

// dumpRules lists the rules of table (family ip) in the namespace at
// nsPath in one netlink dump; a missing table has none.
func dumpRules(nsPath, table string) ([]dumpedRule, error) {
	f, err := openNamespace(nsPath)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	c, err := netlink.Dial(unix.NETLINK_NETFILTER, &netlink.Config{NetNS: int(f.Fd())})
	if err != nil {
		return nil, fmt.Errorf("open nftables: %w", err)
	}
	defer c.Close()
	ae := netlink.NewAttributeEncoder()
	ae.String(unix.NFTA_RULE_TABLE, table)
	attrs, err := ae.Encode()
	if err != nil {
		return nil, err
	}
	msgs, err := c.Execute(netlink.Message{
		Header: netlink.Header{
			Type:  netlink.HeaderType(unix.NFNL_SUBSYS_NFTABLES<<8 | unix.NFT_MSG_GETRULE),
			Flags: netlink.Request | netlink.Dump,
		},
		Data: append([]byte{unix.NFPROTO_IPV4, unix.NFNETLINK_V0, 0, 0}, attrs...),
	})
	if errors.Is(err, unix.ENOENT) {
		return nil, nil // no such table
	}
	if err != nil {
		return nil, fmt.Errorf("list rules: %w", err)
	}
	out := make([]dumpedRule, 0, len(msgs))
	for _, m := range msgs {
		if len(m.Data) < 4 {
			continue
		}
		r, err := parseRule(m.Data[4:])
		if err != nil {
			return nil, fmt.Errorf("list rules: %w", err)
		}
		out = append(out, r)
	}
	return out, nil
}

// parseRule reads a rule's chain and its counters from its attributes.
func parseRule(b []byte) (dumpedRule, error) {
	var r dumpedRule
	ad, err := netlink.NewAttributeDecoder(b)
	if err != nil {
		return r, err
	}
	for ad.Next() {
		switch ad.Type() {
		case unix.NFTA_RULE_CHAIN:
			r.chain = ad.String()
		case unix.NFTA_RULE_EXPRESSIONS:
			ad.Nested(func(list *netlink.AttributeDecoder) error {
				for list.Next() {
					list.Nested(func(e *netlink.AttributeDecoder) error {
						var name string
						for e.Next() {
							switch e.Type() {
							case unix.NFTA_EXPR_NAME:
								name = e.String()
							case unix.NFTA_EXPR_DATA:
								if name == "counter" {
									e.Nested(func(cd *netlink.AttributeDecoder) error {
										cd.ByteOrder = binary.BigEndian
										for cd.Next() {
											switch cd.Type() {
											case unix.NFTA_COUNTER_PACKETS:
												r.packets += cd.Uint64()
											case unix.NFTA_COUNTER_BYTES:
												r.bytes += cd.Uint64()
											}
										}
										return nil
									})
								}
							}
						}
						return nil
					})
				}
				return nil
			})
		}
	}
	return r, ad.Err()
}
