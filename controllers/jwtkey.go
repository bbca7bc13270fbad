package controllers

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	uniregv1 "github.com/unireg/unireg/api/v1alpha1"
	"github.com/unireg/unireg/registry/auth"
)

// The timing of a JWT key rotation (reconcileJWTKey).
const (
	// jwtKeyPropagation is how long a change of the key Secret may take to
	// reach every pod: the kubelet refreshes a Secret volume at its sync
	// period (1 min by default) plus its cache's TTL.
	jwtKeyPropagation = 2 * time.Minute
	// maxJWTTTL is the longest life of a JWT the registry issues: its
	// --token-ttl default, which the operator does not change.
	maxJWTTTL = 5 * time.Minute
	// jwtKeyMargin covers clock skew between the nodes.
	jwtKeyMargin = time.Minute
)

// Annotations of the key Secret: the rotation under way and its next step.
const (
	// annotationJWTKeyRotation is the unireg.dev/rotate-jwt-key value the
	// keys were made for; status.jwtKeyRotation mirrors it.
	annotationJWTKeyRotation = "unireg.dev/jwt-key-rotation"
	// annotationJWTKeyPromoteAt: the new key (second line) verifies only
	// until then, when it starts signing.
	annotationJWTKeyPromoteAt = "unireg.dev/jwt-key-promote-at"
	// annotationJWTKeyDropAt: the previous key (second line) verifies
	// until then, when the JWTs it signed have all expired.
	annotationJWTKeyDropAt = "unireg.dev/jwt-key-drop-at"
)

// reconcileJWTKey creates the JWT signing key once, and rotates it when the
// Registry's unireg.dev/rotate-jwt-key annotation takes a new value. The key
// Secret holds the server's key file (one key per line, the first signs,
// see docs/config.md), and a rotation takes three steps so that no pod ever
// meets a JWT signed by a key it does not have yet, nor loses one it still
// needs:
//
//  1. the new key is added after the current one: every pod verifies it
//     before any signs with it (jwtKeyPropagation);
//  2. the lines swap: the new key signs, the previous one verifies the JWTs
//     it signed until the last of them has expired (pods still signing
//     with it until they see the swap, plus maxJWTTTL and a margin);
//  3. the previous key goes.
//
// It returns when the next step is due. A key Secret this Registry does not
// control is a conflict, never its key and never changed: whoever may
// create Secrets could otherwise plant the key of a future Registry and
// forge its JWTs.
func (r *RegistryReconciler) reconcileJWTKey(ctx context.Context, reg *uniregv1.Registry) (time.Time, error) {
	wanted := reg.Annotations[uniregv1.RotateJWTKeyAnnotation]
	s := &corev1.Secret{}
	err := r.Get(ctx, types.NamespacedName{Namespace: reg.Namespace, Name: jwtSecretName(reg)}, s)
	if apierrors.IsNotFound(err) {
		return time.Time{}, r.createJWTKey(ctx, reg, wanted)
	}
	if err != nil {
		return time.Time{}, err
	}
	if err := mustControl(reg, s, "Secret"); err != nil {
		return time.Time{}, err
	}
	defer func() { reg.Status.JWTKeyRotation = s.Annotations[annotationJWTKeyRotation] }()
	sign, verify, err := auth.ParseJWTKeyFile(s.Data[keyJWT])
	if err != nil {
		return time.Time{}, fmt.Errorf("key Secret %s: %w", s.Name, err)
	}
	keys := append([]string{string(sign)}, toStrings(verify)...)
	now := r.now()
	want := s.DeepCopy()
	if want.Annotations == nil {
		want.Annotations = map[string]string{}
	}
	var next time.Time
	var step string
	switch promote, drop := want.Annotations[annotationJWTKeyPromoteAt], want.Annotations[annotationJWTKeyDropAt]; {
	case promote != "":
		at, err := time.Parse(time.RFC3339, promote)
		if err == nil && now.Before(at) {
			return at, nil
		}
		if len(keys) > 1 {
			keys[0], keys[1] = keys[1], keys[0]
		}
		next = now.Add(jwtKeyPropagation + maxJWTTTL + jwtKeyMargin)
		delete(want.Annotations, annotationJWTKeyPromoteAt)
		want.Annotations[annotationJWTKeyDropAt] = next.UTC().Format(time.RFC3339)
		step = "the new JWT key signs; the previous one verifies until " + want.Annotations[annotationJWTKeyDropAt]
	case drop != "":
		at, err := time.Parse(time.RFC3339, drop)
		if err == nil && now.Before(at) {
			return at, nil
		}
		keys = keys[:1]
		delete(want.Annotations, annotationJWTKeyDropAt)
		step = "the previous JWT key is dropped: its JWTs have expired"
	case wanted != "" && wanted != want.Annotations[annotationJWTKeyRotation]:
		// A rotation asked for while one is under way starts once it ends
		// (the cases above come first).
		key, err := newJWTKey()
		if err != nil {
			return time.Time{}, err
		}
		keys = []string{keys[0], key}
		next = now.Add(jwtKeyPropagation)
		want.Annotations[annotationJWTKeyRotation] = wanted
		want.Annotations[annotationJWTKeyPromoteAt] = next.UTC().Format(time.RFC3339)
		step = fmt.Sprintf("rotating the JWT key (%s=%q): a new key verifies, and signs from %s", uniregv1.RotateJWTKeyAnnotation, wanted, want.Annotations[annotationJWTKeyPromoteAt])
	default:
		return time.Time{}, nil
	}
	want.Data = map[string][]byte{keyJWT: []byte(strings.Join(keys, "\n") + "\n")}
	if err := r.Update(ctx, want, client.FieldOwner(fieldOwner)); err != nil {
		return time.Time{}, err
	}
	s = want
	r.Recorder.Event(reg, corev1.EventTypeNormal, uniregv1.ReasonJWTKeyRotation, step)
	return next, nil
}

// createJWTKey makes the key Secret with one new key, recorded as made for
// the rotation value the Registry has now: a new Registry rotates nothing.
func (r *RegistryReconciler) createJWTKey(ctx context.Context, reg *uniregv1.Registry, rotation string) error {
	key, err := newJWTKey()
	if err != nil {
		return err
	}
	s := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: reg.Namespace, Name: jwtSecretName(reg), Labels: commonLabels(reg)},
		Data:       map[string][]byte{keyJWT: []byte(key + "\n")},
	}
	if rotation != "" {
		s.Annotations = map[string]string{annotationJWTKeyRotation: rotation}
	}
	if err := controllerutil.SetControllerReference(reg, s, r.Scheme); err != nil {
		return err
	}
	if err := createOnly(ctx, r.Client, s, "Secret"); err != nil {
		return err
	}
	reg.Status.JWTKeyRotation = rotation
	return nil
}

// newJWTKey is 32 random bytes in hex: the server's HMAC key is the text.
func newJWTKey() (string, error) {
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return "", err
	}
	return hex.EncodeToString(key), nil
}

func toStrings(b [][]byte) []string {
	out := make([]string, len(b))
	for i, v := range b {
		out[i] = string(v)
	}
	return out
}
