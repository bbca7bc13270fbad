package npm

import "maps"

// A draft is a package's document as one update changes it (store.go).
// The top-level fields are the draft's own, and its time map holds every
// version's publish time. The version manifests are shared with the
// segment cache and with the documents readers hold, so a change never
// writes into one: it adds, removes, or edits a copy through the draft's
// methods, and the update finds what changed by comparing the draft's
// versions with the stored ones (a manifest that is not the stored object
// was added or edited).
type draft struct {
	packument // the top-level fields; never "versions"
	vs        map[string]map[string]any
	owned     map[string]bool // versions whose manifest is the draft's own copy
}

func newDraft(top packument) *draft {
	return &draft{packument: top, vs: map[string]map[string]any{}, owned: map[string]bool{}}
}

// version returns version v's manifest, read-only, or nil.
func (d *draft) version(v string) map[string]any { return d.vs[v] }

// versions returns every version's manifest, read-only: change them with
// add, remove and edit.
func (d *draft) versions() map[string]map[string]any { return d.vs }

// add adds version v with manifest m, which becomes the draft's.
func (d *draft) add(v string, m map[string]any) {
	d.vs[v] = m
	d.owned[v] = true
}

// remove removes version v; its publish time stays.
func (d *draft) remove(v string) {
	delete(d.vs, v)
	delete(d.owned, v)
}

// edit returns version v's manifest for changing its top-level fields: a
// copy the first time, which replaces the shared one in the draft.
func (d *draft) edit(v string) map[string]any {
	m := d.vs[v]
	if m == nil || d.owned[v] {
		return m
	}
	m = maps.Clone(m)
	d.vs[v] = m
	d.owned[v] = true
	return m
}

// doc returns the draft as a whole document, sharing its values.
func (d *draft) doc() packument {
	p := maps.Clone(d.packument)
	versions := make(map[string]any, len(d.vs))
	for v, m := range d.vs {
		versions[v] = m
	}
	p["versions"] = versions
	return p
}

// latestRemaining picks the version that `latest` should point at when the
// one it named is gone: the most recently published remaining version.
func (d *draft) latestRemaining() string {
	best, bestTime := "", ""
	times := d.times()
	for v := range d.vs {
		t := str(times[v])
		if best == "" || t > bestTime || (t == bestTime && v > best) {
			best, bestTime = v, t
		}
	}
	return best
}

// fixDistTags drops tags pointing at missing versions and makes sure
// `latest` exists while any version does (yarn and pnpm require it).
func (d *draft) fixDistTags() {
	tags := d.distTags()
	for t, v := range tags {
		if _, ok := d.vs[str(v)]; !ok {
			delete(tags, t)
		}
	}
	if _, ok := tags["latest"]; !ok && len(d.vs) > 0 {
		tags["latest"] = d.latestRemaining()
	}
}
