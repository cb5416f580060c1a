# Everything needs only Go: kube-apiserver and etcd for the tests and the
# demo are built from the Go module proxy by hack/envtest-assets.sh and
# cached (set KUBEBUILDER_ASSETS to use your own).
GO      ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X main.version=$(VERSION)

.PHONY: all build test fuzz demo demo-keep bench envtest-assets lint image clean deploy

all: build

build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "$(LDFLAGS)" -o bin/opencode-injector ./cmd/opencode-injector

envtest-assets:
	@hack/envtest-assets.sh

# deploy/ is `helm template` of the chart's defaults (charts/opencode-injector),
# with its kustomization and Components; a test fails when it is stale.
deploy:
	$(GO) run ./hack/chart

lint:
	@unformatted=$$(gofmt -l $$(git ls-files '*.go')); \
	  if [ -n "$$unformatted" ]; then echo "gofmt needed: $$unformatted"; exit 1; fi
	$(GO) vet ./...
	$(GO) vet -tags benchbaseline ./cmd/opencode-injector

# The whole suite: unit, golden, seed (real git over HTTPS) and envtest
# end-to-end tests. hack/image cross-compiles the image for two platforms,
# which takes minutes with a cold build cache: hence the longer timeout.
# As root, the real-node suite (test/node) runs too: hack/test-deps.sh
# installs containerd, runc and the CNI plugins, and envtest-assets.sh
# --node builds the kubelet, controller-manager and scheduler (cached).
# hack/flux-assets.sh builds Flux's kustomize-controller for test/fluxtree
# first (cached), so its build does not count against a package's timeout.
# Then the end-to-end suite runs again on the oldest Kubernetes minor the
# README claims, its kube-apiserver built the same way (cached).
OLDEST_K8S_VERSION ?= 1.30.14
test: lint
	@hack/test-deps.sh
	@hack/flux-assets.sh >/dev/null || true # a failed build is the Flux-tree test's to report
	@assets=$$(hack/envtest-assets.sh $$([ "$$(id -u)" -eq 0 ] && echo --node)) && KUBEBUILDER_ASSETS=$$assets KUBEBUILDER_CONTROLPLANE_START_TIMEOUT=$${KUBEBUILDER_CONTROLPLANE_START_TIMEOUT:-2m} $(GO) test -count=1 -timeout 30m ./...
	@assets=$$(KUBEBUILDER_ASSETS= K8S_VERSION=$(OLDEST_K8S_VERSION) hack/envtest-assets.sh) && KUBEBUILDER_ASSETS=$$assets E2E_KUBERNETES_VERSION=$(OLDEST_K8S_VERSION) KUBEBUILDER_CONTROLPLANE_START_TIMEOUT=$${KUBEBUILDER_CONTROLPLANE_START_TIMEOUT:-2m} $(GO) test -count=1 -timeout 20m ./test/e2e

# Explores the update properties with Go's fuzzer, FUZZTIME per target
# (the seed corpus already runs in `make test`).
FUZZTIME ?= 10m
fuzz:
	$(GO) test ./injection -run '^$$' -fuzz '^FuzzInject$$' -fuzztime $(FUZZTIME)

# Starts a control plane, registers the webhook from deploy/ and shows a
# workspace being injected; `make demo-keep` leaves it running for kubectl.
demo:
	@assets=$$(hack/envtest-assets.sh) && KUBEBUILDER_ASSETS=$$assets $(GO) run ./hack/demo

demo-keep:
	@assets=$$(hack/envtest-assets.sh) && KUBEBUILDER_ASSETS=$$assets $(GO) run ./hack/demo -keep

# Benchmarks print their figures beside the baseline measured in the same
# run: seed vs git clone (and on the four repository shapes of issue 8, time
# and peak RSS), seed restart vs process start, Inject vs the JSON round
# trip of every admission review, a full review through the webhook server
# (admission.Webhook ServeHTTP) vs decode-and-allow, each ratio printed with
# its target and "met" or "missed" (`make test` bounds its allocations), the
# same for a request with 20,000 env entries,
# the server over TLS at concurrency 16 vs a decode-and-allow and a
# patch-echo server (our exact patch, computed once; both are the
# bench-baseline command of the same binary, built with the benchbaseline
# tag), its idle RSS with 200
# workspaces and its peak at a fixed rate vs the patch-echo server's, and
# Deployment creates on a real API server with no webhook, a minimal one, a
# patch-echo one and ours, with the API server's own webhook call time and
# CPU per create (test/bench; BENCH_DURATION, BENCH_RATE, BENCH_CREATES and
# BENCH_INJECTOR_BINARY adjust it).
bench:
	$(GO) test -run '^$$' -bench 'Inject|Handle|LongList' -benchmem -count=1 ./injection ./webhook
	@assets=$$(hack/envtest-assets.sh) && KUBEBUILDER_ASSETS=$$assets $(GO) test -run '^$$' -bench . -benchtime 1x -count=1 -timeout 30m ./test/bench
	$(GO) test -run '^$$' -bench FirstClone -benchtime 3x -count=1 ./seed
	$(GO) test -run '^$$' -bench Restart -benchtime 20x -count=1 ./seed
	$(GO) test -run '^$$' -bench Shapes -benchtime 3x -count=1 -timeout 60m ./seed

# The injector image for linux/amd64 and linux/arm64, without Docker: an
# OCI layout in bin/image (hack/image). `make image PUSH=registry/repo:tag`
# also pushes it (credentials from the Docker config). `make image-docker`
# builds the equivalent image from the Dockerfile, for the host platform.
# The image repository is named once, in the chart (image.repository).
IMAGE     ?= $(shell $(GO) run ./hack/chart -image)
PLATFORMS ?= linux/amd64,linux/arm64
image:
	$(GO) run ./hack/image -version $(VERSION) -platforms $(PLATFORMS) -out bin/image $(if $(PUSH),-push $(PUSH))

image-docker:
	docker build --build-arg VERSION=$(VERSION) -t $(IMAGE):$(VERSION) .

clean:
	rm -rf bin .demo
