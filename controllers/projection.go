package controllers

import (
	"context"
	"fmt"
	"sort"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	uniregv1 "github.com/unireg/unireg/api/v1alpha1"
	"github.com/unireg/unireg/registry/authstore"
)

// projection is the auth store of the Registry's tokens, of every
// namespace, and the tokens left out of it: a later token holding the same
// token as an earlier one (projectedBefore decides, as the token controller
// does), and an entry the server's parser refuses. A token is projected
// only when it passes the Registry's tokenPolicy now (policyRefusal), not on
// the word of a Ready condition written before the policy changed; a token
// in its rotation overlap is projected once per hash, the previous one
// expiring at the overlap's end. next is the earliest expiry to come.
func (r *RegistryReconciler) projection(ctx context.Context, reg *uniregv1.Registry) (*authstore.File, []string, time.Time, error) {
	var tokens uniregv1.RegistryTokenList
	if err := r.List(ctx, &tokens, client.MatchingFields{indexRegistryRef: registryRefKey(client.ObjectKeyFromObject(reg))}); err != nil {
		return nil, nil, time.Time{}, err
	}
	items := tokens.Items
	sort.Slice(items, func(i, j int) bool { return projectedBefore(&items[i], &items[j]) })
	now := r.now()
	var next time.Time
	var leftOut []string
	holders := map[string]string{} // hash -> the token projected with it
	file := &authstore.File{Version: authstore.Version, Tokens: []authstore.Token{}}
	for i := range items {
		t := &items[i]
		if !meta.IsStatusConditionTrue(t.Status.Conditions, uniregv1.ConditionReady) || t.Status.SecretName == "" {
			continue
		}
		if t.Status.ExpiresAt != nil && !now.Before(t.Status.ExpiresAt.Time) {
			continue
		}
		scopes, err := tokenScopes(ctx, r.Client, t)
		if err != nil {
			continue // a missing or invalid RegistryScope: the token controller marks it not Ready
		}
		if refused, err := policyRefusal(ctx, r.Client, reg, t, scopes); err != nil {
			return nil, nil, time.Time{}, err
		} else if refused != nil {
			continue // the token controller marks it not Ready
		}
		hashes, err := projectedHashes(ctx, r.Client, t)
		if err != nil {
			return nil, nil, time.Time{}, err
		}
		name := t.Namespace + "/" + t.Name
		for _, h := range hashes {
			expires := earliest(h.until, t.Status.ExpiresAt)
			if expires != nil && !now.Before(*expires) {
				continue
			}
			if first, taken := holders[h.hash]; taken {
				leftOut = append(leftOut, fmt.Sprintf("%s (the same token as %s)", name, first))
				continue
			}
			entry := authstore.Token{Hash: h.hash, User: tokenUser(t), Scopes: scopes, ExpiresAt: expires}
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
	return file, leftOut, next, nil
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

// checkEntry asks the server's parser about one entry alone, so an entry it
// would refuse is left out instead of taking the whole store down with it.
func checkEntry(t authstore.Token) error {
	body, err := authstore.Marshal(&authstore.File{Version: authstore.Version, Tokens: []authstore.Token{t}})
	if err != nil {
		return err
	}
	_, err = authstore.Parse(body)
	return err
}
