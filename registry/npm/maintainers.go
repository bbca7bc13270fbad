package npm

import "net/http"

// Maintainers are metadata, as `npm owner ls` and search show them: who may
// change a package is decided by scopes, never by this list. A list is
// stored as npm shows it, {name, email} per entry, each name once.

// normalizeMaintainers checks a maintainers list sent by a client and
// returns it as stored.
func normalizeMaintainers(v any) ([]any, error) {
	list, ok := v.([]any)
	if !ok {
		return nil, newError(http.StatusBadRequest, "maintainers must be a list of {name, email}")
	}
	out := []any{}
	seen := map[string]bool{}
	for i, m := range list {
		entry := obj(m)
		name := str(entry["name"])
		if name == "" {
			return nil, newError(http.StatusBadRequest, "maintainers[%d] has no name", i)
		}
		if len(name) > maxNameLength {
			return nil, newError(http.StatusBadRequest, "maintainers[%d] has a name longer than %d characters", i, maxNameLength)
		}
		if seen[name] {
			continue
		}
		seen[name] = true
		out = append(out, map[string]any{"name": name, "email": str(entry["email"])})
	}
	if len(out) == 0 {
		return nil, newError(http.StatusBadRequest, "a package keeps at least one maintainer: add another before removing the last")
	}
	return out, nil
}
