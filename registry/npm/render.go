package npm

import (
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"strings"
)

// writeJSON answers v as a JSON document with status; HEAD gets the
// headers only.
func writeJSON(w http.ResponseWriter, r *http.Request, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status, b = http.StatusInternalServerError, []byte(`{"error":"internal error"}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	if r.Method != http.MethodHead {
		w.Write(b)
	}
}

// withTarballURLs returns a shallow copy of the document whose tarball URLs
// are absolute under base (the externally visible npm root, e.g.
// "https://host/npm"), leaving the stored document untouched; sign, when
// not nil, gives each version's dist.signatures (signing.go).
func withTarballURLs(p packument, base string, sign signFunc) map[string]any {
	out := make(map[string]any, len(p))
	for k, v := range p {
		out[k] = v
	}
	versions := map[string]any{}
	for v, m := range p.versions() {
		versions[v] = versionWithURL(obj(m), base, sign)
	}
	out["versions"] = versions
	return out
}

func versionWithURL(vm map[string]any, base string, sign signFunc) map[string]any {
	out := make(map[string]any, len(vm))
	for k, v := range vm {
		out[k] = v
	}
	if dist := distOf(vm); dist != nil {
		d := make(map[string]any, len(dist))
		for k, v := range dist {
			d[k] = v
		}
		d["tarball"] = base + "/" + str(dist["tarball"])
		if sign != nil {
			// Ours replace any a publish carried: npm finds keys by keyid
			// among this registry's keys only.
			if sigs := sign(vm); sigs != nil {
				d["signatures"] = sigs
			}
		}
		out["dist"] = d
	}
	return out
}

// abbreviatedFields are the per-version fields of the install metadata
// format (application/vnd.npm.install-v1+json).
var abbreviatedFields = []string{
	"name", "version", "deprecated", "dependencies", "optionalDependencies", "devDependencies",
	"bundleDependencies", "bundledDependencies", "peerDependencies", "peerDependenciesMeta",
	"acceptDependencies", "bin", "directories", "dist", "engines", "os", "cpu", "libc",
	"_hasShrinkwrap", "hasInstallScript", "funding", "license",
}

// abbreviate builds the install metadata document: name, modified,
// dist-tags, the install-relevant fields of each version, and time (pnpm
// uses it for its minimum-release-age settings).
func abbreviate(p packument, base string, sign signFunc) map[string]any {
	versions := map[string]any{}
	for v, m := range p.versions() {
		full := versionWithURL(obj(m), base, sign)
		short := map[string]any{}
		for _, f := range abbreviatedFields {
			if x, ok := full[f]; ok {
				short[f] = x
			}
		}
		versions[v] = short
	}
	return map[string]any{
		"name":      p.name(),
		"modified":  p.times()["modified"],
		"dist-tags": p.distTags(),
		"versions":  versions,
		"time":      p.times(),
	}
}

// sha512HexOfIntegrity turns "sha512-<base64>" into hex.
func sha512HexOfIntegrity(integrity string) (string, bool) {
	for _, part := range strings.Fields(integrity) {
		if b64, ok := strings.CutPrefix(part, "sha512-"); ok {
			raw, err := base64.StdEncoding.DecodeString(b64)
			if err == nil && len(raw) == 64 {
				return hex.EncodeToString(raw), true
			}
		}
	}
	return "", false
}
