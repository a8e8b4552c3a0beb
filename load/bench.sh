#!/usr/bin/env bash
# load/bench.sh - wsgate's benchmark suite in one command (docs/benchmarks.md).
#
#   load/bench.sh [BUILD_DIR] [--quick | --held] [--out DIR] [options]
#
# Builds nothing: it runs the binaries of BUILD_DIR (default: build). It
# starts a local deployment on loopback (N gateways sharing one port with
# SO_REUSEPORT, a "solo" gateway on a port of its own for the one-process
# figures, K workers with the echo, auth and chan services, and N
# wsgate-bare-echo processes sharing a port: the ceiling), runs the
# standard scenarios with wsgate-load, samples every server process's RSS
# (/proc/PID/status VmRSS) and CPU time (/proc/PID/stat utime+stime)
# before and after each, and writes into the output directory:
#
#   raw/*.json        every wsgate-load report, as the tool wrote it
#   logs/             the servers' and the load tool's output
#   meta.jsonl        what ran: commands, exit codes, samples, steps
#   summary.json      every figure (load/bench_report.py makes it)
#   summary.md        the same for humans, pasteable into docs/benchmarks.md
#   plots/*.png       latency percentiles, handshake rate and RSS against
#                     connections held
#   perf/*.txt        with --perf: the gateway's top symbols per scenario
#
# Every scenario is bounded in count and time; the default run takes about
# 3-5 minutes, --quick under a minute, --held (100k connections over six
# gateways) about 2 minutes. The exit status is 0 when every scenario ran
# and none reported a failure (refused or dropped connections, errors,
# missing replies or deliveries, timeouts); the figures themselves never
# fail it.
set -u -o pipefail

usage() {
    cat <<'EOF'
usage: load/bench.sh [BUILD_DIR] [options]
  BUILD_DIR             where the binaries are (build)
  --quick               tiny counts, every scenario and plot (about 40 s)
  --held                only the held-connections run (100k by default)
  --out DIR             output directory (bench-out/<date>-<time>)
  --gateways N          gateway processes sharing the port (2; held: 6)
  --workers K           worker processes (1)
  --port-base P         ports P..P+39 on 127.0.0.1 (24100); must be free
  --perf                also record perf on the gateway during each scenario
                        (perturbs the figures: use for a profile, not a table)
  --label TEXT          a note for the summary (e.g. "second run")
held mode:
  --held-conns N        connections in all (100000)
  --held-procs P        wsgate-load processes (6)
  --hold S              seconds to hold them (60)
  --ping-ms N           the gateways' ping interval (10000)
EOF
}

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ARGV=$(printf '%q ' "$@")
BUILD=build
MODE=default
OUT=
N_GW=
N_WK=1
BASE=24100
PERF=0
LABEL=
HELD_CONNS=100000
HELD_PROCS=6
HELD_HOLD=60
HELD_PING=10000
while [ $# -gt 0 ]; do
    case "$1" in
    --quick) MODE=quick ;;
    --held) MODE=held ;;
    --out) OUT=$2; shift ;;
    --gateways) N_GW=$2; shift ;;
    --workers) N_WK=$2; shift ;;
    --port-base) BASE=$2; shift ;;
    --perf) PERF=1 ;;
    --label) LABEL=$2; shift ;;
    --held-conns) HELD_CONNS=$2; shift ;;
    --held-procs) HELD_PROCS=$2; shift ;;
    --hold) HELD_HOLD=$2; shift ;;
    --ping-ms) HELD_PING=$2; shift ;;
    -h | --help) usage; exit 0 ;;
    -*) echo "bench.sh: unknown option $1" >&2; usage >&2; exit 2 ;;
    *) BUILD=$1 ;;
    esac
    shift
done
if [ -z "$N_GW" ]; then
    if [ "$MODE" = held ]; then N_GW=6; else N_GW=2; fi
fi
for v in N_GW N_WK BASE HELD_CONNS HELD_PROCS HELD_HOLD HELD_PING; do
    case "${!v}" in '' | *[!0-9]*) echo "bench.sh: $v must be a number" >&2; exit 2 ;; esac
