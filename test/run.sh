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
# Every wait is bounded; when one runs out the script says what did not
# happen and the command that fixes it.
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
  # Up to 30s for a graceful stop, then SIGKILL for what is left.
  for _ in $(seq 1 150); do
    alive=0
    for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
    [ "$alive" = 0 ] && break
    sleep 0.2
  done
  for i in "${!pids[@]}"; do
    if kill -0 "${pids[$i]}" 2>/dev/null; then
      echo "${names[$i]} did not stop within 30s of SIGTERM: killed it; see $RUN_DIR/${names[$i]}.log" >&2
      kill -KILL "${pids[$i]}" 2>/dev/null || true
    fi
  done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  echo "stopped. State is kept in $RUN_DIR (make clean removes it)."
  exit "$exit_code"
}
exit_code=0
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

# fail MESSAGE...: prints the message to stderr and stops everything; the
# script exits 1.
fail() {
  printf '%s\n' "$@" >&2
  exit_code=1
  stop
}

# wait_ready NAME URL: polls URL/readyz for up to 60s, or until the process dies.
wait_ready() {
  local name=$1 url=$2 pid=${pids[-1]}
  for _ in $(seq 1 300); do
    if curl -fsS "$url/readyz" >/dev/null 2>&1; then return 0; fi
    if ! kill -0 "$pid" 2>/dev/null; then
      echo "$name exited while starting; last lines of $RUN_DIR/$name.log:" >&2
      tail -n 20 "$RUN_DIR/$name.log" >&2
      if grep -q "address already in use" "$RUN_DIR/$name.log"; then
        echo "A port $name needs is in use (the log above names it): find the process with  ss -ltnup | grep :PORT  and stop it, or move the port (variables at the top of test/run.sh)." >&2
      fi
      exit_code=1
      stop
    fi
    sleep 0.2
  done
  fail "$name did not become ready within 60s; $url/readyz says:" \
    "$(curl -sS "$url/readyz" 2>&1 | head -n 20)" \
    "See $RUN_DIR/$name.log."
}

# port_in_use PORT [HOST]: something accepts TCP connections on HOST:PORT.
port_in_use() { (exec 3<>"/dev/tcp/${2:-127.0.0.1}/$1") 2>/dev/null; }

# Every TCP port the run listens on must be free. (A UDP-only holder of a
# DNS port shows when the zone starts: its log names the address.)
busy=()
busy_var=
for spec in "GLOBAL_API_PORT:the global's API" "GLOBAL_KDS_PORT:the global's KDS" \
  "ETCD_CLIENT_PORT:the global's embedded etcd" "ETCD_PEER_PORT:the global's embedded etcd, peer" \
  "ZONE1_API_PORT:zone-1's API" "ZONE2_API_PORT:zone-2's API" "ZONE1_DNS_PORT:zone-1's DNS" \
  "ZONE2_DNS_PORT:zone-2's DNS" "ZONE1_XDS_PORT:zone-1's xDS" "ZONE2_XDS_PORT:zone-2's xDS"; do
  var=${spec%%:*}
  if port_in_use "${!var}"; then
    busy+=("  127.0.0.1:${!var} ($var, ${spec#*:}) is in use")
    busy_var=${busy_var:-$var}
  fi
done
for host in 127.0.0.2 127.0.0.3 127.0.0.4; do
  if port_in_use "$BACKEND_PORT" "$host"; then
    busy+=("  $host:$BACKEND_PORT (BACKEND_PORT, a sample backend) is in use")
    busy_var=${busy_var:-BACKEND_PORT}
  fi
done
if [ "${#busy[@]}" -gt 0 ]; then
  {
    echo "make run cannot start: ports it needs are taken."
    printf '%s\n' "${busy[@]}"
    for port in "$GLOBAL_API_PORT" "$ZONE1_API_PORT" "$ZONE2_API_PORT"; do
      if curl -fsS "http://127.0.0.1:$port/healthz" >/dev/null 2>&1; then
        echo "127.0.0.1:$port answers /healthz: another make run (or atoll) is running; stop it with Ctrl-C in its terminal."
        break
      fi
    done
    echo "Find the process holding a port with:  ss -ltnp 'sport = :PORT'  (or: lsof -nP -iTCP:PORT -sTCP:LISTEN)"
    echo "Stop it, or move the port, e.g.  $busy_var=<another port> make run"
  } >&2
  exit 1
