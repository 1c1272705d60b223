package runtime

import (
	"testing"
	"time"
)

// A stale layer reading is given out while one caller refreshes it; a container removed
// during the refresh gets no reading back.
func TestLayerReadingRefresh(t *testing.T) {
	var s statsCache
	t0 := time.Now()
	if _, ok, _ := s.layer("c", t0); ok {
		t.Fatal("a reading before any was set")
	}
	s.setLayer("c", layerReading{at: t0, bytes: 1})
	if r, ok, refresh := s.layer("c", t0.Add(time.Second)); !ok || refresh || r.bytes != 1 {
		t.Fatalf("fresh reading = %v, %v, refresh %v", r, ok, refresh)
	}
	late := t0.Add(layerUsageFor + time.Second)
	if r, ok, refresh := s.layer("c", late); !ok || !refresh || r.bytes != 1 {
		t.Fatalf("stale reading = %v, %v, refresh %v; want the old one and a refresh", r, ok, refresh)
	}
	if _, _, refresh := s.layer("c", late); refresh {
		t.Fatal("a second caller was asked to refresh too")
	}
	s.refreshed("c", layerReading{at: late, bytes: 2}, true)
	if r, _, refresh := s.layer("c", late); r.bytes != 2 || refresh {
		t.Fatalf("after the refresh = %v, refresh %v", r, refresh)
	}
	// A failed refresh keeps the old reading and lets the next caller try again.
	later := late.Add(layerUsageFor + time.Second)
	s.layer("c", later)
	s.refreshed("c", layerReading{}, false)
	if r, _, refresh := s.layer("c", later); r.bytes != 2 || !refresh {
		t.Fatalf("after a failed refresh = %v, refresh %v", r, refresh)
	}
	// Removed while being refreshed.
	s.forget("c")
	s.refreshed("c", layerReading{at: later, bytes: 3}, true)
	if _, ok, _ := s.layer("c", later); ok {
		t.Error("a removed container has a reading again")
	}
}
