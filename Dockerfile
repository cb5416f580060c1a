# One image serves the webhook (serve) and runs the init container (seed).
# The release builds it without Docker, with hack/image (`make image`): the
# same static binary on the same empty base with the same files and user.
# hack/image's test keeps this file equivalent.
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
ARG TARGETOS=linux
ARG TARGETARCH
RUN CGO_ENABLED=0 GOOS=${TARGETOS} GOARCH=${TARGETARCH} go build -trimpath \
      -ldflags "-s -w -X main.version=${VERSION}" \
      -o /out/opencode-injector ./cmd/opencode-injector

# Empty base: the CA roots are compiled into the binary
# (golang.org/x/crypto/x509roots/fallback); rootfs/ holds the nonroot user.
FROM scratch
COPY hack/image/rootfs/ /
COPY --from=build /out/opencode-injector /usr/local/bin/opencode-injector
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/opencode-injector"]
CMD ["serve"]
