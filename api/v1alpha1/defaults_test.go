package v1alpha1_test

import (
	"os"
	"path/filepath"
	"testing"

	"sigs.k8s.io/yaml"

	"github.com/unireg/unireg/registry/npm"
)

// The CRD's defaults say what the server's defaults say, so a Registry
// without spec.npm serves npm where the server's docs and the clients'
// .npmrc expect it. (CRD markers cannot name Go constants: this test ties
// them together.)
func TestCRDDefaultsAreTheServers(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "..", "config", "crd", "bases", "unireg.dev_registries.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var crd struct {
		Spec struct {
			Versions []struct {
				Schema struct {
					OpenAPIV3Schema struct {
						Properties struct {
							Spec struct {
								Properties struct {
									NPM struct {
										Properties struct {
											PathPrefix struct {
												Default string `json:"default"`
											} `json:"pathPrefix"`
										} `json:"properties"`
									} `json:"npm"`
								} `json:"properties"`
							} `json:"spec"`
						} `json:"properties"`
					} `json:"openAPIV3Schema"`
				} `json:"schema"`
			} `json:"versions"`
		} `json:"spec"`
	}
	if err := yaml.Unmarshal(b, &crd); err != nil {
		t.Fatal(err)
	}
	if len(crd.Spec.Versions) == 0 {
		t.Fatal("the Registry CRD has no versions")
	}
	for _, v := range crd.Spec.Versions {
		if got := v.Schema.OpenAPIV3Schema.Properties.Spec.Properties.NPM.Properties.PathPrefix.Default; got != npm.DefaultPrefix {
			t.Errorf("spec.npm.pathPrefix defaults to %q in the CRD, the server to %q", got, npm.DefaultPrefix)
		}
	}
}
