// Package ping is labctl's ping applet: iputils ping's everyday subset on
// top of probe.Ping, in the network namespace it runs in
// (/proc/self/ns/net). Each echo is its own probe, so it prints replies as
// they come; the sequence numbers printed are the applet's own. The labctl
// binary runs it when called as ping (see emulator/applet).
package ping
