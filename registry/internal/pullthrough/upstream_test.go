package pullthrough

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// metric reads one series from reg; found is false when it is absent.
func metric(t *testing.T, reg *prometheus.Registry, name string, labels map[string]string) (value float64, found bool) {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range families {
		if mf.GetName() != name {
			continue
		}
	series:
		for _, m := range mf.GetMetric() {
			got := map[string]string{}
			for _, l := range m.GetLabel() {
				got[l.GetName()] = l.GetValue()
			}
			for k, v := range labels {
				if got[k] != v {
					continue series
				}
			}
			if c := m.GetCounter(); c != nil {
				return c.GetValue(), true
			}
			return m.GetGauge().GetValue(), true
		}
	}
	return 0, false
}

type testUpstream struct {
	u     *Upstream
	reg   *prometheus.Registry
	clock *fakeClock
	log   *bytes.Buffer
}

func newTestUpstream(t *testing.T, failures int) *testUpstream {
	reg := prometheus.NewRegistry()
	var log bytes.Buffer
	u := NewUpstream("oci", "docker.io", NewMetrics(reg), slog.New(slog.NewTextHandler(&log, nil)))
	clock := newFakeClock()
	u.Breaker.Failures = failures
	u.Breaker.Cooldown = 30 * time.Second
	u.Breaker.now = clock.now
	return &testUpstream{u: u, reg: reg, clock: clock, log: &log}
}

var labels = map[string]string{"protocol": "oci", "upstream": "docker.io"}

func (tu *testUpstream) errorsCounted(t *testing.T) float64 {
	t.Helper()
	v, _ := metric(t, tu.reg, "unireg_cache_upstream_errors_total", labels)
	return v
}

func (tu *testUpstream) breakerGauge(t *testing.T) float64 {
	t.Helper()
	v, found := metric(t, tu.reg, "unireg_cache_breaker_open", labels)
	if !found {
		t.Fatal("unireg_cache_breaker_open{protocol=oci,upstream=docker.io} is not in the registry")
	}
	return v
}

var errUnreachable = errors.New("dial tcp: connection refused")

func failing(context.Context) error { return errUnreachable }

func TestUpstreamAskFailuresAreUpstreamErrors(t *testing.T) {
	tu := newTestUpstream(t, 5)
	err := tu.u.Ask(context.Background(), "manifest nginx:latest", failing)
	var ue *UpstreamError
	if !errors.As(err, &ue) {
		t.Fatalf("Ask = %v (%T), want an *UpstreamError", err, err)
	}
	if !errors.Is(err, ErrUpstream) || !errors.Is(err, errUnreachable) {
		t.Fatalf("Ask = %v: want errors.Is ErrUpstream and the cause", err)
	}
	if ue.Upstream != "docker.io" || ue.RetryAfter != 0 {
		t.Fatalf("UpstreamError = %+v", ue)
	}
	// What the client is shown holds nothing of the cause's text.
	if strings.Contains(err.Error(), "connection refused") {
		t.Errorf("UpstreamError.Error() = %q carries the cause's text", err.Error())
	}
	if got := tu.errorsCounted(t); got != 1 {
		t.Errorf("upstream errors counted = %v, want 1", got)
	}
	if !strings.Contains(tu.log.String(), "upstream request failed") {
		t.Errorf("the failure was not logged: %q", tu.log.String())
	}
}

func TestUpstreamAskTimeoutReason(t *testing.T) {
	tu := newTestUpstream(t, 5)
	err := tu.u.Ask(context.Background(), "x", func(context.Context) error {
		return fmt.Errorf("HEAD: %w", context.DeadlineExceeded)
	})
	var ue *UpstreamError
	if !errors.As(err, &ue) || ue.Reason != "no answer in time" {
		t.Fatalf("Ask of a call that timed out = %v, want reason %q", err, "no answer in time")
	}
	if tu.errorsCounted(t) != 1 {
		t.Fatal("a timeout was not counted as an upstream error")
	}
}

func TestUpstreamAskKeepsAnUpstreamErrorsReason(t *testing.T) {
	tu := newTestUpstream(t, 5)
	inner := Failed("docker.io", "answered 500", nil)
	err := tu.u.Ask(context.Background(), "x", func(context.Context) error { return inner })
	if err != inner {
		t.Fatalf("Ask = %v, want the call's own *UpstreamError unchanged", err)
	}
	if !errors.Is(err, ErrUpstream) {
		t.Fatal("Failed(...) is not errors.Is ErrUpstream")
	}
}

