package controllers

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"
)

// TestSamplesApplyCleanly creates every object of config/samples on the real
// API server: the examples users copy must pass validation.
func TestSamplesApplyCleanly(t *testing.T) {
	ns := namespace(t)
	files, err := filepath.Glob(filepath.Join("..", "config", "samples", "unireg_*.yaml"))
	if err != nil || len(files) != 3 {
		t.Fatalf("samples: %v %v", files, err)
	}
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		obj := &unstructured.Unstructured{}
		if err := yaml.Unmarshal(raw, &obj.Object); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		obj.SetNamespace(ns)
		if err := k8sClient.Create(context.Background(), obj); err != nil {
			t.Fatalf("%s does not apply: %v", filepath.Base(f), err)
		}
	}
	eventually(t, "the sample token is projected into the sample registry", func() (bool, error) {
		n, err := projectedTokens(ns, "registry-sample")()
		return n == 1, err
	})
}
