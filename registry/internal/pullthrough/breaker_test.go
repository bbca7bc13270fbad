package pullthrough

import (
	"sync"
	"testing"
	"time"
)

func newTestBreaker(failures int, cooldown time.Duration) (*Breaker, *fakeClock, *[]bool) {
	clock := newFakeClock()
	var changes []bool
	b := &Breaker{Failures: failures, Cooldown: cooldown, now: clock.now}
	b.OnChange = func(open bool) { changes = append(changes, open) }
	return b, clock, &changes
}

func mustAllow(t *testing.T, b *Breaker, what string) {
	t.Helper()
	if ok, wait := b.Allow(); !ok {
		t.Fatalf("%s: Allow refused (retry after %s), want allowed", what, wait)
	}
}

func mustRefuse(t *testing.T, b *Breaker, what string) time.Duration {
	t.Helper()
	ok, wait := b.Allow()
	if ok {
		t.Fatalf("%s: Allow let a request through, want refused", what)
	}
	if wait <= 0 {
		t.Fatalf("%s: Allow refused with retryAfter %s, want > 0", what, wait)
	}
	return wait
}

func TestBreakerOpensAfterConsecutiveFailures(t *testing.T) {
	b, clock, changes := newTestBreaker(3, 10*time.Second)
	for i := 1; i < 3; i++ {
		b.Record(true)
		mustAllow(t, b, "after fewer failures than Failures")
		if b.Open() {
			t.Fatalf("open after %d failures, want closed until 3", i)
		}
	}
	b.Record(true)
	if !b.Open() {
		t.Fatal("closed after 3 failures in a row, want open")
	}
	if wait := mustRefuse(t, b, "just opened"); wait != 10*time.Second {
		t.Errorf("retryAfter = %s just after opening, want the whole cooldown 10s", wait)
	}
	clock.advance(4 * time.Second)
	if wait := mustRefuse(t, b, "during cooldown"); wait != 6*time.Second {
		t.Errorf("retryAfter = %s 4s into a 10s cooldown, want 6s", wait)
	}
	clock.advance(6*time.Second - time.Nanosecond)
	mustRefuse(t, b, "1ns before the cooldown ends")
	if len(*changes) != 1 || !(*changes)[0] {
		t.Errorf("OnChange calls = %v, want exactly [true]", *changes)
	}
}

func TestBreakerSuccessResetsTheFailureCount(t *testing.T) {
	b, _, changes := newTestBreaker(3, time.Minute)
	b.Record(true)
	b.Record(true)
	b.Record(false) // a success in between: the count starts again
	b.Record(true)
	b.Record(true)
	if b.Open() {
		t.Fatal("open after 2+2 failures separated by a success, want closed (failures must be consecutive)")
	}
	mustAllow(t, b, "closed breaker")
	b.Record(true)
	if !b.Open() {
		t.Fatal("closed after 3 consecutive failures, want open")
	}
	if len(*changes) != 1 || !(*changes)[0] {
		t.Errorf("OnChange calls = %v, want exactly [true]", *changes)
	}
}

func TestBreakerLetsOneProbeThroughAfterCooldown(t *testing.T) {
	b, clock, _ := newTestBreaker(2, 30*time.Second)
	b.Record(true)
	b.Record(true)
	clock.advance(30 * time.Second)

	// Many callers at once once the cooldown is over: exactly one probes.
	const callers = 32
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		allowed int
		waits   []time.Duration
	)
	start := make(chan struct{})
	for range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			ok, wait := b.Allow()
			mu.Lock()
			defer mu.Unlock()
			if ok {
				allowed++
			} else {
				waits = append(waits, wait)
			}
		}()
	}
	close(start)
	wg.Wait()
	if allowed != 1 {
		t.Fatalf("%d of %d concurrent callers allowed after the cooldown, want exactly 1 probe", allowed, callers)
	}
	for _, w := range waits {
		if w <= 0 {
			t.Errorf("a caller refused while probing got retryAfter %s, want > 0", w)
		}
	}
	if !b.Open() {
		t.Error("Open() = false while probing, want true (documented: open or probing)")
	}
	// Still only one probe while it runs.
	mustRefuse(t, b, "while the probe runs")
}

