package e2e

import (
	"bufio"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/labctl/labctl/emulator/scenario"
	"github.com/labctl/labctl/emulator/spec"
)

// codeBlock is a fenced block of the README, with the line its text starts
// on.
type codeBlock struct {
	lang string
	line int
	text string
}

func readmeBlocks(t *testing.T) []codeBlock {
	t.Helper()
	f, err := os.Open("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var blocks []codeBlock
	var cur *codeBlock
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		switch {
		case cur == nil && strings.HasPrefix(line, "```"):
			cur = &codeBlock{lang: strings.TrimPrefix(line, "```"), line: n + 1}
		case cur != nil && line == "```":
			blocks = append(blocks, *cur)
			cur = nil
		case cur != nil:
			cur.text += line + "\n"
		}
	}
	if cur != nil {
		t.Fatalf("README.md:%d: code block never closed", cur.line)
	}
	return blocks
}

// Every YAML block of the README is a whole topology labctl accepts (or,
// marked "yaml scenario", a whole scenario), so a reader can paste any of
// them into a file and use it. Blocks of other tools' YAML say whose
// ("yaml github-actions") and are not checked.
func TestReadmeYAMLValidates(t *testing.T) {
	n := 0
	for _, b := range readmeBlocks(t) {
		// Blank lines before the block make problems point at README
		// lines.
		text := strings.Repeat("\n", b.line-1) + b.text
		switch b.lang {
		case "yaml":
			n++
			if _, err := spec.Parse("README.md", []byte(text)); err != nil {
				t.Errorf("README.md:%d: the yaml block is not a valid topology:\n%v", b.line, err)
			}
		case "yaml scenario":
			// As if it were a file under scenarios/: its topology
			// path is relative to it.
			if _, err := scenario.Parse("../scenarios/README.yaml", []byte(text)); err != nil {
				t.Errorf("README.md:%d: the yaml block is not a valid scenario:\n%v", b.line, err)
			}
		}
	}
	if n < 2 {
		t.Errorf("README.md has %d yaml blocks; the topology reference and the containers example were expected", n)
	}
}

var labctlLine = regexp.MustCompile(`(?:^|[\s$(])labctl ([a-z]+)((?: [^|;&#\n]*)?)`)

// Every labctl command line in the README's code blocks names a command
// and flags that exist.
func TestReadmeCommandsExist(t *testing.T) {
	bin := buildLabctl(t)
	helps := map[string]string{}
	help := func(sub string) string {
		if h, ok := helps[sub]; ok {
			return h
		}
		out, code := run(t, bin, sub, "--help")
		if code != 0 {
			out = ""
		}
		helps[sub] = out
		return out
	}
	seen := 0
	for _, b := range readmeBlocks(t) {
		if b.lang != "sh" && b.lang != "console" {
			continue
		}
		for i, line := range strings.Split(b.text, "\n") {
			if b.lang == "console" && !strings.HasPrefix(line, "$ ") {
				continue // output, not a command
			}
			for _, m := range labctlLine.FindAllStringSubmatch(line, -1) {
				seen++
				sub, rest := m[1], m[2]
				h := help(sub)
				if h == "" {
					t.Errorf("README.md:%d: labctl %s: no such command", b.line+i, sub)
					continue
				}
				args, _, _ := strings.Cut(rest, " -- ")
				for _, word := range strings.Fields(args) {
					flag, _, _ := strings.Cut(word, "=")
					if !strings.HasPrefix(flag, "-") || flag == "-" {
						continue
					}
					if !flagInHelp(h, flag) {
						t.Errorf("README.md:%d: labctl %s has no flag %s", b.line+i, sub, flag)
					}
				}
			}
		}
	}
	if seen < 10 {
		t.Errorf("found only %d labctl command lines in the README", seen)
	}
}

// flagInHelp finds a flag in cobra's help: "  -o, --output string" or
// "      --all".
func flagInHelp(help, flag string) bool {
	for _, line := range strings.Split(help, "\n") {
		fields := strings.Fields(strings.ReplaceAll(line, ",", " "))
		if slices.Contains(fields, flag) && strings.HasPrefix(strings.TrimSpace(line), "-") {
			return true
		}
	}
	return false
}

// The README's first commands build labctl where the Makefile does and
// install it where the walk-through finds it (on PATH, also under sudo).
func TestReadmeBuildAndInstallAgree(t *testing.T) {
	makefile, err := os.ReadFile("../Makefile")
	if err != nil {
		t.Fatal(err)
	}
	out := regexp.MustCompile(`build -o (\S+) \./cmd/labctl`).FindSubmatch(makefile)
	if out == nil {
		t.Fatal("Makefile: no `build -o PATH ./cmd/labctl` in the build target")
	}
	bin := string(out[1])
	if !regexp.MustCompile(`(?m)^install:`).Match(makefile) || !strings.Contains(string(makefile), bin+" $(DESTDIR)$(BINDIR)/labctl") {
		t.Errorf("Makefile: no install target copying %s to $(DESTDIR)$(BINDIR)/labctl", bin)
	}
	blocks := readmeBlocks(t)
	first := blocks[0].text
	for _, want := range []string{"make build", "make install", "labctl up topologies/two-node.yaml"} {
		if !strings.Contains(first, want) {
			t.Errorf("README.md:%d: the first block (bring up the two-node lab) lacks %q:\n%s", blocks[0].line, want, first)
		}
	}
	if !strings.Contains(blocks[1].text, "go test") {
		t.Errorf("README.md:%d: the second block should run the tests:\n%s", blocks[1].line, blocks[1].text)
	}
}
