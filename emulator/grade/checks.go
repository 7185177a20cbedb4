package grade

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/labctl/labctl/emulator/lab"
	"github.com/labctl/labctl/emulator/netns"
	"github.com/labctl/labctl/emulator/plan"
	"github.com/labctl/labctl/emulator/probe"
	"github.com/labctl/labctl/emulator/scenario"
	"github.com/labctl/labctl/emulator/workload"
)

// Expected says in words what a check asks for, as reports print it.
func Expected(c *scenario.Check) string {
	var s string
	switch c.Kind {
	case scenario.KindPing:
		s = pingWanted(c.Ping)
	case scenario.KindHTTP:
		s = httpWanted(c.HTTP)
	case scenario.KindTCP:
		s = fmt.Sprintf("%s connects to %s port %d", c.TCP.From.Name, c.TCP.To, c.TCP.Port)
	case scenario.KindUDP:
		s = fmt.Sprintf("%s port %d echoes %q back to %s", c.UDP.To, c.UDP.Port, c.UDP.Payload, c.UDP.From.Name)
	case scenario.KindRoute:
		s = "a route to " + c.Route.To.String() + routeWords(c.Route.Device, c.Route.Via, c.Route.Src)
	case scenario.KindCommand:
		s = commandWanted(c.Command)
	case scenario.KindPingAll:
		n := len(c.PingAll.Pods) + len(c.PingAll.Nodes)
		s = fmt.Sprintf("all %d pairs of %d pods and nodes answer", n*(n-1), n)
	case scenario.KindCapture:
		s = captureWanted(c.Capture)
	case scenario.KindLogs:
		s = "the log " + textWanted(c.Logs.Contains, c.Logs.Matches)
	}
	if c.Expect == scenario.ExpectFail {
		return "not: " + s
	}
	return s
}

func textWanted(contains []string, matches *regexp.Regexp) string {
	var parts []string
	for _, s := range contains {
		parts = append(parts, "has "+strconv.Quote(s))
	}
	if matches != nil {
		parts = append(parts, "matches /"+matches.String()+"/")
	}
	return strings.Join(parts, ", ")
}

func pingWanted(p *scenario.Ping) string {
	s := fmt.Sprintf("%s answers %s", p.To, p.From.Name)
	if p.MaxLoss == 0 {
		s += fmt.Sprintf(": %d/%d replies", p.Count, p.Count)
	} else {
		s += fmt.Sprintf(" with at most %d%% loss", p.MaxLoss)
	}
	if p.TTL > 0 {
		s += fmt.Sprintf(", TTL %d", p.TTL)
	}
	if p.MaxRTT > 0 {
		s += fmt.Sprintf(", RTT at most %v", p.MaxRTT)
	}
	return s
}

// ping sends the echoes and judges loss, TTL and RTT.
func (g *grader) ping(ctx context.Context, p *scenario.Ping, timeout time.Duration) outcome {
	ns, err := g.namespace(p.From)
	if err != nil {
		return broken(err)
	}
	r, err := probe.Ping(ctx, ns, p.To.Addr, probe.PingOptions{
		Count: p.Count, Timeout: timeout, Size: p.Size, DontFragment: p.DontFragment, TTL: p.SendTTL,
	})
	if err != nil {
		return held(false, "ping could not run: %v", err)
	}
	return judgePing(p, r)
}

func judgePing(p *scenario.Ping, r probe.PingResult) outcome {
	obs := fmt.Sprintf("%d/%d replies", r.Received, p.Count)
	ok := (p.Count-r.Received)*100 <= p.MaxLoss*p.Count
	if !ok || r.Received == 0 {
		ok = ok && r.Received > 0
		for _, e := range r.Echoes {
			if e.Err != nil {
				obs += ": " + errorWords(e.Err)
				break
			}
		}
		return held(ok, "%s", obs)
	}
	var ttls []int
	var maxRTT time.Duration
	for _, e := range r.Echoes {
		if e.Err == nil {
			if !slices.Contains(ttls, e.TTL) {
				ttls = append(ttls, e.TTL)
			}
			maxRTT = max(maxRTT, e.RTT)
		}
	}
	slices.Sort(ttls)
	obs += ", TTL " + joinInts(ttls)
	if p.TTL > 0 && (len(ttls) != 1 || ttls[0] != p.TTL) {
		ok = false
	}
	if p.MaxRTT > 0 {
		// The RTT itself is said only when it is too long: a report read
		// twice should read the same.
		if maxRTT > p.MaxRTT {
			ok = false
			obs += fmt.Sprintf(", RTT %v", maxRTT.Round(10*time.Microsecond))
		} else {
			obs += fmt.Sprintf(", RTT within %v", p.MaxRTT)
		}
	}
	return held(ok, "%s", obs)
}

