package cli

import (
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"golang.org/x/term"

	meshv1alpha1 "github.com/sluice-mesh/sluice/api/v1alpha1"
)

// style colors text, or leaves it plain.
type style struct{ color bool }

// styleFor colors only a terminal, and never with --no-color or NO_COLOR (no-color.org).
func (o *options) styleFor(w io.Writer) style {
	if o.noColor || os.Getenv("NO_COLOR") != "" {
		return style{}
	}
	return style{color: isTerminal(w)}
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

const (
	red    = "31"
	green  = "32"
	yellow = "33"
	cyan   = "36"
	faint  = "2"
	bold   = "1"
)

func (s style) paint(code, text string) string {
	if !s.color || text == "" {
		return text
	}
	return "\x1b[" + code + "m" + text + "\x1b[0m"
}

func (s style) phase(p meshv1alpha1.RolloutPhase) string {
	if p == "" {
		return s.paint(faint, "(not reconciled yet)")
	}
	switch p {
	case meshv1alpha1.PhaseHealthy:
		return s.paint(green, string(p))
	case meshv1alpha1.PhasePaused, meshv1alpha1.PhaseHolding:
		return s.paint(yellow, string(p))
	case meshv1alpha1.PhaseRollingBack, meshv1alpha1.PhaseRolledBack, meshv1alpha1.PhaseFailed:
		return s.paint(red, string(p))
	}
	return s.paint(cyan, string(p))
}

func (s style) verdict(v meshv1alpha1.Verdict) string {
	switch v {
	case meshv1alpha1.VerdictPass:
		return s.paint(green, string(v))
	case meshv1alpha1.VerdictFail:
		return s.paint(red, string(v))
	case "":
		return "-"
	}
	return s.paint(yellow, string(v))
}

// visibleLen is the width of text on a terminal: color codes take none.
func visibleLen(text string) int {
	n, esc := 0, false
	for _, r := range text {
		switch {
		case esc:
			esc = r != 'm'
		case r == '\x1b':
			esc = true
		default:
			n++
		}
	}
	return n
}

// padRight pads text to width visible columns.
func padRight(text string, width int) string {
	if n := visibleLen(text); n < width {
		return text + strings.Repeat(" ", width-n)
	}
	return text
}

// truncate cuts a line to width visible columns (a terminal would wrap it and break the redraw).
func truncate(line string, width int) string {
	if width <= 0 || visibleLen(line) <= width {
		return line
	}
	var b strings.Builder
	n, esc, colored := 0, false, false
	for _, r := range line {
		switch {
		case esc:
			esc = r != 'm'
			b.WriteRune(r)
			continue
		case r == '\x1b':
			esc, colored = true, true
			b.WriteRune(r)
			continue
		}
		if n == width-1 {
			b.WriteRune('…')
			break
		}
		b.WriteRune(r)
		n++
	}
	if colored {
		b.WriteString("\x1b[0m")
	}
	return b.String()
}

// short is a compact duration: 45s, 3m20s, 2h5m, 3d4h.
func short(d time.Duration) string {
	if d < 0 {
		d = -d
	}
	d = d.Round(time.Second)
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < 10*time.Minute:
		m, s := int(d.Minutes()), int(d.Seconds())%60
		if s == 0 {
			return fmt.Sprintf("%dm", m)
		}
		return fmt.Sprintf("%dm%ds", m, s)
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d.Minutes()))
	case d < 24*time.Hour:
		h, m := int(d.Hours()), int(d.Minutes())%60
		if m == 0 {
			return fmt.Sprintf("%dh", h)
		}
		return fmt.Sprintf("%dh%dm", h, m)
	}
	days, h := int(d.Hours())/24, int(d.Hours())%24
	if h == 0 {
		return fmt.Sprintf("%dd", days)
	}
	return fmt.Sprintf("%dd%dh", days, h)
}

// ago says how long before now t was ("3m ago"), or "in 20s" for a time still ahead.
func ago(now, t time.Time) string {
	if t.After(now) {
		return "in " + short(t.Sub(now))
	}
	return short(now.Sub(t)) + " ago"
}
