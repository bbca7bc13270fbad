package oci

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/opencontainers/go-digest"

	"github.com/unireg/unireg/registry/gc"
	"github.com/unireg/unireg/registry/storage"
)

// Cached lists every cached manifest the idle rule keeps, with what it
// holds, for the cache's byte budget.
func (p *gcPart) Cached(ctx context.Context, run *gc.Run) ([]gc.CachedEntry, error) {
	s, err := p.scanFor(ctx, run)
	if err != nil {
		return nil, err
	}
	h := p.h
	var entries []gc.CachedEntry
	for name, r := range s.repos {
		if !r.cached {
			continue
		}
		for d, fetched := range r.revisions {
			used := s.lastUsed(name, d, fetched)
			if run.Idle(used) {
				continue // the idle rule evicts it anyway
			}
			marked := map[digest.Digest]bool{}
			if err := h.mark(ctx, d, nil, marked, 0); err != nil {
				return nil, err
			}
			e := gc.CachedEntry{ID: name + "@" + d.String(), LastUsed: used}
			for b := range marked {
				if bl := s.blobs[b]; bl != nil && bl.data {
					e.Objects = append(e.Objects, gc.Sized{Key: blobKey(b), Bytes: bl.size})
				}
			}
			entries = append(entries, e)
		}
	}
	return entries, nil
}

// Collect runs the OCI part of a collection.
func (p *gcPart) Collect(ctx context.Context, run *gc.Run) error {
	h := p.h
	if !run.DryRun {
		if err := h.recoverQuarantine(ctx); err != nil {
			return err
		}
	}
	defer func() {
		p.mu.Lock()
		p.scanRun, p.scan = nil, nil
		p.mu.Unlock()
	}()
	s, err := p.scanFor(ctx, run)
	if err != nil {
		return err
	}
	if err := h.purgeUploads(ctx, run); err != nil {
		return fmt.Errorf("purge uploads: %w", err)
	}
	plan, err := h.plan(ctx, run, s)
	if err != nil {
		return err
	}
	if err := h.deletePlanned(ctx, run, s, plan); err != nil {
		return err
	}
	return h.sweepBlobs(ctx, run, s, plan)
}

// recoverQuarantine moves back what a collection that stopped before it
// finished left in quarantine; this run judges it again.
func (h *Handler) recoverQuarantine(ctx context.Context) error {
	var keys []string
	err := storage.Walk(ctx, h.store, quarantinePrefix, func(info storage.Info) error {
		keys = append(keys, info.Key)
		return nil
	})
	if err != nil {
		return err
	}
	for _, k := range keys {
		parts := strings.Split(strings.TrimPrefix(k, quarantinePrefix+"/"), "/")
		if len(parts) != 2 {
			continue
		}
		d, ok := keyDigest(parts[0], parts[1])
		if !ok {
			continue
		}
		if _, err := h.ensureBlob(ctx, d); err != nil {
			return err
		}
		_ = h.store.Delete(ctx, k) // a copy left beside restored content
	}
	return nil
}

// purgeUploads deletes upload sessions untouched for UploadMaxAge, as the
// upload purger does, recording them.
func (h *Handler) purgeUploads(ctx context.Context, run *gc.Run) error {
	abandoned, err := h.abandonedUploads(ctx, run.Start.Add(-h.opts.UploadMaxAge))
	if err != nil {
		return err
	}
	for _, u := range abandoned {
		run.Deleted(gc.Deletion{Protocol: "oci", Kind: "upload", Key: uploadDirKey(u.id), Bytes: u.bytes, Reason: "abandoned"})
		if !run.DryRun {
			if err := h.store.DeleteAll(ctx, uploadDirKey(u.id)); err != nil {
				return err
			}
		}
	}
	return nil
}

// deletePlanned deletes the tags and revisions the mark condemned, one
// repository at a time under its collector marker, each only if it is
// still as the scan saw it (a push since then wins: gcwriters.go).
func (h *Handler) deletePlanned(ctx context.Context, run *gc.Run, s *gcScan, plan *gcPlan) error {
	repos := map[string]bool{}
	for name := range plan.deadTags {
		repos[name] = true
	}
	for name := range plan.deadRevisions {
		repos[name] = true
	}
	for name := range repos {
		if err := h.deleteInRepo(ctx, run, s, name, plan.deadTags[name], plan.deadRevisions[name]); err != nil {
			return err
		}
	}
	return nil
}

