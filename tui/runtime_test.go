package tui

import (
	"context"
	"errors"
	"flag"
	"net/netip"
	"os"
	"sync"
	"testing"
	"time"

	tea "github.com/charmbracelet/bubbletea"

	"github.com/labctl/labctl/emulator/capture"
	"github.com/labctl/labctl/emulator/lab"
	"github.com/labctl/labctl/emulator/probe"
	"github.com/labctl/labctl/emulator/report"
	"github.com/labctl/labctl/emulator/scenario"
	"github.com/labctl/labctl/emulator/trace"
	"github.com/labctl/labctl/internal/nstest"
)

var nsPrefix = nstest.Prefix("tui")

func TestMain(m *testing.M) {
	flag.Parse()
	nstest.Main(m, nsPrefix)
}

// runtime runs a model's commands as bubbletea does: each in a goroutine of
// its own, their messages handed to Update one at a time. Tests send keys
// and wait until the model reaches a state.
type runtime struct {
	t      *testing.T
	m      *Model
	msgs   chan tea.Msg
	done   chan struct{}
	wg     sync.WaitGroup
	closed sync.Once
}

func newRuntime(t *testing.T, m *Model) *runtime {
	r := &runtime{t: t, m: m, msgs: make(chan tea.Msg, 64), done: make(chan struct{})}
	t.Cleanup(r.stop)
	return r
}

// stop abandons the commands still running (their messages are dropped)
// and waits for them to end, as they do once the model's context ends.
func (r *runtime) stop() {
	r.closed.Do(func() { close(r.done) })
	ended := make(chan struct{})
	go func() { r.wg.Wait(); close(ended) }()
	select {
	case <-ended:
	case <-time.After(10 * time.Second):
		r.t.Error("commands still running 10s after the test")
	}
}

func (r *runtime) exec(cmd tea.Cmd) {
	if cmd == nil {
		return
	}
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		msg := cmd()
		if msg == nil {
			return
		}
		if batch, ok := msg.(tea.BatchMsg); ok {
			for _, c := range batch {
				r.exec(c)
			}
			return
		}
		select {
		case r.msgs <- msg:
		case <-r.done:
		}
	}()
}

// send hands msg to Update at once and starts the command it returns.
func (r *runtime) send(msg tea.Msg) {
	switch msg := msg.(type) {
	case tea.BatchMsg:
		for _, c := range msg {
			r.exec(c)
		}
		return
	case tea.QuitMsg:
		return
	}
	_, cmd := r.m.Update(msg)
	r.exec(cmd)
}

// keys sends key presses: names such as "enter", "tab", "down", or runes.
func (r *runtime) keys(names ...string) {
	for _, n := range names {
		r.send(keyMsg(n))
	}
}

func keyMsg(name string) tea.KeyMsg {
	for t, s := range map[tea.KeyType]string{
		tea.KeyEnter: "enter", tea.KeyTab: "tab", tea.KeyShiftTab: "shift+tab", tea.KeyEsc: "esc",
		tea.KeyUp: "up", tea.KeyDown: "down", tea.KeyLeft: "left", tea.KeyRight: "right",
		tea.KeyPgUp: "pgup", tea.KeyPgDown: "pgdown", tea.KeyHome: "home", tea.KeyEnd: "end",
		tea.KeyBackspace: "backspace", tea.KeyCtrlC: "ctrl+c", tea.KeySpace: " ",
	} {
		if s == name {
			if t == tea.KeySpace {
				return tea.KeyMsg{Type: t, Runes: []rune{' '}}
			}
			return tea.KeyMsg{Type: t}
		}
	}
	return tea.KeyMsg{Type: tea.KeyRunes, Runes: []rune(name)}
}

// typeText types text into whatever has the keyboard.
func (r *runtime) typeText(text string) {
	for _, c := range text {
		r.send(tea.KeyMsg{Type: tea.KeyRunes, Runes: []rune{c}})
	}
}

// until handles messages until cond holds, failing the test after timeout.
func (r *runtime) until(what string, timeout time.Duration, cond func() bool) {
	r.t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for !cond() {
		select {
		case msg := <-r.msgs:
			r.send(msg)
		case <-deadline.C:
			r.t.Fatalf("timed out after %s waiting for %s; the screen:\n%s", timeout, what, plain(r.m.View()))
		}
	}
}

