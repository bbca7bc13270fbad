package pullthrough

import (
	"context"
	"errors"
	"io"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

type doc struct{ body string }

func TestFetchCoalescesConcurrentCallers(t *testing.T) {
	d := &Documents{}
	const callers = 40
	var calls atomic.Int32
	gate := make(chan struct{})
	joined := newJoinCounter(callers)

	results := make(chan *doc, callers)
	errs := make(chan error, callers)
	var wg sync.WaitGroup
	for range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			v, err := Fetch(d, joined.ctx(context.Background()), "docker.io/library/nginx:latest", func(ctx context.Context) (*doc, error) {
				calls.Add(1)
				<-gate
				return &doc{body: "manifest"}, nil
			})
			results <- v
			errs <- err
		}()
	}
	joined.wait(t) // every caller waits on the one fetch
	close(gate)
	wg.Wait()
	close(results)
	close(errs)
	if n := calls.Load(); n != 1 {
		t.Fatalf("fetch ran %d times for %d concurrent callers of one key, want 1", n, callers)
	}
	for err := range errs {
		if err != nil {
			t.Fatalf("a caller got %v", err)
		}
	}
	var first *doc
	for v := range results {
		if v == nil || v.body != "manifest" {
			t.Fatalf("a caller got %+v", v)
		}
		if first == nil {
			first = v
		} else if v != first {
			t.Fatal("callers got different values: the result must be shared")
		}
	}
}

func TestFetchSharesTheError(t *testing.T) {
	d := &Documents{}
	const callers = 10
	boom := errors.New("upstream 500")
	gate := make(chan struct{})
	joined := newJoinCounter(callers)
	var calls atomic.Int32
	errs := make(chan error, callers)
	for range callers {
		go func() {
			_, err := Fetch(d, joined.ctx(context.Background()), "k", func(context.Context) (int, error) {
				calls.Add(1)
				<-gate
				return 0, boom
			})
			errs <- err
		}()
	}
	joined.wait(t)
	close(gate)
	for range callers {
		if err := <-errs; !errors.Is(err, boom) {
			t.Fatalf("a caller got %v, want the fetch's error", err)
		}
	}
	if calls.Load() != 1 {
		t.Fatalf("fetch ran %d times, want 1", calls.Load())
	}
}

func TestFetchDifferentKeysAreIndependent(t *testing.T) {
	d := &Documents{}
	gate := make(chan struct{})
	aDone := make(chan string, 1)
	go func() {
		v, _ := Fetch(d, context.Background(), "a", func(context.Context) (string, error) { <-gate; return "a", nil })
		aDone <- v
	}()
	// b is not held up by a's fetch still running.
	v := within(t, "Fetch of b while a is still fetching", func() string {
		v, _ := Fetch(d, context.Background(), "b", func(context.Context) (string, error) { return "b", nil })
		return v
	})
	if v != "b" {
		t.Fatalf("Fetch(b) = %q", v)
	}
	close(gate)
	if v := <-aDone; v != "a" {
		t.Fatalf("Fetch(a) = %q", v)
	}
}

func TestFetchAfterCompletionFetchesAgain(t *testing.T) {
	d := &Documents{}
	var calls atomic.Int32
	for range 3 {
		if _, err := Fetch(d, context.Background(), "k", func(context.Context) (int32, error) { return calls.Add(1), nil }); err != nil {
			t.Fatal(err)
		}
	}
	if calls.Load() != 3 {
		t.Fatalf("fetch ran %d times for 3 sequential callers, want 3 (Documents coalesces, it does not cache)", calls.Load())
	}
}