done
if [ "$N_GW" -lt 1 ] || [ "$N_GW" -gt 8 ] || [ "$N_WK" -lt 1 ] || [ "$N_WK" -gt 8 ]; then
    echo "bench.sh: --gateways and --workers: 1 to 8" >&2
    exit 2
fi

GW_BIN=$BUILD/gateway/wsgate
WK_BIN=$BUILD/workers/wsgate-worker
LOAD_BIN=$BUILD/load/wsgate-load
BARE_BIN=$BUILD/load/wsgate-bare-echo
for b in "$GW_BIN" "$WK_BIN" "$LOAD_BIN" "$BARE_BIN"; do
    if [ ! -x "$b" ]; then
        echo "bench.sh: $b not found: build first (make build), or give the build directory" >&2
        exit 2
    fi
done
PY=/usr/bin/python3
[ -x "$PY" ] || PY=python3

[ -n "$OUT" ] || OUT=bench-out/$(date +%Y%m%d-%H%M%S)
mkdir -p "$OUT/raw" "$OUT/logs" "$OUT/plots" || exit 2
OUT=$(cd "$OUT" && pwd)
META=$OUT/meta.jsonl
: >"$META"

# ------------------------------------------------------------- ports ---
# P: the group's shared port; P+1 the solo gateway; P+2 the bare echo;
# admins P+10+i (solo P+19); backends P+20+i (solo P+29); workers' metrics P+30+k.
PORT_GROUP=$BASE
PORT_SOLO=$((BASE + 1))
PORT_BARE=$((BASE + 2))
ADMIN_SOLO=$((BASE + 19))
BACKEND_SOLO=$((BASE + 29))

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
for ((p = BASE; p < BASE + 40; p++)); do
    if port_in_use "$p"; then
        echo "bench.sh: port $p is in use: pick another --port-base" >&2
        exit 2
    fi
done

