# whisperer: mirrors labelled Secrets into other namespaces.
# `make help` lists the targets. Every tool is built on demand from the Go modules pinned in
# hack/tools/ into bin/ (git-ignored): a fresh clone needs only Go.

# VERSION is the operator's version: image tag and OLM bundle version.
VERSION ?= 0.1.0
IMAGE_TAG_BASE ?= ghcr.io/whisperer-operator/whisperer
IMG ?= $(IMAGE_TAG_BASE):v$(VERSION)
CONTAINER_TOOL ?= docker

# Kubernetes release whose control plane the local cluster and the tests run.
K8S_VERSION := 1.37.2
K8S_LDFLAGS := -X k8s.io/component-base/version.gitVersion=v$(K8S_VERSION) \
	-X k8s.io/component-base/version.gitMajor=$(word 1,$(subst ., ,$(K8S_VERSION))) \
	-X k8s.io/component-base/version.gitMinor=$(word 2,$(subst ., ,$(K8S_VERSION)))

LOCALBIN ?= $(CURDIR)/bin
# The control plane binaries, where envtest and kuttl look for them (KUBEBUILDER_ASSETS).
K8S_ASSETS ?= $(LOCALBIN)/k8s
export KUBEBUILDER_ASSETS ?= $(K8S_ASSETS)
CONTROL_PLANE := $(K8S_ASSETS)/etcd $(K8S_ASSETS)/kube-apiserver $(K8S_ASSETS)/kube-controller-manager $(K8S_ASSETS)/kubectl
CONTROLLER_GEN ?= $(LOCALBIN)/controller-gen
KUTTL ?= $(LOCALBIN)/kubectl-kuttl
KUSTOMIZE ?= $(LOCALBIN)/kustomize
LOCALCLUSTER ?= $(LOCALBIN)/localcluster
WHISPERER ?= $(LOCALBIN)/whisperer

# Flags for `make run`: readable logs, endpoints on loopback only.
RUN_ARGS ?= --zap-encoder=console --health-probe-bind-address=127.0.0.1:8081

SHELL = /usr/bin/env bash -o pipefail
.SHELLFLAGS = -ec

.PHONY: all
all: build

##@ General

.PHONY: help
help: ## Display this help.
	@awk 'BEGIN {FS = ":.*##"; printf "\nUsage:\n  make \033[36m<target>\033[0m\n"} /^[a-zA-Z_0-9-]+:.*?##/ { printf "  \033[36m%-18s\033[0m %s\n", $$1, $$2 } /^##@/ { printf "\n\033[1m%s\033[0m\n", substr($$0, 5) } ' $(MAKEFILE_LIST)

##@ Development

.PHONY: manifests
manifests: $(CONTROLLER_GEN) ## Generate config/rbac/role.yaml from the kubebuilder:rbac markers.
	$(CONTROLLER_GEN) rbac:roleName=manager-role paths="./controllers/..." output:rbac:artifacts:config=config/rbac

.PHONY: fmt
fmt: ## Run go fmt.
	go fmt ./...

.PHONY: vet
vet: ## Run go vet.
	go vet ./...

.PHONY: verify
verify: manifests ## Fail if the code is not gofmt-clean or generated files are not up to date.
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { echo "gofmt needed:"; gofmt -l $$(git ls-files '*.go'); exit 1; }
	@git diff --exit-code -- config/ || { echo "config/ is not what 'make manifests' generates: run it and commit the result"; exit 1; }
	go vet ./...

.PHONY: test
test: $(CONTROL_PLANE) ## Run the unit tests and the envtest tests (real etcd and kube-apiserver).
	go test ./... -coverprofile cover.out

.PHONY: test-e2e
test-e2e: build $(CONTROL_PLANE) $(KUTTL) $(LOCALCLUSTER) ## Run the kuttl suite in tests/kuttl on a local control plane it starts.
	PATH="$(K8S_ASSETS):$(LOCALBIN):$$PATH" $(LOCALCLUSTER) run --kubeconfig .local/e2e/kubeconfig --log .local/e2e/controlplane.log -- \
		$(KUTTL) test --config tests/kuttl/kuttl-test.yaml

