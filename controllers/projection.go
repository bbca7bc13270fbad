package controllers

import (
	"context"
	"fmt"
	"sort"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	"sigs.k8s.io/controller-runtime/pkg/client"

	uniregv1 "github.com/unireg/unireg/api/v1alpha1"
	"github.com/unireg/unireg/registry/authstore"
)

// projection is the auth store of the Registry's tokens, and the tokens
// left out of it: a later token holding the same token as an earlier one
// (projectedBefore decides, as the token controller does), and an entry the
// server's parser refuses.
func (r *RegistryReconciler) projection(ctx context.Context, reg *uniregv1.Registry) (*authstore.File, []string, time.Time, error) {
	var tokens uniregv1.RegistryTokenList
	if err := r.List(ctx, &tokens, client.InNamespace(reg.Namespace), client.MatchingFields{indexRegistryRef: reg.Name}); err != nil {
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
		var expires *time.Time
		if t.Status.ExpiresAt != nil {
			e := t.Status.ExpiresAt.Time
			if !now.Before(e) {
				continue
			}
			expires = &e
			if next.IsZero() || e.Before(next) {
				next = e
			}
		}
		hash, err := projectedHash(ctx, r.Client, t)
		if err != nil {
			return nil, nil, time.Time{}, err
		}
		if hash == "" {
			continue
		}
		scopes, err := tokenScopes(ctx, r.Client, t)
		if err != nil {
			continue // a missing RegistryScope: the token controller marks it not Ready
		}
		name := t.Namespace + "/" + t.Name
		if first, taken := holders[hash]; taken {
			leftOut = append(leftOut, fmt.Sprintf("%s (the same token as %s)", name, first))
			continue
		}
		entry := authstore.Token{Hash: hash, User: tokenUser(t), Scopes: scopes, ExpiresAt: expires}
		if err := checkEntry(entry); err != nil {
			leftOut = append(leftOut, fmt.Sprintf("%s (%v)", name, err))
			continue
		}
		holders[hash] = name
		file.Tokens = append(file.Tokens, entry)
	}
	sort.Slice(file.Tokens, func(i, j int) bool { return file.Tokens[i].Hash < file.Tokens[j].Hash })
	return file, leftOut, next, nil
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
