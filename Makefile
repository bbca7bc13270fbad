# unireg — see README.md. `make run` starts a registry on 127.0.0.1:5000 with
# data in ./data; `make test` runs every test, including the OCI conformance
# suite against a freshly started server.

GO        ?= go
BIN       := $(CURDIR)/bin
LISTEN    ?= 127.0.0.1:5000
DATA_DIR  ?= ./data

.PHONY: all
all: build

.PHONY: build
build: ## Build bin/registry and bin/manager.
	$(GO) build -o $(BIN)/registry ./cmd/registry
	$(GO) build -o $(BIN)/manager ./cmd/manager

## Operator (kubebuilder conventions).

CONTROLLER_GEN ?= $(BIN)/controller-gen
CONTROLLER_TOOLS_VERSION ?= v0.23.0
KUBECTL ?= kubectl
# Images are tagged with the version; `make images` writes them as OCI
# archives into bin/images (no Docker needed).
VERSION      ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
IMG          ?= docker.io/unireg/manager:$(VERSION)
REGISTRY_IMG ?= docker.io/unireg/registry:$(VERSION)

$(CONTROLLER_GEN):
	GOBIN=$(BIN) $(GO) install sigs.k8s.io/controller-tools/cmd/controller-gen@$(CONTROLLER_TOOLS_VERSION)

.PHONY: manifests
manifests: $(CONTROLLER_GEN) ## Generate CRDs and RBAC into config/.
	$(CONTROLLER_GEN) rbac:roleName=manager-role crd paths="./api/...;./controllers/..." output:crd:artifacts:config=config/crd/bases output:rbac:artifacts:config=config/rbac

.PHONY: generate
generate: $(CONTROLLER_GEN) ## Generate the deepcopy code of api/.
	$(CONTROLLER_GEN) object:headerFile="hack/boilerplate.go.txt" paths="./api/..."

.PHONY: check-generated
check-generated: manifests generate ## Fail when generated files are stale.
	@git diff --exit-code --stat -- api config || { echo "generated files are stale: run make manifests generate and commit"; exit 1; }

.PHONY: envtest
envtest: ## Build etcd and kube-apiserver from source for envtest (bin/k8s).
	@hack/build-envtest.sh >/dev/null

.PHONY: run-manager
run-manager: ## Run the operator against the current KUBECONFIG.
	$(GO) run ./cmd/manager --registry-image=$${REGISTRY_IMAGE:-unireg/registry:latest}

.PHONY: install
install: manifests ## Install the CRDs into the current cluster.
	$(KUBECTL) apply -k config/crd

.PHONY: uninstall
uninstall: ## Remove the CRDs, and with them every Registry, RegistryToken and RegistryScope of the cluster.
	@echo "uninstall: deleting the unireg CRDs deletes every Registry, RegistryToken and RegistryScope in the cluster,"
	@echo "  and through owner references their Deployments, Services, token and key Secrets, and the data of"
	@echo "  Registries with reclaimPolicy Delete (retained claims stay)."
	$(KUBECTL) delete -k config/crd

# config/default names unireg/manager:latest and passes
# --registry-image=unireg/registry:latest (placeholders the e2e suite
# replaces too); what is deployed or shipped names $(IMG) and $(REGISTRY_IMG).
PIN_IMAGES := sed -e 's|unireg/manager:latest|$(IMG)|' -e 's|--registry-image=unireg/registry:latest|--registry-image=$(REGISTRY_IMG)|'

.PHONY: deploy
deploy: manifests ## Deploy the operator (config/default) with images $(IMG) and $(REGISTRY_IMG) into the current cluster.
	$(KUBECTL) kustomize config/default | $(PIN_IMAGES) | $(KUBECTL) apply -f -

.PHONY: build-installer
build-installer: manifests ## Write dist/install.yaml: the CRDs and the operator in one file, images pinned to $(VERSION).
	mkdir -p dist
	$(KUBECTL) kustomize config/default | $(PIN_IMAGES) > dist/install.yaml.tmp
	@if grep -n ':latest' dist/install.yaml.tmp; then echo "dist/install.yaml would name a :latest image"; rm -f dist/install.yaml.tmp; exit 1; fi
	mv dist/install.yaml.tmp dist/install.yaml
	@echo "dist/install.yaml: $(IMG), $(REGISTRY_IMG)"

.PHONY: undeploy
undeploy: ## Remove the operator (config/undeploy: config/default without the CRDs); Registries and their data stay, unreconciled.
	$(KUBECTL) delete -k config/undeploy --ignore-not-found

