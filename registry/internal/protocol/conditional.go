package protocol

import "strings"

// ETagMatches reports whether an If-None-Match header names etag, or any
// ("*"). The comparison is weak (RFC 9110 13.1.2): a W/ prefix and the
// quotes are ignored on both sides.
func ETagMatches(header, etag string) bool {
	etag = opaqueTag(etag)
	for _, t := range strings.Split(header, ",") {
		if t = opaqueTag(t); t == etag || t == "*" {
			return true
		}
	}
	return false
}

func opaqueTag(t string) string {
	return strings.Trim(strings.TrimPrefix(strings.TrimSpace(t), "W/"), `"`)
}
