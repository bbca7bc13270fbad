package npm

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/unireg/unireg/registry/storage"
)

// The search index keeps, for every package held here, what a search
// matches and answers with (a searchDoc, bounded: see maxIndexedText), so
// that a search reads no document. It learns of this process's writes at
// once, through the one write path (packages.update calls written), and of
// other processes' writes on the same storage by sweeping: listing the
// packages and Stat-ing every index document (sweepWorkers at a time),
// reloading only those whose storage version changed and forgetting those
// gone. A search starts a sweep when none ran for sweepEvery, in the
// background, and waits for one when the last good one started more than
// maxAge ago (or never: the first search builds the index); so a search
// sees another process's write at most maxAge after it.
const (
	defaultSearchSweepEvery = 10 * time.Second
	defaultSearchMaxAge     = 30 * time.Second
	sweepWorkers            = 16
)

// searchIndex is the search index of one handler.
type searchIndex struct {
	store storage.Driver
	names func(context.Context) ([]string, error)
	load  func(ctx context.Context, name string) (packument, string, error)

	mu sync.Mutex
	// sweepEvery is the least time between the starts of two sweeps;
	// maxAge, how old the last good sweep may be for a search to be
	// answered without waiting for the next (fields, for tests to shorten).
	sweepEvery, maxAge time.Duration
	entries            map[string]*searchEntry
	seq                uint64         // counts the changes of entries
	list               []*searchEntry // the entries with a document, nil when it must be made again
	running            *sweepRun      // the sweep under way, or nil
	started            time.Time      // when the last sweep started
	swept              time.Time      // when the last good sweep started; zero: none yet
	err                error          // the last sweep's error
}

// A searchEntry is what the index knows of one package: its search
// document (nil when the package is deleted, a tombstone), the storage
// Info of the index document it was made from, and the change (seq) that
// set it, so that a sweep never puts back what a later write replaced.
type searchEntry struct {
	name string
	doc  *searchDoc
	info storage.Info
	seq  uint64
}

// sweepRun is one sweep; done is closed when it ended, with err.
type sweepRun struct {
	done chan struct{}
	err  error
}

func newSearchIndex(store storage.Driver, names func(context.Context) ([]string, error), load func(context.Context, string) (packument, string, error)) *searchIndex {
	return &searchIndex{
		store: store, names: names, load: load,
		sweepEvery: defaultSearchSweepEvery, maxAge: defaultSearchMaxAge,
		entries: map[string]*searchEntry{},
	}
}