.PHONY: images
images: ## Build the registry and manager images (static binaries, non-root) as OCI archives in bin/images.
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "-s -w -X main.version=$(VERSION)" -o $(BIN)/static/ ./cmd/registry ./cmd/manager ./hack/pause
	$(GO) run ./hack/images -version $(VERSION) -out $(BIN)/images \
		$(REGISTRY_IMG)=$(BIN)/static/registry $(IMG)=$(BIN)/static/manager docker.io/unireg/pause:local=$(BIN)/static/pause

## End to end (test/e2e): the operator in a real cluster, see docs/e2e.md.

E2E_KUBECTL ?= $$(hack/build-kube.sh kubectl)/kubectl
LOCAL_CLUSTER := hack/local-cluster/cluster.sh

.PHONY: test-e2e
test-e2e: images client-tools npm-clients minio distribution ## The e2e suite against the cluster in KUBECONFIG (which must already have the images: see test-e2e-local).
	E2E_KUBECTL="$(E2E_KUBECTL)" E2E_REGISTRY_IMAGE=$(REGISTRY_IMG) E2E_MANAGER_IMAGE=$(IMG) \
		$(GO) test -tags e2e -count=1 -timeout 40m -v ./test/e2e/

.PHONY: local-cluster-up
local-cluster-up: images ## Start the local single-node cluster (root; see docs/e2e.md) and load the images.
	$(LOCAL_CLUSTER) up
	$(LOCAL_CLUSTER) import $(BIN)/images/registry.tar $(BIN)/images/manager.tar

.PHONY: local-cluster-down
local-cluster-down: ## Stop the local cluster and remove everything it created.
	$(LOCAL_CLUSTER) down

.PHONY: test-e2e-local
test-e2e-local: local-cluster-up ## Bring the local cluster up, run the e2e suite on it, tear it down.
	KUBECONFIG=$$($(LOCAL_CLUSTER) kubeconfig) E2E_NODE_TRUST="$(CURDIR)/$(LOCAL_CLUSTER) trust" \
		E2E_NODE_HOSTS_DIR=$$($(LOCAL_CLUSTER) hosts-dir) E2E_NODE_CTR="$(CURDIR)/$(LOCAL_CLUSTER) ctr" \
		$(MAKE) test-e2e; rc=$$?; $(LOCAL_CLUSTER) down; exit $$rc

KIND ?= kind
KIND_CLUSTER ?= unireg-e2e

.PHONY: test-e2e-kind
test-e2e-kind: images ## The same on kind, for machines with Docker.
	$(KIND) create cluster --name $(KIND_CLUSTER) --config hack/kind.yaml
	$(KIND) load image-archive --name $(KIND_CLUSTER) $(BIN)/images/registry.tar
	$(KIND) load image-archive --name $(KIND_CLUSTER) $(BIN)/images/manager.tar
	KUBECONFIG=$(CURDIR)/bin/kind.kubeconfig; $(KIND) get kubeconfig --name $(KIND_CLUSTER) > $$KUBECONFIG; \
		E2E_HOST_IP=$$(docker network inspect kind -f '{{(index .IPAM.Config 0).Gateway}}') \
		KUBECONFIG=$$KUBECONFIG E2E_NODE_TRUST="$(CURDIR)/hack/kind-trust.sh $(KIND_CLUSTER)" $(MAKE) test-e2e; \
		rc=$$?; $(KIND) delete cluster --name $(KIND_CLUSTER); exit $$rc

.PHONY: run
run: ## Run the registry on $(LISTEN) with data in $(DATA_DIR).
	$(GO) run ./cmd/registry --listen $(LISTEN) --data-dir $(DATA_DIR)

.PHONY: fmt
fmt: ## gofmt every Go file.
	gofmt -w $$(git ls-files '*.go')

.PHONY: vet
vet: ## go vet.
	$(GO) vet ./...

.PHONY: check-fmt
check-fmt:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

.PHONY: unit
unit: client-tools npm-clients minio envtest conformance-tool distribution ## Go tests (unit, envtest, integration; race detector on).
	KUBEBUILDER_ASSETS="$$(hack/build-envtest.sh)" $(GO) test -race -count=1 ./...

.PHONY: unit-s3
unit-s3: client-tools npm-clients minio distribution build ## The tests that run the real binary (OCI and npm clients, concurrency, 1 GiB memory), on S3 (MinIO).
	hack/with-minio.sh $(GO) test -count=1 ./cmd/registry/

