package tui

import (
	"strings"

	"github.com/charmbracelet/lipgloss"
	"github.com/charmbracelet/x/ansi"
)

// Colours are the 16 ANSI ones, or 256-colour ones that degrade to them,
// so that the view reads the same on a teacher's projector and in a plain
// xterm; a terminal without colours still tells protocols apart by the
// PROTO column.
var (
	styleTitle = lipgloss.NewStyle().Bold(true)
	styleTab   = lipgloss.NewStyle().Padding(0, 1)
	styleTabOn = lipgloss.NewStyle().Padding(0, 1).Bold(true).Reverse(true)
	// Column headers are bold, not underlined: lipgloss underlines rune
	// by rune, a dozen bytes for every character of the line.
	styleHeader   = lipgloss.NewStyle().Bold(true)
	styleDim      = lipgloss.NewStyle().Faint(true)
	styleCursor   = lipgloss.NewStyle().Reverse(true)
	styleError    = lipgloss.NewStyle().Foreground(lipgloss.Color("1")).Bold(true)
	styleOK       = lipgloss.NewStyle().Foreground(lipgloss.Color("2")).Bold(true)
	styleWarn     = lipgloss.NewStyle().Foreground(lipgloss.Color("3")).Bold(true)
	styleSelected = lipgloss.NewStyle().Foreground(lipgloss.Color("2"))
	styleStatus   = lipgloss.NewStyle().Reverse(true)

	classStyles = [...]lipgloss.Style{
		classOther:     lipgloss.NewStyle().Faint(true),
		classARP:       lipgloss.NewStyle().Foreground(lipgloss.Color("3")),   // yellow
		classICMP:      lipgloss.NewStyle().Foreground(lipgloss.Color("2")),   // green
		classICMPError: lipgloss.NewStyle().Foreground(lipgloss.Color("1")),   // red
		classTCP:       lipgloss.NewStyle().Foreground(lipgloss.Color("6")),   // cyan
		classUDP:       lipgloss.NewStyle().Foreground(lipgloss.Color("12")),  // bright blue
		classVXLAN:     lipgloss.NewStyle().Foreground(lipgloss.Color("5")),   // magenta
		classIPIP:      lipgloss.NewStyle().Foreground(lipgloss.Color("208")), // orange
	}
)

// fit cuts or pads s (which may hold ANSI sequences) to exactly w columns.
func fit(s string, w int) string {
	if w <= 0 {
		return ""
	}
	if ansi.StringWidth(s) > w {
		return ansi.Truncate(s, w, "…")
	}
	return s + strings.Repeat(" ", w-ansi.StringWidth(s))
}

// cut shortens s to at most w columns without padding it.
func cut(s string, w int) string {
	if w <= 0 {
		return ""
	}
	if ansi.StringWidth(s) > w {
		return ansi.Truncate(s, w, "…")
	}
	return s
}

// block makes text exactly h lines of exactly w columns, so panes never
// push the status line and help off the screen.
func block(text string, w, h int) string {
	lines := strings.Split(strings.TrimSuffix(text, "\n"), "\n")
	if len(lines) > h {
		lines = lines[:h]
	}
	for len(lines) < h {
		lines = append(lines, "")
	}
	for i, l := range lines {
		lines[i] = fit(l, w)
	}
	return strings.Join(lines, "\n")
}
