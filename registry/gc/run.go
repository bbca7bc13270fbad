package gc

import (
	"context"
	"sort"
	"sync"
	"time"
)

// DefaultGrace is how long a blob, tarball or staging object stays safe
// after its last upload, link or mount, when Options.Grace is zero.
const DefaultGrace = time.Hour

// TimeSpare is added to every grace: storage times may be truncated to the
// second (S3's are), so an object can look up to a second older than it is.
const TimeSpare = time.Second

// Options are what one collection does.
type Options struct {
	// Grace protects what was uploaded, linked or mounted within it
	// (default DefaultGrace): a client between its blob uploads and its
	// manifest push is safe for that long.
	Grace time.Duration
	// DryRun deletes nothing and reports what a real run would delete.
	DryRun bool
	// CacheMaxIdle evicts cached upstream content not pulled for that
	// long; zero never evicts by age.
	CacheMaxIdle time.Duration
	// CacheMaxBytes bounds the bytes of cached upstream content, of both
	// protocols together; the least recently pulled goes first. Zero: no
	// bound.
	CacheMaxBytes int64
}

// A Part is one protocol's share of a collection. The collector calls
// Cached on every part, chooses what the cache byte budget evicts, then
// Collect on every part in turn.
type Part interface {
	// Name is the part's protocol, "oci" or "npm".
	Name() string
	// Cached lists the part's cached upstream content that its own idle
	// rule keeps, for the byte budget. Parts without a cache return nil.
	Cached(ctx context.Context, run *Run) ([]CachedEntry, error)
	// Collect marks what is live and sweeps the rest, recording every
	// deletion (or, in a dry run, every deletion it would make) with
	// run.Deleted. It must honour run.Evicted for the entries Cached
	// listed.
	Collect(ctx context.Context, run *Run) error
}

// A CachedEntry is one unit of cached upstream content that the byte
// budget may evict whole: a cached manifest and what it references, or a
// cached package's document and tarballs.
type CachedEntry struct {
	ID       string // unique within the part
	LastUsed time.Time
	// Objects are what the entry holds in storage; an object shared by
	// several entries counts once, for the most recently used of them.
	Objects []Sized
}

// Sized is one stored object and its size.
type Sized struct {
	Key   string
	Bytes int64
}

// A Deletion is one object a collection deleted, or would delete.
type Deletion struct {
	Protocol string `json:"protocol"`
	// Kind is what the object is: "blob", "manifest", "tag", "link",
	// "referrer", "upload", "staging", "tarball", "cached-document",
	// "pulled-record".
	Kind string `json:"kind"`
	Key  string `json:"key"`
	// Bytes is the object's size (0 for links, tags and records).
	Bytes      int64  `json:"bytes"`
	Repository string `json:"repository,omitempty"`
	Tag        string `json:"tag,omitempty"`
	Digest     string `json:"digest,omitempty"`
	// Reason says why: "unreferenced", "retention", "untagged-after",
	// "subject-deleted", "abandoned", "cache-idle", "cache-bytes".
	Reason string `json:"reason"`
}

// A Run is one collection in progress, shared by its parts.
type Run struct {
	// Start is when the run began, on the collector's clock.
	Start time.Time
	// Cutoff is Start minus the grace and TimeSpare: an object whose last
	// upload, link or mount is after Cutoff is young and stays.
	Cutoff       time.Time
	DryRun       bool
	CacheMaxIdle time.Duration

	mu        sync.Mutex
	deletions []Deletion
	evicted   map[string]bool // part name + "\x00" + entry ID
}

// NewRun starts a run at now with opts.
func NewRun(now time.Time, opts Options) *Run {
	grace := opts.Grace
	if grace <= 0 {
		grace = DefaultGrace
	}
	// Storage times may be truncated to the second (S3's are): count the
	// grace with a second to spare, so nothing goes within it.
	return &Run{Start: now, Cutoff: now.Add(-grace - TimeSpare), DryRun: opts.DryRun, CacheMaxIdle: opts.CacheMaxIdle, evicted: map[string]bool{}}
}

// Young reports whether t (an object's last upload, link or mount) is
// within the grace.
func (r *Run) Young(t time.Time) bool { return t.After(r.Cutoff) }

// Idle reports whether cached content last used at t is past the cache's
// idle limit.
func (r *Run) Idle(t time.Time) bool {
	return r.CacheMaxIdle > 0 && r.Start.Sub(t) > r.CacheMaxIdle
}

// Deleted records a deletion.
func (r *Run) Deleted(d Deletion) {
	r.mu.Lock()
	r.deletions = append(r.deletions, d)
	r.mu.Unlock()
}

// Evicted reports whether the byte budget evicts the entry id of part.
func (r *Run) Evicted(part, id string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.evicted[part+"\x00"+id]
}

// budget chooses the entries beyond maxBytes: most recently used first,
// each object counted once, and every entry from the first that does not
// fit onwards is evicted (so what stays is the most recent prefix).
func (r *Run) budget(maxBytes int64, entries map[string][]CachedEntry) {
	type owned struct {
		part string
		CachedEntry
	}
	var all []owned
	for part, es := range entries {
		for _, e := range es {
			all = append(all, owned{part, e})
		}
	}
	sort.SliceStable(all, func(i, j int) bool {
		if !all[i].LastUsed.Equal(all[j].LastUsed) {
			return all[i].LastUsed.After(all[j].LastUsed)
		}
		return all[i].part+all[i].ID < all[j].part+all[j].ID
	})
	seen := map[string]bool{}
	var total int64
	full := false
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, e := range all {
		if !full {
			var add int64
			for _, o := range e.Objects {
				if !seen[o.Key] {
					add += o.Bytes
				}
			}
			if total+add <= maxBytes {
				total += add
				for _, o := range e.Objects {
					seen[o.Key] = true
				}
				continue
			}
			full = true
		}
		r.evicted[e.part+"\x00"+e.ID] = true
	}
}

// Count is a number of objects and their bytes.
type Count struct {
	Objects int   `json:"objects"`
	Bytes   int64 `json:"bytes"`
}

// A Report is what one collection deleted, or would delete.
type Report struct {
	Start    time.Time     `json:"start"`
	Duration time.Duration `json:"durationNanos"`
	DryRun   bool          `json:"dryRun"`
	// Total counts every deletion; ByKind splits it by Deletion.Kind.
	Total   Count            `json:"total"`
	ByKind  map[string]Count `json:"byKind"`
	Deleted []Deletion       `json:"deleted"`
}

func (r *Run) report(end time.Time) Report {
	r.mu.Lock()
	defer r.mu.Unlock()
	rep := Report{Start: r.Start, Duration: end.Sub(r.Start), DryRun: r.DryRun, ByKind: map[string]Count{}, Deleted: append([]Deletion{}, r.deletions...)}
	sort.Slice(rep.Deleted, func(i, j int) bool { return rep.Deleted[i].Key < rep.Deleted[j].Key })
	for _, d := range rep.Deleted {
		c := rep.ByKind[d.Kind]
		c.Objects++
		c.Bytes += d.Bytes
		rep.ByKind[d.Kind] = c
		rep.Total.Objects++
		rep.Total.Bytes += d.Bytes
	}
	return rep
}
