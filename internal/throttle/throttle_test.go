package throttle

import (
	"testing"
	"time"
)

func TestFirstEventActsAtOnceAndABurstIsGathered(t *testing.T) {
	th := New(time.Hour)
	if !th.Event() {
		t.Fatal("the first event after a quiet interval must act at once")
	}
	th.Acted()
	if th.Event() {
		t.Fatal("an event within the interval must wait")
	}
	if th.Event() {
		t.Fatal("a second event within the interval must wait too")
	}
	select {
	case <-th.C():
		t.Fatal("fired long before the interval ended")
	default:
	}
}

func TestGatheredEventsFireAtTheIntervalsEnd(t *testing.T) {
	th := New(5 * time.Millisecond)
	th.Event()
	th.Acted()
	if th.Event() {
		t.Fatal("must wait")
	}
	select {
	case <-th.C():
	case <-time.After(10 * time.Second):
		t.Fatal("gathered events never fired")
	}
	th.Acted()
	select {
	case <-th.C():
		t.Fatal("fired again without a new event")
	case <-time.After(20 * time.Millisecond):
	}
	if !th.Event() {
		t.Fatal("after a quiet interval an event must act at once")
	}
}

func TestSetIntervalPacesTheNextEvents(t *testing.T) {
	th := New(time.Millisecond)
	th.Event()
	th.Acted()
	th.SetInterval(time.Hour)
	time.Sleep(5 * time.Millisecond)
	if th.Event() {
		t.Fatal("an event within the longer interval acted at once")
	}
	th.Acted()
	th.SetInterval(time.Millisecond)
	time.Sleep(5 * time.Millisecond)
	if !th.Event() {
		t.Fatal("an event after the shorter interval must act at once")
	}
}
