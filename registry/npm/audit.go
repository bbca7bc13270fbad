package npm

import (
	"io"
	"net/http"
)

// audit answers the security endpoints with "no advisories", in the shapes
// npm (bulk advisories, quick audit) and yarn classic (audits) expect, so
// that `npm install`, `npm audit` and `yarn audit` work against the registry.
func (h *Handler) audit(q *request) error {
	io.Copy(io.Discard, io.LimitReader(q.R.Body, 16<<20))
	switch q.route.arg {
	case "advisories/bulk":
		writeJSON(q.W, q.R, http.StatusOK, map[string]any{})
	case "audits/quick", "audits":
		writeJSON(q.W, q.R, http.StatusOK, map[string]any{
			"actions": []any{}, "advisories": map[string]any{}, "muted": []any{},
			"metadata": map[string]any{
				"vulnerabilities":      map[string]int{"info": 0, "low": 0, "moderate": 0, "high": 0, "critical": 0},
				"dependencies":         0,
				"devDependencies":      0,
				"optionalDependencies": 0,
				"totalDependencies":    0,
			},
		})
	default:
		return newError(http.StatusNotFound, "not found")
	}
	return nil
}
