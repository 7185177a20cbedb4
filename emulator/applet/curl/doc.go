// Package curl is labctl's curl applet: what lab exercises ask of curl.
// It GETs (or sends with another method, with -d data) one or more URLs and
// prints the body, in the network namespace it was started in, like any
// program, and exits with curl's codes for the failures students meet, so
// scripts that test $? behave alike. The labctl binary runs it when called
// as curl (see emulator/applet).
package curl
