package capture

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// Expr is a capture filter written in tcpdump's language (pcap-filter(7)),
// for the cases people type: host, net, port, portrange, proto, the
// protocols ip, ip6, arp, rarp, tcp, udp, sctp, icmp, icmp6, the
// directions src and dst, and and/or/not with parentheses. It compiles to
// classic BPF that the kernel runs on every packet before the packet costs
// any buffer space, with no libpcap and no cgo, and it decides as tcpdump
// does: on the outer headers.
//
// One word goes beyond tcpdump: "inner" matches what a packet carries
// inside a VXLAN or IPIP tunnel, so
//
//	inner host 192.168.2.20
//	udp port 8472 and inner (tcp port 80)
//
// find a pod's traffic on the underlay. "inner" binds like "not": it
// applies to the primitive or parenthesised group after it, and holds when
// any encapsulated packet matches. The kernel cannot look that deep
// cheaply, so it keeps every packet that could match (for the first
// example: VXLAN and IPIP packets) and Match decides the rest in Go.
type Expr struct {
	text  string
	root  node
	inner bool // some part needs the packet inside a tunnel
	evalState
}

// ParseExpr parses a filter expression. An empty expression matches every
// packet.
func ParseExpr(text string) (*Expr, error) {
	toks, err := lex(text)
	if err != nil {
		return nil, fmt.Errorf("filter %q: %w", text, err)
	}
	e := &Expr{text: text, root: constNode(true)}
	if len(toks) == 0 {
		return e, nil
	}
	p := &parser{toks: toks}
	root, err := p.expr()
	if err == nil && p.pos < len(p.toks) {
		err = p.errorf("unexpected %q", p.toks[p.pos].text)
	}
	if err != nil {
		return nil, fmt.Errorf("filter %q: %w", text, err)
	}
	e.root = root
	e.inner = hasInner(root)
	return e, nil
}

// MustParseExpr is ParseExpr for expressions known to be valid, such as
// literals in tests.
func MustParseExpr(text string) *Expr {
	e, err := ParseExpr(text)
	if err != nil {
		panic(err)
	}
	return e
}

// String returns the expression as it was written.
func (e *Expr) String() string { return e.text }

// Exact reports whether the kernel program decides alone, which is so
// unless the expression looks inside tunnels.
func (e *Expr) Exact() bool { return !e.inner }

// The syntax tree. Primitives keep the qualifiers tcpdump would give them,
// defaults filled in.
type (
	node      interface{}
	andNode   struct{ l, r node }
	orNode    struct{ l, r node }
	notNode   struct{ x node }
	innerNode struct{ x node }
	constNode bool
	prim      struct {
		proto string // "", ip, ip6, arp, rarp, tcp, udp, sctp
		dir   string // "", src, dst, "src or dst", "src and dst"
		kind  string // host, net, port, portrange, proto, or "" for a bare protocol
		net   netip.Prefix
		lo    uint16 // port, or the start of a range
		hi    uint16
		num   uint8 // IP protocol number
	}
)

func hasInner(n node) bool {
	switch n := n.(type) {
	case andNode:
		return hasInner(n.l) || hasInner(n.r)
	case orNode:
		return hasInner(n.l) || hasInner(n.r)
	case notNode:
		return hasInner(n.x)
	case innerNode:
		return true
	}
	return false
}

type token struct {
	text string
	pos  int // byte offset, for messages
}

// lex splits on blanks and around the operators. A word is anything else:
// 10.0.0.0/8, fd00::1, 1000-2000, \icmp.
func lex(s string) ([]token, error) {
	var toks []token
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			i++
		case c == '(' || c == ')':
			toks = append(toks, token{s[i : i+1], i})
			i++
		case c == '!':
			if strings.HasPrefix(s[i:], "!=") {
				return nil, fmt.Errorf("at %d: comparisons (!=) are not supported", i+1)
			}
			toks = append(toks, token{"!", i})
			i++
		case strings.HasPrefix(s[i:], "&&") || strings.HasPrefix(s[i:], "||"):
			toks = append(toks, token{s[i : i+2], i})
			i += 2
		case c == '&' || c == '|':
			return nil, fmt.Errorf("at %d: %q: write and/&& or or/||", i+1, c)
		default:
			j := i
			for j < len(s) && !strings.ContainsRune(" \t\n\r()!&|", rune(s[j])) {
				j++
			}
			if k := strings.IndexByte(s[i:j], '['); k >= 0 {
				return nil, fmt.Errorf("at %d: header bytes (%s) are not supported: use host, net, port, portrange, proto", i+1, s[i:j])
			}
			toks = append(toks, token{s[i:j], i})
			i = j
		}
	}
	return toks, nil
}

