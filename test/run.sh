#!/usr/bin/env bash
# make run: a global on embedded etcd and two universal zones on loopback,
# with a sample topology: a delegated gateway "kong" in zone-1 and three
# "backend" instances in zone-2, real gRPC servers (bin/grpcdemo) that kong's
# identity then calls through zone-1's xDS server. Ctrl-C stops everything.
#
# Ports and the state directory can be moved with environment variables:
#   RUN_DIR (default .run)  GLOBAL_API_PORT (5681)  GLOBAL_KDS_PORT (5685)
#   ETCD_CLIENT_PORT (15379)  ETCD_PEER_PORT (15380)
#   ZONE1_API_PORT (5691)  ZONE2_API_PORT (5701)  ZONE1_DNS_PORT (5653)  ZONE2_DNS_PORT (5663)
#   ZONE1_XDS_PORT (5678)  ZONE2_XDS_PORT (5688)  BACKEND_PORT (9001, the backends' port on 127.0.0.2-4)
#   BIN (bin: atoll, atollctl, grpcdemo)
# State is kept in RUN_DIR between runs; `make clean` removes it.
set -euo pipefail
cd "$(dirname "$0")/.."

RUN_DIR=${RUN_DIR:-.run}
GLOBAL_API_PORT=${GLOBAL_API_PORT:-5681}
GLOBAL_KDS_PORT=${GLOBAL_KDS_PORT:-5685}
ETCD_CLIENT_PORT=${ETCD_CLIENT_PORT:-15379}
ETCD_PEER_PORT=${ETCD_PEER_PORT:-15380}
ZONE1_API_PORT=${ZONE1_API_PORT:-5691}
ZONE2_API_PORT=${ZONE2_API_PORT:-5701}
ZONE1_DNS_PORT=${ZONE1_DNS_PORT:-5653}
ZONE2_DNS_PORT=${ZONE2_DNS_PORT:-5663}
ZONE1_XDS_PORT=${ZONE1_XDS_PORT:-5678}
ZONE2_XDS_PORT=${ZONE2_XDS_PORT:-5688}
BACKEND_PORT=${BACKEND_PORT:-9001}
BIN=${BIN:-bin}
ATOLL=$BIN/atoll
ATOLLCTL=$BIN/atollctl
GRPCDEMO=$BIN/grpcdemo

mkdir -p "$RUN_DIR"
pids=()
names=()

# stop [int]: stops every process. On Ctrl-C the terminal has already sent
# them SIGINT (a graceful stop); a second signal would make them exit at
# once, so give them time to finish before signalling the stragglers.
stop() {
  trap - INT TERM
  echo
  echo "stopping: ${names[*]}"
  if [ "${1:-}" = int ]; then
    for _ in $(seq 1 50); do
      alive=0
      for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
      [ "$alive" = 0 ] && break
      sleep 0.2
    done
  fi
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  echo "stopped. State is kept in $RUN_DIR (make clean removes it)."
  exit 0
}
trap 'stop int' INT
trap stop TERM

# start NAME ARGS...: runs bin/atoll ARGS in the background, logging to RUN_DIR/NAME.log.
start() {
  local name=$1; shift
  run_bg "$name" "$ATOLL" "$@"
}

# run_bg NAME COMMAND ARGS...: runs a command in the background, logging to RUN_DIR/NAME.log.
run_bg() {
  local name=$1; shift
  "$@" >"$RUN_DIR/$name.log" 2>&1 &
  pids+=("$!")
  names+=("$name")
}

# wait_ready NAME URL: polls URL/readyz until it answers, or the process dies.
wait_ready() {
  local name=$1 url=$2 pid=${pids[-1]}
  for _ in $(seq 1 300); do
    if curl -fsS "$url/readyz" >/dev/null 2>&1; then return 0; fi
    if ! kill -0 "$pid" 2>/dev/null; then
      echo "$name failed to start; last lines of $RUN_DIR/$name.log:" >&2
      tail -n 20 "$RUN_DIR/$name.log" >&2
      stop
    fi
    sleep 0.2
  done
  echo "$name did not become ready within 60s; see $RUN_DIR/$name.log" >&2
  stop
}

