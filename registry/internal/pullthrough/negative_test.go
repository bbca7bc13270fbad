package pullthrough

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"
)

func TestNegativeRemembersForTTL(t *testing.T) {
	clock := newFakeClock()
	n := &Negative{TTL: 10 * time.Second, now: clock.now}
	if n.Missing("library/nginx") {
		t.Fatal("Missing before anything was remembered")
	}
	n.Remember("library/nginx")
	if !n.Missing("library/nginx") {
		t.Fatal("not Missing just after Remember")
	}
	if n.Missing("library/redis") {
		t.Fatal("another key is Missing")
	}
	clock.advance(10 * time.Second)
	if !n.Missing("library/nginx") {
		t.Fatal("not Missing at exactly TTL")
	}
	clock.advance(time.Nanosecond)
	if n.Missing("library/nginx") {
		t.Fatal("still Missing after TTL")
	}
	// Once expired it stays forgotten, even if the clock were to go back.
	clock.advance(-time.Minute)
	if n.Missing("library/nginx") {
		t.Fatal("an expired miss came back")
	}
}

func TestNegativeRememberRenews(t *testing.T) {
	clock := newFakeClock()
	n := &Negative{TTL: 10 * time.Second, now: clock.now}
	n.Remember("k")
	clock.advance(8 * time.Second)
	n.Remember("k")
	clock.advance(8 * time.Second)
	if !n.Missing("k") {
		t.Fatal("a miss remembered again 8s ago is forgotten with a 10s TTL")
	}
}

func TestNegativeDefaultTTL(t *testing.T) {
	clock := newFakeClock()
	n := &Negative{now: clock.now}
	n.Remember("k")
	clock.advance(DefaultNegativeTTL)
	if !n.Missing("k") {
		t.Fatalf("zero TTL: not Missing at %s, want the default TTL", DefaultNegativeTTL)
	}
	clock.advance(time.Nanosecond)
	if n.Missing("k") {
		t.Fatal("zero TTL: still Missing after the default TTL")
	}
}

func TestNegativeForget(t *testing.T) {
	n := &Negative{TTL: time.Hour}
	n.Forget("never-remembered") // no panic on an empty Negative
	n.Remember("a")
	n.Remember("b")
	n.Forget("a")
	if n.Missing("a") {
		t.Fatal("Missing after Forget")
	}
	if !n.Missing("b") {
		t.Fatal("Forget of one key forgot another")
	}
}

func TestNegativeTTLBelowZeroDisables(t *testing.T) {
	n := &Negative{TTL: -1}
	n.Remember("k")
	if n.Missing("k") {
		t.Fatal("Missing with a negative TTL, want negative caching disabled")
	}
}

func TestNegativeIsBounded(t *testing.T) {
	n := &Negative{TTL: time.Hour}
	// An attacker asking for random names, three times the bound.
	var last string
	for i := range 3 * maxNegative {
		last = fmt.Sprintf("scan/%d-%x", i, rand.Uint64())
		n.Remember(last)
		if i%997 == 0 {
			n.mu.Lock()
			size := len(n.misses)
			n.mu.Unlock()
			if size > maxNegative {
				t.Fatalf("after %d random names the negative cache holds %d, want at most %d", i+1, size, maxNegative)
			}
		}
	}
	n.mu.Lock()
	size := len(n.misses)
	n.mu.Unlock()
	if size > maxNegative {
		t.Fatalf("negative cache holds %d entries, want at most %d", size, maxNegative)
	}
	if !n.Missing(last) {
		t.Fatal("the last remembered miss is not Missing: emptying when full must keep the newest")
	}
}
