package k8ssecret

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/unireg/unireg/registry/auth"
	"github.com/unireg/unireg/registry/authstore"
)

// TestWatchAppliesSecretChangesWithinSeconds runs against a real API server
// (envtest): tokens added and removed in the Secret apply at once, a broken
// version keeps the previous tokens.
func TestWatchAppliesSecretChangesWithinSeconds(t *testing.T) {
	if os.Getenv("KUBEBUILDER_ASSETS") == "" {
		t.Skip("KUBEBUILDER_ASSETS is not set: run `make test` (hack/build-envtest.sh builds etcd and kube-apiserver)")
	}
	env := &envtest.Environment{}
	cfg, err := env.Start()
	if err != nil {
		t.Fatal(err)
	}
	defer env.Stop()
	cs := kubernetes.NewForConfigOrDie(cfg)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	tokA, _ := authstore.NewToken()
	tokB, _ := authstore.NewToken()
	file := func(tokens ...string) []byte {
		f := &authstore.File{Version: 1}
		for _, tk := range tokens {
			f.Tokens = append(f.Tokens, authstore.Token{Hash: authstore.HashToken(tk), User: "u", Scopes: []string{"*"}})
		}
		b, _ := authstore.Marshal(f)
		return b
	}
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "reg-auth"}, Data: map[string][]byte{Key: file(tokA)}}
	if _, err := cs.CoreV1().Secrets("default").Create(ctx, secret, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	store := auth.NewTokenStore(auth.TokenStoreOptions{})
	if !errors.Is(store.Err(), auth.ErrNotLoaded) {
		t.Fatalf("a new store reports %v, want ErrNotLoaded", store.Err())
	}
	if err := Watch(ctx, cfg, "default", "reg-auth", store, slog.New(slog.DiscardHandler)); err != nil {
		t.Fatal(err)
	}
	works := func(tok string) bool {
		_, err := store.Authenticate(ctx, auth.Credentials{Password: tok})
		return err == nil
	}
	if !works(tokA) || works(tokB) || store.Err() != nil {
		t.Fatalf("after the first sync: A %v, B %v, err %v", works(tokA), works(tokB), store.Err())
	}
	update := func(data []byte) {
		t.Helper()
		s, err := cs.CoreV1().Secrets("default").Get(ctx, "reg-auth", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		s.Data[Key] = data
		if _, err := cs.CoreV1().Secrets("default").Update(ctx, s, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	within := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("%s: not within 5s", what)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	update(file(tokB)) // A revoked, B issued
	within("A revoked and B accepted", func() bool { return !works(tokA) && works(tokB) })

	update([]byte("version: 1\ntokens: [broken"))
	within("the broken version reported", func() bool { return store.Err() != nil })
	if !works(tokB) {
		t.Fatal("a broken version dropped the tokens in force")
	}
	update(file(tokA))
	within("recovered", func() bool { return store.Err() == nil && works(tokA) && !works(tokB) })
}
