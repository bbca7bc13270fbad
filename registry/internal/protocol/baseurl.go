package protocol

import (
	"net/http"
	"strings"
)

// BaseURL is the scheme and host a request was sent to: https when it
// arrived over TLS, and its Host. With forwarded (the peer is a trusted
// proxy) X-Forwarded-Proto (http or https) and the first X-Forwarded-Host
// say it instead; from any other peer they are client input and ignored.
func BaseURL(r *http.Request, forwarded bool) string {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	host := r.Host
	if !forwarded {
		return scheme + "://" + host
	}
	if p := r.Header.Get("X-Forwarded-Proto"); p == "http" || p == "https" {
		scheme = p
	}
	if h := r.Header.Get("X-Forwarded-Host"); h != "" {
		host, _, _ = strings.Cut(h, ",")
	}
	return scheme + "://" + strings.TrimSpace(host)
}
