package lab

import (
	"time"

	"github.com/labctl/labctl/emulator/process"
)

// Process is a helper process labctl started for a lab, identified by PID
// and the kernel's start time of that PID, so a recycled PID is never
// mistaken for it.
type Process struct {
	PID       int    `json:"pid"`
	StartTime uint64 `json:"startTime"`
	Log       string `json:"log,omitempty"`
}

func (p Process) id() process.ID { return process.ID{PID: p.PID, StartTime: p.StartTime} }

// Alive reports whether the recorded process still runs.
func (p Process) Alive() bool { return p.id().Alive() }

// Stop ends the process: TERM, then KILL after grace. A PID that now
// belongs to another process is left alone.
func (p Process) Stop(grace time.Duration) error { return p.id().Stop(grace) }
