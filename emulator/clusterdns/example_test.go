package clusterdns_test

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/signal"

	"github.com/labctl/labctl/emulator/clusterdns"
)

// A pod's resolv.conf, pointing at kube-dns at the tenth address of the
// service CIDR.
func ExampleResolvConf() {
	dnsIP, _ := clusterdns.KubeDNSAddress(netip.MustParsePrefix("10.96.0.0/12"))
	fmt.Print(clusterdns.ResolvConf("default", dnsIP, ""))
	// Output:
	// search default.svc.cluster.local svc.cluster.local cluster.local
	// nameserver 10.96.0.10
	// options ndots:5
}

// The DNS server as a pod container runs it: inside the pod's network
// namespace, on port 53, until its context ends. (Not run here: the test
// process is in the host's namespace.)
func ExampleServer_ListenAndServe() {
	s, err := clusterdns.NewServer(clusterdns.Model{Services: []clusterdns.Service{{
		Name: "kube-svc-1", ClusterIP: netip.MustParseAddr("10.96.0.2"),
		Ports: []clusterdns.Port{{Name: "http", Port: 8080}},
	}}})
	if err != nil {
		fmt.Println(err)
		return
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := s.ListenAndServe(ctx, ":53"); err != nil {
		fmt.Println(err)
	}
}
