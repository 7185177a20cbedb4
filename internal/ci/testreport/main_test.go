package main

import (
	"regexp"
	"strings"
	"testing"
)

func TestReport(t *testing.T) {
	const (
		pass    = `{"Action":"pass","Package":"p","Test":"TestA"}` + "\n"
		skip    = `{"Action":"output","Package":"p","Test":"TestB","Output":"    b_test.go:9: no ipip module\n"}` + "\n" + `{"Action":"skip","Package":"p","Test":"TestB"}` + "\n"
		fail    = `{"Action":"output","Package":"p","Test":"TestC","Output":"    c_test.go:3: boom\n"}` + "\n" + `{"Action":"fail","Package":"p","Test":"TestC"}` + "\n"
		pkgOK   = `{"Action":"pass","Package":"p","Elapsed":1.5}` + "\n"
		pkgFail = `{"Action":"fail","Package":"p","Elapsed":1.5}` + "\n"
	)
	allowB := []*allowance{{pkg: "p", test: regexp.MustCompile("^TestB$"), reason: "listed"}}
	tests := []struct {
		name    string
		in      string
		allowed []*allowance
		code    int
		want    []string
	}{
		{"all pass", pass + pkgOK, nil, 0, []string{"ok   p", "1 passed, 0 failed, 0 skipped"}},
		{"unlisted skip fails", pass + skip + pkgOK, nil, 1, []string{"UNLISTED p TestB: no ipip module", "not listed"}},
		{"listed skip passes", pass + skip + pkgOK, allowB, 0, []string{"listed   p TestB: no ipip module (.ci/skips: listed)"}},
		{"a failure fails and shows its output", fail + pkgFail, allowB, 1, []string{"c_test.go:3: boom", "FAIL p"}},
		{"a build failure fails", "# p\nx.go:1: syntax error\n", nil, 1, []string{"syntax error"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b strings.Builder
			if code := report(strings.NewReader(tt.in), &b, tt.allowed); code != tt.code {
				t.Errorf("exit %d, want %d:\n%s", code, tt.code, b.String())
			}
			for _, w := range tt.want {
				if !strings.Contains(b.String(), w) {
					t.Errorf("report lacks %q:\n%s", w, b.String())
				}
			}
		})
	}
}