// A caller that gives up returns at once with its own ctx's error; the fetch
// goes on (its context is not cancelled) and the others get its result.
func TestFetchCallerCancelledDoesNotCancelTheFetch(t *testing.T) {
	d := &Documents{Timeout: time.Minute}
	gate := make(chan struct{})
	fetchCtxErr := make(chan error, 1)
	var calls atomic.Int32
	fetch := func(ctx context.Context) (string, error) {
		calls.Add(1)
		<-gate
		fetchCtxErr <- ctx.Err()
		return "index", nil
	}

	// The first caller, whose context the fetch was started from, gives up.
	firstJoined := newJoinCounter(1)
	firstCtx, cancelFirst := context.WithCancel(context.Background())
	firstErr := make(chan error, 1)
	go func() {
		_, err := Fetch(d, firstJoined.ctx(firstCtx), "k", fetch)
		firstErr <- err
	}()
	firstJoined.wait(t)

	othersJoined := newJoinCounter(5)
	others := make(chan string, 5)
	for range 5 {
		go func() {
			v, err := Fetch(d, othersJoined.ctx(context.Background()), "k", fetch)
			if err != nil {
				v = "error: " + err.Error()
			}
			others <- v
		}()
	}
	othersJoined.wait(t)

	cancelFirst()
	err := within(t, "Fetch of a cancelled caller", func() error { return <-firstErr })
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled caller got %v, want context.Canceled", err)
	}
	close(gate) // the fetch finishes only now, after the first caller left
	if err := <-fetchCtxErr; err != nil {
		t.Fatalf("the fetch's context ended with %v when its first caller gave up, want it detached", err)
	}
	for range 5 {
		if v := <-others; v != "index" {
			t.Fatalf("a remaining caller got %q, want the fetch's result", v)
		}
	}
	if calls.Load() != 1 {
		t.Fatalf("fetch ran %d times, want 1", calls.Load())
	}
}

func TestFetchIsBoundedByTimeout(t *testing.T) {
	d := &Documents{Timeout: 50 * time.Millisecond}
	type key struct{}
	ctx := context.WithValue(context.Background(), key{}, "request-id")
	var sawValue any
	var deadline time.Time
	var hasDeadline bool
	started := time.Now()
	within(t, "Fetch of a hanging upstream", func() error {
		_, err := Fetch(d, ctx, "k", func(fctx context.Context) (int, error) {
			sawValue = fctx.Value(key{})
			deadline, hasDeadline = fctx.Deadline()
			<-fctx.Done() // an upstream that never answers
			return 0, fctx.Err()
		})
		return err
	})
	if !hasDeadline {
		t.Fatal("the fetch's context has no deadline, want Timeout")
	}
	if deadline.After(started.Add(d.Timeout + time.Second)) {
		t.Fatalf("fetch deadline %s after start, want within Timeout %s", deadline.Sub(started), d.Timeout)
	}
	if sawValue != "request-id" {
		t.Errorf("fetch context lost the caller's values (got %v): logging and tracing need them", sawValue)
	}
}

func TestFetchTimeoutErrorReachesTheCaller(t *testing.T) {
	d := &Documents{Timeout: 20 * time.Millisecond}
	err := within(t, "Fetch of a hanging upstream", func() error {
		_, err := Fetch(d, context.Background(), "k", func(ctx context.Context) (int, error) {
			<-ctx.Done()
			return 0, ctx.Err()
		})
		return err
	})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Fetch = %v, want the fetch's deadline error", err)
	}
}

func TestFetchDefaultTimeout(t *testing.T) {
	d := &Documents{}
	started := time.Now()
	_, err := Fetch(d, context.Background(), "k", func(ctx context.Context) (int, error) {
		dl, ok := ctx.Deadline()
		if !ok {
			return 0, errors.New("no deadline")
		}
		if dl.Sub(started) > DefaultFetchTimeout+time.Second {
			return 0, errors.New("deadline beyond DefaultFetchTimeout")
		}
		return 1, nil
	})
	if err != nil {
		t.Fatalf("zero Timeout: %v", err)
	}
}

// A fetch of an interface type that answers (nil, nil) must not panic the
// caller.
func TestFetchNilInterfaceResult(t *testing.T) {
	d := &Documents{}
	var r io.Reader
	var err error
	func() {
		defer func() {
			if p := recover(); p != nil {
				t.Fatalf("Fetch panics (%v) when fetch returns a nil interface value with a nil error: "+
					"documents.go `return r.Val.(T), nil`; use `v, _ := r.Val.(T); return v, nil`", p)
			}
		}()
		r, err = Fetch(d, context.Background(), "k", func(context.Context) (io.Reader, error) { return nil, nil })
	}()
	if err != nil || r != nil {
		t.Fatalf("Fetch = %v, %v; want nil, nil", r, err)
	}
}
