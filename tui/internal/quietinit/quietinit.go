// Package quietinit keeps bubbletea v1 from questioning the terminal each
// time labctl starts.
//
// bubbletea's package init asks the terminal for its background colour
// (lipgloss.HasDarkBackground, through termenv: an OSC 11 query and a
// cursor position report) whenever standard output is a terminal, and
// waits up to five seconds for the answer. Every labctl process links the
// TUI, so without this every command run on a terminal would ask, and on
// a pseudo-terminal that does not answer (script, expect, some CI
// runners) every command would stall for five seconds and print the
// question. termenv asks nothing when CI is set; this package sets it for
// the span of the package inits that ask, and the tui package unsets it
// again in its own init, before main runs.
//
// Why this runs first: Go initializes, at each step, the first package in
// import path order whose imports are all initialized (the spec, since Go
// 1.21). This package imports only os, so it is ready before termenv (which
// imports os and more), and "github.com/labctl/labctl/..." sorts before
// "github.com/muesli/termenv": it is initialized before termenv, so before
// lipgloss and bubbletea, which need termenv. TestInitOrder holds it to
// that.
package quietinit

import "os"

// envSet says init set CI, so that Restore unsets it.
var envSet bool

func init() {
	if _, ok := os.LookupEnv("CI"); !ok {
		envSet = os.Setenv("CI", "labctl-init") == nil
	}
}

// Restore undoes what init did; the tui package calls it from its init,
// which runs after bubbletea's.
func Restore() {
	if envSet {
		_ = os.Unsetenv("CI")
		envSet = false
	}
}
