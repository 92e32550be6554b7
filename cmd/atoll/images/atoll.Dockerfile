# The atoll image: the global and zone control planes (and atollctl), one
# static binary each, run as a non-root user. Build from the repository root:
#   docker build -f cmd/atoll/images/atoll.Dockerfile -t atoll:dev .
# (make images does this, with the version stamped.)
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG LDFLAGS=""
# No cgo: a static binary that runs on an empty base image.
RUN CGO_ENABLED=0 go build -trimpath -ldflags "$LDFLAGS" -o /out/atoll ./cmd/atoll && \
    CGO_ENABLED=0 go build -trimpath -ldflags "$LDFLAGS" -o /out/atollctl ./cmd/atollctl

FROM scratch
COPY --from=build /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY --from=build /out/atoll /out/atollctl /usr/local/bin/
# A numeric user, so Kubernetes' runAsNonRoot can check it without /etc/passwd.
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/atoll"]
