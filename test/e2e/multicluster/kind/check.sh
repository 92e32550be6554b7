#!/usr/bin/env bash
# Checks what `make e2e-kind` needs besides Go: a Docker client with a
# running engine, kind (make kind builds the pinned one, which the Makefile
# puts first on PATH) and kubectl. Prints each tool's version, or what is
# missing and how to install it; exits 1 when anything is missing.
set -u

# The oldest kind whose default node image runs the chart's native sidecars
# (Kubernetes 1.29 and later) and the suite's written against.
KIND_MIN=0.24.0

missing=0
miss() { echo "MISSING: $1" >&2; shift; for line in "$@"; do echo "    $line" >&2; done; missing=1; }

# version_ge A B: whether version A (x.y.z) is at least B.
version_ge() { [ "$(printf '%s\n%s\n' "$2" "$1" | sort -V | head -n1)" = "$2" ]; }

if ! command -v docker >/dev/null 2>&1; then
  miss "docker (the Docker client and engine)" \
    "install Docker Engine (https://docs.docker.com/engine/install/) or Docker Desktop, and start it"
elif ! server=$(docker info --format '{{.ServerVersion}}' 2>/dev/null) || [ -z "$server" ]; then
  miss "a running Docker engine: the docker client is installed ($(command -v docker)) but no engine answers (docker info fails)" \
    "start the engine (sudo systemctl start docker, or start Docker Desktop), and check that your user may use it (docker info)"
else
  echo "docker: engine $server"
fi

if ! command -v kind >/dev/null 2>&1; then
  miss "kind (v$KIND_MIN or later)" \
    "run it through make e2e-kind, which builds the pinned kind (make kind) and puts it on PATH"
else
  v=$(kind version 2>/dev/null | awk '{print $2}')
  if [ -z "$v" ] || ! version_ge "${v#v}" "$KIND_MIN"; then
    miss "kind v$KIND_MIN or later: found ${v:-an unknown version} ($(command -v kind))" \
      "upgrade: go install sigs.k8s.io/kind@latest, or https://kind.sigs.k8s.io/docs/user/quick-start/#installation"
  else
    echo "kind: $v"
  fi
fi

if ! command -v kubectl >/dev/null 2>&1; then
  miss "kubectl" "install it: https://kubernetes.io/docs/tasks/tools/#kubectl"
else
  echo "kubectl: $(kubectl version --client 2>/dev/null | head -n1)"
fi

if [ "$missing" = 1 ]; then
  echo "make e2e-kind cannot run here: install what is MISSING above and run it again (make e2e runs the same scenarios without a container engine)" >&2
  exit 1
fi
