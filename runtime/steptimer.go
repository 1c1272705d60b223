package runtime

import (
	"fmt"
	"strings"
	"time"
)

// stepTimer records how long each step of an operation took, for debug logs.
type stepTimer struct {
	start, last time.Time
	steps       []string
}

func (s *stepTimer) mark(step string) {
	now := time.Now()
	from := s.last
	if from.IsZero() {
		from = s.start
	}
	s.steps = append(s.steps, fmt.Sprintf("%s=%s", step, now.Sub(from).Round(10*time.Microsecond)))
	s.last = now
}

func (s *stepTimer) String() string { return strings.Join(s.steps, " ") }
