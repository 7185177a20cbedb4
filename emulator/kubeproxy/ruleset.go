package kubeproxy

import (
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// Ruleset is everything one node needs: kube-proxy's table and, when the
// node masquerades pod traffic to the outside, flannel's. It is the one
// description both renderings come from: Script writes it as `nft -f`
// input, Program sends it to the kernel over netlink.
type Ruleset struct {
	Node   string   // the node it was built for
	Tables []*Table // every table is in the ip family
	// Absent lists tables of ours that must not exist, such as flannel's
	// when masquerading is off: re-programming removes them.
	Absent []string
	// cache holds the marshalled batches, shared by the rulesets of nodes
	// whose tables are the same (share.go); nil: marshal every time.
	cache *batchCache
}

// Table is one nftables table of the ip family. Sets come before chains,
// each in creation order: the order `nft list ruleset` prints them in.
type Table struct {
	Name   string
	Sets   []*Set
	Chains []*Chain
}

// Set is a named set or, with Map, a verdict map.
type Set struct {
	Name     string
	Key      []keyType // more than one: a concatenation
	Map      bool      // a verdict map (`: verdict`)
	Dynamic  bool      // filled by the datapath (`update @set`)
	Timeout  time.Duration
	Size     uint32
	Comment  string
	Elements []Element
}

// Element is one member of a set; in a map, with the verdict it maps to.
type Element struct {
	Key     []keyVal
	Verdict verdict // zero in a plain set
	Comment string
}

// Chain is a regular chain, or a base chain when Hook is set.
type Chain struct {
	Name  string
	Hook  *Hook
	Rules []Rule
}

// Hook attaches a base chain to the kernel: its type, hook and priority.
type Hook struct {
	Type     string // "filter" or "nat"
	Hook     string // "prerouting", "input", "forward", "output", "postrouting"
	Priority int
}

// Rule is a list of statements, read left to right, and a comment.
type Rule struct {
	Stmts   []stmt
	Comment string
}

// keyType is the type of one field of a set's key.
type keyType int

const (
	typeIPv4 keyType = iota
	typeProto
	typePort
)

func (k keyType) String() string {
	return [...]string{"ipv4_addr", "inet_proto", "inet_service"}[k]
}

// keyVal is one field of an element's key.
type keyVal struct {
	t    keyType
	addr netip.Addr
	num  uint16 // the port, or the protocol number
}

func addrKey(a netip.Addr) keyVal { return keyVal{t: typeIPv4, addr: a} }
func protoKey(p Protocol) keyVal  { return keyVal{t: typeProto, num: uint16(p.number())} }
func portKey(p uint16) keyVal     { return keyVal{t: typePort, num: p} }

func (v keyVal) String() string {
	switch v.t {
	case typeIPv4:
		return v.addr.String()
	case typeProto:
		return protoName(uint8(v.num))
	default:
		return strconv.Itoa(int(v.num))
	}
}

// bytes is the field as the kernel stores it: network byte order.
func (v keyVal) bytes() []byte {
	switch v.t {
	case typeIPv4:
		b := v.addr.As4()
		return b[:]
	case typeProto:
		return []byte{uint8(v.num)}
	default:
		return []byte{byte(v.num >> 8), byte(v.num)}
	}
}

// number is the IP protocol number.
func (p Protocol) number() uint8 {
	if p == UDP {
		return 17
	}
	return 6
}

func protoName(n uint8) string {
	switch n {
	case 6:
		return "tcp"
	case 17:
		return "udp"
	}
	return strconv.Itoa(int(n))
}

// verdictKind is what a rule or a map element decides.
type verdictKind int

const (
	noVerdict verdictKind = iota
	accept
	drop
	ret
	jump
	goTo
)

// verdict is a decision, with the chain for jump and goto.
type verdict struct {
	kind  verdictKind
	chain string
}

func (v verdict) String() string {
	switch v.kind {
	case accept:
		return "accept"
	case drop:
		return "drop"
	case ret:
		return "return"
	case jump:
		return "jump " + v.chain
	case goTo:
		return "goto " + v.chain
	}
	return ""
}

// text renders the rule as nft prints it.
func (r Rule) text() string {
	parts := make([]string, 0, len(r.Stmts)+1)
	for _, s := range r.Stmts {
		parts = append(parts, s.text())
	}
	if r.Comment != "" {
		parts = append(parts, "comment "+strconv.Quote(r.Comment))
	}
	return strings.Join(parts, " ")
}