for port in "$GLOBAL_API_PORT" "$ZONE1_API_PORT" "$ZONE2_API_PORT"; do
  if curl -fsS "http://127.0.0.1:$port/healthz" >/dev/null 2>&1; then
    echo "port $port already serves something (another make run?): stop it, or move ports with GLOBAL_API_PORT, ZONE1_API_PORT, ZONE2_API_PORT" >&2
    exit 1
  fi
done

GLOBAL=http://127.0.0.1:$GLOBAL_API_PORT
ZONE1=http://127.0.0.1:$ZONE1_API_PORT
ZONE2=http://127.0.0.1:$ZONE2_API_PORT

echo "starting global (embedded etcd in $RUN_DIR/global) ..."
start global global --data-dir "$RUN_DIR/global" \
  --api-addr "127.0.0.1:$GLOBAL_API_PORT" --kds-addr "127.0.0.1:$GLOBAL_KDS_PORT" \
  --etcd-client-addr "127.0.0.1:$ETCD_CLIENT_PORT" --etcd-peer-addr "127.0.0.1:$ETCD_PEER_PORT"
wait_ready global "$GLOBAL"

# The global generated a CA for KDS at first start; zones verify it with it.
CA="$RUN_DIR/global/kds-tls/kds-ca.pem"
# Each zone proves who it is with a token the global issues for it.
for zone in zone-1 zone-2; do
  "$ATOLLCTL" --api-url "$GLOBAL" generate zone-token --zone "$zone" >"$RUN_DIR/$zone.token"
done
echo "starting zone-1 and zone-2 (universal mode, synced with the global over TLS) ..."
start zone-1 zone --zone zone-1 --mode universal --data-dir "$RUN_DIR/zone-1" \
  --api-addr "127.0.0.1:$ZONE1_API_PORT" --ingress-port 10001 --dns-addr "127.0.0.1:$ZONE1_DNS_PORT" --xds-addr "127.0.0.1:$ZONE1_XDS_PORT" \
  --global-address "grpcs://127.0.0.1:$GLOBAL_KDS_PORT" --global-ca-file "$CA" --global-token-file "$RUN_DIR/zone-1.token"
wait_ready zone-1 "$ZONE1"
start zone-2 zone --zone zone-2 --mode universal --data-dir "$RUN_DIR/zone-2" \
  --api-addr "127.0.0.1:$ZONE2_API_PORT" --ingress-port 10002 --dns-addr "127.0.0.1:$ZONE2_DNS_PORT" --xds-addr "127.0.0.1:$ZONE2_XDS_PORT" \
  --global-address "grpcs://127.0.0.1:$GLOBAL_KDS_PORT" --global-ca-file "$CA" --global-token-file "$RUN_DIR/zone-2.token"
wait_ready zone-2 "$ZONE2"

# The sample runs on one machine, a flat network: zone-1 reaches zone-2's
# instances directly (with Ingress, the default, it would go through zone-2's
# ingress, an Envoy this sample does not run).
curl -fsS -XPUT "$GLOBAL/meshes/default" -d '{"type":"Mesh","crossZone":{"mode":"Direct"}}' >/dev/null

echo "starting backend-1..3, gRPC servers on 127.0.0.2-4:$BACKEND_PORT (bin/grpcdemo) ..."
for i in 1 2 3; do
  run_bg "backend-$i" "$GRPCDEMO" serve "backend-$i" "127.0.0.$((i + 1)):$BACKEND_PORT"
done

echo "registering the sample topology (test/sample) ..."
"$ATOLLCTL" --api-url "$ZONE1" apply -f test/sample/zone-1.yaml
sed "s/port: 9001$/port: $BACKEND_PORT/" test/sample/zone-2.yaml | "$ATOLLCTL" --api-url "$ZONE2" apply -f -

