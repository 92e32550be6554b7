// Package throttle coalesces bursts of changes: the first change after a
// quiet interval is acted on at once (no added latency when idle), and
// changes that follow within the interval are gathered into one action at
// its end. Not safe for concurrent use: one owner goroutine drives it.
//
//	t := throttle.New(20 * time.Millisecond)
//	for {
//		select {
//		case <-changes:
//			if t.Event() {
//				act()
//				t.Acted()
//			}
//		case <-t.C():
//			act()
//			t.Acted()
//		}
//	}
package throttle

import "time"

// Throttle is a leading-edge, trailing-flush rate limiter.
type Throttle struct {
	interval time.Duration
	last     time.Time
	timer    *time.Timer
	armed    bool
}

// New returns a throttle acting at most once per interval.
func New(interval time.Duration) *Throttle {
	t := time.NewTimer(time.Hour)
	t.Stop()
	return &Throttle{interval: interval, timer: t}
}

// Event records a change. It returns true when the owner should act now;
// otherwise C fires when it should.
func (t *Throttle) Event() bool {
	if t.armed {
		return false
	}
	if wait := t.interval - time.Since(t.last); wait > 0 {
		t.armed = true
		t.timer.Reset(wait)
		return false
	}
	return true
}

// C fires when gathered changes are due.
func (t *Throttle) C() <-chan time.Time { return t.timer.C }

// Acted records that the owner acted on every change so far.
func (t *Throttle) Acted() {
	t.armed = false
	t.timer.Stop()
	t.last = time.Now()
}

// SetInterval changes the interval from the next Event on, for an owner
// that paces its actions by what they cost.
func (t *Throttle) SetInterval(d time.Duration) { t.interval = d }
