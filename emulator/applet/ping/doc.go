// Package ping is labctl's ping applet: iputils ping (20221126, Debian 12's)
// as a student meets it, for lab namespaces whose host has no ping and for
// containers. It parses options as iputils' getopt does (-c2, -c 2, -qc2,
// options after the address), sends one raw-socket echo stream with a
// single ICMP id and sequence numbers 1..N whose payload is iputils' (the
// send time, then bytes counting up), leaves don't-fragment to the
// kernel's default as iputils does (DF on every echo that fits the path
// MTU; -M do|dont|want overrides), reads ICMP errors from the socket's
// error queue, and prints replies, errors ("From X icmp_seq=N Time to live
// exceeded"), statistics and exit codes as iputils prints them. Options
// iputils has and the applet lacks are refused, never ignored. IPv4 only.
// The labctl binary runs it when called as ping (see emulator/applet).
package ping