fi

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
  "$ATOLLCTL" --api-url "$GLOBAL" generate zone-token --zone "$zone" >"$RUN_DIR/$zone.token" ||
    fail "the global did not issue a token for $zone (atollctl's error above); see $RUN_DIR/global.log"
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
curl -fsS -XPUT "$GLOBAL/meshes/default" -d '{"type":"Mesh","crossZone":{"mode":"Direct"}}' >/dev/null ||
  fail "the global did not store mesh default (curl's error above); see $RUN_DIR/global.log"

# State is kept between runs: a zone disabled in an earlier run (a "Try"
# step below) stays disabled, and zone-1 sees none of its services.
disabled=()
for zone in zone-1 zone-2; do
  if curl -fsS "$GLOBAL/zones/$zone" 2>/dev/null | grep -q '"enabled":false'; then
    disabled+=("$zone")
  fi
done
# enable_hint: how to enable the disabled zones again.
enable_hint() {
  for zone in "${disabled[@]}"; do
    echo "$zone is disabled at the global (kept in $RUN_DIR from an earlier run), so zone-1 does not see its services. Enable it with:"
    echo "  printf 'type: Zone\nname: $zone\nenabled: true\n' | $ATOLLCTL --api-url $GLOBAL apply -f -"
  done
  [ "${#disabled[@]}" -eq 0 ] || echo "(or start afresh: stop this run, make clean, make run)"
}

echo "starting backend-1..3, gRPC servers on 127.0.0.2-4:$BACKEND_PORT (bin/grpcdemo) ..."
for i in 1 2 3; do
  run_bg "backend-$i" "$GRPCDEMO" serve "backend-$i" "127.0.0.$((i + 1)):$BACKEND_PORT"
done

echo "registering the sample topology (test/sample) ..."
"$ATOLLCTL" --api-url "$ZONE1" apply -f test/sample/zone-1.yaml
sed "s/port: 9001$/port: $BACKEND_PORT/" test/sample/zone-2.yaml | "$ATOLLCTL" --api-url "$ZONE2" apply -f -

