package gc

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/unireg/unireg/registry/storage"
)

// DefaultInterval is how often the collector runs inside the server.
const DefaultInterval = time.Hour

// DefaultLeaseTTL is how long a collector's lease lasts unrenewed; a
// running collection renews it every third of that.
const DefaultLeaseTTL = 2 * time.Minute

// ErrLeaseHeld means another process on the same storage is collecting.
var ErrLeaseHeld = errors.New("gc: another process is collecting on this storage")

// A Collector runs collections over its parts: one at a time in this
// process, and one at a time among all processes on the storage (a real
// run holds the storage lease; a dry run changes nothing and takes none).
type Collector struct {
	Store   storage.Driver
	Parts   []Part
	Options Options
	Logger  *slog.Logger
	Metrics *Metrics
	// LeaseTTL is the lease's lifetime (default DefaultLeaseTTL).
	LeaseTTL time.Duration
	// Holder names this process in the lease (default hostname and a
	// random suffix).
	Holder string

	mu  sync.Mutex // one collection at a time in this process
	now func() time.Time
}

func (c *Collector) clock() time.Time {
	if c.now != nil {
		return c.now()
	}
	return time.Now()
}

func (c *Collector) logger() *slog.Logger {
	if c.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return c.Logger
}

func (c *Collector) holder() string {
	if c.Holder == "" {
		host, _ := os.Hostname()
		b := make([]byte, 4)
		_, _ = rand.Read(b)
		c.Holder = host + "-" + hex.EncodeToString(b)
	}
	return c.Holder
}

// Collect runs one collection; dryRun overrides Options.DryRun when true.
// It returns ErrLeaseHeld when another process is collecting.
func (c *Collector) Collect(ctx context.Context, dryRun bool) (Report, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	opts := c.Options
	opts.DryRun = opts.DryRun || dryRun
	if !opts.DryRun {
		ttl := c.LeaseTTL
		if ttl <= 0 {
			ttl = DefaultLeaseTTL
		}
		lease := &Lease{Store: c.Store, Holder: c.holder(), TTL: ttl}
		held, err := lease.Acquire(ctx)
		if err != nil {
			return Report{}, err
		}
		if !held {
			c.Metrics.observe(Report{}, ErrLeaseHeld)
			return Report{}, ErrLeaseHeld
		}
		var cancel context.CancelCauseFunc
		ctx, cancel = context.WithCancelCause(ctx)
		stop := make(chan struct{})
		var renewing sync.WaitGroup
		renewing.Go(func() { renew(ctx, lease, ttl, stop, cancel) })
		defer func() {
			close(stop)
			renewing.Wait()
			cancel(nil)
			_ = lease.Release(context.WithoutCancel(ctx))
		}()
	}
	run := NewRun(c.clock(), opts)
	err := c.collect(ctx, run, opts)
	if cause := context.Cause(ctx); err != nil && cause != nil && !errors.Is(cause, context.Canceled) {
		err = cause
	}
	rep := run.report(c.clock())
	c.Metrics.observe(rep, err)
	c.log(rep, err)
	return rep, err
}

// renew keeps the lease while a collection runs; losing it cancels the run.
func renew(ctx context.Context, lease *Lease, ttl time.Duration, stop <-chan struct{}, cancel context.CancelCauseFunc) {
	t := time.NewTicker(ttl / 3)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-ctx.Done():
			return
		case <-t.C:
			if held, err := lease.Renew(ctx); !held {
				cancel(fmt.Errorf("gc: lost the lease (%v); the run stopped", err))
				return
			}
		}
	}
}

func (c *Collector) collect(ctx context.Context, run *Run, opts Options) error {
	if opts.CacheMaxBytes > 0 {
		entries := map[string][]CachedEntry{}
		for _, p := range c.Parts {
			es, err := p.Cached(ctx, run)
			if err != nil {
				return fmt.Errorf("%s cache: %w", p.Name(), err)
			}
			entries[p.Name()] = es
		}
		run.budget(opts.CacheMaxBytes, entries)
	}
	var errs []error
	for _, p := range c.Parts {
		if err := p.Collect(ctx, run); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", p.Name(), err))
			if ctx.Err() != nil {
				break
			}
		}
	}
	return errors.Join(errs...)
}

func (c *Collector) log(rep Report, err error) {
	attrs := []any{"dry_run", rep.DryRun, "duration", rep.Duration.Round(time.Millisecond).String(),
		"objects", rep.Total.Objects, "bytes", rep.Total.Bytes}
	for kind, n := range rep.ByKind {
		attrs = append(attrs, kind, n.Objects)
	}
	if err != nil {
		c.logger().Warn("gc run failed", append(attrs, "error", err)...)
		return
	}
	c.logger().Info("gc run", attrs...)
}

// Run collects every interval until ctx ends; a run that finds another
// process collecting waits for the next interval.
func (c *Collector) Run(ctx context.Context, interval time.Duration) {
	if interval <= 0 {
		return
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			_, _ = c.Collect(ctx, false) // logged and counted
		}
	}
}

// Metrics are the collector's Prometheus metrics.
type Metrics struct {
	runs        *prometheus.CounterVec
	duration    prometheus.Histogram
	objects     *prometheus.CounterVec
	bytes       *prometheus.CounterVec
	lastSuccess prometheus.Gauge
}

// NewMetrics registers the collector's metrics with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		runs: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "unireg_gc_runs_total",
			Help: "Garbage collections by result: success, failure, lease-held (another replica was collecting), dry-run."}, []string{"result"}),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "unireg_gc_duration_seconds",
			Help: "Duration of garbage collections that ran.", Buckets: prometheus.ExponentialBuckets(0.01, 4, 10)}),
		objects: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "unireg_gc_deleted_objects_total",
			Help: "Objects the garbage collector deleted, by kind."}, []string{"protocol", "kind"}),
		bytes: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "unireg_gc_deleted_bytes_total",
			Help: "Bytes the garbage collector freed, by kind."}, []string{"protocol", "kind"}),
		lastSuccess: prometheus.NewGauge(prometheus.GaugeOpts{Name: "unireg_gc_last_success_timestamp_seconds",
			Help: "When the last successful garbage collection ended (Unix time)."}),
	}
	reg.MustRegister(m.runs, m.duration, m.objects, m.bytes, m.lastSuccess)
	return m
}

func (m *Metrics) observe(rep Report, err error) {
	if m == nil {
		return
	}
	switch {
	case errors.Is(err, ErrLeaseHeld):
		m.runs.WithLabelValues("lease-held").Inc()
		return
	case err != nil:
		m.runs.WithLabelValues("failure").Inc()
	case rep.DryRun:
		m.runs.WithLabelValues("dry-run").Inc()
	default:
		m.runs.WithLabelValues("success").Inc()
		m.lastSuccess.Set(float64(rep.Start.Add(rep.Duration).UnixNano()) / 1e9)
	}
	m.duration.Observe(rep.Duration.Seconds())
	if rep.DryRun {
		return
	}
	for _, d := range rep.Deleted {
		m.objects.WithLabelValues(d.Protocol, d.Kind).Inc()
		m.bytes.WithLabelValues(d.Protocol, d.Kind).Add(float64(d.Bytes))
	}
}
