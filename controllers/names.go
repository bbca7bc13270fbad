package controllers

import (
	"fmt"

	uniregv1 "github.com/unireg/unireg/api/v1alpha1"
	"github.com/unireg/unireg/registry/authstore"
)

// Names and labels of what a Registry becomes. Everything is owned by the
// Registry (owner references), so deleting it cleans up.
const (
	labelName      = "app.kubernetes.io/name"
	labelInstance  = "app.kubernetes.io/instance"
	labelManagedBy = "app.kubernetes.io/managed-by"
	// labelRegistry marks token Secrets with the Registry they belong to, so
	// a change to one re-projects that Registry's auth store.
	labelRegistry = "unireg.dev/registry"
	// annotationTokenHash on a token Secret holds the token's hash: the
	// auth-store controller projects hashes without reading raw tokens.
	annotationTokenHash = "unireg.dev/token-hash"

	fieldOwner = "unireg-operator"

	// Keys of the Secrets.
	keyJWT        = "jwt.key"
	keyAuthStore  = authstore.SecretKey
	keyToken      = "token"
	keyRegistry   = "registry"
	keyNPMRC      = ".npmrc"
	containerPort = 5000
)

func jwtSecretName(r *uniregv1.Registry) string  { return r.Name + "-jwt" }
func authSecretName(r *uniregv1.Registry) string { return r.Name + "-auth" }
func dataClaimName(r *uniregv1.Registry) string  { return r.Name + "-data" }

// serviceAccountName is the identity of the registry's pods: it may read
// only the Registry's auth-store Secret.
func serviceAccountName(r *uniregv1.Registry) string { return r.Name + "-registry" }

func selectorLabels(r *uniregv1.Registry) map[string]string {
	return map[string]string{labelName: "unireg", labelInstance: r.Name}
}

func commonLabels(r *uniregv1.Registry) map[string]string {
	l := selectorLabels(r)
	l[labelManagedBy] = "unireg-operator"
	return l
}

// serviceURL is the in-cluster URL of a Registry.
func serviceURL(r *uniregv1.Registry) string {
	return fmt.Sprintf("%s://%s.%s.svc:%d", scheme(r), r.Name, r.Namespace, servicePort(r))
}

// scheme is how the Registry is served: https with spec.tls.
func scheme(r *uniregv1.Registry) string {
	if r.Spec.TLS != nil {
		return "https"
	}
	return "http"
}

func servicePort(r *uniregv1.Registry) int32 {
	if r.Spec.Service.Port != 0 {
		return r.Spec.Service.Port
	}
	return 5000
}

// publicURL is what clients use: spec.publicURL, else the Service URL.
func publicURL(r *uniregv1.Registry) string {
	if r.Spec.PublicURL != "" {
		return trimSlash(r.Spec.PublicURL)
	}
	return serviceURL(r)
}

func npmPrefix(r *uniregv1.Registry) string {
	if r.Spec.NPM.PathPrefix != "" {
		return r.Spec.NPM.PathPrefix
	}
	return "/npm"
}

func enabled(b *bool) bool { return b == nil || *b }

func trimSlash(s string) string {
	for len(s) > 0 && s[len(s)-1] == '/' {
		s = s[:len(s)-1]
	}
	return s
}