.PHONY: test-reliability
test-reliability: build $(CONTROL_PLANE) $(KUSTOMIZE) ## Run the fault tolerance suite (test/reliability) on bin/whisperer processes and a local control plane.
	go vet -tags reliability ./test/reliability/...
	WHISPERER=$(WHISPERER) KUSTOMIZE=$(KUSTOMIZE) go test -tags reliability ./test/reliability/... -count=1 -timeout 15m -v

.PHONY: test-all
test-all: verify test test-e2e test-reliability ## Everything CI runs (.ci/run): checks, unit, envtest, kuttl and reliability tests.

# make bench BENCH_ARGS="--sizes 100,1000,5000,10000"; see hack/bench and the README's results.
BENCH_ARGS ?=
.PHONY: bench
bench: build $(K8S_ASSETS)/etcd $(K8S_ASSETS)/kube-apiserver $(K8S_ASSETS)/kube-controller-manager ## Benchmark bin/whisperer against plain client-go at 100 and 1000 namespaces (BENCH_ARGS="--sizes ...").
	go run ./hack/bench $(BENCH_ARGS)

##@ Build

.PHONY: build
build: ## Build the operator binary into bin/whisperer.
	go build -o $(WHISPERER) .

.PHONY: run
run: build $(LOCALCLUSTER) ## Run the operator against the current cluster, or against a local control plane it starts when there is none.
	@if $(LOCALCLUSTER) reachable; then \
		$(WHISPERER) $(RUN_ARGS); \
	else \
		$(MAKE) --no-print-directory control-plane && \
		$(LOCALCLUSTER) run -- $(WHISPERER) $(RUN_ARGS); \
	fi

.PHONY: docker-build
docker-build: ## Build the operator image (needs a container engine).
	$(CONTAINER_TOOL) build -t $(IMG) .

.PHONY: docker-push
docker-push: ## Push the operator image.
	$(CONTAINER_TOOL) push $(IMG)

##@ Deployment

.PHONY: deploy
deploy: manifests $(KUSTOMIZE) ## Deploy the operator with image IMG into the cluster of the current kubeconfig.
	cd config/manager && $(KUSTOMIZE) edit set image controller=$(IMG)
	$(KUSTOMIZE) build config/default | kubectl apply -f -

.PHONY: undeploy
undeploy: $(KUSTOMIZE) ## Remove the operator from the cluster of the current kubeconfig. Mirrors stay.
	$(KUSTOMIZE) build config/default | kubectl delete --ignore-not-found -f -

##@ Tools (built on demand into bin/ from the modules pinned in hack/tools/)

.PHONY: control-plane
control-plane: $(CONTROL_PLANE) ## Build etcd, kube-apiserver, kube-controller-manager and kubectl into bin/k8s.

$(K8S_ASSETS)/kube-apiserver $(K8S_ASSETS)/kube-controller-manager $(K8S_ASSETS)/kubectl &: hack/tools/kube/go.mod
	cd hack/tools/kube && go build -o $(K8S_ASSETS)/ -ldflags "$(K8S_LDFLAGS)" \
		k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager k8s.io/kubernetes/cmd/kubectl

$(K8S_ASSETS)/etcd: hack/tools/etcd/go.mod
	cd hack/tools/etcd && go build -o $@ go.etcd.io/etcd/server/v3

$(CONTROLLER_GEN): hack/tools/controller-gen/go.mod
	cd hack/tools/controller-gen && go build -o $@ sigs.k8s.io/controller-tools/cmd/controller-gen

$(KUTTL): hack/tools/kuttl/go.mod
	cd hack/tools/kuttl && go build -o $@ github.com/kudobuilder/kuttl/cmd/kubectl-kuttl

$(KUSTOMIZE): hack/tools/kustomize/go.mod
	cd hack/tools/kustomize && go build -o $@ sigs.k8s.io/kustomize/kustomize/v5

.PHONY: $(LOCALCLUSTER)
$(LOCALCLUSTER):
	go build -o $@ ./hack/localcluster

.PHONY: clean
clean: ## Remove everything built: bin/, .local/ and cover.out.
	rm -rf $(LOCALBIN) .local cover.out
