package controllers

import (
	"fmt"
	"sort"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	uniregv1 "github.com/unireg/unireg/api/v1alpha1"
	"github.com/unireg/unireg/registry/auth"
	"github.com/unireg/unireg/registry/authstore"
)

// projection is the auth store of a Registry's tokens, of every namespace,
// and the tokens left out of it with why: a later token holding the same
// token as an earlier one (projectedBefore decides, as the token controller
// does), and an entry the server's parser refuses. next is the earliest
// expiry to come. It reads nothing: the auth-store controller gathers the
// inputs (projectionInputs).
//
// A token is projected when it is projectable at now and has resolved
// scopes: the gatherer resolves them only for a token whose RegistryScopes
// exist and parse and that passes the Registry's tokenPolicy now, not on the
// word of a Ready condition written before the policy changed; the token
// controller marks the others not Ready. hashes are the ones each token's
// Secret holds (projectedHashes): a token in its rotation overlap is
// projected once per hash, the previous one expiring at the overlap's end.
func projection(tokens []uniregv1.RegistryToken, hashes map[types.NamespacedName][]projected, scopes map[types.NamespacedName][]string, now time.Time) (file *authstore.File, leftOut []string, next time.Time) {
	items := append([]uniregv1.RegistryToken(nil), tokens...)
	sort.Slice(items, func(i, j int) bool { return projectedBefore(&items[i], &items[j]) })
	holders := map[string]string{} // hash -> the token projected with it
	file = &authstore.File{Version: authstore.Version, Tokens: []authstore.Token{}}
	for i := range items {
		t := &items[i]
		key := client.ObjectKeyFromObject(t)
		tokenScopes, resolved := scopes[key]
		if !projectable(t, now) || !resolved {
			continue
		}
		name := t.Namespace + "/" + t.Name
		for _, h := range hashes[key] {
			expires := earliest(h.until, t.Status.ExpiresAt)
			if expires != nil && !now.Before(*expires) {
				continue
			}
			if first, taken := holders[h.hash]; taken {
				leftOut = append(leftOut, fmt.Sprintf("%s (the same token as %s)", name, first))
				continue
			}
			entry := authstore.Token{Hash: h.hash, User: tokenUser(t), Scopes: tokenScopes, ExpiresAt: expires}
			if err := checkEntry(entry); err != nil {
				leftOut = append(leftOut, fmt.Sprintf("%s (%v)", name, err))
				continue
			}
			holders[h.hash] = name
			file.Tokens = append(file.Tokens, entry)
			if expires != nil && (next.IsZero() || expires.Before(next)) {
				next = *expires
			}
		}
	}
	sort.Slice(file.Tokens, func(i, j int) bool { return file.Tokens[i].Hash < file.Tokens[j].Hash })
	return file, leftOut, next
}

// projectedBefore orders the tokens of a Registry: by creation, then
// namespace and name. When two hold the same token the earlier one is
// projected and the later one is a DuplicateToken, whatever order they are
// reconciled in.
func projectedBefore(a, b *uniregv1.RegistryToken) bool {
	if !a.CreationTimestamp.Equal(&b.CreationTimestamp) {
		return a.CreationTimestamp.Before(&b.CreationTimestamp)
	}
	if a.Namespace != b.Namespace {
		return a.Namespace < b.Namespace
	}
	return a.Name < b.Name
}

// projected is one hash a token puts in its Registry's auth store, and
// until when: nil for the current token, the end of its overlap for a
// token rotation replaced.
type projected struct {
	hash  string
	until *time.Time
}

// projectable: the token is Ready, has its Secret and has not expired at
// now. Only such a token's scopes and hashes are worth gathering.
func projectable(t *uniregv1.RegistryToken, now time.Time) bool {
	if !meta.IsStatusConditionTrue(t.Status.Conditions, uniregv1.ConditionReady) || t.Status.SecretName == "" {
		return false
	}
	return t.Status.ExpiresAt == nil || now.Before(t.Status.ExpiresAt.Time)
}

// earliest is the earlier of two optional times, nil when both are.
func earliest(a *time.Time, b *metav1.Time) *time.Time {
	switch {
	case b == nil:
		return a
	case a == nil || b.Time.Before(*a):
		t := b.Time
		return &t
	}
	return a
}

// checkEntry asks the server's parser (scopes included) about one entry
// alone, so an entry it would refuse is left out instead of taking the
// whole store down with it.
func checkEntry(t authstore.Token) error {
	body, err := authstore.Marshal(&authstore.File{Version: authstore.Version, Tokens: []authstore.Token{t}})
	if err != nil {
		return err
	}
	_, err = auth.ParseAuthStore(body)
	return err
}