// settle handles the messages that arrive within d.
func (r *runtime) settle(d time.Duration) {
	end := time.After(d)
	for {
		select {
		case msg := <-r.msgs:
			r.send(msg)
		case <-end:
			return
		}
	}
}

// fake is a Backend with a fabricated lab: its captures deliver what the
// test sends on their channel, its probes answer as told.
type fake struct {
	mu         sync.Mutex
	st         *lab.Status
	statusErr  error
	feeds      []*fakeFeed
	captureErr error
	opts       []capture.Options
	targets    [][]capture.Target
	ping       probe.PingResult
	journey    *trace.Journey
	traced     []string
	checks     []report.Check
}

func (f *fake) Status(ctx context.Context) (*lab.Status, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.st, f.statusErr
}

func (f *fake) Object(ctx context.Context, object string) (*lab.ObjectStatus, error) {
	for _, ns := range f.st.Namespaces {
		if ns.Name == object {
			return &lab.ObjectStatus{Lab: f.st.Name, NamespaceStatus: ns}, nil
		}
	}
	return nil, lab.ErrNotFound
}

func (f *fake) Capture(targets []capture.Target, opts capture.Options) (Feed, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.captureErr != nil {
		return nil, f.captureErr
	}
	feed := &fakeFeed{ch: make(chan []capture.Packet, 16)}
	f.feeds = append(f.feeds, feed)
	f.opts = append(f.opts, opts)
	f.targets = append(f.targets, targets)
	return feed, nil
}

// started returns the captures started so far and their options.
func (f *fake) started() ([]*fakeFeed, []capture.Options) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]*fakeFeed(nil), f.feeds...), append([]capture.Options(nil), f.opts...)
}

func (f *fake) tracedSoFar() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.traced...)
}

// feed is the capture started last.
func (f *fake) feed() *fakeFeed {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.feeds) == 0 {
		return nil
	}
	return f.feeds[len(f.feeds)-1]
}

func (f *fake) Ping(ctx context.Context, nsPath string, dst netip.Addr, count int) (probe.PingResult, error) {
	return f.ping, nil
}

func (f *fake) Get(ctx context.Context, nsPath, url string) (HTTPResult, error) {
	return HTTPResult{Status: "200 OK", Code: 200, Body: []byte("HTTP Server IP address: 192.168.3.2\nRequest path: /\n"), Length: 52, Took: 1200 * time.Microsecond}, nil
}

func (f *fake) Trace(ctx context.Context, st *lab.Status, from, to string, p trace.Probe) (*trace.Journey, error) {
	f.mu.Lock()
	f.traced = append(f.traced, from+">"+to+":"+string(p.Protocol))
	f.mu.Unlock()
	if f.journey == nil {
		return nil, errors.New("no journey")
	}
	return f.journey, nil
}

func (f *fake) Grade(ctx context.Context, s *scenario.Scenario, checked func(report.Check)) (*report.Result, error) {
	res := report.New(s.Title, s.File, f.st.Name, "grade", 0)
	for _, c := range f.checks {
		checked(c)
		res.Add(c)
	}
	return res, nil
}

// fakeFeed is a capture whose packets the test sends.
type fakeFeed struct {
	ch     chan []capture.Packet
	mu     sync.Mutex
	closed bool
}

// send delivers a batch, as a capture's merger does.
func (f *fakeFeed) send(pkts []capture.Packet) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.closed {
		f.ch <- pkts
	}
}

func (f *fakeFeed) Packets() <-chan []capture.Packet { return f.ch }
func (f *fakeFeed) Stats() capture.GroupStats        { return capture.GroupStats{Dropped: 0} }
func (f *fakeFeed) Captures() []*capture.Capture     { return nil }
func (f *fakeFeed) isClosed() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.closed
}

func (f *fakeFeed) Close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.closed {
		f.closed = true
		close(f.ch)
	}
	return nil
}

// The tui package's init takes back the CI variable quietinit set for
// bubbletea's init.
func TestCIRestored(t *testing.T) {
	if v, ok := os.LookupEnv("CI"); ok && v == "labctl-init" {
		t.Error("CI=labctl-init is still set after the package inits")
	}
}
