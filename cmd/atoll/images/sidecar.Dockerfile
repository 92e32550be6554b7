# The sidecar image: Envoy with atoll beside it. The injected container
# atoll-sidecar runs "atoll sidecar", which starts the DNS proxy and the xDS
# relay, writes Envoy's bootstrap into /var/run/atoll and runs Envoy. It
# runs as the proxy's UID (5678), whose traffic the transparent proxy does
# not redirect. Build from the repository root:
#   docker build -f cmd/atoll/images/sidecar.Dockerfile -t atoll-sidecar:dev .
# ENVOY_IMAGE picks the Envoy release (its distroless image: Envoy alone,
# at /usr/local/bin/envoy).
ARG ENVOY_IMAGE=envoyproxy/envoy:distroless-v1.35.0

FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG LDFLAGS=""
RUN CGO_ENABLED=0 go build -trimpath -ldflags "$LDFLAGS" -o /out/atoll ./cmd/atoll

FROM ${ENVOY_IMAGE}
COPY --from=build /out/atoll /usr/local/bin/atoll
ENV ATOLL_ENVOY_BINARY=/usr/local/bin/envoy
# The proxy's UID, numeric so Kubernetes' runAsNonRoot can check it; the
# webhook sets the same in the container's securityContext.
USER 5678:5678
ENTRYPOINT ["/usr/local/bin/atoll", "sidecar"]
