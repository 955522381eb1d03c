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
ETCDUTL ?= $(LOCALBIN)/etcdutl
GOLANGCI_LINT ?= $(LOCALBIN)/golangci-lint
LOCALCLUSTER ?= $(LOCALBIN)/localcluster
WHISPERER ?= $(LOCALBIN)/whisperer
IMAGECHECK ?= $(LOCALBIN)/imagecheck

# Flags for `make run`: readable logs, endpoints on loopback only.
RUN_ARGS ?= --zap-encoder=console --health-probe-bind-address=127.0.0.1:8081

# The image's build flags (Dockerfile): no symbol table or DWARF, which the binary does not need
# at run time (pprof and stack traces use its pclntab); the benchmark measures this binary.
GO_BUILD_FLAGS ?= -trimpath -ldflags="-s -w"

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

# The Go modules of our own code: the operator's and those of hack/ (olm, helm, clustertest,
# imagecheck...). hack/tools/* are not among them: each holds only a tools.go that pins a tool,
# behind the `tools` build tag.
LINT_MODULES = $(patsubst %/,%,$(dir $(wildcard go.mod hack/*/go.mod)))

# Another golangci-lint on the machine (another checkout's make verify) is waited for, not an error.
.PHONY: lint
lint: $(GOLANGCI_LINT) ## Run golangci-lint (.golangci.yml) on every Go module of our own code; the first run builds it (~3 min).
	@status=0; for module in $(LINT_MODULES); do \
		echo "golangci-lint: $$module"; \
		(cd $$module && $(GOLANGCI_LINT) run --allow-serial-runners --config $(CURDIR)/.golangci.yml ./...) || status=1; \
	done; exit $$status

.PHONY: verify
verify: manifests image-check lint ## Fail if the code is not gofmt-clean or golangci-lint finds anything, generated files (RBAC, bundle, catalog, chart) are not up to date, the chart drifts from config/, or an image would not build.
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { echo "gofmt needed:"; gofmt -l $$(git ls-files '*.go'); exit 1; }
	@git diff --exit-code -- config/rbac/role.yaml || { echo "config/rbac/role.yaml is not what 'make manifests' generates: run it and commit the result"; exit 1; }
	go vet ./...

# No container engine is needed: hack/imagecheck assembles each build context as BuildKit does
# (from <Dockerfile>.dockerignore or .dockerignore) and replays the builder stage with the local Go.
.PHONY: image-check
image-check: $(IMAGECHECK) ## Fail if docker build of Dockerfile or bundle.Dockerfile would fail (missing files, the build's compile errors), without Docker.
	cd hack/imagecheck && go vet ./... && go test ./... -count=1
	$(IMAGECHECK) Dockerfile bundle.Dockerfile

.PHONY: test
test: $(CONTROL_PLANE) ## Run the unit tests and the envtest tests (real etcd and kube-apiserver).
	go test ./... -coverprofile cover.out

.PHONY: test-e2e
test-e2e: build $(CONTROL_PLANE) $(KUTTL) $(LOCALCLUSTER) ## Run the kuttl suite in tests/kuttl on a local control plane it starts.
	PATH="$(K8S_ASSETS):$(LOCALBIN):$$PATH" $(LOCALCLUSTER) run --kubeconfig .local/e2e/kubeconfig --log .local/e2e/controlplane.log -- \
		$(KUTTL) test --config tests/kuttl/kuttl-test.yaml

.PHONY: test-reliability
test-reliability: build $(CONTROL_PLANE) $(KUSTOMIZE) $(ETCDUTL) ## Run the fault tolerance suite (test/reliability) on bin/whisperer processes and a local control plane.
	go vet -tags reliability ./test/reliability/...
	WHISPERER=$(WHISPERER) KUSTOMIZE=$(KUSTOMIZE) ETCDUTL=$(ETCDUTL) go test -tags reliability ./test/reliability/... -count=1 -timeout 30m -v

.PHONY: test-all
test-all: verify test test-e2e test-reliability ## Everything CI runs (.ci/run): checks, unit, envtest, kuttl, reliability, OLM and Helm tests.

# make bench BENCH_ARGS="--sizes 1000,5000,10000"; the method and the results: docs/performance.md.
BENCH_ARGS ?=
.PHONY: bench
bench: build $(K8S_ASSETS)/etcd $(K8S_ASSETS)/kube-apiserver $(K8S_ASSETS)/kube-controller-manager ## Benchmark bin/whisperer (Secrets, ConfigMaps, pull secrets on ServiceAccounts) against the fastest plain client-go writer at 100 and 1000 namespaces (BENCH_ARGS="--sizes ...").
	go run ./hack/bench --assets $(K8S_ASSETS) $(BENCH_ARGS)

##@ Build

.PHONY: build
build: ## Build the operator binary into bin/whisperer, as the Dockerfile builds it.
	CGO_ENABLED=0 go build $(GO_BUILD_FLAGS) -o $(WHISPERER) .

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

# The install tests, make test-olm and make test-helm, install whisperer on a local control plane
# that runs pods without containers (hack/clustertest): besides the usual controllers, those a
# Deployment needs to become available, and nodelifecycle, which lifts the not-ready taint of a new
# node once it reports Ready; kube-scheduler, and kwok playing the node. Each runs in a network
# namespace of its own, that reaches nothing but itself: what it runs listens on all its interfaces
# (hack/clustertest/netns.sh).
KWOK ?= $(LOCALBIN)/kwok
INSTALL_TEST_CONTROLLERS := namespace,garbagecollector,serviceaccount,serviceaccount-token,deployment,replicaset,nodelifecycle
INSTALL_TEST_TOOLS := build $(CONTROL_PLANE) $(K8S_ASSETS)/kube-scheduler $(KWOK) $(KUTTL) $(LOCALCLUSTER)
# $(call install-test,NAME,TEST BINARY[,VARIABLE=VALUE]): run an install test, with its logs,
# kubeconfigs and kuttl artifacts in .local/NAME.
define install-test
	cd hack/clustertest && go vet ./...
	rm -rf .local/$(1) && mkdir -p .local/$(1)
	hack/clustertest/netns.sh $(LOCALCLUSTER) run --controllers $(INSTALL_TEST_CONTROLLERS) \
		--kubeconfig .local/$(1)/kubeconfig --log .local/$(1)/controlplane.log -- \
		env E2E_WORKDIR=$(CURDIR)/.local/$(1) E2E_REPO=$(CURDIR) E2E_BIN=$(LOCALBIN) $(3) \
		$(2) -test.v -test.count=1 -test.timeout=30m
endef

##@ OLM (the OperatorHub bundle, its catalog and their tests; docs/olm.md)

# The bundle of VERSION, and the version before it in the catalog's stable channel. createdAt
# comes from the CSV base unless CREATED_AT (RFC 3339) is set: same input, same bundle.
PREVIOUS_VERSION ?= 0.0.1
CREATED_AT ?=
BUNDLE_ARGS = --version $(VERSION) --image $(IMG) $(if $(CREATED_AT),--created-at $(CREATED_AT))
PREVIOUS_BUNDLE_ARGS = --version $(PREVIOUS_VERSION) --image $(IMAGE_TAG_BASE):v$(PREVIOUS_VERSION) --dockerfile ""
OPM ?= $(LOCALBIN)/opm
OLM_OPERATORS := $(LOCALBIN)/olm/olm $(LOCALBIN)/olm/catalog
OLM_BUNDLE ?= $(LOCALBIN)/olm-bundle
OLM_CATALOG ?= $(LOCALBIN)/olm-catalog
OLM_VALIDATE ?= $(LOCALBIN)/olm-bundle-validate

.PHONY: bundle
bundle: $(OLM_BUNDLE) ## Generate bundle/ and bundle.Dockerfile for VERSION from config/ (make bundle VERSION=x.y.z).
	$(OLM_BUNDLE) $(BUNDLE_ARGS) --out bundle --dockerfile bundle.Dockerfile

.PHONY: catalog
catalog: $(OLM_BUNDLE) $(OLM_CATALOG) ## Generate catalog/: a PREVIOUS_VERSION bundle, then bundle/, which replaces it in channel stable.
	$(OLM_BUNDLE) $(PREVIOUS_BUNDLE_ARGS) --out .local/olm-previous/bundle
	$(OLM_CATALOG) --out catalog/whisperer/catalog.yaml .local/olm-previous/bundle bundle

.PHONY: bundle-check
bundle-check: $(OLM_BUNDLE) $(OLM_CATALOG) ## Fail if bundle/, bundle.Dockerfile or catalog/ are not what make bundle and make catalog generate.
	rm -rf .local/bundle-check && mkdir -p .local/bundle-check
	$(OLM_BUNDLE) $(BUNDLE_ARGS) --out .local/bundle-check/bundle --dockerfile .local/bundle-check/bundle.Dockerfile
	$(OLM_BUNDLE) $(PREVIOUS_BUNDLE_ARGS) --out .local/bundle-check/previous
	$(OLM_CATALOG) --out .local/bundle-check/catalog/whisperer/catalog.yaml .local/bundle-check/previous .local/bundle-check/bundle
	@diff -r bundle .local/bundle-check/bundle && diff bundle.Dockerfile .local/bundle-check/bundle.Dockerfile \
		|| { echo "bundle/ is not what 'make bundle' generates from config/: run it and commit the result"; exit 1; }
	@diff -r catalog .local/bundle-check/catalog \
		|| { echo "catalog/ is not what 'make catalog' generates: run it and commit the result"; exit 1; }

verify: bundle-check

.PHONY: bundle-validate
bundle-validate: $(OLM_VALIDATE) ## Validate bundle/ as operator-sdk bundle validate --select-optional suite=operatorframework does; fail on errors and warnings (one false positive accepted, see docs/olm.md).
	$(OLM_VALIDATE) bundle

.PHONY: catalog-validate
catalog-validate: $(OPM) ## Validate catalog/ with opm validate.
	$(OPM) validate catalog
	@echo "catalog/: opm validate found no error"

.PHONY: test-olm
test-olm: $(INSTALL_TEST_TOOLS) $(OPM) $(OLM_OPERATORS) ## Install whisperer from catalog/ with OLM, upgrade it, run it with OLM's permissions and pass the kuttl suite.
	cd hack/olm && go vet ./... && go vet -tags olm_e2e ./... && go test ./... -count=1
	cd hack/olm && go test -c -tags olm_e2e -o $(LOCALBIN)/olm-e2e.test ./e2e
	$(call install-test,olm,$(LOCALBIN)/olm-e2e.test)

# CI (.ci/run, make test-all) runs these after the other tests.
test-all: bundle-validate catalog-validate test-olm

##@ Helm (the chart in charts/whisperer, its package and its tests; docs/helm.md)

CHART := charts/whisperer
# What the chart shares with config/: make chart copies these into $(CHART)/files/, where its
# templates read them. The chart's version and appVersion are VERSION.
CHART_SHARED := rbac/role.yaml rbac/leader_election_role.yaml rbac/metrics_auth_role.yaml \
	rbac/metrics_reader_role.yaml prometheus/alerts.yaml
HELM ?= $(LOCALBIN)/helm
HELM_PACKAGE_DIR ?= .local/charts
HELM_PACKAGE := $(HELM_PACKAGE_DIR)/whisperer-$(VERSION).tgz

# $(call chart-sync,DIR): write into the chart in DIR what it shares with config/, and VERSION.
define chart-sync
	for f in $(CHART_SHARED); do \
		mkdir -p $(1)/files/$$(dirname $$f) && \
		{ echo "# Copied from config/$$f by make chart: edit that file, then run make chart."; cat config/$$f; } > $(1)/files/$$f; \
	done
	sed -i -E 's/^version: .*/version: $(VERSION)/; s/^appVersion: .*/appVersion: "$(VERSION)"/' $(1)/Chart.yaml
endef

.PHONY: chart
chart: manifests ## Update charts/whisperer from config/ (RBAC rules, alerts) and VERSION (version, appVersion).
	$(call chart-sync,$(CHART))

.PHONY: chart-check
chart-check: ## Fail if charts/whisperer is not what make chart writes, or differs from config/default, or has a lint warning (hack/helm).
	rm -rf .local/chart-check && mkdir -p .local/chart-check && cp -r $(CHART) .local/chart-check/
	$(call chart-sync,.local/chart-check/whisperer)
	@diff -r $(CHART) .local/chart-check/whisperer \
		|| { echo "$(CHART) is not what 'make chart' writes from config/ and VERSION: run it and commit the result"; exit 1; }
	cd hack/helm && go vet ./... && go test ./... -count=1

verify: chart-check

.PHONY: helm-package
helm-package: $(HELM) ## Package the chart for VERSION into .local/charts/whisperer-VERSION.tgz, as helm package does.
	$(HELM) package $(CHART) --version $(VERSION) --app-version $(VERSION) --destination $(HELM_PACKAGE_DIR)

.PHONY: test-helm
test-helm: $(INSTALL_TEST_TOOLS) helm-package ## Install the packaged chart with the Helm SDK, run bin/whisperer as its Deployment and pass the kuttl suite, upgrade, uninstall.
	cd hack/helm && go vet -tags helm_e2e ./... && go test -c -tags helm_e2e -o $(LOCALBIN)/helm-e2e.test ./e2e
	$(call install-test,helm,$(LOCALBIN)/helm-e2e.test,HELM_E2E_CHART=$(CURDIR)/$(HELM_PACKAGE))

# CI (.ci/run, make test-all) runs it after the other tests.
test-all: test-helm

##@ Tools (built on demand into bin/ from the modules pinned in hack/tools/)

.PHONY: control-plane
control-plane: $(CONTROL_PLANE) ## Build etcd, kube-apiserver, kube-controller-manager and kubectl into bin/k8s (about 15 minutes the first time).
	@:

# One go build per binary (each reuses what the ones before it compiled), so that a build of
# minutes says what it does: before the first binary it builds, make says which ones it is about
# to build and about how long that takes, then prints a line as each is done. When everything is
# up to date it prints nothing.
KUBE_COMMANDS := kube-apiserver kube-controller-manager kube-scheduler kubectl

# The go.mod that pins binary $(1): make rebuilds the binary when it changes.
control-plane-go-mod = hack/tools/$(if $(filter %/etcd,$(1)),etcd,kube)/go.mod
# The names of the binaries among $(1) that are missing or older than their go.mod.
control-plane-stale = $(notdir $(foreach f,$(1),$(shell [ -e $(f) ] && [ ! $(f) -ot $(call control-plane-go-mod,$(f)) ] || echo $(f))))
# The line make prints before the first binary it builds, once per make (so it sets
# control-plane-announced); it names those of make control-plane that are stale, or only $@ if
# $@ is not one of them (kube-scheduler). It expands to nothing, so the recipe line runs nothing.
announce-control-plane = $(if $(control-plane-announced),,$(eval control-plane-announced := yes)$(info $(call \
	control-plane-note,$(call control-plane-stale,$(if $(filter $@,$(CONTROL_PLANE)),$(CONTROL_PLANE),$@)))))
comma := ,
control-plane-note = Building $(subst $() ,$(comma) ,$(1)) into $(patsubst $(CURDIR)/%,%,$(K8S_ASSETS)) from Go modules: $(if \
	$(filter kube%,$(1)),about 15 minutes on 2 cores the first time$(comma) less when Go's build cache has their packages,a minute or two).
# go build $(1) in hack/tools/$(2), then a line that says how long it took.
build-control-plane = start=$$(date +%s); \
	(cd hack/tools/$(2) && go build -o $@ $(1)); \
	took=$$(($$(date +%s) - start)); printf '  %-24s built in %dm%02ds\n' $(@F) $$((took / 60)) $$((took % 60))

$(K8S_ASSETS)/etcd: hack/tools/etcd/go.mod
	$(announce-control-plane)
	@$(call build-control-plane,go.etcd.io/etcd/server/v3,etcd)

# kube-scheduler: only the install tests (make test-olm, make test-helm) run it.
$(addprefix $(K8S_ASSETS)/,$(KUBE_COMMANDS)): $(K8S_ASSETS)/%: hack/tools/kube/go.mod
	$(announce-control-plane)
	@$(call build-control-plane,-ldflags "$(K8S_LDFLAGS)" k8s.io/kubernetes/cmd/$*,kube)

# etcdutl restores etcd from a snapshot (make test-reliability); the same etcd release as the server.
$(ETCDUTL): hack/tools/etcdutl/go.mod
	cd hack/tools/etcdutl && go build -o $@ go.etcd.io/etcd/etcdutl/v3

$(CONTROLLER_GEN): hack/tools/controller-gen/go.mod
	cd hack/tools/controller-gen && go build -o $@ sigs.k8s.io/controller-tools/cmd/controller-gen

$(KUTTL): hack/tools/kuttl/go.mod
	cd hack/tools/kuttl && go build -o $@ github.com/kudobuilder/kuttl/cmd/kubectl-kuttl

$(KUSTOMIZE): hack/tools/kustomize/go.mod
	cd hack/tools/kustomize && go build -o $@ sigs.k8s.io/kustomize/kustomize/v5

$(GOLANGCI_LINT): hack/tools/golangci-lint/go.mod
	cd hack/tools/golangci-lint && go build -o $@ github.com/golangci/golangci-lint/v2/cmd/golangci-lint

.PHONY: $(LOCALCLUSTER)
$(LOCALCLUSTER):
	go build -o $@ ./hack/localcluster

# Its own module: BuildKit's parser and fsutil stay out of the operator's go.mod (go build is cached).
.PHONY: $(IMAGECHECK)
$(IMAGECHECK):
	cd hack/imagecheck && go build -o $@ .

$(OPM): hack/tools/opm/go.mod
	cd hack/tools/opm && CGO_ENABLED=0 go build -tags json1,containers_image_openpgp -o $@ github.com/operator-framework/operator-registry/cmd/opm

$(OLM_OPERATORS) &: hack/tools/olm/go.mod
	cd hack/tools/olm && go build -o $(LOCALBIN)/olm/ \
		github.com/operator-framework/operator-lifecycle-manager/cmd/olm github.com/operator-framework/operator-lifecycle-manager/cmd/catalog

# The helm CLI, from the Helm SDK that hack/helm pins and tests with.
$(HELM): hack/helm/go.mod
	cd hack/helm && go build -o $@ helm.sh/helm/v4/cmd/helm

$(KWOK): hack/tools/kwok/go.mod
	cd hack/tools/kwok && go build -o $@ sigs.k8s.io/kwok/cmd/kwok

# The bundle and catalog generators and the bundle validator, from hack/olm (go build is cached).
.PHONY: $(OLM_BUNDLE) $(OLM_CATALOG) $(OLM_VALIDATE)
$(OLM_BUNDLE):
	cd hack/olm && go build -o $@ ./cmd/bundle
$(OLM_CATALOG):
	cd hack/olm && go build -o $@ ./cmd/catalog
$(OLM_VALIDATE):
	cd hack/olm && go build -o $@ ./cmd/bundle-validate

.PHONY: clean
clean: ## Remove everything built: bin/, .local/ and cover.out.
	rm -rf $(LOCALBIN) .local cover.out
