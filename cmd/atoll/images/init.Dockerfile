# The init image: atoll with iptables, for the init container that installs
# a pod's transparent-proxy rules (atoll transparent-proxy install). It runs
# as root with NET_ADMIN and NET_RAW only for as long as that takes. Build
# from the repository root:
#   docker build -f cmd/atoll/images/init.Dockerfile -t atoll-init:dev .
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG LDFLAGS=""
RUN CGO_ENABLED=0 go build -trimpath -ldflags "$LDFLAGS" -o /out/atoll ./cmd/atoll

FROM debian:bookworm-slim
# iptables brings both backends (nft and legacy); the command picks the one
# the node uses.
RUN apt-get update && apt-get install -y --no-install-recommends iptables && rm -rf /var/lib/apt/lists/*
COPY --from=build /out/atoll /usr/local/bin/atoll
ENTRYPOINT ["/usr/local/bin/atoll", "transparent-proxy"]
CMD ["install"]