func (h *Handler) deleteInRepo(ctx context.Context, run *gc.Run, s *gcScan, name string, tags []gcDeadTag, revs []gcDeadRevision) error {
	if run.DryRun {
		done := map[string]bool{}
		for _, t := range tags {
			if !done[t.tag] {
				done[t.tag] = true
				run.Deleted(gc.Deletion{Protocol: "oci", Kind: "tag", Key: tagKey(name, t.tag), Repository: name, Tag: t.tag, Digest: t.seen.digest.String(), Reason: t.reason})
			}
		}
		for _, r := range revs {
			run.Deleted(gc.Deletion{Protocol: "oci", Kind: "manifest", Key: revisionKey(name, r.digest), Repository: name, Digest: r.digest.String(), Reason: r.reason})
		}
		return nil
	}
	if _, err := h.store.Put(ctx, deletingKey(name), strings.NewReader(markerDeleting), storage.Condition{}); err != nil {
		return fmt.Errorf("mark deletion in %s: %w", name, err)
	}
	defer func() {
		_, _ = h.store.Put(context.WithoutCancel(ctx), deletingKey(name), strings.NewReader(markerIdle), storage.Condition{})
	}()
	done := map[string]bool{}
	for _, t := range tags {
		if done[t.tag] {
			continue
		}
		done[t.tag] = true
		b, info, err := storage.ReadAll(ctx, h.store, tagKey(name, t.tag))
		if errors.Is(err, storage.ErrNotFound) {
			continue
		}
		if err != nil {
			return err
		}
		if string(bytes.TrimSpace(b)) != t.seen.digest.String() || !info.ModTime.Equal(t.seen.modTime) {
			continue // moved since the scan
		}
		if err := h.store.Delete(ctx, tagKey(name, t.tag)); err != nil && !errors.Is(err, storage.ErrNotFound) {
			return err
		}
		h.reads.drop(tagKey(name, t.tag))
		run.Deleted(gc.Deletion{Protocol: "oci", Kind: "tag", Key: tagKey(name, t.tag), Repository: name, Tag: t.tag, Digest: t.seen.digest.String(), Reason: t.reason})
		h.emitGC(ctx, Event{Action: "tag.deleted", Repository: name, Tag: t.tag, Digest: t.seen.digest.String()})
	}
	for _, r := range revs {
		key := revisionKey(name, r.digest)
		info, err := h.store.Stat(ctx, key)
		if errors.Is(err, storage.ErrNotFound) {
			continue
		}
		if err != nil {
			return err
		}
		if !info.ModTime.Equal(r.modTime) {
			continue // pushed again since the scan
		}
		if err := h.store.Delete(ctx, key); err != nil && !errors.Is(err, storage.ErrNotFound) {
			return err
		}
		h.reads.drop(key)
		delete(s.revisionKeys, key) // a push that writes it again is new to the verification
		if ref, _ := h.refsOf(ctx, r.digest); ref != nil && ref.subject != "" {
			_ = h.store.Delete(ctx, referrerKey(name, ref.subject, r.digest))
		}
		if h.isCachedRepo(name) {
			_ = h.store.Delete(ctx, cachePulledKey+"/manifests/"+name+"/"+string(r.digest.Algorithm())+"/"+r.digest.Encoded())
		}
		run.Deleted(gc.Deletion{Protocol: "oci", Kind: "manifest", Key: key, Repository: name, Digest: r.digest.String(), Reason: r.reason})
		h.emitGC(ctx, Event{Action: "manifest.deleted", Repository: name, Digest: r.digest.String()})
	}
	return nil
}

// emitGC reports a deletion of the collector.
func (h *Handler) emitGC(ctx context.Context, e Event) {
	if h.opts.OnEvent != nil {
		e.Identity = gcIdentity
		h.opts.OnEvent(ctx, e)
	}
}

