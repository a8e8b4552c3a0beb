#!/usr/bin/env bash
# run-main.sh BUILD_DIR - the main job (`make run`): one wsgate gateway with
# its defaults and two wsgate-worker processes, in the foreground.
#
# Ctrl-C (or SIGTERM) stops everything: TERM to each child, a grace period,
# then KILL for stragglers. If any child dies on its own, the rest are
# stopped too and the script exits non-zero, so a supervisor sees it.
set -u

BUILD=${1:-build}
GATEWAY=$BUILD/gateway/wsgate
WORKER=$BUILD/workers/wsgate-worker

# Addresses can be moved with the environment (the main-job test does).
LISTEN=${WSGATE_LISTEN:-127.0.0.1:8080}
ADMIN=${WSGATE_ADMIN:-127.0.0.1:9090}
BACKEND=${WSGATE_BACKEND:-tcp://127.0.0.1:7001}
WWW=$BUILD/www # the browser demo and SDK (CMake copies clients/ there)
DEV=$BUILD/dev # this run's development key: a fresh secret every start
GRACE=${WSGATE_STOP_GRACE:-10} # seconds between TERM and KILL

for bin in "$GATEWAY" "$WORKER"; do
    if [ ! -x "$bin" ]; then
        echo "run-main: $bin not found; build first (make build)" >&2
        exit 1
    fi
done

declare -A NAMES=()  # pid -> name
declare -A REAPED=() # pid -> status, for children wait -n already collected

log() { echo "run-main: $*" >&2; }

start() { # name argv...
    local name=$1
    shift
    "$@" &
    NAMES[$!]=$name
    log "started $name (pid $!): $*"
}

alive_pids() {
    local pid
    for pid in "${!NAMES[@]}"; do
        kill -0 "$pid" 2>/dev/null && echo "$pid"
    done
}

stop_all() { # exit status
    local status=$1 pid deadline
    trap '' INT TERM
    # Workers first would let the gateway answer no_service meanwhile; the
    # gateway first closes clients with 1001 (going away), which is right.
    for pid in $(alive_pids); do
        [ "${NAMES[$pid]}" = gateway ] && kill -TERM "$pid" 2>/dev/null
    done
    for pid in $(alive_pids); do
        [ "${NAMES[$pid]}" != gateway ] && kill -TERM "$pid" 2>/dev/null
    done
    deadline=$((SECONDS + GRACE))
    while [ -n "$(alive_pids)" ] && [ $SECONDS -lt $deadline ]; do
        sleep 0.2
    done
    for pid in $(alive_pids); do
        log "${NAMES[$pid]} (pid $pid) still running after ${GRACE}s: KILL"
        kill -KILL "$pid" 2>/dev/null
    done
    for pid in "${!NAMES[@]}"; do
        [ -n "${REAPED[$pid]:-}" ] && continue
        wait "$pid" 2>/dev/null
        log "${NAMES[$pid]} (pid $pid) exited with status $?"
    done
    log "stopped"
    exit "$status"
}

trap 'log "signal received, stopping"; stop_all 0' INT TERM

# The DEVELOPMENT key: a random HS256 secret for this run only. The auth
# service verifies tokens with it and the devtoken service signs them with
# it, for anyone who asks (POST /dev/token). Production uses keys from its
# identity provider and never runs devtoken (docs/security.md).
mkdir -p "$DEV"
chmod 700 "$DEV"
(umask 077 && head -c 32 /dev/urandom >"$DEV/dev.secret" &&
    printf '[key dev]\nalgs = HS256\nsecret_file = %s\n' "$(cd "$DEV" && pwd)/dev.secret" \
        >"$DEV/keys.ini")
STATIC=()
[ -d "$WWW" ] && STATIC=(--static "$WWW")

start gateway "$GATEWAY" --listen "$LISTEN" --admin "$ADMIN" --backend "$BACKEND" \
    --raw /raw/echo=echo --raw-auth none --id gateway-1 \
    --auth required --dev-token devtoken "${STATIC[@]}"

# Workers connect (and reconnect) on their own; starting them right away is
# fine, but waiting for the admin port gives a clearer failure if the
# gateway cannot bind.
for _ in $(seq 50); do
    if (exec 3<>/dev/tcp/${ADMIN%:*}/${ADMIN#*:}) 2>/dev/null; then
        break
    fi
    kill -0 "${!NAMES[@]}" 2>/dev/null || break
    sleep 0.1
done

# Development settings: the devtoken service (tokens for anyone, granting
# room:* and public:*) beside the auth service that checks them.
for i in 1 2; do
    start worker-$i "$WORKER" --gateway "$BACKEND" --id worker-$i \
        --services echo,counter,chan,auth,devtoken \
        --auth-keys "$DEV/keys.ini" --dev-token-kid dev
done

cat >&2 <<EOF
run-main: wsgate is up
  demo       http://$LISTEN/          (a chat room in the browser)
  websocket  ws://$LISTEN/ws        (subprotocols wsgate.v1.json, wsgate.v1.msgpack)
  raw echo   ws://$LISTEN/raw/echo  (anonymous)
  metrics    http://$ADMIN/metrics
  health     http://$ADMIN/healthz
  backend    $BACKEND
  pids       $(for p in "${!NAMES[@]}"; do printf '%s=%s ' "${NAMES[$p]}" "$p"; done)
  auth       required; DEVELOPMENT token issuer on (anyone gets a token):
             curl -s -X POST http://$LISTEN/dev/token -d '{"user":"me"}'
  try        python3 -m websockets "ws://$LISTEN/ws?token=<the token>"
             then paste {"id":1,"svc":"echo","data":"hello"}
             channels   {"op":"sub","id":2,"channel":"room:1","presence":true}
                        {"op":"pub","id":3,"channel":"room:1","data":"hi"}
  stop       Ctrl-C
EOF

# wait -n returns when any child exits (or a trapped signal arrives, in which
# case the trap has already run stop_all and exited).
while :; do
    pid=
    wait -n -p pid
    status=$?
    [ -z "$pid" ] && continue
    REAPED[$pid]=$status
    # Ctrl-C in a terminal reaches the children as well, and one may exit
    # before our trap has run: give a pending trap the chance to go first.
    sleep 0.5
    log "${NAMES[$pid]} (pid $pid) exited unexpectedly (status $status); stopping the rest"
    stop_all 1
done
