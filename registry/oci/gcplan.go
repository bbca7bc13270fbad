package oci

import (
	"context"
	"sort"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/unireg/unireg/registry/auth"
	"github.com/unireg/unireg/registry/gc"
)

// A gcPlan is what the mark decided: the tags and revisions to delete, and
// every blob a surviving manifest marks.
type gcPlan struct {
	deadTags      map[string][]gcDeadTag // by repository
	deadRevisions map[string][]gcDeadRevision
	marked        map[digest.Digest]bool
}

type gcDeadTag struct {
	tag    string
	seen   gcTag
	reason string
}

type gcDeadRevision struct {
	digest  digest.Digest
	modTime time.Time
	reason  string
}

// retentionFor returns the rules whose pattern matches the repository.
func (h *Handler) retentionFor(name string) []Retention {
	var rules []Retention
	for _, r := range h.opts.Retention {
		if auth.GlobMatch(r.Repositories, name) {
			rules = append(rules, r)
		}
	}
	return rules
}

// keptTags applies the tag rules among rules: a tag is kept when any of
// them keeps it. Without tag rules every tag is kept.
func keptTags(rules []Retention, tags map[string]gcTag) map[string]bool {
	kept := map[string]bool{}
	var tagRules []Retention
	for _, r := range rules {
		if r.keepsTags() {
			tagRules = append(tagRules, r)
		}
	}
	names := make([]string, 0, len(tags))
	for t := range tags {
		names = append(names, t)
		if len(tagRules) == 0 {
			kept[t] = true
		}
	}
	if len(tagRules) == 0 {
		return kept
	}
	// Most recently pushed first; equal times by name, so runs agree.
	sort.Slice(names, func(i, j int) bool {
		a, b := tags[names[i]].modTime, tags[names[j]].modTime
		if !a.Equal(b) {
			return a.After(b)
		}
		return names[i] < names[j]
	})
	for i, t := range names {
		for _, r := range tagRules {
			if (r.KeepLast > 0 && i < r.KeepLast) || (r.KeepTags != nil && r.KeepTags.MatchString(t)) {
				kept[t] = true
				break
			}
		}
	}
	return kept
}

// untaggedExpired reports whether the rules delete an untagged manifest
// pushed at pushed: every matching rule must have untagged-after, and the
// manifest must be older than each.
func untaggedExpired(rules []Retention, now, pushed time.Time) bool {
	if len(rules) == 0 {
		return false
	}
	for _, r := range rules {
		if r.UntaggedAfter <= 0 || now.Sub(pushed) <= r.UntaggedAfter {
			return false
		}
	}
	return true
}

// lastUsed is when cached manifest d of repository name was last pulled
// (or fetched, when later).
func (s *gcScan) lastUsed(name string, d digest.Digest, fetched time.Time) time.Time {
	t := s.pulled["manifests/"+name+"/"+string(d.Algorithm())+"/"+d.Encoded()]
	if fetched.After(t) {
		return fetched
	}
	return t
}

// plan runs the mark over a scan.
func (h *Handler) plan(ctx context.Context, run *gc.Run, s *gcScan) (*gcPlan, error) {
	var all []digest.Digest
	seen := map[digest.Digest]bool{}
	for _, r := range s.repos {
		for d := range r.revisions {
			if !seen[d] {
				seen[d] = true
				all = append(all, d)
			}
		}
	}
	refs, err := h.readRefs(ctx, all)
	if err != nil {
		return nil, err
	}
	p := &gcPlan{deadTags: map[string][]gcDeadTag{}, deadRevisions: map[string][]gcDeadRevision{}, marked: map[digest.Digest]bool{}}
	for name, r := range s.repos {
		alive := h.aliveIn(run, s, r, refs, p)
		for d, mt := range r.revisions {
			if alive[d] {
				if err := h.mark(ctx, d, refs, p.marked, 0); err != nil {
					return nil, err
				}
				continue
			}
			reason := "untagged-after"
			switch {
			case r.cached && run.Evicted("oci", name+"@"+d.String()):
				reason = "cache-bytes"
			case r.cached:
				reason = "cache-idle"
			case refs[d] != nil && refs[d].subject != "":
				reason = "subject-deleted"
			}
			p.deadRevisions[name] = append(p.deadRevisions[name], gcDeadRevision{d, mt, reason})
			for t, tag := range r.tags {
				if tag.digest == d {
					p.deadTags[name] = append(p.deadTags[name], gcDeadTag{t, tag, reason})
				}
			}
		}
	}
	return p, nil
}

// aliveIn decides which revisions of one repository survive, and adds the
// tags retention deletes to p.
func (h *Handler) aliveIn(run *gc.Run, s *gcScan, r *gcRepo, refs map[digest.Digest]*manifestRefs, p *gcPlan) map[digest.Digest]bool {
	alive := map[digest.Digest]bool{}
	var queue []digest.Digest
	live := func(d digest.Digest) {
		if _, ok := r.revisions[d]; ok && !alive[d] {
			alive[d] = true
			queue = append(queue, d)
		}
	}
	referrers := map[digest.Digest][]digest.Digest{} // by subject
	for d := range r.revisions {
		if ref := refs[d]; ref != nil && ref.subject != "" {
			referrers[ref.subject] = append(referrers[ref.subject], d)
		}
	}
	if r.cached {
		for d, fetched := range r.revisions {
			if !run.Idle(s.lastUsed(r.name, d, fetched)) && !run.Evicted("oci", r.name+"@"+d.String()) {
				live(d)
			}
		}
	} else {
		rules := h.retentionFor(r.name)
		kept := keptTags(rules, r.tags)
		for t, tag := range r.tags {
			if !kept[t] {
				p.deadTags[r.name] = append(p.deadTags[r.name], gcDeadTag{t, tag, "retention"})
				continue
			}
			live(tag.digest)
		}
		for d, pushed := range r.revisions {
			ref := refs[d]
			switch {
			case ref != nil && ref.subject != "":
				// A referrer lives and dies with its subject; one whose
				// subject has not arrived yet is kept for the grace.
				if _, ok := r.revisions[ref.subject]; !ok && run.Young(pushed) {
					live(d)
				}
			case !untaggedExpired(rules, run.Start, pushed):
				live(d)
			}
		}
	}
	for len(queue) > 0 {
		d := queue[0]
		queue = queue[1:]
		if ref := refs[d]; ref != nil {
			for _, c := range ref.children {
				live(c)
			}
		}
		for _, rd := range referrers[d] {
			live(rd)
		}
	}
	return alive
}

// maxIndexDepth bounds how deep indexes of indexes are followed.
const maxIndexDepth = 8

// mark marks manifest d's content and everything it references.
func (h *Handler) mark(ctx context.Context, d digest.Digest, refs map[digest.Digest]*manifestRefs, marked map[digest.Digest]bool, depth int) error {
	if marked[d] || depth > maxIndexDepth {
		return nil
	}
	marked[d] = true
	ref, ok := refs[d]
	if !ok {
		var err error
		if ref, err = h.refsOf(ctx, d); err != nil {
			return err
		}
	}
	if ref == nil {
		return nil
	}
	for _, b := range ref.blobs {
		marked[b] = true
	}
	for _, c := range ref.children {
		if err := h.mark(ctx, c, refs, marked, depth+1); err != nil {
			return err
		}
	}
	return nil
}
