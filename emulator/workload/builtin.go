package workload

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"runtime/debug"
	"strconv"
	"sync"

	"golang.org/x/sys/unix"
)

// Builtins run in container init's process, after it joined the cgroups and
// entered the root filesystem, so they need nothing from the host's (or the
// container's) files. They close ready once they serve, and exit 0 on
// SIGTERM.

func runBuiltin(cfg *initConfig, ready *os.File) int {
	// A builtin is a tiny server: a smaller heap target keeps its resident
	// memory low (the goal is under 8 MB each, a hundred to a lab).
	debug.SetGCPercent(50)
	ctx, stop := signal.NotifyContext(context.Background(), unix.SIGTERM, unix.SIGINT)
	defer stop()
	served := false
	serving := func() {
		ready.Close()
		served = true
	}
	var err error
	switch cfg.Builtin {
	case BuiltinWebServer:
		err = webServer(ctx, cfg, serving)
	case BuiltinEchoServer:
		err = echoServer(ctx, cfg, serving)
	case BuiltinClient:
		err = client(ctx, cfg, serving)
	default:
		err = fmt.Errorf("unknown builtin %q", cfg.Builtin)
	}
	if err != nil {
		if !served {
			// Before serving, an error is a failure to start (a port in
			// use, say), which `labctl up` reports.
			return initFailed(ready, fmt.Errorf("%s: %w", cfg.Builtin, err))
		}
		fmt.Fprintf(os.Stderr, "%s: %v\n", cfg.Builtin, err)
		return 1
	}
	return 0
}

// podIP is the address the web server names: POD_IP, as the textbook's
// server reads it, else the pod's configured IP, else the first global IPv4
// address of the namespace.
func podIP(cfg *initConfig) string {
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

func echoServer(ctx context.Context, cfg *initConfig, serving func()) error {
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
func client(ctx context.Context, cfg *initConfig, serving func()) error {
	fmt.Printf("client ready: labctl exec %s -c %s -- curl http://<ip>/\n", cfg.Pod, cfg.Name)
	serving()
	<-ctx.Done()
	return nil
}
