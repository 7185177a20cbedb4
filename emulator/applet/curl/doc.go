// Package curl is labctl's curl applet: curl 7.88's (Debian 12's) HTTP/1.1
// client as a student or a script meets it, for lab namespaces whose host
// has no curl. The labctl binary runs it when called as curl (see
// emulator/applet).
//
// It speaks HTTP on a plain TCP connection it dials itself and writes the
// request head by hand, in curl's order and case, so that -v shows exactly
// the bytes that were sent ("> ") and received ("< ", headers as the server
// wrote them, not a parsed map), between curl's own remarks ("*   Trying",
// "* Connected to ... (#0)", "* Connection #0 to host ... left intact").
// Options are parsed as curl parses them; those it lacks are refused by
// name. Messages, the progress meter, -w output and exit codes follow
// curl's code (lib/ and src/ of curl-7_88_1). It has no TLS: https URLs
// fail as in a curl built without it.
//
// Files: args.go (options), curl.go (the run: URLs, retries, outputs),
// transfer.go (one URL: redirects, proxies, connections, the request),
// response.go (reading the response), trace.go (-v), progress.go (the
// meter), writeout.go (-w).
package curl
