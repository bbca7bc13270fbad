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
uninstall: ## Remove the CRDs.
	$(KUBECTL) delete -k config/crd

.PHONY: deploy
deploy: manifests ## Deploy the operator (config/default) into the current cluster.
	$(KUBECTL) apply -k config/default

.PHONY: undeploy
undeploy:
	$(KUBECTL) delete -k config/default

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
unit: client-tools npm-clients minio envtest ## Go tests (unit, envtest, integration; race detector on).
	KUBEBUILDER_ASSETS="$$(hack/build-envtest.sh)" $(GO) test -race -count=1 ./...

.PHONY: unit-s3
unit-s3: client-tools npm-clients minio build ## The tests that run the real binary (OCI and npm clients, concurrency, 1 GiB memory), on S3 (MinIO).
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

.PHONY: minio
minio: ## The MinIO server the S3 tests run against (built from the Go module proxy into tools/bin).
	hack/install-minio.sh

.PHONY: conformance
conformance: build conformance-tool minio ## OCI conformance suite, every toggle on: token auth and anonymous, on the filesystem and on S3 (MinIO).
	hack/run-conformance.sh token
	hack/run-conformance.sh anonymous
	hack/with-minio.sh hack/run-conformance.sh token
	hack/with-minio.sh hack/run-conformance.sh anonymous

.PHONY: test
test: check-fmt vet check-generated unit unit-s3 conformance ## Everything CI runs.

.PHONY: help
help:
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'
