package controllers

import (
	"context"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	uniregv1 "github.com/unireg/unireg/api/v1alpha1"
)

// A token of a Registry's own namespace cannot take the user of another
// namespace's token (<namespace>/<name>): with it, it could list and revoke
// that tenant's npm tokens.
func TestOwnNamespaceTokenCannotActAsAnotherNamespacesToken(t *testing.T) {
	ns := namespace(t)
	spec := tokenSpec("oci:repository:app:pull")
	spec.User = "team-a/ci"
	err := k8sClient.Create(context.Background(), &uniregv1.RegistryToken{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "impostor"}, Spec: spec})
	wantInvalid(t, err, "spec.user cannot contain '/'")

	// An object stored before the rule existed is refused by the controller.
	reg := &uniregv1.Registry{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "reg"}}
	tok := &uniregv1.RegistryToken{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "impostor"}, Spec: spec}
	refused, err := admission(context.Background(), k8sClient, reg, tok)
	if err != nil || refused == nil || refused.reason != uniregv1.ReasonUserNotAllowed {
		t.Fatalf("admission of a same-namespace token with user %q: %v, %v; want %s", spec.User, refused, err, uniregv1.ReasonUserNotAllowed)
	}
	spec.User = "release-bot"
	if refused, err := admission(context.Background(), k8sClient, reg, &uniregv1.RegistryToken{ObjectMeta: tok.ObjectMeta, Spec: spec}); refused != nil || err != nil {
		t.Fatalf("a plain user is refused: %v, %v", refused, err)
	}
}