# learned: zone-1 knows backend's 3 instances in zone-2, its VIP and their
# addresses; otherwise prints what is missing.
learned() {
  if ! curl -fsS "$ZONE1/meshes/default/services" 2>/dev/null | grep -q '"zone-2":3'; then
    echo "zone-1 does not list 3 instances of backend in zone-2 ($ATOLLCTL --api-url $ZONE1 get services)"
    return 1
  fi
  if ! curl -fsS "$ZONE1/meshes/default/vips" 2>/dev/null | grep -q '"service":"backend","vip"'; then
    echo "zone-1 has no VIP for backend yet ($ATOLLCTL --api-url $ZONE1 get vips)"
    return 1
  fi
  if [ "$(curl -fsS "$ZONE1/meshes/default/serviceendpoints" 2>/dev/null | grep -o '"address":"[^"]*"' | sort -u | wc -l)" -lt 3 ]; then
    echo "zone-1 does not have the addresses of backend's 3 instances (curl -s $ZONE1/meshes/default/serviceendpoints)"
    return 1
  fi
}
if [ "${#disabled[@]}" -gt 0 ]; then
  echo
  enable_hint
  echo "Not waiting for zone-1 to learn about backend: kong's calls below fail."
  echo
else
  echo "waiting for zone-1 to learn that backend runs in zone-2 (up to 30s) ..."
  missing=
  for _ in $(seq 1 150); do
    missing=$(learned) && break
    sleep 0.2
  done
  if [ -n "$missing" ]; then
    {
      echo "zone-1 did not learn within 30s that backend runs in zone-2: $missing."
      for zone in zone-1 zone-2; do
        if ! curl -fsS "$GLOBAL/zones/$zone" 2>/dev/null | grep -q '"online":true'; then
          echo "$zone is not connected to the global: GET /zone on it says why:"
          curl -sS "$([ "$zone" = zone-1 ] && echo "$ZONE1" || echo "$ZONE2")/zone" 2>&1 | head -c 2000
          echo
        fi
      done
      echo "Check that both zones are online and enabled ($ATOLLCTL --api-url $GLOBAL get zones) and the logs $RUN_DIR/zone-1.log, $RUN_DIR/zone-2.log, $RUN_DIR/global.log."
    } >&2
  fi
fi

# kong's identity calls backend through zone-1's xDS server, from the
# bootstrap zone-1 serves for it (grpc-go's own xDS client).
"$ATOLLCTL" --api-url "$ZONE1" bootstrap dataplane kong --kind proxyless >"$RUN_DIR/kong-xds.json"
CALL_OUTPUT=$("$GRPCDEMO" call -bootstrap "$RUN_DIR/kong-xds.json" -zone zone-1 -n 6 xds:///backend.mesh:$BACKEND_PORT 2>&1 || true)
if [ "${#disabled[@]}" -gt 0 ]; then
  CALL_OUTPUT+=$'\n\n'$(enable_hint)
fi
SERVICES_NOTE=" — backend runs in zone-2"
if [ "${#disabled[@]}" -gt 0 ]; then
  SERVICES_NOTE=" — none of ${disabled[*]}, disabled"
fi
# The command that registers zone-2's sample again (undoes a delete).
if [ "$BACKEND_PORT" = 9001 ]; then
  APPLY_ZONE2="$ATOLLCTL --api-url $ZONE2 apply -f test/sample/zone-2.yaml"
else
  APPLY_ZONE2="sed 's/port: 9001\$/port: $BACKEND_PORT/' test/sample/zone-2.yaml | $ATOLLCTL --api-url $ZONE2 apply -f -"
fi

cat <<INFO

atoll is running:
  global   API $GLOBAL   (KDS 127.0.0.1:$GLOBAL_KDS_PORT, etcd 127.0.0.1:$ETCD_CLIENT_PORT)   log $RUN_DIR/global.log
  zone-1   API $ZONE1   DNS 127.0.0.1:$ZONE1_DNS_PORT   xDS 127.0.0.1:$ZONE1_XDS_PORT   delegated gateway "kong"         log $RUN_DIR/zone-1.log
  zone-2   API $ZONE2   DNS 127.0.0.1:$ZONE2_DNS_PORT   xDS 127.0.0.1:$ZONE2_XDS_PORT   three instances of "backend"     log $RUN_DIR/zone-2.log

zones, as the global sees them (atollctl get zones):
$("$ATOLLCTL" --api-url "$GLOBAL" get zones)

services zone-1 can reach (atollctl get services)$SERVICES_NOTE:
$("$ATOLLCTL" --api-url "$ZONE1" get services)

backend's VIP, the same in every zone (GET /meshes/default/vips):
$(curl -s "$GLOBAL/meshes/default/vips")

Dataplanes synced to the global (named <name>.<zone>):
$("$ATOLLCTL" --api-url "$GLOBAL" get dataplanes)

kong (zone-1) calling xds:///backend.mesh:$BACKEND_PORT through zone-1's xDS server:
$CALL_OUTPUT

Try, in another terminal (each command that changes something is followed by the one that undoes it):
  dig @127.0.0.1 -p $ZONE1_DNS_PORT backend.mesh +short   # from zone-1, where backend has no instance (dig: Debian bind9-dnsutils)
  $GRPCDEMO resolve -server 127.0.0.1:$ZONE1_DNS_PORT backend.mesh   # the same question without dig
  dig @127.0.0.1 -p $ZONE2_DNS_PORT backend.mesh +tcp +short
  dig @127.0.0.1 -p $ZONE1_DNS_PORT nope.mesh           # NXDOMAIN
  $GRPCDEMO call -bootstrap $RUN_DIR/kong-xds.json -zone zone-1 xds:///backend.mesh:$BACKEND_PORT   # kong calling backend in zone-2
  $ATOLLCTL --api-url $ZONE1 inspect dataplane kong   # kong's config: backend:$BACKEND_PORT at zone-2's instances
  $ATOLLCTL --api-url $ZONE2 delete dataplane backend-3
  $ATOLLCTL --api-url $ZONE1 get services            # backend: 2 instances in zone-2; calls skip backend-3
  $APPLY_ZONE2   # undo: backend-3 is back
  printf 'type: Zone\nname: zone-2\nenabled: false\n' | $ATOLLCTL --api-url $GLOBAL apply -f -   # disable zone-2
  $ATOLLCTL --api-url $ZONE1 get services            # zone-2's services withdrawn
  $GRPCDEMO call -bootstrap $RUN_DIR/kong-xds.json -zone zone-1 xds:///backend.mesh:$BACKEND_PORT   # fails within 5s: no endpoints for backend.mesh in zone-1
  printf 'type: Zone\nname: zone-2\nenabled: true\n' | $ATOLLCTL --api-url $GLOBAL apply -f -   # undo: zone-2 enabled again
  $ATOLLCTL --api-url $GLOBAL get zones
  $ATOLLCTL --api-url $GLOBAL revoke zone-token --zone zone-2   # zone-2's connection is cut; it cannot reconnect
  curl -s $ZONE2/readyz                                 # zone-2 says the global refuses its credentials
  $ATOLLCTL --api-url $GLOBAL generate zone-token --zone zone-2 > $RUN_DIR/zone-2.token   # undo: a new token, zone-2 is back
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
      exit_code=1
      stop
    fi
  done
  sleep 1 &
  wait $! || true
done
