package pullthrough

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the cache's series in /metrics, shared by every upstream of
// both protocols (labels protocol and upstream).
type Metrics struct {
	requests       *prometheus.CounterVec
	upstreamBytes  *prometheus.CounterVec
	upstreamErrors *prometheus.CounterVec
	breakerOpen    *prometheus.GaugeVec
}

// Cache results, the values of the result label of
// unireg_cache_requests_total.
const (
	Hit         = "hit"         // served from the cache, no upstream request
	Revalidated = "revalidated" // served from the cache after the upstream confirmed it
	Miss        = "miss"        // fetched from the upstream
	Stale       = "stale"       // served from the cache because the upstream failed
	NegativeHit = "negative"    // refused from memory of an upstream "not found"
)

// NewMetrics registers the cache's series with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "unireg_cache_requests_total",
			Help: "Pull-through cache lookups, by protocol, upstream and result (hit, revalidated, miss, stale, negative).",
		}, []string{"protocol", "upstream", "result"}),
		upstreamBytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "unireg_cache_upstream_bytes_total",
			Help: "Bytes of content received from upstreams.",
		}, []string{"protocol", "upstream"}),
		upstreamErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "unireg_cache_upstream_errors_total",
			Help: "Upstream requests that failed (unreachable, too slow, an error status, content that did not verify).",
		}, []string{"protocol", "upstream"}),
		breakerOpen: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "unireg_cache_breaker_open",
			Help: "1 while an upstream's circuit breaker is open (the upstream is not asked).",
		}, []string{"protocol", "upstream"}),
	}
	if reg != nil {
		reg.MustRegister(m.requests, m.upstreamBytes, m.upstreamErrors, m.breakerOpen)
	}
	return m
}

// An Upstream is the health of one upstream of one protocol: its breaker,
// what it was found not to have, and its metrics and log lines.
type Upstream struct {
	Protocol, Name string
	Breaker        *Breaker
	Negative       Negative
	Log            *slog.Logger
	metrics        *Metrics
}

// NewUpstream returns the health of upstream name of protocol, counted in m.
func NewUpstream(protocol, name string, m *Metrics, log *slog.Logger) *Upstream {
	if m == nil {
		m = NewMetrics(nil)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	u := &Upstream{Protocol: protocol, Name: name, Breaker: NewBreaker(), Log: log, metrics: m}
	gauge := m.breakerOpen.WithLabelValues(protocol, name)
	gauge.Set(0)
	u.Breaker.OnChange = func(open bool) {
		if open {
			gauge.Set(1)
			log.Warn("cache: upstream circuit breaker opened", "protocol", protocol, "upstream", name, "cooldown", u.Breaker.Cooldown)
		} else {
			gauge.Set(0)
			log.Info("cache: upstream circuit breaker closed", "protocol", protocol, "upstream", name)
		}
	}
	return u
}

// Count records one cache lookup with its result.
func (u *Upstream) Count(result string) {
	u.metrics.requests.WithLabelValues(u.Protocol, u.Name, result).Inc()
}

// CountBytes records n bytes received from the upstream.
func (u *Upstream) CountBytes(n int) {
	u.metrics.upstreamBytes.WithLabelValues(u.Protocol, u.Name).Add(float64(n))
}

// Ask runs one request to the upstream through the breaker. A failure (any
// error but ErrNotFound, ErrRefused and the caller's own cancellation) counts against
// the breaker, is counted and logged, and is returned as an UpstreamError
// with reason; while the breaker is open Ask fails at once.
func (u *Upstream) Ask(ctx context.Context, what string, call func(ctx context.Context) error) error {
	if ok, wait := u.Breaker.Allow(); !ok {
		return &UpstreamError{Upstream: u.Name, Reason: "not asked: it failed repeatedly, retrying in " + wait.Round(time.Second).String(), RetryAfter: wait, Err: ErrUpstream}
	}
	err := call(ctx)
	switch {
	case err == nil, errors.Is(err, ErrNotFound), errors.Is(err, ErrRefused):
		u.Breaker.Record(false)
		return err
	case ctx.Err() != nil && !errors.Is(ctx.Err(), context.DeadlineExceeded):
		// The caller went away: says nothing of the upstream.
		u.Breaker.Release()
		return err
	}
	u.Breaker.Record(true)
	u.metrics.upstreamErrors.WithLabelValues(u.Protocol, u.Name).Inc()
	u.Log.Warn("cache: upstream request failed", "protocol", u.Protocol, "upstream", u.Name, "what", what, "error", err)
	var ue *UpstreamError
	if errors.As(err, &ue) {
		return err
	}
	reason := "request failed"
	if errors.Is(err, context.DeadlineExceeded) {
		reason = "no answer in time"
	}
	return &UpstreamError{Upstream: u.Name, Reason: reason, Err: err}
}

// Failure records a failure found after Ask returned (a body that broke
// off or did not verify).
func (u *Upstream) Failure(what string, err error) {
	u.Breaker.Record(true)
	u.metrics.upstreamErrors.WithLabelValues(u.Protocol, u.Name).Inc()
	u.Log.Warn("cache: upstream download failed", "protocol", u.Protocol, "upstream", u.Name, "what", what, "error", err)
}

// DefaultTransport is the upstream requests' transport: http.DefaultTransport
// with a 5 s dial timeout and a header timeout of DefaultFetchTimeout, so a
// hanging upstream costs a bounded wait.
func DefaultTransport() http.RoundTripper {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.DialContext = (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext
	t.ResponseHeaderTimeout = DefaultFetchTimeout
	return t
}
