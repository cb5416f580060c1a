# One image serves the webhook (serve) and runs the init container (seed).
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" \
      -o /out/opencode-injector ./cmd/opencode-injector

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/opencode-injector /usr/local/bin/opencode-injector
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/opencode-injector"]
CMD ["serve"]
