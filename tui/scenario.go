package tui

import (
	"context"
	"fmt"
	"strings"

	"github.com/charmbracelet/bubbles/key"
	tea "github.com/charmbracelet/bubbletea"

	"github.com/labctl/labctl/emulator/grade"
	"github.com/labctl/labctl/emulator/report"
	"github.com/labctl/labctl/emulator/scenario"
)

type scenarioKeys struct {
	Up, Down, Run key.Binding
}

type (
	// checkMsg: the grader finished one check; ch brings the next.
	checkMsg struct {
		run int
		c   report.Check
		ch  <-chan report.Check
	}
	// gradeDoneMsg: the grader finished (res is nil when it could not
	// grade; err says why).
	gradeDoneMsg struct {
		run int
		res *report.Result
		err error
	}
)

// checkRow is one check of the scenario as the pane lists it.
type checkRow struct {
	section  string
	id       string
	title    string
	points   int
	expected string
	result   *report.Check // nil until graded
}

// scenarioPane grades the lab against a scenario's checks, read-only, and
// shows each check's result as it comes, with the score.
type scenarioPane struct {
	keys    scenarioKeys
	w, h    int
	s       *scenario.Scenario
	checks  []checkRow
	cursor  int
	top     int
	run     int
	running bool
	err     string
	graded  bool
}

func newScenarioPane(s *scenario.Scenario) *scenarioPane {
	p := &scenarioPane{
		keys: scenarioKeys{Up: keyUp, Down: keyDown, Run: binding([]string{"r"}, "r", "grade now")},
		s:    s,
	}
	for _, c := range s.Checks() {
		p.checks = append(p.checks, checkRow{section: c.Section, id: c.ID, title: c.Title, points: c.Points, expected: grade.Expected(c)})
	}
	return p
}

func (p *scenarioPane) title() string { return "Scenario" }

func (p *scenarioPane) setSize(w, h int) { p.w, p.h = w, h; p.scrollIntoView() }

func (p *scenarioPane) shortHelp() []key.Binding {
	return []key.Binding{p.keys.Run, p.keys.Up, p.keys.Down}
}

func (p *scenarioPane) fullHelp() [][]key.Binding {
	return [][]key.Binding{{p.keys.Run, p.keys.Up, p.keys.Down}}
}

// start grades the lab: the grader runs in one command and hands each
// finished check to a channel, which a re-armed command reads.
func (p *scenarioPane) start(ctx context.Context, b Backend) tea.Cmd {
	if p.running {
		return nil
	}
	p.run++
	p.running, p.graded, p.err = true, false, ""
	for i := range p.checks {
		p.checks[i].result = nil
	}
	run, s := p.run, p.s
	// Buffered for every check: the grader never waits for the screen.
	ch := make(chan report.Check, len(p.checks)+1)
	gradeCmd := func() tea.Msg {
		res, err := b.Grade(ctx, s, func(c report.Check) { ch <- c })
		close(ch)
		return gradeDoneMsg{run: run, res: res, err: err}
	}
	return tea.Batch(gradeCmd, waitCheck(run, ch))
}

// waitCheck is the grader's re-armed channel command.
func waitCheck(run int, ch <-chan report.Check) tea.Cmd {
	return func() tea.Msg {
		c, ok := <-ch
		if !ok {
			return nil
		}
		return checkMsg{run: run, c: c, ch: ch}
	}
}

func (p *scenarioPane) record(c report.Check) {
	for i := range p.checks {
		if p.checks[i].id == c.ID {
			p.checks[i].result = &c
			return
		}
	}
}

func (p *scenarioPane) update(ctx context.Context, b Backend, msg tea.Msg) tea.Cmd {
	switch msg := msg.(type) {
	case checkMsg:
		if msg.run != p.run {
			return nil
		}
		p.record(msg.c)
		return waitCheck(msg.run, msg.ch)
	case gradeDoneMsg:
		if msg.run != p.run {
			return nil
		}
		p.running = false
		if msg.err != nil {
			p.err = msg.err.Error()
		}
		if msg.res != nil {
			for _, c := range msg.res.Checks() {
				p.record(c)
			}
			p.graded = true
		}
		return nil
	case tea.KeyMsg:
		switch {
		case key.Matches(msg, p.keys.Run):
			return p.start(ctx, b)
		case key.Matches(msg, p.keys.Up):
			p.cursor = max(p.cursor-1, 0)
		case key.Matches(msg, p.keys.Down):
			p.cursor = min(p.cursor+1, len(p.checks)-1)
		}
		p.scrollIntoView()
	}
	return nil
}

