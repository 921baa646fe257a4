package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"time"
)

// progress draws a one-line progress bar with rate and ETA on a terminal;
// on anything else (pipes, CI logs) it stays quiet.
type progress struct {
	w       io.Writer
	label   string
	unit    string // "it": the rate is shown as it/s or s/it
	total   int64
	start   time.Time
	last    time.Time
	enabled bool
}

func newProgress(w io.Writer, label string, total int64) *progress {
	p := &progress{w: w, label: label, total: total, start: time.Now()}
	if f, ok := w.(*os.File); ok {
		if st, err := f.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
			p.enabled = true
		}
	}
	return p
}

// Set reports that done of total units are finished.
func (p *progress) Set(done int64) {
	if !p.enabled || p.total <= 0 {
		return
	}
	now := time.Now()
	if now.Sub(p.last) < 100*time.Millisecond && done < p.total {
		return
	}
	p.last = now
	frac := float64(done) / float64(p.total)
	const width = 30
	n := int(frac * width)
	elapsed := now.Sub(p.start)
	eta := "?"
	if done > 0 {
		eta = (time.Duration(float64(elapsed) * (1/frac - 1))).Round(time.Second).String()
	}
	rate := float64(done) / elapsed.Seconds()
	speed := fmt.Sprintf("%.1f/s", rate)
	if p.unit != "" {
		if rate >= 1 || done == 0 {
			speed = fmt.Sprintf("%.2f %s/s", rate, p.unit)
		} else {
			speed = fmt.Sprintf("%.2f s/%s", 1/rate, p.unit)
		}
	}
	fmt.Fprintf(p.w, "\r%s [%s%s] %d/%d %s ETA %s ", p.label, strings.Repeat("=", n), strings.Repeat(" ", width-n), done, p.total, speed, eta)
}

// Done ends the line.
func (p *progress) Done() {
	if p.enabled {
		fmt.Fprintf(p.w, "\r%s done in %s%s\n", p.label, time.Since(p.start).Round(time.Millisecond), strings.Repeat(" ", 40))
	}
}

// status shows what a long command is doing on one terminal line.
type status struct{ p *progress }

func newStatus(w io.Writer) *status { return &status{p: newProgress(w, "", 0)} }

// Say replaces the status line.
func (s *status) Say(what string) {
	if s.p.enabled {
		fmt.Fprintf(s.p.w, "\r\033[K%s …", what)
	}
}

// Clear removes the status line.
func (s *status) Clear() {
	if s.p.enabled {
		fmt.Fprint(s.p.w, "\r\033[K")
	}
}