type parser struct {
	toks []token
	pos  int
	// last is the previous primitive's qualifiers: tcpdump lets a bare
	// value repeat them ("host 10.0.0.1 or 10.0.0.2", "port 80 or 443").
	last *prim
	// lastInner says whether that primitive was marked inner.
	lastInner bool
	inInner   bool // parsing inside an inner primitive or group
}

func (p *parser) errorf(format string, args ...any) error {
	where := "at the end"
	if p.pos < len(p.toks) {
		where = fmt.Sprintf("at %d", p.toks[p.pos].pos+1)
	}
	return fmt.Errorf(where+": "+format, args...)
}

func (p *parser) peek() string {
	if p.pos < len(p.toks) {
		return strings.ToLower(p.toks[p.pos].text)
	}
	return ""
}

func (p *parser) next() string {
	t := p.peek()
	p.pos++
	return t
}

// raw returns the current token as written (case kept, for messages).
func (p *parser) raw() string {
	if p.pos < len(p.toks) {
		return p.toks[p.pos].text
	}
	return ""
}

// expr parses alternation and concatenation, which in tcpdump have the same
// precedence and associate to the left: "a or b and c" is "(a or b) and c".
func (p *parser) expr() (node, error) {
	l, err := p.unary()
	if err != nil {
		return nil, err
	}
	for {
		op := p.peek()
		if op != "and" && op != "&&" && op != "or" && op != "||" {
			return l, nil
		}
		p.pos++
		r, err := p.unary()
		if err != nil {
			return nil, err
		}
		if op == "and" || op == "&&" {
			l = andNode{l, r}
		} else {
			l = orNode{l, r}
		}
	}
}

func (p *parser) unary() (node, error) {
	switch p.peek() {
	case "not", "!":
		p.pos++
		x, err := p.unary()
		if err != nil {
			return nil, err
		}
		return notNode{x}, nil
	case "inner":
		if p.inInner {
			return nil, p.errorf("inner inside inner: the packet inside a tunnel is matched as a whole, write inner once")
		}
		p.pos++
		p.inInner = true
		x, err := p.unary()
		p.inInner = false
		if err != nil {
			return nil, err
		}
		// A bare value after it stays inside too: "inner host A or B" is
		// "inner host A or inner host B".
		p.lastInner = p.last != nil
		return innerNode{x}, nil
	case "(":
		p.pos++
		x, err := p.expr()
		if err != nil {
			return nil, err
		}
		if p.peek() != ")" {
			return nil, p.errorf("missing )")
		}
		p.pos++
		return x, nil
	case "":
		return nil, p.errorf("expression ends too early")
	case ")", "and", "or", "&&", "||":
		return nil, p.errorf("unexpected %q", p.raw())
	}
	return p.primitive()
}

var (
	protoWords = map[string]bool{"ip": true, "ip6": true, "arp": true, "rarp": true, "tcp": true, "udp": true, "sctp": true, "icmp": true, "icmp6": true}
	kindWords  = map[string]bool{"host": true, "net": true, "port": true, "portrange": true, "proto": true}
	// unsupported names the parts of tcpdump's language left out, so the
	// error says so instead of "syntax error".
	unsupported = map[string]string{
		"ether": "link-layer addresses", "vlan": "VLAN tags", "mpls": "MPLS", "gateway": "gateway",
		"broadcast": "broadcast", "multicast": "multicast", "less": "packet length", "greater": "packet length",
		"len": "packet length", "igmp": "igmp (use proto 2)", "pim": "pim (use proto 103)", "vrrp": "vrrp (use proto 112)",
		"ah": "ah (use proto 51)", "esp": "esp (use proto 50)", "geneve": "geneve", "inbound": "direction (capture both ways)",
		"outbound": "direction (capture both ways)", "ifname": "ifname (name the interface instead)",
	}
)