func TestUpstreamAskBreakerOpenFailsAtOnce(t *testing.T) {
	tu := newTestUpstream(t, 3)
	if g := tu.breakerGauge(t); g != 0 {
		t.Fatalf("breaker gauge = %v for a new upstream, want 0", g)
	}
	for range 3 {
		tu.u.Ask(context.Background(), "x", failing)
	}
	if g := tu.breakerGauge(t); g != 1 {
		t.Fatalf("breaker gauge = %v after 3 failures, want 1", g)
	}
	if !strings.Contains(tu.log.String(), "breaker opened") {
		t.Errorf("opening was not logged: %q", tu.log.String())
	}
	var called atomic.Bool
	err := tu.u.Ask(context.Background(), "x", func(context.Context) error { called.Store(true); return nil })
	if called.Load() {
		t.Fatal("Ask called the upstream while the breaker is open")
	}
	var ue *UpstreamError
	if !errors.As(err, &ue) {
		t.Fatalf("Ask with the breaker open = %v (%T), want *UpstreamError", err, err)
	}
	if ue.RetryAfter <= 0 || ue.RetryAfter > 30*time.Second {
		t.Fatalf("RetryAfter = %s, want within (0, cooldown]", ue.RetryAfter)
	}
	if !errors.Is(err, ErrUpstream) {
		t.Fatal("breaker-open error is not errors.Is ErrUpstream")
	}
	if got := tu.errorsCounted(t); got != 3 {
		t.Errorf("upstream errors = %v, want 3 (a refusal by the breaker asks nothing of the upstream)", got)
	}

	// After the cooldown one probe goes through; its success closes.
	tu.clock.advance(30 * time.Second)
	if err := tu.u.Ask(context.Background(), "probe", func(context.Context) error { return nil }); err != nil {
		t.Fatalf("probe: %v", err)
	}
	if g := tu.breakerGauge(t); g != 0 {
		t.Fatalf("breaker gauge = %v after a successful probe, want 0", g)
	}
	if !strings.Contains(tu.log.String(), "breaker closed") {
		t.Errorf("closing was not logged: %q", tu.log.String())
	}
}

func TestUpstreamAskNotFoundDoesNotCount(t *testing.T) {
	tu := newTestUpstream(t, 2)
	for range 10 {
		err := tu.u.Ask(context.Background(), "x", func(context.Context) error {
			return fmt.Errorf("manifest nope: %w", ErrNotFound)
		})
		if !errors.Is(err, ErrNotFound) {
			t.Fatalf("Ask = %v, want ErrNotFound passed through", err)
		}
		if errors.Is(err, ErrUpstream) {
			t.Fatalf("Ask = %v: a 404 is not an upstream failure", err)
		}
	}
	if tu.u.Breaker.Open() {
		t.Fatal("ten 404s opened the breaker")
	}
	if got := tu.errorsCounted(t); got != 0 {
		t.Fatalf("404s counted as %v upstream errors, want 0", got)
	}
}

