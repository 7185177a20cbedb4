package curl

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/labctl/labctl/emulator/applet/internal/applettest"
	"github.com/labctl/labctl/emulator/netns"
	"github.com/labctl/labctl/internal/nstest"
)

var prefix = nstest.Prefix("curl")

func TestMain(m *testing.M) { applettest.Main(m, prefix, "curl", Main) }

// realCurl is curl 7.88, Debian 12's, whose output the applet follows.
func realCurl(t *testing.T) string {
	return applettest.Real(t, "curl", "-V", "curl 7.88.", "curl")
}

// network is a client namespace and a server namespace on one link:
//
//	client 10.98.0.1 --- server 10.98.0.2 (ports 80 and 8080 serve, 81 refuses)
//
// 10.98.0.9 has a neighbour entry nobody answers to, so connections to it
// hang until they time out; 10.97.0.1 has no route at all.
type network struct {
	client, server string
	srv            *server
}

func newNetwork(t *testing.T) *network {
	t.Helper()
	name := nstest.Unique(prefix)
	n := &network{client: nstest.AddNamespace(t, name+"c"), server: nstest.AddNamespace(t, name+"s")}
	for _, args := range [][]string{
		{"-n", n.client, "link", "add", "v0", "type", "veth", "peer", "name", "v1", "netns", n.server},
		{"-n", n.client, "addr", "add", "10.98.0.1/24", "dev", "v0"},
		{"-n", n.server, "addr", "add", "10.98.0.2/24", "dev", "v1"},
		{"-n", n.client, "link", "set", "v0", "up"},
		{"-n", n.server, "link", "set", "v1", "up"},
		{"-n", n.client, "neigh", "add", "10.98.0.9", "lladdr", "02:00:00:00:00:09", "dev", "v0", "nud", "permanent"},
	} {
		nstest.IP(t, args...)
	}
	n.srv = startServer(t, n.server, "10.98.0.2:80", "10.98.0.2:8080")
	return n
}

// server answers the test requests the same way every time, so that the
// applet and curl see the same bytes. Each path is one behaviour.
type server struct {
	lns []net.Listener
	wg  sync.WaitGroup
}

func startServer(t *testing.T, ns string, addrs ...string) *server {
	t.Helper()
	s := &server{}
	err := netns.Do(netns.Path(ns), func() error {
		for _, a := range addrs {
			ln, err := net.Listen("tcp4", a)
			if err != nil {
				return err
			}
			s.lns = append(s.lns, ln)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, ln := range s.lns {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			var conns sync.WaitGroup
			defer conns.Wait()
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				conns.Add(1)
				go func() {
					defer conns.Done()
					s.serve(c)
				}()
			}
		}()
	}
	t.Cleanup(func() {
		for _, ln := range s.lns {
			ln.Close()
		}
		s.wg.Wait()
	})
	return s
}

// serve answers requests on one connection until a response closes it.
func (s *server) serve(c net.Conn) {
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	r := bufio.NewReader(c)
	for {
		var head bytes.Buffer
		for {
			line, err := r.ReadString('\n')
			head.WriteString(line)
			if err != nil {
				return
			}
			if line == "\r\n" || line == "\n" {
				break
			}
		}
		req := head.String()
		method, rest, _ := strings.Cut(req, " ")
		target, _, _ := strings.Cut(rest, " ")
		var body []byte
		if i := strings.Index(strings.ToLower(req), "\r\ncontent-length: "); i >= 0 {
			v, _, _ := strings.Cut(req[i+18:], "\r\n")
			n, _ := strconv.Atoi(strings.TrimSpace(v))
			body = make([]byte, n)
			if _, err := io.ReadFull(r, body); err != nil {
				return
			}
		}
		path, _, _ := strings.Cut(target, "?")
		if strings.HasPrefix(path, "http://") { // through a proxy
			path = "/" + strings.SplitN(strings.TrimPrefix(path, "http://"), "/", 2)[1]
		}
		if !respond(c, method, path, req, body) {
			return
		}
	}
}

// respond writes the answer to one request; false closes the connection.
func respond(c net.Conn, method, path, req string, body []byte) bool {
	send := func(s string) { _, _ = io.WriteString(c, s) }
	withBody := func(head, b string) {
		if method == "HEAD" {
			b = ""
		}
		send(head + b)
	}
	switch path {
	case "/ok":
		withBody("HTTP/1.1 200 OK\r\nserver: labtest\r\nX-Mixed-Case: v\r\nContent-Length: 6\r\ncontent-type: text/plain\r\n\r\n", "hello\n")
		return true
	case "/echo":
		echo := req + string(body)
		withBody(fmt.Sprintf("HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n", len(echo)), echo)
		return true
	case "/py":
		withBody("HTTP/1.0 200 OK\r\nServer: SimpleHTTP/0.6 Python/3.11.2\r\nDate: Thu, 01 Jan 2026 00:00:00 GMT\r\nContent-type: text/html\r\n\r\n", "HTTP Server IP address: 10.98.0.2\nRequest path: "+path+"\n")
		return false
	case "/404":
		withBody("HTTP/1.0 404 Not Found\r\nServer: SimpleHTTP/0.6 Python/3.11.2\r\nContent-Type: text/html\r\n\r\n", "nope\n")
		return false
	case "/503":
		withBody("HTTP/1.1 503 Service Unavailable\r\nContent-Length: 5\r\n\r\n", "busy\n")
		return true
	case "/chunked":
		withBody("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", "6\r\nchunk \r\n4\r\ned!\n\r\n0\r\n\r\n")
		return true
	case "/noclen":
		withBody("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n", "until close\n")
		return false
	case "/close":
		withBody("HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 3\r\n\r\n", "ok\n")
		return false
	case "/keepalive10":
		withBody("HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 3\r\n\r\n", "ok\n")
		return true
	case "/redirect":
		send("HTTP/1.1 302 Found\r\nLocation: /ok\r\nContent-Length: 9\r\n\r\nmoved on\n")
		return true
	case "/redirect-close":
		send("HTTP/1.0 301 Moved Permanently\r\nLocation: http://10.98.0.2:8080/ok\r\n\r\n")
		return false
	case "/see-other":
		send("HTTP/1.1 303 See Other\r\nLocation: /echo\r\nContent-Length: 0\r\n\r\n")
		return true
	case "/loop":
		send("HTTP/1.1 302 Found\r\nLocation: /loop\r\nContent-Length: 0\r\n\r\n")
		return true
	case "/slow":
		time.Sleep(3 * time.Second)
		withBody("HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n", "ok\n")
		return true
	case "/slowbody":
		send("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nfirst ten\n")
		time.Sleep(3 * time.Second)
		return false
	case "/short":
		send("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly ten!\n")
		return false
	case "/empty":
		return false
	case "/reset":
		if tc, ok := c.(*net.TCPConn); ok {
			_ = tc.SetLinger(0)
		}
		return false
	case "/big":
		withBody("HTTP/1.1 200 OK\r\nContent-Length: 200000\r\n\r\n", strings.Repeat("0123456789abcdef", 12500))
		return true
	case "/continue":
		send("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nok\n")
		return true
	case "/nocontent":
		send("HTTP/1.1 204 No Content\r\nX-Thing: 1\r\n\r\n")
		return true
	}
	withBody("HTTP/1.1 404 Not Found\r\nContent-Length: 10\r\n\r\n", "not found\n")
	return true
}

func runIn(t *testing.T, ns, prog string, env []string, args ...string) applettest.Result {
	t.Helper()
	return applettest.Run(t, ns, prog, env, args...)
}
