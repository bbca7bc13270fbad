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
build: ## Build bin/registry.
	$(GO) build -o $(BIN)/registry ./cmd/registry

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
unit: client-tools npm-clients minio ## Go tests (unit and integration, with the race detector).
	$(GO) test -race -count=1 ./...

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
test: check-fmt vet unit unit-s3 conformance ## Everything CI runs.

.PHONY: help
help:
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'
