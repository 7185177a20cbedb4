package probe

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"time"
)

// HTTPClient returns a client whose connections start in the namespace at
// nsPath. URLs must name hosts by IP address: nothing resolves names inside
// a lab namespace.
//
// net/http dials on goroutines of its own, so the transport's dial function
// creates each socket in the namespace itself. Keep-alives are off: an idle
// pooled connection would keep the namespace alive after its lab is torn
// down, and probes want a fresh connection per request anyway.
func HTTPClient(nsPath string) *http.Client {
	return &http.Client{Transport: &http.Transport{
		// No Proxy: the host's proxy settings mean nothing inside a lab.
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			switch network {
			case "tcp", "tcp4", "tcp6":
				c, err := DialTCP(ctx, nsPath, addr)
				if err != nil {
					return nil, err // not a nil *TCPConn inside a non-nil net.Conn
				}
				return c, nil
			}
			return nil, fmt.Errorf("dial %s %q: only tcp is supported", network, addr)
		},
		DisableKeepAlives:     true,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: time.Second,
	}}
}