.PHONY: client-tools
client-tools: $(BIN)/oras $(BIN)/crane ## The OCI client CLIs the tests drive (pinned in hack/tools).

$(BIN)/oras: hack/tools/go.mod hack/tools/go.sum
	cd hack/tools && $(GO) build -o $(BIN)/oras oras.land/oras/cmd/oras

$(BIN)/crane: hack/tools/go.mod hack/tools/go.sum
	cd hack/tools && $(GO) build -o $(BIN)/crane github.com/google/go-containerregistry/cmd/crane

.PHONY: npm-clients
npm-clients: ## pnpm, yarn classic and yarn berry for the npm client suite (pinned in hack/npm-clients).
	hack/install-npm-clients.sh

.PHONY: conformance-tool
conformance-tool: $(BIN)/oci-conformance

$(BIN)/oci-conformance: hack/conformance/go.mod hack/conformance/go.sum
	cd hack/conformance && $(GO) build -o $(BIN)/oci-conformance github.com/opencontainers/distribution-spec/conformance

.PHONY: distribution
distribution: $(BIN)/distribution ## CNCF Distribution, the upstream the pull-through cache tests fill from (pinned in hack/distribution).

$(BIN)/distribution: hack/distribution/go.mod hack/distribution/go.sum
	cd hack/distribution && $(GO) build -o $(BIN)/distribution github.com/distribution/distribution/v3/cmd/registry

.PHONY: minio
minio: ## The MinIO server the S3 tests run against (built from the Go module proxy into tools/bin).
	hack/install-minio.sh

.PHONY: conformance
conformance: build conformance-tool minio ## OCI conformance suite, every toggle on: token auth and anonymous, on the filesystem and on S3 (MinIO).
	hack/run-conformance.sh token
	hack/run-conformance.sh anonymous
	hack/with-minio.sh hack/run-conformance.sh token
	hack/with-minio.sh hack/run-conformance.sh anonymous

FUZZTIME ?= 30s
FUZZ_TARGETS := registry/auth:FuzzParseScope registry/auth:FuzzCredentialsFrom registry/auth:FuzzTokenRequest \
	registry/authstore:FuzzParse \
	registry/oci:FuzzNameAndTag registry/oci:FuzzParseContentRange registry/oci:FuzzParseDigest \
	registry/oci:FuzzParseManifest registry/oci:FuzzChallenge \
	registry/npm:FuzzSplitPublishBody registry/npm:FuzzValidName registry/npm:FuzzCheckPublish

.PHONY: fuzz
fuzz: ## Run each Go fuzz target for $(FUZZTIME) (see docs/security.md). Not part of make test; the seeds run there.
	@for t in $(FUZZ_TARGETS); do pkg=$${t%%:*}; fn=$${t##*:}; echo "== $$fn ./$$pkg"; \
		$(GO) test -run '^$$' -fuzz "^$$fn\$$" -fuzztime $(FUZZTIME) ./$$pkg/ || exit 1; done

.PHONY: bench
bench: bench-npm distribution ## Load-test a fresh registry, the bare baseline and CNCF Distribution (hack/loadgen); results in bin/bench. Also runs bench-npm. Not part of make test.
	hack/bench.sh

.PHONY: bench-npm
bench-npm: ## npm publish at 1, 100 and 1,000 versions and the 1,000-version document's size (Go benchmark, docs/performance.md). Not part of make test.
	$(GO) test ./registry/npm -run '^$$' -bench Publish -benchtime 200x -count 5

.PHONY: bench-gc
bench-gc: minio ## Time one garbage collection over 10,000 and 100,000 blobs on the filesystem and on MinIO (UNIREG_GC_BENCH_BLOBS; ~15 min, most of it populating MinIO). Not part of make test.
	UNIREG_GC_BENCH_BLOBS=$${UNIREG_GC_BENCH_BLOBS:-10000,100000} $(GO) test ./registry/oci -run '^$$' -bench GCCollect -benchtime 1x -timeout 60m

.PHONY: bench-s3
bench-s3: minio ## The catalog and tag growth scenarios (BENCH_S3_SCALE, default 100 and 1k) and the rollout storm of a unireg on MinIO (hack/bench.sh, BENCH_ONLY=s3). Not part of make test.
	BENCH_ONLY=s3 hack/with-minio.sh hack/bench.sh

.PHONY: test
test: check-fmt vet check-generated unit unit-s3 conformance ## Everything CI runs.

.PHONY: help
help:
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'