func TestBreakerProbeSuccessCloses(t *testing.T) {
	b, clock, changes := newTestBreaker(2, 30*time.Second)
	b.Record(true)
	b.Record(true)
	clock.advance(31 * time.Second)
	mustAllow(t, b, "probe")
	b.Record(false)
	if b.Open() {
		t.Fatal("open after a successful probe, want closed")
	}
	for i := range 5 {
		mustAllow(t, b, "closed after the probe")
		_ = i
	}
	// Closed again means Failures failures are needed to re-open, not one.
	b.Record(true)
	if b.Open() {
		t.Fatal("one failure after closing re-opened the breaker, want Failures (2) needed")
	}
	b.Record(true)
	if !b.Open() {
		t.Fatal("2 failures after closing did not re-open")
	}
	want := []bool{true, false, true}
	if len(*changes) != len(want) {
		t.Fatalf("OnChange calls = %v, want %v", *changes, want)
	}
	for i := range want {
		if (*changes)[i] != want[i] {
			t.Fatalf("OnChange calls = %v, want %v", *changes, want)
		}
	}
}

func TestBreakerProbeFailureReopensForAWholeCooldown(t *testing.T) {
	b, clock, changes := newTestBreaker(3, 30*time.Second)
	for range 3 {
		b.Record(true)
	}
	clock.advance(45 * time.Second)
	mustAllow(t, b, "probe")
	b.Record(true) // one failed probe is enough
	if !b.Open() {
		t.Fatal("closed after a failed probe, want open again")
	}
	if wait := mustRefuse(t, b, "after a failed probe"); wait != 30*time.Second {
		t.Errorf("retryAfter = %s after a failed probe, want a whole new cooldown of 30s", wait)
	}
	clock.advance(30 * time.Second)
	mustAllow(t, b, "second probe after the second cooldown")
	mustRefuse(t, b, "while the second probe runs")
	b.Record(false)
	mustAllow(t, b, "after the second probe succeeded")
	// open, (re-open: no call), close.
	if len(*changes) != 2 || !(*changes)[0] || (*changes)[1] {
		t.Errorf("OnChange calls = %v, want [true false] (re-opening an open breaker is no transition)", *changes)
	}
}

func TestBreakerOnChangeOnlyOnTransitions(t *testing.T) {
	b, clock, changes := newTestBreaker(1, time.Second)
	for range 5 {
		b.Record(false) // closed stays closed
	}
	if len(*changes) != 0 {
		t.Fatalf("OnChange called %v by successes on a closed breaker", *changes)
	}
	b.Record(true)
	b.Record(true) // failures reported while already open
	b.Record(true)
	if len(*changes) != 1 {
		t.Fatalf("OnChange calls = %v after open + more failures, want [true]", *changes)
	}
	clock.advance(time.Second)
	mustAllow(t, b, "probe")
	b.Record(false)
	b.Record(false)
	if want := []bool{true, false}; len(*changes) != 2 || (*changes)[0] != want[0] || (*changes)[1] != want[1] {
		t.Fatalf("OnChange calls = %v, want %v", *changes, want)
	}
}

func TestNewBreakerDefaults(t *testing.T) {
	b := NewBreaker()
	if b.Failures != DefaultBreakerFailures || b.Cooldown != DefaultBreakerCooldown {
		t.Fatalf("NewBreaker = %d failures / %s, want %d / %s", b.Failures, b.Cooldown, DefaultBreakerFailures, DefaultBreakerCooldown)
	}
	mustAllow(t, b, "new breaker")
	if b.Open() {
		t.Fatal("a new breaker is open")
	}
}
