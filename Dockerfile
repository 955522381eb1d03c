# Build the operator binary.
FROM golang:1.26 AS builder
ARG TARGETOS
ARG TARGETARCH

WORKDIR /workspace
# Dependencies first: this layer is cached until go.mod or go.sum change.
COPY go.mod go.sum ./
RUN go mod download

# Package main is every .go file at the root, whatever its name (.dockerignore leaves tests out).
COPY *.go ./
COPY controllers/ controllers/
COPY internal/ internal/

# A static binary (no cgo) for the distroless image.
RUN CGO_ENABLED=0 GOOS=${TARGETOS:-linux} GOARCH=${TARGETARCH} go build -trimpath -ldflags="-s -w" -o whisperer .

# distroless: no shell, no package manager, runs as the nonroot user (65532).
FROM gcr.io/distroless/static:nonroot
WORKDIR /
COPY --from=builder /workspace/whisperer .
USER 65532:65532

ENTRYPOINT ["/whisperer"]
