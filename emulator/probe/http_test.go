package probe

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestHTTPClient(t *testing.T) {
	lab := newLab(t)
	ln, err := ListenTCP(lab.b, addrB.String()+":0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "%s %s", r.URL.Path, r.RemoteAddr)
	})}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	t.Cleanup(func() {
		srv.Close()
		if err := <-served; !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("Serve() = %v", err)
		}
	})

	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	client := HTTPClient(lab.a)
	for i := range 3 {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("http://%s/hello/%d", ln.Addr(), i), nil)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("GET: %v", err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		path, remote, _ := strings.Cut(string(body), " ")
		host, _, err := net.SplitHostPort(remote)
		if err != nil || path != fmt.Sprintf("/hello/%d", i) || host != addrA.String() {
			t.Fatalf("server answered %q, want /hello/%d from %s", body, i, addrA)
		}
	}
}

func TestHTTPClientErrors(t *testing.T) {
	lab := newLab(t)
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	tests := []struct {
		url  string
		want string
	}{
		{"http://example.invalid/", "not an IP address"},
		{"http://" + addrB.String() + ":81/", "connection refused"},
	}
	for _, tt := range tests {
		t.Run(tt.url, func(t *testing.T) {
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, tt.url, nil)
			if err != nil {
				t.Fatal(err)
			}
			resp, err := HTTPClient(lab.a).Do(req)
			if err == nil {
				resp.Body.Close()
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("GET error = %v, want one containing %q", err, tt.want)
			}
		})
	}
}