// docs returns the entries of the packages that exist, after a sweep when
// the index is older than maxAge. The slice is shared: read-only.
func (x *searchIndex) docs(ctx context.Context) ([]*searchEntry, error) {
	if err := x.fresh(ctx); err != nil {
		return nil, err
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.list == nil {
		x.list = make([]*searchEntry, 0, len(x.entries))
		for _, e := range x.entries {
			if e.doc != nil {
				x.list = append(x.list, e)
			}
		}
	}
	return x.list, nil
}

// fresh starts a sweep when none ran for sweepEvery, and waits for it when
// the last good one started more than maxAge ago.
func (x *searchIndex) fresh(ctx context.Context) error {
	x.mu.Lock()
	now := time.Now()
	stale := x.swept.IsZero() || now.Sub(x.swept) >= x.maxAge
	if x.running == nil && (x.started.IsZero() || now.Sub(x.started) >= x.sweepEvery) {
		x.startLocked(ctx, now)
	}
	run, lastErr := x.running, x.err
	x.mu.Unlock()
	switch {
	case !stale:
		return nil
	case run == nil: // the last sweep failed less than sweepEvery ago
		return lastErr
	}
	select {
	case <-run.done:
		return run.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// startLocked starts a sweep, which outlives the request that started it:
// other searches may be waiting for it.
func (x *searchIndex) startLocked(ctx context.Context, now time.Time) {
	run := &sweepRun{done: make(chan struct{})}
	x.running, x.started = run, now
	go func() {
		err := x.sweep(context.WithoutCancel(ctx))
		x.mu.Lock()
		x.running, x.err = nil, err
		if err == nil {
			x.swept = now
		}
		x.mu.Unlock()
		run.err = err
		close(run.done)
	}()
}

// sweep brings the index up to date with storage: every package listed is
// Stat-ed, reloaded when its index document changed, and those no longer
// listed are forgotten.
func (x *searchIndex) sweep(ctx context.Context) error {
	x.mu.Lock()
	listedAt := x.seq
	x.mu.Unlock()
	names, err := x.names(ctx)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	work := make(chan string)
	var wg sync.WaitGroup
	var errOnce sync.Once
	var firstErr error
	for range sweepWorkers {
		wg.Go(func() {
			for name := range work {
				if err := x.refresh(ctx, name); err != nil {
					errOnce.Do(func() { firstErr = err; cancel() })
				}
			}
		})
	}
	listed := make(map[string]bool, len(names))
	for _, name := range names {
		listed[name] = true
		select {
		case work <- name:
		case <-ctx.Done():
		}
	}
	close(work)
	wg.Wait()
	if firstErr != nil {
		return firstErr
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	for name, e := range x.entries {
		if !listed[name] && e.seq <= listedAt {
			delete(x.entries, name)
			x.list = nil
		}
	}
	return nil
}

// refresh brings one package's entry up to date, reading its document
// only when its index document's storage version changed. A document that
// cannot be read (corrupt) is left out, as a search without the index left
// it out, and read again once it changed; one the storage could not serve
// now fails the sweep.
func (x *searchIndex) refresh(ctx context.Context, name string) error {
	x.mu.Lock()
	seq, prev := x.seq, x.entries[name]
	x.mu.Unlock()
	info, err := x.store.Stat(ctx, packumentKey(name))
	if errors.Is(err, storage.ErrNotFound) {
		x.set(&searchEntry{name: name}, seq, true)
		return nil
	}
	if err != nil {
		return err
	}
	if prev != nil && sameContent(prev.info, info) {
		return nil
	}
	p, version, err := x.load(ctx, name)
	if err != nil {
		if storage.IsUnavailable(err) || ctx.Err() != nil {
			return err
		}
		x.set(&searchEntry{name: name, info: info}, seq, false)
		return nil
	}
	e := &searchEntry{name: name, info: storage.Info{Version: version}}
	if version == info.Version {
		e.info = info
	}
	if p != nil {
		e.doc = newSearchDoc(p)
	}
	x.set(e, seq, false)
	return nil
}

// sameContent reports whether two Infos of one key are of the same
// content: the same storage version, or the same size and time where the
// backend tells no version.
func sameContent(a, b storage.Info) bool {
	if a.Version != "" || b.Version != "" {
		return a.Version == b.Version
	}
	return !a.ModTime.IsZero() && a.Size == b.Size && a.ModTime.Equal(b.ModTime)
}

// set makes e the package's entry unless a change after seq (a write of
// this process) replaced the entry since; remove drops it instead.
func (x *searchIndex) set(e *searchEntry, seq uint64, remove bool) {
	x.mu.Lock()
	defer x.mu.Unlock()
	cur := x.entries[e.name]
	if cur != nil && cur.seq > seq {
		return
	}
	if remove {
		if cur != nil {
			delete(x.entries, e.name)
			x.list = nil
		}
		return
	}
	e.seq = seq
	x.entries[e.name] = e
	x.list = nil
}

// written records a write of this process: the package's document p (nil
// when it was deleted) is stored at info.
func (x *searchIndex) written(name string, p packument, info storage.Info) {
	e := &searchEntry{name: name, info: info}
	if p != nil {
		e.doc = newSearchDoc(p)
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	x.seq++
	e.seq = x.seq
	x.entries[name] = e
	x.list = nil
}