// primitive parses [proto] [dir] [kind] value, or a bare protocol.
func (p *parser) primitive() (node, error) {
	start := p.pos
	pr := prim{}
	if w := p.peek(); protoWords[w] {
		pr.proto = p.next()
		switch pr.proto {
		case "icmp", "icmp6":
			p.last = nil
			return pr, nil
		}
	}
	switch p.peek() {
	case "src", "dst":
		pr.dir = p.next()
		// "src or dst port 53" is one qualifier; "src or host x" is not.
		other := map[string]string{"src": "dst", "dst": "src"}[pr.dir]
		if w := p.peek(); (w == "or" || w == "and") && p.pos+1 < len(p.toks) && strings.ToLower(p.toks[p.pos+1].text) == other {
			pr.dir = "src " + w + " dst"
			p.pos += 2
		}
	}
	if w := p.peek(); kindWords[w] {
		pr.kind = p.next()
	}
	if pr.kind == "" && pr.dir == "" {
		if pr.proto != "" {
			// "tcp", "ip", "arp" alone. A bare value after it has no
			// qualifiers to borrow, as in tcpdump ("icmp and 10.0.0.1"
			// is an error).
			p.last = nil
			return pr, nil
		}
		w := p.raw()
		if why, ok := unsupported[strings.ToLower(w)]; ok {
			return nil, p.errorf("%q: %s filters are not supported here", w, why)
		}
		if p.last == nil {
			return nil, p.errorf("%q: say what it is (host, net, port, portrange, proto) or name a protocol (ip, arp, tcp, udp, icmp)", w)
		}
		// A bare value repeats the previous primitive's qualifiers.
		pr = *p.last
		n, err := p.value(pr)
		if err != nil {
			return nil, err
		}
		if p.lastInner && !p.inInner {
			return innerNode{n}, nil
		}
		return n, nil
	}
	if pr.kind == "" {
		pr.kind = "host" // "src 10.0.0.1" is "src host 10.0.0.1"
	}
	if err := p.checkQualifiers(pr, start); err != nil {
		return nil, err
	}
	n, err := p.value(pr)
	if err != nil {
		return nil, err
	}
	last := pr
	p.last, p.lastInner = &last, false
	return n, nil
}

func (p *parser) checkQualifiers(pr prim, start int) error {
	switch pr.kind {
	case "host", "net":
		switch pr.proto {
		case "", "ip", "ip6", "arp", "rarp":
		default:
			return fmt.Errorf("at %d: %q applies to ports, not to %s", p.toks[start].pos+1, pr.proto, pr.kind)
		}
	case "port", "portrange":
		switch pr.proto {
		case "", "tcp", "udp", "sctp":
		default:
			return fmt.Errorf("at %d: %q has no ports: use tcp, udp or sctp %s", p.toks[start].pos+1, pr.proto, pr.kind)
		}
	case "proto":
		if pr.dir != "" {
			return fmt.Errorf("at %d: %q takes no direction", p.toks[start].pos+1, "proto")
		}
		switch pr.proto {
		case "", "ip", "ip6":
		default:
			return fmt.Errorf("at %d: %q proto: only ip and ip6 carry a protocol number", p.toks[start].pos+1, pr.proto)
		}
	}
	return nil
}

// value reads the value of a qualified primitive and returns it, with
// "mask" taken for nets.
func (p *parser) value(pr prim) (node, error) {
	w := p.raw()
	if w == "" || w == "(" || w == ")" {
		return nil, p.errorf("%s needs a value", pr.kind)
	}
	switch strings.ToLower(w) {
	case "and", "or", "not", "&&", "||", "!":
		return nil, p.errorf("%s needs a value, not %q", pr.kind, w)
	}
	p.pos++
	var err error
	switch pr.kind {
	case "host", "net":
		var mask string
		if pr.kind == "net" && p.peek() == "mask" {
			p.pos++
			mask = p.raw()
			if mask == "" {
				return nil, p.errorf("mask needs a value")
			}
			p.pos++
		}
		if pr.kind == "host" && (mask != "" || strings.Contains(w, "/")) {
			err = fmt.Errorf("%q: a mask makes it a net, write net %s", w, w)
			break
		}
		pr.net, err = parseNet(w, mask)
		if err == nil {
			switch {
			case pr.net.Addr().Is6() && (pr.proto == "ip" || pr.proto == "arp" || pr.proto == "rarp"):
				err = fmt.Errorf("%q is an IPv6 address, %q carries IPv4", w, pr.proto)
			case pr.net.Addr().Is4() && pr.proto == "ip6":
				err = fmt.Errorf("%q is an IPv4 address, ip6 carries IPv6", w)
			}
		}
	case "port":
		pr.lo, err = parsePort(w)
		pr.hi = pr.lo
	case "portrange":
		lo, hi, ok := strings.Cut(w, "-")
		if !ok {
			err = fmt.Errorf("portrange %q: write it as FIRST-LAST", w)
			break
		}
		if pr.lo, err = parsePort(lo); err == nil {
			pr.hi, err = parsePort(hi)
		}
		if pr.lo > pr.hi {
			pr.lo, pr.hi = pr.hi, pr.lo // as tcpdump does
		}
	case "proto":
		pr.num, err = parseProto(w)
	}
	if err != nil {
		p.pos--
		return nil, p.errorf("%w", err)
	}
	return pr, nil
}

