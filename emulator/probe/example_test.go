package probe_test

import (
	"context"
	"fmt"
	"net/netip"
	"time"

	"github.com/labctl/labctl/emulator/netns"
	"github.com/labctl/labctl/emulator/probe"
)

func ExamplePing() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	res, err := probe.Ping(ctx, netns.Path("pod1"), netip.MustParseAddr("10.244.2.5"), probe.PingOptions{Count: 3})
	if err != nil {
		fmt.Println(err) // the ping could not run
		return
	}
	if err := res.Err(); err != nil {
		fmt.Println(err) // e.g. "ping 10.244.2.5: 3 of 3 echoes unanswered: echo 1: no reply within 1s"
		return
	}
	fmt.Printf("%d replies from %s, ttl %d\n", res.Received, res.Echoes[0].From, res.Echoes[0].TTL)
}

// The largest echo that crosses the path without fragmentation.
func ExamplePing_dontFragment() {
	ctx := context.Background()
	res, err := probe.Ping(ctx, netns.Path("pod1"), netip.MustParseAddr("10.244.2.5"),
		probe.PingOptions{Size: 1500 - 28, DontFragment: true})
	if err != nil {
		fmt.Println(err)
		return
	}
	if mtu, ok := probe.MTU(res.Echoes[0].Err); ok {
		fmt.Printf("too big: the path takes %d-byte packets, so %d bytes of payload\n", mtu, mtu-28)
	}
}

// Pod-to-pod traffic must keep its source address: no NAT between pods.
func ExampleCheckTCP() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	cc, err := probe.CheckTCP(ctx, netns.Path("pod1"), netns.Path("pod2"),
		netip.MustParseAddrPort("10.244.2.5:8080"))
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("pod2 saw %s; source NAT: %v\n", cc.Seen.Addr(), cc.SourceNAT())
}

func ExampleHTTPClient() {
	resp, err := probe.HTTPClient(netns.Path("pod1")).Get("http://10.96.0.10/")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer resp.Body.Close()
	fmt.Println(resp.Status)
}