echo "waiting for zone-1 to learn that backend runs in zone-2 ..."
for _ in $(seq 1 100); do
  curl -fsS "$ZONE1/meshes/default/services" 2>/dev/null | grep -q '"zone-2":3' &&
    curl -fsS "$ZONE1/meshes/default/vips" 2>/dev/null | grep -q '"service":"backend","vip"' &&
    [ "$(curl -fsS "$ZONE1/meshes/default/serviceendpoints" 2>/dev/null | grep -o '"address":"[^"]*"' | sort -u | wc -l)" -ge 3 ] && break
  sleep 0.1
done

# kong's identity calls backend through zone-1's xDS server, from the
# bootstrap zone-1 serves for it (grpc-go's own xDS client).
"$ATOLLCTL" --api-url "$ZONE1" bootstrap dataplane kong --kind proxyless >"$RUN_DIR/kong-xds.json"
CALL_OUTPUT=$("$GRPCDEMO" call -bootstrap "$RUN_DIR/kong-xds.json" -n 6 xds:///backend.mesh:$BACKEND_PORT 2>&1 || true)

cat <<INFO

atoll is running:
  global   API $GLOBAL   (KDS 127.0.0.1:$GLOBAL_KDS_PORT, etcd 127.0.0.1:$ETCD_CLIENT_PORT)   log $RUN_DIR/global.log
  zone-1   API $ZONE1   DNS 127.0.0.1:$ZONE1_DNS_PORT   xDS 127.0.0.1:$ZONE1_XDS_PORT   delegated gateway "kong"         log $RUN_DIR/zone-1.log
  zone-2   API $ZONE2   DNS 127.0.0.1:$ZONE2_DNS_PORT   xDS 127.0.0.1:$ZONE2_XDS_PORT   three instances of "backend"     log $RUN_DIR/zone-2.log

zones, as the global sees them (atollctl get zones):
$("$ATOLLCTL" --api-url "$GLOBAL" get zones)

services zone-1 can reach (atollctl get services) — backend runs in zone-2:
$("$ATOLLCTL" --api-url "$ZONE1" get services)

backend's VIP, the same in every zone (GET /meshes/default/vips):
$(curl -s "$GLOBAL/meshes/default/vips")

Dataplanes synced to the global (named <name>.<zone>):
$("$ATOLLCTL" --api-url "$GLOBAL" get dataplanes)

kong (zone-1) calling xds:///backend.mesh:$BACKEND_PORT through zone-1's xDS server:
$CALL_OUTPUT

Try, in another terminal:
  dig @127.0.0.1 -p $ZONE1_DNS_PORT backend.mesh +short   # from zone-1, where backend has no instance
  dig @127.0.0.1 -p $ZONE2_DNS_PORT backend.mesh +tcp +short
  dig @127.0.0.1 -p $ZONE1_DNS_PORT nope.mesh           # NXDOMAIN
  bin/grpcdemo call -bootstrap $RUN_DIR/kong-xds.json xds:///backend.mesh:$BACKEND_PORT   # kong calling backend in zone-2
  bin/atollctl --api-url $ZONE1 inspect dataplane kong   # kong's config: backend:$BACKEND_PORT at zone-2's instances
  bin/atollctl --api-url $ZONE2 delete dataplane backend-3
  bin/atollctl --api-url $ZONE1 get services            # backend: 2 instances in zone-2; calls skip backend-3
  echo '{"type":"Zone","enabled":false}' | curl -s -XPUT --data-binary @- $GLOBAL/zones/zone-2
  bin/atollctl --api-url $ZONE1 get services            # zone-2's services withdrawn
  bin/grpcdemo call -bootstrap $RUN_DIR/kong-xds.json xds:///backend.mesh:$BACKEND_PORT   # now fails: no instance anywhere
  bin/atollctl --api-url $GLOBAL get zones
  bin/atollctl --api-url $GLOBAL revoke zone-token --zone zone-2   # zone-2's connection is cut; it cannot reconnect
  curl -s $ZONE2/readyz                                 # zone-2 says the global refuses its credentials
  bin/atollctl --api-url $GLOBAL generate zone-token --zone zone-2 > $RUN_DIR/zone-2.token   # a new token: zone-2 is back
  curl -s $ZONE1/zone                                   # zone-1's own view of its sync
  curl -s $GLOBAL/metrics | grep atoll_

Press Ctrl-C to stop everything.
INFO

# Wait for Ctrl-C; report a process that exits on its own.
while true; do
  for i in "${!pids[@]}"; do
    if ! kill -0 "${pids[$i]}" 2>/dev/null; then
      echo "${names[$i]} exited; last lines of $RUN_DIR/${names[$i]}.log:" >&2
      tail -n 20 "$RUN_DIR/${names[$i]}.log" >&2
      stop
    fi
  done
  sleep 1 &
  wait $! || true
done
