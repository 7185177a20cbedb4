// Package scenario reads graded lab exercises: which topology to bring up,
// what to do once it is up, which faults to inject for a break-fix
// exercise, and the checks a working lab passes, grouped in sections, each
// with points and a hint. A scenario is validated like a topology (every
// problem at once, at file:line:col, with the same machinery), and its
// names are checked against its topology, so a scenario that validates
// only fails at run time for what only the lab can say.
//
// The package is pure: no system calls but reading the files. Package
// grade runs scenarios against labs; package report renders the results.
package scenario

import (
	"fmt"
	"net/netip"
	"regexp"
	"time"

	"github.com/labctl/labctl/emulator/spec"
)

// Scenario is a validated scenario.
type Scenario struct {
	File        string
	Title       string
	Description string
	// Topology is the lab the scenario runs on; TopologyFile is where it
	// was read from ("" when written inline).
	Topology     *spec.Topology
	TopologyFile string
	Setup        []Step
	Faults       []Fault
	Sections     []Section
}

// Checks lists every check in file order.
func (s *Scenario) Checks() []*Check {
	var all []*Check
	for i := range s.Sections {
		for j := range s.Sections[i].Checks {
			all = append(all, &s.Sections[i].Checks[j])
		}
	}
	return all
}

// MaxPoints is what a lab passing every check scores.
func (s *Scenario) MaxPoints() int {
	n := 0
	for _, c := range s.Checks() {
		n += c.Points
	}
	return n
}

// Step is a setup step: what happens once the lab is up, before faults
// and checks. A step that fails stops the run.
type Step struct {
	Name    string
	Line    int
	Command *Command      // run a command and expect its exit code
	Sleep   time.Duration // or wait
}

// Section groups checks under a heading of the report.
type Section struct {
	Name   string
	Checks []Check
}

// Outcome is what a check must come to: "pass" for what a working lab
// does, "fail" for what it must not (an isolation check).
type Outcome string

const (
	ExpectPass Outcome = "pass"
	ExpectFail Outcome = "fail"
)

// Check kinds.
const (
	KindPing    = "ping"
	KindHTTP    = "http"
	KindTCP     = "tcp"
	KindUDP     = "udp"
	KindRoute   = "route"
	KindCommand = "command"
	KindPingAll = "pingall"
	KindCapture = "capture"
	KindLogs    = "logs"
)

// Check is one graded check. Exactly one of the kind fields is set, as
// Kind says.
type Check struct {
	ID      string
	Title   string
	Section string
	Line    int
	Points  int
	Hint    string
	// Timeout bounds one attempt; Retry is the window in which the check
	// is attempted again until it comes to Expect.
	Timeout time.Duration
	Retry   time.Duration
	Expect  Outcome
	Kind    string

	Ping    *Ping
	HTTP    *HTTP
	TCP     *Conn
	UDP     *Conn
	Route   *Route
	Command *Command
	PingAll *PingAll
	Capture *Capture
	Logs    *Logs
}

// Place is where a probe or command runs: a node, a pod, an external host,
// the router or the underlay.
type Place struct {
	Role string // plan.RoleNode, RolePod, RoleExternal, RoleRouter or RoleUnderlay
	Name string // the node, pod or external host; "router", "underlay"
}

// Endpoint kinds: a pod, node or external host (its address), an address
// as written, a service (its cluster IP) or a node port (services.go);
// every kind is resolved to an address when the scenario is read.
const (
	EndpointPod      = "pod"
	EndpointNode     = "node"
	EndpointExternal = "external"
	EndpointAddress  = "address"
)

// Endpoint is what a probe is aimed at.
type Endpoint struct {
	Kind string
	Name string // the pod, node (also of a node port) or external host; "" for an address or a service
	Addr netip.Addr
	// Service is the service (namespace/name) of a service or node port
	// endpoint, and Port the port it implies (the service's port, or the
	// node port), which a check may leave out; 0 when it does not imply
	// one.
	Service string
	Port    int
}

// String names the endpoint as the scenario did: a pod or node by name,
// an address as written, a service or a node's node port of a service.
func (e Endpoint) String() string {
	switch e.Kind {
	case EndpointService:
		return "service " + e.Service
	case EndpointNodePort:
		return fmt.Sprintf("%s's node port of service %s", e.Name, e.Service)
	}
	if e.Name != "" {
		return e.Name
	}
	return e.Addr.String()
}

// Ping sends ICMP echoes. MaxLoss is a percentage; TTL, when set, is the
// TTL replies must arrive with (64 less the routers on the way back).
type Ping struct {
	From         Place
	To           Endpoint
	Count        int
	Size         int
	DontFragment bool
	SendTTL      int
	MaxLoss      int
	MaxRTT       time.Duration
	TTL          int
}

// HTTP sends a GET. The URL names its host by address: nothing resolves
// names inside a lab namespace.
type HTTP struct {
	From         Place
	To           Endpoint
	URL          string
	Status       int
	BodyContains []string
	BodyMatches  *regexp.Regexp
}

// Conn is a TCP connect or a UDP echo to a server of the lab.
type Conn struct {
	From    Place
	To      Endpoint
	Port    int
	Payload string // UDP: what is sent and must come back
}

// Route looks a destination up in a namespace's routing table, as `ip
// route get` does; every field set must match the answer.
type Route struct {
	In     Place
	To     netip.Addr
	Device string
	Via    netip.Addr
	Src    netip.Addr
}

// Command runs a program in a node, pod or container (through the lab
// facade, as `labctl exec` does) and checks how it ends.
type Command struct {
	In             Place
	Container      string
	Argv           []string
	ExitCode       int
	StdoutContains []string
	StdoutMatches  *regexp.Regexp
	StderrContains []string
}

// PingAll pings between every ordered pair of the pods (and nodes, when
// asked), like Mininet's pingall: it passes when every pair does.
type PingAll struct {
	Pods  []string
	Nodes []string
	Count int
}

// Capture watches interfaces while a probe runs and counts the packets
// matching a description: at least Min and (when Max >= 0) at most Max.
type Capture struct {
	On     []Tap
	During Probe
	Match  PacketMatch
	Min    int
	Max    int // -1: no upper bound
}

// Tap is an interface of a namespace to capture on ("" for every one).
type Tap struct {
	Place     Place
	Interface string
}

// Probe is the traffic a capture watches: exactly one field is set.
type Probe struct {
	Ping *Ping
	HTTP *HTTP
	TCP  *Conn
	UDP  *Conn
}

// Encapsulations a packet match can ask for.
const (
	EncapAny   = ""      // the outer packet is matched, whatever it carries
	EncapNone  = "none"  // a plain packet: no tunnel
	EncapVXLAN = "vxlan" // UDP carrying VXLAN
	EncapIPIP  = "ipip"  // IPv4 in IPv4 (protocol 4)
)

// PacketMatch describes packets: their encapsulation, then the outer and
// the inner (innermost) headers. Zero fields match anything.
type PacketMatch struct {
	Encap string
	VNI   int // vxlan: the VNI (0: any)
	Outer Layer
	Inner Layer
}

// Layer is one IPv4 header and what it carries.
type Layer struct {
	Src, Dst         netip.Addr
	Protocol         string // icmp, tcp, udp, ipip
	SrcPort, DstPort int
	TTL              int
}

// IsZero reports whether the layer matches anything.
func (l Layer) IsZero() bool { return l == Layer{} }

// Logs reads a container's output (stdout and stderr, across restarts).
type Logs struct {
	Pod       string
	Container string
	Contains  []string
	Matches   *regexp.Regexp
}
