package controllers

import (
	"encoding/json"
	"sort"
	"time"

	corev1 "k8s.io/api/core/v1"

	uniregv1 "github.com/unireg/unireg/api/v1alpha1"
	"github.com/unireg/unireg/registry/authstore"
)

// Rotation of generated tokens. The state lives on the token's own Secret,
// next to the token it describes, and is mirrored in the token's status:
// a decision taken on a stale read of the Secret then fails on its
// resourceVersion instead of rotating twice. A token brought with
// spec.secretRef is never rotated by the operator: whoever writes its source
// Secret rotates it (the change applies at once, with no overlap).
const (
	// annotationPreviousHashes on a token's Secret lists the hashes of the
	// tokens it replaced that still work, each until the end of its overlap
	// (JSON, []previousHash). Hashes only: a raw token is kept nowhere but
	// in key "token". The auth-store controller projects each as its own
	// auth-store entry.
	annotationPreviousHashes = "unireg.dev/previous-token-hashes"
	// annotationIssuedAt is when the Secret's token was generated or, for a
	// spec.secretRef token, first seen (RFC 3339).
	annotationIssuedAt = "unireg.dev/issued-at"
	// annotationRotation is the uniregv1.RotateAnnotation value the Secret's
	// token was generated for.
	annotationRotation = "unireg.dev/rotation"
)

// defaultOverlap is how long a replaced token keeps working when
// spec.rotation.overlap is unset.
const defaultOverlap = time.Hour

// previousHash is a replaced token that still works until Until.
type previousHash struct {
	Hash  string    `json:"hash"`
	Until time.Time `json:"until"`
}

// credential is what a token's Secret is to hold: the token, the replaced
// ones still in their overlap, and when and for which rotation request the
// token was issued.
type credential struct {
	token    string
	previous []previousHash
	issuedAt time.Time
	rotation string
}

// rotated is the credential of a generated token: the one in its Secret,
// or a new one when a rotation is due, the old one then kept for the
// overlap. own is the token's Secret holding a generated token.
func rotated(tok *uniregv1.RegistryToken, own *corev1.Secret, now time.Time) (*credential, error) {
	c := &credential{token: string(own.Data[keyToken]), previous: livePrevious(own, now), issuedAt: now}
	if t, err := time.Parse(time.RFC3339, own.Annotations[annotationIssuedAt]); err == nil {
		c.issuedAt = t
	} else if tok.Status.IssuedAt != nil { // a Secret written before rotation existed
		c.issuedAt = tok.Status.IssuedAt.Time
	}
	var ok bool
	if c.rotation, ok = own.Annotations[annotationRotation]; !ok {
		c.rotation = tok.Status.Rotation
	}
	if !rotationDue(tok, c, now) {
		return c, nil
	}
	token, err := authstore.NewToken()
	if err != nil {
		return nil, err
	}
	c.previous = append(c.previous, previousHash{Hash: authstore.HashToken(c.token), Until: now.Add(overlap(tok)).UTC().Truncate(time.Second)})
	c.token, c.issuedAt, c.rotation = token, now, tok.Annotations[uniregv1.RotateAnnotation]
	return c, nil
}

// rotationDue: the rotate annotation changed since the token was issued, or
// the token is spec.rotation.every old.
func rotationDue(tok *uniregv1.RegistryToken, c *credential, now time.Time) bool {
	if tok.Annotations[uniregv1.RotateAnnotation] != c.rotation {
		return true
	}
	every := rotationEvery(tok)
	return every > 0 && !now.Before(c.issuedAt.Add(every))
}

func rotationEvery(tok *uniregv1.RegistryToken) time.Duration {
	if r := tok.Spec.Rotation; r != nil && r.Every != nil {
		return r.Every.Duration
	}
	return 0
}

func overlap(tok *uniregv1.RegistryToken) time.Duration {
	if r := tok.Spec.Rotation; r != nil && r.Overlap != nil {
		return r.Overlap.Duration
	}
	return defaultOverlap
}

// nextChange is when the credential changes by itself: the next scheduled
// rotation or the end of an overlap; zero when never.
func nextChange(tok *uniregv1.RegistryToken, c *credential) time.Time {
	var next time.Time
	if every := rotationEvery(tok); every > 0 && tok.Spec.SecretRef == nil {
		next = c.issuedAt.Add(every)
	}
	for _, p := range c.previous {
		if next.IsZero() || p.Until.Before(next) {
			next = p.Until
		}
	}
	return next
}

// previousHashes reads annotationPreviousHashes; a value that does not
// parse is none (the operator wrote it, so nothing is lost but an overlap).
func previousHashes(s *corev1.Secret) []previousHash {
	var out []previousHash
	if v := s.Annotations[annotationPreviousHashes]; v != "" {
		if err := json.Unmarshal([]byte(v), &out); err != nil {
			return nil
		}
	}
	return out
}

// livePrevious are the previous hashes still in their overlap at now.
func livePrevious(s *corev1.Secret, now time.Time) []previousHash {
	var out []previousHash
	for _, p := range previousHashes(s) {
		if now.Before(p.Until) {
			out = append(out, p)
		}
	}
	return out
}

// setRotationAnnotations records c on the token's Secret.
func setRotationAnnotations(s *corev1.Secret, c *credential, generated bool) {
	delete(s.Annotations, annotationPreviousHashes)
	if len(c.previous) > 0 {
		sort.Slice(c.previous, func(i, j int) bool { return c.previous[i].Until.Before(c.previous[j].Until) })
		b, _ := json.Marshal(c.previous)
		s.Annotations[annotationPreviousHashes] = string(b)
	}
	s.Annotations[annotationIssuedAt] = c.issuedAt.UTC().Format(time.RFC3339)
	if generated {
		s.Annotations[annotationRotation] = c.rotation
	} else {
		delete(s.Annotations, annotationRotation)
	}
}