// score adds up the checks graded so far.
func (p *scenarioPane) score() (points, maxPoints, passed, failed, errors, done int) {
	for _, c := range p.checks {
		maxPoints += c.points
		if r := c.result; r != nil {
			done++
			points += r.Points
			switch r.Status {
			case report.Pass:
				passed++
			case report.Fail:
				failed++
			default:
				errors++
			}
		}
	}
	return
}

// detailRows is the height of the selected check's explanation.
const detailRows = 5

// listRows is the height of the list of checks, under the title, score
// and column header, above a blank line and the explanation.
func (p *scenarioPane) listRows() int { return max(p.h-4-detailRows, 1) }

// lines are the list's lines: a heading per section, a line per check
// (at indexes into checks; -1 for headings).
func (p *scenarioPane) lines() []int {
	var out []int
	section := "\x00"
	for i, c := range p.checks {
		if c.section != section {
			section = c.section
			out = append(out, -1-i) // the heading before check i
		}
		out = append(out, i)
	}
	return out
}

func (p *scenarioPane) scrollIntoView() {
	lines := p.lines()
	at := 0
	for k, i := range lines {
		if i == p.cursor {
			at = k
		}
	}
	// Keep the check's heading in sight with it.
	if at > 0 && lines[at-1] < 0 && at-1 < p.top {
		p.top = at - 1
	}
	if at < p.top {
		p.top = at
	}
	if rows := p.listRows(); at >= p.top+rows {
		p.top = at - rows + 1
	}
	p.top = max(min(p.top, len(lines)-p.listRows()), 0)
}

func (p *scenarioPane) view() string {
	var b strings.Builder
	points, maxPoints, passed, failed, errs, done := p.score()
	b.WriteString(fit(styleTitle.Render(p.s.Title), p.w) + "\n")
	var score string
	switch {
	case p.err != "":
		score = styleError.Render(p.err)
	case !p.graded && !p.running:
		score = fmt.Sprintf("%d checks, %d points · r grades the lab (nothing in it changes)", len(p.checks), maxPoints)
	default:
		score = fmt.Sprintf("score %d/%d · %d passed, %d failed", points, maxPoints, passed, failed)
		if errs > 0 {
			score += fmt.Sprintf(", %d could not run", errs)
		}
		if p.running {
			score += fmt.Sprintf(" · grading %d of %d…", done+1, len(p.checks))
		}
	}
	b.WriteString(fit(score, p.w) + "\n")
	b.WriteString(styleHeader.Render(fit("  RESULT    POINTS  CHECK", p.w)) + "\n")
	lines := p.lines()
	running := -1 // the first check without a result is the one running
	if p.running {
		for i, c := range p.checks {
			if c.result == nil {
				running = i
				break
			}
		}
	}
	for k := p.top; k < min(p.top+p.listRows(), len(lines)); k++ {
		i := lines[k]
		if i < 0 {
			name := p.checks[-1-i].section
			if name == "" {
				name = "(no section)"
			}
			b.WriteString(fit(styleTitle.Render(name), p.w) + "\n")
			continue
		}
		c := p.checks[i]
		status, style := "·", styleDim
		switch {
		case c.result != nil && c.result.Status == report.Pass:
			status, style = "✓ pass", styleOK
		case c.result != nil && c.result.Status == report.Fail:
			status, style = "✗ fail", styleError
		case c.result != nil:
			status, style = "! error", styleWarn
		case i == running:
			status, style = "… running", styleWarn
		}
		pts := fmt.Sprintf("%d", c.points)
		if c.result != nil {
			pts = fmt.Sprintf("%d/%d", c.result.Points, c.points)
		}
		name := c.id
		if c.title != "" {
			name += ": " + c.title
		}
		line := fit(fmt.Sprintf("  %-9s %-6s %s", status, pts, name), p.w)
		if i == p.cursor {
			line = styleCursor.Render(line)
		} else {
			line = style.Render(line)
		}
		b.WriteString(line + "\n")
	}
	for k := len(lines) - p.top; k < p.listRows(); k++ {
		b.WriteString("\n")
	}
	b.WriteString("\n" + p.explain())
	return block(b.String(), p.w, p.h)
}

// explain is what the selected check expects, saw and hints.
func (p *scenarioPane) explain() string {
	if p.cursor >= len(p.checks) {
		return ""
	}
	c := p.checks[p.cursor]
	var lines []string
	lines = append(lines, "expected: "+c.expected)
	if r := c.result; r != nil {
		lines = append(lines, "observed: "+r.Observed)
		if r.Hint != "" && r.Status != report.Pass {
			lines = append(lines, "hint: "+r.Hint)
		}
	}
	var out []string
	for _, l := range lines {
		out = append(out, strings.Split(wrapWords(l, p.w, ""), "\n")...)
	}
	if len(out) > detailRows {
		out = out[:detailRows]
	}
	return strings.Join(out, "\n")
}