// sweepBlobs quarantines the blobs nothing marks and nothing touched
// within the grace, verifies, and deletes what stayed unreferenced.
func (h *Handler) sweepBlobs(ctx context.Context, run *gc.Run, s *gcScan, plan *gcPlan) error {
	var candidates []digest.Digest
	var orphans []digest.Digest // a ref or links without content
	for d, b := range s.blobs {
		if plan.marked[d] || run.Young(b.ref) || s.youngLink(run, d) {
			continue
		}
		if !b.data {
			orphans = append(orphans, d)
			continue
		}
		if !run.Young(b.modTime) {
			candidates = append(candidates, d)
		}
	}
	if run.DryRun {
		for _, d := range candidates {
			b := s.blobs[d]
			run.Deleted(gc.Deletion{Protocol: "oci", Kind: "blob", Key: blobKey(d), Bytes: b.size, Digest: d.String(), Reason: "unreferenced"})
		}
		for _, d := range append(candidates, orphans...) {
			h.recordLinks(run, s, d)
		}
		return nil
	}
	// Quarantine, with the first check: the ref, which every upload,
	// link and mount touches before it looks for the content.
	var mu sync.Mutex
	var held []digest.Digest
	err := parallel(ctx, len(candidates), func(i int) error {
		d := candidates[i]
		if err := h.store.Move(ctx, blobKey(d), quarantineKey(d)); err != nil {
			if errors.Is(err, storage.ErrNotFound) {
				return nil
			}
			return err
		}
		info, err := h.store.Stat(ctx, blobRefKey(d))
		if err == nil && run.Young(info.ModTime) {
			_, err := h.ensureBlob(ctx, d)
			return err
		}
		if err != nil && !errors.Is(err, storage.ErrNotFound) {
			_, _ = h.ensureBlob(ctx, d)
			return err
		}
		mu.Lock()
		held = append(held, d)
		mu.Unlock()
		return nil
	})
	if err != nil {
		h.releaseAll(ctx, held)
		return err
	}
	// The second check: revisions written since the mark, and links
	// made since, across the whole store.
	rescued, err := h.referencedSince(ctx, run, s)
	if err != nil {
		h.releaseAll(ctx, held)
		return err
	}
	// The third check, for each blob still held: its ref again. A writer
	// that touched it after the first check (a pusher's HEAD, an upload, a
	// mount) holds the blob.
	var kept []digest.Digest
	held = slices.DeleteFunc(held, func(d digest.Digest) bool {
		if rescued[d] {
			kept = append(kept, d)
		}
		return rescued[d]
	})
	touched := make([]bool, len(held))
	err = parallel(ctx, len(held), func(i int) error {
		info, err := h.store.Stat(ctx, blobRefKey(held[i]))
		if errors.Is(err, storage.ErrNotFound) {
			return nil
		}
		touched[i] = err == nil && run.Young(info.ModTime)
		return err
	})
	if err != nil {
		h.releaseAll(ctx, append(held, kept...))
		return err
	}
	var doomed []digest.Digest
	for i, d := range held {
		if touched[i] {
			kept = append(kept, d)
		} else {
			doomed = append(doomed, d)
		}
	}
	for _, d := range kept {
		if _, err := h.ensureBlob(ctx, d); err != nil {
			return err
		}
	}
	gone, err := h.emptyQuarantine(ctx, doomed)
	if err != nil {
		return err
	}
	refs := make([]string, len(gone))
	for i, d := range gone {
		refs[i] = blobRefKey(d)
	}
	if err := storage.DeleteMany(ctx, h.store, refs); err != nil {
		return err
	}
	for _, d := range gone {
		run.Deleted(gc.Deletion{Protocol: "oci", Kind: "blob", Key: blobKey(d), Bytes: s.blobs[d].size, Digest: d.String(), Reason: "unreferenced"})
	}
	return h.deleteLinks(ctx, run, s, append(gone, orphans...))
}

// emptyQuarantine deletes the quarantined copies of ds and returns those
// that are gone. A writer that touched a blob's ref after the last check
// and found its content in quarantine moved it back before the delete (the
// delete then finds nothing) or finds nothing after it (and uploads the
// blob again, or fails its push cleanly): a blob whose content is in place
// again after the delete is the writer's, and keeps its ref and links.
func (h *Handler) emptyQuarantine(ctx context.Context, ds []digest.Digest) ([]digest.Digest, error) {
	keys := make([]string, len(ds))
	for i, d := range ds {
		keys[i] = quarantineKey(d)
	}
	if err := storage.DeleteMany(ctx, h.store, keys); err != nil {
		return nil, err
	}
	back := make([]bool, len(ds))
	err := parallel(ctx, len(ds), func(i int) error {
		_, err := h.store.Stat(ctx, blobKey(ds[i]))
		if errors.Is(err, storage.ErrNotFound) {
			return nil
		}
		back[i] = err == nil
		return err
	})
	if err != nil {
		return nil, err
	}
	var gone []digest.Digest
	for i, d := range ds {
		if !back[i] {
			gone = append(gone, d)
		}
	}
	return gone, nil
}

// youngLink reports whether any repository linked d within the grace.
func (s *gcScan) youngLink(run *gc.Run, d digest.Digest) bool {
	for _, name := range s.blobs[d].links {
		if run.Young(s.repos[name].links[d]) {
			return true
		}
	}
	return false
}

