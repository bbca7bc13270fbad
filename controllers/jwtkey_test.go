package controllers

import (
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	uniregv1 "github.com/unireg/unireg/api/v1alpha1"
)

// jwtKeys are the lines of a Registry's key Secret: the signing key first.
func jwtKeys(ns, reg string) ([]string, error) {
	s := &corev1.Secret{}
	if err := get(ns, reg+"-jwt", s); err != nil {
		return nil, err
	}
	return strings.Fields(string(s.Data[keyJWT])), nil
}

func waitJWTKeys(t *testing.T, ns, reg, what string, cond func([]string) bool) []string {
	t.Helper()
	var keys []string
	eventually(t, what, func() (bool, error) {
		var err error
		keys, err = jwtKeys(ns, reg)
		return err == nil && cond(keys), err
	})
	return keys
}

// wake makes the Registry reconcile now, as its requeue would at the time
// the fake clock was moved to.
func wake(t *testing.T, ns, name string, n int) {
	t.Helper()
	reg := &uniregv1.Registry{}
	update(t, ns, name, reg, func() { reg.SetLabels(map[string]string{"test/wake": string(rune('a' + n))}) })
}

// A rotation in three steps, so that no replica ever meets a JWT signed by
// a key it does not have yet: the new key first verifies only, then signs
// with the previous one verifying, and the previous one goes once every JWT
// it signed has expired.
func TestJWTKeyRotationKeepsThePreviousKeyUntilItsJWTsExpire(t *testing.T) {
	ns := namespace(t)
	start := clock.Now()
	defer clock.Set(start)
	create(t, &uniregv1.Registry{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "reg"}})
	first := waitJWTKeys(t, ns, "reg", "key Secret", func(k []string) bool { return len(k) == 1 })[0]

	reg := &uniregv1.Registry{}
	update(t, ns, "reg", reg, func() { reg.SetAnnotations(map[string]string{uniregv1.RotateJWTKeyAnnotation: "2026-12"}) })
	keys := waitJWTKeys(t, ns, "reg", "the new key added, verify-only", func(k []string) bool { return len(k) == 2 })
	if keys[0] != first || len(keys[1]) != 64 || keys[1] == first {
		t.Fatalf("keys = %v; want the current key still signing, then a new 64-hex key", keys)
	}
	next := keys[1]
	eventually(t, "status.jwtKeyRotation", func() (bool, error) {
		err := get(ns, "reg", reg)
		return reg.Status.JWTKeyRotation == "2026-12", err
	})

	clock.Set(start.Add(jwtKeyPropagation + time.Second))
	wake(t, ns, "reg", 1)
	waitJWTKeys(t, ns, "reg", "the new key signs, the previous verifies", func(k []string) bool {
		return slices.Equal(k, []string{next, first})
	})

	// Not before the previous key's last JWTs have expired.
	clock.Set(start.Add(jwtKeyPropagation + maxJWTTTL))
	wake(t, ns, "reg", 2)
	time.Sleep(time.Second)
	if keys, _ := jwtKeys(ns, "reg"); !slices.Equal(keys, []string{next, first}) {
		t.Fatalf("keys = %v before the previous key's JWTs expired; want both", keys)
	}
	clock.Set(start.Add(2*jwtKeyPropagation + maxJWTTTL + jwtKeyMargin + 2*time.Second))
	wake(t, ns, "reg", 3)
	waitJWTKeys(t, ns, "reg", "the previous key dropped", func(k []string) bool { return slices.Equal(k, []string{next}) })

	// The same annotation value again rotates nothing.
	wake(t, ns, "reg", 4)
	time.Sleep(time.Second)
	if keys, _ := jwtKeys(ns, "reg"); !slices.Equal(keys, []string{next}) {
		t.Fatalf("keys = %v after a reconcile with an unchanged annotation", keys)
	}
}
