package tui

import (
	"time"

	tea "github.com/charmbracelet/bubbletea"

	"github.com/labctl/labctl/emulator/capture"
)

// frame is the shortest time between two packet messages: the model is
// updated and drawn at most this often for packets, whatever their rate,
// and a lone packet still shows at once.
const frame = 50 * time.Millisecond

// maxMsgPackets bounds one message, so one slow frame cannot gather an
// unbounded batch.
const maxMsgPackets = 50000

type (
	// captureStartedMsg: a capture is running (or could not start).
	captureStartedMsg struct {
		id      int
		feed    Feed
		targets []capture.Target
		err     error
	}
	// packetsMsg carries what a capture delivered during one frame.
	packetsMsg struct {
		id    int
		pkts  []capture.Packet
		stats capture.GroupStats
		at    time.Time
		done  bool // the capture ended; err says why when it failed
		err   error
	}
	// captureClosedMsg: a capture was stopped and its sockets closed.
	captureClosedMsg struct {
		id    int
		stats capture.GroupStats
		err   error
	}
)

// startCapture opens the capture in a command: opening sockets and rings
// in many namespaces is I/O.
func startCapture(b Backend, id int, targets []capture.Target, opts capture.Options) tea.Cmd {
	return func() tea.Msg {
		f, err := b.Capture(targets, opts)
		return captureStartedMsg{id: id, feed: f, targets: targets, err: err}
	}
}

// waitPackets is the capture's re-armed channel command: it waits for the
// next batch, then keeps gathering until a frame has passed since the
// previous message, and returns them all in one message. The model issues
// it again after each message, so exactly one waits at any time and the
// capture's channel is drained as fast as the model takes messages.
func waitPackets(id int, f Feed, last time.Time) tea.Cmd {
	return func() tea.Msg {
		src := f.Packets()
		msg := func(pkts []capture.Packet, done bool) packetsMsg {
			m := packetsMsg{id: id, pkts: pkts, stats: f.Stats(), at: time.Now(), done: done}
			if done {
				m.err = feedErr(f)
			}
			return m
		}
		pkts, ok := <-src
		if !ok {
			return msg(nil, true)
		}
		// Until the frame is over, wait for more; then take what is
		// ready without waiting.
		var frameOver <-chan time.Time
		if wait := time.Until(last.Add(frame)); wait > 0 {
			timer := time.NewTimer(wait)
			defer timer.Stop()
			frameOver = timer.C
		}
		for len(pkts) < maxMsgPackets {
			var more []capture.Packet
			if frameOver != nil {
				select {
				case more, ok = <-src:
				case <-frameOver:
					frameOver = nil
					continue
				}
			} else {
				select {
				case more, ok = <-src:
				default:
					return msg(pkts, false)
				}
			}
			if !ok {
				return msg(pkts, true)
			}
			pkts = append(pkts, more...)
		}
		return msg(pkts, false)
	}
}

// feedErr is why a capture ended by itself, when the feed can say.
func feedErr(f Feed) error {
	if e, ok := f.(interface{ Err() error }); ok {
		return e.Err()
	}
	return nil
}

// closeCapture stops a capture in a command (closing waits for its readers).
func closeCapture(id int, f Feed) tea.Cmd {
	return func() tea.Msg {
		err := f.Close()
		return captureClosedMsg{id: id, stats: f.Stats(), err: err}
	}
}
