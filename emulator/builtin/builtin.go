package builtin

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"runtime/debug"
	"strconv"
	"sync"
)

// Name names a builtin.
type Name string

const (
	// WebServer answers every GET like the textbook's python server:
	// "HTTP Server IP address: <pod IP>" and "Request path: <path>".
	WebServer Name = "web-server"
	// EchoServer echoes TCP streams and UDP datagrams on one port.
	EchoServer Name = "echo-server"
	// Client idles until stopped, for `labctl exec ... -- curl`: its PATH
	// finds the host's curl and ping, else labctl's applets.
	Client Name = "client"
	// DNS is the lab's cluster DNS server (dns.go), as CoreDNS answers
	// the Kubernetes DNS schema, from the model $LABCTL_CLUSTER_DNS names.
	DNS Name = "dns"
)

// Default ports of the builtin servers when the container lists none.
const (
	DefaultWebPort  = 80
	DefaultEchoPort = 7  // the echo protocol's port (RFC 862)
	DefaultDNSPort  = 53 // DNS, over UDP and TCP
)

// Config is what a builtin knows of its container.
type Config struct {
	Pod, Container string // names, for messages
	Port           int    // the port a server listens on
	// PodIP is the pod's IP, which the web server names unless POD_IP in
	// the environment says otherwise.
	PodIP string
}

// builtins are all of them, in the order messages list them: adding a
// builtin is one entry here. port is where it listens unless its container
// lists a port; 0 for one that listens nowhere. run serves until ctx ends
// and calls serving once it serves.
var builtins = [...]struct {
	name Name
	port int
	run  func(ctx context.Context, cfg Config, serving func()) error
}{
	{WebServer, DefaultWebPort, webServer},
	{EchoServer, DefaultEchoPort, echoServer},
	{Client, 0, client},
	{DNS, DefaultDNSPort, dnsServer},
}

// Names lists the builtins.
func Names() []Name {
	names := make([]Name, len(builtins))
	for i, b := range builtins {
		names[i] = b.name
	}
	return names
}

// Known reports whether n is a builtin.
func (n Name) Known() bool { return n.index() >= 0 }

// DefaultPort is the port the builtin listens on when its container lists
// none; 0 for a builtin that listens on no port.
func (n Name) DefaultPort() int {
	if i := n.index(); i >= 0 {
		return builtins[i].port
	}
	return 0
}

func (n Name) index() int {
	for i, b := range builtins {
		if b.name == n {
			return i
		}
	}
	return -1
}

// Run runs builtin n in this process until ctx ends (container init ends it
// on SIGTERM), and returns nil then. It calls serving once it serves (a
// server: once it listens); an error before that is a failure to start.
//
// Builtins run in container init's process, after it joined the cgroups and
// entered the root filesystem, so they need nothing from the host's (or the
// container's) files.
func Run(ctx context.Context, n Name, cfg Config, serving func()) error {
	i := n.index()
	if i < 0 {
		return fmt.Errorf("unknown builtin %q", n)
	}
	// A builtin is a tiny server: a smaller heap target keeps its resident
	// memory low (the goal is under 8 MB each, a hundred to a lab).
	debug.SetGCPercent(50)
	return builtins[i].run(ctx, cfg, serving)
}

// podIP is the address the web server names: POD_IP, as the textbook's
// server reads it, else the pod's configured IP, else the first global IPv4
// address of the namespace.
func podIP(cfg Config) string {
	if ip := os.Getenv("POD_IP"); ip != "" {
		return ip
	}
	if cfg.PodIP != "" {
		return cfg.PodIP
	}
	addrs, _ := net.InterfaceAddrs()
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && n.IP.To4() != nil && n.IP.IsGlobalUnicast() {
			return n.IP.String()
		}
	}
	return "Unknown_IP"
}

func echoServer(ctx context.Context, cfg Config, serving func()) error {
	addr := ":" + strconv.Itoa(cfg.Port)
	ln, err := net.Listen("tcp4", addr)
	if err != nil {
		return err
	}
	pc, err := net.ListenPacket("udp4", addr)
	if err != nil {
		ln.Close()
		return err
	}
	fmt.Printf("echo server on TCP and UDP port %d\n", cfg.Port)
	serving()
	go func() {
		<-ctx.Done()
		ln.Close()
		pc.Close()
	}()
	var wg sync.WaitGroup
	wg.Go(func() {
		buf := make([]byte, 64<<10)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
					return
				}
				continue
			}
			_, _ = pc.WriteTo(buf[:n], from)
			fmt.Printf("udp %s: %d bytes echoed\n", from, n)
		}
	})
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				break
			}
			continue
		}
		go func() {
			defer c.Close()
			n, _ := io.Copy(c, c)
			fmt.Printf("tcp %s: %d bytes echoed\n", c.RemoteAddr(), n)
		}()
	}
	wg.Wait()
	return nil
}

// client idles: it is a place to `labctl exec` into, like the textbook's
// curl-client running `sleep 3600` in a loop, but it stops at once on
// SIGTERM.
func client(ctx context.Context, cfg Config, serving func()) error {
	fmt.Printf("client ready: labctl exec %s -c %s -- curl http://<ip>/\n", cfg.Pod, cfg.Container)
	serving()
	<-ctx.Done()
	return nil
}
