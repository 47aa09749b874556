# Sluice. `make test` runs every test against a real API server built from Go modules;
# `make demo` starts the embedded local stack (coming with the demo issue).

SHELL := /usr/bin/env bash -o pipefail
.SHELLFLAGS := -ec

BIN ?= $(CURDIR)/bin
CONTROLLER_TOOLS_VERSION ?= v0.23.0
GOLANGCI_LINT_VERSION ?= v2.15.0
CONTROLLER_GEN ?= $(BIN)/tools/controller-gen-$(CONTROLLER_TOOLS_VERSION)/controller-gen
GOLANGCI_LINT ?= $(BIN)/tools/golangci-lint-$(GOLANGCI_LINT_VERSION)/golangci-lint

.PHONY: all
all: build

##@ Development

.PHONY: manifests
manifests: $(CONTROLLER_GEN) ## Generate CRDs, RBAC and webhook manifests.
	$(CONTROLLER_GEN) rbac:roleName=manager-role crd:allowDangerousTypes=true webhook \
		paths="./api/...;./controllers/...;./webhooks/..." \
		output:crd:artifacts:config=config/crd/bases \
		output:rbac:artifacts:config=config/rbac \
		output:webhook:artifacts:config=config/webhook

.PHONY: generate
generate: $(CONTROLLER_GEN) ## Generate deepcopy code.
	$(CONTROLLER_GEN) object:headerFile="hack/boilerplate.go.txt" paths="./api/..."

.PHONY: upstream-crds
upstream-crds: ## Refresh the Linkerd and Consul CRD schemas for tests from ../shared/testdata/crds.
	go run ./hack/upstream-crds ../shared/testdata/crds internal/testenv/crds

.PHONY: docs
docs: ## Render docs/meshpolicy.md from the providers' support matrices.
	go run ./hack/meshpolicy-docs docs/meshpolicy.md

.PHONY: argocd
argocd: ## Regenerate the status fixtures and config/argocd/argocd-cm.yaml from config/argocd's Lua.
	go run ./hack/argocd-cm

.PHONY: bundle
bundle: manifests ## Regenerate the OLM bundle in bundles/sluice from config/.
	go run ./hack/bundle --out bundles/sluice

.PHONY: fmt
fmt: ## go fmt.
	go fmt ./...

.PHONY: vet
vet: ## go vet.
	go vet ./...

.PHONY: lint
lint: vet ## go vet, then golangci-lint (installed through the Go module proxy).
	@if [ "$${SKIP_GOLANGCI:-}" = "1" ]; then echo "golangci-lint skipped (SKIP_GOLANGCI=1)"; exit 0; fi; \
	$(MAKE) -s $(GOLANGCI_LINT) && $(GOLANGCI_LINT) run --allow-parallel-runners ./...

.PHONY: envtest
envtest: ## Build kube-apiserver, etcd and kube-controller-manager from Go modules (cached in bin/k8s).
	hack/envtest-binaries.sh >/dev/null

.PHONY: traefik
traefik: ## Build Traefik v3.7.12 from Go modules (cached in bin/traefik).
	hack/traefik.sh >/dev/null

# Checked before any long build: Debian packages (installed when root), and root.
.PHONY: prereqs-test prereqs-demo
prereqs-test prereqs-demo:
	@hack/prereqs.sh $(@:prereqs-%=%)

.PHONY: test
test: prereqs-test manifests generate envtest traefik ## Run all tests: real API server, real Prometheus, and the e2e cluster (root, iproute2).
	@# -timeout 30m: the e2e packages take turns on one machine-wide lock, so one waits for the other.
	KUBEBUILDER_ASSETS="$$(hack/envtest-binaries.sh)" go test ./... -count=1 -timeout 30m $(TEST_ARGS)

ROLLOUTS ?= 1000
UNRELATED ?= 2000
WAVE ?= 1000
SCALE_ARGS ?=

.PHONY: scale
scale: envtest ## Measure the manager at scale (hack/scale): ROLLOUTS, UNRELATED pairs, a WAVE of releases; prints the table of docs/benchmarks.md.
	KUBEBUILDER_ASSETS="$$(hack/envtest-binaries.sh)" go run ./hack/scale -rollouts $(ROLLOUTS) -unrelated $(UNRELATED) -wave $(WAVE) $(SCALE_ARGS)

.PHONY: verify
verify: manifests generate bundle docs argocd ## Regenerate and fail when generated files differ from git.
	go mod tidy
	git diff --exit-code -- . ':(exclude)bin'
	@untracked="$$(git ls-files --others --exclude-standard)"; \
	if [ -n "$$untracked" ]; then echo "untracked generated files:"; echo "$$untracked"; exit 1; fi

##@ Build

.PHONY: build
build: generate ## Build the manager binary.
	go build -o $(BIN)/manager .

PLUGIN_VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo devel)

.PHONY: plugin
plugin: ## Build the kubectl plugin (bin/kubectl-sluice); put it on PATH to run `kubectl sluice`.
	go build -ldflags "-X github.com/sluice-mesh/sluice/internal/cli.version=$(PLUGIN_VERSION)" -o $(BIN)/kubectl-sluice ./cmd/kubectl-sluice

.PHONY: run
run: manifests generate ## Run the manager against the cluster of the current kubeconfig.
	go run . --webhooks=false

.PHONY: demo
demo: prereqs-demo envtest traefik ## The local stack (as root): a canary promoted and a bad one rolled back, live.
	go run ./e2e/demo

.PHONY: help
help: ## List targets.
	@awk 'BEGIN {FS = ":.*##"} /^[a-zA-Z_-]+:.*?##/ { printf "  %-12s %s\n", $$1, $$2 }' $(MAKEFILE_LIST)

$(CONTROLLER_GEN):
	GOBIN=$(dir $@) go install sigs.k8s.io/controller-tools/cmd/controller-gen@$(CONTROLLER_TOOLS_VERSION)

$(GOLANGCI_LINT):
	GOBIN=$(dir $@) go install github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$(GOLANGCI_LINT_VERSION)