// parseNet reads an address, a CIDR, an abbreviated IPv4 network ("10",
// "10.1", "10.1.2") or an address with a separate mask. As in tcpdump, an
// abbreviated address is a network even after "host", and a network with
// host bits set is refused.
func parseNet(s, mask string) (netip.Prefix, error) {
	if a, err := netip.ParseAddr(s); err == nil && mask == "" {
		if a.Zone() != "" {
			return netip.Prefix{}, fmt.Errorf("%q: zones are not supported", s)
		}
		a = a.Unmap()
		return netip.PrefixFrom(a, a.BitLen()), nil
	}
	var pfx netip.Prefix
	switch addr, bits, ok := strings.Cut(s, "/"); {
	case ok:
		if mask != "" {
			return pfx, fmt.Errorf("%q: give a /length or a mask, not both", s)
		}
		a, err := parseAbbrev(addr)
		if err != nil {
			return pfx, err
		}
		n, err := strconv.Atoi(bits)
		if err != nil || n < 0 || n > a.BitLen() {
			return pfx, fmt.Errorf("%q: bad prefix length", s)
		}
		pfx = netip.PrefixFrom(a, n)
	case mask != "":
		a, err := parseAbbrev(addr)
		if err != nil {
			return pfx, err
		}
		m, err := netip.ParseAddr(mask)
		if err != nil || m.BitLen() != a.BitLen() {
			return pfx, fmt.Errorf("mask %q is not an address of the same family as %q", mask, s)
		}
		n, ok := maskBits(m.AsSlice())
		if !ok {
			return pfx, fmt.Errorf("mask %q is not contiguous", mask)
		}
		pfx = netip.PrefixFrom(a, n)
	default:
		parts := strings.Split(addr, ".")
		if strings.Contains(addr, ":") || len(parts) > 4 {
			return pfx, fmt.Errorf("%q is not an address (names are not looked up)", s)
		}
		a, err := parseAbbrev(addr)
		if err != nil {
			return pfx, err
		}
		pfx = netip.PrefixFrom(a, 8*len(parts))
	}
	if pfx.Masked() != pfx {
		return pfx, fmt.Errorf("non-network bits set in %q", s)
	}
	return pfx, nil
}

// parseAbbrev reads an IPv6 address or 1 to 4 dotted IPv4 numbers, the
// missing ones zero.
func parseAbbrev(s string) (netip.Addr, error) {
	if strings.Contains(s, ":") {
		a, err := netip.ParseAddr(s)
		if err != nil {
			return a, fmt.Errorf("%q is not an IPv6 address", s)
		}
		return a, nil
	}
	parts := strings.Split(s, ".")
	if len(parts) > 4 {
		return netip.Addr{}, fmt.Errorf("%q is not an IPv4 address", s)
	}
	var b [4]byte
	for i, part := range parts {
		n, err := strconv.ParseUint(part, 10, 8)
		if err != nil {
			return netip.Addr{}, fmt.Errorf("%q is not an address (names are not looked up)", s)
		}
		b[i] = byte(n)
	}
	return netip.AddrFrom4(b), nil
}

func maskBits(m []byte) (int, bool) {
	n := 0
	for i, b := range m {
		for bit := 7; bit >= 0; bit-- {
			if b&(1<<bit) == 0 {
				// The rest must be zero.
				for _, rest := range m[i+1:] {
					if rest != 0 {
						return 0, false
					}
				}
				return n, b&(1<<bit-1) == 0
			}
			n++
		}
	}
	return n, true
}

func parsePort(s string) (uint16, error) {
	n, err := strconv.ParseUint(s, 10, 16)
	if err != nil {
		if errors.Is(err, strconv.ErrRange) {
			return 0, fmt.Errorf("port %q is out of range", s)
		}
		return 0, fmt.Errorf("port %q: give a number (names are not looked up)", s)
	}
	return uint16(n), nil
}

// protoNumbers are the IP protocol names tcpdump knows, written with a
// backslash there (ip proto \tcp); the backslash is optional here.
var protoNumbers = map[string]uint8{
	"icmp": 1, "igmp": 2, "ipip": 4, "tcp": 6, "udp": 17, "ipv6": 41, "ip6": 41, "gre": 47,
	"esp": 50, "ah": 51, "icmp6": 58, "pim": 103, "vrrp": 112, "sctp": 132,
}

func parseProto(s string) (uint8, error) {
	name := strings.ToLower(strings.TrimPrefix(s, `\`))
	if n, ok := protoNumbers[name]; ok {
		return n, nil
	}
	n, err := strconv.ParseUint(name, 10, 8)
	if err != nil {
		return 0, fmt.Errorf("protocol %q: give a number from 0 to 255 or one of icmp, igmp, ipip, tcp, udp, gre, icmp6, sctp", s)
	}
	return uint8(n), nil
}
