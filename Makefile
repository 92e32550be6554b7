# atoll — the two commands that matter: `make run` and `make test`.
SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
GO ?= go
BIN := $(CURDIR)/bin
TOOLS := $(BIN)/tools
MODULE := github.com/atoll-mesh/atoll

# Pinned code generators. protoc-gen-go matches google.golang.org/protobuf
# in go.mod; protoc comes from Debian's protobuf-compiler package.
PROTOC_GEN_GO_VERSION := v1.36.12
PROTOC_GEN_GO := $(TOOLS)/protoc-gen-go-$(PROTOC_GEN_GO_VERSION)
PROTOC_GEN_GO_GRPC_VERSION := v1.6.0
PROTOC_GEN_GO_GRPC := $(TOOLS)/protoc-gen-go-grpc-$(PROTOC_GEN_GO_GRPC_VERSION)
PROTOC = protoc --plugin=protoc-gen-go=$(PROTOC_GEN_GO) --plugin=protoc-gen-go-grpc=$(PROTOC_GEN_GO_GRPC) -I api
PROTOS := $(wildcard api/v1alpha1/*.proto)

VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT ?= $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)
LDFLAGS := -X $(MODULE)/internal/version.Version=$(VERSION) -X $(MODULE)/internal/version.Commit=$(COMMIT)

# Package tests run with a per-package timeout that CI's 90 minutes can hold.
TEST_FLAGS ?= -count=1 -timeout 20m
BENCH ?= .

# kube-apiserver for the Kubernetes tests (test/kubeenv), built from the
# k8s.io/kubernetes module that test/kubeapiserver/go.mod pins. It is cached
# outside the repository, keyed by version, so clones and worktrees share it.
KUBE_VERSION := $(shell sed -n 's/^[[:space:]]*k8s.io\/kubernetes \(v[^ ]*\).*/\1/p' test/kubeapiserver/go.mod)
KUBE_CACHE := $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/atoll/tools
KUBE_APISERVER := $(KUBE_CACHE)/kube-apiserver-$(KUBE_VERSION)
# What Kubernetes' own release build stamps, so /version reports the pin.
HELM_VERSION := $(shell sed -n 's/^[[:space:]]*require helm.sh\/helm\/v4 \(v[^ ]*\).*/\1/p; s/^[[:space:]]*helm.sh\/helm\/v4 \(v[^ ]*\).*/\1/p' test/helm/go.mod)
HELM := $(KUBE_CACHE)/helm-$(HELM_VERSION)
# kind for make e2e-kind, pinned by test/kind/go.mod; a directory per
# version, put first on PATH for the suite.
KIND_VERSION := $(shell sed -n 's/^[[:space:]]*require sigs.k8s.io\/kind \(v[^ ]*\).*/\1/p; s/^[[:space:]]*sigs.k8s.io\/kind \(v[^ ]*\).*/\1/p' test/kind/go.mod)
KIND := $(KUBE_CACHE)/kind-$(KIND_VERSION)/kind
# CoreDNS, built from its Go module at the version test/coredns/go.mod pins,
# with the plugins the e2e suite's cluster DNS (test/clusterdns) and the DNS
# comparison benchmark configure; cached like kube-apiserver.
COREDNS_VERSION := $(shell sed -n 's/^require github.com\/coredns\/coredns //p' test/coredns/go.mod)
COREDNS := $(KUBE_CACHE)/coredns-$(COREDNS_VERSION)
KUBE_VERSION_PKG := k8s.io/component-base/version
KUBE_LDFLAGS := -X $(KUBE_VERSION_PKG).gitVersion=$(KUBE_VERSION) \
  -X $(KUBE_VERSION_PKG).gitMajor=$(patsubst v%,%,$(word 1,$(subst ., ,$(KUBE_VERSION)))) \
  -X $(KUBE_VERSION_PKG).gitMinor=$(word 2,$(subst ., ,$(KUBE_VERSION))) \
  -X $(KUBE_VERSION_PKG).gitTreeState=clean

.PHONY: all build run test test-race unit e2e e2e-kind kind-check kind vet check-generated generate tools netns-tools bench bench-dns dnsperf fuzz kube-apiserver helm coredns images clean
all: build

## build: compile bin/atoll and bin/atollctl
build:
	$(GO) build -ldflags '$(LDFLAGS)' -o $(BIN)/atoll ./cmd/atoll
	$(GO) build -ldflags '$(LDFLAGS)' -o $(BIN)/atollctl ./cmd/atollctl

## images: build the container images atoll, atoll-init and atoll-sidecar, tagged $(IMAGE_TAG) (needs a running Docker engine)
IMAGE_TAG ?= $(VERSION)
images:
	@command -v docker >/dev/null || { echo "make images: docker is not installed here; install Docker (with a running engine) to build the images" >&2; exit 1; }
	@docker info >/dev/null 2>&1 || { echo "make images: the docker client is here but no Docker engine answers (docker info failed); start the engine, or build on a machine that has one" >&2; exit 1; }
	docker build -f cmd/atoll/images/atoll.Dockerfile --build-arg LDFLAGS='$(LDFLAGS)' -t atoll:$(IMAGE_TAG) .
	docker build -f cmd/atoll/images/init.Dockerfile --build-arg LDFLAGS='$(LDFLAGS)' -t atoll-init:$(IMAGE_TAG) .
	docker build -f cmd/atoll/images/sidecar.Dockerfile --build-arg LDFLAGS='$(LDFLAGS)' -t atoll-sidecar:$(IMAGE_TAG) .

## run: start a global (embedded etcd) and zones zone-1, zone-2 with a sample topology
run: build
	$(GO) build -o $(BIN)/grpcdemo ./test/sample/grpcdemo
	./test/run.sh

## test: install what the tests need, check generated code, vet, and run every test
test: tools kube-apiserver helm coredns check-generated vet unit

unit:
	$(GO) test $(TEST_FLAGS) ./...

## e2e: the multi-cluster suite on the local provider (a global, two zone clusters on loopback), verbose; make test runs it too
e2e: kube-apiserver helm coredns
	$(GO) test -v -count=1 -timeout 10m ./test/e2e/multicluster

## e2e-kind: the multi-cluster suite on kind (a global and two zone clusters, the images built and loaded, the chart installed), verbose; needs Docker with a running engine and kubectl (test/e2e/multicluster/kind/check.sh says what is missing), builds the pinned kind itself; about 15-20 minutes; the clusters are deleted at the end, kept after a failure with ATOLL_E2E_KEEP=1
e2e-kind: kind-check helm
	$(MAKE) images IMAGE_TAG=$(IMAGE_TAG)
	PATH="$(dir $(KIND)):$$PATH" ATOLL_E2E_IMAGE_TAG=$(IMAGE_TAG) $(GO) test -tags kind -run TestKind -v -count=1 -timeout 60m ./test/e2e/multicluster/

kind-check: $(KIND)
	@PATH="$(dir $(KIND)):$$PATH" ./test/e2e/multicluster/kind/check.sh

## test-race: every test under the race detector, the end-to-end tests' atoll processes built with it too
test-race: tools kube-apiserver helm coredns
	ATOLL_E2E_RACE=1 $(GO) test -race $(TEST_FLAGS) -timeout 40m ./...

vet:
	$(GO) vet ./...
	$(GO) vet -tags kind ./test/e2e/multicluster/
	@unformatted=$$(gofmt -l $$(git ls-files '*.go' | grep -v '\.pb\.go$$') 2>/dev/null); \
	if [ -n "$$unformatted" ]; then echo "gofmt needed: $$unformatted"; exit 1; fi

## tools: install protoc, iptables and iproute2 (Debian) and the pinned protoc-gen-go, protoc-gen-go-grpc
tools: $(PROTOC_GEN_GO) $(PROTOC_GEN_GO_GRPC) netns-tools
	@command -v protoc >/dev/null && [ -f /usr/include/google/protobuf/timestamp.proto ] || { \
	  echo "installing protoc (Debian protobuf-compiler, libprotobuf-dev)"; \
	  SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
	  $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq protobuf-compiler libprotobuf-dev >/dev/null; }

# The transparent-proxy tests (internal/transparentproxy) run the real
# iptables, both its nf_tables and legacy backends, in network namespaces
# they create with ip(8). Debian's iptables package ships both backends.
NETNS_TOOLS := ip $(foreach f,iptables ip6tables,$(foreach b,nft legacy,$(f)-$(b) $(f)-$(b)-save $(f)-$(b)-restore))
netns-tools:
	@missing=$$(for t in $(NETNS_TOOLS); do PATH="$$PATH:/usr/sbin:/sbin" command -v $$t >/dev/null || echo $$t; done); \
	if [ -n "$$missing" ]; then \
	  echo "installing iptables and iproute2 (Debian) for the transparent-proxy tests; missing: $$(echo $$missing)"; \
	  SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
	  $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq iptables iproute2 >/dev/null; \
	fi

$(PROTOC_GEN_GO):
	mkdir -p $(TOOLS)
	GOBIN=$(TOOLS) $(GO) install google.golang.org/protobuf/cmd/protoc-gen-go@$(PROTOC_GEN_GO_VERSION)
	mv $(TOOLS)/protoc-gen-go $@

$(PROTOC_GEN_GO_GRPC):
	mkdir -p $(TOOLS)
	GOBIN=$(TOOLS) $(GO) install google.golang.org/grpc/cmd/protoc-gen-go-grpc@$(PROTOC_GEN_GO_GRPC_VERSION)
	mv $(TOOLS)/protoc-gen-go-grpc $@

## generate: regenerate the Go code of api/*.proto
generate: tools
	$(PROTOC) --go_out=. --go_opt=module=$(MODULE) --go-grpc_out=. --go-grpc_opt=module=$(MODULE) $(PROTOS)

## check-generated: fail when the committed generated code is stale
check-generated: tools
	@tmp=$$(mktemp -d); trap 'rm -rf $$tmp' EXIT; \
	$(PROTOC) --go_out=$$tmp --go_opt=module=$(MODULE) --go-grpc_out=$$tmp --go-grpc_opt=module=$(MODULE) $(PROTOS); \
	for f in $$(cd $$tmp && find . -name '*.pb.go'); do \
	  if ! diff -q -I '^//[[:space:]]*-*[[:space:]]*protoc[[:space:]]' $$tmp/$$f $$f >/dev/null 2>&1; then \
	    echo "generated code is stale: $$f (run make generate and commit)"; exit 1; fi; \
	done; echo "generated code is up to date"

## bench: run the benchmarks (results and how to read them: README), ending with one table of every measure against its target (met or MISSED); the output is kept in .run/bench.log; 10 minutes on a quiet machine, 20 on a busy one
bench: kube-apiserver
	GO=$(GO) BENCH='$(BENCH)' bash test/perf/bench.sh

## bench-dns: a running zone's DNS vs CoreDNS on a realistic query mix, both loaded by dnsperf, best of 5 rounds (about 5–7 minutes)
bench-dns: build $(COREDNS) dnsperf
	$(GO) run ./test/dnsbench -atoll $(BIN)/atoll -coredns $(COREDNS)

dnsperf:
	@command -v dnsperf >/dev/null || { \
	  echo "installing dnsperf (Debian)"; \
	  SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
	  $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq dnsperf >/dev/null; }

## kube-apiserver: build the pinned kube-apiserver for test/kubeenv into ~/.cache/atoll/tools, once (several minutes cold)
kube-apiserver: $(KUBE_APISERVER)

$(KUBE_APISERVER):
	@echo "building kube-apiserver $(KUBE_VERSION) into $@ (a cold build takes several minutes)"
	@mkdir -p $(KUBE_CACHE)
	@start=$$(date +%s); \
	cd test/kubeapiserver && $(GO) build -trimpath -ldflags '$(KUBE_LDFLAGS)' -o $@.tmp k8s.io/kubernetes/cmd/kube-apiserver; \
	mv $@.tmp $@; \
	echo "built kube-apiserver $(KUBE_VERSION) in $$(( $$(date +%s) - start ))s: $@"

## helm: build the pinned helm (test/helm/go.mod) for the chart tests into ~/.cache/atoll/tools, once (about 2 minutes cold)
helm: $(HELM)

$(HELM):
	@echo "building helm $(HELM_VERSION) into $@ (a cold build takes a couple of minutes)"
	@mkdir -p $(KUBE_CACHE)
	@start=$$(date +%s); \
	cd test/helm && $(GO) build -trimpath -ldflags '-s -w -X helm.sh/helm/v4/internal/version.version=$(HELM_VERSION)' -o $@.tmp helm.sh/helm/v4/cmd/helm; \
	mv $@.tmp $@; \
	echo "built helm $(HELM_VERSION) in $$(( $$(date +%s) - start ))s: $@"

## kind: build the pinned kind (test/kind/go.mod) for make e2e-kind into ~/.cache/atoll/tools, once (seconds)
kind: $(KIND)

$(KIND):
	@echo "building kind $(KIND_VERSION) into $@"
	@mkdir -p $(dir $@)
	@start=$$(date +%s); \
	cd test/kind && $(GO) build -trimpath -o $@.tmp sigs.k8s.io/kind; \
	mv $@.tmp $@; \
	echo "built kind $(KIND_VERSION) in $$(( $$(date +%s) - start ))s: $@"

## coredns: build the pinned CoreDNS (test/coredns) for the e2e suite's cluster DNS and bench-dns into ~/.cache/atoll/tools, once (a few minutes cold)
coredns: $(COREDNS)

$(COREDNS):
	@echo "building CoreDNS $(COREDNS_VERSION) into $@ (a cold build takes a few minutes)"
	@mkdir -p $(KUBE_CACHE)
	@start=$$(date +%s); \
	cd test/coredns && $(GO) build -trimpath -o $@.tmp .; \
	mv $@.tmp $@; \
	echo "built CoreDNS $(COREDNS_VERSION) in $$(( $$(date +%s) - start ))s: $@"

## fuzz: run every fuzz target for FUZZTIME each (default 1m)
FUZZTIME ?= 1m
fuzz:
	$(GO) test ./internal/resource -run '^$$' -fuzz FuzzDecodeValidate -fuzztime $(FUZZTIME)
	$(GO) test ./internal/apiserver -run '^$$' -fuzz FuzzPut -fuzztime $(FUZZTIME)
	$(GO) test ./kds -run '^$$' -fuzz FuzzSessionRecv -fuzztime $(FUZZTIME)
	$(GO) test ./global -run '^$$' -fuzz FuzzZoneApply -fuzztime $(FUZZTIME)
	$(GO) test ./zone -run '^$$' -fuzz FuzzGlobalApply -fuzztime $(FUZZTIME)
	$(GO) test ./dns -run '^$$' -fuzz FuzzServeDNS -fuzztime $(FUZZTIME)
	$(GO) test ./dns -run '^$$' -fuzz FuzzFastPath -fuzztime $(FUZZTIME)
	$(GO) test ./zone/xds -run '^$$' -fuzz FuzzAdmission -fuzztime $(FUZZTIME)

clean:
	rm -rf $(BIN) .run
