package controllers

import (
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	uniregv1 "github.com/unireg/unireg/api/v1alpha1"
	"github.com/unireg/unireg/registry/authstore"
)

// storeExpiry is the expiry of the store entry with hash, and whether
// there is one.
func storeExpiry(ns, reg, hash string) (*time.Time, bool, error) {
	f, err := tryAuthStore(ns, reg)
	if err != nil {
		return nil, false, err
	}
	for _, e := range f.Tokens {
		if e.Hash == hash {
			return e.ExpiresAt, true, nil
		}
	}
	return nil, false, nil
}

// touch makes an object reconcile now rather than at its real-time requeue
// (the tests move the controllers' clock, not the real one).
func touch(t *testing.T, ns, name string, obj client.Object, value string) {
	t.Helper()
	update(t, ns, name, obj, func() { setAnnotation(obj, "test/touch", value) })
}

func setAnnotation(o client.Object, k, v string) {
	a := o.GetAnnotations()
	if a == nil {
		a = map[string]string{}
	}
	a[k] = v
	o.SetAnnotations(a)
}

func TestRotationKeepsThePreviousTokenForTheOverlap(t *testing.T) {
	ns := namespace(t)
	start := clock.Now()
	defer clock.Set(start)
	create(t, &uniregv1.Registry{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "reg"}})
	spec := tokenSpec("oci:repository:app/*:push")
	spec.Rotation = &uniregv1.TokenRotation{Every: &metav1.Duration{Duration: 24 * time.Hour}}
	create(t, &uniregv1.RegistryToken{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "ci"}, Spec: spec})
	waitReason(t, ns, "ci", uniregv1.ReasonIssued)
	first := tokenHash(t, ns, "ci-token")
	storeHolds(t, ns, "reg", map[string]string{first: "ci"})

	// On demand: a new token in the Secret, the old one still works for the
	// overlap (1h by default), and the server is told when it stops.
	tok := &uniregv1.RegistryToken{}
	update(t, ns, "ci", tok, func() { setAnnotation(tok, uniregv1.RotateAnnotation, "2030-01-01") })
	var second string
	eventually(t, "a new token in the Secret", func() (bool, error) {
		s := &corev1.Secret{}
		err := get(ns, "ci-token", s)
		second = authstore.HashToken(string(s.Data[keyToken]))
		return err == nil && second != first, err
	})
	storeHolds(t, ns, "reg", map[string]string{first: "ci", second: "ci"})
	until, _, err := storeExpiry(ns, "reg", first)
	if err != nil || until == nil || until.Before(start.Add(59*time.Minute)) || until.After(start.Add(61*time.Minute)) {
		t.Fatalf("the previous token expires at %v (%v), want about %v", until, err, start.Add(time.Hour))
	}
	if e, _, _ := storeExpiry(ns, "reg", second); e != nil {
		t.Fatalf("the new token expires at %v, want never", e)
	}
	s := &corev1.Secret{}
	if err := get(ns, "ci-token", s); err != nil {
		t.Fatal(err)
	}
	for k, v := range s.Annotations {
		if strings.Contains(v, string(s.Data[keyToken])) {
			t.Fatalf("annotation %s holds the raw token", k)
		}
	}
	eventually(t, "status records the rotation", func() (bool, error) {
		err := get(ns, "ci", tok)
		return tok.Status.Rotation == "2030-01-01" && tok.Status.IssuedAt != nil, err
	})

	// After the overlap the previous token is gone.
	clock.Set(start.Add(2 * time.Hour))
	touch(t, ns, "ci", &uniregv1.RegistryToken{}, "1")
	touch(t, ns, "reg", &uniregv1.Registry{}, "1")
	storeHolds(t, ns, "reg", map[string]string{second: "ci"})

	// On schedule: spec.rotation.every after the last issue.
	clock.Set(start.Add(25 * time.Hour))
	touch(t, ns, "ci", &uniregv1.RegistryToken{}, "2")
	var third string
	eventually(t, "rotated on schedule", func() (bool, error) {
		s := &corev1.Secret{}
		err := get(ns, "ci-token", s)
		third = authstore.HashToken(string(s.Data[keyToken]))
		return err == nil && third != second, err
	})
	storeHolds(t, ns, "reg", map[string]string{second: "ci", third: "ci"})
	time.Sleep(time.Second) // no second rotation follows the first
	if h := tokenHash(t, ns, "ci-token"); h != third {
		t.Fatalf("rotated twice: %s, then %s", third, h)
	}
}
