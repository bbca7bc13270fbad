package pullthrough

import (
	"context"
	"strings"
	"sync"
	"time"

	"github.com/unireg/unireg/registry/storage"
)

// DefaultPulledInterval is how often a cached object's last-pulled record
// is rewritten while it keeps being pulled.
const DefaultPulledInterval = time.Hour

// maxPulledMemo bounds the in-memory record of recent writes.
const maxPulledMemo = 100000

// Pulled records when each cached object was last pulled, for the
// collector's eviction (--cache-max-idle): an empty object per cached
// object whose modification time is the last pull, rewritten at most once
// per Interval, so a busy object costs one small write an hour.
type Pulled struct {
	Store    storage.Driver
	Interval time.Duration

	mu   sync.Mutex
	last map[string]time.Time
}

// Touch records a pull of the object whose record is key.
func (p *Pulled) Touch(ctx context.Context, key string) {
	interval := p.Interval
	if interval <= 0 {
		interval = DefaultPulledInterval
	}
	now := time.Now()
	p.mu.Lock()
	if p.last == nil || len(p.last) >= maxPulledMemo {
		p.last = map[string]time.Time{}
	}
	if t, ok := p.last[key]; ok && now.Sub(t) < interval {
		p.mu.Unlock()
		return
	}
	p.last[key] = now
	p.mu.Unlock()
	// Best effort: a pull never fails because its record could not be
	// written; the collector then sees an older time, at worst evicting an
	// object that is fetched again.
	if _, err := p.Store.Put(context.WithoutCancel(ctx), key, strings.NewReader(""), storage.Condition{}); err != nil {
		p.mu.Lock()
		delete(p.last, key) // the next pull tries again
		p.mu.Unlock()
	}
}
