package tui

import (
	"errors"
	"fmt"
	"os"

	tea "github.com/charmbracelet/bubbletea"

	"github.com/labctl/labctl/emulator/capture"
)

// savedMsg: a save finished.
type savedMsg struct {
	path string
	n    int
	err  error
}

// SavePcapng writes packets to a new pcapng file at path, the way `labctl
// capture -w` writes one: an interface record per place ("node1:eth0"),
// declared in the order of caps before the first packet (so interfaces
// that saw nothing are listed too), and bare-IP interfaces behind a
// made-up Ethernet header so that tcpdump reads the file. An existing file
// is not overwritten. It returns how many packets it wrote.
func SavePcapng(path string, pkts []capture.Packet, caps []*capture.Capture) (int, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		if errors.Is(err, os.ErrExist) {
			return 0, fmt.Errorf("%s already exists: give another name", path)
		}
		return 0, err
	}
	// The pcapng writer buffers on its own.
	pw := capture.NewPcapngWriter(f)
	pw.FakeEthernet = true
	for _, c := range caps {
		if err := pw.Declare(c); err != nil {
			f.Close()
			return 0, fmt.Errorf("%s: %w", path, err)
		}
	}
	for _, p := range pkts {
		if err := pw.WritePacket(p); err != nil {
			f.Close()
			return 0, fmt.Errorf("%s: %w", path, err)
		}
	}
	if err := pw.Flush(); err != nil {
		f.Close()
		return 0, fmt.Errorf("%s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return 0, fmt.Errorf("%s: %w", path, err)
	}
	return len(pkts), nil
}

// save writes the file in a command.
func save(path string, pkts []capture.Packet, caps []*capture.Capture) tea.Cmd {
	return func() tea.Msg {
		n, err := SavePcapng(path, pkts, caps)
		return savedMsg{path: path, n: n, err: err}
	}
}