// releaseAll moves quarantined blobs back after a failed verification.
func (h *Handler) releaseAll(ctx context.Context, ds []digest.Digest) {
	ctx = context.WithoutCancel(ctx)
	for _, d := range ds {
		_, _ = h.ensureBlob(ctx, d)
	}
}

// referencedSince walks the repositories again and returns every blob a
// revision written since the mark references, and every blob linked
// within the grace.
func (h *Handler) referencedSince(ctx context.Context, run *gc.Run, s *gcScan) (map[digest.Digest]bool, error) {
	rescued := map[digest.Digest]bool{}
	var fresh []digest.Digest
	err := storage.Walk(ctx, h.store, "repositories", func(info storage.Info) error {
		_, tail, ok := splitRepoKey(info.Key)
		if !ok {
			return nil
		}
		parts := strings.Split(tail, "/")
		switch {
		case len(parts) == 3 && parts[0] == "_layers":
			if d, ok := keyDigest(parts[1], parts[2]); ok && run.Young(info.ModTime) {
				rescued[d] = true
			}
		case len(parts) == 4 && parts[0] == "_manifests" && parts[1] == "revisions":
			if d, ok := keyDigest(parts[2], parts[3]); ok && !s.revisionKeys[info.Key] {
				fresh = append(fresh, d)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	for _, d := range fresh {
		if err := h.mark(ctx, d, nil, rescued, 0); err != nil {
			return nil, err
		}
	}
	return rescued, nil
}

// deleteLinks deletes the links and pull records of blobs that are gone,
// then looks whether any came back meanwhile (an upload of the same
// content) and links it again where it was.
func (h *Handler) deleteLinks(ctx context.Context, run *gc.Run, s *gcScan, ds []digest.Digest) error {
	type link struct {
		repo string
		d    digest.Digest
	}
	var all []link
	var keys []string
	for _, d := range ds {
		for _, name := range s.blobs[d].links {
			all = append(all, link{name, d})
		}
		if !s.blobs[d].ref.IsZero() && !s.blobs[d].data {
			keys = append(keys, blobRefKey(d))
		}
		if _, ok := s.pulled["blobs/"+string(d.Algorithm())+"/"+d.Encoded()]; ok {
			keys = append(keys, cachePulledKey+"/blobs/"+string(d.Algorithm())+"/"+d.Encoded())
		}
	}
	// A link made again since the scan stays; each is one request, so
	// gcWorkers at a time (on S3 a collection deletes thousands).
	doomed := make([]bool, len(all))
	err := parallel(ctx, len(all), func(i int) error {
		info, err := h.store.Stat(ctx, layerLinkKey(all[i].repo, all[i].d))
		if errors.Is(err, storage.ErrNotFound) || (err == nil && run.Young(info.ModTime)) {
			return nil
		}
		doomed[i] = err == nil
		return err
	})
	if err != nil {
		return err
	}
	var links []link
	for i, l := range all {
		if doomed[i] {
			links = append(links, l)
			keys = append(keys, layerLinkKey(l.repo, l.d))
		}
	}
	if err := storage.DeleteMany(ctx, h.store, keys); err != nil {
		return err
	}
	deleted := make([]bool, len(links))
	err = parallel(ctx, len(links), func(i int) error {
		l := links[i]
		if ok, err := h.ensureBlob(ctx, l.d); err == nil && ok {
			// Uploaded again meanwhile: the repository keeps its link.
			_, err := h.store.Put(ctx, layerLinkKey(l.repo, l.d), bytes.NewReader(nil), storage.Condition{})
			return err
		}
		deleted[i] = true
		return nil
	})
	for i, l := range links {
		if deleted[i] {
			run.Deleted(gc.Deletion{Protocol: "oci", Kind: "link", Key: layerLinkKey(l.repo, l.d), Repository: l.repo, Digest: l.d.String(), Reason: "unreferenced"})
		}
	}
	return err
}

// recordLinks records, in a dry run, the links deleteLinks would delete.
func (h *Handler) recordLinks(run *gc.Run, s *gcScan, d digest.Digest) {
	for _, name := range s.blobs[d].links {
		if !run.Young(s.repos[name].links[d]) {
			run.Deleted(gc.Deletion{Protocol: "oci", Kind: "link", Key: layerLinkKey(name, d), Repository: name, Digest: d.String(), Reason: "unreferenced"})
		}
	}
}
