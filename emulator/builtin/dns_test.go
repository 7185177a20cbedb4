package builtin

import (
	"context"
	"encoding/json"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/labctl/labctl/emulator/clusterdns"
	"github.com/labctl/labctl/emulator/netns"
	"github.com/labctl/labctl/internal/nstest"
)

var nsPrefix = nstest.Prefix("builtin")

func TestMain(m *testing.M) { nstest.Main(m, nsPrefix) }

func writeModel(t *testing.T, path string, m clusterdns.Model) {
	t.Helper()
	data, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	// Write and rename, as labctl's state directory does: the server never
	// reads half a file.
	if err := os.WriteFile(path+".tmp", data, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(path+".tmp", path); err != nil {
		t.Fatal(err)
	}
}

func oneService(name, ip string) clusterdns.Model {
	return clusterdns.Model{Services: []clusterdns.Service{{Name: name, ClusterIP: netip.MustParseAddr(ip),
		Ports: []clusterdns.Port{{Name: "http", Port: 8080}}}}}
}

// TestDNSModelProblems: the server refuses to start without a usable
// model, saying why.
func TestDNSModelProblems(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.json")
	if err := os.WriteFile(bad, []byte("{services"), 0o644); err != nil {
		t.Fatal(err)
	}
	empty := filepath.Join(dir, "empty.json")
	if err := os.WriteFile(empty, []byte("{}"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ env, want string }{
		{"", "names no cluster DNS model"},
		{filepath.Join(dir, "missing.json"), "no such file"},
		{bad, "invalid character"},
		{empty, "holds no services and no pods"},
	} {
		t.Setenv(DNSModelEnv, tc.env)
		err := Run(context.Background(), DNS, Config{Port: 53}, func() { t.Error("serving") })
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("model %q: %v, want an error with %q", tc.env, err, tc.want)
		}
	}
}

// TestDNSServerReloads runs the server in a namespace of its own, asks it
// for a service, then changes the model file and sees the answer change.
func TestDNSServerReloads(t *testing.T) {
	nstest.NeedRoot(t)
	ns := nstest.AddNamespace(t, nstest.Unique(nsPrefix)+"-dns")
	nstest.IP(t, "-n", ns, "link", "set", "lo", "up")
	model := filepath.Join(t.TempDir(), "cluster-dns.json")
	writeModel(t, model, oneService("kube-svc-1", "10.96.0.2"))
	t.Setenv(DNSModelEnv, model)

	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- netns.Do(netns.Path(ns), func() error {
			return Run(ctx, DNS, Config{Port: 53}, func() { close(served) })
		})
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("the server ended with %v", err)
		}
	})
	select {
	case <-served:
	case err := <-done:
		t.Fatalf("the server did not start: %v", err)
	}
	ask := func(name string) []dns.RR {
		t.Helper()
		var conn net.Conn
		if err := netns.Do(netns.Path(ns), func() (err error) {
			conn, err = net.Dial("udp4", "127.0.0.1:53")
			return err
		}); err != nil {
			t.Fatal(err)
		}
		c := &dns.Conn{Conn: conn}
		defer c.Close()
		q := new(dns.Msg).SetQuestion(name, dns.TypeA)
		_ = c.SetDeadline(time.Now().Add(2 * time.Second))
		if err := c.WriteMsg(q); err != nil {
			t.Fatal(err)
		}
		r, err := c.ReadMsg()
		if err != nil {
			t.Fatal(err)
		}
		return r.Answer
	}
	if a := ask("kube-svc-1.default.svc.cluster.local."); len(a) != 1 || a[0].(*dns.A).A.String() != "10.96.0.2" {
		t.Fatalf("answer %v, want kube-svc-1 at 10.96.0.2", a)
	}
	// A new model: the file's time must differ from the old one's.
	time.Sleep(10 * time.Millisecond)
	writeModel(t, model, oneService("web", "10.96.0.3"))
	deadline := time.Now().Add(5 * time.Second)
	for {
		a := ask("web.default.svc.cluster.local.")
		if len(a) == 1 && a[0].(*dns.A).A.String() == "10.96.0.3" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after the model changed, web is %v", a)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if a := ask("kube-svc-1.default.svc.cluster.local."); len(a) != 0 {
		t.Errorf("kube-svc-1 is still answered after the reload: %v", a)
	}
}
