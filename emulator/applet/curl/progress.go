package curl

import (
	"fmt"
	"io"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// meter is curl's progress meter (lib/progress.c), which curl shows on
// stderr unless -s, --no-progress-meter, or the body goes to a terminal:
// a two-line heading, then one line redrawn ("\r") at most once a second
// and a last one, with a newline, when the transfer ends.
type meter struct {
	w     io.Writer
	shown bool

	mu         sync.Mutex
	begin      time.Time
	headersOut bool
	lastShow   int64 // the monotonic second of the last redraw; 0 forces one
	speeder    [6]int64
	speederT   [6]time.Time
	speederC   int
	dlSize     int64
	dlKnown    bool
	ulSize     int64
	ulKnown    bool
	dl, ul     int64
	curSpeed   int64
	finished   bool
	stopClock  chan struct{}
	clockDone  chan struct{}
}

func newMeter(w io.Writer, shown bool) *meter {
	return &meter{w: w, shown: shown, ulKnown: true}
}

// start draws the first line and keeps redrawing once a second, as curl's
// transfer loop does while it waits.
func (m *meter) start() {
	m.mu.Lock()
	m.begin = time.Now()
	m.mu.Unlock()
	if !m.shown {
		return
	}
	m.update(false)
	m.stopClock, m.clockDone = make(chan struct{}), make(chan struct{})
	go func() {
		defer close(m.clockDone)
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-m.stopClock:
				return
			case <-tick.C:
				m.update(false)
			}
		}
	}()
}

func (m *meter) stop() {
	if m.stopClock != nil {
		close(m.stopClock)
		<-m.clockDone
		m.stopClock = nil
	}
}

func (m *meter) setDownloadSize(n int64) {
	m.mu.Lock()
	m.dlSize, m.dlKnown = n, true
	m.mu.Unlock()
}

func (m *meter) downloaded(n int64) {
	m.mu.Lock()
	m.dl = n
	m.mu.Unlock()
	m.update(false)
}

func (m *meter) uploaded(n int64) {
	m.mu.Lock()
	m.ul += n
	m.ulSize, m.ulKnown = m.ul, true
	m.mu.Unlock()
}

// done draws the final line and ends it (Curl_pgrsDone); once per
// transfer, later calls do nothing.
func (m *meter) done() {
	m.mu.Lock()
	if m.finished {
		m.mu.Unlock()
		return
	}
	m.finished = true
	m.lastShow = 0
	m.mu.Unlock()
	m.stop()
	m.update(true)
	if m.shown {
		_, _ = io.WriteString(m.w, "\n")
	}
}

func monoSeconds() int64 {
	var ts unix.Timespec
	_ = unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	return ts.Sec
}

// update recomputes the speeds and redraws when a new second began (or
// when forced), as progress_calc and progress_meter do.
func (m *meter) update(final bool) {
	if !m.shown {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.finished && !final {
		return
	}
	now := time.Now()
	spent := now.Sub(m.begin).Microseconds()
	dlspeed, ulspeed := trspeed(m.dl, spent), trspeed(m.ul, spent)
	sec := monoSeconds()
	if m.lastShow == sec && !final {
		return
	}
	m.lastShow = sec
	idx := m.speederC % len(m.speeder)
	m.speeder[idx] = m.dl + m.ul
	m.speederT[idx] = now
	m.speederC++
	count := min(m.speederC, len(m.speeder)) - 1
	if count > 0 {
		check := 0
		if m.speederC >= len(m.speeder) {
			check = m.speederC % len(m.speeder)
		}
		spanMs := max(now.Sub(m.speederT[check]).Milliseconds(), 1)
		amount := m.speeder[idx] - m.speeder[check]
		if amount > 4294967 {
			m.curSpeed = int64(float64(amount) / (float64(spanMs) / 1000))
		} else {
			m.curSpeed = amount * 1000 / spanMs
		}
	} else {
		m.curSpeed = ulspeed + dlspeed
	}

	if !m.headersOut {
		_, _ = io.WriteString(m.w, "  % Total    % Received % Xferd  Average Speed   Time    Time     Time  Current\n"+
			"                                 Dload  Upload   Total   Spent    Left  Speed\n")
		m.headersOut = true
	}
	var ulest, dlest, ulpct, dlpct int64
	if m.ulKnown && ulspeed > 0 {
		ulest = m.ulSize / ulspeed
		ulpct = percent(m.ul, m.ulSize)
	}
	if m.dlKnown && dlspeed > 0 {
		dlest = m.dlSize / dlspeed
		dlpct = percent(m.dl, m.dlSize)
	}
	est := max(ulest, dlest)
	secs := spent / 1e6
	left := int64(0)
	if est > 0 {
		left = est - secs
	}
	expected := m.ul
	if m.ulKnown {
		expected = m.ulSize
	}
	if m.dlKnown {
		expected += m.dlSize
	} else {
		expected += m.dl
	}
	total := m.dl + m.ul
	_, _ = fmt.Fprintf(m.w, "\r%3d %s  %3d %s  %3d %s  %s  %s %s %s %s %s",
		percent(total, expected), max5(expected), dlpct, max5(m.dl), ulpct, max5(m.ul),
		max5(dlspeed), max5(ulspeed), timeStr(est), timeStr(secs), timeStr(left), max5(m.curSpeed))
}

func percent(part, whole int64) int64 {
	switch {
	case whole > 10000:
		return part / (whole / 100)
	case whole > 0:
		return part * 100 / whole
	}
	return 0
}

// trspeed is bytes per second over us microseconds.
func trspeed(size, us int64) int64 {
	if us < 1 {
		return size * 1000000
	}
	return size * 1000000 / us
}

// timeStr is curl's time2str: 8 characters.
func timeStr(s int64) string {
	if s <= 0 {
		return "--:--:--"
	}
	h := s / 3600
	if h <= 99 {
		return fmt.Sprintf("%2d:%02d:%02d", h, (s-h*3600)/60, s-h*3600-((s-h*3600)/60)*60)
	}
	d := s / 86400
	h = (s - d*86400) / 3600
	if d <= 999 {
		return fmt.Sprintf("%3dd %02dh", d, h)
	}
	return fmt.Sprintf("%7dd", d)
}

// max5 is curl's max5data: a size in at most 5 characters.
func max5(n int64) string {
	const k, m, g, t = 1024, 1024 * 1024, 1024 * 1024 * 1024, 1024 * 1024 * 1024 * 1024
	switch {
	case n < 100000:
		return fmt.Sprintf("%5d", n)
	case n < 10000*k:
		return fmt.Sprintf("%4dk", n/k)
	case n < 100*m:
		return fmt.Sprintf("%2d.%dM", n/m, (n%m)/(m/10))
	case n < 10000*m:
		return fmt.Sprintf("%4dM", n/m)
	case n < 100*g:
		return fmt.Sprintf("%2d.%dG", n/g, (n%g)/(g/10))
	case n < 10000*g:
		return fmt.Sprintf("%4dG", n/g)
	case n < 10000*t:
		return fmt.Sprintf("%4dT", n/t)
	}
	return fmt.Sprintf("%4dP", n/(1024*t))
}