func joinInts(v []int) string {
	s := make([]string, len(v))
	for i, x := range v {
		s[i] = strconv.Itoa(x)
	}
	return strings.Join(s, "/")
}

// errorWords says why a probe failed, without what changes from one run to
// the next (ports, addresses of our own sockets).
func errorWords(err error) string {
	var icmp *probe.ICMPError
	var op *net.OpError
	switch {
	case errors.As(err, &icmp):
		return icmp.Error()
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, probe.ErrNoReply):
		return "no reply in time"
	case errors.As(err, &op) && op.Err != nil:
		var se interface{ Unwrap() error }
		if errors.As(op.Err, &se) && se.Unwrap() != nil {
			return se.Unwrap().Error()
		}
		return op.Err.Error()
	}
	return err.Error()
}

func httpWanted(h *scenario.HTTP) string {
	s := fmt.Sprintf("GET %s from %s: status %d", h.URL, h.From.Name, h.Status)
	if t := textWanted(h.BodyContains, h.BodyMatches); t != "" {
		s += ", body " + t
	}
	return s
}

// maxBody bounds what is read of an answer or an output.
const maxBody = 1 << 20

func (g *grader) http(ctx context.Context, h *scenario.HTTP, timeout time.Duration) outcome {
	ns, err := g.namespace(h.From)
	if err != nil {
		return broken(err)
	}
	client := probe.HTTPClient(ns)
	client.Timeout = timeout
	req, err := newGet(ctx, h.URL)
	if err != nil {
		return broken(err)
	}
	resp, err := client.Do(req)
	if err != nil {
		return held(false, "no answer: %s", errorWords(err))
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if err != nil {
		return held(false, "status %d, body cut short: %s", resp.StatusCode, errorWords(err))
	}
	obs := fmt.Sprintf("status %d", resp.StatusCode)
	ok := resp.StatusCode == h.Status
	if t, tok := textHeld(body, h.BodyContains, h.BodyMatches); t != "" {
		obs += ", body " + t
		ok = ok && tok
	}
	return held(ok, "%s", obs)
}

// textHeld says which of the wanted texts and pattern the text holds.
func textHeld(text []byte, contains []string, matches *regexp.Regexp) (string, bool) {
	var parts []string
	ok := true
	for _, s := range contains {
		if bytes.Contains(text, []byte(s)) {
			parts = append(parts, "has "+strconv.Quote(s))
		} else {
			parts = append(parts, "lacks "+strconv.Quote(s))
			ok = false
		}
	}
	if matches != nil {
		if matches.Match(text) {
			parts = append(parts, "matches /"+matches.String()+"/")
		} else {
			parts = append(parts, "does not match /"+matches.String()+"/")
			ok = false
		}
	}
	return strings.Join(parts, ", "), ok
}

func newGet(ctx context.Context, url string) (*http.Request, error) {
	return http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
}

func (g *grader) tcp(ctx context.Context, c *scenario.Conn, timeout time.Duration) outcome {
	ns, err := g.namespace(c.From)
	if err != nil {
		return broken(err)
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	addr := netip.AddrPortFrom(c.To.Addr, uint16(c.Port)).String()
	conn, err := probe.DialTCP(ctx, ns, addr)
	if err != nil {
		return held(false, "no connection to %s: %s", addr, errorWords(err))
	}
	conn.Close()
	return held(true, "connected to %s", addr)
}

// udpResend is how often an unanswered datagram is sent again.
const udpResend = 250 * time.Millisecond

func (g *grader) udp(ctx context.Context, c *scenario.Conn, timeout time.Duration) outcome {
	ns, err := g.namespace(c.From)
	if err != nil {
		return broken(err)
	}
	addr := netip.AddrPortFrom(c.To.Addr, uint16(c.Port)).String()
	conn, err := probe.DialUDP(ns, addr)
	if err != nil {
		return held(false, "no socket for %s: %s", addr, errorWords(err))
	}
	defer conn.Close()
	deadline := time.Now().Add(timeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	buf := make([]byte, len(c.Payload)+64)
	var last error
	for time.Now().Before(deadline) {
		if _, err := conn.Write([]byte(c.Payload)); err != nil {
			last = err
		} else {
			wait := time.Now().Add(udpResend)
			if wait.After(deadline) {
				wait = deadline
			}
			_ = conn.SetReadDeadline(wait)
			n, err := conn.Read(buf)
			switch {
			case err == nil && string(buf[:n]) == c.Payload:
				return held(true, "%s echoed %q", addr, c.Payload)
			case err == nil:
				return held(false, "%s answered %q, not the %q sent", addr, buf[:n], c.Payload)
			}
			last = err
		}
		var ne net.Error
		if !(errors.As(last, &ne) && ne.Timeout()) {
			return held(false, "no echo from %s: %s", addr, errorWords(last))
		}
	}
	return held(false, "no echo from %s: no reply in time", addr)
}

func routeWords(dev string, via, src netip.Addr) string {
	s := ""
	if via.IsValid() {
		s += " via " + via.String()
	}
	if dev != "" {
		s += " dev " + dev
	}
	if src.IsValid() {
		s += " src " + src.String()
	}
	return s
}

// route looks the destination up in the namespace's tables, as `ip route
// get` does.
func (g *grader) route(r *scenario.Route) outcome {
	ns, err := g.namespace(r.In)
	if err != nil {
		return broken(err)
	}
	h, err := netns.Open(ns)
	if err != nil {
		return broken(err)
	}
	defer h.Close()
	nh, err := netns.NetlinkHandle(h)
	if err != nil {
		return broken(err)
	}
	defer nh.Close()
	routes, err := nh.RouteGet(r.To.AsSlice())
	if err != nil || len(routes) == 0 {
		return held(false, "no route to %s: %v", r.To, err)
	}
	got := routes[0]
	var dev string
	if l, err := nh.LinkByIndex(got.LinkIndex); err == nil {
		dev = l.Attrs().Name
	}
	via, _ := netip.AddrFromSlice(got.Gw)
	src, _ := netip.AddrFromSlice(got.Src)
	via, src = via.Unmap(), src.Unmap()
	ok := (r.Device == "" || r.Device == dev) && (!r.Via.IsValid() || r.Via == via) && (!r.Src.IsValid() || r.Src == src)
	return held(ok, "%s%s", r.To, routeWords(dev, via, src))
}

func commandWanted(c *scenario.Command) string {
	where := c.In.Name
	if c.Container != "" {
		where = "container " + c.Container + " of " + c.In.Name
	}
	s := fmt.Sprintf("%s in %s exits %d", strings.Join(c.Argv, " "), where, c.ExitCode)
	if t := textWanted(c.StdoutContains, c.StdoutMatches); t != "" {
		s += ", stdout " + t
	}
	for _, e := range c.StderrContains {
		s += ", stderr has " + strconv.Quote(e)
	}
	return s
}

// command runs the program through the lab facade, as `labctl exec` does,
// and judges its exit code and output.
func (g *grader) command(ctx context.Context, c *scenario.Command, timeout time.Duration) outcome {
	if _, err := g.namespace(c.In); err != nil {
		return broken(err)
	}
	t, err := g.m.Resolve(g.lab, c.In.Name, c.Container)
	if err != nil {
		return broken(err)
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var out, errOut capped
	code, err := g.m.Exec(ctx, t, c.Argv, lab.ExecOptions{Stdout: &out, Stderr: &errOut})
	switch {
	case errors.Is(err, context.DeadlineExceeded) || ctx.Err() != nil:
		return held(false, "still running after %v", timeout)
	case err != nil:
		return broken(err)
	}
	obs := fmt.Sprintf("exit %d", code)
	ok := code == c.ExitCode
	if t, tok := textHeld(out.Bytes(), c.StdoutContains, c.StdoutMatches); t != "" {
		obs += ", stdout " + t
		ok = ok && tok
	}
	if len(c.StderrContains) > 0 {
		t, tok := textHeld(errOut.Bytes(), c.StderrContains, nil)
		obs += ", stderr " + t
		ok = ok && tok
	}
	if code != c.ExitCode {
		if line := firstLine(errOut.Bytes()); line != "" {
			obs += ": " + line
		}
	}
	return held(ok, "%s", obs)
}

func firstLine(b []byte) string {
	line, _, _ := bytes.Cut(bytes.TrimSpace(b), []byte("\n"))
	return string(line)
}

// capped keeps the first maxBody bytes written to it and drops the rest,
// so a chatty command cannot fill the grader's memory.
type capped struct{ bytes.Buffer }

func (c *capped) Write(p []byte) (int, error) {
	if room := maxBody - c.Len(); room > 0 {
		c.Buffer.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}

// pingAllWorkers is how many pairs are pinged at once.
const pingAllWorkers = 8

// pingAll pings between every ordered pair, in parallel, and lists the
// pairs that failed in a stable order.
func (g *grader) pingAll(ctx context.Context, p *scenario.PingAll, timeout time.Duration) outcome {
	type end struct {
		place scenario.Place
		addr  netip.Addr
	}
	var ends []end
	for _, name := range p.Pods {
		pod, _ := g.t.Pod(name)
		ends = append(ends, end{scenario.Place{Role: "pod", Name: name}, pod.IP})
	}
	for _, name := range p.Nodes {
		n, _ := g.t.Node(name)
		ends = append(ends, end{scenario.Place{Role: "node", Name: name}, n.IP})
	}
	type pair struct{ from, to int }
	var pairs []pair
	for i := range ends {
		if _, err := g.namespace(ends[i].place); err != nil {
			return broken(err)
		}
		for j := range ends {
			if i != j {
				pairs = append(pairs, pair{i, j})
			}
		}
	}
	failed := make([]bool, len(pairs))
	next := make(chan int)
	var wg sync.WaitGroup
	for range min(pingAllWorkers, len(pairs)) {
		wg.Go(func() {
			for k := range next {
				pr := pairs[k]
				r, err := probe.Ping(ctx, netns.Path(plan.NamespaceName(g.lab, ends[pr.from].place.Name)), ends[pr.to].addr,
					probe.PingOptions{Count: p.Count, Timeout: timeout})
				failed[k] = err != nil || r.Received < p.Count
			}
		})
	}
	for k := range pairs {
		next <- k
	}
	close(next)
	wg.Wait()
	var bad []string
	for k, f := range failed {
		if f {
			bad = append(bad, ends[pairs[k].from].place.Name+"→"+ends[pairs[k].to].place.Name)
		}
	}
	obs := fmt.Sprintf("%d/%d pairs answer", len(pairs)-len(bad), len(pairs))
	if len(bad) > 0 {
		const shown = 8
		list := bad
		if len(list) > shown {
			list = append(slices.Clone(list[:shown]), fmt.Sprintf("and %d more", len(bad)-shown))
		}
		obs += "; failing: " + strings.Join(list, ", ")
	}
	return held(len(bad) == 0, "%s", obs)
}

// logs reads the container's log and judges its text.
func (g *grader) logs(ctx context.Context, l *scenario.Logs) outcome {
	t, err := g.m.Resolve(g.lab, l.Pod, l.Container)
	if err != nil {
		return broken(err)
	}
	if t.PodStateDir == "" {
		return broken(fmt.Errorf("%s runs no containers", t))
	}
	var tail tailBuffer
	if err := workload.Logs(ctx, &tail, t.PodStateDir, l.Container, false); err != nil {
		return broken(err)
	}
	obs, ok := textHeld(tail.Bytes(), l.Contains, l.Matches)
	return held(ok, "the log %s", obs)
}

// tailBuffer keeps the last maxBody bytes written to it: a log's newest
// lines are what a check is about.
type tailBuffer struct{ b []byte }

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.b = append(t.b, p...)
	if len(t.b) > 2*maxBody {
		t.b = append(t.b[:0:0], t.b[len(t.b)-maxBody:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) Bytes() []byte {
	if len(t.b) > maxBody {
		return t.b[len(t.b)-maxBody:]
	}
	return t.b
}