func TestUpstreamAskCallerCancellationDoesNotCount(t *testing.T) {
	tu := newTestUpstream(t, 1) // a single counted failure would open it
	ctx, cancel := context.WithCancel(context.Background())
	err := tu.u.Ask(ctx, "x", func(ctx context.Context) error {
		cancel()
		return ctx.Err()
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Ask = %v, want the caller's cancellation", err)
	}
	if tu.u.Breaker.Open() {
		t.Fatal("a caller's cancellation opened the breaker")
	}
	if got := tu.errorsCounted(t); got != 0 {
		t.Fatalf("a caller's cancellation counted as %v upstream errors", got)
	}
}

// A caller's cancellation "says nothing of the upstream": it must not count
// as a success either, which would reset the run of failures or close an
// open breaker.
func TestUpstreamAskCallerCancellationIsNeutral(t *testing.T) {
	t.Run("does not reset the failure count", func(t *testing.T) {
		tu := newTestUpstream(t, 3)
		tu.u.Ask(context.Background(), "x", failing)
		tu.u.Ask(context.Background(), "x", failing)
		ctx, cancel := context.WithCancel(context.Background())
		tu.u.Ask(ctx, "x", func(ctx context.Context) error { cancel(); return ctx.Err() })
		tu.u.Ask(context.Background(), "x", failing)
		if !tu.u.Breaker.Open() {
			t.Fatal("upstream.go Ask: a caller's cancellation calls Breaker.Record(false), a success, which resets the run of failures " +
				"(fail, fail, cancel, fail does not open a 3-failure breaker); it should leave the breaker's state alone " +
				"(e.g. a Breaker.Release() that only clears probing)")
		}
	})
	t.Run("a cancelled probe does not close the breaker", func(t *testing.T) {
		tu := newTestUpstream(t, 2)
		tu.u.Ask(context.Background(), "x", failing)
		tu.u.Ask(context.Background(), "x", failing)
		tu.clock.advance(30 * time.Second)
		ctx, cancel := context.WithCancel(context.Background())
		// The probe's client gives up (a kubelet timing out on a hanging upstream).
		tu.u.Ask(ctx, "probe", func(ctx context.Context) error { cancel(); return ctx.Err() })
		if !tu.u.Breaker.Open() {
			t.Fatal("upstream.go Ask: a cancelled probe calls Breaker.Record(false) and closes the breaker although the upstream " +
				"answered nothing, so every uncached pull again waits on a hanging upstream; on cancellation only release the probe " +
				"(probing=false) and keep openUntil")
		}
		// Released: the next caller may probe again.
		if ok, _ := tu.u.Breaker.Allow(); !ok {
			t.Fatal("after a cancelled probe no one may probe again")
		}
	})
}

func TestUpstreamFailureCountsAgainstTheBreaker(t *testing.T) {
	tu := newTestUpstream(t, 2)
	if err := tu.u.Ask(context.Background(), "blob", func(context.Context) error { return nil }); err != nil {
		t.Fatal(err)
	}
	// The body broke off after Ask returned.
	tu.u.Failure("blob", errors.New("unexpected EOF"))
	tu.u.Failure("blob", errors.New("digest mismatch"))
	if !tu.u.Breaker.Open() {
		t.Fatal("two Failures did not open a 2-failure breaker")
	}
	if got := tu.errorsCounted(t); got != 2 {
		t.Fatalf("upstream errors = %v, want 2", got)
	}
	if tu.breakerGauge(t) != 1 {
		t.Fatal("breaker gauge not 1 after Failures opened it")
	}
}

func TestUpstreamCountsRequestsAndBytes(t *testing.T) {
	tu := newTestUpstream(t, 5)
	tu.u.Count(Hit)
	tu.u.Count(Hit)
	tu.u.Count(Miss)
	tu.u.CountBytes(1000)
	tu.u.CountBytes(24)
	for result, want := range map[string]float64{Hit: 2, Miss: 1} {
		got, _ := metric(t, tu.reg, "unireg_cache_requests_total", map[string]string{"protocol": "oci", "upstream": "docker.io", "result": result})
		if got != want {
			t.Errorf("requests{result=%s} = %v, want %v", result, got, want)
		}
	}
	if got, _ := metric(t, tu.reg, "unireg_cache_upstream_bytes_total", labels); got != 1024 {
		t.Errorf("upstream bytes = %v, want 1024", got)
	}
}

func TestUpstreamsShareMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := NewMetrics(reg)
	a := NewUpstream("oci", "docker.io", m, nil)
	b := NewUpstream("npm", "npmjs", m, nil)
	a.Failure("x", errUnreachable)
	b.Failure("x", errUnreachable)
	b.Failure("x", errUnreachable)
	if got, _ := metric(t, reg, "unireg_cache_upstream_errors_total", map[string]string{"protocol": "npm", "upstream": "npmjs"}); got != 2 {
		t.Fatalf("npm errors = %v, want 2", got)
	}
	if got, _ := metric(t, reg, "unireg_cache_upstream_errors_total", labels); got != 1 {
		t.Fatalf("oci errors = %v, want 1", got)
	}
	// A nil Metrics and logger are allowed.
	c := NewUpstream("oci", "ghcr.io", nil, nil)
	c.Failure("x", errUnreachable)
	c.Count(Stale)
}
