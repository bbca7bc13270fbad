package pullthrough

import (
	"sync"
	"time"
)

// DefaultNegativeTTL is how long an upstream's "not found" is remembered.
const DefaultNegativeTTL = 30 * time.Second

// maxNegative bounds the remembered misses: an anonymous caller asking for
// random names must not grow the map without end. When full it is emptied,
// which costs at most one more upstream request per name.
const maxNegative = 10000

// Negative remembers, for TTL, keys the upstream said it does not have, so
// that clients asking again and again (a typo in a deployment, a scanner)
// do not each cost an upstream request.
type Negative struct {
	TTL time.Duration
	now func() time.Time

	mu     sync.Mutex
	misses map[string]time.Time
}

func (n *Negative) clock() time.Time {
	if n.now != nil {
		return n.now()
	}
	return time.Now()
}

// Missing reports whether key was found missing upstream less than TTL ago.
func (n *Negative) Missing(key string) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	until, ok := n.misses[key]
	if ok && n.clock().After(until) {
		delete(n.misses, key)
		return false
	}
	return ok
}

// Remember notes that the upstream does not have key.
func (n *Negative) Remember(key string) {
	ttl := n.TTL
	if ttl == 0 {
		ttl = DefaultNegativeTTL
	}
	if ttl < 0 {
		return
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.misses == nil || len(n.misses) >= maxNegative {
		n.misses = map[string]time.Time{}
	}
	n.misses[key] = n.clock().Add(ttl)
}

// Forget drops key, once the upstream has it after all.
func (n *Negative) Forget(key string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	delete(n.misses, key)
}
