// Command testreport reads `go test -json` and tells the truth about it: it
// prints each package's result and the output of every failed test, lists
// every skipped test with its reason, and fails unless every skip is listed,
// with its reason, in the allow file (.ci/skips). A skipped test is a test
// that did not run; under CI only skips for what the machine lacks (a kernel
// module, say) are acceptable, and each must be written down.
//
//	go test -count=1 -json ./... | go run ./internal/ci/testreport -allow .ci/skips
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"regexp"
	"sort"
	"strings"
	"time"
)

// event is one line of `go test -json` (cmd/test2json).
type event struct {
	Time    time.Time
	Action  string
	Package string
	Test    string
	Elapsed float64
	Output  string
}

// allowance is one line of the allow file: a package, a test name pattern
// and why the test may be skipped.
type allowance struct {
	pkg    string
	test   *regexp.Regexp
	reason string
	used   bool
}

func main() {
	allowFile := flag.String("allow", "", "file listing the skips that are acceptable: PACKAGE TEST-REGEXP -- REASON per line")
	flag.Parse()
	var allowed []*allowance
	if *allowFile != "" {
		var err error
		if allowed, err = readAllow(*allowFile); err != nil {
			fmt.Fprintln(os.Stderr, "testreport:", err)
			os.Exit(2)
		}
	}
	os.Exit(report(os.Stdin, os.Stdout, allowed))
}

func readAllow(file string) ([]*allowance, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	var out []*allowance
	for i, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		spec, reason, ok := strings.Cut(line, "--")
		f := strings.Fields(spec)
		if !ok || len(f) != 2 || strings.TrimSpace(reason) == "" {
			return nil, fmt.Errorf("%s:%d: want PACKAGE TEST-REGEXP -- REASON", file, i+1)
		}
		re, err := regexp.Compile(f[1])
		if err != nil {
			return nil, fmt.Errorf("%s:%d: %v", file, i+1, err)
		}
		out = append(out, &allowance{pkg: f[0], test: re, reason: strings.TrimSpace(reason)})
	}
	return out, nil
}

type key struct{ pkg, test string }

func report(r io.Reader, w io.Writer, allowed []*allowance) int {
	output := map[key][]string{}
	var failed, skipped []key
	passed := 0
	pkgFailed := false
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		var e event
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			// go test prints build failures as plain text.
			fmt.Fprintln(w, sc.Text())
			pkgFailed = true
			continue
		}
		k := key{e.Package, e.Test}
		switch e.Action {
		case "output":
			if e.Test != "" {
				output[k] = append(output[k], e.Output)
			} else if !strings.HasPrefix(e.Output, "=== ") && !strings.HasPrefix(e.Output, "PASS") && !strings.HasPrefix(e.Output, "FAIL\n") && !strings.HasPrefix(e.Output, "ok ") {
				output[k] = append(output[k], e.Output)
			}
		case "pass":
			if e.Test == "" {
				fmt.Fprintf(w, "ok   %s\t%.1fs\n", e.Package, e.Elapsed)
			} else {
				passed++
				delete(output, k)
			}
		case "fail":
			if e.Test == "" {
				fmt.Fprintf(w, "FAIL %s\t%.1fs\n", e.Package, e.Elapsed)
				pkgFailed = true
				if lines := output[k]; len(lines) > 0 {
					fmt.Fprint(w, strings.Join(lines, ""))
				}
			} else {
				failed = append(failed, k)
				fmt.Fprint(w, strings.Join(output[k], ""))
			}
		case "skip":
			if e.Test != "" {
				skipped = append(skipped, k)
			}
		}
	}
	if err := sc.Err(); err != nil {
		fmt.Fprintln(w, "testreport: reading go test -json:", err)
		return 1
	}

	code := 0
	if len(failed) > 0 || pkgFailed {
		code = 1
	}
	sort.Slice(skipped, func(i, j int) bool {
		return skipped[i].pkg+" "+skipped[i].test < skipped[j].pkg+" "+skipped[j].test
	})
	unlisted := 0
	if len(skipped) > 0 {
		fmt.Fprintf(w, "\n%d %s skipped (a skipped test did not run):\n", len(skipped), plural(len(skipped), "test"))
	}
	for _, k := range skipped {
		why := skipReason(output[k])
		if a := allowedBy(allowed, k); a != nil {
			a.used = true
			fmt.Fprintf(w, "  listed   %s %s: %s (.ci/skips: %s)\n", short(k.pkg), k.test, why, a.reason)
			continue
		}
		unlisted++
		fmt.Fprintf(w, "  UNLISTED %s %s: %s\n", short(k.pkg), k.test, why)
	}
	if unlisted > 0 {
		fmt.Fprintf(w, "testreport: %d skipped %s not listed in the allow file: under CI a test must run, or its skip be listed with its reason\n", unlisted, plural(unlisted, "test is"))
		code = 1
	}
	fmt.Fprintf(w, "\n%d passed, %d failed, %d skipped\n", passed, len(failed), len(skipped))
	return code
}

// skipReason is what the test said when it skipped.
func skipReason(lines []string) string {
	for _, l := range lines {
		l = strings.TrimSpace(l)
		if l == "" || strings.HasPrefix(l, "=== ") || strings.HasPrefix(l, "--- SKIP") {
			continue
		}
		// "file_test.go:12: reason"
		if i := strings.Index(l, ": "); i > 0 && strings.Contains(l[:i], ".go:") {
			l = l[i+2:]
		}
		return l
	}
	return "(no reason given)"
}

func allowedBy(allowed []*allowance, k key) *allowance {
	for _, a := range allowed {
		if (k.pkg == a.pkg || strings.HasSuffix(k.pkg, "/"+a.pkg)) && a.test.MatchString(k.test) {
			return a
		}
	}
	return nil
}

func short(pkg string) string { return strings.TrimPrefix(pkg, "github.com/labctl/labctl/") }

func plural(n int, word string) string {
	if n == 1 {
		return word
	}
	if word == "test is" {
		return "tests are"
	}
	return word + "s"
}
