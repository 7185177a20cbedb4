package tui

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"time"

	"github.com/labctl/labctl/emulator/capture"
	"github.com/labctl/labctl/emulator/grade"
	"github.com/labctl/labctl/emulator/lab"
	"github.com/labctl/labctl/emulator/probe"
	"github.com/labctl/labctl/emulator/report"
	"github.com/labctl/labctl/emulator/scenario"
	"github.com/labctl/labctl/emulator/trace"
)

// Backend is everything the TUI reads from a lab and does to it. Only
// commands call it, never Update or View. Live is the real one; tests pass
// their own.
type Backend interface {
	// Status reads the lab as `labctl status` does, with every
	// namespace's interfaces and routes.
	Status(ctx context.Context) (*lab.Status, error)
	// Object reads what one node's, pod's or the underlay's namespace
	// holds: interfaces, routes, neighbours, FDB entries.
	Object(ctx context.Context, object string) (*lab.ObjectStatus, error)
	// Capture starts capturing on the targets.
	Capture(targets []capture.Target, opts capture.Options) (Feed, error)
	// Ping sends count echoes from the namespace at nsPath to dst.
	Ping(ctx context.Context, nsPath string, dst netip.Addr, count int) (probe.PingResult, error)
	// Get sends one HTTP GET from the namespace at nsPath.
	Get(ctx context.Context, nsPath, url string) (HTTPResult, error)
	// Trace follows one probe from a node or pod to another, by name.
	Trace(ctx context.Context, st *lab.Status, from, to string, p trace.Probe) (*trace.Journey, error)
	// Grade checks the lab against a scenario without changing it,
	// calling checked as each check finishes.
	Grade(ctx context.Context, s *scenario.Scenario, checked func(report.Check)) (*report.Result, error)
}

// Feed is a running capture: *capture.Group is one.
type Feed interface {
	// Packets delivers batches in time order; it is closed when the
	// capture ends.
	Packets() <-chan []capture.Packet
	// Stats counts what the kernel delivered and dropped.
	Stats() capture.GroupStats
	// Captures are the interfaces captured on, for the pcapng file's
	// interface records; a fake may return none.
	Captures() []*capture.Capture
	// Close ends the capture and releases its sockets.
	Close() error
}

// HTTPResult is the answer to one GET.
type HTTPResult struct {
	Status string // "200 OK"
	Code   int
	// Body is the start of the body (at most maxBody bytes); Length the
	// whole body's.
	Body   []byte
	Length int64
	Took   time.Duration
}

// maxBody bounds what the probe pane keeps of an HTTP answer.
const maxBody = 4 << 10

// Live is the Backend of a real lab.
type Live struct {
	Manager lab.Manager
	Lab     string
}

// Status implements Backend.
func (l Live) Status(ctx context.Context) (*lab.Status, error) {
	return l.Manager.Status(l.Lab, lab.StatusOptions{Live: true})
}

// Object implements Backend.
func (l Live) Object(ctx context.Context, object string) (*lab.ObjectStatus, error) {
	return l.Manager.ObjectStatus(l.Lab, object)
}

// Capture implements Backend.
func (l Live) Capture(targets []capture.Target, opts capture.Options) (Feed, error) {
	g, err := capture.Start(targets, opts)
	if err != nil {
		return nil, err
	}
	return g, nil
}

// Ping implements Backend.
func (l Live) Ping(ctx context.Context, nsPath string, dst netip.Addr, count int) (probe.PingResult, error) {
	return probe.Ping(ctx, nsPath, dst, probe.PingOptions{Count: count, Interval: 200 * time.Millisecond})
}

// Get implements Backend.
func (l Live) Get(ctx context.Context, nsPath, url string) (HTTPResult, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return HTTPResult{}, err
	}
	req.Header.Set("User-Agent", "labctl-tui")
	start := time.Now()
	resp, err := probe.HTTPClient(nsPath).Do(req)
	if err != nil {
		return HTTPResult{}, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if err != nil {
		return HTTPResult{}, fmt.Errorf("read the body: %w", err)
	}
	rest, _ := io.Copy(io.Discard, resp.Body)
	return HTTPResult{Status: resp.Status, Code: resp.StatusCode, Body: body, Length: int64(len(body)) + rest, Took: time.Since(start)}, nil
}

// Trace implements Backend.
func (l Live) Trace(ctx context.Context, st *lab.Status, from, to string, p trace.Probe) (*trace.Journey, error) {
	req, err := trace.ForLab(st, from, to, p)
	if err != nil {
		return nil, err
	}
	return trace.Run(ctx, req)
}

// Grade implements Backend.
func (l Live) Grade(ctx context.Context, s *scenario.Scenario, checked func(report.Check)) (*report.Result, error) {
	return grade.Grade(ctx, l.Manager, s, grade.Options{Lab: l.Lab, Checked: checked})
}
