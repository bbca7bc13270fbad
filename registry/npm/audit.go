package npm

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/unireg/unireg/registry/auth"
	"github.com/unireg/unireg/registry/internal/pullthrough"
)

// maxAuditBody bounds an audit request and the upstream's answer;
// maxAuditNames the packages one audit names (a large tree has a few
// thousand).
const (
	maxAuditBody  = 16 << 20
	maxAuditNames = 10000
)

// auditUpstream asks the upstream for the advisories of the packages that
// came from it, and only those: the names of local packages never leave
// the registry. When the upstream cannot answer, the answer is "no
// advisories" with an npm-notice saying so, so that installs go on.
func (h *Handler) auditUpstream(q *request) error {
	// npm sends the bulk audit gzipped (Content-Encoding: gzip); the bound
	// applies to what it inflates to.
	var in io.Reader = q.R.Body
	if strings.EqualFold(strings.TrimSpace(q.R.Header.Get("Content-Encoding")), "gzip") {
		zr, err := gzip.NewReader(q.R.Body)
		if err != nil {
			return newError(http.StatusBadRequest, "the audit body is not gzip")
		}
		defer zr.Close()
		in = zr
	}
	body, err := io.ReadAll(io.LimitReader(in, maxAuditBody+1))
	if err != nil {
		if errors.Is(err, gzip.ErrChecksum) || errors.Is(err, gzip.ErrHeader) || errors.Is(err, io.ErrUnexpectedEOF) {
			return newError(http.StatusBadRequest, "the audit body is not valid gzip")
		}
		return err
	}
	var asked map[string]json.RawMessage
	if len(body) > maxAuditBody || json.Unmarshal(body, &asked) != nil {
		return newError(http.StatusBadRequest, "the audit body must be a JSON object of package names, at most %d bytes", maxAuditBody)
	}
	if len(asked) > maxAuditNames {
		// Each name costs a storage lookup before anything is forwarded.
		return newError(http.StatusBadRequest, "an audit may name at most %d packages", maxAuditNames)
	}
	if err := q.Identify(); err != nil {
		return err
	}
	forward := map[string]json.RawMessage{}
	for name, versions := range asked {
		// Only names the caller may read are looked up and forwarded.
		if ValidName(name) != nil || !q.Allowed(name, auth.ActionRead) {
			continue
		}
		if up, err := h.fromUplink(q.R.Context(), name); err == nil && up {
			forward[name] = versions
		}
	}
	if len(forward) == 0 {
		writeJSON(q.W, q.R, http.StatusOK, map[string]any{})
		return nil
	}
	out, _ := json.Marshal(forward)
	var answer map[string]json.RawMessage
	u := h.uplink
	ctx, cancel := context.WithTimeout(q.R.Context(), pullthrough.DefaultFetchTimeout)
	defer cancel()
	// The upstream request counts against the caller's share, like any
	// other the cache makes on a caller's behalf.
	err = h.opts.Cache.Ask(ctx, q.Subject(), u.health, "audit", func(ctx context.Context) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.base+"/-/npm/v1/security/advisories/bulk", bytes.NewReader(out))
		if err != nil {
			return err
		}
		req.Header.Set("Content-Type", "application/json")
		if err := u.authorize(req); err != nil {
			return err
		}
		resp, err := u.client.Do(req)
		if err != nil {
			return err
		}
		// The upstream's own words (its status line) never reach the notice.
		if resp, err = u.health.Answer(resp, "POST advisories"); err != nil {
			return err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(io.LimitReader(resp.Body, maxAuditBody+1))
		if err != nil || len(b) > maxAuditBody || json.Unmarshal(b, &answer) != nil {
			return pullthrough.Failed(u.health.Name, "sent an audit answer that is not a bounded JSON object", err)
		}
		return nil
	})
	if err != nil {
		q.W.Header().Set("npm-notice", "unireg: the upstream registry's advisories could not be fetched ("+err.Error()+"); reporting none")
		writeJSON(q.W, q.R, http.StatusOK, map[string]any{})
		return nil
	}
	writeJSON(q.W, q.R, http.StatusOK, answer)
	return nil
}

// audit answers the security endpoints with "no advisories", in the shapes
// npm (bulk advisories, quick audit) and yarn classic (audits) expect, so
// that `npm install`, `npm audit` and `yarn audit` work against the registry.
func (h *Handler) audit(q *request) error {
	if q.route.arg == "advisories/bulk" && h.uplink != nil {
		return h.auditUpstream(q)
	}
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

// keys answers /-/npm/v1/keys, the keys that sign the registry's packages
// (`npm audit signatures` checks each package against the keys of the
// registry that served it): ours (Settings.Signing), then the upstream's
// for the packages that came from it, cached like a document and served
// stale when the upstream fails. Public keys only: no auth is asked.
func (h *Handler) keys(q *request) error {
	keys := append([]json.RawMessage{}, h.opts.Signing.keysJSON()...)
	if h.uplink != nil {
		b, err := h.uplink.keys(q.R.Context())
		if err != nil {
			return err
		}
		var up struct {
			Keys []json.RawMessage `json:"keys"`
		}
		if err := json.Unmarshal(b, &up); err != nil {
			return fmt.Errorf("upstream keys: %w", err)
		}
		keys = append(keys, up.Keys...)
	}
	writeJSON(q.W, q.R, http.StatusOK, map[string]any{"keys": keys})
	return nil
}