# ---------------------------------------------------------- helpers ---
log() { printf '[bench %s] %s\n' "$(date +%T)" "$*" >&2; }
now() { date +%s.%N; }
jstr() { # a JSON string
    local s=${1//\\/\\\\}
    s=${s//\"/\\\"}
    s=${s//$'\n'/\\n}
    s=${s//$'\t'/ }
    printf '"%s"' "$s"
}
meta() { printf '%s\n' "$1" >>"$META"; }

# The processes we started, by name, in start order; cleanup ends them.
declare -A PID=()
NAMES=()
STRAY=() # load processes running in the background (steps)

cleanup() {
    local p n
    for p in "${STRAY[@]}"; do kill -INT "$p" 2>/dev/null; done
    for n in "${NAMES[@]}"; do
        p=${PID[$n]:-}
        [ -n "$p" ] && kill -TERM "$p" 2>/dev/null
    done
    for _ in $(seq 1 30); do
        local alive=0
        for n in "${NAMES[@]}"; do
            p=${PID[$n]:-}
            [ -n "$p" ] && kill -0 "$p" 2>/dev/null && alive=1
        done
        for p in "${STRAY[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
        [ $alive = 0 ] && break
        sleep 0.1
    done
    for n in "${NAMES[@]}"; do
        p=${PID[$n]:-}
        [ -n "$p" ] && kill -KILL "$p" 2>/dev/null
    done
    for p in "${STRAY[@]}"; do kill -KILL "$p" 2>/dev/null; done
    wait 2>/dev/null
}
trap cleanup EXIT
trap 'log "interrupted"; exit 130' INT TERM

start() { # start NAME CMD... : a server process in the background
    local name=$1
    shift
    "$@" >"$OUT/logs/$name.log" 2>&1 &
    PID[$name]=$!
    NAMES+=("$name")
    meta "{\"type\":\"process\",\"name\":$(jstr "$name"),\"pid\":$!,\"cmd\":$(jstr "$*")}"
}

stop() { # stop NAME: SIGTERM, then wait (bounded)
    local name=$1 p=${PID[$1]:-}
    [ -n "$p" ] || return 0
    kill -TERM "$p" 2>/dev/null
    for _ in $(seq 1 100); do
        kill -0 "$p" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$p" 2>/dev/null
    wait "$p" 2>/dev/null
    unset "PID[$name]"
}

http_get() { # http_get PORT PATH: status line and body
    (
        exec 3<>"/dev/tcp/127.0.0.1/$1" || exit 1
        printf 'GET %s HTTP/1.0\r\nHost: bench\r\n\r\n' "$2" >&3
        timeout 5 cat <&3
    ) 2>/dev/null
}

metric() { # metric ADMIN_PORT NAME: the value of one sample line (0 if absent)
    http_get "$1" /metrics | awk -v n="$2" '$1 == n { v = $2 } END { print v + 0 }'
}

POLL=0.1
wait_until() { # wait_until SECONDS CMD...: poll CMD every $POLL s until it succeeds
    local end=$((SECONDS + $1))
    shift
    while [ $SECONDS -lt $end ]; do
        "$@" && return 0
        sleep "$POLL"
    done
    "$@"
}
ready() { http_get "$1" /readyz | head -1 | grep -q ' 200'; }
listening() { port_in_use "$1"; }
conns_at_least() { [ "$(metric "$1" wsgate_connections)" -ge "$2" ]; }
authed_at_least() { [ "$(metric "$1" 'wsgate_auth_total{result="ok"}')" -ge "$2" ]; }

# CPU clock ticks per second, for utime+stime
TICKS=$(getconf CLK_TCK)

sample() { # sample TAG: RSS and CPU time of every running server process
    local tag=$1 n p rss s
    for n in "${NAMES[@]}"; do
        p=${PID[$n]:-}
        [ -n "$p" ] && [ -r "/proc/$p/stat" ] || continue
        rss=$(awk '/^VmRSS:/ { print $2 }' "/proc/$p/status" 2>/dev/null)
        s=$(cat "/proc/$p/stat" 2>/dev/null) || continue
        s=${s##*) }
        # shellcheck disable=SC2086
        set -- $s
        meta "{\"type\":\"sample\",\"tag\":$(jstr "$tag"),\"proc\":$(jstr "$n"),\"pid\":$p,\"t\":$(now),\"rss_kb\":${rss:-0},\"cpu_s\":$(awk -v u="${12}" -v s="${13}" -v t="$TICKS" 'BEGIN { printf "%.2f", (u + s) / t }')}"
    done
}

rss_kb() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status" 2>/dev/null || echo 0; }

# CPU seconds of this shell's waited-for children (the load runs): the
# builtin `times`, run in this shell (a subshell would see none)
CHILD_CPU=0
children_cpu() {
    times >"$OUT/.times"
    CHILD_CPU=$(awk 'NR == 2 {
        n = split($1 " " $2, a, " "); t = 0
        for (i = 1; i <= n; i++) { split(a[i], m, "m"); sub("s", "", m[2]); t += m[1] * 60 + m[2] }
        printf "%.2f", t }' "$OUT/.times")
}

# perf on a gateway during one scenario (--perf)
PERF_PID=
perf_start() { # perf_start NAME GATEWAY_PID
    [ "$PERF" = 1 ] || return 0
    mkdir -p "$OUT/perf"
    perf record -F 999 -g -p "$2" -o "$OUT/perf/$1.data" >"$OUT/perf/$1.log" 2>&1 &
    PERF_PID=$!
    sleep 0.3
}
perf_stop() { # perf_stop NAME
    [ -n "$PERF_PID" ] || return 0
    kill -INT "$PERF_PID" 2>/dev/null
    wait "$PERF_PID" 2>/dev/null
    PERF_PID=
    local d=$OUT/perf/$1.data
    pr() { perf report -i "$d" --stdio -g none "$@" 2>/dev/null | grep -v '^#' | grep -v '^$'; }
    {
        echo "# perf record -F 999 -g -p <gateway>; $(pr --sort dso | awk '{ s += $1 } END { print NR " objects" }')"
        echo "# self time by object"
        pr --no-children --sort dso --percent-limit 0.5 | head -12
        echo
        echo "# top symbols, self time (--no-children)"
        pr --no-children --sort dso,symbol --percent-limit 0.7 | head -30
        echo
        echo "# user-space symbols only, self time"
        pr --no-children --sort dso,symbol --percent-limit 0.3 | grep -v kernel | head -25
        echo
        echo "# inclusive (--children), user space"
        pr --children --sort dso,symbol --percent-limit 2 | grep -v kernel | head -25
    } >"$OUT/perf/$1.txt"
    rm -f "$OUT/perf/$1.data"
}

# run_load NAME PERF_PID_OR_EMPTY SCENARIO ARGS...: one wsgate-load run,
# samples around it, its report in raw/NAME.json
run_load() {
    local name=$1 ppid=$2 t0 rc
    shift 2
    local cmd=("$LOAD_BIN" "$@" --json "$OUT/raw/$name.json" --quiet)
    local la c0 c1
    la=$(cut -d' ' -f1 /proc/loadavg)
    log "$name: wsgate-load $* (load average $la)"
    sample "$name:before"
    [ -n "$ppid" ] && perf_start "$name" "$ppid"
    children_cpu
    c0=$CHILD_CPU
    t0=$(now)
    "${cmd[@]}" >"$OUT/logs/$name.out" 2>"$OUT/logs/$name.err"
    rc=$?
    children_cpu
    c1=$CHILD_CPU
    [ -n "$ppid" ] && perf_stop "$name"
    sample "$name:after"
    meta "{\"type\":\"run\",\"name\":$(jstr "$name"),\"rc\":$rc,\"t0\":$t0,\"t1\":$(now),\"loadavg\":$la,\"load_cpu_s\":$(awk -v a="$c0" -v b="$c1" 'BEGIN { printf "%.2f", b - a }'),\"raw\":$(jstr "raw/$name.json"),\"cmd\":$(jstr "wsgate-load ${*//$OUT\//}")}"
    [ $rc = 0 ] || log "$name: wsgate-load exited $rc (logs/$name.err)"
    return $rc
}

jget() { # jget FILE EXPR: a figure from a report (EXPR in Python on r)
    "$PY" -c 'import json,sys; r=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' "$1" "$2" 2>/dev/null
}

# ------------------------------------------------------- deployment ---
KEYS=$OUT/keys
mkdir -p "$KEYS"
chmod 700 "$KEYS"
head -c 32 /dev/urandom >"$KEYS/hs1.secret"
chmod 600 "$KEYS/hs1.secret"
printf '[key hs1]\nalgs = HS256\nsecret_file = %s\n' "$KEYS/hs1.secret" >"$KEYS/keys.ini"
chmod 600 "$KEYS/keys.ini"
AUTH=(--hs256-secret-file "$KEYS/hs1.secret" --kid hs1)

# Every gateway: auth required (the production setting; an unauthenticated
# storm's connections are held by the long auth timeout), the raw echo
# endpoint open for the raw figures, room for 19.5k connections.
GW_ARGS=(--auth required --auth-timeout-ms 600000 --raw /raw/echo=echo --raw-auth none
    --max-conns 19500)

BACKENDS=()
start_group() { # the N gateways sharing PORT_GROUP
    local i ping=${1:-25000}
    for ((i = 0; i < N_GW; i++)); do
        start "gw$i" "$GW_BIN" --reuseport --listen "127.0.0.1:$PORT_GROUP" \
            --admin "127.0.0.1:$((BASE + 10 + i))" --backend "tcp://127.0.0.1:$((BASE + 20 + i))" \
            --id "bench-gw$i" --ping-ms "$ping" "${GW_ARGS[@]}"
        BACKENDS+=(--gateway "tcp://127.0.0.1:$((BASE + 20 + i))")
    done
}
start_solo() { # one gateway alone on PORT_SOLO (fresh: restarted for each phase)
    stop solo
    start solo "$GW_BIN" --listen "127.0.0.1:$PORT_SOLO" --admin "127.0.0.1:$ADMIN_SOLO" \
        --backend "tcp://127.0.0.1:$BACKEND_SOLO" --id bench-solo "${GW_ARGS[@]}"
    if ! wait_until 15 ready "$ADMIN_SOLO"; then
        log "the solo gateway is not ready (logs/solo.log)"
        exit 1
    fi
}
start_workers() {
    local k
    for ((k = 0; k < N_WK; k++)); do
        start "wk$k" "$WK_BIN" --id "bench-wk$k" --services echo,auth,chan \
            --auth-keys "$KEYS/keys.ini" --metrics "127.0.0.1:$((BASE + 30 + k))" "${BACKENDS[@]}"
    done
}
start_bare() {
    local i
    for ((i = 0; i < N_GW; i++)); do
        start "bare$i" "$BARE_BIN" --listen "127.0.0.1:$PORT_BARE" --reuseport
    done
}
wait_group_ready() {
    local i
    for ((i = 0; i < N_GW; i++)); do
        if ! wait_until 15 ready "$((BASE + 10 + i))"; then
            log "gateway gw$i is not ready (logs/gw$i.log)"
            exit 1
        fi
    done
}

env_meta() {
    local commit dirty
    commit=$(git -C "$HERE" rev-parse --short HEAD 2>/dev/null || echo unknown)
    dirty=$(git -C "$HERE" status --porcelain --untracked-files=no 2>/dev/null | head -1)
    [ -n "$dirty" ] && commit="$commit+dirty"
    meta "{\"type\":\"env\",\"mode\":$(jstr "$MODE"),\"label\":$(jstr "$LABEL"),\"date\":$(jstr "$(date -u +%Y-%m-%dT%H:%M:%SZ)"),\"loadavg\":$(jstr "$(cat /proc/loadavg)"),\"nproc\":$(nproc),\"mem_total_kb\":$(awk '/^MemTotal:/ {print $2}' /proc/meminfo),\"kernel\":$(jstr "$(uname -r)"),\"cpu\":$(jstr "$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)"),\"commit\":$(jstr "$commit"),\"build\":$(jstr "$(cd "$BUILD" && pwd)"),\"build_type\":$(jstr "$(awk -F= '/^CMAKE_BUILD_TYPE:/ {print $2}' "$BUILD/CMakeCache.txt" 2>/dev/null)"),\"gateways\":$N_GW,\"workers\":$N_WK,\"port_base\":$BASE,\"nofile\":$(ulimit -Hn),\"cmd\":$(jstr "load/bench.sh ${ARGV% }")}"
}

# ----------------------------------------------------------- steps ---
# steps SERIES STEP COUNT [probe N REPEAT] [auth]: open STEP connections at a
# time on the solo gateway, holding the earlier ones, COUNT times; after each
# step the gateway's RSS. With probe, at the top: REPEAT storms of N more
# (opened and closed) give the handshake rate with STEP*COUNT open.
steps() {
    local series=$1 step=$2 count=$3 want=$3 probe=0 repeat=0 auth=() k r name rc
    shift 3
    while [ $# -gt 0 ]; do
        case "$1" in
        probe) probe=$2; repeat=$3; shift 2 ;;
        auth) auth=("${AUTH[@]}") ;;
        esac
        shift
    done
    start_solo
    local solo=${PID[solo]}
    # each poll forks a few processes and makes the gateway format its
    # metrics: poll slowly, so as not to slow down the storm it waits for
    local POLL=0.5
    sleep 0.5
    meta "{\"type\":\"step\",\"series\":$(jstr "$series"),\"k\":0,\"open\":0,\"rss_kb\":$(rss_kb "$solo"),\"raw\":null}"
    sample "$series:0"
    local pids=()
    for ((k = 1; k <= count; k++)); do
        name=$series-$k
        # held until the series ends (SIGINT); --hold bounds it anyway
        "$LOAD_BIN" storm --target "127.0.0.1:$PORT_SOLO" --conns "$step" --handshakes 64 \
            --hold 600 --timeout 900 "${auth[@]}" --json "$OUT/raw/$name.json" --quiet \
            >"$OUT/logs/$name.out" 2>"$OUT/logs/$name.err" &
        pids+=($!)
        STRAY+=($!)
        local cond=conns_at_least bound=$((10 + step / 200)) short=0
        [ ${#auth[@]} -gt 0 ] && cond=authed_at_least
        if ! wait_until "$bound" "$cond" "$ADMIN_SOLO" $((k * step)); then
            log "$name: the gateway does not have all $((k * step)) within $bound s: the series stops here"
            short=1
        fi
        sleep 1 # let the RSS settle
        meta "{\"type\":\"step\",\"series\":$(jstr "$series"),\"k\":$k,\"open\":$((k * step)),\"gateway_conns\":$(metric "$ADMIN_SOLO" wsgate_connections),\"rss_kb\":$(rss_kb "$solo"),\"raw\":$(jstr "raw/$name.json"),\"cmd\":$(jstr "wsgate-load storm --target 127.0.0.1:$PORT_SOLO --conns $step --handshakes 64 --hold 600 ${auth[*]:+--hs256-secret-file hs1.secret --kid hs1}")}"
        log "$series: $((k * step)) open, gateway RSS $(rss_kb "$solo") kB"
        [ $short = 0 ] || break
    done
    count=${#pids[@]}
    sample "$series:top"
    [ "$count" -lt "$want" ] && repeat=0 # no probe on a short series
    for ((r = 1; r <= repeat; r++)); do
        run_load "$series-probe$r" "$solo" storm --target "127.0.0.1:$PORT_SOLO" \
            --conns "$probe" --handshakes 64 --hold 0
        meta "{\"type\":\"probe\",\"series\":$(jstr "$series"),\"open\":$((count * step)),\"raw\":$(jstr "raw/$series-probe$r.json")}"
    done
    for k in "${pids[@]}"; do kill -INT "$k" 2>/dev/null; done
    for ((k = 1; k <= count; k++)); do
        wait "${pids[k - 1]}"
        rc=$?
        meta "{\"type\":\"run\",\"name\":$(jstr "$series-$k"),\"rc\":$rc,\"raw\":$(jstr "raw/$series-$k.json"),\"interrupted\":true,\"cmd\":$(jstr "wsgate-load storm --conns $step --hold 600 (ended by SIGINT)")}"
    done
    STRAY=()
    sample "$series:end"
}

# ------------------------------------------------------------ modes ---
report() {
    log "report: $OUT"
    "$PY" "$HERE/bench_report.py" "$OUT"
}

# open_at_half SUFFIX: open_jsonSUFFIX and open_bareSUFFIX, each at half
# the rate its closed loop echo_jsonSUFFIX / echo_bareSUFFIX reached (2000
# when that run has no figure). Uses run_suite's locals.
open_at_half() {
    local sfx=$1 max_json max_bare
    max_json=$(jget "$OUT/raw/echo_json$sfx.json" 'int(r["requests"]["round_trips_per_s"])') || max_json=2000
    max_bare=$(jget "$OUT/raw/echo_bare$sfx.json" 'int(r["requests"]["round_trips_per_s"])') || max_bare=2000
    [ "${max_json:-0}" -ge 100 ] || max_json=2000
    [ "${max_bare:-0}" -ge 100 ] || max_bare=2000
    run_load "open_json$sfx" "$gw0" echo --target "$G" --conns "$e_conns" --window 64 --size 64 \
        --rate $((max_json / 2)) --duration "$o_dur" "${AUTH[@]}"
    run_load "open_bare$sfx" "" echo --target "$B" --path /raw/echo --conns "$e_conns" \
        --window 64 --size 64 --rate $((max_bare / 2)) --duration "$o_dur"
}

run_suite() {
    local q=$1
    # counts: default | quick
    local storm_n=15000 auth_n=10000 step=2000 nsteps=9 probe=1500 probes=3
    local e_conns=100 e_win=16 e_dur=5 o_dur=5
    local f_subs=10000 f_procs=2 f_rate=60 f_dur=3 f_drain=30 bursts=10
    if [ "$q" = quick ]; then
        storm_n=400 auth_n=300 step=150 nsteps=3 probe=100 probes=1
        e_conns=10 e_win=4 e_dur=1 o_dur=1
        f_subs=200 f_procs=1 f_rate=10 f_dur=1 f_drain=10 bursts=3
    fi

    start_group
    # the workers connect to every gateway, the solo one too (it comes and goes)
    BACKENDS+=(--gateway "tcp://127.0.0.1:$BACKEND_SOLO")
    start_workers
    start_bare
    wait_group_ready
    wait_until 10 listening "$PORT_BARE" || { log "bare echo not listening"; exit 1; }
    local gw0=${PID[gw0]}
    local G=127.0.0.1:$PORT_GROUP S=127.0.0.1:$PORT_SOLO B=127.0.0.1:$PORT_BARE

    # connection storms on the group
    run_load storm_empty "$gw0" storm --target "$G" --conns "$storm_n" --handshakes 64 --hold 1
    run_load storm_auth "$gw0" storm --target "$G" --conns "$auth_n" --handshakes 64 --hold 1 \
        "${AUTH[@]}"

    # echo, closed loop: through a worker (JSON; raw), and the bare lws echo
    run_load echo_json "$gw0" echo --target "$G" --conns "$e_conns" --window "$e_win" \
        --size 64 --duration "$e_dur" "${AUTH[@]}"
    run_load echo_raw "$gw0" echo --target "$G" --path /raw/echo --conns "$e_conns" \
        --window "$e_win" --size 64 --duration "$e_dur"
    run_load echo_bare "" echo --target "$B" --path /raw/echo --conns "$e_conns" \
        --window "$e_win" --size 64 --duration "$e_dur"

    # open loop at half of each one's closed-loop maximum
    open_at_half ""

    # The same with one request out per connection, each waiting for its
    # reply (the issue's words for the closed loop), and the open loop at
    # half of that: the pipelined maximum above is not one a client that
    # waits can reach.
    run_load echo_json_w1 "$gw0" echo --target "$G" --conns "$e_conns" --window 1 \
        --size 64 --duration "$e_dur" "${AUTH[@]}"
    run_load echo_bare_w1 "" echo --target "$B" --path /raw/echo --conns "$e_conns" --window 1 \
        --size 64 --duration "$e_dur"
    open_at_half _w1

    # one gateway process: handshake rate and RSS against connections held
    steps steps_plain "$step" "$nsteps" probe "$probe" "$probes"
    steps steps_auth "$step" "$nsteps" auth

    # fan-out from one gateway process
    start_solo
    run_load fanout_rate "${PID[solo]}" fanout --target "$S" --conns "$f_subs" --procs "$f_procs" \
        --rate "$f_rate" --window 64 --duration "$f_dur" --drain "$f_drain" "${AUTH[@]}" --grant-all
    run_load fanout_burst "${PID[solo]}" fanout --target "$S" --conns "$f_subs" --procs "$f_procs" \
        --burst "$bursts" --rx-timestamps "${AUTH[@]}" --grant-all
    # the same over the N gateways sharing the port: the kernel splits the
    # subscribers, each gateway writes its share (one per core)
    run_load fanout_shared_rate "$gw0" fanout --target "$G" --conns "$f_subs" --procs "$f_procs" \
        --rate "$f_rate" --window 64 --duration "$f_dur" --drain "$f_drain" "${AUTH[@]}" --grant-all
    run_load fanout_shared_burst "$gw0" fanout --target "$G" --conns "$f_subs" --procs "$f_procs" \
        --burst "$bursts" --rx-timestamps "${AUTH[@]}" --grant-all
    sample final
}

meminfo() { # meminfo TAG: the box's memory and sockets
    local avail tcp
    avail=$(awk '/^MemAvailable:/ {print $2}' /proc/meminfo)
    tcp=$(awk '/^TCP:/ {print}' /proc/net/sockstat)
    meta "{\"type\":\"meminfo\",\"tag\":$(jstr "$1"),\"t\":$(now),\"mem_available_kb\":$avail,\"slab_kb\":$(awk '/^Slab:/ {print $2}' /proc/meminfo),\"sunreclaim_kb\":$(awk '/^SUnreclaim:/ {print $2}' /proc/meminfo),\"sockstat_tcp\":$(jstr "$tcp"),\"sockstat\":$(jstr "$(tr '\n' ';' </proc/net/sockstat)")}"
}

run_held() {
    # N_GW gateways on one port; each load process binds its own 127.0.j.(2+i)
    # sources, so every source has its own ephemeral port range per target.
    local per=$((HELD_CONNS / N_GW + HELD_CONNS / N_GW / 10 + 100)) i
    [ "$per" -le 19500 ] || per=19500
    GW_ARGS=(--auth required --auth-timeout-ms 600000 --max-conns "$per")
    start_group "$HELD_PING"
    start_workers
    wait_group_ready
    sleep 1
    meminfo before
    sample held:before
    # the load runs in the background; while it holds, the RSS of everything
    local t0 rc lp la c0
    t0=$(now)
    la=$(cut -d' ' -f1 /proc/loadavg)
    children_cpu
    c0=$CHILD_CPU
    log "held: wsgate-load idle --conns $HELD_CONNS --procs $HELD_PROCS --hold $HELD_HOLD (authenticated)"
    "$LOAD_BIN" idle --target "127.0.0.1:$PORT_GROUP" --conns "$HELD_CONNS" --procs "$HELD_PROCS" \
        --sources 4 --handshakes 64 --hold "$HELD_HOLD" --duration 120 "${AUTH[@]}" \
        --json "$OUT/raw/held.json" >"$OUT/logs/held.out" 2>"$OUT/logs/held.err" &
    lp=$!
    STRAY+=("$lp")
    # wait until they are all open (or the load ended)
    local total=0 deadline=$((SECONDS + 180))
    while kill -0 "$lp" 2>/dev/null && [ $SECONDS -lt $deadline ]; do
        total=0
        for ((i = 0; i < N_GW; i++)); do
            total=$((total + $(metric "$((BASE + 10 + i))" 'wsgate_auth_total{result="ok"}')))
        done
        [ "$total" -ge "$HELD_CONNS" ] && break
        sleep 1
    done
    log "held: $total authenticated; holding"
    sleep 5
    meminfo held
    sample held:held
    local lps
    lps=$(pgrep -P "$lp" | tr '\n' ' ')
    for p in $lp $lps; do
        meta "{\"type\":\"sample\",\"tag\":\"held:held\",\"proc\":\"load\",\"pid\":$p,\"t\":$(now),\"rss_kb\":$(rss_kb "$p"),\"cpu_s\":0}"
    done
    for ((i = 0; i < N_GW; i++)); do
        meta "{\"type\":\"gateway\",\"name\":\"gw$i\",\"conns\":$(metric "$((BASE + 10 + i))" wsgate_connections),\"opened\":$(metric "$((BASE + 10 + i))" wsgate_connections_opened_total),\"rss_kb\":$(rss_kb "${PID[gw$i]}")}"
    done
    wait "$lp"
    rc=$?
    STRAY=()
    children_cpu
    meta "{\"type\":\"run\",\"name\":\"held\",\"rc\":$rc,\"t0\":$t0,\"t1\":$(now),\"loadavg\":$la,\"load_cpu_s\":$(awk -v a="$c0" -v b="$CHILD_CPU" 'BEGIN { printf "%.2f", b - a }'),\"raw\":\"raw/held.json\",\"cmd\":$(jstr "wsgate-load idle --target 127.0.0.1:$PORT_GROUP --conns $HELD_CONNS --procs $HELD_PROCS --sources 4 --handshakes 64 --hold $HELD_HOLD --hs256-secret-file hs1.secret --kid hs1")}"
    sleep 2
    meminfo after
    sample held:after
}

env_meta
log "output: $OUT (mode $MODE, $N_GW gateways, $N_WK workers, load average $(cut -d' ' -f1-3 /proc/loadavg))"
case "$MODE" in
held) run_held ;;
*) run_suite "$MODE" ;;
esac
cleanup
trap - EXIT
report
