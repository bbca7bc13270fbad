package pullthrough

import (
	"context"
	"sync"
	"testing"
	"time"
)

// fakeClock is a clock the test moves by hand.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{t: time.Unix(1_700_000_000, 0)} }

func (c *fakeClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// waitingCtx is a context that reports the first time someone asks for its
// Done channel. Fetch and Join ask for it only once the caller has joined
// the shared fetch or fill and starts waiting, so a test can tell, without
// sleeping, that every caller has joined.
type waitingCtx struct {
	context.Context
	once    sync.Once
	waiting func()
}

func (c *waitingCtx) Done() <-chan struct{} {
	c.once.Do(c.waiting)
	return c.Context.Done()
}

// joinCounter hands out waitingCtx's and tells when n of them are waiting.
type joinCounter struct {
	wg sync.WaitGroup
}

func newJoinCounter(n int) *joinCounter {
	j := &joinCounter{}
	j.wg.Add(n)
	return j
}

func (j *joinCounter) ctx(parent context.Context) context.Context {
	return &waitingCtx{Context: parent, waiting: j.wg.Done}
}

// wait blocks until every caller is waiting, or fails the test after a
// generous bound (the behaviour under test is that they all join).
func (j *joinCounter) wait(t *testing.T) {
	t.Helper()
	done := make(chan struct{})
	go func() { j.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("callers never all joined")
	}
}

// within runs f and fails the test if it does not return within a generous
// bound: used where "does not hang" is the behaviour.
func within[T any](t *testing.T, what string, f func() T) T {
	t.Helper()
	ch := make(chan T, 1)
	go func() { ch <- f() }()
	select {
	case v := <-ch:
		return v
	case <-time.After(10 * time.Second):
		t.Fatalf("%s: did not return within 10s", what)
		panic("unreachable")
	}
}
